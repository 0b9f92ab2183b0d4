// pasha::xfel::FormatError: what the XFEL reader throws for input it cannot use.
#ifndef PASHA_FUNCTORS_XFEL_FORMAT_ERROR_H_
#define PASHA_FUNCTORS_XFEL_FORMAT_ERROR_H_

#include <stdexcept>

namespace pasha::xfel {

// A run file or directory that is missing, not HDF5, or not laid out as European XFEL writes run
// files (missing INDEX or METADATA, counts past a dataset's end, duplicated trains, a stored type
// that cannot be converted to the requested one). what() names the file and the HDF5 path.
class FormatError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace pasha::xfel

#endif  // PASHA_FUNCTORS_XFEL_FORMAT_ERROR_H_

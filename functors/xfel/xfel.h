// pasha::xfel: European XFEL run files (HDF5) as pasha functors, after EXtra-data.
//
//   pasha::xfel::DataCollection run = pasha::xfel::RunDirectory("/gpfs/exfel/exp/.../raw/r0450");
//   auto kd = run.key_data<std::uint16_t>("FXE_XAD_GEC/CAM/CAMERA:daqOutput", "data.image.pixels");
//   pasha::map([&](int worker_id, std::size_t index, std::uint64_t train_id, pasha::Array<std::uint16_t> rows) {
//     ...  // rows: this train's entries, shape (count, entry_shape...); count may be 0
//   }, kd);
//
// A DataCollection is a set of run files plus a selection of sources, keys and trains. Mapping a
// DataCollection calls kernel(worker_id, index, train_id, const TrainData&); mapping a KeyData<T>
// calls kernel(worker_id, index, train_id, pasha::Array<T> rows); mapping a SourceData calls
// kernel(worker_id, index, train_id, const SourceTrain&). Every train of train_ids() is visited
// exactly once, `index` being its position in train_ids(), including trains where a source has no
// data (zero rows).
//
// Reading: a key is resolved once (which files hold it, their datasets, shapes and types) and
// validated once for the trains selected when its KeyData is made. A KeyData map reads each train with
// one read into a buffer each worker reuses: `rows` is valid during the kernel call (copy what you
// keep). Datasets stored contiguously and uncompressed in the type asked for (what the DAQ writes for
// most detector and camera data) are read straight from the file (pread at the offset HDF5 reports),
// with no lock, so threads read in parallel; chunked, compressed or converted data goes through HDF5,
// one call at a time (Debian's thread-safe HDF5 takes one global lock anyway).
//
// Files and processes: a collection reads each file's metadata when it is built and closes it; data
// reads open files lazily and keep them open until close() or until the last copy of the collection
// goes. Handles are per process: in a ProcessContext each worker opens its own.
//
// Thread-safety: collections and key data are immutable values; reading from several threads or
// processes at once is allowed. pasha's HDF5 calls take one process-wide lock, which is fork-safe: a
// process context's worker never inherits HDF5 in the middle of a call.
//
// Errors: bad input (missing paths, non-HDF5 files, missing INDEX/METADATA, counts past a dataset's
// end, duplicated trains, unconvertible types) throws pasha::xfel::FormatError naming the file and
// HDF5 path. Misuse (unknown source or key, a glob that matches nothing) throws std::invalid_argument.
#ifndef PASHA_FUNCTORS_XFEL_XFEL_H_
#define PASHA_FUNCTORS_XFEL_XFEL_H_

#include "functors/xfel/data_collection.h"
#include "functors/xfel/format_error.h"
#include "functors/xfel/key_data.h"
#include "functors/xfel/source_data.h"

#endif  // PASHA_FUNCTORS_XFEL_XFEL_H_

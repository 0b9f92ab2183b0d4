// FileWindow: private, writable mappings of parts of a run file, for the rows a kernel receives
// without a copy. Internal to pasha.
//
// Writes to them (a kernel correcting its rows in place) stay in this process and vanish when they
// are unmapped; the file never changes. Each mapping starts at a 2 MiB boundary of the file and of
// the address space, which lets the kernel map the file's pages in large pieces where it keeps them
// so. On the project's test machine (Linux 6.18, page cache warm), summing 2 MiB of rows mapped
// this way takes 0.73x the time of pread and the same sum, 0.78x at 1 MiB, 0.91x at 512 KiB; a
// mapping at a mere page boundary takes 1.3x. Hence min_bytes(), 1 MiB by default.
//
// Successive mappings go side by side into one reserved range (kArenaBytes, or one mapping's size
// rounded up to 2 MiB if larger), which is cleared in one go when full and unmapped on destruction:
// clearing a mapping makes every CPU running the process's threads flush its TLB, and an interrupt
// per train costs a thread context ~15% of its time on a virtual machine. KeyData uses one window for
// each run of trains a worker is given at once (a chunk between two cancellation checks: 1/64 of its
// share), so the flushes come per chunk, not per train. A window's earlier rows stay mapped (and a
// kernel's writes to them kept) until the arena is cleared; they are never given out again.
//
// Files must not shrink while a map reads them: the size is checked before each mapping (a shorter
// file is a FormatError), but a file truncated while its pages are in use ends the reading process
// with SIGBUS, as with any reader that maps files.
#ifndef PASHA_FUNCTORS_XFEL_DETAIL_FILE_WINDOW_H_
#define PASHA_FUNCTORS_XFEL_DETAIL_FILE_WINDOW_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

namespace pasha::xfel::detail {

class FileWindow {
 public:
  static constexpr std::uint64_t kArenaBytes = std::uint64_t{64} << 20;

  FileWindow() = default;
  // A window whose arena holds at least `arena_bytes` (0: just the first mapping, for a window that
  // maps once and is kept with its rows).
  explicit FileWindow(std::uint64_t arena_bytes) noexcept : arena_request_(arena_bytes) {}
  ~FileWindow() { release(); }
  FileWindow(const FileWindow&) = delete;
  FileWindow& operator=(const FileWindow&) = delete;

  // Reads of at least this many bytes are mapped; smaller ones use pread. Tests lower it.
  static std::atomic<std::uint64_t>& min_bytes();

  // Maps `bytes` bytes at `offset` of the file open as `fd` and returns where they start, or nullptr
  // when the system refuses the mapping (the caller reads them instead). FormatError naming the file
  // and `what` when the file no longer holds them.
  void* map(int fd, const std::string& file_name, std::uint64_t offset, std::uint64_t bytes, const std::string& what);

  // Whether [p, p + bytes) lies within the window's reserved range (for tests).
  bool holds(const void* p, std::size_t bytes) const noexcept {
    const auto* c = static_cast<const char*>(p);
    return arena_ != nullptr && c >= arena_ && bytes <= arena_bytes_ && c - arena_ <= static_cast<std::ptrdiff_t>(arena_bytes_ - bytes);
  }

 private:
  // Makes room for `length` bytes at a 2 MiB boundary; false when the system refuses.
  bool make_room(std::size_t length);
  void release() noexcept;

  std::uint64_t arena_request_ = kArenaBytes;
  char* arena_ = nullptr;          // 2 MiB aligned, within the reservation
  std::size_t arena_bytes_ = 0;
  std::size_t used_ = 0;           // bytes of the arena given out since it was last cleared
  void* reservation_ = nullptr;
  std::size_t reserved_bytes_ = 0;
};

}  // namespace pasha::xfel::detail

#endif  // PASHA_FUNCTORS_XFEL_DETAIL_FILE_WINDOW_H_

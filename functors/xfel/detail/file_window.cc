#include "functors/xfel/detail/file_window.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "functors/xfel/format_error.h"

namespace pasha::xfel::detail {

std::atomic<std::uint64_t>& FileWindow::min_bytes() {
  static std::atomic<std::uint64_t> bytes{std::uint64_t{1} << 20};
  return bytes;
}

namespace {
constexpr std::uint64_t kLarge = std::uint64_t{2} << 20;
constexpr int kReserve = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
}  // namespace

void* FileWindow::map(int fd, const std::string& file_name, std::uint64_t offset, std::uint64_t bytes,
                      const std::string& what) {
  const auto page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    throw FormatError(file_name + ": " + what + ": cannot stat: " + std::strerror(errno));
  }
  const auto file_bytes = static_cast<std::uint64_t>(info.st_size);
  if (offset > file_bytes || bytes > file_bytes - offset) {
    throw FormatError(file_name + ": " + what + ": the file ends before the dataset's data (it was truncated)");
  }
  // From the 2 MiB boundary below the data to the one above it, but not past the file's last page.
  const std::uint64_t first = offset & ~(kLarge - 1);
  const std::uint64_t last =
      std::min((offset + bytes + kLarge - 1) & ~(kLarge - 1), (file_bytes + page - 1) & ~(page - 1));
  const auto length = static_cast<std::size_t>(last - first);
  if (!make_room(length)) return nullptr;
  void* mapped = ::mmap(arena_ + used_, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd,
                        static_cast<off_t>(first));
  if (mapped == MAP_FAILED) return nullptr;  // the range stays reserved (PROT_NONE)
  used_ += (length + kLarge - 1) & ~(kLarge - 1);
  return static_cast<char*>(mapped) + (offset - first);
}

bool FileWindow::make_room(std::size_t length) {
  // used_ never exceeds arena_bytes_: both are multiples of kLarge, and so is every mapping's share.
  if (arena_ != nullptr && length <= arena_bytes_ - used_) return true;
  if (arena_ != nullptr && length <= arena_bytes_) {
    // Full: clear every mapping at once (one TLB flush) by reserving the arena afresh.
    if (::mmap(arena_, arena_bytes_, PROT_NONE, kReserve | MAP_FIXED, -1, 0) == MAP_FAILED) return false;
    used_ = 0;
    return true;
  }
  release();
  const std::size_t wanted = std::max<std::size_t>(arena_request_, (length + kLarge - 1) & ~(kLarge - 1));
  void* reservation = ::mmap(nullptr, wanted + kLarge, PROT_NONE, kReserve, -1, 0);
  if (reservation == MAP_FAILED) return false;
  reservation_ = reservation;
  reserved_bytes_ = wanted + kLarge;
  arena_ = reinterpret_cast<char*>((reinterpret_cast<std::uintptr_t>(reservation) + kLarge - 1) & ~(kLarge - 1));
  arena_bytes_ = wanted;
  used_ = 0;
  return true;
}

void FileWindow::release() noexcept {
  if (reservation_ != nullptr) ::munmap(reservation_, reserved_bytes_);
  reservation_ = nullptr;
  reserved_bytes_ = 0;
  arena_ = nullptr;
  arena_bytes_ = 0;
  used_ = 0;
}

}  // namespace pasha::xfel::detail

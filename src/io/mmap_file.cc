#include "qdit/io/mmap_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "qdit/core/error.h"

namespace qdit::io {
namespace {

int madvise_flag(MappedFile::Access a) {
  switch (a) {
    case MappedFile::Access::Normal: return MADV_NORMAL;
    case MappedFile::Access::Sequential: return MADV_SEQUENTIAL;
    case MappedFile::Access::Random: return MADV_RANDOM;
    case MappedFile::Access::WillNeed: return MADV_WILLNEED;
    case MappedFile::Access::DontNeed: return MADV_DONTNEED;
  }
  return MADV_NORMAL;
}

// Closes the descriptor on every path out of open(); the mapping stays valid after close.
struct FdGuard {
  int fd;
  ~FdGuard() { if (fd >= 0) ::close(fd); }
};

}  // namespace

std::shared_ptr<const MappedFile> MappedFile::open(const std::string& path, Access access) {
  FdGuard fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (fd.fd < 0) fail("[", path, "] cannot open file for reading: ", std::strerror(errno));
  struct stat st {};
  if (::fstat(fd.fd, &st) != 0) fail("[", path, "] cannot stat file: ", std::strerror(errno));
  QDIT_CHECK(S_ISREG(st.st_mode), "[", path, "] expected a regular file, found ",
             S_ISDIR(st.st_mode) ? "a directory" : "a special file");
  std::shared_ptr<MappedFile> m(new MappedFile());
  m->path_ = path;
  m->size_ = static_cast<size_t>(st.st_size);
  if (m->size_ == 0) return m;  // mmap of length 0 is invalid; an empty file maps to nothing
  void* p = ::mmap(nullptr, m->size_, PROT_READ, MAP_PRIVATE, fd.fd, 0);
  if (p == MAP_FAILED) fail("[", path, "] cannot memory-map ", m->size_, " bytes: ", std::strerror(errno));
  m->data_ = static_cast<const uint8_t*>(p);
  if (access != Access::Normal) ::madvise(p, m->size_, madvise_flag(access));
  return m;
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

void MappedFile::advise(size_t offset, size_t length, Access access) const {
  if (!data_ || offset >= size_ || length == 0) return;
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  const size_t begin = offset / page * page;
  const size_t end = std::min(size_, offset + std::min(length, size_ - offset));
  ::madvise(const_cast<uint8_t*>(data_) + begin, end - begin, madvise_flag(access));
}

}  // namespace qdit::io

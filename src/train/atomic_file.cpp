// AtomicFile: temporary name, fsync, rename, folder fsync.
#include "atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "anvil/core/error.h"

namespace anvil::train::detail {

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)), temporary_(path_ + ".tmp") {
  stream_ = std::fopen(temporary_.c_str(), "wb");
  if (stream_ == nullptr) throw make_error("cannot create '", temporary_, "': ", std::strerror(errno));
}

AtomicFile::~AtomicFile() {
  if (stream_ == nullptr) return;
  std::fclose(stream_);
  std::remove(temporary_.c_str());
}

void AtomicFile::write(const void* data, size_t bytes) {
  ANVIL_CHECK(stream_ != nullptr, "'", path_, "' was already committed");
  if (bytes > 0 && std::fwrite(data, 1, bytes, stream_) != bytes) {
    throw make_error("cannot write '", temporary_, "': ", std::strerror(errno));
  }
  size_ += bytes;
}

void AtomicFile::write_at(uint64_t offset, const void* data, size_t bytes) {
  ANVIL_CHECK(stream_ != nullptr && offset + bytes <= size_, "write_at past the end of '", temporary_, "'");
  const bool ok = std::fseek(stream_, static_cast<long>(offset), SEEK_SET) == 0 &&
                  std::fwrite(data, 1, bytes, stream_) == bytes && std::fseek(stream_, 0, SEEK_END) == 0;
  if (!ok) throw make_error("cannot write '", temporary_, "': ", std::strerror(errno));
}

void AtomicFile::commit() {
  ANVIL_CHECK(stream_ != nullptr, "'", path_, "' was already committed");
  bool ok = std::fflush(stream_) == 0 && ::fsync(fileno(stream_)) == 0;
  ok = std::fclose(stream_) == 0 && ok;
  stream_ = nullptr;
  if (!ok || std::rename(temporary_.c_str(), path_.c_str()) != 0) {
    const int error = errno;
    std::remove(temporary_.c_str());
    throw make_error("cannot write '", path_, "': ", std::strerror(error));
  }
  const std::filesystem::path parent = std::filesystem::path(path_).parent_path();
  sync_directory(parent.empty() ? "." : parent.string());
}

void write_file_atomically(const std::string& path, std::string_view text) {
  AtomicFile file(path);
  file.write(text);
  file.commit();
}

void sync_directory(const std::string& folder) {
  const int descriptor = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (descriptor < 0) throw make_error("cannot open folder '", folder, "': ", std::strerror(errno));
  const int result = ::fsync(descriptor);
  const int error = errno;
  ::close(descriptor);
  if (result != 0) throw make_error("cannot sync folder '", folder, "': ", std::strerror(error));
}

}  // namespace anvil::train::detail

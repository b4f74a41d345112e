#pragma once
// One error type for everything a user can cause: bad files, bad shapes, bad requests.
// It carries context (file, field, offset, op, shapes) so the message names the culprit.
#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace anvil {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}

  // Returns a copy of this error with "key=value" context appended, e.g. file or offset.
  [[nodiscard]] Error with(const std::string& key, const std::string& value) const {
    return Error(std::string(what()) + " [" + key + "=" + value + "]");
  }
};

namespace detail {
inline void append_all(std::ostringstream&) {}
template <typename T, typename... Rest>
void append_all(std::ostringstream& stream, const T& first, const Rest&... rest) {
  stream << first;
  append_all(stream, rest...);
}
}  // namespace detail

// Builds a message from any streamable pieces: make_error("op ", name, ": bad shape").
template <typename... Parts>
[[nodiscard]] Error make_error(const Parts&... parts) {
  std::ostringstream stream;
  detail::append_all(stream, parts...);
  return Error(stream.str());
}

// Formats a shape as "(2, 3, 4)" for error messages.
std::string shape_string(const std::vector<int64_t>& shape);

}  // namespace anvil

// Throws anvil::Error with the location and message when cond is false.
#define ANVIL_CHECK(cond, ...)                                                                                \
  do {                                                                                                        \
    if (!(cond)) [[unlikely]] {                                                                               \
      throw ::anvil::make_error(__VA_ARGS__, " (check `" #cond "` failed at ", __FILE__, ":", __LINE__, ")"); \
    }                                                                                                         \
  } while (0)

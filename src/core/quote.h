// Quoting of names taken from untrusted files for error messages.
#pragma once

#include <cstdio>
#include <string>
#include <string_view>

namespace recur {

// 'name' with quotes, backslashes and control bytes escaped, so a hostile name cannot break
// the one-line error format or forge a second message.
inline std::string quote_name(std::string_view s) {
  std::string out = "'";
  for (unsigned char c : s) {
    if (c == '\'' || c == '\\') {
      out += '\\';
      out += char(c);
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += char(c);
    }
  }
  return out + "'";
}

}  // namespace recur

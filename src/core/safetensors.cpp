#include "recur/core/safetensors.h"

#include "recur/core/file_io.h"
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "json_parse.h"
#include "quote.h"

namespace recur {

// Values are copied byte for byte between the file and memory.
static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

namespace {

using json = nlohmann::json;

constexpr DType kAllDtypes[] = {DType::f64, DType::f32, DType::f16, DType::bf16, DType::i64,
                                DType::i32, DType::i16, DType::i8,  DType::u8,   DType::boolean};

// Deeper nesting than a valid header has (root -> entry -> shape array) is refused while
// checking, so "[[[[..." cannot make the parser build millions of levels.
constexpr int kMaxHeaderDepth = 8;

// Parser messages quote raw input bytes; keep them printable and on one line.
std::string one_line(std::string s) {
  for (char& c : s)
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
  return s;
}

std::string json_kind(const json& j) {
  if (j.is_number_unsigned() || j.is_number_integer()) return "an integer " + j.dump();
  if (j.is_number_float()) return "a number " + j.dump();
  if (j.is_string()) return "a string";
  if (j.is_array()) return "an array of " + std::to_string(j.size()) + " elements";
  if (j.is_object()) return "an object";
  if (j.is_boolean()) return "a boolean";
  if (j.is_null()) return "null";
  return j.type_name();
}

bool parse_dtype(std::string_view s, DType& out) {
  for (DType t : kAllDtypes)
    if (dtype_name(t) == s) {
      out = t;
      return true;
    }
  return false;
}

std::string dtype_list() {
  std::string s;
  for (DType t : kAllDtypes) {
    if (!s.empty()) s += ", ";
    s += dtype_name(t);
  }
  return s;
}

float half_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);  // inf / nan, payload kept
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (mant << 13);  // rebias 15 -> 127
  } else if (mant == 0) {
    bits = sign;
  } else {
    // Subnormal half: mant * 2^-24 is exact in float.
    const float v = std::ldexp(float(mant), -24);
    return sign ? -v : v;
  }
  return std::bit_cast<float>(bits);
}

template <typename V>
V load_le(const char* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

}  // namespace

std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::f64: return "F64";
    case DType::f32: return "F32";
    case DType::f16: return "F16";
    case DType::bf16: return "BF16";
    case DType::i64: return "I64";
    case DType::i32: return "I32";
    case DType::i16: return "I16";
    case DType::i8: return "I8";
    case DType::u8: return "U8";
    case DType::boolean: return "BOOL";
  }
  return "?";
}

int64_t dtype_size(DType t) {
  switch (t) {
    case DType::f64:
    case DType::i64: return 8;
    case DType::f32:
    case DType::i32: return 4;
    case DType::f16:
    case DType::bf16:
    case DType::i16: return 2;
    case DType::i8:
    case DType::u8:
    case DType::boolean: return 1;
  }
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Reader

SafetensorsReader SafetensorsReader::open(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw FormatError(path + ": cannot open: " + std::strerror(errno));
  // The file is read whole, so its size must be known first: a device or a pipe (recur info
  // /dev/zero) would otherwise be read until memory runs out.
  struct stat st {};
  if (::fstat(::fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
    std::fclose(f);
    throw FormatError(path + ": not a regular file; expected a .safetensors file");
  }
  std::string bytes(size_t(st.st_size), '\0');
  const size_t n = bytes.empty() ? 0 : std::fread(bytes.data(), 1, bytes.size(), f);
  const bool failed = std::ferror(f);
  const int err = errno;
  std::fclose(f);
  if (failed) throw FormatError(path + ": read error: " + std::strerror(err));
  bytes.resize(n);  // a file that shrank while being read is judged by what was there
  return from_bytes(std::move(bytes), path);
}

SafetensorsReader SafetensorsReader::from_bytes(std::string bytes, const std::string& origin) {
  SafetensorsReader r;
  r.origin_ = origin;
  r.bytes_ = std::move(bytes);
  const std::string pre = origin + ": ";
  const uint64_t size = r.bytes_.size();

  if (size < 8)
    throw FormatError(pre + "file is " + std::to_string(size) + " bytes, too short for the 8-byte header length");
  const uint64_t header_len = load_le<uint64_t>(r.bytes_.data());
  if (header_len > kSafetensorsMaxHeaderBytes) {
    // Text where the length should be (a config, a CSV, a model from another tool) is the usual
    // cause: say so rather than quote a length of 2314885530818453536.
    const bool text = std::all_of(r.bytes_.begin(), r.bytes_.begin() + 8, [](char c) {
      return (c >= 0x20 && c < 0x7f) || c == '\n' || c == '\r' || c == '\t';
    });
    if (text) throw FormatError(pre + "not a safetensors file: it starts with text, not an 8-byte header length");
    throw FormatError(pre + "header length " + std::to_string(header_len) + " exceeds the limit of " +
                      std::to_string(kSafetensorsMaxHeaderBytes) + " bytes; not a safetensors file?");
  }
  if (header_len > size - 8)
    throw FormatError(pre + "header length " + std::to_string(header_len) + " exceeds the file size (" +
                      std::to_string(size - 8) + " bytes after the 8-byte length)");
  r.data_start_ = 8 + header_len;
  const uint64_t data_size = size - r.data_start_;
  const std::string_view text(r.bytes_.data() + 8, size_t(header_len));

  // Syntax, depth, numbers and duplicate keys (nlohmann would keep the last of two, changing
  // which bytes a name refers to) are checked by the one JSON entry point, in linear time.
  const json header = parse_json(text, pre + "header", "a JSON object", {.max_depth = kMaxHeaderDepth});
  if (!header.is_object()) throw FormatError(pre + "header JSON is " + json_kind(header) + ", expected an object");

  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object())
        throw FormatError(pre + "__metadata__ is " + json_kind(entry) + ", expected an object of strings");
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string())
          throw FormatError(pre + "__metadata__[" + quote_name(key) + "] is " + json_kind(value) + ", expected a string");
        r.metadata_[key] = value.get<std::string>();
      }
      continue;
    }
    const std::string where = pre + "tensor " + quote_name(name) + ": ";
    if (!entry.is_object()) throw FormatError(where + "entry is " + json_kind(entry) + ", expected an object");
    for (const char* field : {"dtype", "shape", "data_offsets"})
      if (!entry.contains(field)) throw FormatError(where + "missing field '" + field + "'");
    for (const auto& [field, value] : entry.items()) {
      (void)value;
      if (field != "dtype" && field != "shape" && field != "data_offsets")
        throw FormatError(where + "unexpected field " + quote_name(field) + " (expected only dtype, shape, data_offsets)");
    }

    TensorInfo info{};
    const json& jd = entry["dtype"];
    if (!jd.is_string()) throw FormatError(where + "dtype is " + json_kind(jd) + ", expected a string");
    if (!parse_dtype(jd.get<std::string>(), info.dtype))
      throw FormatError(where + "unknown dtype " + quote_name(jd.get<std::string>()) + " (expected one of " +
                        dtype_list() + ")");

    const json& js = entry["shape"];
    if (!js.is_array()) throw FormatError(where + "shape is " + json_kind(js) + ", expected an array of integers");
    for (size_t i = 0; i < js.size(); ++i) {
      const json& v = js[i];
      const std::string dim = "shape[" + std::to_string(i) + "] is ";
      if (v.is_number_unsigned()) {
        if (v.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
          throw FormatError(where + dim + v.dump() + ", larger than 2^63 - 1");
        info.shape.push_back(int64_t(v.get<uint64_t>()));
      } else if (v.is_number_integer()) {
        throw FormatError(where + dim + "negative (" + v.dump() + "), expected a non-negative integer");
      } else {
        throw FormatError(where + dim + json_kind(v) + ", expected a non-negative integer");
      }
    }
    // Computed in unsigned 64 bits with explicit overflow checks, since a hostile shape can
    // multiply past 2^64 back into a plausible byte count.
    uint64_t nbytes = uint64_t(dtype_size(info.dtype));
    for (int64_t d : info.shape)
      if (__builtin_mul_overflow(nbytes, uint64_t(d), &nbytes))
        throw FormatError(where + "shape " + shape_str(info.shape) + " of " + std::string(dtype_name(info.dtype)) +
                          " overflows 64 bits when computing its size");

    const json& jo = entry["data_offsets"];
    if (!jo.is_array() || jo.size() != 2)
      throw FormatError(where + "data_offsets is " + json_kind(jo) + ", expected an array [begin, end]");
    for (const json& v : jo)
      if (!v.is_number_unsigned())
        throw FormatError(where + "data_offsets holds " + json_kind(v) + ", expected non-negative integers");
    info.begin = jo[0].get<uint64_t>();
    info.end = jo[1].get<uint64_t>();
    const std::string offsets = "data_offsets [" + std::to_string(info.begin) + ", " + std::to_string(info.end) + "]";
    if (info.begin > info.end) throw FormatError(where + offsets + " has begin > end");
    if (info.end > data_size)
      throw FormatError(where + offsets + " out of range: the data section has " + std::to_string(data_size) +
                        " bytes");
    if (info.end - info.begin != nbytes)
      throw FormatError(where + "shape " + shape_str(info.shape) + " of " + std::string(dtype_name(info.dtype)) +
                        " needs " + std::to_string(nbytes) + " bytes, but " + offsets + " span " +
                        std::to_string(info.end - info.begin));
    r.infos_.emplace(name, std::move(info));
  }

  // The data section must be exactly the tensors laid end to end. Sorting by (begin, end)
  // puts an empty tensor before a non-empty one at the same offset, so it does not count as
  // an overlap.
  std::vector<std::pair<const std::string*, const TensorInfo*>> order;
  for (const auto& [name, info] : r.infos_) order.emplace_back(&name, &info);
  std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    return std::pair(a.second->begin, a.second->end) < std::pair(b.second->begin, b.second->end);
  });
  uint64_t pos = 0;
  const std::string* prev = nullptr;
  for (const auto& [name, info] : order) {
    if (info->begin < pos)
      throw FormatError(pre + "tensors " + quote_name(*prev) + " and " + quote_name(*name) + " overlap (" + quote_name(*name) +
                        " begins at " + std::to_string(info->begin) + ", before the previous one ends at " +
                        std::to_string(pos) + ")");
    if (info->begin > pos)
      throw FormatError(pre + "gap of " + std::to_string(info->begin - pos) + " unused bytes in the data section " +
                        (prev ? "between tensors " + quote_name(*prev) + " and " + quote_name(*name)
                              : "before the first tensor " + quote_name(*name)));
    pos = info->end;
    prev = name;
  }
  if (pos != data_size)
    throw FormatError(pre + std::to_string(data_size - pos) + " trailing bytes after the last tensor" +
                      (prev ? " " + quote_name(*prev) : std::string()) + " (data section must be fully covered)");
  return r;
}

std::vector<std::string> SafetensorsReader::names() const {
  std::vector<std::string> out;
  out.reserve(infos_.size());
  for (const auto& [name, info] : infos_) out.push_back(name);
  return out;
}

const TensorInfo& SafetensorsReader::info(const std::string& name) const {
  auto it = infos_.find(name);
  if (it == infos_.end()) throw FormatError(origin_ + ": no tensor " + quote_name(name));
  return it->second;
}

template <typename T>
Tensor<T> SafetensorsReader::get(const std::string& name) const {
  const TensorInfo& ti = info(name);
  Tensor<T> out;
  out.shape = ti.shape;
  const size_t n = size_t(shape_numel(ti.shape));
  out.data.resize(n);
  const char* src = bytes_.data() + data_start_ + ti.begin;
  T* dst = out.data.data();
  switch (ti.dtype) {
    case DType::f64:
      for (size_t i = 0; i < n; ++i) dst[i] = T(load_le<double>(src + 8 * i));
      break;
    case DType::f32:
      for (size_t i = 0; i < n; ++i) dst[i] = T(load_le<float>(src + 4 * i));
      break;
    case DType::f16:
      for (size_t i = 0; i < n; ++i) dst[i] = T(half_to_float(load_le<uint16_t>(src + 2 * i)));
      break;
    case DType::bf16:
      // bfloat16 is the top half of a float32.
      for (size_t i = 0; i < n; ++i) dst[i] = T(std::bit_cast<float>(uint32_t(load_le<uint16_t>(src + 2 * i)) << 16));
      break;
    default:
      throw FormatError(origin_ + ": tensor " + quote_name(name) + " has dtype " + std::string(dtype_name(ti.dtype)) +
                        ", expected a float dtype (F64, F32, F16, BF16)");
  }
  return out;
}

template <typename T>
Tensor<T> SafetensorsReader::get(const std::string& name, const Shape& expected) const {
  const TensorInfo& ti = info(name);
  if (ti.shape != expected)
    throw FormatError(origin_ + ": tensor " + quote_name(name) + ": expected shape " + shape_str(expected) + ", got " +
                      shape_str(ti.shape));
  return get<T>(name);
}

template Tensor<float> SafetensorsReader::get<float>(const std::string&) const;
template Tensor<double> SafetensorsReader::get<double>(const std::string&) const;
template Tensor<float> SafetensorsReader::get<float>(const std::string&, const Shape&) const;
template Tensor<double> SafetensorsReader::get<double>(const std::string&, const Shape&) const;

std::vector<int64_t> SafetensorsReader::get_int(const std::string& name, Shape* shape) const {
  const TensorInfo& ti = info(name);
  const size_t n = size_t(shape_numel(ti.shape));
  const char* src = bytes_.data() + data_start_ + ti.begin;
  std::vector<int64_t> out(n);
  switch (ti.dtype) {
    case DType::i64:
      for (size_t i = 0; i < n; ++i) out[i] = load_le<int64_t>(src + 8 * i);
      break;
    case DType::i32:
      for (size_t i = 0; i < n; ++i) out[i] = load_le<int32_t>(src + 4 * i);
      break;
    case DType::i16:
      for (size_t i = 0; i < n; ++i) out[i] = load_le<int16_t>(src + 2 * i);
      break;
    case DType::i8:
      for (size_t i = 0; i < n; ++i) out[i] = load_le<int8_t>(src + i);
      break;
    case DType::u8:
      for (size_t i = 0; i < n; ++i) out[i] = load_le<uint8_t>(src + i);
      break;
    case DType::boolean:
      for (size_t i = 0; i < n; ++i) {
        const uint8_t b = load_le<uint8_t>(src + i);
        if (b > 1)
          throw FormatError(origin_ + ": tensor " + quote_name(name) + ": BOOL element " + std::to_string(i) + " is " +
                            std::to_string(b) + ", expected 0 or 1");
        out[i] = b;
      }
      break;
    default:
      throw FormatError(origin_ + ": tensor " + quote_name(name) + " has dtype " + std::string(dtype_name(ti.dtype)) +
                        ", expected an integer dtype (I64, I32, I16, I8, U8, BOOL)");
  }
  if (shape) *shape = ti.shape;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Writer

namespace {

template <typename V>
std::string raw_bytes(const std::vector<V>& values) {
  std::string s(values.size() * sizeof(V), '\0');
  if (!values.empty()) std::memcpy(s.data(), values.data(), s.size());
  return s;
}

void check_new_name(const std::string& name, size_t present) {
  if (name == "__metadata__") throw Error("SafetensorsWriter: '__metadata__' is reserved and cannot name a tensor");
  if (present) throw Error("SafetensorsWriter: tensor " + quote_name(name) + " added twice");
}

template <typename V>
void check_data(const std::string& name, const std::vector<V>& data, const Shape& shape) {
  if (int64_t(data.size()) != shape_numel(shape))
    throw ShapeError("SafetensorsWriter: tensor " + quote_name(name) + " has " + std::to_string(data.size()) +
                     " values for shape " + shape_str(shape) + " (" + std::to_string(shape_numel(shape)) + ")");
}

}  // namespace

void SafetensorsWriter::add(const std::string& name, const Tensor<float>& t) {
  check_new_name(name, entries_.count(name));
  check_data(name, t.data, t.shape);
  entries_[name] = Entry{DType::f32, t.shape, raw_bytes(t.data), {}};
}

void SafetensorsWriter::add_view(const std::string& name, const Tensor<float>& t) {
  check_new_name(name, entries_.count(name));
  check_data(name, t.data, t.shape);
  // No values: the view may have no pointer, and Entry::bytes() gives the empty owned string.
  entries_[name] = Entry{DType::f32, t.shape, {},
                         std::string_view(reinterpret_cast<const char*>(t.data.data()), t.data.size() * sizeof(float))};
}

void SafetensorsWriter::add(const std::string& name, const Tensor<double>& t) {
  check_new_name(name, entries_.count(name));
  check_data(name, t.data, t.shape);
  entries_[name] = Entry{DType::f64, t.shape, raw_bytes(t.data), {}};
}

void SafetensorsWriter::add_int(const std::string& name, const std::vector<int64_t>& values, const Shape& shape) {
  check_new_name(name, entries_.count(name));
  check_data(name, values, shape);
  entries_[name] = Entry{DType::i64, shape, raw_bytes(values), {}};
}

void SafetensorsWriter::add_bytes(const std::string& name, DType dtype, const Shape& shape, std::string bytes) {
  check_new_name(name, entries_.count(name));
  if (int64_t(bytes.size()) != shape_numel(shape) * dtype_size(dtype))
    throw ShapeError("safetensors: tensor \"" + name + "\": " + std::to_string(bytes.size()) + " bytes for shape " +
                     shape_str(shape) + " of " + std::string(dtype_name(dtype)));
  entries_[name] = Entry{dtype, shape, std::move(bytes), {}};
}

std::string SafetensorsWriter::header_bytes() const {
  // ordered_json keeps the conventional field order (dtype, shape, data_offsets) so the header
  // reads like one written by the reference implementation.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata_.empty()) {
    auto& meta = header["__metadata__"] = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata_) meta[k] = v;
  }
  uint64_t offset = 0;
  for (const auto& [name, e] : entries_) {
    auto& j = header[name];
    j["dtype"] = dtype_name(e.dtype);
    j["shape"] = e.shape;
    j["data_offsets"] = {offset, offset + e.bytes().size()};
    offset += e.bytes().size();
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::ordered_json::exception& e) {
    throw Error("SafetensorsWriter: a tensor name or metadata string is not valid UTF-8: " + one_line(e.what()));
  }
  // Padding keeps the data section 8-byte aligned for readers that map the file.
  text.append((8 - text.size() % 8) % 8, ' ');

  std::string out;
  const uint64_t n = text.size();
  out.append(reinterpret_cast<const char*>(&n), 8);
  out += text;
  return out;
}

std::string SafetensorsWriter::serialize() const {
  size_t size = 0;
  for (const auto& [name, e] : entries_) size += e.bytes().size();
  std::string out = header_bytes();
  out.reserve(out.size() + size);
  for (const auto& [name, e] : entries_) out += e.bytes();
  return out;
}

// The header and each tensor's bytes go to the file as they are: no joined copy of the whole.
void SafetensorsWriter::write(const std::string& path) const {
  const std::string header = header_bytes();
  std::vector<std::string_view> pieces{header};
  for (const auto& [name, e] : entries_) pieces.emplace_back(e.bytes());
  write_file_atomic(path, pieces, "the safetensors file");
}

}  // namespace recur

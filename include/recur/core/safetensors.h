// recur/core/safetensors.h - reading and writing the safetensors format (huggingface/safetensors):
//   [8-byte little-endian header length N][N bytes of JSON header][raw little-endian data]
// The header maps tensor names to {"dtype", "shape", "data_offsets": [begin, end]} (offsets
// relative to the data section) and may hold "__metadata__": {string: string}.
//
// A file is untrusted input: the reader checks the header length against the file size, the
// JSON's structure, every dtype, that shape * dtype size == end - begin without overflow, that
// offsets lie inside the data section, that tensors neither overlap nor leave gaps, and reports
// the file name and the offending tensor in one line (FormatError). Duplicate keys anywhere in
// the header are refused too: a JSON parser that keeps the last one would silently change
// which bytes a name refers to. Multi-byte values are little-endian, so a little-endian host
// is required (checked at compile time).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "recur/core/tensor.h"

namespace recur {

enum class DType { f64, f32, f16, bf16, i64, i32, i16, i8, u8, boolean };
std::string_view dtype_name(DType t);  // safetensors spelling: "F64", "F32", "BF16", "I64", "BOOL"...
int64_t dtype_size(DType t);

// Largest JSON header accepted; real headers are a few hundred bytes per tensor, so this
// only stops a corrupt or hostile length from allocating gigabytes.
inline constexpr uint64_t kSafetensorsMaxHeaderBytes = 100'000'000;

struct TensorInfo {
  DType dtype;
  Shape shape;
  uint64_t begin = 0, end = 0;  // byte offsets in the data section
};

class SafetensorsReader {
 public:
  // Reads and validates the whole file; throws FormatError("<path>: ...").
  static SafetensorsReader open(const std::string& path);
  // Same for bytes already in memory; `origin` names them in errors.
  static SafetensorsReader from_bytes(std::string bytes, const std::string& origin);

  const std::string& origin() const { return origin_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  std::vector<std::string> names() const;  // sorted
  bool contains(const std::string& name) const { return infos_.count(name) != 0; }
  const TensorInfo& info(const std::string& name) const;  // throws FormatError if absent

  // Converts any float dtype (F64/F32/F16/BF16) to T; integer dtypes are refused.
  // The second overload also checks the shape and names both in the error. A file that does
  // not hold what the caller expects is a bad file, so every error here is FormatError.
  template <typename T>
  Tensor<T> get(const std::string& name) const;
  template <typename T>
  Tensor<T> get(const std::string& name, const Shape& expected) const;
  // Integer tensors (I64/I32/I16/I8/U8/BOOL) as int64.
  std::vector<int64_t> get_int(const std::string& name, Shape* shape = nullptr) const;

 private:
  std::string origin_;
  std::string bytes_;  // whole file
  uint64_t data_start_ = 0;
  std::map<std::string, TensorInfo> infos_;
  std::map<std::string, std::string> metadata_;
};

class SafetensorsWriter {
 public:
  void set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }
  // Stores the tensor in its own precision (F32 for float, F64 for double). Throws ShapeError
  // if data does not match shape, Error if the name is "__metadata__" or was already added.
  void add(const std::string& name, const Tensor<float>& t);
  void add(const std::string& name, const Tensor<double>& t);
  // add without the copy: the writer keeps a pointer to t's values, which must stay alive and
  // unchanged until the last write() or serialize() (a checkpoint's few hundred MB go to the
  // file straight from the model's and the optimizer's buffers).
  void add_view(const std::string& name, const Tensor<float>& t);
  void add_int(const std::string& name, const std::vector<int64_t>& values, const Shape& shape);  // I64
  // Little-endian bytes already in `dtype` (I8 and BF16 weights of an export, quantize.h).
  // ShapeError unless bytes.size() == numel(shape) * dtype_size(dtype).
  void add_bytes(const std::string& name, DType dtype, const Shape& shape, std::string bytes);
  std::string serialize() const;  // header padded to 8 bytes with spaces, tensors in name order
  // Atomic: writes <path>.tmp.<pid>, flushes and fsyncs it, then renames over <path>.
  // Throws Error("<path>: <what failed>: <strerror>") and leaves no temporary file behind.
  void write(const std::string& path) const;

 private:
  // The 8-byte header length and the header, padded: what comes before the tensors' bytes.
  std::string header_bytes() const;
  struct Entry {
    DType dtype;
    Shape shape;
    std::string owned;      // the bytes, unless `view` points at the caller's
    std::string_view view;  // add_view's; empty data() otherwise
    std::string_view bytes() const { return view.data() ? view : std::string_view(owned); }
  };
  std::map<std::string, Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace recur

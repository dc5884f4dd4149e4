// Safetensors reader/writer: round trips, conversions, and one malformed file per check the
// reader promises, each asserting on the phrase that tells a user what is wrong.
#include "recur/core/safetensors.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>

namespace recur {
namespace {

namespace fs = std::filesystem;

const std::string kOrigin = "bad_model.safetensors";

// A scratch directory per test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = fs::temp_directory_path() /
            ("recur_st_" + std::to_string(::getpid()) + "_" + info->test_suite_name() + "_" + info->name());
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  size_t entries() const { return size_t(std::distance(fs::directory_iterator(path_), fs::directory_iterator())); }

 private:
  fs::path path_;
};

std::string le64(uint64_t n) {
  std::string s(8, '\0');
  std::memcpy(s.data(), &n, 8);
  return s;
}

// [length][header][data] with the length taken from the header as given.
std::string file_bytes(const std::string& header, const std::string& data) { return le64(header.size()) + header + data; }

template <typename V>
std::string raw(std::initializer_list<V> values) {
  std::string s;
  for (V v : values) s.append(reinterpret_cast<const char*>(&v), sizeof v);
  return s;
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
}

// Runs f, which must throw E; the message must be one line starting with "<origin>: " and
// contain every phrase.
template <typename E = FormatError>
void expect_error(const std::function<void()>& f, const std::string& origin, std::vector<std::string> phrases) {
  try {
    f();
    ADD_FAILURE() << "no exception; expected one containing '" << phrases.at(0) << "'";
  } catch (const E& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind(origin + ": ", 0), 0u) << msg;
    EXPECT_TRUE(std::none_of(msg.begin(), msg.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20; }))
        << "control character in: " << msg;
    for (const auto& p : phrases) EXPECT_NE(msg.find(p), std::string::npos) << "missing '" << p << "' in: " << msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
  }
}

// from_bytes on a hand-made header and data section.
void expect_bad(const std::string& header, const std::string& data, std::vector<std::string> phrases) {
  const std::string bytes = file_bytes(header, data);
  expect_error([&] { SafetensorsReader::from_bytes(bytes, kOrigin); }, kOrigin, std::move(phrases));
}

// A well-formed two-tensor file: "a" F32 [2] at [0, 8), "b" F32 [1] at [8, 12).
const std::string kTwoTensors =
    R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})";

TEST(Safetensors, RoundTripFloatDoubleIntMetadata) {
  TempDir dir;
  const std::string path = dir.file("model.safetensors");
  Tensor<float> f({2, 3});
  for (int i = 0; i < 6; ++i) f.data[size_t(i)] = float(i) * 0.25f - 1.0f / 3.0f;
  f.data[5] = std::numeric_limits<float>::denorm_min();
  Tensor<double> d({4});
  d.data = {M_PI, -0.0, 1e300, std::numeric_limits<double>::infinity()};
  Tensor<float> scalar(Shape{}, 7.5f);  // rank 0: one value
  Tensor<double> empty({0, 3});
  const std::vector<int64_t> ints = {-5, 0, int64_t(1) << 62};

  SafetensorsWriter w;
  w.add("zeta.weight", f);
  w.add("alpha", d);
  w.add("scalar", scalar);
  w.add("empty", empty);
  w.add_int("tokens", ints, {3, 1});
  w.set_metadata("format", "pt");
  w.set_metadata("note", "line \"quoted\" \xc3\xa9");
  w.write(path);
  EXPECT_EQ(dir.entries(), 1u) << "temporary file left behind";
  {
    // write() sends the header and each tensor to the file without joining them: the same bytes.
    std::ifstream in(path, std::ios::binary);
    const std::string file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(file, w.serialize());
  }

  const auto r = SafetensorsReader::open(path);
  EXPECT_EQ(r.origin(), path);
  EXPECT_EQ(r.names(), (std::vector<std::string>{"alpha", "empty", "scalar", "tokens", "zeta.weight"}));
  EXPECT_EQ(r.metadata().at("format"), "pt");
  EXPECT_EQ(r.metadata().at("note"), "line \"quoted\" \xc3\xa9");
  EXPECT_EQ(r.info("zeta.weight").dtype, DType::f32);
  EXPECT_EQ(r.info("alpha").dtype, DType::f64);
  EXPECT_EQ(r.info("tokens").dtype, DType::i64);

  const auto f2 = r.get<float>("zeta.weight", {2, 3});
  EXPECT_EQ(f2.shape, f.shape);
  EXPECT_EQ(std::memcmp(f2.ptr(), f.ptr(), 6 * sizeof(float)), 0);
  const auto d2 = r.get<double>("alpha");
  EXPECT_EQ(d2.shape, d.shape);
  EXPECT_EQ(std::memcmp(d2.ptr(), d.ptr(), 4 * sizeof(double)), 0);  // -0.0 and inf exactly
  EXPECT_EQ(r.get<float>("scalar").shape, Shape{});
  EXPECT_EQ(r.get<float>("scalar").data, std::vector<float>{7.5f});
  EXPECT_EQ(r.get<double>("empty").shape, (Shape{0, 3}));
  EXPECT_TRUE(r.get<double>("empty").empty());
  Shape s;
  EXPECT_EQ(r.get_int("tokens", &s), ints);
  EXPECT_EQ(s, (Shape{3, 1}));
  // Float widths convert both ways.
  EXPECT_EQ(r.get<double>("zeta.weight").data[1], double(f.data[1]));
  EXPECT_EQ(r.get<float>("alpha").data[0], float(M_PI));
}

TEST(Safetensors, SerializedLayoutIsCanonical) {
  SafetensorsWriter w;
  w.add("b", Tensor<float>({3}, 1.0f));
  w.add("a", Tensor<double>({1}, 2.0));
  const std::string bytes = w.serialize();
  uint64_t n;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ(n % 8, 0u);
  ASSERT_EQ(bytes.size(), 8 + n + 8 + 12);
  const std::string header = bytes.substr(8, n);
  EXPECT_EQ(header.front(), '{');
  EXPECT_EQ(header.find_last_not_of(' '), header.rfind('}'));  // only spaces pad
  // Data in name order: "a" first.
  EXPECT_NE(header.find(R"("a":{"dtype":"F64","shape":[1],"data_offsets":[0,8]})"), std::string::npos) << header;
  EXPECT_NE(header.find(R"("b":{"dtype":"F32","shape":[3],"data_offsets":[8,20]})"), std::string::npos) << header;
  EXPECT_EQ(bytes.substr(8 + n, 8), raw<double>({2.0}));
}

TEST(Safetensors, WriteReplacesExistingFileAtomically) {
  TempDir dir;
  const std::string path = dir.file("m.safetensors");
  SafetensorsWriter a, b;
  a.add("x", Tensor<float>({1}, 1.0f));
  b.add("y", Tensor<float>({2}, 2.0f));
  a.write(path);
  b.write(path);
  EXPECT_EQ(SafetensorsReader::open(path).names(), std::vector<std::string>{"y"});
  EXPECT_EQ(dir.entries(), 1u);
}

TEST(Safetensors, HalfAndBfloat16ConvertToFloat) {
  // F16: 1, -2, 65504 (max), 2^-24 (smallest subnormal), +inf, 0.5.
  // BF16: 1, -3.5.
  const std::string header =
      R"({"h":{"dtype":"F16","shape":[6],"data_offsets":[0,12]},"b":{"dtype":"BF16","shape":[2],"data_offsets":[12,16]}})";
  const std::string data = raw<uint16_t>({0x3C00, 0xC000, 0x7BFF, 0x0001, 0x7C00, 0x3800, 0x3F80, 0xC060});
  const auto r = SafetensorsReader::from_bytes(file_bytes(header, data), "half.safetensors");
  const auto h = r.get<float>("h");
  EXPECT_EQ(h.data, (std::vector<float>{1.0f, -2.0f, 65504.0f, std::ldexp(1.0f, -24),
                                        std::numeric_limits<float>::infinity(), 0.5f}));
  EXPECT_EQ(r.get<double>("b").data, (std::vector<double>{1.0, -3.5}));
  const std::string nan_file =
      file_bytes(R"({"n":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}})", raw<uint16_t>({0x7E00}));
  EXPECT_TRUE(std::isnan(SafetensorsReader::from_bytes(nan_file, "nan").get<float>("n").data[0]));
}

TEST(Safetensors, IntegerDtypes) {
  const std::string header =
      R"({"i":{"dtype":"I32","shape":[2],"data_offsets":[0,8]},"u":{"dtype":"U8","shape":[2],"data_offsets":[8,10]},)"
      R"("m":{"dtype":"BOOL","shape":[2],"data_offsets":[10,12]},"s":{"dtype":"I8","shape":[1],"data_offsets":[12,13]}})";
  const std::string data = raw<int32_t>({-7, 100000}) + raw<uint8_t>({255, 0}) + raw<uint8_t>({1, 0}) + raw<int8_t>({-128});
  const auto r = SafetensorsReader::from_bytes(file_bytes(header, data), kOrigin);
  EXPECT_EQ(r.get_int("i"), (std::vector<int64_t>{-7, 100000}));
  EXPECT_EQ(r.get_int("u"), (std::vector<int64_t>{255, 0}));
  EXPECT_EQ(r.get_int("m"), (std::vector<int64_t>{1, 0}));
  EXPECT_EQ(r.get_int("s"), (std::vector<int64_t>{-128}));
  expect_error([&] { r.get<float>("i"); }, kOrigin, {"tensor 'i'", "dtype I32", "expected a float dtype"});
  const auto f = SafetensorsReader::from_bytes(file_bytes(kTwoTensors, std::string(12, '\0')), kOrigin);
  expect_error([&] { f.get_int("a"); }, kOrigin, {"tensor 'a'", "dtype F32", "expected an integer dtype"});
  const std::string bad_bool =
      file_bytes(R"({"m":{"dtype":"BOOL","shape":[1],"data_offsets":[0,1]}})", raw<uint8_t>({2}));
  expect_error([&] { SafetensorsReader::from_bytes(bad_bool, kOrigin).get_int("m"); }, kOrigin,
               {"tensor 'm'", "expected 0 or 1"});
}

TEST(Safetensors, EmptyFileWithOnlyMetadataIsValid) {
  SafetensorsWriter w;
  w.set_metadata("k", "v");
  const auto r = SafetensorsReader::from_bytes(w.serialize(), "meta.safetensors");
  EXPECT_TRUE(r.names().empty());
  EXPECT_EQ(r.metadata().at("k"), "v");
}

TEST(Safetensors, GetChecksShapeAndPresence) {
  Tensor<float> t({2, 3}, 1.0f);
  SafetensorsWriter w;
  w.add("w", t);
  const auto r = SafetensorsReader::from_bytes(w.serialize(), kOrigin);
  expect_error([&] { r.get<float>("w", {3, 2}); }, kOrigin, {"tensor 'w'", "expected shape [3, 2], got [2, 3]"});
  expect_error([&] { r.get<double>("w", {6}); }, kOrigin, {"expected shape [6], got [2, 3]"});
  expect_error([&] { r.get<float>("nope"); }, kOrigin, {"no tensor 'nope'"});
  expect_error([&] { r.info("nope"); }, kOrigin, {"no tensor 'nope'"});
  EXPECT_FALSE(r.contains("nope"));
}

// --- Malformed files: the outer frame ---------------------------------------------------

TEST(SafetensorsMalformed, TruncatedBeforeHeaderLength) {
  TempDir dir;
  const std::string path = dir.file("short.safetensors");
  write_file(path, std::string("\x10\0\0", 3));
  expect_error([&] { SafetensorsReader::open(path); }, path, {"3 bytes", "too short"});
  write_file(dir.file("empty.safetensors"), "");
  expect_error([&] { SafetensorsReader::open(dir.file("empty.safetensors")); }, dir.file("empty.safetensors"),
               {"0 bytes", "too short"});
}

TEST(SafetensorsMalformed, TruncatedInsideData) {
  TempDir dir;
  const std::string path = dir.file("cut.safetensors");
  SafetensorsWriter w;
  w.add("weight", Tensor<float>({4}, 1.0f));
  const std::string bytes = w.serialize();
  write_file(path, bytes.substr(0, bytes.size() - 3));
  expect_error([&] { SafetensorsReader::open(path); }, path, {"tensor 'weight'", "out of range", "13 bytes"});
}

TEST(SafetensorsMalformed, MissingFile) {
  TempDir dir;
  const std::string path = dir.file("absent.safetensors");
  expect_error([&] { SafetensorsReader::open(path); }, path, {"cannot open", "No such file"});
}

// A device or a pipe is refused before reading: /dev/zero was read until memory ran out.
TEST(SafetensorsMalformed, NotARegularFile) {
  expect_error([&] { SafetensorsReader::open("/dev/zero"); }, "/dev/zero", {"not a regular file"});
  TempDir dir;
  expect_error([&] { SafetensorsReader::open(dir.file("")); }, dir.file(""), {"not a regular file"});
}

// Text where the header length should be: say what the file is not, rather than quote the
// length the text spells (issue 15: "header length 2314885530818453536 exceeds the limit").
TEST(SafetensorsMalformed, TextFileIsNotASafetensorsFile) {
  expect_error([&] { SafetensorsReader::from_bytes("        The quick brown fox\n", kOrigin); }, kOrigin,
               {"not a safetensors file", "starts with text"});
  expect_error([&] { SafetensorsReader::from_bytes("id,f1,f2\n1,0.5,0.25\n", kOrigin); }, kOrigin,
               {"not a safetensors file"});
}

TEST(SafetensorsMalformed, HeaderLengthLargerThanFile) {
  const std::string bytes = le64(100) + "{}";
  expect_error([&] { SafetensorsReader::from_bytes(bytes, kOrigin); }, kOrigin,
               {"header length 100 exceeds the file size", "2 bytes"});
}

TEST(SafetensorsMalformed, HugeHeaderLength) {
  const std::string bytes = le64(uint64_t(1) << 63) + "{}";
  expect_error([&] { SafetensorsReader::from_bytes(bytes, kOrigin); }, kOrigin,
               {"header length 9223372036854775808", "exceeds the limit"});
}

TEST(SafetensorsMalformed, HeaderNotJson) {
  expect_bad("{\"a\": nope}", "", {"header: JSON syntax error at byte"});
  expect_bad("", "", {"header: JSON syntax error at byte"});
  expect_bad("{} trailing", "", {"header: JSON syntax error at byte"});
  // Newlines inside the header must not leak into the one-line message.
  expect_bad("{\n\n", "", {"header: JSON syntax error at byte"});
  expect_bad("\xff\x01", "", {"header: JSON syntax error at byte"});
}

TEST(SafetensorsMalformed, HeaderNotObject) {
  expect_bad("[1, 2]", "", {"header JSON is an array of 2 elements, expected an object"});
  expect_bad("42", "", {"header JSON is an integer 42, expected an object"});
}

TEST(SafetensorsMalformed, DeepNesting) {
  expect_bad(std::string(1000, '[') + std::string(1000, ']'), "", {"nests deeper than"});
}

TEST(SafetensorsMalformed, DuplicateKeys) {
  expect_bad(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
             raw<float>({1}), {"duplicate key 'a'"});
  expect_bad(R"({"a":{"dtype":"F32","dtype":"F64","shape":[1],"data_offsets":[0,4]}})", raw<float>({1}),
             {"duplicate key 'dtype'"});
}

// --- Malformed entries ---------------------------------------------------------------------

TEST(SafetensorsMalformed, EntryStructure) {
  expect_bad(R"({"a":[1]})", "", {"tensor 'a'", "entry is an array of 1 elements, expected an object"});
  expect_bad(R"({"a":{"dtype":"F32","shape":[1]}})", raw<float>({1}), {"tensor 'a'", "missing field 'data_offsets'"});
  expect_bad(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"extra":1}})", raw<float>({1}),
             {"tensor 'a'", "unexpected field 'extra'"});
  expect_bad(R"({"a":{"dtype":7,"shape":[1],"data_offsets":[0,4]}})", raw<float>({1}),
             {"tensor 'a'", "dtype is an integer 7, expected a string"});
}

TEST(SafetensorsMalformed, UnknownDtype) {
  expect_bad(R"({"w":{"dtype":"F99","shape":[1],"data_offsets":[0,4]}})", raw<float>({1}),
             {"tensor 'w'", "unknown dtype 'F99'", "expected one of F64, F32"});
}

TEST(SafetensorsMalformed, BadShapes) {
  expect_bad(R"({"w":{"dtype":"F32","shape":[2,-3],"data_offsets":[0,4]}})", raw<float>({1}),
             {"tensor 'w'", "shape[1] is negative (-3)"});
  expect_bad(R"({"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", raw<float>({1}),
             {"tensor 'w'", "shape[0] is a number 1.5, expected a non-negative integer"});
  expect_bad(R"({"w":{"dtype":"F32","shape":"[1]","data_offsets":[0,4]}})", raw<float>({1}),
             {"tensor 'w'", "shape is a string, expected an array"});
  expect_bad(R"({"w":{"dtype":"F32","shape":[18446744073709551615],"data_offsets":[0,4]}})", raw<float>({1}),
             {"tensor 'w'", "larger than 2^63 - 1"});
}

TEST(SafetensorsMalformed, ShapeProductOverflow) {
  // 2^32 * 2^32 * 4 bytes wraps to 0 in 64 bits, which would match empty offsets.
  expect_bad(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}})", "",
             {"tensor 'w'", "overflows 64 bits"});
  // 2^62 elements fit in int64 but 2^62 * 4 bytes do not.
  expect_bad(R"({"w":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,0]}})", "",
             {"tensor 'w'", "overflows 64 bits"});
}

TEST(SafetensorsMalformed, ShapeSizeMismatch) {
  expect_bad(R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}})", std::string(20, '\0'),
             {"tensor 'w'", "shape [2, 3] of F32 needs 24 bytes", "span 20"});
}

TEST(SafetensorsMalformed, BadDataOffsets) {
  expect_bad(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}})", raw<float>({1}),
             {"tensor 'w'", "data_offsets is an array of 3 elements, expected an array [begin, end]"});
  expect_bad(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}})", raw<float>({1}),
             {"tensor 'w'", "expected non-negative integers"});
  expect_bad(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})", std::string(8, '\0'),
             {"tensor 'w'", "data_offsets [8, 4] has begin > end"});
}

TEST(SafetensorsMalformed, OffsetsOutOfRange) {
  expect_bad(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", std::string(8, '\0'),
             {"tensor 'w'", "data_offsets [4, 12] out of range", "8 bytes"});
}

TEST(SafetensorsMalformed, OverlappingTensors) {
  expect_bad(
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
      std::string(12, '\0'), {"tensors 'a' and 'b' overlap"});
  // The same bytes named twice are an overlap too.
  expect_bad(
      R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
      std::string(4, '\0'), {"tensors 'a' and 'b' overlap"});
}

TEST(SafetensorsMalformed, GapsAndTrailingBytes) {
  expect_bad(
      R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
      std::string(12, '\0'), {"gap of 4 unused bytes", "between tensors 'a' and 'b'"});
  expect_bad(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", std::string(8, '\0'),
             {"gap of 4 unused bytes", "before the first tensor 'a'"});
  expect_bad(kTwoTensors, std::string(13, '\0'), {"1 trailing bytes after the last tensor 'b'"});
  expect_bad("{}", "x", {"1 trailing bytes"});
  // Empty tensors anywhere on a boundary are fine.
  const std::string ok =
      R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"e":{"dtype":"F64","shape":[0],"data_offsets":[4,4]},)"
      R"("f":{"dtype":"F64","shape":[3,0],"data_offsets":[0,0]}})";
  EXPECT_EQ(SafetensorsReader::from_bytes(file_bytes(ok, raw<float>({1})), kOrigin).names().size(), 3u);
}

TEST(SafetensorsMalformed, BadMetadata) {
  expect_bad(R"({"__metadata__":{"k":3}})", "", {"__metadata__['k'] is an integer 3, expected a string"});
  expect_bad(R"({"__metadata__":["k"]})", "", {"__metadata__ is an array of 1 elements, expected an object"});
}

TEST(SafetensorsMalformed, HostileNameStaysOneLine) {
  expect_bad(R"({"a\nFAKE: b":{"dtype":"X","shape":[],"data_offsets":[0,0]}})", "", {"tensor 'a\\x0aFAKE: b'"});
}

// --- Writer errors ---------------------------------------------------------------------------

// add_view writes the caller's values without copying them: the same bytes as add, read when
// the file is written (a change before write() shows), and the same checks.
TEST(SafetensorsWriter, ViewsWriteTheSameBytesAsCopies) {
  Tensor<float> big({3, 5}), none({0});
  for (size_t i = 0; i < big.data.size(); ++i) big.data[i] = 0.25f * float(i) - 1.0f;
  SafetensorsWriter copied, viewed;
  copied.add("big", big);
  copied.add("none", none);
  copied.add("d", Tensor<double>({2}, 3.0));
  viewed.add_view("big", big);
  viewed.add_view("none", none);
  viewed.add("d", Tensor<double>({2}, 3.0));
  EXPECT_EQ(viewed.serialize(), copied.serialize());
  big.data[7] = 42.0f;  // a view reads at write time, a copy kept the old value
  EXPECT_NE(viewed.serialize(), copied.serialize());
  TempDir dir;
  viewed.write(dir.file("v.safetensors"));
  EXPECT_EQ(SafetensorsReader::open(dir.file("v.safetensors")).get<float>("big").data, big.data);
  EXPECT_THROW(viewed.add_view("big", big), Error);
  Tensor<float> bad({2, 2});
  bad.data.pop_back();
  EXPECT_THROW(viewed.add_view("bad", bad), ShapeError);
}

TEST(SafetensorsWriter, RejectsBadInput) {
  SafetensorsWriter w;
  w.add("a", Tensor<float>({1}));
  EXPECT_THROW(w.add("a", Tensor<double>({1})), Error);
  EXPECT_THROW(w.add("__metadata__", Tensor<float>({1})), Error);
  Tensor<float> bad({2, 2});
  bad.data.pop_back();
  EXPECT_THROW(w.add("bad", bad), ShapeError);
  EXPECT_THROW(w.add_int("i", {1, 2, 3}, {2}), ShapeError);
}

TEST(SafetensorsWriter, WriteFailureNamesPathAndLeavesNothing) {
  TempDir dir;
  const std::string path = dir.file("no_such_dir/m.safetensors");
  SafetensorsWriter w;
  w.add("a", Tensor<float>({1}));
  expect_error<Error>([&] { w.write(path); }, path, {"No such file or directory"});
  EXPECT_EQ(dir.entries(), 0u);
  // Renaming over a directory fails after the temporary file was written: it must be removed.
  const std::string as_dir = dir.file("taken");
  fs::create_directories(fs::path(as_dir) / "child");
  expect_error<Error>([&] { w.write(as_dir); }, as_dir, {"cannot write the safetensors file", "Is a directory"});
  EXPECT_EQ(dir.entries(), 1u);
}

// A header of many small tensors is read in time linear in their number. nlohmann's callback
// parser, used before, rescanned an object's members after each nested value: 40,000 tensors
// took 100 s and the 200,000 here would run past the suite's 900 s test timeout.
TEST(SafetensorsLarge, ManyTensorsOpenInLinearTime) {
  const int n = 200000;
  std::string header = "{";
  for (int i = 0; i < n; ++i) {
    if (i) header += ',';
    header += "\"t" + std::to_string(i) + "\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[" +
              std::to_string(4 * i) + "," + std::to_string(4 * i + 4) + "]}";
  }
  header += "}";
  const SafetensorsReader rd = SafetensorsReader::from_bytes(le64(header.size()) + header + std::string(4 * size_t(n), '\0'), kOrigin);
  EXPECT_EQ(rd.names().size(), size_t(n));
  EXPECT_EQ(rd.info("t199999").begin, uint64_t(4) * 199999);
}

}  // namespace
}  // namespace recur

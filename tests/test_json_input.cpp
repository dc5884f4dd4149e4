// The one JSON entry point (src/core/json_parse.h) and the readers built on it: deeply nested
// documents and numbers past a double's range are refused with one line naming the origin, never
// a stack overflow or nlohmann's own message. Each case below crashed or printed
// "[json.exception.out_of_range.406] ..." before the entry point existed.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>

#include "cli_run.h"
#include "json_fields.h"
#include "json_parse.h"
#include "test_util.h"
#include "recur/core/error.h"
#include "recur/core/safetensors.h"
#include "recur/data/text_data.h"
#include "recur/data/vocab.h"

using namespace recur;

namespace {

std::string nested_array(int depth) { return std::string(size_t(depth), '[') + std::string(size_t(depth), ']'); }

template <typename Fn>
void expect_format_error(Fn&& fn, std::initializer_list<std::string> parts) {
  test::expect_one_line_error<FormatError>(fn, parts);
}

TEST(JsonInput, DepthIsLimited) {
  EXPECT_NO_THROW(parse_json(nested_array(kMaxJsonDepth), "ok.json", "an array"));
  expect_format_error([] { parse_json(nested_array(kMaxJsonDepth + 1), "deep.json", "an array"); },
                      {"deep.json", "nests deeper than 64 levels"});
  // 100,000 levels: what overflowed the stack in the readers that walk or dump the document.
  const std::string deep = R"({"step": 1, "batcher": )" + nested_array(100000) + "}";
  expect_format_error([&] { parse_ordered_json(deep, "m.safetensors: metadata \"train_state\"", "an object"); },
                      {"m.safetensors: metadata \"train_state\"", "nests deeper"});
  expect_format_error([&] { JsonFields f(std::string_view(deep), "m.safetensors: config"); }, {"m.safetensors: config", "nests deeper"});
  expect_format_error([&] { Vocab::from_json(deep, "m.safetensors: vocab"); }, {"m.safetensors: vocab", "nests deeper"});
}

TEST(JsonInput, NumbersPastADoubleAreRefusedByOrigin) {
  expect_format_error([] { parse_json(R"({"lr": 1e400})", "m.safetensors: config", "an object"); },
                      {"m.safetensors: config", "1e400", "out of range"});
  expect_format_error([] { JsonFields f(std::string_view(R"({"x": -1e400})"), "ck: train_state"); }, {"ck: train_state", "out of range"});
  expect_format_error([] { Vocab::from_json(R"({"format": 1e999})", "ck: vocab"); }, {"ck: vocab", "out of range"});
  // A stream batcher's saved state goes through the same entry point.
  const std::vector<int32_t> ids(100, 1);
  StreamBatcher sb(ids, StreamOptions{.batch_size = 2, .seq_len = 4, .drop_last = false});
  expect_format_error([&] { sb.set_state_json(R"({"mode": "stream", "epoch": 1e400})", "ck: batcher"); },
                      {"ck: batcher", "out of range"});
}

TEST(JsonInput, SyntaxErrorsNameTheOriginAndByte) {
  expect_format_error([] { parse_json(R"({"a": )", "f.json", "an object"); }, {"f.json", "JSON syntax error at byte", "expected an object"});
  expect_format_error([] { parse_json("", "empty.json", "an object"); }, {"empty.json", "syntax error"});
}

// The reported crash, end to end: v1 checkpoints whose metadata holds a document nested 100,000
// deep make `recur info` and `recur sample` exit 1 with one line instead of dying of SIGSEGV.
TEST(JsonInput, DeeplyNestedCheckpointMetadataIsAnErrorNotACrash) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("recur_json_input_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const fs::path fixtures = fs::path(RECUR_SOURCE_DIR) / "tests" / "fixtures" / "v1";
  const std::string deep = "{\"x\": " + nested_array(100000) + "}";
  for (const char* model : {"lm_char", "tagger"}) {
    for (const char* key : {"train_state", "vocab", "config", "task", "model"}) {
      const SafetensorsReader rd = SafetensorsReader::open((fixtures / (std::string(model) + ".safetensors")).string());
      if (!rd.metadata().count(key)) continue;
      SafetensorsWriter w;
      for (const auto& [k, v] : rd.metadata()) w.set_metadata(k, k == key ? deep : v);
      for (const auto& name : rd.names()) w.add(name, rd.get<float>(name));
      const std::string bad = (dir / "bad.safetensors").string();
      w.write(bad);
      for (const char* cmd : {"info", "sample"}) {
        const auto r = recur::test::run_recur(std::string(cmd) + " '" + bad + "'", dir);
        EXPECT_EQ(r.rc, 1) << model << " " << key << " " << cmd << ": " << r.err;
        EXPECT_NE(r.err.find("nests deeper"), std::string::npos) << model << " " << key << " " << cmd << ": " << r.err;
        EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
      }
    }
  }
  fs::remove_all(dir);
}

}  // namespace

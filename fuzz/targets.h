// fuzz/targets.h - one entry function per reader of untrusted input, shared by the libFuzzer
// executables (fuzz/fuzz_<name>.cpp) and the replay test (tests/test_fuzz_regressions.cpp).
//
// Each function feeds `data` to one reader through the public API (through a scratch file where
// the reader takes a path) and returns 0. An exception derived from recur::Error is the expected
// answer to bad input and is swallowed; anything else (another exception, a crash, a sanitizer
// report, a hang) leaves the function and is a finding.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace recur::fuzz {

using FuzzEntry = int (*)(const uint8_t* data, size_t size);

struct FuzzTarget {
  const char* name;  // fuzz/corpus/<name>/, fuzz/regressions/<name>/, executable fuzz_<name>
  FuzzEntry entry;
};

// Every target, in the order of docs/reliability.md.
std::span<const FuzzTarget> fuzz_targets();

int fuzz_safetensors(const uint8_t* data, size_t size);
int fuzz_checkpoint(const uint8_t* data, size_t size);
int fuzz_task_checkpoint(const uint8_t* data, size_t size);
int fuzz_model_file(const uint8_t* data, size_t size);
int fuzz_vocab(const uint8_t* data, size_t size);
int fuzz_text(const uint8_t* data, size_t size);
int fuzz_conll(const uint8_t* data, size_t size);
int fuzz_table(const uint8_t* data, size_t size);
int fuzz_pairs(const uint8_t* data, size_t size);
int fuzz_generate(const uint8_t* data, size_t size);
int fuzz_features(const uint8_t* data, size_t size);
int fuzz_word_vectors(const uint8_t* data, size_t size);
int fuzz_midi(const uint8_t* data, size_t size);
int fuzz_jsb(const uint8_t* data, size_t size);
int fuzz_json_config(const uint8_t* data, size_t size);
int fuzz_prepared(const uint8_t* data, size_t size);           // a prepared-corpus shard
int fuzz_prepared_manifest(const uint8_t* data, size_t size);  // its manifest.json
int fuzz_prepared_task(const uint8_t* data, size_t size);      // a prepared task-corpus shard (prepare --task)

}  // namespace recur::fuzz

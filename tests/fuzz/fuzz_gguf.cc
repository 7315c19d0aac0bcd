// Fuzz target: the GGUF reader and everything that reads a parsed file without running the model.
// The input is a whole file. Parse, then walk every metadata value, compute statistics of the small
// tensors the engine can dequantize, build the tokenizer (and encode/decode a little text), read the
// config and its tensor table, run `validate` (statistics of every tensor it knows), and pick the chat
// template. bitnet::Error is the only acceptable failure; anything else (a crash, a sanitizer report,
// another exception) is a bug.
#include <cstdint>
#include <string>
#include <vector>

#include "bitnet/base/error.h"
#include "bitnet/format/gguf.h"
#include "bitnet/format/tensor_stats.h"
#include "bitnet/model/arch.h"
#include "bitnet/model/validate.h"
#include "bitnet/model/vocab_gguf.h"
#include "bitnet/text/chat_template.h"
#include "bitnet/text/tokenizer.h"

namespace {

using namespace bitnet;

volatile double g_sink;  // keeps the walk from being optimised away

void walk_array(const GgufArray& a) {
  double acc = 0;
  if (a.elem == GgufType::ARRAY) {
    for (const GgufArray& inner : a.arrays) walk_array(inner);
  } else if (a.elem == GgufType::STRING) {
    for (const std::string& s : a.strings) acc += static_cast<double>(s.size());
  } else {
    for (uint64_t i = 0; i < a.count; ++i) acc += a.float_at(i) + static_cast<double>(a.is_integer() ? a.int_at(i) : 0);
  }
  g_sink = acc;
}

void walk_metadata(const GgufFile& f) {
  for (const GgufKV& kv : f.kvs()) {
    const GgufValue& v = kv.value;
    if (v.type == GgufType::ARRAY) {
      walk_array(v.arr);
    } else if (auto x = v.as_float()) {
      g_sink = *x;
    }
    // The typed getters throw Error for a wrong type; each key through each getter.
    try { f.get_string(kv.key); } catch (const Error&) {}
    try { f.get_int(kv.key); } catch (const Error&) {}
    try { f.get_float(kv.key); } catch (const Error&) {}
    try { f.get_bool(kv.key); } catch (const Error&) {}
  }
}

void walk_tensors(const GgufFile& f) {
  for (const GgufTensorInfo& t : f.tensors()) {
    g_sink = static_cast<double>(t.n_elements());
    // Small tensors only: validate_model below computes the statistics of every tensor it knows, and
    // statistics dominate the time per input.
    if (!type_traits(t.type).computable || t.n_elements() > 4096) continue;
    try {
      const TensorStats s = tensor_stats(t);
      g_sink = s.mean + s.scale_median;
    } catch (const Error&) {
    }
  }
}

void walk_vocab(const GgufFile& f) {
  if (!has_vocab(f)) return;
  try {
    const VocabData v = vocab_from_gguf(f);
    const auto tok = Tokenizer::create(v);
    for (const char* text : {"Hello, world! 12345", " \xe2\x96\x81x<|eot_id|>\xff\xc3"}) {
      const auto ids = tok->encode(text, tok->bos_id() >= 0, true);
      g_sink = static_cast<double>(tok->decode(ids, true).size());
    }
    for (int32_t id = 0; id < tok->n_vocab() && id < 512; ++id) g_sink = static_cast<double>(tok->token_bytes(id, true).size());
  } catch (const Error&) {
  }
}

void walk_model(const GgufFile& f) {
  try {
    const ModelConfig c = ModelConfig::from_gguf(f);
    g_sink = static_cast<double>(expected_tensors(c).size());
  } catch (const Error&) {
  }
  try {
    const ValidationReport r = validate_model(f);
    g_sink = static_cast<double>(r.findings.size());
  } catch (const Error&) {
  }
  try {
    const std::string tmpl = f.get_string("tokenizer.chat_template").value_or("");
    const ChatTemplateChoice choice = detect_chat_template(tmpl, f.architecture());
    g_sink = static_cast<double>(render_chat(choice.tmpl, {{"user", "hi"}}, true).size());
  } catch (const Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::unique_ptr<GgufFile> f;
  try {
    f = GgufFile::parse(data, size, "fuzz.gguf");
  } catch (const Error&) {
    return 0;
  }
  walk_metadata(*f);
  walk_tensors(*f);
  walk_vocab(*f);
  walk_model(*f);
  return 0;
}

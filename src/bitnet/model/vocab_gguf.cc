#include "bitnet/model/vocab_gguf.h"

#include <cstring>

#include "bitnet/base/error.h"
#include "bitnet/format/gguf.h"
#include "bitnet/text/hf_pipeline.h"

namespace bitnet {

namespace {

// tokenizer.json's normalizer, pre_tokenizer, decoder and model options (VocabData::pipeline).
constexpr const char* kPipelineKey = "tokenizer.bitnet.hf_pipeline";

struct IdKey {
  const char* key;
  int32_t VocabData::*field;
};
constexpr IdKey kIdKeys[] = {
    {"tokenizer.ggml.bos_token_id", &VocabData::bos_id},     {"tokenizer.ggml.eos_token_id", &VocabData::eos_id},
    {"tokenizer.ggml.eot_token_id", &VocabData::eot_id},     {"tokenizer.ggml.eom_token_id", &VocabData::eom_id},
    {"tokenizer.ggml.unknown_token_id", &VocabData::unk_id}, {"tokenizer.ggml.padding_token_id", &VocabData::pad_id},
};

}  // namespace

bool has_vocab(const GgufFile& f) { return f.find("tokenizer.ggml.tokens") != nullptr; }

VocabData vocab_from_gguf(const GgufFile& f) {
  VocabData v;
  v.model = f.get_string("tokenizer.ggml.model").value_or("");
  if (v.model.empty()) fail("{}: no tokenizer.ggml.model key: the file carries no tokenizer", f.path());
  v.pre = f.get_string("tokenizer.ggml.pre").value_or("");
  v.pipeline = f.get_string(kPipelineKey).value_or("");
  const GgufArray* tokens = f.get_array("tokenizer.ggml.tokens", GgufType::STRING);
  if (!tokens) fail("{}: no tokenizer.ggml.tokens key: the file carries no vocabulary", f.path());
  v.tokens = tokens->strings;
  const uint64_t n = v.tokens.size();
  if (const GgufValue* s = f.find("tokenizer.ggml.scores")) {
    if (s->type != GgufType::ARRAY || !(s->arr.is_float() || s->arr.is_integer()))
      fail("{}: tokenizer.ggml.scores is not a numeric array", f.path());
    if (s->arr.count != n)
      fail("{}: tokenizer.ggml.scores has {} entries, tokenizer.ggml.tokens has {}", f.path(), s->arr.count, n);
    v.scores.resize(n);
    for (uint64_t i = 0; i < n; ++i) v.scores[i] = static_cast<float>(s->arr.float_at(i));
  }
  if (const GgufValue* t = f.find("tokenizer.ggml.token_type")) {
    if (t->type != GgufType::ARRAY || !t->arr.is_integer())
      fail("{}: tokenizer.ggml.token_type is not an integer array", f.path());
    if (t->arr.count != n)
      fail("{}: tokenizer.ggml.token_type has {} entries, tokenizer.ggml.tokens has {}", f.path(), t->arr.count, n);
    v.token_types.resize(n);
    for (uint64_t i = 0; i < n; ++i) v.token_types[i] = static_cast<int32_t>(t->arr.int_at(i));
  }
  if (const GgufArray* m = f.get_array("tokenizer.ggml.merges", GgufType::STRING)) v.merges = m->strings;
  for (const IdKey& k : kIdKeys) {
    if (auto id = f.get_int(k.key)) {
      if (*id < 0 || static_cast<uint64_t>(*id) >= n)
        fail("{}: {} is {}, outside the vocabulary of {} tokens", f.path(), k.key, *id, n);
      v.*k.field = static_cast<int32_t>(*id);
    }
  }
  v.add_bos = f.get_bool("tokenizer.ggml.add_bos_token").value_or(v.model != "gpt2" || v.bos_id >= 0);
  v.add_eos = f.get_bool("tokenizer.ggml.add_eos_token").value_or(false);
  v.add_space_prefix = f.get_bool("tokenizer.ggml.add_space_prefix").value_or(true);
  return v;
}

void put_vocab(GgufWriter& w, const VocabData& v) {
  w.set("tokenizer.ggml.model", GgufValue::of_string(v.model));
  if (!v.pre.empty()) w.set("tokenizer.ggml.pre", GgufValue::of_string(v.pre));
  // The pipeline is stored only where llama.cpp's pre name does not already say all of it, so files of
  // common tokenizers stay exactly what llama.cpp's converter writes.
  bool exact = false;
  if (!v.pipeline.empty() &&
      (v.model != "gpt2" || TextPipeline::parse(v.pipeline, "tokenizer pipeline").gguf_pre_name(&exact) != v.pre ||
       !exact))
    w.set(kPipelineKey, GgufValue::of_string(v.pipeline));
  w.set("tokenizer.ggml.tokens", GgufValue::of_strings(v.tokens));
  if (!v.scores.empty()) w.set("tokenizer.ggml.scores", GgufValue::of_f32s(v.scores));
  if (!v.token_types.empty()) w.set("tokenizer.ggml.token_type", GgufValue::of_i32s(v.token_types));
  if (!v.merges.empty()) w.set("tokenizer.ggml.merges", GgufValue::of_strings(v.merges));
  for (const IdKey& k : kIdKeys)
    if (v.*k.field >= 0) w.set(k.key, GgufValue::of_u32(static_cast<uint32_t>(v.*k.field)));
  w.set("tokenizer.ggml.add_bos_token", GgufValue::of_bool(v.add_bos));
  if (v.add_eos) w.set("tokenizer.ggml.add_eos_token", GgufValue::of_bool(true));
}

}  // namespace bitnet

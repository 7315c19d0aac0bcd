#include "bitnet/convert/quantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <optional>

#include "bitnet/base/error.h"
#include "bitnet/base/fp16.h"
#include "bitnet/convert/progress.h"
#include "bitnet/convert/ternary_tensor.h"
#include "bitnet/format/dequant.h"
#include "bitnet/format/ternary.h"
#include "bitnet/model/arch.h"

namespace bitnet {

namespace {

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }

// Refuses, before anything is written, I2_S tensors whose float32 scale an fp16-scaled target cannot hold.
void check_i2s_scales(const GgufFile& in, const std::vector<const GgufTensorInfo*>& linears, TensorType type) {
  uint64_t bad = 0;
  const GgufTensorInfo* first = nullptr;
  double worst = 0;
  for (const GgufTensorInfo* t : linears) {
    if (t->type != TensorType::I2_S) continue;
    const float s = i2s_scale(t->data, t->n_elements());
    const float r = fp16_to_f32(f32_to_fp16(s));
    if (r == s) continue;
    ++bad;
    if (!first) first = t;
    worst = std::max(worst, std::fabs(static_cast<double>(r) - s) / std::fabs(static_cast<double>(s)));
  }
  if (bad)
    fail("{}: {} of {} I2_S scales are not fp16 values (first: {} = {:.9g}) and {} stores fp16 scales; the nearest "
         "fp16 changes a scale by up to {:.2g} (relative). Pass --round-scales to accept that change",
         in.path(), bad, linears.size(), first->name, i2s_scale(first->data, first->n_elements()),
         type_traits(type).name, worst);
}

}  // namespace

GgufWriter plan_quantize(const GgufFile& in, const QuantizeOptions& o, Progress& progress, QuantizeSummary* summary) {
  const ModelConfig c = ModelConfig::from_gguf(in);
  const std::string& src_arch = c.arch_name;
  const std::string arch = o.arch.empty() ? src_arch : o.arch;
  const auto info = arch_info(arch);
  if (!info) fail("--arch '{}' is not supported ({})", arch, supported_architectures());
  // (plain values and flags: g++ 12 misreports std::optional<enum> as maybe-uninitialized)
  const bool have_type = !o.type.empty(), have_embd = !o.embedding_type.empty();
  const TensorType type = have_type ? linear_type_from_name(o.type) : TensorType::F32;
  const TensorType embd = have_embd ? embedding_type_from_name(o.embedding_type) : TensorType::F16;
  if (!have_type && !have_embd && o.arch.empty()) fail("nothing to do: give --type, --embedding-type or --arch");
  summary->arch = arch;

  // ---- architecture change: same graph only, keeping the activation ----
  const bool to_bitnet = arch != src_arch && info->arch == Arch::Bitnet;
  const bool to_b158 = arch != src_arch && info->arch == Arch::BitnetB158;
  if (arch != src_arch) {
    if (c.info.arch == Arch::Llama || info->arch == Arch::Llama)
      fail("--arch {}: {} and {} are different graphs (sub-norms, RoPE); only bitnet-b1.58 <-> bitnet is possible",
           arch, src_arch, arch);
    if (to_bitnet && in.tensor("output.weight"))
      fail("{}: has output.weight, which llama.cpp's bitnet architecture cannot load (its LM head is token_embd)",
           in.path());
    if (to_b158 && c.info.arch == Arch::Bitnet) {
      if (c.act != Activation::ReluSqr)
        fail("{}: activation is {}, but bitnet-b1.58 implies relu2", in.path(), activation_name(c.act));
      for (const auto& t : in.tensors())
        if (t.name.size() > 6 && t.name.compare(t.name.size() - 6, 6, ".scale") == 0)
          fail("{}: tensor '{}': bitnet-b1.58 has no per-tensor .scale multipliers", in.path(), t.name);
    }
  }
  const bool fork = is_bitnet_cpp_arch(arch);
  if (have_type && type == TensorType::I2_S && !fork)
    fail("--type i2_s is bitnet.cpp's type, valid only for arch bitnet-b1.58 (this file: {}){}", src_arch,
         c.info.arch == Arch::Bitnet && c.act == Activation::ReluSqr && o.arch.empty() ? "; add --arch bitnet-b1.58" : "");

  std::map<std::string, TensorRole> role;
  for (const ExpectedTensor& e : expected_tensors(c)) role[e.name] = e.role;
  auto role_of = [&](const std::string& name) -> std::optional<TensorRole> {
    auto it = role.find(name);
    return it == role.end() ? std::nullopt : std::optional(it->second);
  };

  // ---- metadata: copied in order, the architecture prefix renamed ----
  GgufWriter w;
  const std::string old_prefix = src_arch + ".", new_prefix = arch + ".";
  for (const GgufKV& kv : in.kvs()) {
    std::string key = kv.key;
    if (starts_with(key, old_prefix)) {
      const std::string rest = key.substr(old_prefix.size());
      if (to_b158 && (rest == "hidden_activation" || rest == "hidden_act")) continue;  // implied by the arch
      key = new_prefix + rest;
    }
    if (key == "general.architecture") {
      w.set(key, GgufValue::of_string(arch));
    } else if (key == "general.file_type" && have_type) {
      w.set(key, GgufValue::of_u32(file_type_of(type)));
    } else {
      w.set(key, kv.value);
    }
  }
  if (have_type && !w.find("general.file_type")) w.set("general.file_type", GgufValue::of_u32(file_type_of(type)));
  if (to_bitnet) {
    if (!w.find(new_prefix + "hidden_activation"))
      w.set(new_prefix + "hidden_activation", GgufValue::of_string(activation_name(c.act)));
    if (c.act != Activation::Silu)
      summary->notes.push_back(fmt::format("bitnet.hidden_activation = {}: bitnet honours it, but llama.cpp releases up "
                                           "to v0.4.0 ignore the key and run SiLU", activation_name(c.act)));
    const auto model = in.get_string("tokenizer.ggml.model");
    if (!w.find("tokenizer.ggml.pre") && model && *model == "gpt2") {
      // bitnet already reads a gpt2 vocabulary without the key as LLaMA-3; llama.cpp would use its default regex.
      w.set("tokenizer.ggml.pre", GgufValue::of_string("llama-bpe"));
      summary->notes.push_back("tokenizer.ggml.pre = llama-bpe added (llama.cpp needs it for the LLaMA-3 regex)");
    }
  }

  // ---- tensors ----
  std::vector<const GgufTensorInfo*> to_encode;
  for (const GgufTensorInfo& t : in.tensors()) {
    const std::vector<uint64_t> ne(t.ne.begin(), t.ne.begin() + t.n_dims);
    const std::optional<TensorRole> r = role_of(t.name);
    const GgufTensorInfo* ti = &t;
    Progress* prog = &progress;
    if (r == TensorRole::Linear && have_type && t.type != type) {
      const TensorType target = type;
      const uint64_t blk = type_traits(target).block_size;  // I2_S: 128
      if (t.ne[0] % blk != 0)
        fail("{}: tensor '{}': rows of {} elements do not fit {} ({}-element blocks)", in.path(), t.name, t.ne[0],
             type_traits(target).name, blk);
      if (!type_traits(t.type).ternary && t.type != TensorType::F32 && t.type != TensorType::F16 &&
          t.type != TensorType::BF16)
        fail("{}: tensor '{}' is {}, which holds no ternary weights to re-encode", in.path(), t.name,
             type_traits(t.type).name);
      to_encode.push_back(ti);
      const bool round = o.round_scales;
      w.add_tensor(t.name, target, ne, [ti, prog, target, round](uint8_t* dst, uint64_t nbytes) {
        throw_if_interrupted();
        encode_ternary(ternary_from_gguf(*ti), target, round, dst);
        prog->advance(nbytes);
      });
      ++summary->re_encoded;
    } else if ((r == TensorRole::Embedding || r == TensorRole::Output) && have_embd && t.type != embd) {
      const TensorType target = embd;
      if (!type_traits(t.type).computable) fail("{}: tensor '{}' is {}, which bitnet cannot decode", in.path(), t.name,
                                                type_traits(t.type).name);
      if (t.ne[0] % type_traits(target).block_size != 0)
        fail("{}: tensor '{}': rows of {} elements do not fit {}", in.path(), t.name, t.ne[0], type_traits(target).name);
      w.add_tensor(t.name, target, ne, [ti, prog, target](uint8_t* dst, uint64_t) {
        const uint64_t row = ti->ne[0], n = ti->n_elements();
        const uint64_t chunk = std::max<uint64_t>(1, kDequantChunk / row) * row;
        uint64_t row_bytes = 0;
        row_nbytes(target, row, &row_bytes);
        std::vector<float> x;
        for (uint64_t s = 0; s < n; s += chunk) {
          const uint64_t cnt = std::min(chunk, n - s);
          x.resize(cnt);
          dequantize(ti->type, ti->data, n, s, cnt, x.data());
          encode_floats(target, x.data(), cnt, dst + s / row * row_bytes);
          prog->advance(cnt / row * row_bytes);
        }
      });
      ++summary->re_encoded;
    } else {
      if (t.type == TensorType::I2_S && !fork)
        fail("{}: tensor '{}' is I2_S, which arch {} cannot hold; add --type tq2_0 (or tq1_0)", in.path(), t.name, arch);
      w.add_tensor(t.name, t.type, ne, [ti, prog](uint8_t* dst, uint64_t nbytes) {
        throw_if_interrupted();
        std::memcpy(dst, ti->data, std::min(nbytes, ti->nbytes));
        prog->advance(nbytes);
      });
      ++summary->copied;
    }
  }
  if (have_type && type != TensorType::I2_S && type != TensorType::F32 && !o.round_scales)
    check_i2s_scales(in, to_encode, type);
  if (have_type && type == TensorType::I2_S) {  // quick check: TQ tensors whose block scales all agree are certainly fine
    for (const GgufTensorInfo* t : to_encode) {
      if (t->type != TensorType::TQ1_0 && t->type != TensorType::TQ2_0) continue;
      const uint64_t bb = type_traits(t->type).block_bytes, nb = t->n_elements() / kQK;
      for (uint64_t b = 1; b < nb; ++b)
        if (tq_block_scale(t->data + b * bb, bb) != tq_block_scale(t->data, bb)) {
          summary->notes.push_back(fmt::format("{}: block scales differ; I2_S needs them equal wherever a block holds "
                                               "non-zero weights (checked while writing)", t->name));
          break;
        }
    }
  }
  return w;
}

}  // namespace bitnet

#include "bitnet/convert/grow.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "bitnet/base/error.h"
#include "bitnet/base/fp16.h"
#include "bitnet/convert/ternary_tensor.h"
#include "bitnet/format/dequant.h"
#include "bitnet/format/gguf.h"
#include "bitnet/format/ternary.h"
#include "bitnet/model/arch.h"
#include "bitnet/model/synth_random.h"

namespace bitnet {

// Sizes: the source has d residual channels, f FFN channels, l layers, h query heads over h_kv KV heads (group
// g = h / h_kv) of e elements; the target D, F, L, H over H_kv (group G), E.
//
// Residual stream. The source's d channels come first; the other D - d stay exactly 0, because every matrix
// that writes into the stream (token_embd, attn_output, ffn_down) has zeros there and every matrix that reads
// it has zero columns there. RMSNorm over D channels of which d are non-zero returns sqrt(D / d) times the
// source's normalised values, so the attn_norm, ffn_norm and output_norm gains are multiplied by sqrt(d / D).
// BitLinear quantizes its input by the vector's absmax, which zero channels and a common factor leave as they
// were (up to float rounding).
//
// FFN. Channels f.. of ffn_gate and ffn_up are zero rows, so relu(0)^2 * 0 = 0 there, and ffn_down has zero
// columns there; ffn_sub_norm's gains are multiplied by sqrt(f / F).
//
// Heads. Source query head s = k g + i (KV head k) becomes target heads k G + c g + i, one for each copy
// c < G / g, with the same query rows; only copy 0 has columns in attn_output. The copies are there for
// attn_sub_norm, which normalises all heads' outputs together: every source head appears G / g times, so the
// sum of squares is G / g times the source's and the gains are multiplied by sqrt((G / g) h e / (H E)). KV heads
// h_kv.. have zero K and V rows, so their query heads (zero rows too) output exactly 0.
//
// Inside a head. NEOX RoPE pairs element i with i + E/2 and turns the pair by theta^(-2i / E) per position.
// Source element i < e/2 goes to i and element e/2 + i to E/2 + i; the target's theta is theta_src^(E / e), so
// pair i turns as it did in the source. The other elements are zero. Scores are divided by sqrt(E) instead
// of sqrt(e), so attn_q's scale is multiplied by sqrt(E / e).
//
// Layers. The source's l layers come first, then L - l layers whose attn_output and ffn_down are all zero: each
// adds exactly 0 to the stream. Their other projections are random ternary codes at the scales of the source's
// last layer, so they cost what a real layer costs. (`bitnet validate` reports the zero tensors, as it should.)

namespace {

struct Dims {
  int64_t d, f, l, h, hkv, e;
  int64_t g() const { return h / hkv; }
};

struct Plan {
  const GgufFile* src;
  Dims s, t;           // source, target
  uint64_t seed;
  int64_t q_head(int64_t head, int64_t copy) const {  // target query head of a source head's copy
    return head / s.g() * t.g() + copy * s.g() + head % s.g();
  }
  int64_t elem(int64_t j) const { return j < s.e / 2 ? j : t.e / 2 + (j - s.e / 2); }  // element within a head
  int64_t copies() const { return t.g() / s.g(); }
};

std::string layer_name(int64_t layer, const std::string& kind) {
  return "blk." + std::to_string(layer) + "." + kind + ".weight";
}

// A ternary tensor of the source with one scale: per-block files (TQ) whose non-zero blocks share one d count.
TernaryTensor read_linear(const GgufFile& f, const std::string& name, uint64_t cols, uint64_t rows) {
  const GgufTensorInfo* info = f.tensor(name);
  if (!info) fail("{}: tensor '{}' is missing", f.path(), name);
  if (info->n_dims != 2 || info->ne[0] != cols || info->ne[1] != rows)
    fail("{}: tensor '{}' has shape {}, the model's header says [{}, {}]", f.path(), name, info->shape_string(), cols, rows);
  TernaryTensor t = ternary_from_gguf(*info);
  if (t.per_block) {
    std::optional<uint16_t> d;
    for (uint64_t b = 0; b < t.block_d.size(); ++b) {
      bool nonzero = false;
      for (uint64_t i = b * kQK; i < (b + 1) * kQK && !nonzero; ++i) nonzero = t.codes[i] != 0;
      if (!nonzero) continue;
      if (d && *d != t.block_d[b])
        fail("{}: tensor '{}' has several block scales; growing needs one scale per tensor", f.path(), name);
      d = t.block_d[b];
    }
    t.per_block = false;
    t.scale = d ? fp16_to_f32(*d) : 1.0f;
    t.block_d.clear();
  }
  return t;
}

std::vector<float> read_floats(const GgufFile& f, const std::string& name, uint64_t n) {
  const GgufTensorInfo* info = f.tensor(name);
  if (!info) fail("{}: tensor '{}' is missing", f.path(), name);
  if (info->n_elements() != n)
    fail("{}: tensor '{}' has {} elements, the model's header says {}", f.path(), name, info->n_elements(), n);
  std::vector<float> v(n);
  dequantize(*info, 0, n, v.data());
  return v;
}

// Gains at the target's positions: pos[i] is where source gain i goes, all multiplied by `factor`; the positions
// no source gain reaches (their values are always 0) get the mean, so the tensor looks like a norm's.
std::vector<float> place_gains(const std::vector<float>& src, uint64_t n, double factor,
                               const std::vector<std::vector<int64_t>>& pos) {
  std::vector<float> out(n, 0.0f);
  std::vector<bool> set(n, false);
  double sum = 0;
  for (size_t i = 0; i < src.size(); ++i) {
    const float v = static_cast<float>(src[i] * factor);
    sum += v;
    for (int64_t p : pos[i]) out[p] = v, set[p] = true;
  }
  const float mean = static_cast<float>(sum / static_cast<double>(src.size()));
  for (uint64_t i = 0; i < n; ++i)
    if (!set[i]) out[i] = mean;
  return out;
}

std::vector<std::vector<int64_t>> identity_positions(int64_t n) {
  std::vector<std::vector<int64_t>> pos(n);
  for (int64_t i = 0; i < n; ++i) pos[i] = {i};
  return pos;
}

void add_i2s(GgufWriter& w, const std::string& name, uint64_t cols, uint64_t rows,
             std::function<TernaryTensor()> make) {
  w.add_tensor(name, TensorType::I2_S, {cols, rows}, [make = std::move(make)](uint8_t* dst, uint64_t) {
    const TernaryTensor t = make();
    i2s_encode(t.codes.data(), t.n(), t.scale, dst);
  });
}

// The grown form of one source linear (kind) of source layer `sl`: codes placed, scale adjusted.
TernaryTensor grow_linear(const Plan& p, int64_t sl, const std::string& kind) {
  const Dims &s = p.s, &t = p.t;
  const std::string name = layer_name(sl, kind);
  TernaryTensor out;
  auto copy_row = [&](const TernaryTensor& in, int64_t from_row, int64_t to_row, auto col_of) {
    for (uint64_t c = 0; c < in.cols; ++c) out.codes[to_row * out.cols + col_of(c)] = in.codes[from_row * in.cols + c];
  };
  auto same = [](uint64_t c) { return static_cast<int64_t>(c); };
  auto init = [&](int64_t cols, int64_t rows, float scale) {
    out.name = name, out.cols = cols, out.rows = rows, out.scale = scale;
    out.codes.assign(static_cast<size_t>(cols * rows), 0);
  };
  if (kind == "attn_q") {
    const TernaryTensor in = read_linear(*p.src, name, s.d, s.h * s.e);
    init(t.d, t.h * t.e, static_cast<float>(in.scale * std::sqrt(static_cast<double>(t.e) / s.e)));
    for (int64_t head = 0; head < s.h; ++head)
      for (int64_t c = 0; c < p.copies(); ++c)
        for (int64_t j = 0; j < s.e; ++j) copy_row(in, head * s.e + j, p.q_head(head, c) * t.e + p.elem(j), same);
  } else if (kind == "attn_k" || kind == "attn_v") {
    const TernaryTensor in = read_linear(*p.src, name, s.d, s.hkv * s.e);
    init(t.d, t.hkv * t.e, in.scale);
    for (int64_t k = 0; k < s.hkv; ++k)
      for (int64_t j = 0; j < s.e; ++j) copy_row(in, k * s.e + j, k * t.e + p.elem(j), same);
  } else if (kind == "attn_output") {
    const TernaryTensor in = read_linear(*p.src, name, s.h * s.e, s.d);
    init(t.h * t.e, t.d, in.scale);
    for (int64_t r = 0; r < s.d; ++r)
      copy_row(in, r, r, [&](uint64_t c) { return p.q_head(c / s.e, 0) * t.e + p.elem(c % s.e); });
  } else if (kind == "ffn_gate" || kind == "ffn_up") {
    const TernaryTensor in = read_linear(*p.src, name, s.d, s.f);
    init(t.d, t.f, in.scale);
    for (int64_t r = 0; r < s.f; ++r) copy_row(in, r, r, same);
  } else if (kind == "ffn_down") {
    const TernaryTensor in = read_linear(*p.src, name, s.f, s.d);
    init(t.f, t.d, in.scale);
    for (int64_t r = 0; r < s.d; ++r) copy_row(in, r, r, same);
  } else {
    fail("grow: no linear kind '{}'", kind);
  }
  return out;
}

// A linear of an added layer: random codes (P(-1) = P(0) = P(+1) = 1/3) at the scale of the source's last
// layer's, or all zero for the two that write into the stream.
TernaryTensor added_linear(const Plan& p, int64_t layer, const std::string& kind, int64_t cols, int64_t rows) {
  const Dims& s = p.s;
  const bool writes_stream = kind == "attn_output" || kind == "ffn_down";
  const std::string last = layer_name(s.l - 1, kind);
  const int64_t src_cols = kind == "attn_output" ? s.h * s.e : kind == "ffn_down" ? s.f : s.d;
  const int64_t src_rows = kind == "attn_q" ? s.h * s.e
                         : kind == "attn_k" || kind == "attn_v" ? s.hkv * s.e
                         : kind == "ffn_gate" || kind == "ffn_up" ? s.f : s.d;
  TernaryTensor out;
  out.name = layer_name(layer, kind);
  out.cols = cols, out.rows = rows;
  out.scale = read_linear(*p.src, last, src_cols, src_rows).scale;
  out.codes.assign(static_cast<size_t>(cols * rows), 0);
  if (!writes_stream) {
    SynthRng rng(p.seed, out.name);
    for (int8_t& c : out.codes) c = static_cast<int8_t>(rng.next() % 3) - 1;
  }
  return out;
}

}  // namespace

GgufWriter grow_model(const GgufFile& src, const GrowShape& to, uint64_t seed, const std::string& name) {
  const ModelConfig c = ModelConfig::from_gguf(src);
  const std::string& path = src.path();
  if (c.info.arch != Arch::BitnetB158)
    fail("{}: growing needs a bitnet-b1.58 model (sub-norms, NEOX RoPE), this one is '{}'", path, c.arch_name);
  if (c.rope_dim != c.head_dim) fail("{}: RoPE covers {} of {} head elements; growing needs all", path, c.rope_dim, c.head_dim);
  Plan p;
  p.src = &src;
  p.seed = seed;
  p.s = {c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim};
  if (to.n_heads == 0 || to.n_kv_heads == 0 || to.dim % to.n_heads != 0 || to.n_heads % to.n_kv_heads != 0)
    fail("grow: {} heads over {} KV heads do not divide a residual stream of {}", to.n_heads, to.n_kv_heads, to.dim);
  p.t = {to.dim, to.hidden_dim, to.n_layers, to.n_heads, to.n_kv_heads, to.dim / to.n_heads};
  const Dims &s = p.s, &t = p.t;
  auto at_least = [&](const char* what, int64_t target, int64_t source) {
    if (target < source) fail("grow: the target's {} ({}) is smaller than {}'s ({})", what, target, path, source);
  };
  at_least("embedding length", t.d, s.d);
  at_least("feed-forward length", t.f, s.f);
  at_least("layer count", t.l, s.l);
  at_least("head size", t.e, s.e);
  at_least("KV head count", t.hkv, s.hkv);
  if (t.g() % s.g() != 0)
    fail("grow: the target's GQA group ({} query heads per KV head) is not a multiple of {}'s ({})", t.g(), path, s.g());
  if (s.e % 2 != 0 || t.e % 2 != 0) fail("grow: head sizes must be even (RoPE pairs), got {} and {}", s.e, t.e);

  const GgufTensorInfo* embd = src.tensor("token_embd.weight");
  if (!embd) fail("{}: tensor 'token_embd.weight' is missing", path);
  const TensorType embd_type = embd->type;
  if (embd_type != TensorType::F16 && embd_type != TensorType::F32)
    fail("{}: token_embd is {}; growing keeps the embedding exact, which it can for f16 and f32 only", path,
         type_traits(embd_type).name);
  const uint64_t vocab = embd->ne[1];
  const GgufTensorInfo* output = src.tensor("output.weight");
  if (output && output->type != TensorType::F16 && output->type != TensorType::F32)
    fail("{}: output.weight is {}; growing keeps the head exact, which it can for f16 and f32 only", path,
         type_traits(output->type).name);

  GgufWriter w(static_cast<uint32_t>(src.alignment()));
  for (const GgufKV& kv : src.kvs()) w.set(kv.key, kv.value);
  const std::string A = c.arch_name + ".";
  const double theta = std::pow(static_cast<double>(c.rope_theta), static_cast<double>(t.e) / s.e);
  if (!std::isfinite(static_cast<float>(theta))) fail("grow: RoPE theta {}^({}/{}) overflows a float", c.rope_theta, t.e, s.e);
  w.set("general.name", GgufValue::of_string(name));
  w.set("general.file_type", GgufValue::of_u32(file_type_of(TensorType::I2_S)));
  w.set(A + "embedding_length", GgufValue::of_u32(to.dim));
  w.set(A + "feed_forward_length", GgufValue::of_u32(to.hidden_dim));
  w.set(A + "block_count", GgufValue::of_u32(to.n_layers));
  w.set(A + "attention.head_count", GgufValue::of_u32(to.n_heads));
  w.set(A + "attention.head_count_kv", GgufValue::of_u32(to.n_kv_heads));
  w.set(A + "rope.dimension_count", GgufValue::of_u32(static_cast<uint32_t>(t.e)));
  w.set(A + "rope.freq_base", GgufValue::of_f32(static_cast<float>(theta)));

  // Where each source gain goes (see the top of the file).
  const auto resid = std::make_shared<std::vector<std::vector<int64_t>>>(identity_positions(s.d));
  const auto ffn = std::make_shared<std::vector<std::vector<int64_t>>>(identity_positions(s.f));
  const auto heads = std::make_shared<std::vector<std::vector<int64_t>>>(s.h * s.e);
  for (int64_t head = 0; head < s.h; ++head)
    for (int64_t j = 0; j < s.e; ++j)
      for (int64_t cp = 0; cp < p.copies(); ++cp) (*heads)[head * s.e + j].push_back(p.q_head(head, cp) * t.e + p.elem(j));
  const double resid_factor = std::sqrt(static_cast<double>(s.d) / t.d);
  const double ffn_factor = std::sqrt(static_cast<double>(s.f) / t.f);
  const double sub_factor = std::sqrt(static_cast<double>(p.copies() * s.h * s.e) / static_cast<double>(t.h * t.e));

  // The embedding (and an untied head): each row padded with zeros, in the source's type.
  auto add_rows = [&](const GgufTensorInfo* in) {
    const std::string tname = in->name;
    const TensorType type = in->type;
    w.add_tensor(tname, type, {static_cast<uint64_t>(t.d), vocab}, [&src, tname, type, s, t, vocab](uint8_t* dst, uint64_t) {
      const GgufTensorInfo* info = src.tensor(tname);
      std::vector<float> row(t.d, 0.0f);
      const uint64_t row_bytes = (type == TensorType::F16 ? 2 : 4) * static_cast<uint64_t>(t.d);
      for (uint64_t r = 0; r < vocab; ++r) {
        dequantize(*info, r * s.d, s.d, row.data());
        encode_floats(type, row.data(), t.d, dst + r * row_bytes);
      }
    });
  };
  add_rows(embd);

  const uint64_t q_rows = t.h * t.e, kv_rows = t.hkv * t.e;
  for (int64_t layer = 0; layer < t.l; ++layer) {
    const int64_t sl = std::min(layer, s.l - 1);  // the norms of an added layer are the source's last layer's
    auto norm = [&](const std::string& kind, uint64_t n, uint64_t src_n, double factor,
                    std::shared_ptr<std::vector<std::vector<int64_t>>> pos) {
      const std::string from = layer_name(sl, kind);
      w.add_tensor(layer_name(layer, kind), TensorType::F32, {n}, [&src, from, n, src_n, factor, pos](uint8_t* dst, uint64_t) {
        const std::vector<float> g = place_gains(read_floats(src, from, src_n), n, factor, *pos);
        std::memcpy(dst, g.data(), 4 * n);
      });
    };
    auto linear = [&](const std::string& kind, uint64_t cols, uint64_t rows) {
      if (layer < s.l)
        add_i2s(w, layer_name(layer, kind), cols, rows, [p, layer, kind] { return grow_linear(p, layer, kind); });
      else
        add_i2s(w, layer_name(layer, kind), cols, rows,
                [p, layer, kind, cols, rows] { return added_linear(p, layer, kind, cols, rows); });
    };
    norm("attn_norm", t.d, s.d, resid_factor, resid);
    linear("attn_q", t.d, q_rows);
    linear("attn_k", t.d, kv_rows);
    linear("attn_v", t.d, kv_rows);
    norm("attn_sub_norm", q_rows, s.h * s.e, sub_factor, heads);
    linear("attn_output", q_rows, t.d);
    norm("ffn_norm", t.d, s.d, resid_factor, resid);
    linear("ffn_gate", t.d, t.f);
    linear("ffn_up", t.d, t.f);
    norm("ffn_sub_norm", t.f, s.f, ffn_factor, ffn);
    linear("ffn_down", t.f, t.d);
  }
  w.add_tensor("output_norm.weight", TensorType::F32, {static_cast<uint64_t>(t.d)}, [&src, s, t, resid, resid_factor](uint8_t* dst, uint64_t) {
    const std::vector<float> g = place_gains(read_floats(src, "output_norm.weight", s.d), t.d, resid_factor, *resid);
    std::memcpy(dst, g.data(), 4 * t.d);
  });
  if (output) add_rows(output);
  return w;
}

}  // namespace bitnet

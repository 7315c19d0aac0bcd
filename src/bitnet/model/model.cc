#include "bitnet/model/model.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "bitnet/base/error.h"
#include "bitnet/base/fp16.h"
#include "bitnet/base/thread_pool.h"
#include "bitnet/format/dequant.h"
#include "bitnet/format/ternary.h"
#include "bitnet/kernels/kernels.h"
#include "bitnet/model/vocab_gguf.h"

namespace bitnet {

namespace {

// Repacks TQ2_0/TQ1_0 blocks into I2_S codes; block scales become one tensor scale when they agree
// (every BitNet converter writes the tensor's absmean into each block; all-zero blocks may carry 0).
void repack_tq(const GgufTensorInfo& t, int64_t rows, int64_t cols, TernaryWeights& w) {
  const uint64_t n = static_cast<uint64_t>(rows) * cols;
  const uint64_t bytes = type_traits(t.type).block_bytes;
  w.owned.resize(n / 4 + 32);
  std::vector<int8_t> vals(256), row_vals(cols);
  std::vector<float> d(n / kQK);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t b = 0; b < cols / 256; ++b) {
      const uint64_t blk = r * (cols / 256) + b;
      const uint8_t* src = t.data + blk * bytes;
      (t.type == TensorType::TQ2_0 ? tq2_decode_block : tq1_decode_block)(src, vals.data());
      std::memcpy(row_vals.data() + 256 * b, vals.data(), 256);
      d[blk] = fp16_to_f32(tq_block_scale(src, bytes));
    }
    // Encode the row into its place in the I2_S layout (rows never share a 128-element block).
    std::vector<uint8_t> tmp(cols / 4 + 32);
    i2s_encode(row_vals.data(), cols, 0.0f, tmp.data());
    std::memcpy(w.owned.data() + r * cols / 4, tmp.data(), cols / 4);
  }
  float common = 0;
  bool uniform = true;
  for (float v : d) {
    if (!std::isfinite(v)) fail("{}: tensor '{}' has a non-finite block scale", "model", t.name);
    if (v == 0) continue;
    if (common == 0) common = v;
    else if (v != common) uniform = false;
  }
  w.codes = w.owned.data();
  if (uniform) {
    w.scale = common;
  } else {
    w.block_scales = std::move(d);
  }
}

// Float weights that hold exactly {-s, 0, +s} for one s become ternary (so --act-quant per-token on an
// F32 copy of a ternary model runs the same integer path as its I2_S form).
bool try_ternarize(const GgufTensorInfo& t, int64_t rows, int64_t cols, TernaryWeights& w) {
  const uint64_t n = static_cast<uint64_t>(rows) * cols;
  if (cols % 128 != 0) return false;
  std::vector<float> row(cols);
  std::vector<int8_t> vals(n);
  float s = 0;
  for (int64_t r = 0; r < rows; ++r) {
    dequantize(t, r * cols, cols, row.data());
    for (int64_t k = 0; k < cols; ++k) {
      const float v = row[k];
      if (v == 0) {
        vals[r * cols + k] = 0;
        continue;
      }
      if (s == 0) s = std::fabs(v);
      if (std::fabs(v) != s) return false;
      vals[r * cols + k] = v > 0 ? 1 : -1;
    }
  }
  w.owned.resize(n / 4 + 32);
  i2s_encode(vals.data(), n, s, w.owned.data());
  w.codes = w.owned.data();
  w.scale = s;
  return true;
}

}  // namespace

std::unique_ptr<Model> Model::load(const std::string& path, const LoadOptions& opts) {
  std::unique_ptr<Model> m(new Model());
  m->opts_ = opts;
  m->file_ = GgufFile::open(path);
  m->config_ = ModelConfig::from_gguf(*m->file_);
  m->has_vocab_ = bitnet::has_vocab(*m->file_);
  if (m->has_vocab_ && opts.tokenizer) m->load_tokenizer();
  m->bind();
  m->pack_ternary();
  m->copy_norms();
  m->file_->release_metadata();  // parsed (the vocabulary has its own copy): not needed in memory
  LmHead head = opts.lm_head;
  if (head == LmHead::Auto) {
    const TensorType t = m->output.type;
    const bool is_float = t == TensorType::F32 || t == TensorType::F16 || t == TensorType::BF16;
    head = !is_float ? LmHead::Stored : kernels::qhead_fits(m->config_.dim) ? LmHead::Q6 : LmHead::Q8;
  }
  m->lm_head_ = head;
  if (head != LmHead::Stored) {
    m->quantize_head(head, opts.n_threads);
  } else {
    m->copy_head();
  }
  return m;
}

// The tokenizer takes the vocabulary's texts; the file's parsed copies of the arrays are then dropped.
void Model::load_tokenizer() {
  VocabData v = vocab_from_gguf(*file_);
  for (const char* key : {"tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.scores",
                          "tokenizer.ggml.token_type"})
    file_->forget(key);
  if (v.tokens.size() > config_.vocab_size)
    fail("{}: the vocabulary has {} tokens but token_embd has {} rows", file_->path(), v.tokens.size(),
         config_.vocab_size);
  pre_missing_ = v.model == "gpt2" && v.pre.empty() && v.pipeline.empty();
  tokenizer_ = Tokenizer::create(std::move(v));
}

const uint8_t* Model::aligned_data(const GgufTensorInfo& t, size_t element_bytes) {
  if (reinterpret_cast<uintptr_t>(t.data) % element_bytes == 0) return t.data;
  realigned_.emplace_back(t.data, t.data + t.nbytes);  // operator new memory is at least 16-byte aligned
  return realigned_.back().data();
}

FloatWeights Model::bind_matrix(const std::string& name, int64_t rows, int64_t cols) {
  const GgufTensorInfo* t = file_->tensor(name);
  if (!t) fail("{}: required tensor '{}' is missing", file_->path(), name);
  if (t->n_dims != 2 || static_cast<int64_t>(t->ne[0]) != cols || static_cast<int64_t>(t->ne[1]) != rows)
    fail("{}: tensor '{}' has shape {}, expected [{}, {}]", file_->path(), name, t->shape_string(), cols, rows);
  const TypeTraits& tr = type_traits(t->type);
  if (!tr.computable || tr.ternary)
    fail("{}: tensor '{}' has type {}, which bitnet cannot use here", file_->path(), name, tr.name);
  FloatWeights w;
  w.type = t->type;
  w.data = aligned_data(*t, t->type == TensorType::F32 ? 4 : t->type == TensorType::F16 || t->type == TensorType::BF16 ? 2 : 1);
  uint64_t rb = 0;
  row_nbytes(t->type, cols, &rb);
  w.row_bytes = rb;
  return w;
}

Linear Model::bind_linear(const std::string& name, int64_t rows, int64_t cols) {
  const GgufTensorInfo* t = file_->tensor(name);
  if (!t) fail("{}: required tensor '{}' is missing", file_->path(), name);
  if (t->n_dims != 2 || static_cast<int64_t>(t->ne[0]) != cols || static_cast<int64_t>(t->ne[1]) != rows)
    fail("{}: tensor '{}' has shape {}, expected [{}, {}]", file_->path(), name, t->shape_string(), cols, rows);
  Linear l;
  l.rows = rows;
  l.cols = cols;
  l.name = t->name.c_str();
  const TypeTraits& tr = type_traits(t->type);
  if (t->type == TensorType::I2_S) {
    l.ternary = true;
    l.tern.codes = t->data;
    l.tern.scale = i2s_scale(t->data, static_cast<uint64_t>(rows) * cols);
    if (!std::isfinite(l.tern.scale))
      fail("{}: tensor '{}' has a non-finite I2_S scale", file_->path(), name);
  } else if (t->type == TensorType::TQ2_0 || t->type == TensorType::TQ1_0) {
    l.ternary = true;
    repack_tq(*t, rows, cols, l.tern);
  } else if (t->type == TensorType::F32 || t->type == TensorType::F16 || t->type == TensorType::BF16) {
    if (opts_.act_quant == ActQuant::PerToken && try_ternarize(*t, rows, cols, l.tern)) {
      l.ternary = true;
    } else {
      l.flt = bind_matrix(name, rows, cols);
    }
  } else {
    fail("{}: linear tensor '{}' has type {} (supported: I2_S, TQ2_0, TQ1_0, F32, F16, BF16)", file_->path(), name,
         tr.name);
  }
  // llama.cpp's bitnet: an optional per-tensor output multiplier "<base>.scale".
  const std::string base = name.substr(0, name.size() - std::string(".weight").size());
  if (const GgufTensorInfo* s = file_->tensor(base + ".scale")) {
    if (s->type != TensorType::F32 || s->n_elements() != 1)
      fail("{}: tensor '{}' must be a single F32 value", file_->path(), s->name);
    std::memcpy(&l.out_scale, s->data, 4);
  }
  return l;
}

const float* Model::bind_norm(const std::string& name, int64_t n) {
  const GgufTensorInfo* t = file_->tensor(name);
  if (!t) fail("{}: required tensor '{}' is missing", file_->path(), name);
  if (t->type != TensorType::F32 || t->n_elements() != static_cast<uint64_t>(n))
    fail("{}: norm '{}' is {} {}, expected F32 [{}]", file_->path(), name, type_traits(t->type).name,
         t->shape_string(), n);
  return reinterpret_cast<const float*>(aligned_data(*t, 4));
}

// Ternary layers in the active kernel table's layout, packed once (TQ block-scale layers keep I2_S and
// run on the scalar table). The file's pages of a packed tensor are released, so it is not resident twice.
// All of them share one buffer, in the order a token reads them, each on a 4 KiB boundary: one mapping of
// 2 MiB huge pages. (A buffer per matrix left q, k, v and W_o, under 2 MiB each, on 4 KiB pages and the
// larger ones with partial huge pages at both ends: with the q8 head the process held 602 MB of huge
// pages instead of 903.)
void Model::pack_ternary() {
  const kernels::KernelTable& kt = kernels::active();
  if (kt.layout == kernels::TernaryLayout::I2S) return;
  std::vector<std::pair<Linear*, size_t>> todo;  // (layer, offset in the buffer)
  size_t total = 0;
  for (LayerWeights& L : layers)
    for (Linear* l : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down}) {
      if (!l->ternary || !l->tern.block_scales.empty() || !kernels::ternary_layout_fits(kt.layout, l->cols)) continue;
      todo.emplace_back(l, total);
      total += (kernels::ternary_layout_bytes(kt.layout, l->rows, l->cols) + 4095) / 4096 * 4096;
    }
  if (todo.empty()) return;
  packed_ = PageBuffer(total);
  for (const auto& [l, offset] : todo) {
    TernaryWeights& w = l->tern;
    kernels::pack_ternary(kt.layout, w.codes, l->rows, l->cols, 0, l->rows, packed_.data() + offset);
    if (w.owned.empty()) {
      file_->release(*file_->tensor(l->name));
    } else {
      std::vector<uint8_t>().swap(w.owned);
    }
    w.codes = packed_.data() + offset;
    w.layout = kt.layout;
  }
}

// Decoding one token, each RMSNorm's weights are read once, in a serial step between two products, long
// after the last token's read: their lines and their page's translation are both gone. In the file they lie on
// 4 KiB pages, one or two per vector, and prefetching them did not help there: asked for before or after the
// product, a 2560-wide norm took 1.6 us and a 6912-wide one 2.8 (0.4 and ~0.9 hot), but 0.75 and 1.2 when one
// line of each page was first loaded for real (2-core EPYC VM, cycle counter per step). The prefetches were
// dropped or stalled at the missing translation. So the norms are copied, in the order a token reads them, into
// one buffer of 2 MiB huge pages (1.7 MB for the 2B-4T shape), where the prefetches work; the file's copies
// stay (they are small). Norms totalling under 256 KiB keep 4 KiB pages: a huge page would mostly hold nothing.
void Model::copy_norms() {
  std::vector<const float**> norms{&output_norm};
  std::vector<int64_t> sizes{config_.dim};
  const int64_t q = int64_t(config_.n_heads) * config_.head_dim;
  for (LayerWeights& L : layers)
    for (auto [p, n] : {std::pair{&L.attn_norm, config_.dim}, {&L.attn_sub_norm, q}, {&L.ffn_norm, config_.dim},
                        {&L.ffn_sub_norm, int64_t(config_.hidden_dim)}})
      if (*p) norms.push_back(p), sizes.push_back(n);
  size_t total = 0;
  for (int64_t n : sizes) total += (size_t(n) * 4 + 63) / 64 * 64;  // each on a cache line of its own
  const size_t huge = size_t(2) << 20;
  norms_ = PageBuffer(total >= (size_t(256) << 10) ? (total + huge - 1) / huge * huge : total);
  uint8_t* at = norms_.data();
  for (size_t i = 0; i < norms.size(); ++i) {
    std::memcpy(at, *norms[i], size_t(sizes[i]) * 4);
    *norms[i] = reinterpret_cast<const float*>(at);
    at += (size_t(sizes[i]) * 4 + 63) / 64 * 64;
  }
}

void Model::bind() {
  const ModelConfig& c = config_;
  const int64_t d = c.dim, ff = c.hidden_dim, q = int64_t(c.n_heads) * c.head_dim,
                kv = int64_t(c.n_kv_heads) * c.head_dim, V = c.vocab_size;
  token_embd = bind_matrix("token_embd.weight", V, d);
  output = (c.tied_output || !c.info.output_allowed) ? token_embd : bind_matrix("output.weight", V, d);
  output_norm = bind_norm("output_norm.weight", d);
  layers.resize(c.n_layers);
  for (uint32_t l = 0; l < c.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    LayerWeights& L = layers[l];
    L.attn_norm = bind_norm(p + "attn_norm.weight", d);
    L.wq = bind_linear(p + "attn_q.weight", q, d);
    L.wk = bind_linear(p + "attn_k.weight", kv, d);
    L.wv = bind_linear(p + "attn_v.weight", kv, d);
    L.wo = bind_linear(p + "attn_output.weight", d, q);
    L.ffn_norm = bind_norm(p + "ffn_norm.weight", d);
    L.w_gate = bind_linear(p + "ffn_gate.weight", ff, d);
    L.w_up = bind_linear(p + "ffn_up.weight", ff, d);
    L.w_down = bind_linear(p + "ffn_down.weight", d, ff);
    if (c.info.sub_norms) {
      L.attn_sub_norm = bind_norm(p + "attn_sub_norm.weight", q);
      L.ffn_sub_norm = bind_norm(p + "ffn_sub_norm.weight", ff);
    }
  }
}

}  // namespace bitnet

namespace bitnet {

// The float LM head is read whole for every generated token. From the file's 4 KiB pages a stream takes
// a TLB miss per page (a one-thread F16 GEMV read 24.8 GB/s from 4 KiB pages, 28.9 GB/s from huge pages;
// whole-model decode differed by less than run-to-run noise), so it is copied into huge-page-advised
// anonymous memory and the file's pages are released: the head is not resident twice. A tied head is
// also the embedding table, which then reads the copy.
void Model::copy_head() {
  const bool tied = output.data == token_embd.data;
  const GgufTensorInfo* t = file_->tensor(tied ? "token_embd.weight" : "output.weight");
  if (!t || output.data != t->data) return;  // realigned: already a copy
  PageBuffer copy(t->nbytes);
  // In 32 MiB pieces, each released once copied, so the head is never resident twice during the copy.
  const uint64_t piece = uint64_t(32) << 20;
  for (uint64_t off = 0; off < t->nbytes; off += piece) {
    const uint64_t n = std::min(piece, t->nbytes - off);
    std::memcpy(copy.data() + off, t->data + off, n);
    file_->release(*t, off, n);
  }
  head_copy_ = std::move(copy);
  output.data = head_copy_.data();
  if (tied) token_embd.data = head_copy_.data();
}

const char* lm_head_name(LmHead h) {
  switch (h) {
    case LmHead::Q8: return "q8";
    case LmHead::Q6: return "q6";
    case LmHead::Q4: return "q4";
    case LmHead::Auto: return "auto";
    default: return "f16";
  }
}

std::optional<LmHead> parse_lm_head(std::string_view name) {
  for (LmHead h : {LmHead::Stored, LmHead::Q8, LmHead::Q6, LmHead::Q4, LmHead::Auto})
    if (name == lm_head_name(h)) return h;
  return std::nullopt;
}

// Rows are independent, so the threads of a pool quantize disjoint ranges (2B-4T: 128256 rows of 2560); nothing
// in the loop throws (buffers are allocated before it).
void Model::quantize_head(LmHead format, int32_t n_threads) {
  const int64_t V = config_.vocab_size, d = config_.dim;
  const int bits = format == LmHead::Q8 ? 8 : format == LmHead::Q6 ? 6 : 4;
  if (bits != 8 && !kernels::qhead_fits(d))
    fail("{}: --lm-head {} needs a model width that is a multiple of 64 and at most {}; this model's is {} "
         "(use q8 or f16)", file_->path(), lm_head_name(format), kernels::kQheadMaxK, d);
  auto h = std::make_unique<QuantHead>();
  h->bits = bits;
  h->row_bytes = bits == 8 ? size_t(d) : kernels::qhead_row_bytes(bits, d);
  const kernels::QheadLayout layout = bits == 8 ? kernels::QheadLayout::Rows : kernels::qhead_layout_for(kernels::active(), d);
  const bool panels = layout == kernels::QheadLayout::Panel16;
  h->w = PageBuffer(bits == 8 ? h->row_bytes * V : kernels::qhead_layout_bytes(layout, bits, V, d));
  h->row_scale.resize(V);
  ThreadPool pool(n_threads > 0 ? n_threads : ThreadPool::default_threads());
  std::vector<float> rows(size_t(pool.size()) * d);  // one float row per thread
  // Panels: each thread quantizes 16 rows into its own buffer and packs them (chunks are multiples of 64 rows).
  std::vector<uint8_t> panel(panels ? size_t(pool.size()) * 16 * h->row_bytes : 0);
  pool.parallel_for(V, 64, [&](int64_t v0, int64_t v1, int thread) {
    float* row = &rows[size_t(thread) * d];
    for (int64_t v = v0; v < v1; ++v) {
      kernels::dequantize_row(output.type, output.data + size_t(v) * output.row_bytes, d, row);
      uint8_t* out = h->w.data() + size_t(v) * h->row_bytes;
      if (panels) {
        uint8_t* mine = &panel[size_t(thread) * 16 * h->row_bytes];
        h->row_scale[v] = kernels::quantize_qhead_row(bits, row, d, mine + size_t(v % 16) * h->row_bytes);
        if (v % 16 == 15 || v + 1 == v1)
          kernels::pack_qhead_panel(bits, mine, v % 16 + 1, d, h->w.data() + size_t(v / 16 * 16) * h->row_bytes);
        continue;
      }
      if (bits != 8) {
        h->row_scale[v] = kernels::quantize_qhead_row(bits, row, d, out);
        continue;
      }
      float amax = 0;
      for (int64_t k = 0; k < d; ++k) amax = std::max(amax, std::fabs(row[k]));
      const float inv = amax > 0 ? 127.0f / amax : 0.0f;
      h->row_scale[v] = amax / 127.0f;
      for (int64_t k = 0; k < d; ++k)
        out[k] = static_cast<uint8_t>(static_cast<int8_t>(std::clamp(std::lround(row[k] * inv), -127L, 127L)));
    }
  });
  quant_head = std::move(h);
  // The float head was read once, whole: its file pages go back (a tied head's embedding rows are read back
  // one at a time as tokens need them).
  const GgufTensorInfo* t = file_->tensor(output.data == token_embd.data ? "token_embd.weight" : "output.weight");
  if (t && output.data == t->data) file_->release(*t);
}

const Linear* Model::find_linear(std::string_view name) const {
  for (const LayerWeights& L : layers)
    for (const Linear* l : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down})
      if (name == l->name) return l;
  return nullptr;
}

}  // namespace bitnet

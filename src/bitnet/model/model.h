// A loaded model: config, vocabulary and weights bound by GGUF name. Weights stay memory-mapped; only
// ternary tensors whose file layout is not the kernels' (TQ2_0, TQ1_0) are repacked (2 bits/weight).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bitnet/base/page_buffer.h"
#include "bitnet/format/gguf.h"
#include "bitnet/model/arch.h"
#include "bitnet/model/weights.h"
#include "bitnet/text/tokenizer.h"

namespace bitnet {

enum class ActQuant {
  Auto,      // BitNet's per-token int8 quantization for ternary weights, none for float weights
  PerToken,  // also for F32/F16/BF16 layers (exactly ternary float weights then run the integer path)
};

// The LM head as the file stores it, or quantized at load for generation (fewer bytes read per token;
// logits change slightly: README "LM head formats").
enum class LmHead {
  Stored,  // as in the file (F16 for the 2B-4T)
  Q8,      // int8 rows, one float scale per row
  Q6,      // 6-bit rows with 8-bit block scales (kernels.h, qhead_*)
  Q4,      // 4-bit rows with 8-bit block scales
  Auto,    // generation's default: Q6 for a float head (F32, F16, BF16; Q8 where the width does not fit Q6),
           // a head the file already quantized (Q8_0, Q6_K, ...) as stored
};
// "f16" (Stored), "q8", "q6", "q4", "auto"; parse_lm_head is nullopt for anything else.
const char* lm_head_name(LmHead h);
std::optional<LmHead> parse_lm_head(std::string_view name);

struct LoadOptions {
  ActQuant act_quant = ActQuant::Auto;
  LmHead lm_head = LmHead::Stored;
  // Threads that quantize the LM head at load (0: ThreadPool::default_threads()).
  int32_t n_threads = 0;
  // Build the tokenizer from the file's vocabulary (an unsupported one is then an error). Off for tools
  // that only need weights (bitnet matmul).
  bool tokenizer = true;
};

// A quantized LM head: [vocab] rows of row_bytes (int8 values for 8 bits, kernels.h's qhead rows for 6 and 4,
// in the layout the active kernel table reads for this width: kernels::qhead_layout_for) with one float scale per
// row. Activations are quantized per token as BitLinear's.
struct QuantHead {
  int bits = 8;
  size_t row_bytes = 0;
  PageBuffer w;
  std::vector<float> row_scale;
};

struct LayerWeights {
  const float* attn_norm = nullptr;      // [dim]
  Linear wq, wk, wv;                     // [n_heads*head_dim | n_kv_heads*head_dim][dim]
  const float* attn_sub_norm = nullptr;  // [n_heads*head_dim] (BitNet only)
  Linear wo;                             // [dim][n_heads*head_dim]
  const float* ffn_norm = nullptr;       // [dim]
  Linear w_gate, w_up;                   // [hidden_dim][dim]
  const float* ffn_sub_norm = nullptr;   // [hidden_dim] (BitNet only)
  Linear w_down;                         // [dim][hidden_dim]
};

class Model {
 public:
  static std::unique_ptr<Model> load(const std::string& path, const LoadOptions& opts = {});

  const ModelConfig& config() const { return config_; }
  const GgufFile& file() const { return *file_; }
  bool has_vocab() const { return has_vocab_; }
  // Built at load, before the weights become resident (it is the largest piece of memory after them);
  // nullptr without a vocabulary or with LoadOptions::tokenizer off.
  const Tokenizer* tokenizer() const { return tokenizer_.get(); }
  // Byte-level BPE without tokenizer.ggml.pre (as in the official 2B-4T GGUF): the LLaMA-3 one is used.
  bool pre_missing() const { return pre_missing_; }
  ActQuant act_quant() const { return opts_.act_quant; }

  FloatWeights token_embd;        // [vocab][dim]
  FloatWeights output;            // [vocab][dim]; token_embd when tied
  const float* output_norm = nullptr;
  std::vector<LayerWeights> layers;
  std::unique_ptr<QuantHead> quant_head;  // set unless the head is used as stored
  // The head in use (LoadOptions::lm_head with Auto resolved).
  LmHead lm_head() const { return lm_head_; }

  // The linear layer bound to a GGUF tensor name ("blk.3.ffn_up.weight"), or nullptr.
  const Linear* find_linear(std::string_view name) const;

 private:
  Model() = default;
  void bind();
  void pack_ternary();
  void copy_norms();
  void quantize_head(LmHead format, int32_t n_threads);
  void copy_head();
  void load_tokenizer();
  Linear bind_linear(const std::string& name, int64_t rows, int64_t cols);
  const float* bind_norm(const std::string& name, int64_t n);
  FloatWeights bind_matrix(const std::string& name, int64_t rows, int64_t cols);

  // Copies of tensors whose file offset is not aligned for their element type (a GGUF with
  // general.alignment below 4): kernels read floats and halves in place, which needs natural alignment.
  const uint8_t* aligned_data(const GgufTensorInfo& t, size_t element_bytes);
  std::vector<std::vector<uint8_t>> realigned_;
  PageBuffer head_copy_;  // the float LM head, moved out of the file (copy_head)
  PageBuffer packed_;     // every ternary layer packed for the active kernel table (pack_ternary)
  PageBuffer norms_;      // every RMSNorm's weights, on huge pages (copy_norms)

  LoadOptions opts_;
  std::unique_ptr<GgufFile> file_;
  ModelConfig config_;
  std::unique_ptr<Tokenizer> tokenizer_;
  bool has_vocab_ = false;
  LmHead lm_head_ = LmHead::Stored;
  bool pre_missing_ = false;
};

}  // namespace bitnet

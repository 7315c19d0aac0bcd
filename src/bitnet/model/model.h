// A loaded model: config, vocabulary and weights bound by GGUF name. Weights stay memory-mapped; only
// ternary tensors whose file layout is not the kernels' (TQ2_0, TQ1_0) are repacked (2 bits/weight).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "bitnet/format/gguf.h"
#include "bitnet/model/arch.h"
#include "bitnet/model/weights.h"
#include "bitnet/text/tokenizer.h"

namespace bitnet {

enum class ActQuant {
  Auto,      // BitNet's per-token int8 quantization for ternary weights, none for float weights
  PerToken,  // also for F32/F16/BF16 layers (exactly ternary float weights then run the integer path)
};

struct LoadOptions {
  ActQuant act_quant = ActQuant::Auto;
  // Quantize the LM head to int8 at load (one scale per row; activations quantized per token like
  // BitLinear's). Halves the head's bytes per decoded token; changes logits slightly (README).
  bool lm_head_q8 = false;
  // Build the tokenizer from the file's vocabulary (an unsupported one is then an error). Off for tools
  // that only need weights (bitnet matmul).
  bool tokenizer = true;
};

// The LM head as int8 rows: [vocab][dim] values in [-127, 127] with one float scale per row.
struct Q8Head {
  std::vector<int8_t> w;
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
  std::unique_ptr<Q8Head> q8_head;  // set with LoadOptions::lm_head_q8

  // The linear layer bound to a GGUF tensor name ("blk.3.ffn_up.weight"), or nullptr.
  const Linear* find_linear(std::string_view name) const;

 private:
  Model() = default;
  void bind();
  void pack_ternary();
  void quantize_head();
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

  LoadOptions opts_;
  std::unique_ptr<GgufFile> file_;
  ModelConfig config_;
  std::unique_ptr<Tokenizer> tokenizer_;
  bool has_vocab_ = false;
  bool pre_missing_ = false;
};

}  // namespace bitnet

// Architectures as data: GGUF key prefix, graph features, and the tensor table with expected shapes.
//
//   bitnet-b1.58 / bitnet-25  bitnet.cpp's 2B-4T graph: sub-norms, ReLU^2, NEOX RoPE, tied LM head
//   bitnet                    llama.cpp's BitNet graph: sub-norms, activation from the file (SiLU when
//                             absent), NEOX RoPE, optional per-tensor `.scale` multipliers
//   llama                     plain LLaMA (used with TQ1_0/TQ2_0 ternary weights): NORM RoPE, SiLU
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace bitnet {

class GgufFile;

enum class Arch { BitnetB158, Bitnet, Llama };
enum class RopeStyle { Neox, Norm };  // Neox: pairs (i, i+d/2); Norm: pairs (2i, 2i+1)
enum class Activation { ReluSqr, Silu, Gelu, Relu };

const char* activation_name(Activation a);
std::optional<Activation> activation_from_name(std::string_view name);

struct ArchInfo {
  Arch arch;
  const char* name;          // canonical general.architecture value
  bool sub_norms;            // attn_sub_norm before attn_output, ffn_sub_norm before ffn_down
  bool output_allowed;       // may carry output.weight (else tied to token_embd)
  bool scale_tensors;        // may carry blk.N.<linear>.scale
  RopeStyle rope;
  Activation default_act;
};

// nullopt for an architecture bitnet does not run. "bitnet-25" maps to BitnetB158.
std::optional<ArchInfo> arch_info(std::string_view general_architecture);
std::string supported_architectures();  // "bitnet-b1.58, bitnet-25, bitnet, llama"

// Hyperparameters from "<arch>.*" keys. Dimension names follow STYLE.md.
struct ModelConfig {
  ArchInfo info;
  std::string arch_name;      // as in the file
  uint32_t dim = 0;           // embedding_length
  uint32_t hidden_dim = 0;    // feed_forward_length
  uint32_t n_layers = 0;      // block_count
  uint32_t n_heads = 0;
  uint32_t n_kv_heads = 0;
  uint32_t head_dim = 0;      // dim / n_heads
  uint32_t rope_dim = 0;      // rope.dimension_count (defaults to head_dim)
  uint32_t vocab_size = 0;    // vocab_size key, else token_embd's ne[1]
  uint32_t n_ctx_train = 0;   // context_length
  float norm_eps = 1e-5f;
  float rope_theta = 10000.0f;
  Activation act = Activation::Silu;
  bool tied_output = true;    // no output.weight: the LM head is token_embd

  // Reads and checks the keys; throws Error naming the file and key on anything missing or absurd.
  static ModelConfig from_gguf(const GgufFile& f);
};

enum class TensorRole { Embedding, Output, Norm, Linear, Scale };

struct ExpectedTensor {
  std::string name;            // GGUF name, e.g. "blk.3.attn_q.weight"
  TensorRole role;
  std::vector<uint64_t> ne;    // expected shape (ne[0] contiguous)
  bool required;
  int layer;                   // -1 for global tensors
  std::string kind;            // table key without the layer: "attn_q", "attn_norm", "token_embd", ...
};

// Every tensor the architecture defines for this config, in file order.
std::vector<ExpectedTensor> expected_tensors(const ModelConfig& c);

// The seven ternary projections of a layer, in file order.
extern const char* const kLinearKinds[7];

}  // namespace bitnet

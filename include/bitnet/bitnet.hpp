// bitnet's public C++ API: load a ternary (BitNet b1.58) GGUF model, tokenize, evaluate, read logits, sample,
// and generate with a per-piece callback that can cancel. This header and bitnet.h (the C API over it) are
// the whole public surface; everything under src/ is private and may change.
//
//   bitnet::api::Engine e = bitnet::api::Engine::load("model.gguf");
//   std::string text = e.generate("It is a truth", 32, {.temperature = 0}, [](std::string_view piece) {
//     std::fwrite(piece.data(), 1, piece.size(), stdout);
//     return true;  // false cancels
//   });
//
// Errors are bitnet::api::Error (a std::runtime_error with a code and a one-line message naming the file,
// value or limit at fault). An Engine is one model with one context (KV cache); use one per thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#define BITNET_API_VERSION_MAJOR 0
#define BITNET_API_VERSION_MINOR 2

namespace bitnet::api {

enum class ErrorCode {
  InvalidArgument = 1,  // a bad value passed to the API (a flag out of range, a token id outside the vocabulary)
  Load = 2,             // the model file cannot be read or is not a usable model
  ContextFull = 3,      // the tokens do not fit the context (n_ctx)
  Internal = 4,         // anything else
};

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_;
};

// The LM head as stored, or quantized at load: fewer bytes read per generated token, slightly different logits
// (README "LM head formats").
enum class LmHead { Stored, Q8, Q6, Q4, Auto };  // Auto: what `bitnet run` uses (q6 for a float head)

struct Params {
  int32_t n_threads = 0;              // 0: every core this process may use
  int32_t n_ctx = 0;                  // 0: the model's training context, at most 4096
  LmHead lm_head = LmHead::Stored;
};

struct ModelInfo {
  std::string architecture;  // general.architecture: "bitnet-b1.58", "bitnet", "llama"
  std::string name;          // general.name, may be empty
  int32_t n_vocab = 0, n_ctx_train = 0, n_layers = 0, dim = 0, n_heads = 0, n_kv_heads = 0;
  int32_t bos = -1, eos = -1;  // -1: none
};

// Sampling, with llama.cpp's defaults; temperature <= 0 is greedy.
struct SampleParams {
  float temperature = 0.8f;
  int32_t top_k = 40;
  float top_p = 0.95f;
  float min_p = 0.05f;
  float repeat_penalty = 1.0f;
  uint64_t seed = 0xFFFFFFFFu;  // 0xFFFFFFFF: a random seed
};

class Engine {
 public:
  static Engine load(const std::string& path, const Params& params = {});
  Engine(Engine&&) noexcept;
  Engine& operator=(Engine&&) noexcept;
  ~Engine();

  ModelInfo info() const;
  int32_t n_ctx() const;   // tokens the context holds
  int32_t n_past() const;  // tokens in it now

  std::vector<int32_t> tokenize(std::string_view text, bool add_bos = true, bool parse_special = false) const;
  std::string detokenize(std::span<const int32_t> ids) const;

  // Appends tokens to the context and computes the logits of the last one.
  void eval(std::span<const int32_t> tokens);
  // Logits of the last evaluated token, n_vocab floats (valid until the next eval/reset).
  std::span<const float> logits() const;
  // Keeps the first n tokens of the context, drops the rest.
  void reset(int32_t n = 0);
  // A token drawn from logits() (with a sampler created, and seeded, on the first call or when p changes).
  int32_t sample(const SampleParams& p);

  // Continues `prompt` (tokenized with BOS as the model wants; a cached prefix is reused) for at most
  // max_tokens tokens (-1: until end of generation or the context is full), streaming text pieces to
  // on_piece as they become final; on_piece returning false cancels. Returns the generated text.
  std::string generate(std::string_view prompt, int32_t max_tokens, const SampleParams& p = {},
                       const std::function<bool(std::string_view piece)>& on_piece = nullptr);

 private:
  struct Impl;
  explicit Engine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// "0.2" for API 0.2: the header's BITNET_API_VERSION_* as the library was built with them.
const char* api_version();

}  // namespace bitnet::api

// The public C++ API (include/bitnet/bitnet.hpp) over the engine: Session, Sampler, generate().
#include <bitnet/bitnet.hpp>

#include <new>

#include "bitnet/base/error.h"
#include "bitnet/engine/generate.h"
#include "bitnet/engine/session.h"
#include "bitnet/sampling/sampler.h"

namespace bitnet::api {

namespace {

// Runs fn, turning the engine's exceptions into api::Error (the engine throws bitnet::Error).
template <typename F>
auto guarded(ErrorCode code, F&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const api::Error&) {
    throw;
  } catch (const bitnet::Error& e) {
    throw api::Error(code, e.what());
  } catch (const std::bad_alloc&) {
    throw api::Error(ErrorCode::Internal, "out of memory");
  } catch (const std::exception& e) {
    throw api::Error(ErrorCode::Internal, e.what());
  }
}

bitnet::SamplingParams sampling(const SampleParams& p) {
  bitnet::SamplingParams s;
  s.temperature = p.temperature;
  s.top_k = p.top_k;
  s.top_p = p.top_p;
  s.min_p = p.min_p;
  s.repeat_penalty = p.repeat_penalty;
  s.seed = p.seed == 0xFFFFFFFFu ? bitnet::kRandomSeed : p.seed;
  return s;
}

// Error naming the first id outside the vocabulary [0, n_vocab).
void check_ids(std::span<const int32_t> ids, int32_t n_vocab) {
  for (const int32_t id : ids)
    if (id < 0 || id >= n_vocab)
      throw api::Error(ErrorCode::InvalidArgument, "token id " + std::to_string(id) +
                                                       " is outside the vocabulary (0.." + std::to_string(n_vocab - 1) + ")");
}

bool same(const SampleParams& a, const SampleParams& b) {
  return a.temperature == b.temperature && a.top_k == b.top_k && a.top_p == b.top_p && a.min_p == b.min_p &&
         a.repeat_penalty == b.repeat_penalty && a.seed == b.seed;
}

}  // namespace

struct Engine::Impl {
  std::unique_ptr<Session> session;
  std::vector<float> last;  // logits of the last evaluated token
  std::unique_ptr<Sampler> sampler;
  SampleParams sampler_params;
};

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::Engine(Engine&&) noexcept = default;
Engine& Engine::operator=(Engine&&) noexcept = default;
Engine::~Engine() = default;

Engine Engine::load(const std::string& path, const Params& params) {
  return guarded(ErrorCode::Load, [&] {
    if (params.n_threads < 0 || params.n_ctx < 0)
      throw api::Error(ErrorCode::InvalidArgument, "n_threads and n_ctx must not be negative");
    SessionOptions o;
    o.n_threads = params.n_threads;
    o.n_ctx = params.n_ctx;
    switch (params.lm_head) {
      case LmHead::Stored: o.lm_head = bitnet::LmHead::Stored; break;
      case LmHead::Q8: o.lm_head = bitnet::LmHead::Q8; break;
      case LmHead::Q6: o.lm_head = bitnet::LmHead::Q6; break;
      case LmHead::Q4: o.lm_head = bitnet::LmHead::Q4; break;
      case LmHead::Auto: o.lm_head = bitnet::LmHead::Auto; break;
      default: throw api::Error(ErrorCode::InvalidArgument, "lm_head is not an LmHead value");
    }
    auto impl = std::make_unique<Impl>();
    impl->session = std::make_unique<Session>(path, o);
    impl->session->tokenizer();  // a model without a vocabulary is refused here, not at first use
    return Engine(std::move(impl));
  });
}

ModelInfo Engine::info() const {
  const Model& m = impl_->session->model();
  const ModelConfig& c = m.config();
  ModelInfo i;
  i.architecture = c.arch_name;
  i.name = m.file().get_string("general.name").value_or("");
  i.n_vocab = static_cast<int32_t>(c.vocab_size);
  i.n_ctx_train = static_cast<int32_t>(c.n_ctx_train);
  i.n_layers = static_cast<int32_t>(c.n_layers);
  i.dim = static_cast<int32_t>(c.dim);
  i.n_heads = static_cast<int32_t>(c.n_heads);
  i.n_kv_heads = static_cast<int32_t>(c.n_kv_heads);
  const Tokenizer& t = impl_->session->tokenizer();
  i.bos = t.bos_id();
  i.eos = t.eos_id();
  return i;
}

int32_t Engine::n_ctx() const { return impl_->session->n_ctx(); }
int32_t Engine::n_past() const { return impl_->session->n_past(); }

std::vector<int32_t> Engine::tokenize(std::string_view text, bool add_bos, bool parse_special) const {
  return guarded(ErrorCode::InvalidArgument, [&] {
    const Tokenizer& t = impl_->session->tokenizer();
    return t.encode(text, add_bos && t.add_bos_default(), parse_special);
  });
}

std::string Engine::detokenize(std::span<const int32_t> ids) const {
  return guarded(ErrorCode::InvalidArgument, [&] {
    check_ids(ids, impl_->session->n_vocab());
    return impl_->session->tokenizer().decode(ids);
  });
}

void Engine::eval(std::span<const int32_t> tokens) {
  guarded(ErrorCode::InvalidArgument, [&] {
    if (tokens.empty()) throw api::Error(ErrorCode::InvalidArgument, "eval: no tokens");
    check_ids(tokens, impl_->session->n_vocab());
    if (impl_->session->n_past() + static_cast<int64_t>(tokens.size()) > impl_->session->n_ctx())
      throw api::Error(ErrorCode::ContextFull,
                       std::to_string(impl_->session->n_past()) + " tokens in the context and " +
                           std::to_string(tokens.size()) + " more do not fit its " +
                           std::to_string(impl_->session->n_ctx()));
    impl_->session->eval(std::vector<int32_t>(tokens.begin(), tokens.end()), nullptr, &impl_->last);
  });
}

std::span<const float> Engine::logits() const { return impl_->last; }

void Engine::reset(int32_t n) {
  guarded(ErrorCode::InvalidArgument, [&] {
    if (n < 0 || n > impl_->session->n_past())
      throw api::Error(ErrorCode::InvalidArgument, "reset(" + std::to_string(n) + "): the context holds " +
                                                       std::to_string(impl_->session->n_past()) + " tokens");
    impl_->session->truncate(n);
    impl_->last.clear();
  });
}

int32_t Engine::sample(const SampleParams& p) {
  return guarded(ErrorCode::InvalidArgument, [&] {
    if (impl_->last.empty()) throw api::Error(ErrorCode::InvalidArgument, "sample: no logits yet (eval first)");
    if (!impl_->sampler || !same(p, impl_->sampler_params)) {
      impl_->sampler = std::make_unique<Sampler>(sampling(p), impl_->session->n_vocab());
      impl_->sampler_params = p;
    }
    const int32_t id = impl_->sampler->sample(impl_->last.data());
    impl_->sampler->accept(id);
    return id;
  });
}

std::string Engine::generate(std::string_view prompt, int32_t max_tokens, const SampleParams& p,
                             const std::function<bool(std::string_view)>& on_piece) {
  return guarded(ErrorCode::InvalidArgument, [&] {
    if (max_tokens < -1) throw api::Error(ErrorCode::InvalidArgument, "max_tokens must be -1 or more");
    const Tokenizer& t = impl_->session->tokenizer();
    const std::vector<int32_t> ids = t.encode(prompt, t.add_bos_default(), /*parse_special=*/false);
    if (ids.empty()) throw api::Error(ErrorCode::InvalidArgument, "generate: the prompt is empty");
    if (static_cast<int64_t>(ids.size()) >= impl_->session->n_ctx())
      throw api::Error(ErrorCode::ContextFull, "the prompt has " + std::to_string(ids.size()) +
                                                   " tokens; the context holds " + std::to_string(impl_->session->n_ctx()));
    GenerateParams g;
    g.n_predict = max_tokens;
    g.sampling = sampling(p);
    const GenerateResult r = bitnet::generate(*impl_->session, ids, g, [&](std::string_view piece) {
      return on_piece ? on_piece(piece) : true;
    });
    impl_->last.clear();  // generate() keeps its own logits; eval() again before logits()/sample()
    return r.text;
  });
}

const char* api_version() {
#define BITNET_STR2(x) #x
#define BITNET_STR(x) BITNET_STR2(x)
  return BITNET_STR(BITNET_API_VERSION_MAJOR) "." BITNET_STR(BITNET_API_VERSION_MINOR);
}

}  // namespace bitnet::api

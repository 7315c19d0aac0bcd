// The C API (include/bitnet/bitnet.h) over the C++ API: opaque handles, status codes, a per-thread message;
// every exception stops here.
#include <bitnet/bitnet.h>

#include <bitnet/bitnet.hpp>
#include <cstring>
#include <new>
#include <string>

struct bitnet_engine {
  bitnet::api::Engine engine;
};

namespace {

thread_local std::string g_error;

bitnet_status to_status(bitnet::api::ErrorCode c) {
  switch (c) {
    case bitnet::api::ErrorCode::InvalidArgument: return BITNET_ERR_INVALID_ARGUMENT;
    case bitnet::api::ErrorCode::Load: return BITNET_ERR_LOAD;
    case bitnet::api::ErrorCode::ContextFull: return BITNET_ERR_CONTEXT_FULL;
    default: return BITNET_ERR_INTERNAL;
  }
}

template <typename F>
bitnet_status guarded(F&& fn) {
  try {
    g_error.clear();
    return fn();
  } catch (const bitnet::api::Error& e) {
    g_error = e.what();
    return to_status(e.code());
  } catch (const std::bad_alloc&) {
    g_error = "out of memory";
    return BITNET_ERR_INTERNAL;
  } catch (const std::exception& e) {
    g_error = e.what();
    return BITNET_ERR_INTERNAL;
  } catch (...) {
    g_error = "unknown error";
    return BITNET_ERR_INTERNAL;
  }
}

bitnet_status invalid(const char* what) {
  g_error = what;
  return BITNET_ERR_INVALID_ARGUMENT;
}

bitnet::api::SampleParams sample_params(const bitnet_sample_params* p) {
  bitnet::api::SampleParams s;
  if (!p) return s;
  s.temperature = p->temperature;
  s.top_k = p->top_k;
  s.top_p = p->top_p;
  s.min_p = p->min_p;
  s.repeat_penalty = p->repeat_penalty;
  s.seed = p->seed;
  return s;
}

}  // namespace

extern "C" {

const char* bitnet_api_version(void) { return bitnet::api::api_version(); }
const char* bitnet_last_error(void) { return g_error.c_str(); }

bitnet_params bitnet_default_params(void) {
  const bitnet::api::Params d;
  return bitnet_params{d.n_threads, d.n_ctx, static_cast<int32_t>(d.lm_head)};
}

bitnet_sample_params bitnet_default_sample_params(void) {
  const bitnet::api::SampleParams d;
  return bitnet_sample_params{d.temperature, d.top_k, d.top_p, d.min_p, d.repeat_penalty, d.seed};
}

bitnet_status bitnet_engine_load(const char* path, const bitnet_params* params, bitnet_engine** out) {
  if (!path || !out) return invalid("bitnet_engine_load: path and out must not be NULL");
  *out = nullptr;
  return guarded([&] {
    bitnet::api::Params p;
    if (params) {
      p.n_threads = params->n_threads;
      p.n_ctx = params->n_ctx;
      if (params->lm_head < BITNET_LM_HEAD_STORED || params->lm_head > BITNET_LM_HEAD_AUTO)
        return invalid(("bitnet_engine_load: lm_head " + std::to_string(params->lm_head) +
                       " is not a bitnet_lm_head (0 to 4)")
                           .c_str());
      p.lm_head = static_cast<bitnet::api::LmHead>(params->lm_head);
    }
    *out = new bitnet_engine{bitnet::api::Engine::load(path, p)};
    return BITNET_OK;
  });
}

void bitnet_engine_free(bitnet_engine* engine) { delete engine; }

bitnet_status bitnet_model_get_info(const bitnet_engine* e, bitnet_model_info* out) {
  if (!e || !out) return invalid("bitnet_model_get_info: engine and out must not be NULL");
  return guarded([&] {
    const bitnet::api::ModelInfo i = e->engine.info();
    std::memset(out, 0, sizeof(*out));
    std::strncpy(out->architecture, i.architecture.c_str(), sizeof(out->architecture) - 1);
    out->n_vocab = i.n_vocab, out->n_ctx_train = i.n_ctx_train, out->n_layers = i.n_layers, out->dim = i.dim;
    out->n_heads = i.n_heads, out->n_kv_heads = i.n_kv_heads, out->bos = i.bos, out->eos = i.eos;
    return BITNET_OK;
  });
}

int32_t bitnet_n_ctx(const bitnet_engine* e) { return e ? e->engine.n_ctx() : 0; }
int32_t bitnet_n_past(const bitnet_engine* e) { return e ? e->engine.n_past() : 0; }

bitnet_status bitnet_tokenize(const bitnet_engine* e, const char* text, size_t len, int add_bos, int parse_special,
                              int32_t* ids, size_t cap, size_t* n_out) {
  if (!e || (!text && len) || (!ids && cap) || !n_out) return invalid("bitnet_tokenize: a NULL argument");
  return guarded([&] {
    const auto v = e->engine.tokenize(std::string_view(text ? text : "", len), add_bos != 0, parse_special != 0);
    *n_out = v.size();
    if (v.size() > cap) {
      g_error = "bitnet_tokenize: " + std::to_string(v.size()) + " ids do not fit " + std::to_string(cap);
      return BITNET_ERR_BUFFER_TOO_SMALL;
    }
    std::copy(v.begin(), v.end(), ids);
    return BITNET_OK;
  });
}

bitnet_status bitnet_detokenize(const bitnet_engine* e, const int32_t* ids, size_t n, char* buf, size_t cap,
                                size_t* n_out) {
  if (!e || (!ids && n) || (!buf && cap) || !n_out) return invalid("bitnet_detokenize: a NULL argument");
  return guarded([&] {
    const std::string s = e->engine.detokenize(std::span<const int32_t>(ids, n));
    *n_out = s.size();
    if (s.size() + 1 > cap) {
      g_error = "bitnet_detokenize: " + std::to_string(s.size() + 1) + " bytes do not fit " + std::to_string(cap);
      return BITNET_ERR_BUFFER_TOO_SMALL;
    }
    std::memcpy(buf, s.data(), s.size());
    buf[s.size()] = '\0';
    return BITNET_OK;
  });
}

bitnet_status bitnet_eval(bitnet_engine* e, const int32_t* ids, size_t n) {
  if (!e || (!ids && n)) return invalid("bitnet_eval: a NULL argument");
  return guarded([&] {
    e->engine.eval(std::span<const int32_t>(ids, n));
    return BITNET_OK;
  });
}

const float* bitnet_logits(const bitnet_engine* e) {
  if (!e || e->engine.logits().empty()) return nullptr;
  return e->engine.logits().data();
}

bitnet_status bitnet_reset(bitnet_engine* e, int32_t n) {
  if (!e) return invalid("bitnet_reset: engine is NULL");
  return guarded([&] {
    e->engine.reset(n);
    return BITNET_OK;
  });
}

bitnet_status bitnet_sample(bitnet_engine* e, const bitnet_sample_params* params, int32_t* id_out) {
  if (!e || !id_out) return invalid("bitnet_sample: engine and id_out must not be NULL");
  return guarded([&] {
    *id_out = e->engine.sample(sample_params(params));
    return BITNET_OK;
  });
}

bitnet_status bitnet_generate(bitnet_engine* e, const char* prompt, int32_t max_tokens, const bitnet_sample_params* params,
                              bitnet_piece_callback on_piece, void* user_data) {
  if (!e || !prompt) return invalid("bitnet_generate: engine and prompt must not be NULL");
  bool cancelled = false;
  const bitnet_status st = guarded([&] {
    e->engine.generate(prompt, max_tokens, sample_params(params), [&](std::string_view piece) {
      if (!on_piece || on_piece(piece.data(), piece.size(), user_data)) return true;
      cancelled = true;
      return false;
    });
    return BITNET_OK;
  });
  if (st == BITNET_OK && cancelled) {
    g_error = "bitnet_generate: cancelled by the callback";
    return BITNET_ERR_CANCELLED;
  }
  return st;
}

}  // extern "C"

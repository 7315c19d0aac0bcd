// bitnet serve [-m MODEL] [--host 127.0.0.1] [--port 8080] [--parallel N] [-c CTX] [--api-key KEY]
//              [--max-queue N] [--timeout S] [-n MAX_TOKENS] [--chunk N] [--max-body BYTES]
//              [--lookup | -md DRAFT.gguf]: an OpenAI-compatible server (src/bitnet/server/).
#include "bitnet/base/error.h"
#include "bitnet/server/http_server.h"
#include "commands.h"
#include "model_flags.h"

namespace bitnet::cli {

Action register_serve(CLI::App& app) {
  struct Opts {
    ModelFlags model;
    std::string host = "127.0.0.1", api_key, draft_model;
    int port = 8080, parallel = 4, max_queue = 64, timeout = 600, chunk = 128, max_tokens = -1;
    size_t max_body = 8u << 20;
    bool lookup = false, draft_fixed = false;
    int32_t draft_max = 8;
  };
  auto o = std::make_shared<Opts>();
  o->model.lm_head = "auto";  // generation: the 6-bit head (README "LM head formats"); eval/perplexity keep the file's
  o->model.add(app);
  app.add_option("--host", o->host, "Address to listen on (loopback by default)")->capture_default_str();
  app.add_option("--port", o->port, "Port (0: any free port, printed)")->capture_default_str()->check(CLI::Range(0, 65535));
  app.add_option("--parallel", o->parallel, "Sequences decoding together, each in its own KV cache slot of -c tokens")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  app.add_option("--api-key", o->api_key, "Require 'Authorization: Bearer KEY' (all endpoints but /health)");
  app.add_option("--max-queue", o->max_queue, "Requests waiting for a slot; more get 503 with Retry-After")
      ->capture_default_str()
      ->check(CLI::Range(0, 1 << 20));
  app.add_option("--timeout", o->timeout, "Socket read/write timeout in seconds")->capture_default_str()->check(CLI::Range(1, 86400));
  app.add_option("--chunk", o->chunk, "Prompt tokens per sequence per step (long prompts interleave with decoding)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 16));
  app.add_option("-n,--max-tokens", o->max_tokens,
                 "Most tokens one request may generate; a larger max_tokens is clamped (-1: until the context is full)")
      ->capture_default_str()
      ->check(CLI::Range(-1, 1 << 24));
  app.add_option("--max-body", o->max_body, "Largest request body in bytes (larger: 413)")->capture_default_str();
  auto* lookup = app.add_flag("--lookup", o->lookup, "Speculative decoding with prompt lookup: drafts from each "
                              "request's own context, verified in the batch (same output, faster where text repeats)");
  auto* md = app.add_option("--md,--model-draft", o->draft_model,
                            "Speculative decoding with a draft model of the same vocabulary (-md FILE): it drafts "
                            "for every decoding request at once, verified in the batch (same output)");
  lookup->excludes(md);
  app.add_option("--draft-max", o->draft_max, "Drafted tokens per sequence per step")->capture_default_str()->check(CLI::Range(1, 64));
  app.add_flag("--draft-fixed", o->draft_fixed, "Draft in full (default: as many tokens as pay off)");
  return [o]() {
    const SessionOptions so = o->model.session_options();
    ServerOptions s;
    s.model_path = o->model.path();
    s.draft_model_path = o->draft_model;
    s.load.act_quant = so.act_quant;
    s.load.lm_head = so.lm_head;
    s.load.n_threads = so.n_threads;
    s.sched.parallel = o->parallel;
    s.sched.n_ctx = so.n_ctx;
    s.sched.n_batch = so.n_batch;
    s.sched.chunk = o->chunk;
    s.sched.max_queue = o->max_queue;
    s.sched.threads = so.n_threads;
    s.sched.kv_type = so.kv_type;
    s.sched.lookup = o->lookup;
    s.sched.draft_max = o->draft_max;
    s.sched.draft_fixed = o->draft_fixed;
    s.host = o->host;
    s.port = o->port;
    s.api_key = o->api_key;
    s.timeout_s = o->timeout;
    s.max_body = o->max_body;
    s.max_tokens = o->max_tokens;
    return run_server(s);
  };
}

}  // namespace bitnet::cli

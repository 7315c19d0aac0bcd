// `bitnet serve`: an OpenAI-compatible HTTP server over the continuous-batching Scheduler.
//
//   POST /v1/chat/completions, /v1/completions   (stream: server-sent events, then "data: [DONE]")
//   GET  /v1/models, /health (503 while loading), /metrics (Prometheus text)
//   POST /tokenize, /detokenize                  (llama-server's forms)
//
// Every error is an OpenAI error object {"error": {"message", "type", "param", "code"}} with its status.
// HTTP is cpp-httplib (Debian libcpp-httplib-dev), as llama-server uses.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "bitnet/model/model.h"
#include "bitnet/server/scheduler.h"

namespace bitnet {

struct ServerOptions {
  std::string model_path;
  std::string draft_model_path;    // non-empty: speculative decoding with this draft model (-md)
  LoadOptions load;
  SchedulerOptions sched;
  std::string host = "127.0.0.1";
  int port = 8080;                 // 0: any free port (the one taken is printed)
  std::string api_key;             // non-empty: every endpoint but /health wants "Authorization: Bearer KEY"
  int timeout_s = 600;             // socket read/write timeout
  size_t max_body = 8u << 20;      // bytes; larger bodies get 413
  int32_t max_tokens = -1;         // >= 0: the most tokens one request generates (larger max_tokens are clamped)
};

// The server: routes, the scheduler once load() has run, and the listening socket once serve() runs.
class ApiServer {
 public:
  explicit ApiServer(const ServerOptions& opts);  // routes only: /health answers 503 until load()
  ~ApiServer();
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  // Loads the model and starts the scheduler. Throws bitnet::Error when the model cannot be loaded.
  void load();
  // One HTTP/1.1 request (bytes as a client sends them) answered without a socket: the response's bytes,
  // streamed ones in full. For tests and the fuzz target; thread-safe, one request at a time.
  std::string handle(std::string_view request);
  // Binds, prints "bitnet serve: listening on http://HOST:PORT" to stderr, loads the model and serves
  // until SIGINT or SIGTERM. Returns the exit code; throws bitnet::Error when the address cannot be bound
  // or the model cannot be loaded.
  int serve();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// ApiServer(opts).serve().
int run_server(const ServerOptions& opts);

}  // namespace bitnet

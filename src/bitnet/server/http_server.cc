#include "bitnet/server/http_server.h"

#include <httplib.h>
#include <pthread.h>
#include <signal.h>
#include <dirent.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "bitnet/base/error.h"
#include "bitnet/server/request.h"
#include "bitnet/text/chat_template.h"

namespace bitnet {

namespace {

using nlohmann::json;

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  res.set_content(api_error_json(e), "application/json");
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// Equality that takes the same time wherever the strings first differ (API keys).
bool constant_time_equal(const std::string& a, const std::string& b) {
  const size_t n = std::max(a.size(), b.size());
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i)
    diff |= static_cast<unsigned char>((i < a.size() ? a[i] : 0) ^ (i < b.size() ? b[i] : 0));
  return diff == 0;
}

std::string random_id(const char* prefix) {
  static std::atomic<uint64_t> counter{0};
  const uint64_t t = static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
  return fmt::format("{}-{:x}{:04x}", prefix, t, counter.fetch_add(1) & 0xffff);
}

// Whether the client of a request is still connected while its job waits for a slot or computes: a
// non-streaming completion writes nothing until it is done, a streaming one nothing before its first token
// (after that a failed write tells). cpp-httplib 0.11 does not hand a
// handler its socket, so the watch finds it among the process's descriptors by the connection's four
// addresses (local and remote host and port, which no two open TCP sockets share); the handler runs on the
// thread that owns the socket, so it stays open meanwhile. The client has gone when poll reports that it
// closed or shut down its sending side (even with unread bytes queued), or an error: a client that
// half-closes while it waits for the answer counts as gone too. Without a socket (ApiServer::handle) it
// never goes.
class ClientWatch {
 public:
  // The connection's addresses as cpp-httplib gives them (copied: a streaming answer outlives its handler).
  struct Peer {
    std::string remote_addr, local_addr;
    int remote_port = -1, local_port = -1;
  };
  static Peer peer_of(const httplib::Request& req) {
    return {req.remote_addr, req.local_addr, req.remote_port, req.local_port};
  }
  // Looks for the socket now, while the request has just been read: a client that closes its connection
  // may reset it, and a reset socket no longer names its peer.
  explicit ClientWatch(Peer peer) : peer_(std::move(peer)), fd_(find_socket()) {}

  // job.next() that also cancels the job once the client has gone (looked at every kPeriod): false when
  // the job has finished and every token has been taken.
  bool next(Job& job, TokenEvent* e) {
    while (true) {
      const Job::Wait w = job.next_until(e, check_at_);
      if (w == Job::Wait::Finished) return false;
      if (std::chrono::steady_clock::now() >= check_at_) {
        if (!job.cancelled() && gone()) job.cancel(), left_ = true;  // the scheduler drops it at its next step
        check_at_ = std::chrono::steady_clock::now() + kPeriod;
      }
      if (w == Job::Wait::Token) return true;
    }
  }

  // Whether next() cancelled the job because the client had gone.
  bool left() const { return left_; }

 private:
  bool gone() const {
    if (fd_ < 0) return false;
    pollfd p{fd_, POLLRDHUP, 0};
    return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
  }

  // The port and numeric host of a socket address (getnameinfo, as cpp-httplib writes Request::remote_addr
  // and local_addr); false for anything but IPv4/IPv6 or when `want_port` differs (no host lookup then).
  static bool address_of(const sockaddr_storage& a, socklen_t len, int want_port, std::string* host) {
    int port = -1;
    if (a.ss_family == AF_INET) port = ntohs(reinterpret_cast<const sockaddr_in&>(a).sin_port);
    else if (a.ss_family == AF_INET6) port = ntohs(reinterpret_cast<const sockaddr_in6&>(a).sin6_port);
    if (port < 0 || port != want_port) return false;
    char h[NI_MAXHOST];
    if (::getnameinfo(reinterpret_cast<const sockaddr*>(&a), len, h, sizeof h, nullptr, 0, NI_NUMERICHOST) != 0)
      return false;
    *host = h;
    return true;
  }

  int find_socket() const {
    if (peer_.remote_port <= 0 || peer_.local_port <= 0) return -1;
    const std::unique_ptr<DIR, int (*)(DIR*)> dir(::opendir("/proc/self/fd"), ::closedir);
    if (!dir) return -1;
    std::string host;
    while (const dirent* e = ::readdir(dir.get())) {
      char* end = nullptr;
      const long fd = std::strtol(e->d_name, &end, 10);
      if (end == e->d_name || *end != '\0' || fd == ::dirfd(dir.get())) continue;
      sockaddr_storage a{};
      socklen_t len = sizeof a;
      if (::getsockname(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&a), &len) != 0 ||
          !address_of(a, len, peer_.local_port, &host) || host != peer_.local_addr)
        continue;
      len = sizeof a;
      if (::getpeername(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&a), &len) != 0 ||
          !address_of(a, len, peer_.remote_port, &host) || host != peer_.remote_addr)
        continue;
      return static_cast<int>(fd);
    }
    return -1;
  }

  static constexpr std::chrono::milliseconds kPeriod{100};
  Peer peer_;
  int fd_ = -1;
  bool left_ = false;
  std::chrono::steady_clock::time_point check_at_ = std::chrono::steady_clock::now() + kPeriod;
};

// Request counts by endpoint and status for /metrics.
class RequestCounter {
 public:
  void add(const std::string& endpoint, int status) {
    std::lock_guard lock(mu_);
    ++counts_[{endpoint, status}];
  }
  std::map<std::pair<std::string, int>, uint64_t> snapshot() const {
    std::lock_guard lock(mu_);
    return counts_;
  }

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> counts_;
};

const std::set<std::string> kGetPaths = {"/health", "/metrics", "/v1/models", "/models"};
const std::set<std::string> kPostPaths = {"/v1/chat/completions", "/chat/completions", "/v1/completions",
                                          "/completions", "/tokenize", "/detokenize"};

// httplib's server with its request processing opened to ApiServer::handle (no socket).
class Http : public httplib::Server {
 public:
  using httplib::Server::process_request;
  // Streamed responses stop early while the server looks shut down (no listening socket): stand one in.
  void set_listening_socket(socket_t s) { svr_sock_ = s; }
};

// One HTTP/1.1 exchange over strings: reads the request from `in`, appends the response to `out`.
class StringStream : public httplib::Stream {
 public:
  explicit StringStream(std::string_view in) : in_(in) {}
  bool is_readable() const override { return pos_ < in_.size(); }
  bool is_writable() const override { return true; }
  ssize_t read(char* ptr, size_t size) override {
    const size_t n = std::min(size, in_.size() - pos_);
    std::copy_n(in_.data() + pos_, n, ptr);
    pos_ += n;
    return static_cast<ssize_t>(n);
  }
  ssize_t write(const char* ptr, size_t size) override {
    out_.append(ptr, size);
    return static_cast<ssize_t>(size);
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override { ip = "127.0.0.1", port = 0; }
  void get_local_ip_and_port(std::string& ip, int& port) const override { ip = "127.0.0.1", port = 0; }
  socket_t socket() const override { return INVALID_SOCKET; }
  std::string take() { return std::move(out_); }

 private:
  std::string_view in_;
  size_t pos_ = 0;
  std::string out_;
};

class Server {
 public:
  explicit Server(const ServerOptions& o);
  ~Server();

  void load();
  std::string handle(std::string_view request);
  int serve();

 private:
  void routes();
  void completion(const httplib::Request& req, httplib::Response& res, bool chat);
  void stream(const httplib::Request& req, httplib::Response& res, std::shared_ptr<Job> job, bool chat,
              bool include_usage, bool logprobs);
  json logprob_entry(const TokenEvent& e, bool chat) const;
  json legacy_top(const TokenEvent& e) const;  // /v1/completions' {token text: logprob} of the top ids
  std::string metrics_text() const;
  Scheduler& sched() const { return *sched_; }
  const Tokenizer& tok() const { return *sched_->model().tokenizer(); }

  ServerOptions o_;
  Http http_;
  std::unique_ptr<Scheduler> sched_;
  RequestContext context_;             // what request parsing needs of the model, set by load()
  std::atomic<bool> ready_{false};
  std::atomic<bool> draining_{false};  // a stop signal came: refuse new requests, finish the others
  std::atomic<bool> quitting_{false};  // the signal thread is woken to exit, not to drain
  static constexpr int kDrainSeconds = 30;
  std::string model_id_;
  int64_t created_ = 0;
  RequestCounter requests_;
  int stand_in_socket_ = -1;           // handle()'s listening-socket stand-in
  std::mutex handle_mu_;
};

json Server::logprob_entry(const TokenEvent& e, bool chat) const {
  auto token_json = [&](int32_t id, float lp) {
    const std::string text = tok().decode(std::vector<int32_t>{id});
    json bytes = json::array();
    for (unsigned char c : text) bytes.push_back(c);
    return json{{"token", text}, {"logprob", lp}, {"bytes", bytes}};
  };
  json j = token_json(e.id, e.logprob);
  if (chat) {
    json top = json::array();
    for (const auto& [id, lp] : e.top) top.push_back(token_json(id, lp));
    j["top_logprobs"] = top;
  }
  return j;
}

json Server::legacy_top(const TokenEvent& e) const {
  json top = json::object();
  for (const auto& [id, lp] : e.top) top[tok().decode(std::vector<int32_t>{id})] = lp;
  return top;
}

void Server::completion(const httplib::Request& req, httplib::Response& res, bool chat) {
  CompletionRequest c = parse_completion_request(req.body, chat, context_);
  std::shared_ptr<Job> job = sched().submit(c.req);
  if (!job) {
    res.set_header("Retry-After", "1");
    throw ApiError{503, "the server is busy: its request queue is full; retry later", "", "server_error", "queue_full"};
  }
  if (c.stream) return stream(req, res, std::move(job), chat, c.include_usage, c.logprobs);

  std::string text;
  json lp_entries = json::array();
  json tokens = json::array(), token_lps = json::array(), tops = json::array(), offsets = json::array();
  ClientWatch client(ClientWatch::peer_of(req));  // a client that has gone cancels its sequence
  TokenEvent e;
  while (client.next(*job, &e)) {
    if (c.logprobs) {
      if (chat) {
        lp_entries.push_back(logprob_entry(e, true));
      } else {
        offsets.push_back(text.size());
        tokens.push_back(tok().decode(std::vector<int32_t>{e.id}));
        token_lps.push_back(e.logprob);
        tops.push_back(legacy_top(e));
      }
    }
    text += e.text;
  }
  const JobResult& r = job->result();
  // Nobody reads this answer; 499 (nginx's "client closed request") keeps it apart in /metrics and logs.
  if (client.left()) throw ApiError{499, "the client closed the connection before the answer", "", "client_closed"};
  if (!r.error.empty()) throw ApiError{500, r.error, "", "server_error"};
  text += r.tail;
  json usage{{"prompt_tokens", r.n_prompt}, {"completion_tokens", r.n_generated},
             {"total_tokens", r.n_prompt + r.n_generated},
             {"prompt_tokens_details", {{"cached_tokens", r.n_cached}}}};
  json choice{{"index", 0}, {"finish_reason", r.finish_reason}};
  if (chat) {
    choice["message"] = {{"role", "assistant"}, {"content", text}};
    choice["logprobs"] = c.logprobs ? json{{"content", lp_entries}} : json();
  } else {
    choice["text"] = text;
    choice["logprobs"] = c.logprobs ? json{{"tokens", tokens}, {"token_logprobs", token_lps}, {"top_logprobs", tops},
                                           {"text_offset", offsets}}
                                    : json();
  }
  json out{{"id", random_id(chat ? "chatcmpl" : "cmpl")},
           {"object", chat ? "chat.completion" : "text_completion"},
           {"created", static_cast<int64_t>(std::time(nullptr))},
           {"model", model_id_},
           {"choices", json::array({choice})},
           {"usage", usage}};
  res.set_content(dump(out), "application/json");
}

void Server::stream(const httplib::Request& req, httplib::Response& res, std::shared_ptr<Job> job, bool chat,
                    bool include_usage, bool logprobs) {
  const std::string id = random_id(chat ? "chatcmpl" : "cmpl");
  const int64_t created = static_cast<int64_t>(std::time(nullptr));
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");  // nginx: pass events through as they come
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, job, id, created, chat, include_usage, logprobs, client = ClientWatch(ClientWatch::peer_of(req))](
          size_t, httplib::DataSink& sink) mutable {
        auto send = [&](const json& j) {
          const std::string ev = "data: " + dump(j) + "\n\n";
          return sink.write(ev.data(), ev.size());
        };
        auto chunk = [&](const std::string& text, const json& finish, const TokenEvent* e) {
          json choice{{"index", 0}, {"finish_reason", finish}};
          if (chat) {
            choice["delta"] = finish.is_null() ? json{{"content", text}} : json::object();
            choice["logprobs"] = (logprobs && e) ? json{{"content", json::array({logprob_entry(*e, true)})}} : json();
          } else {
            choice["text"] = text;
            json lp;
            if (logprobs && e) {
              lp = {{"tokens", {tok().decode(std::vector<int32_t>{e->id})}}, {"token_logprobs", {e->logprob}},
                    {"top_logprobs", {legacy_top(*e)}}};
            }
            choice["logprobs"] = lp;
          }
          json j{{"id", id}, {"object", chat ? "chat.completion.chunk" : "text_completion"}, {"created", created},
                 {"model", model_id_}, {"choices", json::array({choice})}};
          if (include_usage) j["usage"] = nullptr;
          return send(j);
        };
        if (chat) {  // the first chunk names the role
          json j{{"id", id}, {"object", "chat.completion.chunk"}, {"created", created}, {"model", model_id_},
                 {"choices", json::array({json{{"index", 0}, {"delta", {{"role", "assistant"}, {"content", ""}}},
                                               {"logprobs", nullptr}, {"finish_reason", nullptr}}})}};
          if (include_usage) j["usage"] = nullptr;
          if (!send(j)) return job->cancel(), false;
        }
        // client: also before the first token, while the job waits for a slot or reads a long prompt
        TokenEvent e;
        while (client.next(*job, &e)) {
          if (!chunk(e.text, nullptr, &e)) {
            job->cancel();  // the client went away: the scheduler drops the sequence at its next step
            return false;
          }
        }
        const JobResult& r = job->result();
        if (!r.error.empty()) {
          send(json{{"error", {{"message", r.error}, {"type", "server_error"}, {"param", nullptr}, {"code", nullptr}}}});
        } else {
          if (!r.tail.empty() && !chunk(r.tail, nullptr, nullptr)) return false;
          if (!chunk("", r.finish_reason, nullptr)) return false;
          if (include_usage) {
            json u{{"id", id}, {"object", chat ? "chat.completion.chunk" : "text_completion"}, {"created", created},
                   {"model", model_id_}, {"choices", json::array()},
                   {"usage", {{"prompt_tokens", r.n_prompt}, {"completion_tokens", r.n_generated},
                              {"total_tokens", r.n_prompt + r.n_generated},
                              {"prompt_tokens_details", {{"cached_tokens", r.n_cached}}}}}};
            if (!send(u)) return false;
          }
        }
        const std::string done = "data: [DONE]\n\n";
        sink.write(done.data(), done.size());
        sink.done();
        return true;
      },
      // Not done (the client went away, a write failed, the server stops): the sequence is dropped.
      [job](bool success) {
        if (!success) job->cancel();
      });
}

std::string Server::metrics_text() const {
  std::string out;
  auto metric = [&](const char* name, const char* type, const char* help) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  };
  metric("bitnet_requests_total", "counter", "HTTP requests by endpoint and status.");
  for (const auto& [key, n] : requests_.snapshot())
    out += fmt::format("bitnet_requests_total{{endpoint=\"{}\",status=\"{}\"}} {}\n", key.first, key.second, n);
  if (!ready_) return out;
  const SchedulerMetrics m = sched().metrics();
  auto scalar = [&](const char* name, const char* type, const char* help, auto value) {
    metric(name, type, help);
    out += fmt::format("{} {}\n", name, value);
  };
  scalar("bitnet_prompt_tokens_total", "counter", "Prompt tokens of admitted requests.", m.prompt_tokens);
  scalar("bitnet_prompt_tokens_cached_total", "counter", "Prompt tokens reused from a slot's KV cache.",
         m.prompt_tokens_cached);
  scalar("bitnet_generated_tokens_total", "counter", "Generated tokens.", m.generated_tokens);
  scalar("bitnet_batch_steps_total", "counter", "Forward passes of the scheduler.", m.steps);
  scalar("bitnet_speculative_drafted_total", "counter", "Tokens drafted for speculative decoding (--lookup or -md).", m.drafted_tokens);
  scalar("bitnet_speculative_accepted_total", "counter", "Drafted tokens kept (equal to the sampled token).",
         m.accepted_tokens);
  auto histogram = [&](const char* name, const char* help, const SchedulerMetrics::Histogram& h) {
    metric(name, "histogram", help);
    uint64_t cum = 0;
    for (int b = 0; b < SchedulerMetrics::kBuckets; ++b) {
      cum += h.counts[b];
      out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, SchedulerMetrics::kBounds[b] / 1000.0, cum);
    }
    cum += h.counts[SchedulerMetrics::kBuckets];
    out += fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n{}_sum {}\n{}_count {}\n", name, cum, name, h.sum / 1000.0, name, h.n);
  };
  histogram("bitnet_time_to_first_token_seconds", "From submission to the first generated token.", m.ttft);
  histogram("bitnet_inter_token_latency_seconds", "Between consecutive tokens of one request.", m.itl);
  scalar("bitnet_queue_depth", "gauge", "Requests waiting for a slot.", m.queue_depth);
  scalar("bitnet_active_sequences", "gauge", "Sequences holding a slot.", m.active);
  scalar("bitnet_kv_cache_cells_used", "gauge", "KV cache positions holding tokens, over all slots.", m.kv_cells_used);
  scalar("bitnet_kv_cache_cells_total", "gauge", "KV cache positions, over all slots.", m.kv_cells_total);
  return out;
}

void Server::routes() {
  // Handlers throw ApiError for the client's mistakes; anything else is a 500 with its message.
  auto guarded = [this](auto&& fn) {
    return [this, fn](const httplib::Request& req, httplib::Response& res) {
      try {
        if (!ready_) throw ApiError{503, "the model is loading", "", "unavailable_error"};
        if (draining_) {
          res.set_header("Retry-After", "1");
          throw ApiError{503, "the server is shutting down", "", "unavailable_error", "shutting_down"};
        }
        fn(req, res);
      } catch (const ApiError& e) {
        send_error(res, e);
      } catch (const std::exception& e) {
        send_error(res, {500, e.what(), "", "server_error"});
      }
    };
  };
  http_.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    if (draining_) return send_error(res, {503, "the server is shutting down", "", "unavailable_error"});
    if (ready_) return res.set_content(R"({"status":"ok"})", "application/json");
    send_error(res, {503, "the model is loading", "", "unavailable_error"});
  });
  http_.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics_text(), "text/plain; version=0.0.4");
  });
  auto models = guarded([this](const httplib::Request&, httplib::Response& res) {
    const ModelConfig& c = sched().model().config();
    json m{{"id", model_id_}, {"object", "model"}, {"created", created_}, {"owned_by", "bitnet"},
           {"meta", {{"architecture", c.arch_name}, {"n_ctx", sched().n_ctx()}, {"n_vocab", c.vocab_size},
                     {"parallel", sched().parallel()}}}};
    res.set_content(dump(json{{"object", "list"}, {"data", json::array({m})}}), "application/json");
  });
  http_.Get("/v1/models", models);
  http_.Get("/models", models);
  auto chat = guarded([this](const httplib::Request& q, httplib::Response& r) { completion(q, r, true); });
  auto legacy = guarded([this](const httplib::Request& q, httplib::Response& r) { completion(q, r, false); });
  http_.Post("/v1/chat/completions", chat);
  http_.Post("/chat/completions", chat);
  http_.Post("/v1/completions", legacy);
  http_.Post("/completions", legacy);
  http_.Post("/tokenize", guarded([this](const httplib::Request& req, httplib::Response& res) {
    res.set_content(dump(json{{"tokens", parse_tokenize_request(req.body, context_)}}), "application/json");
  }));
  http_.Post("/detokenize", guarded([this](const httplib::Request& req, httplib::Response& res) {
    const std::vector<int32_t> ids = parse_detokenize_request(req.body, context_);
    res.set_content(dump(json{{"content", tok().decode(ids)}}), "application/json");
  }));

  // Authentication before routing; /health stays open for load balancers.
  http_.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (o_.api_key.empty() || req.path == "/health") return httplib::Server::HandlerResponse::Unhandled;
    if (constant_time_equal(req.get_header_value("Authorization"), "Bearer " + o_.api_key))
      return httplib::Server::HandlerResponse::Unhandled;
    send_error(res, {401, "missing or wrong API key (send 'Authorization: Bearer KEY')", "", "authentication_error",
                     "invalid_api_key"});
    return httplib::Server::HandlerResponse::Handled;
  });
  // Errors httplib answers itself (no route, body too large, ...) get an OpenAI error body too.
  http_.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    if (res.status == 413) {
      send_error(res, {413, fmt::format("the request body exceeds {} bytes", o_.max_body), "", "invalid_request_error",
                       "request_too_large"});
    } else if (res.status == 404 && (kGetPaths.count(req.path) || kPostPaths.count(req.path))) {
      const char* allow = kGetPaths.count(req.path) ? "GET" : "POST";
      send_error(res, {405, fmt::format("{} takes {}, not {}", req.path, allow, req.method), "", "invalid_request_error",
                       "method_not_allowed"});
      res.set_header("Allow", allow);
    } else if (res.status == 404) {
      send_error(res, {404, fmt::format("no endpoint {} {}", req.method, req.path), "", "not_found_error"});
    } else {
      send_error(res, {res.status, fmt::format("HTTP {}", res.status), "", "invalid_request_error"});
    }
  });
  http_.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    const bool known = kGetPaths.count(req.path) || kPostPaths.count(req.path);
    requests_.add(known ? req.path : "other", res.status);
  });
}

Server::Server(const ServerOptions& o) : o_(o) {
  routes();
  // SO_REUSEADDR (a restart binds at once) but not httplib's default SO_REUSEPORT, with which a second
  // server on a port in use would bind too and silently take half of its connections.
  http_.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  http_.set_payload_max_length(o_.max_body);
  http_.set_read_timeout(o_.timeout_s);
  http_.set_write_timeout(o_.timeout_s);
  const size_t n_threads = static_cast<size_t>(std::clamp(o_.sched.parallel * 2 + 8, 8, 256));
  http_.new_task_queue = [n_threads] { return new httplib::ThreadPool(n_threads); };
}

Server::~Server() {
  if (stand_in_socket_ >= 0) {
    http_.set_listening_socket(INVALID_SOCKET);
    close(stand_in_socket_);
  }
}

void Server::load() {
  auto model = Model::load(o_.model_path, o_.load);
  const auto name = model->file().get_string("general.name");
  model_id_ = name && !name->empty() ? *name : std::filesystem::path(o_.model_path).stem().string();
  const auto embedded = model->file().get_string("tokenizer.chat_template").value_or("");
  const ChatTemplateChoice choice = detect_chat_template(embedded, model->config().arch_name);
  if (choice.notice) std::fprintf(stderr, "bitnet serve: note: %s\n", choice.notice->c_str());
  std::unique_ptr<Model> draft = o_.draft_model_path.empty() ? nullptr : Model::load(o_.draft_model_path, o_.load);
  sched_ = std::make_unique<Scheduler>(std::move(model), o_.sched, std::move(draft));
  context_.tok = sched_->model().tokenizer();
  context_.chat_template = choice.tmpl;
  context_.n_ctx = sched_->n_ctx();
  context_.n_vocab = sched_->model().config().vocab_size;
  context_.max_tokens_cap = o_.max_tokens;
  created_ = static_cast<int64_t>(std::time(nullptr));
  ready_ = true;
}

std::string Server::handle(std::string_view request) {
  std::lock_guard lock(handle_mu_);
  if (stand_in_socket_ < 0) {
    stand_in_socket_ = ::socket(AF_UNIX, SOCK_STREAM, 0);
    if (stand_in_socket_ < 0) fail("serve: cannot create a socket: {}", std::strerror(errno));
    http_.set_listening_socket(stand_in_socket_);
  }
  StringStream s(request);
  bool closed = false;
  http_.process_request(s, /*close_connection=*/true, closed, nullptr);
  return s.take();
}

int Server::serve() {
  // Signals are taken by one thread (sigwait), so no handler runs inside httplib or the scheduler.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  int port = o_.port;
  if (port == 0) {
    port = http_.bind_to_any_port(o_.host);
    if (port < 0) fail("serve: cannot bind {}:0", o_.host);
  } else if (!http_.bind_to_port(o_.host, port)) {
    fail("serve: cannot bind {}:{} (in use, or not an address of this machine?)", o_.host, port);
  }
  std::fprintf(stderr, "bitnet serve: listening on http://%s:%d\n", o_.host.c_str(), port);
  std::thread listener([this] { http_.listen_after_bind(); });
  // SIGINT/SIGTERM: new requests get 503 (and /health, so load balancers stop sending), requests in
  // flight finish, at most kDrainSeconds, then the listener closes and what is left is cancelled.
  std::thread signals([this, set] {
    int sig = 0;
    sigwait(&set, &sig);
    if (quitting_) return;
    std::fprintf(stderr, "bitnet serve: signal %d: finishing requests in flight, then stopping\n", sig);
    draining_ = true;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(kDrainSeconds);
    while (ready_ && std::chrono::steady_clock::now() < deadline) {
      const SchedulerMetrics m = sched_->metrics();
      if (m.active == 0 && m.queue_depth == 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    http_.stop();
  });

  try {
    load();
  } catch (...) {
    http_.stop();
    quitting_ = true;
    pthread_kill(signals.native_handle(), SIGTERM);
    listener.join();
    signals.join();
    throw;
  }
  std::fprintf(stderr, "bitnet serve: model %s ready (%d slots of %d tokens)\n", model_id_.c_str(), sched_->parallel(),
               sched_->n_ctx());
  listener.join();
  if (!draining_) {  // the listener ended on its own: release the signal thread
    quitting_ = true;
    pthread_kill(signals.native_handle(), SIGTERM);
  }
  signals.join();
  sched_.reset();
  return 0;
}

}  // namespace

struct ApiServer::Impl : Server {
  using Server::Server;
};

ApiServer::ApiServer(const ServerOptions& opts) : impl_(std::make_unique<Impl>(opts)) {}
ApiServer::~ApiServer() = default;
void ApiServer::load() { impl_->load(); }
std::string ApiServer::handle(std::string_view request) { return impl_->handle(request); }
int ApiServer::serve() { return impl_->serve(); }

int run_server(const ServerOptions& opts) { return ApiServer(opts).serve(); }

}  // namespace bitnet

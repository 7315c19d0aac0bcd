#include "bitnet/server/http_server.h"

#include <httplib.h>
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "bitnet/base/error.h"
#include "bitnet/text/chat_template.h"

namespace bitnet {

namespace {

using nlohmann::json;

// A request the client got wrong: status, message, and the offending field.
struct HttpError {
  int status;
  std::string message;
  std::string param;
  std::string type = "invalid_request_error";
  std::string code;
};

void send_error(httplib::Response& res, const HttpError& e) {
  json err{{"message", e.message}, {"type", e.type}, {"param", e.param.empty() ? json() : json(e.param)},
           {"code", e.code.empty() ? json() : json(e.code)}};
  res.status = e.status;
  res.set_content(json{{"error", err}}.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// Typed access to an optional field of a JSON object; null counts as absent, a wrong type is an HttpError.
class Fields {
 public:
  explicit Fields(const json& j) : j_(j) {}
  bool has(const char* k) const { return j_.contains(k) && !j_.at(k).is_null(); }
  const json& at(const char* k) const { return j_.at(k); }

  std::optional<double> number(const char* k, double lo, double hi) const {
    if (!has(k)) return std::nullopt;
    const json& v = j_.at(k);
    if (!v.is_number()) throw HttpError{400, fmt::format("'{}' must be a number, got {}", k, v.type_name()), k};
    const double x = v.get<double>();
    if (!(x >= lo && x <= hi)) throw HttpError{400, fmt::format("'{}' is {}, expected {} to {}", k, x, lo, hi), k};
    return x;
  }
  std::optional<int64_t> integer(const char* k, int64_t lo, int64_t hi) const {
    if (!has(k)) return std::nullopt;
    const json& v = j_.at(k);
    if (!v.is_number_integer())
      throw HttpError{400, fmt::format("'{}' must be an integer, got {}", k, v.type_name()), k};
    if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(hi))
      throw HttpError{400, fmt::format("'{}' is {}, expected {} to {}", k, v.dump(), lo, hi), k};
    const int64_t x = v.get<int64_t>();
    if (x < lo || x > hi) throw HttpError{400, fmt::format("'{}' is {}, expected {} to {}", k, x, lo, hi), k};
    return x;
  }
  std::optional<bool> boolean(const char* k) const {
    if (!has(k)) return std::nullopt;
    if (!j_.at(k).is_boolean())
      throw HttpError{400, fmt::format("'{}' must be a boolean, got {}", k, j_.at(k).type_name()), k};
    return j_.at(k).get<bool>();
  }
  std::optional<std::string> string(const char* k) const {
    if (!has(k)) return std::nullopt;
    if (!j_.at(k).is_string())
      throw HttpError{400, fmt::format("'{}' must be a string, got {}", k, j_.at(k).type_name()), k};
    return j_.at(k).get<std::string>();
  }

 private:
  const json& j_;
};

json parse_body(const httplib::Request& req) {
  json j;
  try {
    j = json::parse(req.body);
  } catch (const json::parse_error& e) {
    throw HttpError{400, fmt::format("the body is not valid JSON (byte {}): {}", e.byte, e.what())};
  }
  if (!j.is_object()) throw HttpError{400, fmt::format("the body must be a JSON object, got {}", j.type_name())};
  return j;
}

// What /v1/completions and /v1/chat/completions share.
struct Common {
  ServeRequest req;
  bool stream = false;
  bool include_usage = false;
  bool logprobs = false;
};

Common common_fields(const Fields& f, bool chat) {
  Common c;
  SamplingParams& s = c.req.sampling;
  if (f.has("model")) f.string("model");  // one model is served: any name is accepted, a non-string is not
  if (auto n = f.integer("n", std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()); n && *n != 1)
    throw HttpError{400, fmt::format("'n' is {}: only one choice per request is supported", *n), "n"};
  if (auto v = f.number("temperature", 0, 2)) s.temperature = static_cast<float>(*v);
  if (auto v = f.number("top_p", 0, 1)) s.top_p = static_cast<float>(*v);
  if (auto v = f.integer("top_k", 0, 1 << 30)) s.top_k = static_cast<int>(*v);
  if (auto v = f.number("min_p", 0, 1)) s.min_p = static_cast<float>(*v);
  if (auto v = f.number("frequency_penalty", -2, 2)) s.frequency_penalty = static_cast<float>(*v);
  if (auto v = f.number("presence_penalty", -2, 2)) s.presence_penalty = static_cast<float>(*v);
  if (auto v = f.number("repeat_penalty", 0.0001, 100)) s.repeat_penalty = static_cast<float>(*v);
  if (auto v = f.integer("seed", 0, std::numeric_limits<int64_t>::max())) s.seed = static_cast<uint64_t>(*v);
  const auto max_tokens = f.integer("max_tokens", 0, 1 << 24);
  const auto max_completion = f.integer("max_completion_tokens", 0, 1 << 24);
  if (max_completion) c.req.max_tokens = static_cast<int32_t>(*max_completion);
  else if (max_tokens) c.req.max_tokens = static_cast<int32_t>(*max_tokens);
  if (f.has("stop")) {
    const json& st = f.at("stop");
    std::vector<std::string> stops;
    if (st.is_string()) {
      stops.push_back(st.get<std::string>());
    } else if (st.is_array()) {
      for (const json& x : st) {
        if (!x.is_string()) throw HttpError{400, "'stop' must be a string or a list of strings", "stop"};
        stops.push_back(x.get<std::string>());
      }
    } else {
      throw HttpError{400, fmt::format("'stop' must be a string or a list of strings, got {}", st.type_name()), "stop"};
    }
    if (stops.size() > 16) throw HttpError{400, "'stop' has more than 16 strings", "stop"};
    for (const std::string& x : stops)
      if (x.empty()) throw HttpError{400, "'stop' strings must not be empty", "stop"};
    c.req.stop = std::move(stops);
  }
  c.stream = f.boolean("stream").value_or(false);
  if (f.has("stream_options")) {
    if (!f.at("stream_options").is_object())
      throw HttpError{400, "'stream_options' must be an object", "stream_options"};
    c.include_usage = Fields(f.at("stream_options")).boolean("include_usage").value_or(false);
  }
  if (chat) {
    c.logprobs = f.boolean("logprobs").value_or(false);
    const auto top = f.integer("top_logprobs", 0, 20);
    if (top && !c.logprobs) throw HttpError{400, "'top_logprobs' needs 'logprobs': true", "top_logprobs"};
    if (c.logprobs) c.req.top_logprobs = static_cast<int32_t>(top.value_or(0));
  } else {
    const auto lp = f.integer("logprobs", 0, 20);  // the legacy endpoint's logprobs is a count
    if (lp) {
      c.logprobs = true;
      c.req.top_logprobs = static_cast<int32_t>(*lp);
    }
  }
  try {
    validate_sampling_params(s);
  } catch (const Error& e) {
    throw HttpError{400, e.what()};
  }
  return c;
}

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

class Server {
 public:
  explicit Server(const ServerOptions& o) : o_(o) {}

  int run();

 private:
  void routes();
  void completion(const httplib::Request& req, httplib::Response& res, bool chat);
  void stream(httplib::Response& res, std::shared_ptr<Job> job, bool chat, bool include_usage, bool logprobs);
  json logprob_entry(const TokenEvent& e, bool chat) const;
  json legacy_top(const TokenEvent& e) const;  // /v1/completions' {token text: logprob} of the top ids
  std::string metrics_text() const;
  Scheduler& sched() const { return *sched_; }
  const Tokenizer& tok() const { return *sched_->model().tokenizer(); }

  ServerOptions o_;
  httplib::Server http_;
  std::unique_ptr<Scheduler> sched_;
  std::atomic<bool> ready_{false};
  std::atomic<bool> draining_{false};  // a stop signal came: refuse new requests, finish the others
  std::atomic<bool> quitting_{false};  // the signal thread is woken to exit, not to drain
  static constexpr int kDrainSeconds = 30;
  std::string model_id_;
  ChatTemplate template_ = ChatTemplate::Bitnet;
  int64_t created_ = 0;
  RequestCounter requests_;
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
  const json body = parse_body(req);
  const Fields f(body);
  Common c = common_fields(f, chat);
  if (chat) {
    if (!f.has("messages")) throw HttpError{400, "'messages' is required", "messages"};
    const json& msgs = f.at("messages");
    if (!msgs.is_array() || msgs.empty()) throw HttpError{400, "'messages' must be a non-empty list", "messages"};
    std::vector<ChatMessage> history;
    for (size_t i = 0; i < msgs.size(); ++i) {
      const json& m = msgs[i];
      const std::string where = fmt::format("messages[{}]", i);
      if (!m.is_object()) throw HttpError{400, where + " must be an object", where};
      const Fields mf(m);
      const auto role = mf.string("role");
      if (!role) throw HttpError{400, where + ".role is required", where + ".role"};
      if (*role != "system" && *role != "user" && *role != "assistant" && *role != "developer")
        throw HttpError{400, fmt::format("{}.role '{}' is not system, developer, user or assistant", where, *role),
                        where + ".role"};
      std::string content;
      if (!mf.has("content")) {
        if (*role != "assistant") throw HttpError{400, where + ".content is required", where + ".content"};
      } else if (m.at("content").is_string()) {
        content = m.at("content").get<std::string>();
      } else if (m.at("content").is_array()) {
        for (const json& part : m.at("content")) {
          if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") ||
              !part.at("text").is_string())
            throw HttpError{400, where + ".content parts must be {\"type\": \"text\", \"text\": ...}", where + ".content"};
          content += part.at("text").get<std::string>();
        }
      } else {
        throw HttpError{400, where + ".content must be a string or a list of text parts", where + ".content"};
      }
      history.push_back({*role == "developer" ? "system" : *role, std::move(content)});
    }
    const MarkedChat marked = render_chat_marked(template_, history, /*add_generation_prompt=*/true);
    c.req.prompt = tok().encode_marked(marked.text, marked.markup, tok().add_bos_default());
  } else {
    if (!f.has("prompt")) throw HttpError{400, "'prompt' is required", "prompt"};
    const json& p = f.at("prompt");
    const json* one = &p;
    if (p.is_array() && !p.empty() && p[0].is_string()) {  // a list of prompts: one is supported
      if (p.size() != 1) throw HttpError{400, "'prompt' lists several prompts: one per request is supported", "prompt"};
      one = &p[0];
    }
    if (one->is_string()) {
      c.req.prompt = tok().encode(one->get<std::string>(), tok().add_bos_default(), /*parse_special=*/true);
    } else if (one->is_array()) {
      const int64_t V = sched().model().config().vocab_size;
      for (const json& t : *one) {
        if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() >= V)
          throw HttpError{400, fmt::format("'prompt' token ids must be integers in 0..{}", V - 1), "prompt"};
        c.req.prompt.push_back(static_cast<int32_t>(t.get<int64_t>()));
      }
    } else {
      throw HttpError{400, "'prompt' must be a string, a list of token ids, or a list of one string", "prompt"};
    }
  }
  if (c.req.prompt.empty()) throw HttpError{400, "the prompt is empty", chat ? "messages" : "prompt"};
  if (static_cast<int32_t>(c.req.prompt.size()) >= sched().n_ctx())
    throw HttpError{400, fmt::format("the prompt has {} tokens; the context holds {} (-c)", c.req.prompt.size(),
                                     sched().n_ctx()),
                    chat ? "messages" : "prompt", "invalid_request_error", "context_length_exceeded"};

  std::shared_ptr<Job> job = sched().submit(c.req);
  if (!job) {
    res.set_header("Retry-After", "1");
    throw HttpError{503, "the server is busy: its request queue is full; retry later", "", "server_error", "queue_full"};
  }
  if (c.stream) return stream(res, std::move(job), chat, c.include_usage, c.logprobs);

  std::string text;
  json lp_entries = json::array();
  json tokens = json::array(), token_lps = json::array(), tops = json::array(), offsets = json::array();
  TokenEvent e;
  while (job->next(&e)) {
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
  if (!r.error.empty()) throw HttpError{500, r.error, "", "server_error"};
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

void Server::stream(httplib::Response& res, std::shared_ptr<Job> job, bool chat, bool include_usage, bool logprobs) {
  const std::string id = random_id(chat ? "chatcmpl" : "cmpl");
  const int64_t created = static_cast<int64_t>(std::time(nullptr));
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");  // nginx: pass events through as they come
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, job, id, created, chat, include_usage, logprobs](size_t, httplib::DataSink& sink) {
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
        TokenEvent e;
        while (job->next(&e)) {
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
  // Handlers throw HttpError for the client's mistakes; anything else is a 500 with its message.
  auto guarded = [this](auto&& fn) {
    return [this, fn](const httplib::Request& req, httplib::Response& res) {
      try {
        if (!ready_) throw HttpError{503, "the model is loading", "", "unavailable_error"};
        if (draining_) {
          res.set_header("Retry-After", "1");
          throw HttpError{503, "the server is shutting down", "", "unavailable_error", "shutting_down"};
        }
        fn(req, res);
      } catch (const HttpError& e) {
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
    const json body = parse_body(req);
    const Fields f(body);
    const auto content = f.string("content");
    if (!content) throw HttpError{400, "'content' is required", "content"};
    const bool add_special = f.boolean("add_special").value_or(false);
    const bool parse_special = f.boolean("parse_special").value_or(true);
    const auto ids = tok().encode(*content, add_special && tok().add_bos_default(), parse_special);
    res.set_content(dump(json{{"tokens", ids}}), "application/json");
  }));
  http_.Post("/detokenize", guarded([this](const httplib::Request& req, httplib::Response& res) {
    const json body = parse_body(req);
    if (!body.contains("tokens") || !body.at("tokens").is_array())
      throw HttpError{400, "'tokens' must be a list of token ids", "tokens"};
    std::vector<int32_t> ids;
    const int64_t V = sched().model().config().vocab_size;
    for (const json& t : body.at("tokens")) {
      if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() >= V)
        throw HttpError{400, fmt::format("'tokens' must hold integers in 0..{}", V - 1), "tokens"};
      ids.push_back(static_cast<int32_t>(t.get<int64_t>()));
    }
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

int Server::run() {
  // Signals are taken by one thread (sigwait), so no handler runs inside httplib or the scheduler.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

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
    auto model = Model::load(o_.model_path, o_.load);
    const auto name = model->file().get_string("general.name");
    model_id_ = name && !name->empty() ? *name : std::filesystem::path(o_.model_path).stem().string();
    const auto embedded = model->file().get_string("tokenizer.chat_template").value_or("");
    const ChatTemplateChoice choice = detect_chat_template(embedded, model->config().arch_name);
    if (choice.notice) std::fprintf(stderr, "bitnet serve: note: %s\n", choice.notice->c_str());
    template_ = choice.tmpl;
    sched_ = std::make_unique<Scheduler>(std::move(model), o_.sched);
  } catch (...) {
    http_.stop();
    quitting_ = true;
    pthread_kill(signals.native_handle(), SIGTERM);
    listener.join();
    signals.join();
    throw;
  }
  created_ = static_cast<int64_t>(std::time(nullptr));
  ready_ = true;
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

int run_server(const ServerOptions& opts) {
  Server s(opts);
  return s.run();
}

}  // namespace bitnet

#include "bitnet/server/request.h"

#include <limits>
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "bitnet/base/error.h"

namespace bitnet {

namespace {

using nlohmann::json;

// Typed access to an optional field of a JSON object; null counts as absent, a wrong type is an ApiError.
class Fields {
 public:
  explicit Fields(const json& j) : j_(j) {}
  bool has(const char* k) const { return j_.contains(k) && !j_.at(k).is_null(); }
  const json& at(const char* k) const { return j_.at(k); }

  std::optional<double> number(const char* k, double lo, double hi) const {
    if (!has(k)) return std::nullopt;
    const json& v = j_.at(k);
    if (!v.is_number()) throw ApiError{400, fmt::format("'{}' must be a number, got {}", k, v.type_name()), k};
    const double x = v.get<double>();
    if (!(x >= lo && x <= hi)) throw ApiError{400, fmt::format("'{}' is {}, expected {} to {}", k, x, lo, hi), k};
    return x;
  }
  std::optional<int64_t> integer(const char* k, int64_t lo, int64_t hi) const {
    if (!has(k)) return std::nullopt;
    const json& v = j_.at(k);
    if (!v.is_number_integer())
      throw ApiError{400, fmt::format("'{}' must be an integer, got {}", k, v.type_name()), k};
    if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(hi))
      throw ApiError{400, fmt::format("'{}' is {}, expected {} to {}", k, v.dump(), lo, hi), k};
    const int64_t x = v.get<int64_t>();
    if (x < lo || x > hi) throw ApiError{400, fmt::format("'{}' is {}, expected {} to {}", k, x, lo, hi), k};
    return x;
  }
  std::optional<bool> boolean(const char* k) const {
    if (!has(k)) return std::nullopt;
    if (!j_.at(k).is_boolean())
      throw ApiError{400, fmt::format("'{}' must be a boolean, got {}", k, j_.at(k).type_name()), k};
    return j_.at(k).get<bool>();
  }
  std::optional<std::string> string(const char* k) const {
    if (!has(k)) return std::nullopt;
    if (!j_.at(k).is_string())
      throw ApiError{400, fmt::format("'{}' must be a string, got {}", k, j_.at(k).type_name()), k};
    return j_.at(k).get<std::string>();
  }

 private:
  const json& j_;
};

json parse_object(std::string_view body) {
  json j;
  try {
    j = json::parse(body);
  } catch (const json::parse_error& e) {
    throw ApiError{400, fmt::format("the body is not valid JSON (byte {}): {}", e.byte, e.what())};
  } catch (const json::exception& e) {  // e.g. a number too large for a double (out_of_range 406)
    throw ApiError{400, fmt::format("the body is not valid JSON: {}", e.what())};
  }
  if (!j.is_object()) throw ApiError{400, fmt::format("the body must be a JSON object, got {}", j.type_name())};
  return j;
}

// A token id list (a prompt or /detokenize's tokens): integers in [0, n_vocab).
std::vector<int32_t> token_ids(const json& list, int32_t n_vocab, const char* param) {
  std::vector<int32_t> ids;
  ids.reserve(list.size());
  for (const json& t : list) {
    if (!t.is_number_integer() || (t.is_number_unsigned() && t.get<uint64_t>() >= static_cast<uint64_t>(n_vocab)) ||
        t.get<int64_t>() < 0 || t.get<int64_t>() >= n_vocab)
      throw ApiError{400, fmt::format("'{}' token ids must be integers in 0..{}", param, n_vocab - 1), param};
    ids.push_back(static_cast<int32_t>(t.get<int64_t>()));
  }
  return ids;
}

std::vector<std::string> stop_strings(const json& st) {
  std::vector<std::string> stops;
  if (st.is_string()) {
    stops.push_back(st.get<std::string>());
  } else if (st.is_array()) {
    for (const json& x : st) {
      if (!x.is_string()) throw ApiError{400, "'stop' must be a string or a list of strings", "stop"};
      stops.push_back(x.get<std::string>());
    }
  } else {
    throw ApiError{400, fmt::format("'stop' must be a string or a list of strings, got {}", st.type_name()), "stop"};
  }
  if (stops.size() > 16) throw ApiError{400, "'stop' has more than 16 strings", "stop"};
  for (const std::string& x : stops)
    if (x.empty()) throw ApiError{400, "'stop' strings must not be empty", "stop"};
  return stops;
}

// The fields both endpoints share: sampling, limits, streaming, log-probabilities.
void common_fields(const Fields& f, bool chat, const RequestContext& ctx, CompletionRequest& c) {
  SamplingParams& s = c.req.sampling;
  if (f.has("model")) f.string("model");  // one model is served: any name is accepted, a non-string is not
  if (auto n = f.integer("n", std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()); n && *n != 1)
    throw ApiError{400, fmt::format("'n' is {}: only one choice per request is supported", *n), "n"};
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
  if (ctx.max_tokens_cap >= 0 && (c.req.max_tokens < 0 || c.req.max_tokens > ctx.max_tokens_cap))
    c.req.max_tokens = ctx.max_tokens_cap;
  if (f.has("stop")) c.req.stop = stop_strings(f.at("stop"));
  c.stream = f.boolean("stream").value_or(false);
  if (f.has("stream_options")) {
    if (!f.at("stream_options").is_object())
      throw ApiError{400, "'stream_options' must be an object", "stream_options"};
    c.include_usage = Fields(f.at("stream_options")).boolean("include_usage").value_or(false);
  }
  if (chat) {
    c.logprobs = f.boolean("logprobs").value_or(false);
    const auto top = f.integer("top_logprobs", 0, 20);
    if (top && !c.logprobs) throw ApiError{400, "'top_logprobs' needs 'logprobs': true", "top_logprobs"};
    if (c.logprobs) c.req.top_logprobs = static_cast<int32_t>(top.value_or(0));
  } else if (const auto lp = f.integer("logprobs", 0, 20)) {  // the legacy endpoint's logprobs is a count
    c.logprobs = true;
    c.req.top_logprobs = static_cast<int32_t>(*lp);
  }
  try {
    validate_sampling_params(s);
  } catch (const Error& e) {
    throw ApiError{400, e.what()};
  }
}

std::vector<ChatMessage> chat_messages(const Fields& f) {
  if (!f.has("messages")) throw ApiError{400, "'messages' is required", "messages"};
  const json& msgs = f.at("messages");
  if (!msgs.is_array() || msgs.empty()) throw ApiError{400, "'messages' must be a non-empty list", "messages"};
  std::vector<ChatMessage> history;
  for (size_t i = 0; i < msgs.size(); ++i) {
    const json& m = msgs[i];
    const std::string where = fmt::format("messages[{}]", i);
    if (!m.is_object()) throw ApiError{400, where + " must be an object", where};
    const Fields mf(m);
    const auto role = mf.string("role");
    if (!role) throw ApiError{400, where + ".role is required", where + ".role"};
    if (*role != "system" && *role != "user" && *role != "assistant" && *role != "developer")
      throw ApiError{400, fmt::format("{}.role '{}' is not system, developer, user or assistant", where, *role),
                     where + ".role"};
    std::string content;
    if (!mf.has("content")) {
      if (*role != "assistant") throw ApiError{400, where + ".content is required", where + ".content"};
    } else if (m.at("content").is_string()) {
      content = m.at("content").get<std::string>();
    } else if (m.at("content").is_array()) {
      for (const json& part : m.at("content")) {
        if (!part.is_object() || !part.contains("type") || part.at("type") != "text" || !part.contains("text") ||
            !part.at("text").is_string())
          throw ApiError{400, where + ".content parts must be {\"type\": \"text\", \"text\": ...}", where + ".content"};
        content += part.at("text").get<std::string>();
      }
    } else {
      throw ApiError{400, where + ".content must be a string or a list of text parts", where + ".content"};
    }
    history.push_back({*role == "developer" ? "system" : *role, std::move(content)});
  }
  return history;
}

}  // namespace

std::string api_error_json(const ApiError& e) {
  json err{{"message", e.message}, {"type", e.type}, {"param", e.param.empty() ? json() : json(e.param)},
           {"code", e.code.empty() ? json() : json(e.code)}};
  return json{{"error", err}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

CompletionRequest parse_completion_request(std::string_view body, bool chat, const RequestContext& ctx) {
  const json j = parse_object(body);
  const Fields f(j);
  CompletionRequest c;
  common_fields(f, chat, ctx, c);
  const Tokenizer& tok = *ctx.tok;
  const char* param = chat ? "messages" : "prompt";
  if (chat) {
    const MarkedChat marked = render_chat_marked(ctx.chat_template, chat_messages(f), /*add_generation_prompt=*/true);
    c.req.prompt = tok.encode_marked(marked.text, marked.markup, tok.add_bos_default());
  } else {
    if (!f.has("prompt")) throw ApiError{400, "'prompt' is required", "prompt"};
    const json& p = f.at("prompt");
    const json* one = &p;
    if (p.is_array() && !p.empty() && p[0].is_string()) {  // a list of prompts: one is supported
      if (p.size() != 1) throw ApiError{400, "'prompt' lists several prompts: one per request is supported", "prompt"};
      one = &p[0];
    }
    if (one->is_string()) {
      c.req.prompt = tok.encode(one->get<std::string>(), tok.add_bos_default(), /*parse_special=*/true);
    } else if (one->is_array()) {
      c.req.prompt = token_ids(*one, ctx.n_vocab, "prompt");
    } else {
      throw ApiError{400, "'prompt' must be a string, a list of token ids, or a list of one string", "prompt"};
    }
  }
  if (c.req.prompt.empty()) throw ApiError{400, "the prompt is empty", param};
  if (static_cast<int64_t>(c.req.prompt.size()) >= ctx.n_ctx)
    throw ApiError{400,
                   fmt::format("the prompt has {} tokens; the context holds {} (-c), with room for one generated",
                               c.req.prompt.size(), ctx.n_ctx),
                   param, "invalid_request_error", "context_length_exceeded"};
  return c;
}

std::vector<int32_t> parse_tokenize_request(std::string_view body, const RequestContext& ctx) {
  const json j = parse_object(body);
  const Fields f(j);
  const auto content = f.string("content");
  if (!content) throw ApiError{400, "'content' is required", "content"};
  const bool add_special = f.boolean("add_special").value_or(false);
  const bool parse_special = f.boolean("parse_special").value_or(true);
  return ctx.tok->encode(*content, add_special && ctx.tok->add_bos_default(), parse_special);
}

std::vector<int32_t> parse_detokenize_request(std::string_view body, const RequestContext& ctx) {
  const json j = parse_object(body);
  if (!j.contains("tokens") || !j.at("tokens").is_array())
    throw ApiError{400, "'tokens' must be a list of token ids", "tokens"};
  return token_ids(j.at("tokens"), ctx.n_vocab, "tokens");
}

}  // namespace bitnet

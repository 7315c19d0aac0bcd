// Request bodies of `bitnet serve`, checked: JSON text in, the scheduler's ServeRequest (prompt tokens,
// sampling parameters, limits) out, or an ApiError saying which field is wrong and why.
//
// No HTTP and no model here (a tokenizer and a few numbers only), so the same code is unit-tested and
// fuzzed (tests/fuzz/fuzz_server.cc) without a socket.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "bitnet/server/scheduler.h"
#include "bitnet/text/chat_template.h"
#include "bitnet/text/tokenizer.h"

namespace bitnet {

// An error as OpenAI reports it: {"error": {"message", "type", "param", "code"}} with an HTTP status.
// Thrown by the parsers below; param and code are null in the JSON when empty.
struct ApiError {
  int status = 400;
  std::string message;
  std::string param;
  std::string type = "invalid_request_error";
  std::string code;
};
std::string api_error_json(const ApiError& e);

// What the parsers need of the served model.
struct RequestContext {
  const Tokenizer* tok = nullptr;
  ChatTemplate chat_template = ChatTemplate::Bitnet;
  int32_t n_ctx = 0;             // tokens per slot: a prompt must leave room for one generated token
  int32_t n_vocab = 0;           // token ids in a prompt are below this
  int32_t max_tokens_cap = -1;   // >= 0: the most tokens one request may generate (larger asks are clamped)
};

struct CompletionRequest {
  ServeRequest req;              // prompt ids, max_tokens, stop strings, sampling, top_logprobs
  bool stream = false;
  bool include_usage = false;    // stream_options.include_usage
  bool logprobs = false;
};

// POST /v1/chat/completions (chat) or /v1/completions. Chat renders `messages` with the model's template,
// special tokens only where the template puts them; a completion prompt is a string (special tokens
// parsed, as llama-server does), a list of token ids, or a list of one string.
CompletionRequest parse_completion_request(std::string_view body, bool chat, const RequestContext& ctx);

// POST /tokenize {"content", "add_special"?, "parse_special"?} -> token ids.
std::vector<int32_t> parse_tokenize_request(std::string_view body, const RequestContext& ctx);
// POST /detokenize {"tokens": [ids]} -> the ids, each checked against the vocabulary.
std::vector<int32_t> parse_detokenize_request(std::string_view body, const RequestContext& ctx);

}  // namespace bitnet

// `bitnet serve`'s HTTP layer without a socket (ApiServer::handle), on the trained default model: the table
// of bad requests with the status, error type and param each must get; well-formed requests of every
// endpoint; streaming to [DONE]. Runs under every preset, tsan included (the scheduler thread and the
// HTTP side meet in these requests).
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "bitnet/server/http_server.h"

namespace bitnet {
namespace {

using nlohmann::json;

struct Response {
  int status = 0;
  std::string head, body;
};

// The trained model in small slots of 64 tokens, one thread.
ServerOptions small_server(int32_t parallel) {
  ServerOptions o;
  o.model_path = BITNET_TEST_MODEL;
  o.sched.parallel = parallel;
  o.sched.n_ctx = 64;
  o.sched.threads = 1;
  return o;
}

class Api : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ServerOptions o = small_server(2);
    o.max_body = 4096;
    o.api_key = "sesame";
    server_ = std::make_unique<ApiServer>(o);
    server_->load();
  }
  static void TearDownTestSuite() { server_.reset(); }

  static Response send(const std::string& method, const std::string& path, const std::string& body,
                       const std::string& extra_headers = "Authorization: Bearer sesame\r\n") {
    std::string req = method + " " + path + " HTTP/1.1\r\nHost: x\r\n" + extra_headers;
    if (!body.empty() || method == "POST")
      req += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
    req += "\r\n" + body;
    const std::string raw = server_->handle(req);
    Response r;
    const size_t end = raw.find("\r\n\r\n");
    EXPECT_NE(end, std::string::npos) << raw;
    r.head = raw.substr(0, end);
    r.body = raw.substr(end + 4);
    r.status = std::stoi(raw.substr(9, 3));
    return r;
  }
  static Response post(const std::string& path, const json& body) { return send("POST", path, body.dump()); }

  static std::unique_ptr<ApiServer> server_;
};
std::unique_ptr<ApiServer> Api::server_;

struct BadRequest {
  const char* what;
  std::string method, path, body;
  int status;
  const char* type;
  const char* param;  // nullptr: the error's param is null
  const char* code = nullptr;
  std::string headers = "Authorization: Bearer sesame\r\n";
};

TEST_F(Api, BadRequestsGetTheirStatusAndOpenAIError) {
  const std::string ok_chat = R"("messages": [{"role": "user", "content": "Hi"}])";
  const BadRequest table[] = {
      {"malformed JSON", "POST", "/v1/completions", "{\"prompt\": ", 400, "invalid_request_error", nullptr},
      {"number too large for a double", "POST", "/v1/completions", R"({"prompt": "x", "temperature": 1e400})", 400,
       "invalid_request_error", nullptr},
      {"body not an object", "POST", "/v1/chat/completions", "[1, 2]", 400, "invalid_request_error", nullptr},
      {"prompt missing", "POST", "/v1/completions", R"({"max_tokens": 3})", 400, "invalid_request_error", "prompt"},
      {"messages missing", "POST", "/v1/chat/completions", R"({"max_tokens": 3})", 400, "invalid_request_error",
       "messages"},
      {"messages empty", "POST", "/v1/chat/completions", R"({"messages": []})", 400, "invalid_request_error",
       "messages"},
      {"message not an object", "POST", "/v1/chat/completions", R"({"messages": ["hi"]})", 400,
       "invalid_request_error", "messages[0]"},
      {"unknown role", "POST", "/v1/chat/completions", R"({"messages": [{"role": "wizard", "content": "x"}]})", 400,
       "invalid_request_error", "messages[0].role"},
      {"content a number", "POST", "/v1/chat/completions", R"({"messages": [{"role": "user", "content": 7}]})", 400,
       "invalid_request_error", "messages[0].content"},
      {"content part not text", "POST", "/v1/chat/completions",
       R"({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": "x"}]}]})", 400,
       "invalid_request_error", "messages[0].content"},
      {"temperature a string", "POST", "/v1/completions", R"({"prompt": "x", "temperature": "hot"})", 400,
       "invalid_request_error", "temperature"},
      {"temperature too high", "POST", "/v1/completions", R"({"prompt": "x", "temperature": 9})", 400,
       "invalid_request_error", "temperature"},
      {"top_p above 1", "POST", "/v1/completions", R"({"prompt": "x", "top_p": 1.5})", 400, "invalid_request_error",
       "top_p"},
      {"top_k fractional", "POST", "/v1/completions", R"({"prompt": "x", "top_k": 2.5})", 400,
       "invalid_request_error", "top_k"},
      {"max_tokens negative", "POST", "/v1/completions", R"({"prompt": "x", "max_tokens": -1})", 400,
       "invalid_request_error", "max_tokens"},
      {"max_tokens huge", "POST", "/v1/completions", R"({"prompt": "x", "max_tokens": 18446744073709551615})", 400,
       "invalid_request_error", "max_tokens"},
      {"seed negative", "POST", "/v1/completions", R"({"prompt": "x", "seed": -3})", 400, "invalid_request_error",
       "seed"},
      {"stop of numbers", "POST", "/v1/completions", R"({"prompt": "x", "stop": [1]})", 400, "invalid_request_error",
       "stop"},
      {"stop empty string", "POST", "/v1/completions", R"({"prompt": "x", "stop": ""})", 400,
       "invalid_request_error", "stop"},
      {"stream a string", "POST", "/v1/completions", R"({"prompt": "x", "stream": "yes"})", 400,
       "invalid_request_error", "stream"},
      {"stream_options a list", "POST", "/v1/completions", R"({"prompt": "x", "stream_options": []})", 400,
       "invalid_request_error", "stream_options"},
      {"n = 2", "POST", "/v1/chat/completions", "{" + ok_chat + R"(, "n": 2})", 400, "invalid_request_error", "n"},
      {"top_logprobs without logprobs", "POST", "/v1/chat/completions", "{" + ok_chat + R"(, "top_logprobs": 2})",
       400, "invalid_request_error", "top_logprobs"},
      {"top_logprobs over 20", "POST", "/v1/chat/completions",
       "{" + ok_chat + R"(, "logprobs": true, "top_logprobs": 21})", 400, "invalid_request_error", "top_logprobs"},
      {"model a number", "POST", "/v1/chat/completions", "{" + ok_chat + R"(, "model": 3})", 400,
       "invalid_request_error", "model"},
      {"token id past the vocabulary", "POST", "/v1/completions", R"({"prompt": [1, 999999]})", 400,
       "invalid_request_error", "prompt"},
      {"token id negative", "POST", "/v1/completions", R"({"prompt": [-1]})", 400, "invalid_request_error", "prompt"},
      {"two prompts", "POST", "/v1/completions", R"({"prompt": ["a", "b"]})", 400, "invalid_request_error", "prompt"},
      {"prompt an object", "POST", "/v1/completions", R"({"prompt": {"a": 1}})", 400, "invalid_request_error",
       "prompt"},
      {"prompt longer than the context", "POST", "/v1/completions", json{{"prompt", std::string(600, 'x')}}.dump(),
       400, "invalid_request_error", "prompt", "context_length_exceeded"},
      {"tokenize without content", "POST", "/tokenize", R"({"text": "x"})", 400, "invalid_request_error", "content"},
      {"detokenize bad id", "POST", "/detokenize", R"({"tokens": ["a"]})", 400, "invalid_request_error", "tokens"},
      {"body over the limit", "POST", "/v1/completions", json{{"prompt", std::string(5000, 'x')}}.dump(), 413,
       "invalid_request_error", nullptr, "request_too_large"},
      {"no key", "POST", "/v1/completions", R"({"prompt": "x"})", 401, "authentication_error", nullptr,
       "invalid_api_key", ""},
      {"wrong key", "POST", "/v1/completions", R"({"prompt": "x"})", 401, "authentication_error", nullptr,
       "invalid_api_key", "Authorization: Bearer sesamf\r\n"},
      {"unknown route", "GET", "/v1/embeddings", "", 404, "not_found_error", nullptr},
      {"GET on a POST route", "GET", "/v1/chat/completions", "", 405, "invalid_request_error", nullptr,
       "method_not_allowed"},
      {"POST on a GET route", "POST", "/v1/models", "{}", 405, "invalid_request_error", nullptr,
       "method_not_allowed"},
  };
  for (const BadRequest& t : table) {
    SCOPED_TRACE(t.what);
    const Response r = send(t.method, t.path, t.body, t.headers);
    EXPECT_EQ(r.status, t.status) << r.body;
    const json j = json::parse(r.body, nullptr, false);
    ASSERT_TRUE(j.is_object() && j.contains("error")) << r.body;
    const json& e = j["error"];
    EXPECT_EQ(e["type"], t.type) << r.body;
    EXPECT_TRUE(e["message"].is_string() && !e["message"].get<std::string>().empty()) << r.body;
    EXPECT_EQ(e["param"], t.param ? json(t.param) : json()) << r.body;
    if (t.code) {
      EXPECT_EQ(e["code"], t.code) << r.body;
    }
    EXPECT_NE(r.head.find("Content-Type: application/json"), std::string::npos) << r.head;
  }
}

TEST_F(Api, ContextErrorNamesBothNumbers) {
  const Response r = post("/v1/completions", {{"prompt", std::string(600, 'x')}});
  const std::string msg = json::parse(r.body)["error"]["message"];
  // "the prompt has N tokens; the context holds 64 (-c) ..."
  EXPECT_NE(msg.find("the context holds 64"), std::string::npos) << msg;
  EXPECT_NE(msg.find("the prompt has "), std::string::npos) << msg;
}

TEST_F(Api, WellFormedRequests) {
  Response r = send("GET", "/health", "", "");  // open without the key
  EXPECT_EQ(r.status, 200);
  r = send("GET", "/v1/models", "");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body)["data"][0]["object"], "model");

  r = post("/v1/completions", {{"prompt", "It is a truth"}, {"max_tokens", 4}, {"temperature", 0}, {"junk", {1, 2}}});
  ASSERT_EQ(r.status, 200) << r.body;
  json j = json::parse(r.body);
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["usage"]["completion_tokens"], 4);
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");

  r = post("/v1/chat/completions", {{"messages", {{{"role", "user"}, {"content", "Hello"}}}}, {"max_tokens", 3}});
  ASSERT_EQ(r.status, 200) << r.body;
  j = json::parse(r.body);
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");

  r = post("/tokenize", {{"content", "Emma"}});
  ASSERT_EQ(r.status, 200) << r.body;
  const json ids = json::parse(r.body)["tokens"];
  r = post("/detokenize", {{"tokens", ids}});
  EXPECT_EQ(json::parse(r.body)["content"], "Emma");
}

TEST_F(Api, StreamEndsWithDone) {
  const Response r = post("/v1/chat/completions", {{"messages", {{{"role", "user"}, {"content", "Hello"}}}},
                                                   {"max_tokens", 5}, {"stream", true},
                                                   {"stream_options", {{"include_usage", true}}}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.head.find("Content-Type: text/event-stream"), std::string::npos) << r.head;
  // Chunked transfer: the events are in the body between chunk sizes.
  EXPECT_NE(r.body.find("data: [DONE]"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("\"completion_tokens\":5"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("\"finish_reason\":\"length\""), std::string::npos) << r.body;
}

TEST_F(Api, MaxTokensCapClamps) {
  ServerOptions o = small_server(1);
  o.max_tokens = 2;
  ApiServer capped(o);
  capped.load();
  const std::string body = R"({"prompt": "Anne", "max_tokens": 30})";
  const std::string raw = capped.handle("POST /v1/completions HTTP/1.1\r\nContent-Type: application/json\r\n"
                                        "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
  const json j = json::parse(raw.substr(raw.find("\r\n\r\n") + 4));
  EXPECT_EQ(j["usage"]["completion_tokens"], 2);
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
}

}  // namespace
}  // namespace bitnet

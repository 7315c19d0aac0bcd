// Fuzz target: `bitnet serve`'s request path. The input is the bytes a client sends (request line, headers,
// body); the real server (httplib's parser, our routes, request parsing into sampling parameters, the
// scheduler with the trained model) answers it without a socket through ApiServer::handle.
//
// Checked on every answer: it is an HTTP/1.1 response; no status 500 (a client's bytes never reach an
// internal error); every error (4xx, 5xx) carries an OpenAI error object with a message and a type.
// The server is small (2 slots of 96 tokens, 3 tokens generated at most) so each input costs milliseconds.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "bitnet/server/http_server.h"

namespace {

std::unique_ptr<bitnet::ApiServer> g_server;

[[noreturn]] void die(const char* what, const std::string& response) {
  std::fprintf(stderr, "fuzz_server: %s\n--- response ---\n%s\n", what, response.substr(0, 2000).c_str());
  std::abort();
}

bool is_openai_error(const std::string& body) {
  const auto j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("error")) return false;
  const auto& e = j["error"];
  return e.is_object() && e.contains("message") && e["message"].is_string() && e.contains("type") &&
         e["type"].is_string();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  bitnet::ServerOptions o;
  const char* env = std::getenv("BITNET_MODEL");
  o.model_path = env && *env ? env : BITNET_FUZZ_MODEL;
  o.sched.parallel = 2;
  o.sched.n_ctx = 96;
  o.sched.chunk = 32;
  o.sched.threads = 1;
  o.sched.max_queue = 4;
  o.max_tokens = 3;
  // Speculative decoding on, drafting in full: every request with a repeated bigram goes through verify().
  o.sched.lookup = true;
  o.sched.draft_fixed = true;
  o.sched.draft_max = 2;
  o.max_body = 64 << 10;
  g_server = std::make_unique<bitnet::ApiServer>(o);
  g_server->load();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (!g_server) LLVMFuzzerInitialize(nullptr, nullptr);
  const std::string_view request(reinterpret_cast<const char*>(data), size);
  const std::string response = g_server->handle(request);
  if (response.empty()) return 0;  // nothing that reads as a request line: httplib answers nothing
  if (response.rfind("HTTP/1.1 ", 0) != 0 || response.size() < 12) die("not an HTTP/1.1 response", response);
  const int status = std::atoi(response.substr(9, 3).c_str());
  if (status < 100 || status > 599) die("bad status", response);
  if (status == 500) die("status 500 for a client's bytes", response);
  const size_t head_end = response.find("\r\n\r\n");
  if (head_end == std::string::npos) die("no end of headers", response);
  const std::string body = response.substr(head_end + 4);
  if (status >= 400) {
    const bool head = request.rfind("HEAD", 0) == 0;  // a HEAD answer has no body
    if (body.empty() && !head) die("an error without a body", response);
    if (!body.empty() && !is_openai_error(body)) die("an error without an OpenAI error object", response);
  }
  return 0;
}

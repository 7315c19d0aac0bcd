// The public API (include/bitnet/bitnet.hpp and bitnet.h) on the trained default model, against the engine
// it wraps: the same ids, the same logits to the bit, the same greedy text; errors as codes and messages;
// cancellation from the callback; and the C API's buffers, NULLs and statuses.
#include <gtest/gtest.h>

#include <bitnet/bitnet.h>
#include <bitnet/bitnet.hpp>
#include <cstring>
#include <string>
#include <vector>

#include "bitnet/engine/generate.h"
#include "bitnet/engine/session.h"

namespace {

const char* kModel = BITNET_TEST_MODEL;
const char* kPrompt = "It is a truth universally acknowledged, that";

bitnet::api::Params small() {
  bitnet::api::Params p;
  p.n_threads = 1;
  p.n_ctx = 128;
  return p;
}

TEST(PublicApi, InfoTokensLogitsAndGreedyTextMatchTheEngine) {
  bitnet::api::Engine e = bitnet::api::Engine::load(kModel, small());
  bitnet::SessionOptions so;
  so.n_threads = 1;
  so.n_ctx = 128;
  bitnet::Session s(kModel, so);

  const bitnet::api::ModelInfo info = e.info();
  EXPECT_EQ(info.architecture, s.model().config().arch_name);
  EXPECT_EQ(info.n_vocab, s.n_vocab());
  EXPECT_EQ(info.n_layers, 5);
  EXPECT_EQ(info.bos, s.tokenizer().bos_id());
  EXPECT_EQ(e.n_ctx(), 128);

  const std::vector<int32_t> ids = e.tokenize(kPrompt);
  EXPECT_EQ(ids, s.tokenizer().encode(kPrompt, true, false));
  EXPECT_EQ(e.detokenize(std::span<const int32_t>(ids).subspan(1)), kPrompt);

  e.eval(ids);
  std::vector<float> want;
  s.eval(ids, nullptr, &want);
  ASSERT_EQ(e.logits().size(), want.size());
  EXPECT_EQ(0, std::memcmp(e.logits().data(), want.data(), want.size() * sizeof(float)));
  EXPECT_EQ(e.n_past(), static_cast<int32_t>(ids.size()));

  // Greedy sample = argmax; generate = the engine's generate().
  const int32_t id = e.sample({.temperature = 0});
  EXPECT_EQ(id, std::max_element(want.begin(), want.end()) - want.begin());
  e.reset();
  EXPECT_EQ(e.n_past(), 0);
  std::string streamed;
  const std::string text = e.generate(kPrompt, 24, {.temperature = 0}, [&](std::string_view piece) {
    streamed += piece;
    return true;
  });
  bitnet::GenerateParams g;
  g.n_predict = 24;
  g.sampling.temperature = 0;
  s.truncate(0);
  EXPECT_EQ(text, bitnet::generate(s, ids, g, [](std::string_view) { return true; }).text);
  EXPECT_EQ(streamed, text);
  EXPECT_FALSE(text.empty());
}

TEST(PublicApi, CancelErrorsAndSeeds) {
  bitnet::api::Engine e = bitnet::api::Engine::load(kModel, small());
  int pieces = 0;
  const std::string cut = e.generate(kPrompt, 40, {.temperature = 0}, [&](std::string_view) { return ++pieces < 3; });
  EXPECT_EQ(pieces, 3);
  const std::string whole = e.generate(kPrompt, 40, {.temperature = 0});
  EXPECT_LT(cut.size(), whole.size());
  EXPECT_EQ(whole.rfind(cut, 0), 0u);  // the cancelled text is a prefix of the whole one

  bitnet::api::SampleParams seeded{.temperature = 0.9f, .seed = 7};
  EXPECT_EQ(e.generate(kPrompt, 16, seeded), e.generate(kPrompt, 16, seeded));

  auto code_of = [](auto&& fn) {
    try {
      fn();
    } catch (const bitnet::api::Error& err) {
      EXPECT_STRNE(err.what(), "");
      return static_cast<int>(err.code());
    }
    return 0;
  };
  EXPECT_EQ(code_of([] { bitnet::api::Engine::load("/no/such/model.gguf"); }),
            static_cast<int>(bitnet::api::ErrorCode::Load));
  EXPECT_EQ(code_of([&] { e.eval(std::vector<int32_t>{999999}); }), static_cast<int>(bitnet::api::ErrorCode::InvalidArgument));
  EXPECT_EQ(code_of([&] { e.eval(std::vector<int32_t>(200, 5)); }), static_cast<int>(bitnet::api::ErrorCode::ContextFull));
  EXPECT_EQ(code_of([&] { e.reset(100000); }), static_cast<int>(bitnet::api::ErrorCode::InvalidArgument));
  EXPECT_EQ(code_of([&] { e.generate(kPrompt, 4, {.temperature = -1, .top_p = 7}); }),
            static_cast<int>(bitnet::api::ErrorCode::InvalidArgument));
  EXPECT_STREQ(bitnet::api::api_version(), "0.2");
}

int cancel_after_two(const char*, size_t, void* user) { return ++*static_cast<int*>(user) < 2; }

TEST(PublicCApi, StatusesBuffersAndTheSameLogits) {
  bitnet_engine* e = nullptr;
  EXPECT_EQ(bitnet_engine_load("/no/such/model.gguf", nullptr, &e), BITNET_ERR_LOAD);
  EXPECT_EQ(e, nullptr);
  EXPECT_NE(std::string(bitnet_last_error()).find("/no/such/model.gguf"), std::string::npos) << bitnet_last_error();
  EXPECT_EQ(bitnet_engine_load(nullptr, nullptr, &e), BITNET_ERR_INVALID_ARGUMENT);

  bitnet_params p = bitnet_default_params();
  p.n_threads = 1;
  p.n_ctx = 128;
  ASSERT_EQ(bitnet_engine_load(kModel, &p, &e), BITNET_OK) << bitnet_last_error();
  bitnet_model_info info;
  ASSERT_EQ(bitnet_model_get_info(e, &info), BITNET_OK);
  EXPECT_EQ(info.n_layers, 5);
  EXPECT_STREQ(info.architecture, "bitnet-b1.58");

  int32_t ids[64];
  size_t n = 0;
  EXPECT_EQ(bitnet_tokenize(e, kPrompt, std::strlen(kPrompt), 1, 0, ids, 2, &n), BITNET_ERR_BUFFER_TOO_SMALL);
  const size_t needed = n;
  ASSERT_EQ(bitnet_tokenize(e, kPrompt, std::strlen(kPrompt), 1, 0, ids, 64, &n), BITNET_OK);
  EXPECT_EQ(n, needed);
  char text[256];
  size_t len = 0;
  EXPECT_EQ(bitnet_detokenize(e, ids + 1, n - 1, text, 4, &len), BITNET_ERR_BUFFER_TOO_SMALL);
  ASSERT_EQ(bitnet_detokenize(e, ids + 1, n - 1, text, sizeof(text), &len), BITNET_OK);
  EXPECT_STREQ(text, kPrompt);
  EXPECT_EQ(len, std::strlen(kPrompt));

  EXPECT_EQ(bitnet_logits(e), nullptr);
  ASSERT_EQ(bitnet_eval(e, ids, n), BITNET_OK);
  bitnet::api::Engine cpp = bitnet::api::Engine::load(kModel, small());
  cpp.eval(std::span<const int32_t>(ids, n));
  ASSERT_NE(bitnet_logits(e), nullptr);
  EXPECT_EQ(0, std::memcmp(bitnet_logits(e), cpp.logits().data(), cpp.logits().size() * sizeof(float)));
  const int32_t bad = 999999;
  EXPECT_EQ(bitnet_eval(e, &bad, 1), BITNET_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(bitnet_last_error()).find("999999"), std::string::npos);
  int32_t id = -1;
  bitnet_sample_params greedy = bitnet_default_sample_params();
  greedy.temperature = 0;
  ASSERT_EQ(bitnet_sample(e, &greedy, &id), BITNET_OK);
  EXPECT_EQ(id, cpp.sample({.temperature = 0}));
  EXPECT_EQ(bitnet_reset(e, 0), BITNET_OK);

  int calls = 0;
  EXPECT_EQ(bitnet_generate(e, kPrompt, 40, &greedy, cancel_after_two, &calls), BITNET_ERR_CANCELLED);
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(bitnet_generate(e, kPrompt, 4, nullptr, nullptr, nullptr), BITNET_OK);
  EXPECT_STREQ(bitnet_last_error(), "");
  EXPECT_EQ(bitnet_generate(nullptr, kPrompt, 4, nullptr, nullptr, nullptr), BITNET_ERR_INVALID_ARGUMENT);
  EXPECT_STREQ(bitnet_api_version(), "0.2");
  bitnet_engine_free(e);
  bitnet_engine_free(nullptr);
}

}  // namespace

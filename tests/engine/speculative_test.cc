// Speculative decoding is exact: with prompt lookup or a draft model, generate() gives the tokens, text,
// stop reason and cache contents of plain decoding, greedy and sampled (same seed), for any draft length,
// token limit, stop string and context size; rejected drafts leave nothing behind.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "bitnet/base/error.h"
#include "bitnet/engine/draft.h"
#include "bitnet/engine/generate.h"
#include "bitnet/engine/session.h"
#include "bitnet/model/synth.h"
#include "test_util.h"

namespace bitnet {
namespace {

TEST(Speculative, LookupDraftsWhatFollowedTheLatestLongestMatch) {
  LookupDrafter d(2, 4);
  // ... 7 8 9 [1 2 3] 4 5 ... 1 2 3 -> the 4-gram "x 1 2 3" is absent, the 3-gram "1 2 3" matches.
  const std::vector<int32_t> c = {7, 1, 2, 3, 4, 5, 6, 0, 1, 2, 3, 9, 9, 1, 2, 3};
  EXPECT_EQ(d.draft(c, 3), (std::vector<int32_t>{9, 9, 1}));  // the latest occurrence (position 8)
  EXPECT_EQ(d.draft(c, 1), (std::vector<int32_t>{9}));
  EXPECT_EQ(d.draft(c, 0), (std::vector<int32_t>{}));
  // The continuation stops at the end of the context.
  EXPECT_EQ(d.draft({5, 6, 5, 6}, 8), (std::vector<int32_t>{5, 6}));
  // No n-gram of at least 2 tokens repeats: no draft (a single repeated token is not enough).
  EXPECT_TRUE(d.draft({1, 2, 3, 1}, 8).empty());
  EXPECT_EQ(LookupDrafter(1, 1).draft({1, 2, 3, 1}, 8), (std::vector<int32_t>{2, 3, 1}));
  EXPECT_TRUE(d.draft({}, 8).empty());
  EXPECT_TRUE(d.draft({4}, 8).empty());
  EXPECT_THROW(LookupDrafter(0, 2), Error);
  EXPECT_THROW(LookupDrafter(3, 2), Error);
}

struct Case {
  std::string prompt;
  GenerateParams p;
};

// The same generation plainly and with `drafter`, each in a fresh session: everything must be equal.
GenerateResult expect_same(const std::string& model, const Case& c, Drafter* drafter, int32_t draft_max,
                           int32_t n_ctx = 0, bool adaptive = false) {
  SessionOptions o;
  o.n_threads = 2;
  o.n_ctx = n_ctx;
  Session plain(model, o), spec(model, o);
  const std::vector<int32_t> ids = plain.tokenizer().encode(c.prompt, plain.tokenizer().add_bos_default(), false);
  std::string plain_text, spec_text;
  const GenerateResult a = generate(plain, ids, c.p, [&](std::string_view t) { return plain_text += t, true; });
  GenerateParams p = c.p;
  p.drafter = drafter;
  p.draft_max = draft_max;
  p.adaptive_draft = adaptive;  // fixed: every draft the drafter finds is verified, so both paths always run
  const GenerateResult b = generate(spec, ids, p, [&](std::string_view t) { return spec_text += t, true; });
  const std::string what = c.prompt.substr(0, 40) + " / draft_max " + std::to_string(draft_max) + " / T " +
                           std::to_string(c.p.sampling.temperature) + " / n " + std::to_string(c.p.n_predict);
  EXPECT_EQ(b.tokens, a.tokens) << what;
  EXPECT_EQ(b.text, a.text) << what;
  EXPECT_EQ(spec_text, plain_text) << what;
  EXPECT_EQ(b.stop_reason, a.stop_reason) << what;
  EXPECT_EQ(spec.history(), plain.history()) << what;  // rejected drafts were dropped from the cache
  EXPECT_LE(b.n_accepted, b.n_drafted);
  EXPECT_LE(b.n_passes, a.n_passes);
  return b;
}

std::vector<Case> cases() {
  const std::string passage =
      "Emma Woodhouse, handsome, clever, and rich, with a comfortable home and happy disposition, seemed to "
      "unite some of the best blessings of existence.";
  std::vector<Case> out;
  for (const std::string& prompt : {passage + "\n\n" + passage + "\n\n" + passage.substr(0, 40),
                                    std::string("It is a truth universally acknowledged, that"),
                                    std::string("\"I am sure I am sure,\" said Harriet. \"I am sure")}) {
    for (int32_t n : {0, 1, 7, 80}) {
      Case greedy{prompt, {}};
      greedy.p.n_predict = n;
      greedy.p.sampling.temperature = 0;
      out.push_back(greedy);
    }
    Case sampled{prompt, {}};
    sampled.p.n_predict = 60;
    sampled.p.sampling.temperature = 0.8f;
    sampled.p.sampling.seed = 1234;
    sampled.p.sampling.repeat_penalty = 1.1f;
    out.push_back(sampled);
    sampled.p.sampling.temperature = 1.3f;
    sampled.p.sampling.top_k = 0;
    sampled.p.sampling.min_p = 0;
    sampled.p.sampling.seed = 99;
    out.push_back(sampled);
    Case stop{prompt, {}};
    stop.p.n_predict = 80;
    stop.p.sampling.temperature = 0;
    stop.p.stop = {"sure", "\n\n"};
    out.push_back(stop);
  }
  return out;
}

TEST(Speculative, PromptLookupGivesPlainDecodingsOutput) {
  const std::string model = BITNET_TEST_MODEL;
  int32_t drafted = 0, accepted = 0;
  for (const Case& c : cases())
    for (int32_t draft_max : {1, 3, 8}) {
      LookupDrafter d;
      const GenerateResult r = expect_same(model, c, &d, draft_max);
      drafted += r.n_drafted, accepted += r.n_accepted;
    }
  EXPECT_GT(accepted, 0);          // the repeated passage is drafted and kept...
  EXPECT_LT(accepted, drafted);    // ... and some drafts are rejected: both paths ran
}

// The copy-tuned model (docs/trained-model.md, tools/train/copy_tune.py) continues a passage it has just read,
// here from the held-out novel, so prompt lookup's drafts are mostly kept; the output is still plain decoding's,
// token for token, greedy and sampled.
TEST(Speculative, CopyModelKeepsMostDraftsOfAQuotedPassage) {
  const std::string passage =
      "Sir Walter Elliot, of Kellynch Hall, in Somersetshire, was a man who, for his own amusement, never took up "
      "any book but the Baronetage; there he found occupation for an idle hour, and consolation in a distressed "
      "one; there his faculties were roused into admiration and respect, by contemplating the limited remnant of "
      "the earliest patents.";
  const size_t cut = passage.find(" any book");  // the prompt: the passage, a blank line, its first 106 characters
  Case greedy{passage + "\n\n" + passage.substr(0, cut), {}};
  greedy.p.n_predict = 40;
  greedy.p.sampling.temperature = 0;
  Case sampled = greedy;
  sampled.p.sampling.temperature = 0.7f;
  sampled.p.sampling.seed = 11;
  int32_t drafted = 0, accepted = 0;
  for (const Case& c : {greedy, sampled}) {
    LookupDrafter d;
    const GenerateResult r = expect_same(BITNET_COPY_MODEL, c, &d, 8);
    drafted += r.n_drafted, accepted += r.n_accepted;
    if (c.p.sampling.temperature == 0) {  // it copies: the rest of the passage, word for word
      EXPECT_EQ(r.text.substr(0, 60), passage.substr(cut, 60));
    }
  }
  EXPECT_GT(accepted, drafted * 3 / 4) << accepted << " of " << drafted << " drafts kept";
}

// Drafting only what pays off (DraftBudget, from measured pass times) changes how many tokens each pass
// verifies, never which tokens come out.
TEST(Speculative, AdaptiveDraftLengthsGivePlainDecodingsOutput) {
  for (const Case& c : cases()) {
    LookupDrafter d;
    expect_same(BITNET_TEST_MODEL, c, &d, 8, 0, /*adaptive=*/true);
  }
}

TEST(Speculative, DraftBudgetDraftsWhereItPays) {
  // Memory-bound: a pass of 9 tokens costs 1.3x a pass of one; with most drafts accepted, draft them all.
  DraftBudget mem(8);
  mem.on_pass(1, 0.030);
  mem.on_pass(9, 0.039);
  mem.on_verify(8, 8);
  mem.on_verify(8, 7);
  EXPECT_EQ(mem.choose(), 8);
  // Compute-bound: each token costs what the first does; with a third of drafts accepted, none pays.
  DraftBudget cpu(8);
  cpu.on_pass(1, 0.001);
  cpu.on_pass(5, 0.005);
  for (int i = 0; i < 4; ++i) cpu.on_verify(6, 2);
  int32_t drafted = 0;
  for (int i = 0; i < 32; ++i) drafted += cpu.choose();
  EXPECT_EQ(drafted, 2);  // only the probe every 16 passes
  // Nothing measured yet: no draft.
  EXPECT_EQ(DraftBudget(8).choose(), 0);
  // A new sequence (the server's next request in a slot) forgets the acceptance, not the pass costs: with the
  // prior of one half and cheap extra tokens it drafts several at once; once its drafts fail, one at most.
  mem.new_sequence();
  EXPECT_GT(mem.choose(), 1);
  for (int i = 0; i < 8; ++i) mem.on_verify(4, 0);
  EXPECT_LE(mem.choose(), 1);
  cpu.new_sequence();
  EXPECT_EQ(cpu.choose(), 0);  // compute-bound: not at even odds
  // A prompt's batched pass is a first estimate of what a token adds (here 1 ms against a 30 ms pass).
  DraftBudget fresh(8);
  fresh.on_prompt(300, 0.3);
  fresh.on_pass(1, 0.030);
  EXPECT_GT(fresh.choose(), 0);
}

TEST(Speculative, ContextLimitEndsBothAlike) {
  Case c{"Emma Woodhouse, handsome, clever, and rich. Emma Woodhouse, handsome, clever,", {}};
  c.p.sampling.temperature = 0;
  LookupDrafter d(1, 3);
  const GenerateResult r = expect_same(BITNET_TEST_MODEL, c, &d, 8, /*n_ctx=*/48);
  EXPECT_EQ(r.stop_reason, "context");
}

TEST(Speculative, DraftModelGivesPlainDecodingsOutput) {
  bitnet::testing::ScratchDir dir;
  SynthOptions o;
  o.dim = 128, o.hidden_dim = 256, o.n_layers = 2, o.n_heads = 4, o.n_kv_heads = 2, o.n_ctx = 256;
  o.write_pre = true;
  const std::string target = (dir / "target.gguf").string(), other = (dir / "draft.gguf").string();
  synth_model(o).write(target);
  o.seed = 2;
  o.n_layers = 1;
  synth_model(o).write(other);
  SessionOptions so;
  so.n_threads = 1;
  Session target_s(target, so), draft_s(other, so), self_s(target, so);
  ModelDrafter by_other(draft_s, target_s), by_self(self_s, target_s);
  for (const Case& c : cases()) {
    if (c.p.n_predict == 0) continue;
    expect_same(target, c, &by_other, 4);
    const GenerateResult r = expect_same(target, c, &by_self, 4);
    if (c.p.sampling.temperature <= 0 && c.p.stop.empty() && c.p.n_predict > 1) {
      EXPECT_GT(r.n_accepted, 0);
    }
  }
  // One vocabulary or an error naming the difference.
  Session trained(BITNET_TEST_MODEL, so);
  EXPECT_THROW(ModelDrafter(trained, target_s), Error);
}

}  // namespace
}  // namespace bitnet

// The threaded forward pass, for ThreadSanitizer: CI runs tests named Threaded.* under the tsan preset
// (.ci/run), where a data race between the pool's workers is a failure. Several threads must also give
// exactly the logits of one (the kernels split rows, never a reduction).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "bitnet/engine/session.h"
#include "bitnet/model/synth.h"
#include "test_util.h"

namespace bitnet {
namespace {

std::vector<float> logits_with(const std::string& path, int32_t threads, int32_t n_batch) {
  SessionOptions o;
  o.n_ctx = 32;
  o.n_threads = threads;
  o.n_batch = n_batch;
  Session s(path, o);
  std::vector<float> all, last;
  s.eval({1, 5, 9, 200, 17, 3, 42, 8}, &all, nullptr);  // prompt: batched
  for (int32_t t : {11, 12, 13}) {                       // decode: one token at a time
    s.eval({t}, nullptr, &last);
    all.insert(all.end(), last.begin(), last.end());
  }
  return all;
}

TEST(Threaded, ForwardPassIsRaceFreeAndMatchesOneThread) {
  bitnet::testing::ScratchDir dir;
  for (TensorType type : {TensorType::I2_S, TensorType::TQ2_0, TensorType::F16}) {
    SynthOptions o;
    o.dim = 256, o.hidden_dim = 512, o.n_layers = 2, o.n_heads = 4, o.n_kv_heads = 2, o.n_ctx = 64;
    o.weight_type = type;
    if (type != TensorType::I2_S) o.arch = "llama";
    const std::string path = (dir / "t.gguf").string();
    synth_model(o).write(path);
    const std::vector<float> one = logits_with(path, 1, 8);
    for (int32_t threads : {2, 4}) {
      EXPECT_EQ(logits_with(path, threads, 8), one) << type_traits(type).name << ", " << threads << " threads";
      EXPECT_EQ(logits_with(path, threads, 3), one) << type_traits(type).name << ", batch 3";
    }
  }
}

}  // namespace
}  // namespace bitnet

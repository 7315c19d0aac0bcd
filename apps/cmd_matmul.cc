// bitnet matmul -m MODEL --tensor NAME --input X.f32 --output Y.f32: applies one linear layer exactly as
// the forward pass does (activation quantization included) to rows of float32 input [T][in], writing
// [T][out]. A diagnostic for checking kernels and formats against other implementations.
#include <cstdio>
#include <fstream>
#include <cstring>
#include <iterator>

#include "bitnet/base/atomic_file.h"
#include "bitnet/base/error.h"
#include "commands.h"
#include "model_flags.h"

namespace bitnet::cli {

Action register_matmul(CLI::App& app) {
  struct Opts {
    ModelFlags model;
    std::string tensor, input, output;
  };
  auto o = std::make_shared<Opts>();
  app.add_option("-m,--model", o->model.model, "GGUF model file (default: the trained model, or $BITNET_MODEL)");
  add_hf_option(app, o->model.hf);
  app.add_option("--tensor", o->tensor, "Linear weight, e.g. blk.0.attn_q.weight")->required();
  app.add_option("--input", o->input, "float32 input rows [T][in]")->required();
  app.add_option("--output", o->output, "float32 output rows [T][out]")->required();
  app.add_option("--act-quant", o->model.act_quant, "auto | per-token")->capture_default_str()->check(CLI::IsMember({"auto", "per-token"}));
  return [o]() {
    LoadOptions lo;
    lo.act_quant = o->model.session_options().act_quant;
    lo.tokenizer = false;  // weights only
    const std::string path = o->model.path();
    auto model = Model::load(path, lo);
    const Linear* L = model->find_linear(o->tensor);
    if (!L) fail("{}: no linear layer named '{}'", path, o->tensor);
    std::ifstream in(o->input, std::ios::binary);
    if (!in) fail("{}: cannot open", o->input);
    std::vector<char> raw((std::istreambuf_iterator<char>(in)), {});
    const size_t row = L->cols * sizeof(float);
    if (raw.empty() || raw.size() % row != 0)
      fail("{}: {} bytes is not a whole number of rows of {} float32 values", o->input, raw.size(), L->cols);
    const int32_t T = static_cast<int32_t>(raw.size() / row);
    std::vector<float> x(raw.size() / sizeof(float)), y(size_t(T) * L->rows);
    std::memcpy(x.data(), raw.data(), raw.size());
    LinearScratch scratch(T, L->cols, 1);
    ThreadPool pool(1);
    apply_linear(*L, model->act_quant(), x.data(), T, y.data(), scratch, pool);
    AtomicFile f(o->output);
    f.write(y.data(), y.size() * sizeof(float));
    f.commit();
    return 0;
  };
}

}  // namespace bitnet::cli

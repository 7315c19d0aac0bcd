// bitnet tokenize -m MODEL [-p TEXT] [--no-bos] [--parse-special] [--json]: text from -p or all of stdin.
#include <cstdio>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "bitnet/base/error.h"
#include "bitnet/format/gguf.h"
#include "bitnet/model/vocab_gguf.h"
#include "bitnet/text/tokenizer.h"
#include "commands.h"
#include "model_flags.h"

namespace bitnet::cli {

Action register_tokenize(CLI::App& app) {
  struct Opts {
    std::string model, hf, prompt;
    bool has_prompt = false, no_bos = false, parse_special = false, json = false, show_pieces = false;
  };
  auto o = std::make_shared<Opts>();
  app.add_option("-m,--model", o->model,
                 "GGUF file, a vocabulary-only file is enough (default: the trained model, or $BITNET_MODEL)");
  add_hf_option(app, o->hf);
  app.add_option("-p,--prompt", o->prompt, "Text to tokenize (default: all of standard input)");
  app.add_flag("--no-bos", o->no_bos, "Do not add the BOS token");
  app.add_flag("--parse-special", o->parse_special, "Recognise special tokens such as <|eot_id|> in the text");
  app.add_flag("--json", o->json, "Print a JSON array of ids");
  app.add_flag("--pieces", o->show_pieces, "Print each id with its text");
  return [o, &app]() {
    std::string text = o->prompt;
    if (app.count("--prompt") == 0) text.assign(std::istreambuf_iterator<char>(std::cin), {});
    auto f = GgufFile::open(resolve_model(o->model, o->hf));
    const VocabData v = vocab_from_gguf(*f);
    auto tok = Tokenizer::create(v);
    if (v.model == "gpt2" && v.pre.empty())
      std::fprintf(stderr, "bitnet: note: the file has no tokenizer.ggml.pre; using the %s pre-tokenizer\n",
                   tok->pre_tokenizer_name().c_str());
    const auto ids = tok->encode(text, !o->no_bos && tok->add_bos_default(), o->parse_special);
    if (o->json) {
      std::printf("%s\n", nlohmann::json(ids).dump().c_str());
    } else if (o->show_pieces) {
      for (int32_t id : ids) {
        std::string piece = tok->token_text(id, true);
        std::printf("%d\t%s\n", id, nlohmann::json(piece).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
      }
    } else {
      for (size_t i = 0; i < ids.size(); ++i) std::printf("%s%d", i ? " " : "", ids[i]);
      std::printf("\n");
    }
    return 0;
  };
}

}  // namespace bitnet::cli

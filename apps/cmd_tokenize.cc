// bitnet tokenize -m MODEL [-p TEXT] [--no-bos] [--parse-special] [--json | --pieces | --jsonl]: text from -p
// or all of stdin. MODEL may also be a Hugging Face tokenizer.json, a SentencePiece tokenizer.model, or a
// checkpoint folder holding either (tokenizer.model first, as `bitnet convert` reads it).
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "bitnet/base/error.h"
#include "bitnet/format/gguf.h"
#include "bitnet/model/vocab_gguf.h"
#include "bitnet/text/hf_tokenizer_json.h"
#include "bitnet/text/spm_model.h"
#include "bitnet/text/tokenizer.h"
#include "commands.h"
#include "model_flags.h"

namespace bitnet::cli {

Action register_tokenize(CLI::App& app) {
  struct Opts {
    std::string model, hf, prompt;
    bool has_prompt = false, no_bos = false, parse_special = false, json = false, show_pieces = false, jsonl = false;
  };
  auto o = std::make_shared<Opts>();
  app.add_option("-m,--model", o->model,
                 "GGUF file (a vocabulary-only file is enough), a Hugging Face tokenizer.json, a SentencePiece "
                 "tokenizer.model, or a checkpoint folder (default: the trained model, or $BITNET_MODEL)");
  add_hf_option(app, o->hf);
  app.add_option("-p,--prompt", o->prompt, "Text to tokenize (default: all of standard input)");
  app.add_flag("--no-bos", o->no_bos, "Do not add the BOS token");
  app.add_flag("--parse-special", o->parse_special, "Recognise special tokens such as <|eot_id|> in the text");
  app.add_flag("--json", o->json, "Print a JSON array of ids");
  app.add_flag("--pieces", o->show_pieces, "Print each id with its text");
  app.add_flag("--jsonl", o->jsonl,
               "Batch: standard input holds one JSON string per line; print one line per text: "
               "{\"ids\": [...], \"text\": decoded ids} (special tokens rendered)");
  return [o, &app]() {
    std::string text = o->prompt;
    if (app.count("--prompt") == 0) text.assign(std::istreambuf_iterator<char>(std::cin), {});
    namespace fs = std::filesystem;
    VocabData v;
    if (!o->model.empty() && fs::is_directory(o->model)) {  // as `bitnet convert` reads it
      const fs::path spm = fs::path(o->model) / "tokenizer.model";
      v = fs::exists(spm) ? load_sentencepiece_model(spm) : load_hf_tokenizer_json(fs::path(o->model) / "tokenizer.json");
    } else if (o->model.ends_with(".json")) {
      v = load_hf_tokenizer_json(o->model);
    } else if (o->model.ends_with(".model")) {
      v = load_sentencepiece_model(o->model);
    } else {
      v = vocab_from_gguf(*GgufFile::open(resolve_model(o->model, o->hf)));
    }
    auto tok = Tokenizer::create(v);
    if (v.model == "gpt2" && v.pre.empty() && v.pipeline.empty())
      std::fprintf(stderr, "bitnet: note: the file has no tokenizer.ggml.pre; using the %s pre-tokenizer\n",
                   tok->pre_tokenizer_name().c_str());
    const bool bos = !o->no_bos && tok->add_bos_default();
    const auto dump = [](const nlohmann::json& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); };
    if (o->jsonl) {
      size_t line_no = 0;
      for (size_t pos = 0; pos < text.size();) {
        size_t end = text.find('\n', pos);
        if (end == std::string::npos) end = text.size();
        const std::string_view line = std::string_view(text).substr(pos, end - pos);
        pos = end + 1;
        ++line_no;
        if (line.empty()) continue;
        nlohmann::json s;
        try {
          s = nlohmann::json::parse(line);
        } catch (const nlohmann::json::exception& e) {
          fail("standard input line {}: not JSON: {}", line_no, e.what());
        }
        if (!s.is_string()) fail("standard input line {}: expected a JSON string, got {}", line_no, s.type_name());
        const auto ids = tok->encode(s.get<std::string>(), bos, o->parse_special);
        std::printf("%s\n", dump({{"ids", ids}, {"text", tok->decode(ids, true)}}).c_str());
      }
      return 0;
    }
    const auto ids = tok->encode(text, bos, o->parse_special);
    if (o->json) {
      std::printf("%s\n", nlohmann::json(ids).dump().c_str());
    } else if (o->show_pieces) {
      for (int32_t id : ids) {
        std::string piece = tok->token_text(id, true);
        std::printf("%d\t%s\n", id, dump(piece).c_str());
      }
    } else {
      for (size_t i = 0; i < ids.size(); ++i) std::printf("%s%d", i ? " " : "", ids[i]);
      std::printf("\n");
    }
    return 0;
  };
}

}  // namespace bitnet::cli

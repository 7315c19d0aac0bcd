#include "bitnet/text/hf_tokenizer_json.h"

#include <algorithm>
#include <climits>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_map>
#include <vector>

#include "bitnet/base/error.h"
#include "bitnet/base/utf8.h"
#include "bitnet/text/hf_pipeline.h"

namespace bitnet {
namespace {

using nlohmann::json;

std::string read_file(const std::filesystem::path& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("cannot open '{}'", path.string());
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) fail("cannot read '{}'", path.string());
  return ss.str();
}

// Nesting depth of a JSON value, without recursion: a hostile file nests 200k levels, and copying or
// dumping such a value recurses once per level (found by tests/fuzz/fuzz_hf_tokenizer_json).
size_t json_depth(const json& root) {
  size_t deepest = 0;
  std::vector<std::pair<const json*, size_t>> todo{{&root, 1}};
  while (!todo.empty()) {
    const auto [v, d] = todo.back();
    todo.pop_back();
    deepest = std::max(deepest, d);
    if (v->is_structured())
      for (const json& c : *v) todo.push_back({&c, d + 1});
  }
  return deepest;
}
constexpr size_t kMaxSequenceDepth = 16;  // Sequences in Sequences; real files nest one level

// A token id: a JSON integer (a float such as 1e300 would be undefined behaviour to convert).
int64_t json_id(const json& v, std::string_view source, std::string_view text) {
  if (!v.is_number_integer())
    fail("{}: token '{}' has id {}, expected an integer", source, escape_for_message(text),
         escape_for_message(v.dump()));
  return v.get<int64_t>();
}

// tokenizer_config.json token fields are a string or an AddedToken object {"content": ...}.
std::string config_token_text(const json& config, const char* key) {
  if (!config.contains(key)) return {};
  const json& v = config.at(key);
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content")) return v.at("content").get<std::string>();
  return {};
}

}  // namespace

VocabData vocab_from_hf_tokenizer_json(std::string_view tokenizer_json, std::string_view config_json,
                                       std::string_view source) {
  VocabData v;
  try {
    const json j = json::parse(tokenizer_json);
    const json& model = j.at("model");
    const std::string type = model.value("type", "BPE");
    if (type != "BPE")
      fail("{}: model type '{}' is not supported; only BPE tokenizers are (SentencePiece models: give the "
           "directory's tokenizer.model)", source, escape_for_message(type));

    // The text pipeline: everything of the file but the vocabulary, merges and added tokens.
    json pipeline = json::object();
    for (const char* key : {"normalizer", "pre_tokenizer", "decoder"}) {
      if (!j.contains(key)) continue;
      // A Sequence level is two JSON levels (the object and its list).
      if (json_depth(j.at(key)) > 2 * kMaxSequenceDepth + 2)
        fail("{}: {} Sequences are nested more than {} levels deep", source, key, kMaxSequenceDepth);
      pipeline[key] = j.at(key);
    }
    pipeline["model"] = json::object();
    for (const auto& [key, value] : model.items())
      if (key != "vocab" && key != "merges") pipeline["model"][key] = value;
    v.pipeline = pipeline.dump();
    const TextPipeline parsed = TextPipeline::parse(v.pipeline, source);  // refuses what it cannot run
    v.model = parsed.byte_level() ? "gpt2" : "bpe";
    if (parsed.byte_level()) v.pre = parsed.gguf_pre_name();

    // Vocabulary, then added tokens on top (they may extend it or restate entries of it).
    // Ids should be dense; a few holes are padded, a wild id is refused rather than allocated for.
    const json& added = j.contains("added_tokens") ? j.at("added_tokens") : json::array();
    const int64_t id_limit = static_cast<int64_t>(model.at("vocab").size() + added.size()) + 65536;
    std::vector<bool> present;
    const auto place = [&](int64_t id, const std::string& text, TokenType t) {
      if (id < 0 || id >= id_limit) {
        fail("{}: token '{}' has id {}, outside [0, {}) for {} vocabulary entries", source,
             escape_for_message(text), id, id_limit, id_limit - 65536);
      }
      const auto i = static_cast<size_t>(id);
      if (i >= v.tokens.size()) {
        v.tokens.resize(i + 1);
        v.token_types.resize(i + 1, static_cast<int32_t>(TokenType::kUnused));
        present.resize(i + 1, false);
      }
      if (present[i] && v.tokens[i] != text) {
        fail("{}: id {} is given to both '{}' and '{}'", source, id, escape_for_message(v.tokens[i]),
             escape_for_message(text));
      }
      v.tokens[i] = text;
      v.token_types[i] = static_cast<int32_t>(t);
      present[i] = true;
    };
    for (const auto& [text, id] : model.at("vocab").items())
      place(json_id(id, source, text), text, TokenType::kNormal);
    for (const json& a : added) {
      const std::string content = a.at("content").get<std::string>();
      for (const char* opt : {"lstrip", "rstrip", "single_word"})
        if (a.value(opt, false))
          fail("{}: added token '{}' has {} = true, which is not supported (whitespace around added tokens "
               "would be tokenized differently)", source, escape_for_message(content), opt);
      place(json_id(a.at("id"), source, content), content,
            a.value("special", false) ? TokenType::kControl : TokenType::kUserDefined);
    }
    for (size_t i = 0; i < v.tokens.size(); ++i) {
      if (!present[i]) v.tokens[i] = "[PAD" + std::to_string(i) + "]";  // as llama.cpp's converter
    }

    for (const json& m : model.at("merges")) {
      if (m.is_string()) {
        v.merges.push_back(m.get<std::string>());
      } else if (m.is_array() && m.size() == 2) {
        v.merges.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
      } else {
        fail("{}: merge #{} is neither \"a b\" nor [\"a\", \"b\"]: {}", source, v.merges.size(), m.dump());
      }
    }

    std::unordered_map<std::string, int32_t> ids;  // only for the handful of special-token lookups below
    for (size_t i = 0; i < v.tokens.size(); ++i) {
      if (present[i]) ids.emplace(v.tokens[i], static_cast<int32_t>(i));
    }
    const auto id_of = [&](const std::string& text) -> int32_t {
      const auto it = ids.find(text);
      return it == ids.end() ? -1 : it->second;
    };
    const auto first_of = [&](std::initializer_list<const char*> names) {
      for (const char* n : names) {
        if (int32_t id = id_of(n); id >= 0) return id;
      }
      return -1;
    };

    // llama.cpp tells Falcon3's tokenizer from other LLaMA-3-regex ones by a hash of a test encoding and calls it
    // "falcon3"; its >>TITLE<< special at id 0 says the same. (Its ignore_merges may differ from the file's; the
    // stored pipeline keeps what the file says for bitnet, vocab_gguf.cc.)
    if ((v.pre == "llama-bpe" || v.pre == "smaug-bpe") && id_of(">>TITLE<<") == 0 && id_of("<|endoftext|>") >= 0)
      v.pre = "falcon3";

    v.eot_id = first_of({"<|eot_id|>"});
    v.eom_id = first_of({"<|eom_id|>"});
    if (!config_json.empty()) {
      const json c = json::parse(config_json);
      v.bos_id = id_of(config_token_text(c, "bos_token"));
      v.eos_id = id_of(config_token_text(c, "eos_token"));
      v.unk_id = id_of(config_token_text(c, "unk_token"));
      v.pad_id = id_of(config_token_text(c, "pad_token"));
      if (c.contains("add_bos_token") && c.at("add_bos_token").is_boolean())
        v.add_bos = c.at("add_bos_token").get<bool>();
      if (c.contains("add_eos_token") && c.at("add_eos_token").is_boolean())
        v.add_eos = c.at("add_eos_token").get<bool>();
    } else {
      v.bos_id = first_of({"<|begin_of_text|>", "<s>", "<|endoftext|>"});
      v.eos_id = first_of({"<|end_of_text|>", "</s>", "<|endoftext|>"});
    }
    v.add_bos = v.add_bos && v.bos_id >= 0;
  } catch (const json::exception& e) {
    fail("{}: {}", source, e.what());
  }
  return v;
}

VocabData load_hf_tokenizer_json(const std::filesystem::path& tokenizer_json_path) {
  const std::string text = read_file(tokenizer_json_path);
  const std::filesystem::path config_path = tokenizer_json_path.parent_path() / "tokenizer_config.json";
  std::string config;
  const bool with_config = std::filesystem::exists(config_path);
  if (with_config) config = read_file(config_path);
  return vocab_from_hf_tokenizer_json(
      text, config, tokenizer_json_path.string() + (with_config ? " (+ tokenizer_config.json)" : ""));
}

}  // namespace bitnet

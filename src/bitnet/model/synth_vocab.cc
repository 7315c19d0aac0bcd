// The tiny byte-level BPE vocabulary of synthetic models: merges learned from a short built-in text, so
// the tokenizer path is exercised with real merges without shipping the 128k LLaMA-3 vocabulary.
#include <algorithm>
#include <map>
#include <unordered_map>
#include <unordered_set>

#include "bitnet/model/synth.h"
#include "bitnet/text/byte_unicode.h"
#include "bitnet/text/vocab.h"

namespace bitnet {

namespace {

constexpr const char* kCorpus =
    "The model reads a prompt, turns it into tokens, and predicts the next token one step at a time. "
    "Each layer normalises its input, projects it with ternary weights whose values are minus one, zero or "
    "plus one, and adds the result back to the residual stream. The weights are stored in two bits each, "
    "with one scale for the whole tensor. When the output looks wrong, the first thing to check is the "
    "reader, not the file: the numbers in the file are usually right. This is the lesson of the project. "
    "The quick brown fox jumps over the lazy dog. She said that they would meet there at seven in the "
    "evening, and then walked home along the river, thinking about the morning and the long day ahead. "
    "Numbers such as 2024, 3.14 and 1,000,000 appear in text too, as do names like Paris, London and Rome.";

const char* const kSpecials[] = {"<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
                                 "<|end_header_id|>", "<|eot_id|>"};

}  // namespace

VocabData tiny_bpe_vocab(uint32_t n_merges) {
  VocabData v;
  v.model = "gpt2";
  std::unordered_map<std::string, int32_t> ids;
  for (int b = 0; b < 256; ++b) {
    std::string s;
    append_byte_level(std::string(1, static_cast<char>(b)), s);
    ids.emplace(s, static_cast<int32_t>(v.tokens.size()));
    v.tokens.push_back(s);
  }

  // Words as in GPT-2 pre-tokenization: a leading space stays with the word that follows it.
  std::map<std::vector<std::string>, uint64_t> words;
  const std::string text = kCorpus;
  for (size_t i = 0; i < text.size();) {
    size_t j = i + 1;
    while (j < text.size() && text[j] != ' ') ++j;
    std::vector<std::string> symbols;
    for (size_t k = i; k < j; ++k) {
      std::string s;
      append_byte_level(text.substr(k, 1), s);
      symbols.push_back(s);
    }
    ++words[symbols];
    i = j;
  }

  for (uint32_t m = 0; m < n_merges; ++m) {
    std::map<std::pair<std::string, std::string>, uint64_t> pairs;  // ordered: ties break deterministically
    for (const auto& [w, count] : words)
      for (size_t k = 0; k + 1 < w.size(); ++k) pairs[{w[k], w[k + 1]}] += count;
    if (pairs.empty()) break;
    auto best = std::max_element(pairs.begin(), pairs.end(),
                                 [](const auto& a, const auto& b) { return a.second < b.second; });
    const auto [left, right] = best->first;
    const std::string merged = left + right;
    v.merges.push_back(left + " " + right);
    if (ids.emplace(merged, static_cast<int32_t>(v.tokens.size())).second) v.tokens.push_back(merged);
    std::map<std::vector<std::string>, uint64_t> next;
    for (const auto& [w, count] : words) {
      std::vector<std::string> out;
      for (size_t k = 0; k < w.size(); ++k) {
        if (k + 1 < w.size() && w[k] == left && w[k + 1] == right) {
          out.push_back(merged);
          ++k;
        } else {
          out.push_back(w[k]);
        }
      }
      next[out] += count;
    }
    words = std::move(next);
  }

  v.token_types.assign(v.tokens.size(), static_cast<int32_t>(TokenType::kNormal));
  for (const char* s : kSpecials) {
    const auto id = static_cast<int32_t>(v.tokens.size());
    v.tokens.push_back(s);
    v.token_types.push_back(static_cast<int32_t>(TokenType::kControl));
    if (std::string(s) == "<|begin_of_text|>") v.bos_id = id;
    if (std::string(s) == "<|end_of_text|>") v.eos_id = id;
    if (std::string(s) == "<|eot_id|>") v.eot_id = id;
  }
  v.add_bos = true;
  return v;
}

}  // namespace bitnet

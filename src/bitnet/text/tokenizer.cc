#include "bitnet/text/tokenizer.h"

#include <algorithm>
#include <climits>

#include "bitnet/base/error.h"
#include "bitnet/base/utf8.h"
#include "bitnet/text/bpe_tokenizer.h"
#include "bitnet/text/spm_tokenizer.h"

namespace bitnet {
namespace {

// Control tokens with these texts end generation even when no *_token_id key names them (as llama.cpp).
constexpr std::string_view kEogTexts[] = {"<|eot_id|>", "<|end_of_text|>", "<|eom_id|>",
                                          "<|im_end|>", "<end_of_turn>",   "</s>"};
// Used as eot_id when tokenizer.ggml.eot_token_id is absent.
constexpr std::string_view kEotTexts[] = {"<|eot_id|>", "<|im_end|>", "<end_of_turn>"};

// "<0xNN>" (upper-case hex, SentencePiece byte-fallback spelling) -> NN, else -1.
int parse_byte_token(std::string_view t) {
  if (t.size() != 6 || t.substr(0, 3) != "<0x" || t[5] != '>') return -1;
  int v = 0;
  for (char c : t.substr(3, 2)) {
    const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

}  // namespace

std::unique_ptr<Tokenizer> Tokenizer::create(VocabData vocab) {
  std::unique_ptr<Tokenizer> t;
  if (vocab.model == "gpt2" || vocab.model == "bpe") {
    t.reset(new BpeTokenizer(vocab));
  } else if (vocab.model == "llama") {
    t.reset(new SpmTokenizer(vocab));
  } else {
    fail(
        "tokenizer.ggml.model = '{}' is not supported; supported: 'gpt2' (byte-level BPE), 'bpe' (Hugging "
        "Face BPE with a stored pipeline), 'llama' (SentencePiece)",
        escape_for_message(vocab.model));
  }
  t->build_token_bytes();
  return t;
}

Tokenizer::~Tokenizer() = default;

Tokenizer::Tokenizer(VocabData& v) : model_(v.model), text_(std::move(v.tokens)) {
  const size_t n = text_.size();
  if (n == 0) fail("the vocabulary is empty (tokenizer.ggml.tokens has no entries)");
  if (n > static_cast<size_t>(INT32_MAX)) fail("the vocabulary has {} tokens, more than int32 ids allow", n);
  if (!v.scores.empty() && v.scores.size() != n) {
    fail("tokenizer.ggml.scores has {} entries but tokenizer.ggml.tokens has {}", v.scores.size(), n);
  }
  if (!v.token_types.empty() && v.token_types.size() != n) {
    fail("tokenizer.ggml.token_type has {} entries but tokenizer.ggml.tokens has {}", v.token_types.size(),
         n);
  }

  const auto checked_id = [n](int32_t id, const char* key) {
    if (id < -1 || id >= static_cast<int32_t>(n)) {
      fail("tokenizer.ggml.{} = {} is out of range: the vocabulary has {} tokens", key, id, n);
    }
    return id;
  };
  bos_id_ = checked_id(v.bos_id, "bos_token_id");
  eos_id_ = checked_id(v.eos_id, "eos_token_id");
  eot_id_ = checked_id(v.eot_id, "eot_token_id");
  eom_id_ = checked_id(v.eom_id, "eom_token_id");
  unk_id_ = checked_id(v.unk_id, "unknown_token_id");
  pad_id_ = checked_id(v.pad_id, "padding_token_id");

  type_.assign(n, TokenType::kNormal);
  if (!v.token_types.empty()) {
    for (size_t i = 0; i < n; ++i) {
      const int32_t t = v.token_types[i];
      if (t < 0 || t > static_cast<int32_t>(TokenType::kByte)) {
        fail("tokenizer.ggml.token_type[{}] = {} is not a token type (0-6), token '{}'", i, t,
             escape_for_message(text_[i]));
      }
      if (t != static_cast<int32_t>(TokenType::kUndefined)) type_[i] = static_cast<TokenType>(t);
    }
  } else {
    // No types stored: the named special ids are control tokens, <0xNN> are SentencePiece byte tokens.
    for (int32_t id : {bos_id_, eos_id_, eot_id_, eom_id_, pad_id_}) {
      if (id >= 0) type_[id] = TokenType::kControl;
    }
    if (unk_id_ >= 0) type_[unk_id_] = TokenType::kUnknown;
    if (model_ == "llama") {
      for (size_t i = 0; i < n; ++i) {
        if (parse_byte_token(text_[i]) >= 0) type_[i] = TokenType::kByte;
      }
    }
  }

  id_of_.build(text_);  // text_ is never modified after this point

  for (size_t i = 0; i < n; ++i) {
    const TokenType t = type_[i];
    if (text_[i].empty()) continue;
    if (t == TokenType::kControl || t == TokenType::kUnknown || t == TokenType::kUserDefined) {
      specials_by_byte_[static_cast<uint8_t>(text_[i][0])].push_back(
          {static_cast<int32_t>(i), t != TokenType::kUserDefined});
    }
  }
  for (auto& bucket : specials_by_byte_) {
    std::stable_sort(bucket.begin(), bucket.end(), [this](const Special& a, const Special& b) {
      return text_[a.id].size() > text_[b.id].size();
    });
  }

  const auto special_named = [this](std::string_view name) -> int32_t {
    const int32_t id = find_token(name);
    if (id < 0) return -1;
    return is_type(id, TokenType::kControl) || is_type(id, TokenType::kUserDefined) ? id : -1;
  };
  if (eot_id_ < 0) {
    for (std::string_view name : kEotTexts) {
      if ((eot_id_ = special_named(name)) >= 0) break;
    }
  }
  for (int32_t id : {eos_id_, eot_id_, eom_id_}) {
    if (id >= 0) eog_ids_.push_back(id);
  }
  for (std::string_view name : kEogTexts) {
    const int32_t id = special_named(name);
    if (id >= 0) eog_ids_.push_back(id);
  }
  std::sort(eog_ids_.begin(), eog_ids_.end());
  eog_ids_.erase(std::unique(eog_ids_.begin(), eog_ids_.end()), eog_ids_.end());

  add_bos_ = v.add_bos && bos_id_ >= 0;
  add_eos_ = v.add_eos && eos_id_ >= 0;
  strip_decoded_space_ = model_ == "llama" && v.add_space_prefix;
}

void Tokenizer::build_token_bytes() {
  bytes_.resize(text_.size());
  for (size_t i = 0; i < text_.size(); ++i) {
    switch (type_[i]) {
      case TokenType::kControl:
      case TokenType::kUnknown:
      case TokenType::kUserDefined:  // added tokens are stored as raw text in both vocabularies
        bytes_[i] = added_token_bytes(text_[i]);
        break;
      case TokenType::kByte: {
        const int b = parse_byte_token(text_[i]);
        bytes_[i] = b >= 0 ? std::string(1, static_cast<char>(b)) : normal_token_bytes(text_[i]);
        break;
      }
      default:
        bytes_[i] = normal_token_bytes(text_[i]);
    }
  }
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_bos, bool parse_special) const {
  return encode_impl(text, add_bos, [parse_special](size_t, size_t) { return parse_special; });
}

std::vector<int32_t> Tokenizer::encode_marked(std::string_view text, std::span<const Range> markup,
                                              bool add_bos) const {
  for (size_t r = 0; r < markup.size(); ++r)
    if (markup[r].begin > markup[r].end || markup[r].end > text.size() || (r > 0 && markup[r].begin < markup[r - 1].end))
      fail("encode_marked: markup range {} [{}, {}) is not sorted, disjoint and inside the {}-byte text", r,
           markup[r].begin, markup[r].end, text.size());
  // Positions only grow during a scan, so one cursor over the ranges suffices.
  size_t r = 0;
  return encode_impl(text, add_bos, [&](size_t pos, size_t len) {
    while (r < markup.size() && markup[r].end <= pos) ++r;
    return r < markup.size() && markup[r].begin <= pos && pos + len <= markup[r].end;
  });
}

template <typename AllowControl>
std::vector<int32_t> Tokenizer::encode_impl(std::string_view text, bool add_bos, AllowControl allow_control) const {
  // Implementations index bytes of one fragment with 32-bit integers.
  if (text.size() > static_cast<size_t>(INT32_MAX / 4)) {
    fail("a text of {} bytes is too long to tokenize at once (limit 512 MiB)", text.size());
  }
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 2);
  if (add_bos) {
    if (bos_id_ < 0)
      fail("a BOS token was requested but the vocabulary has none (tokenizer.ggml.bos_token_id)");
    out.push_back(bos_id_);
  }
  // Leftmost special token wins; at one position, the longest (buckets are sorted by length).
  bool after_special = true;
  size_t fragment_start = 0;
  for (size_t i = 0; i < text.size();) {
    int32_t match = -1;
    for (const Special& sp : specials_by_byte_[static_cast<uint8_t>(text[i])]) {
      if (!text.substr(i).starts_with(text_[sp.id])) continue;
      if (sp.needs_parse_special && !allow_control(i, text_[sp.id].size())) continue;
      match = sp.id;
      break;
    }
    if (match < 0) {
      ++i;
      continue;
    }
    if (i > fragment_start)
      encode_fragment(text.substr(fragment_start, i - fragment_start), after_special, fragment_start == 0, out);
    out.push_back(match);
    after_special = true;
    i += text_[match].size();
    fragment_start = i;
  }
  if (fragment_start < text.size())
    encode_fragment(text.substr(fragment_start), after_special, fragment_start == 0, out);
  return out;
}

std::string_view Tokenizer::token_bytes(int32_t id, bool render_special) const {
  const TokenType t = token_type(id);
  if (!render_special && (t == TokenType::kControl || t == TokenType::kUnknown)) return {};
  return bytes_[static_cast<size_t>(id)];
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool render_special) const {
  std::string out;
  bool strip_space = strip_decoded_space_;
  for (int32_t id : ids) {
    std::string_view b = token_bytes(id, render_special);
    const bool eligible = strip_skips_control_ ? !is_type(id, TokenType::kControl) && !is_type(id, TokenType::kUnknown)
                                               : !b.empty();
    if (strip_space && eligible) {
      if (!b.empty() && b[0] == ' ') b.remove_prefix(1);
      strip_space = false;
    }
    out.append(b);
  }
  return out;
}

bool Tokenizer::is_eog(int32_t id) const {
  return std::find(eog_ids_.begin(), eog_ids_.end(), id) != eog_ids_.end();
}

TokenType Tokenizer::token_type(int32_t id) const {
  if (id < 0 || id >= n_vocab())
    fail("token id {} is out of range: the vocabulary has {} tokens", id, n_vocab());
  return type_[static_cast<size_t>(id)];
}

const std::string& Tokenizer::vocab_text(int32_t id) const {
  token_type(id);  // range check
  return text_[static_cast<size_t>(id)];
}

int32_t Tokenizer::find_token(std::string_view vocab_text) const {
  return id_of_.find(vocab_text);
}

}  // namespace bitnet

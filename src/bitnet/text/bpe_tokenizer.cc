#include "bitnet/text/bpe_tokenizer.h"

#include <algorithm>

#include "bitnet/base/error.h"
#include "bitnet/base/utf8.h"
#include "bitnet/text/byte_unicode.h"

namespace bitnet {
namespace {

// tokenizer.ggml.pre values that mean the LLaMA-3 regex; empty = key absent (the official BitNet
// GGUF), which we also read as LLaMA-3 since that is the only byte-level vocabulary we serve.
std::string checked_pre_name(const std::string& pre) {
  if (pre.empty() || pre == "llama-bpe" || pre == "llama3" || pre == "llama-v3") return "llama3";
  if (pre == "smaug-bpe") return "smaug-bpe";
  fail(
      "tokenizer.ggml.pre = '{}' is not supported; supported byte-level BPE pre-tokenizers: llama-bpe, "
      "llama3, llama-v3, smaug-bpe (or the key absent, read as llama-bpe)",
      escape_for_message(pre));
}

}  // namespace

struct BpeTokenizer::Scratch {
  struct Symbol {
    int32_t id;    // current token; kDead once merged into its left neighbour
    int32_t prev;  // index of the previous live symbol, -1 at the start
    int32_t next;  // index of the next live symbol, -1 at the end
  };
  struct Candidate {  // a mergeable adjacent pair, valid while both ids are unchanged
    int32_t rank, left, right, left_id, right_id, result;
  };
  static constexpr int32_t kDead = -2;

  std::vector<std::string_view> pieces;
  std::string mapped;  // piece in the GPT-2 alphabet
  std::vector<Symbol> sym;
  std::vector<Candidate> heap;  // min-heap on (rank, left)
};

BpeTokenizer::BpeTokenizer(VocabData& vocab)
    : Tokenizer(vocab),
      pre_name_(checked_pre_name(vocab.pre)),
      ignore_merges_(pre_name_ == "llama3"),
      splitter_(kLlama3PreTokenizerPattern) {
  // One-character token for every byte (all 256 exist in GPT-2-style vocabularies).
  std::string one;
  for (int b = 0; b < 256; ++b) {
    const char c = static_cast<char>(b);
    one.clear();
    append_byte_level(std::string_view(&c, 1), one);
    byte_token_[static_cast<size_t>(b)] = id_of_.find(one);
  }

  if (vocab.merges.empty()) fail("byte-level BPE vocabulary has no merges (tokenizer.ggml.merges is empty)");
  if (vocab.merges.size() > static_cast<size_t>(INT32_MAX)) fail("too many merges: {}", vocab.merges.size());
  merges_ = PairIndex(vocab.merges.size());
  std::string joined;
  for (size_t rank = 0; rank < vocab.merges.size(); ++rank) {
    const std::string_view m = vocab.merges[rank];
    // "left right": split at the first space after position 0 (token texts use 'Ġ', not ' ').
    const size_t sp = m.size() > 1 ? m.find(' ', 1) : std::string_view::npos;
    if (sp == std::string_view::npos || sp + 1 >= m.size()) {
      fail("tokenizer.ggml.merges[{}] = '{}' is not of the form 'left right'", rank, escape_for_message(m));
    }
    const std::string_view left = m.substr(0, sp), right = m.substr(sp + 1);
    const int32_t l = id_of_.find(left), r = id_of_.find(right);
    if (l < 0 || r < 0) {
      fail("tokenizer.ggml.merges[{}] = '{}' names a token that is not in the vocabulary: '{}'", rank,
           escape_for_message(m), escape_for_message(l < 0 ? left : right));
    }
    joined.assign(left).append(right);
    const int32_t res = id_of_.find(joined);
    if (res < 0) {
      fail("tokenizer.ggml.merges[{}] = '{}' produces '{}', which is not in the vocabulary", rank,
           escape_for_message(m), escape_for_message(joined));
    }
    // A repeated pair keeps its first (lowest) rank, as in HF.
    merges_.insert(l, r, {static_cast<int32_t>(rank), res});
  }
}

std::string BpeTokenizer::pre_tokenizer_name() const {
  return pre_name_;
}

std::string BpeTokenizer::normal_token_bytes(std::string_view stored) const {
  return decode_byte_level(stored);
}

void BpeTokenizer::encode_fragment(std::string_view text, bool /*after_special*/,
                                   std::vector<int32_t>& out) const {
  Scratch s;
  splitter_.split(text, s.pieces);
  for (std::string_view piece : s.pieces) encode_piece(piece, s, out);
}

void BpeTokenizer::encode_piece(std::string_view piece, Scratch& s, std::vector<int32_t>& out) const {
  using Candidate = Scratch::Candidate;
  // A byte without a one-character token (not in LLaMA-3) becomes <unk> if there is one, else is dropped.
  const auto emit = [&](int32_t id) {
    if (id >= 0) {
      out.push_back(id);
    } else if (unk_id() >= 0) {
      out.push_back(unk_id());
    }
  };

  if (piece.empty()) return;
  if (ignore_merges_ || piece.size() == 1) {
    s.mapped.clear();
    append_byte_level(piece, s.mapped);
    const int32_t id = id_of_.find(s.mapped);
    if (id >= 0 && is_type(id, TokenType::kNormal)) {
      out.push_back(id);
      return;
    }
  }

  const int32_t n = static_cast<int32_t>(piece.size());
  s.sym.resize(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) {
    s.sym[i] = {byte_token_[static_cast<uint8_t>(piece[i])], i - 1, i + 1 < n ? i + 1 : -1};
  }

  const auto later = [](const Candidate& a, const Candidate& b) {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  };
  s.heap.clear();
  const auto consider = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const int32_t lid = s.sym[left].id, rid = s.sym[right].id;
    if (lid < 0 || rid < 0) return;
    const PairIndex::Value* m = merges_.find(lid, rid);
    if (m == nullptr) return;
    s.heap.push_back({m->rank, left, right, lid, rid, m->result});
    std::push_heap(s.heap.begin(), s.heap.end(), later);
  };
  for (int32_t i = 0; i + 1 < n; ++i) consider(i, i + 1);

  while (!s.heap.empty()) {
    std::pop_heap(s.heap.begin(), s.heap.end(), later);
    const Candidate c = s.heap.back();
    s.heap.pop_back();
    Scratch::Symbol& l = s.sym[c.left];
    Scratch::Symbol& r = s.sym[c.right];
    // Stale if either side merged since: a merge changes the id (texts only grow, so ids never repeat).
    if (l.id != c.left_id || r.id != c.right_id || l.next != c.right) continue;
    l.id = c.result;
    l.next = r.next;
    if (r.next >= 0) s.sym[r.next].prev = c.left;
    r.id = Scratch::kDead;
    consider(l.prev, c.left);
    consider(c.left, l.next);
  }

  for (int32_t i = 0; i >= 0; i = s.sym[i].next) emit(s.sym[i].id);
}

}  // namespace bitnet

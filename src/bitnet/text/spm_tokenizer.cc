#include "bitnet/text/spm_tokenizer.h"

#include <algorithm>

#include "bitnet/base/error.h"
#include "bitnet/base/utf8.h"

namespace bitnet {
namespace {

constexpr std::string_view kSpace = "\xE2\x96\x81";  // '▁' U+2581, SentencePiece's visible space

}  // namespace

SpmTokenizer::SpmTokenizer(VocabData& vocab)
    : Tokenizer(vocab), score_(vocab.scores), add_space_prefix_(vocab.add_space_prefix) {
  score_.resize(text_.size(), 0.0f);
  for (int b = 0; b < 256; ++b) {
    byte_token_[static_cast<size_t>(b)] = find_token(fmt::format("<0x{:02X}>", b));
    if (byte_token_[static_cast<size_t>(b)] < 0 && unk_id() < 0) {
      fail(
          "SentencePiece vocabulary has no byte token <0x{:02X}> and no unknown token "
          "(tokenizer.ggml.unknown_token_id): characters outside the vocabulary could not be encoded",
          b);
    }
  }
}

int32_t SpmTokenizer::normal_token(std::string_view text) const {
  const int32_t id = id_of_.find(text);
  return id >= 0 && is_type(id, TokenType::kNormal) ? id : -1;
}

std::string SpmTokenizer::normal_token_bytes(std::string_view stored) const {
  std::string out;
  out.reserve(stored.size());
  for (size_t i = 0; i < stored.size();) {
    if (stored.substr(i).starts_with(kSpace)) {
      out += ' ';
      i += kSpace.size();
    } else {
      out += stored[i++];
    }
  }
  return out;
}

void SpmTokenizer::encode_fragment(std::string_view text, bool after_special, bool /*at_start*/,
                                   std::vector<int32_t>& out) const {
  std::string s;  // the fragment with spaces escaped
  s.reserve(text.size() + 3);
  if (add_space_prefix_ && after_special) s += kSpace;
  for (char c : text) {
    if (c == ' ') {
      s += kSpace;
    } else {
      s += c;
    }
  }

  struct Symbol {
    uint32_t start, len;  // bytes of s; len 0 once merged into the left neighbour
    int32_t prev, next;   // live neighbours, -1 at the ends
  };
  struct Bigram {
    float score;
    int32_t left, right;
    uint32_t len;  // left.len + right.len when pushed; a mismatch later means the entry is stale
  };
  std::vector<Symbol> sym;
  for (size_t i = 0; i < s.size();) {
    const size_t len = std::max<size_t>(1, utf8_sequence_length(s, i));  // an invalid byte is a symbol
    const int32_t k = static_cast<int32_t>(sym.size());
    sym.push_back({static_cast<uint32_t>(i), static_cast<uint32_t>(len), k - 1, -1});
    if (k > 0) sym[k - 1].next = k;
    i += len;
  }

  // Max-heap: highest score first, then leftmost.
  const auto lower = [](const Bigram& a, const Bigram& b) {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  };
  std::vector<Bigram> heap;
  const auto consider = [&](int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    const uint32_t len = sym[l].len + sym[r].len;
    const int32_t id = normal_token(std::string_view(s).substr(sym[l].start, len));
    if (id < 0) return;
    heap.push_back({score_[static_cast<size_t>(id)], l, r, len});
    std::push_heap(heap.begin(), heap.end(), lower);
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(sym.size()); ++i) consider(i, i + 1);

  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), lower);
    const Bigram b = heap.back();
    heap.pop_back();
    Symbol& l = sym[b.left];
    Symbol& r = sym[b.right];
    if (l.len == 0 || r.len == 0 || l.next != b.right || l.len + r.len != b.len) continue;
    l.len += r.len;
    r.len = 0;
    l.next = r.next;
    if (r.next >= 0) sym[r.next].prev = b.left;
    consider(l.prev, b.left);
    consider(b.left, l.next);
  }

  for (int32_t i = sym.empty() ? -1 : 0; i >= 0; i = sym[i].next) {
    const std::string_view piece = std::string_view(s).substr(sym[i].start, sym[i].len);
    const int32_t id = normal_token(piece);
    if (id >= 0) {
      out.push_back(id);
      continue;
    }
    // Byte fallback: <0xNN> per byte; one <unk> for the character if some byte has no token (the
    // constructor checked that unk exists then).
    const bool all_bytes = std::all_of(piece.begin(), piece.end(),
                                       [this](char c) { return byte_token_[static_cast<uint8_t>(c)] >= 0; });
    if (!all_bytes) {
      out.push_back(unk_id());
      continue;
    }
    for (char c : piece) out.push_back(byte_token_[static_cast<uint8_t>(c)]);
  }
}

}  // namespace bitnet

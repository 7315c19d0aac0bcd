#include "bitnet/text/bpe_tokenizer.h"

#include <algorithm>

#include "bitnet/base/error.h"
#include "bitnet/base/utf8.h"

namespace bitnet {
namespace {

TextPipeline pipeline_of(const VocabData& v) {
  if (!v.pipeline.empty()) return TextPipeline::parse(v.pipeline, "tokenizer pipeline");
  if (v.model != "gpt2")
    fail("tokenizer.ggml.model = '{}' needs a stored tokenizer pipeline", escape_for_message(v.model));
  return TextPipeline::for_gguf_pre(v.pre);
}

// For notices: llama.cpp's name where the pipeline has one, else "tokenizer.json".
std::string pre_name_of(const VocabData& v) {
  if (!v.pipeline.empty() && (v.model != "gpt2" || v.pre.empty())) return "tokenizer.json";
  if (v.pre.empty() || v.pre == "llama-bpe" || v.pre == "llama-v3") return "llama3";
  return v.pre;
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

  std::vector<std::string> pieces;
  std::string chr;  // one character with the model's prefix/suffix
  std::vector<Symbol> sym;
  std::vector<Candidate> heap;  // min-heap on (rank, left)
};

BpeTokenizer::BpeTokenizer(VocabData& vocab)
    : Tokenizer(vocab), pre_name_(pre_name_of(vocab)), pipeline_(pipeline_of(vocab)) {
  const BpeModelOptions& opt = pipeline_.model();
  if (!opt.unk_token.empty()) {
    model_unk_ = id_of_.find(opt.unk_token);
    if (model_unk_ < 0)
      fail("the BPE model's unk_token '{}' is not in the vocabulary", escape_for_message(opt.unk_token));
  }
  strip_decoded_space_ = pipeline_.decoded_strip_start() > 0;
  strip_skips_control_ = false;
  for (int b = 0; b < 256; ++b)
    byte_tokens_[static_cast<size_t>(b)] = id_of_.find(fmt::format("<0x{:02X}>", b));

  if (vocab.merges.empty() && pipeline_.byte_level())
    fail("byte-level BPE vocabulary has no merges (tokenizer.ggml.merges is empty)");
  if (vocab.merges.size() > static_cast<size_t>(INT32_MAX)) fail("too many merges: {}", vocab.merges.size());
  merges_ = PairIndex(vocab.merges.size());
  const size_t prefix = opt.continuing_subword_prefix.size();
  std::string joined;
  for (size_t rank = 0; rank < vocab.merges.size(); ++rank) {
    const std::string_view m = vocab.merges[rank];
    // "left right": split at the first space after position 0 (token texts use 'Ġ' or '▁', not ' ').
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
    // With a continuing_subword_prefix ("##"), the right part loses it in the merged token (HF).
    joined.assign(left).append(
        prefix > 0 && right.starts_with(opt.continuing_subword_prefix) ? right.substr(prefix) : right);
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
  return pre_name_ == "tokenizer.json" ? "tokenizer.json (" + pipeline_.description() + ")" : pre_name_;
}

std::string BpeTokenizer::normal_token_bytes(std::string_view stored) const {
  return pipeline_.decode_token(stored);
}

std::string BpeTokenizer::added_token_bytes(std::string_view stored) const {
  return pipeline_.decode_token(stored);
}

int32_t BpeTokenizer::model_token(std::string_view text) const {
  const int32_t id = id_of_.find(text);
  return id >= 0 && !is_type(id, TokenType::kControl) ? id : -1;
}

void BpeTokenizer::encode_fragment(std::string_view text, bool /*after_special*/, bool at_start,
                                   std::vector<int32_t>& out) const {
  Scratch s;
  pipeline_.split(text, at_start, s.pieces);
  for (const std::string& piece : s.pieces) encode_piece(piece, s, out);
}

void BpeTokenizer::encode_piece(std::string_view piece, Scratch& s, std::vector<int32_t>& out) const {
  using Candidate = Scratch::Candidate;
  const BpeModelOptions& opt = pipeline_.model();
  if (piece.empty()) return;
  if (opt.ignore_merges) {
    const int32_t id = id_of_.find(piece);
    if (id >= 0 && is_type(id, TokenType::kNormal)) {
      out.push_back(id);
      return;
    }
  }

  // One symbol per character (HF merge_word): the token of the character (with the continuing prefix after
  // the first, the end-of-word suffix on the last), else its <0xNN> tokens (byte_fallback), else unk (one
  // per run of unknown characters with fuse_unk), else nothing.
  s.sym.clear();
  const auto add = [&](int32_t id) {
    const int32_t k = static_cast<int32_t>(s.sym.size());
    s.sym.push_back({id, k - 1, -1});
    if (k > 0) s.sym[k - 1].next = k;
  };
  bool unk_pending = false;
  for (size_t i = 0; i < piece.size();) {
    const size_t len = std::max<size_t>(1, utf8_sequence_length(piece, i));  // an invalid byte is a character
    s.chr.clear();
    if (i > 0) s.chr += opt.continuing_subword_prefix;
    s.chr.append(piece.substr(i, len));
    i += len;
    if (i == piece.size()) s.chr += opt.end_of_word_suffix;
    if (const int32_t id = model_token(s.chr); id >= 0) {
      if (unk_pending) add(model_unk_);
      unk_pending = false;
      add(id);
      continue;
    }
    if (opt.byte_fallback) {
      bool all = true;
      for (char c : s.chr) all = all && byte_tokens_[static_cast<uint8_t>(c)] >= 0;
      if (all) {
        for (char c : s.chr) add(byte_tokens_[static_cast<uint8_t>(c)]);
        continue;
      }
    }
    if (model_unk_ >= 0) {
      if (unk_pending && !opt.fuse_unk) add(model_unk_);
      unk_pending = true;
    }
  }
  if (unk_pending) add(model_unk_);
  if (s.sym.empty()) return;

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
  const int32_t n = static_cast<int32_t>(s.sym.size());
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

  for (int32_t i = 0; i >= 0; i = s.sym[i].next) out.push_back(s.sym[i].id);
}

}  // namespace bitnet

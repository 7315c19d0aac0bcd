#include "bitnet/text/hf_pipeline.h"

#include <utf8proc.h>

#include <algorithm>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <utility>

#include "bitnet/base/error.h"
#include "bitnet/base/utf8.h"
#include "bitnet/text/byte_unicode.h"
#include "bitnet/text/pretokenizer.h"

namespace bitnet {
namespace {

using nlohmann::json;

// Unicode White_Space (Oniguruma's \s, Rust's char::is_whitespace), as PCRE2 class members.
constexpr std::string_view kWhiteSpaceClass =
    "\\t\\n\\x0B\\f\\r\\x20\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{"
    "3000}";

bool is_white_space(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

// GPT-2's pattern (ByteLevel with use_regex), as tokenizers spells it.
constexpr std::string_view kGpt2Regex =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

// Calls f(code point, byte offset, byte length) for each valid character; invalid bytes get cp = -1.
template <typename F>
void for_each_char(std::string_view s, F&& f) {
  for (size_t i = 0; i < s.size();) {
    const size_t len = utf8_sequence_length(s, i);
    if (len == 0) {
      f(-1, i, size_t{1});
      ++i;
    } else {
      f(static_cast<int64_t>(utf8_decode(s, i, len)), i, len);
      i += len;
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Normalizers

struct Normalizer {
  enum Kind { kUnicode, kLowercase, kStrip, kStripAccents, kPrepend, kReplace } kind;
  int utf8proc_options = 0;              // kUnicode
  bool left = false, right = false;      // kStrip
  std::string text, content;             // kPrepend: text; kReplace: literal pattern -> content
  std::shared_ptr<RegexSplitter> regex;  // kReplace with a Regex pattern
};

// NFC/NFD/NFKC/NFKD of each valid run; invalid bytes are kept.
void unicode_normalize(std::string& s, int options) {
  std::string out;
  out.reserve(s.size());
  size_t run = 0;
  const auto flush = [&](size_t end) {
    if (end <= run) return;
    utf8proc_uint8_t* mapped = nullptr;
    const utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data() + run),
                                            static_cast<utf8proc_ssize_t>(end - run), &mapped,
                                            static_cast<utf8proc_option_t>(UTF8PROC_STABLE | options));
    if (n < 0) fail("Unicode normalization failed: {}", utf8proc_errmsg(n));
    out.append(reinterpret_cast<const char*>(mapped), static_cast<size_t>(n));
    std::free(mapped);
  };
  for (size_t i = 0; i < s.size();) {
    const size_t len = utf8_sequence_length(s, i);
    if (len != 0) {
      i += len;
      continue;
    }
    flush(i);
    out += s[i];
    run = ++i;
  }
  flush(s.size());
  s = std::move(out);
}

void replace_literal(std::string& s, std::string_view pattern, std::string_view content) {
  if (pattern.empty() || s.find(pattern) == std::string::npos) return;
  std::string out;
  for (size_t i = 0;;) {
    const size_t j = s.find(pattern, i);
    if (j == std::string::npos) {
      out.append(s, i);
      break;
    }
    out.append(s, i, j - i).append(content);
    i = j + pattern.size();
  }
  s = std::move(out);
}

void apply(const Normalizer& n, std::string& s) {
  switch (n.kind) {
    case Normalizer::kUnicode:
      unicode_normalize(s, n.utf8proc_options);
      return;
    case Normalizer::kLowercase: {  // char::to_lowercase: simple mappings, plus U+0130 -> "i\u0307"
      std::string out;
      out.reserve(s.size());
      for_each_char(s, [&](int64_t cp, size_t at, size_t len) {
        if (cp < 0) {
          out.append(s, at, len);
        } else if (cp == 0x130) {
          out += "i\xCC\x87";
        } else {
          utf8_append(out, static_cast<uint32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(cp))));
        }
      });
      s = std::move(out);
      return;
    }
    case Normalizer::kStrip: {
      size_t b = 0, e = s.size();
      if (n.left) {
        while (b < e) {
          const size_t len = utf8_sequence_length(s, b);
          if (len == 0 || !is_white_space(utf8_decode(s, b, len))) break;
          b += len;
        }
      }
      if (n.right) {
        while (e > b) {
          size_t k = e - 1;  // start of the last character
          while (k > b && (static_cast<uint8_t>(s[k]) & 0xC0) == 0x80) --k;
          const size_t len = utf8_sequence_length(s, k);
          if (len != e - k || !is_white_space(utf8_decode(s, k, len))) break;
          e = k;
        }
      }
      s = s.substr(b, e - b);
      return;
    }
    case Normalizer::kStripAccents: {  // drops combining marks (Mn, Mc, Me)
      std::string out;
      for_each_char(s, [&](int64_t cp, size_t at, size_t len) {
        if (cp >= 0) {
          const utf8proc_category_t c = utf8proc_category(static_cast<utf8proc_int32_t>(cp));
          if (c == UTF8PROC_CATEGORY_MN || c == UTF8PROC_CATEGORY_MC || c == UTF8PROC_CATEGORY_ME) return;
        }
        out.append(s, at, len);
      });
      s = std::move(out);
      return;
    }
    case Normalizer::kPrepend:
      if (!s.empty()) s.insert(0, n.text);
      return;
    case Normalizer::kReplace:
      if (!n.regex) {
        replace_literal(s, n.text, n.content);
        return;
      }
      std::vector<std::pair<size_t, size_t>> m;
      n.regex->find_matches(s, false, m);
      if (m.empty()) return;
      std::string out;
      size_t done = 0;
      for (const auto& [b, e] : m) {
        out.append(s, done, b - done).append(n.content);
        done = e;
      }
      out.append(s, done);
      s = std::move(out);
      return;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Pre-tokenizers

enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

struct PreTokenizer {
  enum Kind { kSplit, kByteLevel, kMetaspace } kind;
  // kSplit: a regex or a literal pattern
  std::shared_ptr<RegexSplitter> regex;
  std::string literal;
  Behavior behavior = Behavior::kIsolated;
  bool invert = false;
  // kByteLevel
  bool add_prefix_space = false;
  std::shared_ptr<RegexSplitter> gpt2;  // when use_regex
  // kMetaspace
  std::string replacement;
  enum Prepend { kAlways, kFirst, kNever } prepend = kAlways;
  bool split = true;
};

struct Piece {
  std::string text;
  bool at_start;  // begins at offset 0 of the original input
};

// HF NormalizedString::split: the text as (range, is_match) parts, then the behavior merges or drops them.
void split_piece(const Piece& p, const std::vector<std::pair<size_t, size_t>>& matches, Behavior behavior,
                 bool invert, std::vector<Piece>& out) {
  struct Part {
    size_t begin, end;
    bool match;
  };
  std::vector<Part> parts;
  size_t prev = 0;
  for (const auto& [b, e] : matches) {
    if (b > prev) parts.push_back({prev, b, false});
    parts.push_back({b, e, true});
    prev = e;
  }
  if (prev < p.text.size()) parts.push_back({prev, p.text.size(), false});
  if (invert)
    for (Part& part : parts) part.match = !part.match;

  std::vector<std::pair<Part, bool>> kept;  // (range, remove)
  bool previous_match = false;
  switch (behavior) {
    case Behavior::kRemoved:
      for (const Part& part : parts) kept.push_back({part, part.match});
      break;
    case Behavior::kIsolated:
      for (const Part& part : parts) kept.push_back({part, false});
      break;
    case Behavior::kContiguous:          // a part like the previous one joins it
    case Behavior::kMergedWithPrevious:  // the first match after a gap joins the gap
      for (const Part& part : parts) {
        const bool join = behavior == Behavior::kContiguous ? part.match == previous_match
                                                            : part.match && !previous_match;
        if (join && !kept.empty()) {
          kept.back().first.end = part.end;
        } else {
          kept.push_back({part, false});
        }
        previous_match = part.match;
      }
      break;
    case Behavior::kMergedWithNext:
      for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
        if (it->match && !previous_match && !kept.empty()) {
          kept.back().first.begin = it->begin;
        } else {
          kept.push_back({*it, false});
        }
        previous_match = it->match;
      }
      std::reverse(kept.begin(), kept.end());
      break;
  }
  for (const auto& [part, remove] : kept) {
    if (remove || part.end == part.begin) continue;
    out.push_back({p.text.substr(part.begin, part.end - part.begin), p.at_start && part.begin == 0});
  }
}

void find_literal(std::string_view text, std::string_view pattern,
                  std::vector<std::pair<size_t, size_t>>& m) {
  if (pattern.empty()) return;
  for (size_t i = text.find(pattern); i != std::string_view::npos; i = text.find(pattern, i + pattern.size()))
    m.emplace_back(i, i + pattern.size());
}

void apply(const PreTokenizer& t, std::vector<Piece>& pieces) {
  std::vector<Piece> out;
  out.reserve(pieces.size() * 2);
  std::vector<std::pair<size_t, size_t>> m;
  for (Piece& p : pieces) {
    m.clear();
    switch (t.kind) {
      case PreTokenizer::kSplit:
        if (t.regex) {
          t.regex->find_matches(p.text, true, m);
        } else {
          find_literal(p.text, t.literal, m);
        }
        split_piece(p, m, t.behavior, t.invert, out);
        break;
      case PreTokenizer::kByteLevel: {
        if (t.add_prefix_space && !p.text.starts_with(' ')) p.text.insert(0, 1, ' ');
        const size_t first = out.size();
        if (t.gpt2) {
          t.gpt2->find_matches(p.text, true, m);
          split_piece(p, m, Behavior::kIsolated, false, out);
        } else {
          out.push_back(std::move(p));
        }
        std::string mapped;
        for (size_t i = first; i < out.size(); ++i) {
          mapped.clear();
          append_byte_level(out[i].text, mapped);
          out[i].text.swap(mapped);
        }
        break;
      }
      case PreTokenizer::kMetaspace: {
        replace_literal(p.text, " ", t.replacement);
        const bool prepend =
            t.prepend == PreTokenizer::kAlways || (t.prepend == PreTokenizer::kFirst && p.at_start);
        if (prepend && !p.text.starts_with(t.replacement)) p.text.insert(0, t.replacement);
        if (t.split) {
          find_literal(p.text, t.replacement, m);
          split_piece(p, m, Behavior::kMergedWithNext, false, out);
        } else {
          out.push_back(std::move(p));
        }
        break;
      }
    }
  }
  pieces = std::move(out);
}

// ---------------------------------------------------------------------------------------------------------
// Decoders

struct Decoder {
  enum Kind { kByteLevel, kReplace, kByteFallback, kFuse, kStrip, kMetaspace } kind;
  std::string from, to;  // kReplace; kMetaspace: from = replacement
  char strip = ' ';      // kStrip content
  int start = 0;         // kStrip
};

// "<0xNN>" -> NN (HF ByteFallback accepts either hex case), else -1.
int byte_fallback_value(std::string_view t) {
  if (t.size() != 6 || !t.starts_with("<0x") || t[5] != '>') return -1;
  int v = 0;
  for (char c : t.substr(3, 2)) {
    const int d = c >= '0' && c <= '9'   ? c - '0'
                  : c >= 'A' && c <= 'F' ? c - 'A' + 10
                  : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                         : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

// HF's ByteLevel decoder: the token's bytes when every character is in the GPT-2 alphabet, else its text
// unchanged (an added token such as "<｜begin▁of▁sentence｜>").
std::string decode_byte_level_token(std::string_view t) {
  bool all = true;
  for_each_char(t, [&](int64_t cp, size_t, size_t) {
    all = all && cp >= 0 && byte_from_unicode(static_cast<uint32_t>(cp)) >= 0;
  });
  return all ? decode_byte_level(t) : std::string(t);
}

// ---------------------------------------------------------------------------------------------------------
// JSON reading

Behavior behavior_of(const json& j, std::string_view where) {
  const std::string b = j.is_string() ? j.get<std::string>() : "";
  if (b == "Removed") return Behavior::kRemoved;
  if (b == "Isolated") return Behavior::kIsolated;
  if (b == "MergedWithPrevious") return Behavior::kMergedWithPrevious;
  if (b == "MergedWithNext") return Behavior::kMergedWithNext;
  if (b == "Contiguous") return Behavior::kContiguous;
  fail(
      "{}: split behavior {} is not one of Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous",
      where, escape_for_message(j.dump()));
}

const char* behavior_name(Behavior b) {
  switch (b) {
    case Behavior::kRemoved:
      return "Removed";
    case Behavior::kIsolated:
      return "Isolated";
    case Behavior::kMergedWithPrevious:
      return "MergedWithPrevious";
    case Behavior::kMergedWithNext:
      return "MergedWithNext";
    case Behavior::kContiguous:
      return "Contiguous";
  }
  return "?";
}

// {"String": s} or {"Regex": r}: literal or compiled regex. `signature` gets a canonical spelling.
void read_pattern(const json& j, std::string_view where, std::string& literal,
                  std::shared_ptr<RegexSplitter>& regex, std::string& signature) {
  if (j.is_object() && j.contains("String") && j.at("String").is_string()) {
    literal = j.at("String").get<std::string>();
    signature += "String(" + literal + ")";
  } else if (j.is_object() && j.contains("Regex") && j.at("Regex").is_string()) {
    const std::string r = j.at("Regex").get<std::string>();
    try {
      regex = std::make_shared<RegexSplitter>(translate_regex(r));
    } catch (const Error& e) {
      fail("{}: regex '{}': {}", where, escape_for_message(r, 120), e.what());
    }
    signature += "Regex(" + r + ")";
  } else {
    fail("{}: pattern {} is neither {{\"String\": ...}} nor {{\"Regex\": ...}}", where,
         escape_for_message(j.dump(), 120));
  }
}

// A regex matching one character that satisfies a Rust char predicate HF uses.
std::shared_ptr<RegexSplitter> char_class(std::string_view cls) {
  return std::make_shared<RegexSplitter>(std::string(cls));
}

constexpr int kMaxDepth = 16;  // nested Sequences; real files nest one level

// The "type" of a pipeline component object, after the checks every component needs.
std::string node_type(const json& j, const std::string& where, int depth) {
  if (!j.is_object() || !j.contains("type") || !j.at("type").is_string())
    fail("{} {} has no \"type\"", where, escape_for_message(j.dump(), 80));
  if (depth > kMaxDepth) fail("{}: Sequences are nested more than {} levels deep", where, kMaxDepth);
  return j.at("type").get<std::string>();
}

}  // namespace

struct TextPipeline::Impl {
  std::vector<Normalizer> normalizers;
  std::vector<PreTokenizer> pre_tokenizers;
  std::vector<Decoder> decoders;
  BpeModelOptions model;
  bool byte_level = false;
  std::string signature;        // normalizer + pre-tokenizer, canonical (gguf_pre_name)
  std::string model_signature;  // the model's options
  std::string description;      // short form

  void add_normalizer(const json& j, std::string_view source, int depth);
  void add_pre_tokenizer(const json& j, std::string_view source, int depth);
  void add_decoder(const json& j, std::string_view source, int depth);
  void read_model(const json& j, std::string_view source);
};

void TextPipeline::Impl::add_normalizer(const json& j, std::string_view source, int depth) {
  if (j.is_null()) return;
  const std::string where = fmt::format("{}: normalizer", source);
  const std::string type = node_type(j, where, depth);
  Normalizer n{};
  if (type == "Sequence") {
    for (const json& c : j.value("normalizers", json::array())) add_normalizer(c, source, depth + 1);
    return;
  } else if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") {
    n.kind = Normalizer::kUnicode;
    n.utf8proc_options = (type[2] == 'C' || type[3] == 'C') ? UTF8PROC_COMPOSE : UTF8PROC_DECOMPOSE;
    if (type.size() == 4) n.utf8proc_options |= UTF8PROC_COMPAT;
  } else if (type == "Lowercase") {
    n.kind = Normalizer::kLowercase;
  } else if (type == "Strip") {
    n.kind = Normalizer::kStrip;
    n.left = j.value("strip_left", true);
    n.right = j.value("strip_right", true);
  } else if (type == "StripAccents") {
    n.kind = Normalizer::kStripAccents;
  } else if (type == "Prepend") {
    n.kind = Normalizer::kPrepend;
    n.text = j.at("prepend").get<std::string>();
  } else if (type == "Replace") {
    n.kind = Normalizer::kReplace;
    n.content = j.at("content").get<std::string>();
    std::string sig;
    read_pattern(j.at("pattern"), where + " Replace", n.text, n.regex, sig);
    signature += "N:Replace:" + sig + "->" + n.content + ";";
    normalizers.push_back(std::move(n));
    return;
  } else {
    fail(
        "{} type '{}' is not supported (supported: Sequence, NFC, NFD, NFKC, NFKD, Lowercase, Strip, "
        "StripAccents, "
        "Prepend, Replace)",
        where, escape_for_message(type));
  }
  signature += "N:" + type;
  if (n.kind == Normalizer::kStrip) signature += fmt::format("({},{})", n.left, n.right);
  if (n.kind == Normalizer::kPrepend) signature += "(" + n.text + ")";
  signature += ";";
  normalizers.push_back(std::move(n));
}

void TextPipeline::Impl::add_pre_tokenizer(const json& j, std::string_view source, int depth) {
  if (j.is_null()) return;
  const std::string where = fmt::format("{}: pre_tokenizer", source);
  const std::string type = node_type(j, where, depth);
  PreTokenizer t{};
  t.kind = PreTokenizer::kSplit;
  // Char-predicate splitters of tokenizers, as one-character regexes.
  const auto predicate = [&](std::string_view cls, Behavior b, bool invert, std::string_view sig) {
    t.regex = char_class(cls);
    t.behavior = b;
    t.invert = invert;
    signature += fmt::format("P:{}({},{});", sig, behavior_name(b), invert);
    pre_tokenizers.push_back(t);
  };
  if (type == "Sequence") {
    for (const json& c : j.value("pretokenizers", json::array())) add_pre_tokenizer(c, source, depth + 1);
  } else if (type == "Split") {
    std::string sig;
    read_pattern(j.at("pattern"), where + " Split", t.literal, t.regex, sig);
    t.behavior = behavior_of(j.at("behavior"), where);
    t.invert = j.value("invert", false);
    signature += fmt::format("P:Split:{}({},{});", sig, behavior_name(t.behavior), t.invert);
    pre_tokenizers.push_back(std::move(t));
  } else if (type == "ByteLevel") {
    t.kind = PreTokenizer::kByteLevel;
    t.add_prefix_space = j.value("add_prefix_space", true);
    const bool use_regex = j.value("use_regex", true);
    if (use_regex) t.gpt2 = std::make_shared<RegexSplitter>(translate_regex(kGpt2Regex));
    byte_level = true;
    signature += fmt::format("P:ByteLevel({},{});", t.add_prefix_space, use_regex);
    pre_tokenizers.push_back(std::move(t));
  } else if (type == "Digits") {
    const bool individual = j.value("individual_digits", false);
    predicate("\\p{N}", individual ? Behavior::kIsolated : Behavior::kContiguous, false, "Digits");
  } else if (type == "Punctuation") {
    const Behavior b = j.contains("behavior") ? behavior_of(j.at("behavior"), where) : Behavior::kIsolated;
    // char::is_ascii_punctuation || Unicode P* categories
    predicate("[\\p{P}\\x21-\\x2F\\x3A-\\x40\\x5B-\\x60\\x7B-\\x7E]", b, false, "Punctuation");
  } else if (type == "Whitespace") {
    // Rust regex `\w+|[^\w\s]+`, kept (invert + Removed); \w = Alphabetic, M, Nd, Pc, Join_Control.
    const std::string w = "\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\x{200C}\\x{200D}";
    t.regex = std::make_shared<RegexSplitter>("[" + w + "]+|[^" + w + std::string(kWhiteSpaceClass) + "]+");
    t.behavior = Behavior::kRemoved;
    t.invert = true;
    signature += "P:Whitespace;";
    pre_tokenizers.push_back(std::move(t));
  } else if (type == "WhitespaceSplit") {
    predicate("[" + std::string(kWhiteSpaceClass) + "]", Behavior::kRemoved, false, "WhitespaceSplit");
  } else if (type == "BertPreTokenizer") {
    predicate("[" + std::string(kWhiteSpaceClass) + "]", Behavior::kRemoved, false, "WhitespaceSplit");
    predicate("[\\p{P}\\x21-\\x2F\\x3A-\\x40\\x5B-\\x60\\x7B-\\x7E]", Behavior::kIsolated, false,
              "Punctuation");
  } else if (type == "CharDelimiterSplit") {
    t.literal = j.at("delimiter").get<std::string>();
    t.behavior = Behavior::kRemoved;
    signature += "P:Split:String(" + t.literal + ")(Removed,false);";
    pre_tokenizers.push_back(std::move(t));
  } else if (type == "Metaspace") {
    t.kind = PreTokenizer::kMetaspace;
    t.replacement = j.value("replacement", std::string("\xE2\x96\x81"));
    if (j.contains("prepend_scheme") && j.at("prepend_scheme").is_string()) {
      const std::string s = j.at("prepend_scheme").get<std::string>();
      if (s == "always")
        t.prepend = PreTokenizer::kAlways;
      else if (s == "first")
        t.prepend = PreTokenizer::kFirst;
      else if (s == "never")
        t.prepend = PreTokenizer::kNever;
      else
        fail("{} Metaspace prepend_scheme '{}' is not always, first or never", where, escape_for_message(s));
    } else {
      t.prepend =
          j.value("add_prefix_space", true) ? PreTokenizer::kAlways : PreTokenizer::kNever;  // older files
    }
    t.split = j.value("split", true);
    signature += fmt::format("P:Metaspace({},{},{});", t.replacement, static_cast<int>(t.prepend), t.split);
    pre_tokenizers.push_back(std::move(t));
  } else {
    fail(
        "{} type '{}' is not supported (supported: Sequence, Split, ByteLevel, Digits, Punctuation, "
        "Metaspace, "
        "Whitespace, WhitespaceSplit, BertPreTokenizer, CharDelimiterSplit)",
        where, escape_for_message(type));
  }
}

void TextPipeline::Impl::add_decoder(const json& j, std::string_view source, int depth) {
  if (j.is_null()) return;
  const std::string where = fmt::format("{}: decoder", source);
  const std::string type = node_type(j, where, depth);
  Decoder d{};
  if (type == "Sequence") {
    for (const json& c : j.value("decoders", json::array())) add_decoder(c, source, depth + 1);
    return;
  } else if (type == "ByteLevel") {
    d.kind = Decoder::kByteLevel;
  } else if (type == "ByteFallback") {
    d.kind = Decoder::kByteFallback;
  } else if (type == "Fuse") {
    d.kind = Decoder::kFuse;
  } else if (type == "Replace") {
    d.kind = Decoder::kReplace;
    const json& p = j.at("pattern");
    if (!p.is_object() || !p.contains("String"))
      fail("{} Replace with a regex pattern is not supported", where);
    d.from = p.at("String").get<std::string>();
    d.to = j.at("content").get<std::string>();
  } else if (type == "Strip") {
    d.kind = Decoder::kStrip;
    const std::string c = j.value("content", std::string(" "));
    if (c.size() != 1) fail("{} Strip content '{}' is not one ASCII character", where, escape_for_message(c));
    d.strip = c[0];
    d.start = j.value("start", 0);
    if (j.value("stop", 0) != 0) fail("{} Strip with stop > 0 is not supported", where);
  } else if (type == "Metaspace") {
    d.kind = Decoder::kMetaspace;
    d.from = j.value("replacement", std::string("\xE2\x96\x81"));
    const std::string scheme =
        j.value("prepend_scheme", std::string(j.value("add_prefix_space", true) ? "always" : "never"));
    d.start = scheme == "never" ? 0 : 1;
  } else {
    fail(
        "{} type '{}' is not supported (supported: Sequence, ByteLevel, ByteFallback, Fuse, Replace, Strip, "
        "Metaspace)",
        where, escape_for_message(type));
  }
  decoders.push_back(std::move(d));
}

void TextPipeline::Impl::read_model(const json& j, std::string_view source) {
  if (j.is_null()) return;
  const std::string where = fmt::format("{}: model", source);
  if (!j.is_object()) fail("{} is not an object", where);
  if (j.value("type", std::string("BPE")) != "BPE")
    fail("{} type '{}' is not supported (only BPE)", where,
         escape_for_message(j.value("type", std::string())));
  const auto str = [&](const char* key) {
    return j.contains(key) && j.at(key).is_string() ? j.at(key).get<std::string>() : std::string();
  };
  const auto flag = [&](const char* key) {
    return j.contains(key) && j.at(key).is_boolean() && j.at(key).get<bool>();
  };
  if (j.contains("dropout") && j.at("dropout").is_number() && j.at("dropout").get<double>() != 0.0)
    fail("{} has dropout {} (a training option: encoding would be random)", where, j.at("dropout").dump());
  model.byte_fallback = flag("byte_fallback");
  model.ignore_merges = flag("ignore_merges");
  model.fuse_unk = flag("fuse_unk");
  model.unk_token = str("unk_token");
  model.continuing_subword_prefix = str("continuing_subword_prefix");
  model.end_of_word_suffix = str("end_of_word_suffix");
  model_signature =
      fmt::format("M:{},{},{},{},{},{};", model.byte_fallback, model.ignore_merges, model.fuse_unk,
                  model.unk_token, model.continuing_subword_prefix, model.end_of_word_suffix);
}

TextPipeline::TextPipeline(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TextPipeline::TextPipeline(TextPipeline&&) noexcept = default;
TextPipeline& TextPipeline::operator=(TextPipeline&&) noexcept = default;
TextPipeline::~TextPipeline() = default;

TextPipeline TextPipeline::parse(std::string_view json_text, std::string_view source) {
  auto impl = std::make_unique<Impl>();
  try {
    const json j = json::parse(json_text);
    if (!j.is_object()) fail("{}: the tokenizer pipeline is not a JSON object", source);
    impl->add_normalizer(j.value("normalizer", json()), source, 0);
    impl->add_pre_tokenizer(j.value("pre_tokenizer", json()), source, 0);
    impl->read_model(j.value("model", json()), source);
    impl->add_decoder(j.value("decoder", json()), source, 0);
  } catch (const json::exception& e) {
    fail("{}: {}", source, e.what());
  }
  // Short description: the component types in order.
  std::string d;
  for (const Normalizer& n : impl->normalizers) {
    static constexpr const char* kNames[] = {"Unicode",      "Lowercase", "Strip",
                                             "StripAccents", "Prepend",   "Replace"};
    d += std::string(d.empty() ? "" : " + ") + kNames[n.kind];
  }
  for (const PreTokenizer& t : impl->pre_tokenizers) {
    static constexpr const char* kNames[] = {"Split", "ByteLevel", "Metaspace"};
    d += std::string(d.empty() ? "" : " + ") + kNames[t.kind];
  }
  impl->description = d.empty() ? "no pre-tokenizer" : d;
  return TextPipeline(std::move(impl));
}

namespace {

// llama.cpp's byte-level pre-tokenizer names (src/llama-vocab.cpp) as the tokenizer.json pipelines of the
// models they were made for. The regexes are those models' tokenizer.json patterns.
constexpr std::string_view kLlama3Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr std::string_view kQwen2Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr std::string_view kGpt4oRegex =
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'"
    "ve|'m|'ll|'d)?|"
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'"
    "ve|'m|'ll|'d)?|"
    "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr std::string_view kDeepseekV3Regexes[] = {
    "\\p{N}{1,3}", "[\xe4\xb8\x80-\xe9\xbe\xa5\xe3\x81\x80-\xe3\x82\x9f\xe3\x82\xa0-\xe3\x83\xbf]+",
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| "
    "?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"};

json split_regex(std::string_view r, const char* behavior = "Isolated", bool invert = false) {
  return {{"type", "Split"},
          {"pattern", {{"Regex", std::string(r)}}},
          {"behavior", behavior},
          {"invert", invert}};
}
const json kByteLevelPre = {
    {"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}};
const json kByteLevelDecoder = {{"type", "ByteLevel"}};

struct KnownPre {
  std::vector<std::string_view> names;  // first = the name the converter writes
  json pipeline;
};

const std::vector<KnownPre>& known_pres() {
  static const std::vector<KnownPre> table = [] {
    std::vector<KnownPre> t;
    const auto byte_level = [](json pre_steps, json normalizer = nullptr, bool ignore_merges = false) {
      pre_steps.push_back(kByteLevelPre);
      return json{{"normalizer", normalizer},
                  {"pre_tokenizer", {{"type", "Sequence"}, {"pretokenizers", pre_steps}}},
                  {"model", {{"type", "BPE"}, {"ignore_merges", ignore_merges}}},
                  {"decoder", kByteLevelDecoder}};
    };
    // "" = key absent (the official BitNet 2B-4T GGUF): LLaMA-3. Falcon3's tokenizer is read the same way by
    // llama.cpp (LLAMA_VOCAB_PRE_TYPE_LLAMA3 for "falcon3").
    t.push_back({{"llama-bpe", "llama3", "llama-v3", "", "falcon3"},
                 byte_level(json::array({split_regex(kLlama3Regex)}), nullptr, true)});
    t.push_back({{"smaug-bpe"}, byte_level(json::array({split_regex(kLlama3Regex)}))});
    t.push_back({{"qwen2"}, byte_level(json::array({split_regex(kQwen2Regex)}), json{{"type", "NFC"}})});
    t.push_back({{"gpt-4o"}, byte_level(json::array({split_regex(kGpt4oRegex, "Removed", true)}))});
    json ds = json::array();
    for (std::string_view r : kDeepseekV3Regexes) ds.push_back(split_regex(r));
    t.push_back({{"deepseek-v3"}, byte_level(ds)});
    t.push_back(
        {{"gpt2"},
         json{{"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
              {"model", {{"type", "BPE"}}},
              {"decoder", kByteLevelDecoder}}});
    return t;
  }();
  return table;
}

}  // namespace

TextPipeline TextPipeline::for_gguf_pre(std::string_view pre) {
  for (const KnownPre& k : known_pres())
    if (std::find(k.names.begin(), k.names.end(), pre) != k.names.end())
      return parse(k.pipeline.dump(), fmt::format("pre-tokenizer '{}'", pre));
  fail("tokenizer.ggml.pre = '{}' is not supported; supported byte-level BPE pre-tokenizers: {}",
       escape_for_message(pre), known_gguf_pre_names());
}

std::string TextPipeline::known_gguf_pre_names() {
  std::string s;
  for (const KnownPre& k : known_pres())
    for (std::string_view n : k.names)
      if (!n.empty()) s += std::string(s.empty() ? "" : ", ") + std::string(n);
  return s + " (or the key absent, read as llama-bpe)";
}

std::string TextPipeline::gguf_pre_name(bool* exact) const {
  // The table's pipelines, parsed once (each parse compiles its regexes).
  static const std::vector<TextPipeline> known = [] {
    std::vector<TextPipeline> v;
    for (const KnownPre& k : known_pres()) v.push_back(parse(k.pipeline.dump(), "table"));
    return v;
  }();
  // Same normalizer and pre-tokenizer; of several (llama-bpe and smaug-bpe differ in ignore_merges only)
  // the one with the same model options.
  if (exact != nullptr) *exact = false;
  std::string first;
  for (size_t i = 0; i < known.size(); ++i) {
    const Impl& k = *known[i].impl_;
    if (k.signature != impl_->signature) continue;
    const std::string_view name = known_pres()[i].names.front();
    if (k.model.ignore_merges == impl_->model.ignore_merges) {
      if (exact != nullptr) *exact = k.model_signature == impl_->model_signature;
      return std::string(name);
    }
    if (first.empty()) first = name;
  }
  return first;
}

void TextPipeline::split(std::string_view fragment, bool at_start, std::vector<std::string>& pieces) const {
  std::string text(fragment);
  for (const Normalizer& n : impl_->normalizers) apply(n, text);
  if (text.empty()) return;
  std::vector<Piece> ps;
  ps.push_back({std::move(text), at_start});
  for (const PreTokenizer& t : impl_->pre_tokenizers) apply(t, ps);
  for (Piece& p : ps) pieces.push_back(std::move(p.text));
}

const BpeModelOptions& TextPipeline::model() const {
  return impl_->model;
}

bool TextPipeline::byte_level() const {
  return impl_->byte_level;
}

std::string TextPipeline::decode_token(std::string_view stored) const {
  std::string t(stored);
  for (const Decoder& d : impl_->decoders) {
    switch (d.kind) {
      case Decoder::kFuse:
        return t;  // what follows acts on the joined text (decoded_strip_start)
      case Decoder::kByteLevel:
        t = decode_byte_level_token(t);
        break;
      case Decoder::kReplace:
        replace_literal(t, d.from, d.to);
        break;
      case Decoder::kMetaspace:
        replace_literal(t, d.from, " ");
        break;
      case Decoder::kByteFallback:
        if (const int b = byte_fallback_value(t); b >= 0) t.assign(1, static_cast<char>(b));
        break;
      case Decoder::kStrip: {
        size_t n = 0;
        while (n < t.size() && n < static_cast<size_t>(d.start) && t[n] == d.strip) ++n;
        t.erase(0, n);
        break;
      }
    }
  }
  return t;
}

int TextPipeline::decoded_strip_start() const {
  bool fused = false;
  int strip = 0;
  for (const Decoder& d : impl_->decoders) {
    if (d.kind == Decoder::kFuse) fused = true;
    if (d.kind == Decoder::kStrip && fused) strip = d.start;
    if (d.kind == Decoder::kMetaspace) strip = d.start;
  }
  return strip;
}

char TextPipeline::strip_char() const {
  for (const Decoder& d : impl_->decoders)
    if (d.kind == Decoder::kStrip) return d.strip;
  return ' ';
}

std::string TextPipeline::description() const {
  return impl_->description;
}

std::string translate_regex(std::string_view p) {
  std::string out;
  out.reserve(p.size() + 64);
  bool in_class = false;
  for (size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      const char e = p[i + 1];
      if (e == 's') {
        out += in_class ? std::string(kWhiteSpaceClass) : "[" + std::string(kWhiteSpaceClass) + "]";
      } else if (e == 'S' && !in_class) {
        out += "[^" + std::string(kWhiteSpaceClass) + "]";
      } else {
        out += c;
        out += e;
      }
      ++i;
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out += c;
      // A ']' right after '[' or '[^' is a literal member.
      if (i + 1 < p.size() && p[i + 1] == '^') out += p[++i];
      if (i + 1 < p.size() && p[i + 1] == ']') out += p[++i];
      continue;
    }
    if (in_class && c == ']') in_class = false;
    out += c;
  }
  return out;
}

}  // namespace bitnet

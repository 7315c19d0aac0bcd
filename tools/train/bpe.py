"""Byte-level BPE with the LLaMA-3 pre-tokenizer: learning a vocabulary, encoding, and tokenizer.json.

The vocabulary is GPT-2/LLaMA-3 style: 256 byte tokens (id = byte value, text = the GPT-2 byte-to-unicode
character), then one token per learned merge in the order learned, then the special tokens. Encoding is
what Hugging Face `tokenizers` does for LLaMA-3 (`ignore_merges`: a pre-token that is a whole vocabulary
entry is emitted as it is; otherwise merges are applied lowest rank first), so the engine and `tokenizers`
read the written tokenizer.json the same way; tests check both against this encoder's ids.
"""

import collections
import heapq
import json

import regex

# tokenizer.json of Meta-Llama-3 (BITNET_FORMATS.md section 6).
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")
_PRE = regex.compile(LLAMA3_PATTERN)

# LLaMA-3's special tokens that the chat template and generation use, in LLaMA-3's order.
SPECIAL_TOKENS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                  "<|eot_id|>"]


def bytes_to_unicode():
    """GPT-2's reversible map from the 256 byte values to printable characters."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1)) + \
        list(range(ord("\u00ae"), ord("\u00ff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


BYTE_CHAR = bytes_to_unicode()


def pretokenize(text):
    return _PRE.findall(text)


def word_counts(texts):
    counts = collections.Counter()
    for t in texts:
        counts.update(pretokenize(t))
    return counts


def learn_merges(counts, n_merges):
    """Classic BPE on the distinct pre-tokens: repeatedly merge the most frequent adjacent pair (ties: the
    pair of smaller ids). Returns the merges as (left id, right id) pairs; merge i creates id 256 + i."""
    words = [list(w.encode("utf-8")) for w in counts]
    freq = list(counts.values())
    pair_count = collections.Counter()
    pair_words = collections.defaultdict(set)
    for wi, w in enumerate(words):
        for a, b in zip(w, w[1:]):
            pair_count[(a, b)] += freq[wi]
            pair_words[(a, b)].add(wi)
    heap = [(-c, p) for p, c in pair_count.items()]
    heapq.heapify(heap)
    merges = []
    token_bytes = [bytes([b]) for b in range(256)]
    known = set(token_bytes)
    while len(merges) < n_merges and heap:
        negc, pair = heapq.heappop(heap)
        if pair_count.get(pair, 0) != -negc or negc == 0:
            continue  # stale entry
        joined = token_bytes[pair[0]] + token_bytes[pair[1]]
        if joined in known:
            # Another merge order already made these bytes: a second token with the same text would make
            # the vocabulary ambiguous, so this pair is never merged.
            pair_count[pair] = 0
            continue
        known.add(joined)
        token_bytes.append(joined)
        new_id = 256 + len(merges)
        merges.append(pair)
        touched = set()
        for wi in list(pair_words.pop(pair, ())):
            w = words[wi]
            f = freq[wi]
            for a, b in zip(w, w[1:]):  # remove this word's old pairs
                pair_count[(a, b)] -= f
                touched.add((a, b))
            out = []
            i = 0
            while i < len(w):
                if i + 1 < len(w) and w[i] == pair[0] and w[i + 1] == pair[1]:
                    out.append(new_id)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            words[wi] = out
            for a, b in zip(out, out[1:]):
                pair_count[(a, b)] += f
                pair_words[(a, b)].add(wi)
                touched.add((a, b))
        pair_count.pop(pair, None)
        for p in touched:
            c = pair_count.get(p, 0)
            if c > 0 and token_bytes[p[0]] + token_bytes[p[1]] not in known:
                heapq.heappush(heap, (-c, p))
            elif p in pair_count:
                del pair_count[p]
    return merges


class Tokenizer:
    def __init__(self, merges):
        self.merges = [tuple(m) for m in merges]
        self.token_bytes = [bytes([b]) for b in range(256)]
        for a, b in self.merges:
            self.token_bytes.append(self.token_bytes[a] + self.token_bytes[b])
        self.rank = {m: i for i, m in enumerate(self.merges)}
        self.n_regular = len(self.token_bytes)
        self.special = {s: self.n_regular + i for i, s in enumerate(SPECIAL_TOKENS)}
        self.bos_id = self.special["<|begin_of_text|>"]
        self.eos_id = self.special["<|end_of_text|>"]
        self.eot_id = self.special["<|eot_id|>"]
        self.vocab_size = self.n_regular + len(SPECIAL_TOKENS)
        # ignore_merges: pre-tokens that are whole tokens. Later duplicates (a byte string reachable by two
        # merge orders) keep the first id, as a JSON vocabulary keyed by text would.
        self.whole = {}
        for i, tb in enumerate(self.token_bytes):
            self.whole.setdefault(tb, i)
        self._cache = {}

    def token_text(self, i):
        if i >= self.n_regular:
            return SPECIAL_TOKENS[i - self.n_regular]
        return "".join(BYTE_CHAR[b] for b in self.token_bytes[i])

    def _encode_word(self, word):
        ids = self._cache.get(word)
        if ids is not None:
            return ids
        wb = word.encode("utf-8")
        if wb in self.whole:
            ids = [self.whole[wb]]
        else:
            ids = list(wb)
            while len(ids) > 1:
                best = None
                for j in range(len(ids) - 1):
                    r = self.rank.get((ids[j], ids[j + 1]))
                    if r is not None and (best is None or r < best[0]):
                        best = (r, j)
                if best is None:
                    break
                r = best[0]
                pair = self.merges[r]
                out = []
                j = 0
                while j < len(ids):
                    if j + 1 < len(ids) and ids[j] == pair[0] and ids[j + 1] == pair[1]:
                        out.append(256 + r)
                        j += 2
                    else:
                        out.append(ids[j])
                        j += 1
                ids = out
        self._cache[word] = ids
        return ids

    def encode(self, text, bos=False):
        """Ids of plain text (special-token texts in it stay text, as `parse_special` off does)."""
        out = [self.bos_id] if bos else []
        for w in pretokenize(text):
            out.extend(self._encode_word(w))
        return out

    def decode(self, ids):
        parts = []
        for i in ids:
            if i >= self.n_regular:
                parts.append(SPECIAL_TOKENS[i - self.n_regular].encode())
            else:
                parts.append(self.token_bytes[i])
        return b"".join(parts).decode("utf-8", errors="replace")

    # ---- Hugging Face files ----
    def tokenizer_json(self):
        vocab = {}
        for i in range(self.n_regular):
            vocab.setdefault(self.token_text(i), i)
        if len(vocab) != self.n_regular:
            raise ValueError(f"{self.n_regular - len(vocab)} tokens share a text; the vocabulary is not a bijection")
        added = [{"id": self.special[s], "content": s, "single_word": False, "lstrip": False, "rstrip": False,
                  "normalized": False, "special": True} for s in SPECIAL_TOKENS]
        merges = [self.token_text(a) + " " + self.token_text(b) for a, b in self.merges]
        return {
            "version": "1.0",
            "truncation": None,
            "padding": None,
            "added_tokens": added,
            "normalizer": None,
            "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": LLAMA3_PATTERN}, "behavior": "Isolated", "invert": False},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
            # As Meta-Llama-3's: Hugging Face adds BOS with add_special_tokens (the engine reads
            # tokenizer_config.json's add_bos_token instead).
            "post_processor": {"type": "Sequence", "processors": [
                {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
                {"type": "TemplateProcessing",
                 "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                            {"Sequence": {"id": "A", "type_id": 0}}],
                 "pair": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                          {"Sequence": {"id": "A", "type_id": 0}},
                          {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 1}},
                          {"Sequence": {"id": "B", "type_id": 1}}],
                 "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [self.bos_id],
                                                          "tokens": ["<|begin_of_text|>"]}}}]},
            "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
            "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                      "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                      "ignore_merges": True, "vocab": vocab, "merges": merges},
        }

    def save_state(self):
        return {"merges": [list(m) for m in self.merges]}

    @staticmethod
    def load_state(state):
        return Tokenizer(state["merges"])


# Meta-Llama-3-Instruct's template (the model is not instruction-tuned: the template only lets `bitnet chat`
# and the server tokenize turns structurally).
CHAT_TEMPLATE = ("{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
                 "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + "
                 "'<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
                 "{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant"
                 "<|end_header_id|>\n\n' }}{% endif %}")


def tokenizer_config(tok, max_len):
    return {
        "add_bos_token": True,
        "add_eos_token": False,
        "bos_token": "<|begin_of_text|>",
        "eos_token": "<|end_of_text|>",
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "model_input_names": ["input_ids", "attention_mask"],
        "model_max_length": max_len,
        "tokenizer_class": "PreTrainedTokenizerFast",
        "added_tokens_decoder": {str(tok.special[s]): {"content": s, "lstrip": False, "normalized": False,
                                                       "rstrip": False, "single_word": False, "special": True}
                                 for s in SPECIAL_TOKENS},
    }


def dumps(obj):
    return json.dumps(obj, ensure_ascii=False, indent=2) + "\n"

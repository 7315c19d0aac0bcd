#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/), reproducibly.

Usage: make_corpus.py BITNET WRITE_FIXTURE [OUT_DIR [TARGET...]]
  BITNET         the `bitnet` binary (its `synth` writes the model seeds)
  WRITE_FIXTURE  tests/format's write_fixture (the all-types GGUF of the round-trip test)
  OUT_DIR        default: tests/fuzz/corpus beside this script
  TARGET...      only these targets' seeds (default: all)

Seeds are the test suite's own files (synthetic models of every architecture and weight type, the
all-types GGUF) plus small hand-written inputs in each target's input layout (see the target's header
comment). The checked-in corpus stays under 2 MB; campaigns grow their own copy under build/fuzz.
"""
import json
import os
import shutil
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# ---------------------------------------------------------------- GGUF (vocabulary-only SentencePiece)

GGUF_U32, GGUF_F32, GGUF_BOOL, GGUF_STRING, GGUF_ARRAY, GGUF_I32 = 4, 6, 7, 8, 9, 5


def gguf_str(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def gguf_kv(key, vtype, value):
    out = gguf_str(key) + struct.pack("<I", vtype)
    if vtype == GGUF_STRING:
        return out + gguf_str(value)
    if vtype == GGUF_U32:
        return out + struct.pack("<I", value)
    if vtype == GGUF_BOOL:
        return out + struct.pack("<B", value)
    elem, items = value
    out += struct.pack("<IQ", elem, len(items))
    for it in items:
        out += gguf_str(it) if elem == GGUF_STRING else struct.pack("<f" if elem == GGUF_F32 else "<i", it)
    return out


def spm_vocab_gguf():
    """A vocabulary-only GGUF with a small SentencePiece vocabulary (arch llama, no tensors)."""
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [2, 3, 3] + [6] * 256
    pieces = ["\u2581", "\u2581t", "he", "\u2581the", "\u2581a", "in", "er", "\u2581and", "on", "\u2581of", "es", "\u2581H", "ello"]
    tokens += pieces
    types += [1] * len(pieces)
    scores = [0.0] * 259 + [-float(i) for i in range(len(pieces))]
    kvs = [
        gguf_kv("general.architecture", GGUF_STRING, "llama"),
        gguf_kv("tokenizer.ggml.model", GGUF_STRING, "llama"),
        gguf_kv("tokenizer.ggml.tokens", GGUF_ARRAY, (GGUF_STRING, tokens)),
        gguf_kv("tokenizer.ggml.scores", GGUF_ARRAY, (GGUF_F32, scores)),
        gguf_kv("tokenizer.ggml.token_type", GGUF_ARRAY, (GGUF_I32, types)),
        gguf_kv("tokenizer.ggml.unknown_token_id", GGUF_U32, 0),
        gguf_kv("tokenizer.ggml.bos_token_id", GGUF_U32, 1),
        gguf_kv("tokenizer.ggml.eos_token_id", GGUF_U32, 2),
        gguf_kv("tokenizer.ggml.add_space_prefix", GGUF_BOOL, 1),
    ]
    return b"GGUF" + struct.pack("<IQQ", 3, 0, len(kvs)) + b"".join(kvs)


def gguf_seeds(out, bitnet, write_fixture):
    d = os.path.join(out, "gguf")
    models = [  # name, synth flags: every architecture and weight type, small shapes
        ("b158_i2s", "--layers 1 --dim 128 --hidden-dim 256 --heads 2 --kv-heads 1 --ctx 64 --embd-type q8_0 --seed 1"),
        ("bitnet_f16", "--arch bitnet --type f16 --layers 2 --dim 32 --hidden-dim 64 --heads 2 --kv-heads 1 --ctx 64 "
                       "--act relu2 --pre --seed 2"),
        ("llama_tq2", "--arch llama --type tq2_0 --layers 1 --dim 256 --hidden-dim 256 --heads 4 --kv-heads 2 --ctx 32 "
                      "--embd-type q8_0 --seed 3"),
        ("llama_tq1", "--arch llama --type tq1_0 --layers 1 --dim 256 --hidden-dim 256 --heads 2 --kv-heads 2 --ctx 32 "
                      "--embd-type q8_0 --seed 4"),
        ("b158_f32", "--type f32 --layers 1 --dim 32 --hidden-dim 32 --heads 1 --kv-heads 1 --ctx 16 --embd-type f32 --seed 5"),
        ("b158_bf16_output", "--type bf16 --layers 1 --dim 16 --hidden-dim 32 --heads 2 --kv-heads 2 --ctx 16 "
                             "--output-tensor --seed 6"),
    ]
    for name, flags in models:
        subprocess.run([bitnet, "synth", "-o", os.path.join(d, name + ".gguf"), *flags.split()], check=True,
                       capture_output=True)
    for align in (1, 32, 64):
        subprocess.run([write_fixture, os.path.join(d, f"all_types_a{align}.gguf"), str(align)], check=True)
    with open(os.path.join(d, "spm_vocab_only.gguf"), "wb") as f:
        f.write(spm_vocab_gguf())


# ---------------------------------------------------------------- tokenizer inputs (layouts in fuzz_bpe.cc / fuzz_spm.cc)

def bpe_seeds(out):
    d = os.path.join(out, "bpe")
    texts = [b"Hello world, the end.", b"  tabs\tand\nnewlines\r\n 123456 ", "caf\u00e9 \u4e2d\u6587 \U0001F600".encode(),
             b"\xff\xfe invalid \xc3", b"<|eot_id|>x<|eot_id|>"]
    for i, text in enumerate(texts):
        flags = [0, 1, 8 | 32, 1 | 8, 64][i]
        merges = bytes([6]) + struct.pack("<12H", 72, 101, 108, 108, 32 + 256 - 256, 116, 104, 101, 101, 114, 111, 110)
        specials = b""
        if flags & 8:
            specials = bytes([2, 0, 10]) + b"<|eot_id|>" + bytes([1, 5]) + b"<tag>"
        ids = struct.pack("<4H", 0, 0, 0, 0)
        with open(os.path.join(d, f"seed{i}"), "wb") as f:
            f.write(bytes([flags]) + merges + specials + ids + text)


def spm_seeds(out):
    d = os.path.join(out, "spm")
    pieces = [(1, b"Hello"), (0, b"llo"), (1, b"the"), (0, b"he"), (1, b"a"), (0, b"\xc3\xa9")]
    body = bytes([len(pieces)]) + b"".join(bytes([m, len(p)]) + p for m, p in pieces)
    texts = [b"Hello the world", b" leading and  double spaces", "\u00e9t\u00e9 \u4e2d".encode(), b"\x00\xff"]
    for i, text in enumerate(texts):
        flags = [64, 64 | 2, 0, 64 | 32][i]
        extra = b""
        if flags & 32:  # scores for every token: [unk] + 256 bytes + the space + pieces
            n_tokens = (1 if flags & 2 else 0) + 256 + 1 + len(pieces)
            extra = b"".join(struct.pack("<f", float(-k)) for k in range(n_tokens))
        ids = struct.pack("<4H", 0, 0, 0, 0)
        with open(os.path.join(d, f"seed{i}"), "wb") as f:
            f.write(bytes([flags]) + body + extra + ids + text)


def llama3_seeds(out):
    d = os.path.join(out, "llama3")
    texts = ["Hello world! It's 2024, isn't it?", "  multiple   spaces\n\n\ttabs\r\n",
             "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>",
             "\u4e2d\u6587 \u0627\u0644\u0639\u0631\u0628\u064a\u0629 \u0939\u093f\u0928\u094d\u0926\u0940 \U0001F600\U0001F44D\U0001F3FD",
             "12345678901234567890 3.14159 1e10", "don't WE'LL 'S 'sX"]
    for i, t in enumerate(texts):
        with open(os.path.join(d, f"seed{i}"), "wb") as f:
            f.write(bytes([i % 4]) + t.encode())
    with open(os.path.join(d, "invalid_utf8"), "wb") as f:
        f.write(b"\x00ab\xff\xfe\xc3(\xe2\x82 \xf0\x9f\x98")


def gpt2_alphabet():
    keep = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    table, n = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + n)
            n += 1
    return table


LLAMA3_REGEX = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
                "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")


def hf_tokenizer_json_seeds(out):
    d = os.path.join(out, "hf_tokenizer_json")
    a = gpt2_alphabet()
    vocab = {a[b]: b for b in range(256)}
    merges = [("\u0120", "t"), ("h", "e"), ("\u0120t", "he"), ("i", "n")]
    for l, r in merges:
        vocab[l + r] = len(vocab)
    added = [{"id": len(vocab), "content": "<|begin_of_text|>", "special": True},
             {"id": len(vocab) + 1, "content": "<|eot_id|>", "special": True},
             {"id": len(vocab) + 2, "content": "<tag>", "special": False}]
    tok = {
        "version": "1.0", "added_tokens": added,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": LLAMA3_REGEX}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
        "model": {"type": "BPE", "vocab": vocab, "merges": [f"{l} {r}" for l, r in merges]},
    }
    config = {"bos_token": "<|begin_of_text|>", "eos_token": {"content": "<|eot_id|>"}, "add_bos_token": True}
    with open(os.path.join(d, "llama3_like.json"), "w") as f:
        json.dump(tok, f, ensure_ascii=False)
    with open(os.path.join(d, "llama3_like_with_config"), "w") as f:
        f.write(json.dumps(tok, ensure_ascii=False) + "\n\x01\n" + json.dumps(config))
    tok2 = dict(tok)
    tok2["model"] = dict(tok["model"], merges=[[l, r] for l, r in merges])
    tok2["pre_tokenizer"] = {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True}
    with open(os.path.join(d, "gpt2_pairs.json"), "w") as f:
        json.dump(tok2, f, ensure_ascii=False)
    # Every pipeline component (hf_pipeline.h): normalizers, each split behavior, Digits, Punctuation.
    tok3 = dict(tok)
    tok3["normalizer"] = {"type": "Sequence", "normalizers": [
        {"type": "NFKC"}, {"type": "Lowercase"}, {"type": "Strip", "strip_left": True, "strip_right": False},
        {"type": "Replace", "pattern": {"Regex": "\\s+"}, "content": " "}, {"type": "StripAccents"}]}
    tok3["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": True}, {"type": "Punctuation", "behavior": "Contiguous"},
        {"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithNext", "invert": False},
        {"type": "Split", "pattern": {"Regex": "\\p{L}+"}, "behavior": "Removed", "invert": True},
        {"type": "ByteLevel", "add_prefix_space": True, "use_regex": False}]}
    tok3["decoder"] = {"type": "ByteLevel"}
    with open(os.path.join(d, "pipeline_components.json"), "w") as f:
        json.dump(tok3, f, ensure_ascii=False)
    # SentencePiece-style BPE (LLaMA-2, Gemma): '▁' for spaces, byte fallback, no pre-tokenizer, Strip decoder.
    sp = "\u2581"
    spm_vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        spm_vocab[f"<0x{b:02X}>"] = len(spm_vocab)
    for t in [sp, "h", "e", "l", "o", sp + "h", "he", sp + "he", "ll", "llo", sp + "hello"]:
        spm_vocab.setdefault(t, len(spm_vocab))
    tok4 = {
        "added_tokens": [{"id": 1, "content": "<s>", "special": True}, {"id": 2, "content": "</s>", "special": True}],
        "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": sp},
                                                           {"type": "Replace", "pattern": {"String": " "}, "content": sp}]},
        "pre_tokenizer": None,
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": sp}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "unk_token": "<unk>", "fuse_unk": True, "byte_fallback": True, "vocab": spm_vocab,
                  "merges": [[sp, "h"], ["h", "e"], [sp + "h", "e"], ["l", "l"], ["ll", "o"], [sp + "he", "llo"]]},
    }
    with open(os.path.join(d, "spm_bpe_byte_fallback.json"), "w") as f:
        json.dump(tok4, f, ensure_ascii=False)
    tok5 = dict(tok4)
    tok5["normalizer"] = None
    tok5["pre_tokenizer"] = {"type": "Metaspace", "replacement": sp, "prepend_scheme": "first", "split": True}
    tok5["decoder"] = {"type": "Metaspace", "replacement": sp, "prepend_scheme": "first", "split": True}
    with open(os.path.join(d, "metaspace.json"), "w") as f:
        json.dump(tok5, f, ensure_ascii=False)


def chat_template_seeds(out):
    d = os.path.join(out, "chat_template")
    templates = {
        "hf_bitnet": "{% for message in messages %}{{ message['role'] | capitalize + ': ' + message['content'] | trim + "
                     "'<|eot_id|>' }}{% endfor %}{% if add_generation_prompt %}{{ 'Assistant: ' }}{% endif %}",
        "gguf_bitnet": "{% for message in messages %}{% if loop.first %}{{ bos_token }}{% endif %}{% if message['role'] == "
                       "'user' %}{{ 'Human: ' + message['content'] + '\\n\\nBITNETAssistant: ' + eos_token }}{% elif "
                       "message['role'] == 'assistant' %}{{ message['content'] + eos_token }}{% endif %}{% endfor %}",
        "llama3": "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}",
        "chatml": "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}",
        "empty": "",
    }
    convo = (b"system\0 Be brief. \0user\0\xe2\x80\x83hi\xc2\xa0\0assistant\0Hello!\0user\0<|eot_id|>\0")
    for i, (name, t) in enumerate(templates.items()):
        arch = ["bitnet-b1.58", "bitnet", "llama", "gpt2", "bitnet-25"][i]
        with open(os.path.join(d, name), "wb") as f:
            f.write(t.encode() + b"\0" + arch.encode() + b"\0" + bytes([i & 1]) + convo)
    with open(os.path.join(d, "bad_role"), "wb") as f:
        f.write(b"\0llama\0\x01tool\0{}\0User\0x\0")


def cli_seeds(out):
    d = os.path.join(out, "cli")
    lines = [
        ["inspect", "m.gguf", "--json", "--full", "--tensor", "blk.*"],
        ["validate", "a.gguf", "b.gguf", "--strict", "--json", "-q"],
        ["synth", "-o", "x.gguf", "--arch", "llama", "--type", "tq2_0", "--dim", "256", "--layers", "2"],
        ["run", "-m", "m.gguf", "-p", "Hello", "-n", "16", "--temp", "0.7", "--top-k", "40", "--top-p", "0.9",
         "--seed", "1", "--stop", "\n", "-c", "512", "-b", "32", "-t", "2"],
        ["chat", "-m", "m.gguf", "--chat-template", "llama3", "--system", "be brief"],
        ["eval", "-m", "m.gguf", "--tokens", "1, 2,3", "--logits-out", "l.bin", "--kv-type", "f32"],
        ["tokenize", "-m", "m.gguf", "-p", "hi <|eot_id|>", "--parse-special", "--pieces"],
        ["perplexity", "-m", "m.gguf", "-f", "t.txt", "-c", "128"],
        ["trace", "-m", "m.gguf", "--tokens", "1,2"],
        ["matmul", "-m", "m.gguf", "--tensor", "blk.0.attn_q.weight"],
        ["--help"], ["run", "--help"], ["--version"], ["eval", "-m"], ["bogus", "-x"],
    ]
    for i, args in enumerate(lines):
        with open(os.path.join(d, f"seed{i}"), "wb") as f:
            f.write(b"\0".join(a.encode() for a in args))


def st_file(tensors, metadata=None, pad=0):
    header, data = {}, b""
    for name, dtype, shape, payload in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(payload)]}
        data += payload
    if metadata is not None:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode() + b" " * pad
    return struct.pack("<Q", len(h)) + h + data


def safetensors_seeds(out):
    d = os.path.join(out, "safetensors")
    f32 = struct.pack("<6f", 1, -2, 0.5, 0, 3, -0.25)
    seeds = {
        "two_tensors": st_file([("model.embed_tokens.weight", "F32", [2, 3], f32),
                                ("model.norm.weight", "BF16", [4], b"\x80\x3f\x00\x40\x00\x00\x80\xbf")],
                               {"format": "pt"}),
        "scalar_and_empty": st_file([("s", "F16", [], b"\x00\x3c"), ("e", "I8", [0], b"")], pad=5),
        "unreadable_dtype": st_file([("ids", "I64", [2], struct.pack("<2q", 1, -1)), ("u", "U8", [3], b"\x01\x02\x03")]),
    }
    for name, b in seeds.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(b)


def http_request(method, path, body=None, headers=()):
    """Bytes of one HTTP/1.1 request as a client sends them."""
    data = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    head = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    if body is not None:
        head += ["Content-Type: application/json", f"Content-Length: {len(data)}"]
    head += list(headers)
    return ("\r\n".join(head) + "\r\n\r\n").encode() + data


def server_seeds(out):
    """fuzz_server: whole HTTP requests, one per file (valid ones of every endpoint, and near misses)."""
    chat = {"model": "bitnet", "messages": [{"role": "system", "content": "Be brief."},
                                            {"role": "user", "content": "Who is Emma?"}], "max_tokens": 2}
    seeds = {
        "chat": http_request("POST", "/v1/chat/completions", chat),
        "chat_stream": http_request("POST", "/v1/chat/completions",
                                    {**chat, "stream": True, "stream_options": {"include_usage": True},
                                     "logprobs": True, "top_logprobs": 2, "temperature": 0.8, "seed": 7}),
        "chat_parts": http_request("POST", "/chat/completions",
                                   {"messages": [{"role": "developer", "content": [{"type": "text", "text": "x"}]},
                                                 {"role": "assistant"}, {"role": "user", "content": "y"}]}),
        "completion": http_request("POST", "/v1/completions",
                                   {"prompt": "It is a truth", "max_tokens": 3, "temperature": 0, "stop": ["\n", "."],
                                    "logprobs": 3, "top_k": 40, "top_p": 0.9, "min_p": 0.05,
                                    "frequency_penalty": 0.5, "presence_penalty": -0.5}),
        "completion_ids": http_request("POST", "/completions", {"prompt": [4091, 40, 41, 42], "stream": True}),
        "completion_list": http_request("POST", "/v1/completions", {"prompt": ["<|begin_of_text|>Anne"], "n": 1}),
        "tokenize": http_request("POST", "/tokenize", {"content": "Mr. Darcy", "add_special": True}),
        "detokenize": http_request("POST", "/detokenize", {"tokens": [40, 41, 4095]}),
        "models": http_request("GET", "/v1/models"),
        "health": http_request("GET", "/health"),
        "metrics": http_request("GET", "/metrics"),
        "wrong_method": http_request("GET", "/v1/completions"),
        "bad_json": http_request("POST", "/v1/completions", b"{\"prompt\": "),
        "bad_type": http_request("POST", "/v1/completions", {"prompt": "x", "temperature": "hot"}),
        "chunked": (b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                    b"Content-Type: application/json\r\n\r\n"
                    b"11\r\n{\"prompt\": \"Anne\"\r\n1\r\n}\r\n0\r\n\r\n"),
        "auth": http_request("POST", "/v1/completions", {"prompt": "x"}, ["Authorization: Bearer key"]),
    }
    for name, data in seeds.items():
        with open(os.path.join(out, "server", name), "wb") as f:
            f.write(data)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    bitnet, write_fixture = sys.argv[1], sys.argv[2]
    out = sys.argv[3] if len(sys.argv) > 3 else os.path.join(HERE, "corpus")
    targets = ["gguf", "bpe", "spm", "llama3", "hf_tokenizer_json", "chat_template", "cli", "safetensors", "server"]
    if len(sys.argv) > 4:  # only these targets
        targets = sys.argv[4:]
    for t in targets:
        shutil.rmtree(os.path.join(out, t), ignore_errors=True)
        os.makedirs(os.path.join(out, t))
    writers = {"gguf": lambda o: gguf_seeds(o, bitnet, write_fixture), "bpe": bpe_seeds, "spm": spm_seeds,
               "llama3": llama3_seeds, "hf_tokenizer_json": hf_tokenizer_json_seeds,
               "chat_template": chat_template_seeds, "cli": cli_seeds, "safetensors": safetensors_seeds,
               "server": server_seeds}
    for t in targets:
        writers[t](out)
    total = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(out) for f in fs)
    print(f"make_corpus: {total / 1e6:.2f} MB in {out}")


if __name__ == "__main__":
    main()

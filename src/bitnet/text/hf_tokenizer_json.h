// VocabData from a Hugging Face `tokenizer.json` (+ optional `tokenizer_config.json`), for `tokenize -m
// tokenizer.json`, tests and the converter. Any BPE model with the normalizers, pre-tokenizers and decoders
// of hf_pipeline.h; byte-level ones get model "gpt2" and the llama.cpp pre name of an identical pipeline
// (else none), the others model "bpe"; both keep the pipeline itself (VocabData::pipeline).
//   model.vocab            {text: id}             -> tokens (holes filled with "[PAD<id>]", type unused)
//   model.merges           ["a b"] or [["a","b"]] -> merges
//   added_tokens           [{id, content, special}] -> special: type control, else user-defined
//   tokenizer_config.json  bos_token / eos_token / unk_token / pad_token (string or {"content"}),
//                          add_bos_token / add_eos_token
// eot/eom ids and, without a config, bos/eos come from well-known texts (<|eot_id|>, <|begin_of_text|>...).
#pragma once

#include <filesystem>
#include <string_view>

#include "bitnet/text/vocab.h"

namespace bitnet {

// `source` names the input in error messages. `config_json` may be empty.
VocabData vocab_from_hf_tokenizer_json(std::string_view tokenizer_json, std::string_view config_json = {},
                                       std::string_view source = "tokenizer.json");

// Reads `tokenizer_json_path` and, when it exists next to it, tokenizer_config.json.
VocabData load_hf_tokenizer_json(const std::filesystem::path& tokenizer_json_path);

}  // namespace bitnet

// VocabData from a SentencePiece `tokenizer.model`: the protobuf `sentencepiece.ModelProto` read directly
// (google/sentencepiece src/sentencepiece_model.proto; only the fields below are used, the rest skipped):
//
//   ModelProto      1 pieces (repeated SentencePiece)  2 trainer_spec  3 normalizer_spec
//   SentencePiece   1 piece (string)  2 score (float)  3 type (NORMAL 1, UNKNOWN 2, CONTROL 3, USER_DEFINED
//   4,
//                   UNUSED 5, BYTE 6: the GGUF token-type numbers)
//   TrainerSpec     3 model_type (UNIGRAM 1, BPE 2, WORD 3, CHAR 4)  24 treat_whitespace_as_suffix
//                   35 byte_fallback  40 unk_id (default 0)  41 bos_id (1)  42 eos_id (2)  43 pad_id (-1)
//   NormalizerSpec  1 name  3 add_dummy_prefix (default true)  4 remove_extra_whitespaces (default true)
//
// The result is tokenizer.ggml.model "llama" (what llama.cpp's converter writes for LLaMA-2 vocabularies),
// encoded by SpmTokenizer. What SpmTokenizer cannot reproduce is refused with the reason: Unigram models
// (scores are log-probabilities for Viterbi search, not merge priorities), normalizers other than
// "identity" (their precompiled character map), remove_extra_whitespaces, whitespace as a suffix.
#pragma once

#include <filesystem>
#include <string_view>

#include "bitnet/text/vocab.h"

namespace bitnet {

// `source` names the input in error messages (which also give the byte offset of a malformed field).
VocabData vocab_from_sentencepiece(std::string_view model_proto, std::string_view source = "tokenizer.model");
VocabData load_sentencepiece_model(const std::filesystem::path& path);

}  // namespace bitnet

// Vocabulary <-> GGUF keys `tokenizer.ggml.*`.
#pragma once

#include "bitnet/text/vocab.h"

namespace bitnet {

class GgufFile;
class GgufWriter;

// Reads the tokenizer keys. Throws Error naming the file and key when a key has the wrong type or the
// arrays disagree in length. A file without tokenizer.ggml.tokens gives Error too.
VocabData vocab_from_gguf(const GgufFile& f);
bool has_vocab(const GgufFile& f);

void put_vocab(GgufWriter& w, const VocabData& v);

}  // namespace bitnet

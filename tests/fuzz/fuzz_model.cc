// Fuzz target: loading a model and running it. The input is a whole GGUF file; it is put in an anonymous
// in-memory file (memfd) so that the real path-based loader maps it. Then: Model::load through Session
// (config, vocabulary, tokenizer, weight binding, TQ repacking), a 2-token forward pass with logits, and
// a tokenize/decode round when the file has a vocabulary. Only bitnet::Error may come out.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "bitnet/base/error.h"
#include "bitnet/engine/session.h"

namespace {

volatile float g_sink;

// An in-memory file holding the input, reachable by path as /proc/self/fd/N.
class MemFile {
 public:
  MemFile() : fd_(memfd_create("bitnet-fuzz-model", MFD_CLOEXEC)) {}
  ~MemFile() {
    if (fd_ >= 0) close(fd_);
  }
  bool assign(const uint8_t* data, size_t size) {
    if (fd_ < 0 || ftruncate(fd_, 0) != 0) return false;
    for (size_t done = 0; done < size;) {
      const ssize_t n = pwrite(fd_, data + done, size - done, static_cast<off_t>(done));
      if (n <= 0) return false;
      done += static_cast<size_t>(n);
    }
    return true;
  }
  std::string path() const { return "/proc/self/fd/" + std::to_string(fd_); }

 private:
  int fd_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace bitnet;
  static MemFile file;
  if (!file.assign(data, size)) return 0;
  try {
    SessionOptions o;
    o.n_ctx = 8;  // the KV cache stays small whatever context_length the file claims
    o.n_batch = 2;
    Session s(file.path(), o);
    const int32_t v = s.n_vocab();
    std::vector<float> logits;
    s.eval({0, std::min(1, v - 1)}, &logits, nullptr);
    float acc = 0;
    for (float x : logits) acc += x;
    g_sink = acc;
    if (s.has_tokenizer()) {
      const Tokenizer& tok = s.tokenizer();
      const auto ids = tok.encode("Hi there <|eot_id|>", tok.add_bos_default(), true);
      g_sink = static_cast<float>(tok.decode(ids).size());
      // The ids the tokenizer produces must all be valid model inputs, or fail with Error.
      std::vector<int32_t> some(ids.begin(), ids.begin() + std::min<size_t>(ids.size(), 4));
      if (!some.empty()) s.eval(some, nullptr, &logits);
    }
  } catch (const Error&) {
  }
  return 0;
}

// Replays inputs through a fuzz target without libFuzzer: `fuzz_replay_X PATH...` calls the target's
// LLVMFuzzerTestOneInput once per file (directories are walked, files in sorted order). Linked into every
// build, so the checked-in corpus and crash regressions run under release and asan-ubsan as ctests.
// Exit 0 when every input ran, 77 (ctest's skip code) when the target says it cannot run here.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) __attribute__((weak));
// Optional: a reason the target cannot run on this machine (missing shared data), else nullptr.
extern "C" const char* bitnet_fuzz_skip_reason() __attribute__((weak));

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
  if (bitnet_fuzz_skip_reason) {
    if (const char* why = bitnet_fuzz_skip_reason()) {
      std::printf("skipped: %s\n", why);
      return 77;
    }
  }
  std::vector<fs::path> files;
  for (int i = 1; i < argc; ++i) {
    const fs::path p = argv[i];
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
      for (const auto& e : fs::recursive_directory_iterator(p))
        if (e.is_regular_file() && e.path().filename().string()[0] != '.') files.push_back(e.path());
    } else if (fs::is_regular_file(p, ec)) {
      files.push_back(p);
    }
    // A missing path is fine: a target may have no regressions yet.
  }
  std::sort(files.begin(), files.end());
  size_t total = 0;
  for (const fs::path& p : files) {
    std::ifstream f(p, std::ios::binary);
    const std::vector<uint8_t> bytes{std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
    if (!f.good() && !f.eof()) {
      std::fprintf(stderr, "replay: cannot read %s\n", p.c_str());
      return 1;
    }
    // Through a heap copy of exactly the input's size, so ASan sees reads past the end.
    std::vector<uint8_t> exact(bytes);
    static const uint8_t kNone = 0;  // libFuzzer passes a valid pointer for an empty input too
    LLVMFuzzerTestOneInput(exact.empty() ? &kNone : exact.data(), exact.size());
    total += bytes.size();
  }
  std::printf("replayed %zu inputs (%zu bytes)\n", files.size(), total);
  return 0;
}

// write_fixture OUT.gguf [ALIGNMENT]: writes the all-types GGUF for the comparison with @huggingface/gguf.
#include <cstdio>
#include <cstdlib>

#include "bitnet/base/error.h"
#include "gguf_fixtures.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: write_fixture OUT.gguf [ALIGNMENT]\n");
    return 2;
  }
  try {
    bitnet::testing::all_types_writer(argc > 2 ? static_cast<uint32_t>(std::atoi(argv[2])) : 32).write(argv[1]);
  } catch (const bitnet::Error& e) {
    std::fprintf(stderr, "write_fixture: %s\n", e.what());
    return 1;
  }
  return 0;
}

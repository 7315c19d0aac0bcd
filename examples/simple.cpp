// Continue a prompt with bitnet's C++ API: the model loads, the text streams as it is generated.
//   simple_cpp MODEL.gguf [PROMPT] [N_TOKENS]
// Includes only the public header.
#include <bitnet/bitnet.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL.gguf [PROMPT] [N_TOKENS]\n", argv[0]);
    return 2;
  }
  const std::string prompt = argc > 2 ? argv[2] : "It is a truth universally acknowledged, that";
  const int n = argc > 3 ? std::atoi(argv[3]) : 32;
  try {
    bitnet::api::Engine engine = bitnet::api::Engine::load(argv[1]);
    const bitnet::api::ModelInfo info = engine.info();
    std::fprintf(stderr, "%s: %s, %d layers, vocabulary %d\n", argv[1], info.architecture.c_str(), info.n_layers,
                 info.n_vocab);
    std::fputs(prompt.c_str(), stdout);
    engine.generate(prompt, n, {.temperature = 0}, [](std::string_view piece) {
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
      return true;
    });
    std::fputc('\n', stdout);
  } catch (const bitnet::api::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}

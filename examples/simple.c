/* Greedy decoding with bitnet's C API, token by token: tokenize, evaluate, pick the most likely token,
 * print its text.   simple_c MODEL.gguf [PROMPT] [N_TOKENS]
 * Includes only the public header. */
#include <bitnet/bitnet.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char* what) {
  fprintf(stderr, "error: %s: %s\n", what, bitnet_last_error());
  return 1;
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s MODEL.gguf [PROMPT] [N_TOKENS]\n", argv[0]);
    return 2;
  }
  const char* prompt = argc > 2 ? argv[2] : "In the beginning God created";
  const int n = argc > 3 ? atoi(argv[3]) : 32;

  bitnet_engine* engine = NULL;
  if (bitnet_engine_load(argv[1], NULL, &engine) != BITNET_OK) return fail("load");
  bitnet_model_info info;
  if (bitnet_model_get_info(engine, &info) != BITNET_OK) return fail("info");

  int32_t ids[512];
  size_t n_ids = 0;
  if (bitnet_tokenize(engine, prompt, strlen(prompt), 1, 0, ids, 512, &n_ids) != BITNET_OK) return fail("tokenize");
  if (bitnet_eval(engine, ids, n_ids) != BITNET_OK) return fail("eval");
  printf("%s", prompt);
  for (int i = 0; i < n; ++i) {
    const float* logits = bitnet_logits(engine);
    int32_t best = 0;
    for (int32_t v = 1; v < info.n_vocab; ++v)
      if (logits[v] > logits[best]) best = v;
    if (best == info.eos) break;
    char piece[256];
    size_t len = 0;
    /* One token's text may be part of a UTF-8 character; this model's vocabulary makes that rare. */
    if (bitnet_detokenize(engine, &best, 1, piece, sizeof(piece), &len) != BITNET_OK) return fail("detokenize");
    fwrite(piece, 1, len, stdout);
    fflush(stdout);
    if (bitnet_eval(engine, &best, 1) != BITNET_OK) return fail("eval");
  }
  printf("\n");
  bitnet_engine_free(engine);
  return 0;
}

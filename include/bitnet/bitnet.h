/* bitnet's public C API, over the C++ API (bitnet.hpp). No exception crosses it: every call that can fail
 * returns a bitnet_status, and bitnet_last_error() gives the message of the last failure on this thread.
 *
 *   bitnet_engine* e = NULL;
 *   if (bitnet_engine_load("model.gguf", NULL, &e) != BITNET_OK) { fprintf(stderr, "%s\n", bitnet_last_error()); }
 *   bitnet_generate(e, "It is a truth", 32, NULL, on_piece, user_data);
 *   bitnet_engine_free(e);
 *
 * An engine is one model with one context (KV cache); use one per thread. */
#ifndef BITNET_H
#define BITNET_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BITNET_C_API_VERSION_MAJOR 0
#define BITNET_C_API_VERSION_MINOR 2

typedef enum {
  BITNET_OK = 0,
  BITNET_ERR_INVALID_ARGUMENT = 1, /* a bad value: NULL where a pointer is needed, a token id outside the vocabulary */
  BITNET_ERR_LOAD = 2,             /* the model file cannot be read or is not a usable model */
  BITNET_ERR_CONTEXT_FULL = 3,     /* the tokens do not fit the context */
  BITNET_ERR_BUFFER_TOO_SMALL = 4, /* the output did not fit; *n_out says how much is needed */
  BITNET_ERR_CANCELLED = 5,        /* the callback asked to stop (bitnet_generate) */
  BITNET_ERR_INTERNAL = 6
} bitnet_status;

typedef struct bitnet_engine bitnet_engine;

/* The LM head as stored, or quantized at load (fewer bytes read per generated token, logits change slightly;
   the README's "LM head formats" has the measured perplexity of each). */
typedef enum {
  BITNET_LM_HEAD_STORED = 0,
  BITNET_LM_HEAD_Q8 = 1, /* int8 rows */
  BITNET_LM_HEAD_Q6 = 2, /* 6-bit rows with 8-bit block scales */
  BITNET_LM_HEAD_Q4 = 3, /* 4-bit rows with 8-bit block scales */
  BITNET_LM_HEAD_AUTO = 4 /* what `bitnet run` uses: q6 for a float head, else as stored */
} bitnet_lm_head;

typedef struct {
  int32_t n_threads; /* 0: every core */
  int32_t n_ctx;     /* 0: the model's training context, at most 4096 */
  int32_t lm_head;   /* a bitnet_lm_head (API 0.1 called it lm_head_q8: 1 is still q8) */
} bitnet_params;

typedef struct {
  float temperature; /* <= 0: greedy */
  int32_t top_k;
  float top_p;
  float min_p;
  float repeat_penalty;
  uint64_t seed; /* 0xFFFFFFFF: random */
} bitnet_sample_params;

typedef struct {
  char architecture[64];
  int32_t n_vocab, n_ctx_train, n_layers, dim, n_heads, n_kv_heads;
  int32_t bos, eos; /* -1: none */
} bitnet_model_info;

/* Text pieces of bitnet_generate as they become final (whole UTF-8 characters); return 0 to cancel. */
typedef int (*bitnet_piece_callback)(const char* piece, size_t len, void* user_data);

const char* bitnet_api_version(void); /* "0.2" */
const char* bitnet_last_error(void);  /* this thread's last failure; "" when none */

bitnet_params bitnet_default_params(void);
bitnet_sample_params bitnet_default_sample_params(void); /* llama.cpp's defaults */

bitnet_status bitnet_engine_load(const char* path, const bitnet_params* params /* NULL: defaults */,
                                 bitnet_engine** out);
void bitnet_engine_free(bitnet_engine* engine); /* NULL is fine */

bitnet_status bitnet_model_get_info(const bitnet_engine* engine, bitnet_model_info* out);
int32_t bitnet_n_ctx(const bitnet_engine* engine);
int32_t bitnet_n_past(const bitnet_engine* engine);

/* Token ids of text into ids[cap]; *n_out = the number of ids (also when BITNET_ERR_BUFFER_TOO_SMALL). */
bitnet_status bitnet_tokenize(const bitnet_engine* engine, const char* text, size_t len, int add_bos, int parse_special,
                              int32_t* ids, size_t cap, size_t* n_out);
/* Text of ids into buf[cap], NUL-terminated; *n_out = its length without the NUL (needed cap - 1 when too small). */
bitnet_status bitnet_detokenize(const bitnet_engine* engine, const int32_t* ids, size_t n, char* buf, size_t cap,
                                size_t* n_out);

/* Appends tokens to the context and computes the logits of the last one. */
bitnet_status bitnet_eval(bitnet_engine* engine, const int32_t* ids, size_t n);
/* The last evaluated token's logits (n_vocab floats, valid until the next eval/reset/generate), or NULL. */
const float* bitnet_logits(const bitnet_engine* engine);
/* Keeps the first n tokens of the context. */
bitnet_status bitnet_reset(bitnet_engine* engine, int32_t n);
bitnet_status bitnet_sample(bitnet_engine* engine, const bitnet_sample_params* params, int32_t* id_out);

/* Continues prompt for at most max_tokens tokens (-1: until the end of generation or a full context). */
bitnet_status bitnet_generate(bitnet_engine* engine, const char* prompt, int32_t max_tokens,
                              const bitnet_sample_params* params /* NULL: defaults */, bitnet_piece_callback on_piece,
                              void* user_data);

#ifdef __cplusplus
}
#endif

#endif /* BITNET_H */

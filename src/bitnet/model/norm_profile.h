// Norm gamma profiles of the real bitnet-b1.58-2B-4T checkpoint (BITNET_FORMATS.md §8), used both to
// generate synthetic models and to judge files. Values there are tiny for attn_norm (0.012-0.028: this
// is legitimate, BitLinear's per-token quantization makes the gain matter only through the output
// scale), above 1 for ffn_norm, and growing with depth for the sub-norms.
//
// The judging bands are on the mean |gamma| of a tensor (the published figures are samples, not
// extremes, so single elements are not judged): inside `warn` is as in the real model; outside `error`
// is a wrong file or a wrong reader (e.g. attn_norm scaled by 56 lands near 1.0).
#pragma once

#include <string_view>

#include "bitnet/model/arch.h"

namespace bitnet {

struct NormRange {
  double lo, hi;        // uniform range for synthetic values
  float outlier = 0;    // one element set to this value (0 = none)
};

struct NormBands {
  bool known = false;   // false: no reference profile for this architecture / kind
  double warn_lo, warn_hi, err_lo, err_hi;  // bands on mean |gamma|
};

// kind: "attn_norm", "ffn_norm", "attn_sub_norm", "ffn_sub_norm", "output_norm"; layer -1 for global.
NormRange synth_norm_range(Arch arch, std::string_view kind, int layer, uint32_t n_layers);
NormBands norm_bands(Arch arch, std::string_view kind, int layer, uint32_t n_layers);

}  // namespace bitnet

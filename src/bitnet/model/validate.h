// `bitnet validate`: architecture-aware checks of a model file. Each finding names the tensor or key and
// the measured value. Ranges come from the real 2B-4T checkpoint (norm_profile.h), so the official
// file's legitimate values (attn_norm gammas near 0.018, scales near 1-2) are clean.
#pragma once

#include <string>
#include <vector>

namespace bitnet {

class GgufFile;

enum class Severity { Info, Warning, Error };
const char* severity_name(Severity s);

struct Finding {
  Severity severity;
  std::string check;    // short id: "tensor-missing", "norm-range", "ternary-scale", ...
  std::string subject;  // tensor or key name ("" for the file)
  std::string message;  // one sentence with the measured value and the expectation
};

struct ValidationReport {
  std::vector<Finding> findings;
  bool has(Severity s) const;
};

ValidationReport validate_model(const GgufFile& f);

}  // namespace bitnet

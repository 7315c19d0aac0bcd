// Fuzz target: the safetensors reader. The input is a whole file (u64 header length, JSON header, data).
// Parse, then read every tensor's shape, look it up by name, and read its elements (readable dtypes) as
// floats; read the metadata. Only bitnet::Error may come out.
#include <algorithm>
#include <cstdint>
#include <cstdlib>

#include "bitnet/base/error.h"
#include "bitnet/format/safetensors.h"

namespace {
volatile double g_sink;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace bitnet;
  std::unique_ptr<SafetensorsFile> f;
  try {
    f = SafetensorsFile::parse(data, size, "fuzz.safetensors");
  } catch (const Error&) {
    return 0;
  }
  double acc = 0;
  for (const SafetensorsTensor& t : f->tensors()) {
    if (f->find(t.name) != &t) std::abort();  // names are unique and found
    if (t.offset < f->data_offset() || t.offset > size || t.nbytes > size - t.offset) std::abort();
    acc += static_cast<double>(t.shape_string().size());
    if (!st_dtype_readable(t.dtype)) {
      try {
        (void)t.at(0);
        if (t.n_elements > 0) std::abort();  // unreadable dtypes must refuse
      } catch (const Error&) {
      }
      continue;
    }
    for (uint64_t i = 0; i < t.n_elements; ++i) acc += t.at(i);
  }
  for (const auto& [k, v] : f->metadata()) acc += static_cast<double>(k.size() + v.size());
  g_sink = acc;
  return 0;
}

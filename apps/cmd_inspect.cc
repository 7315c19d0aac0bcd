// bitnet inspect FILE [--json] [--full] [--tensor NAME]...
#include <fnmatch.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "bitnet/base/error.h"
#include "bitnet/base/utf8.h"
#include "bitnet/format/gguf.h"
#include "bitnet/format/tensor_stats.h"
#include "bitnet/model/arch.h"
#include "bitnet/model/vocab_gguf.h"
#include "commands.h"

namespace bitnet::cli {

namespace {

using json = nlohmann::ordered_json;
constexpr size_t kArrayPreview = 8;

json scalar_json(const GgufValue& v) {
  switch (v.type) {
    case GgufType::U8: case GgufType::U16: case GgufType::U32: case GgufType::U64: return v.u;
    case GgufType::I8: case GgufType::I16: case GgufType::I32: case GgufType::I64: return v.i;
    case GgufType::F32: case GgufType::F64: return v.f;
    case GgufType::BOOL: return v.u != 0;
    case GgufType::STRING: return v.s;
    case GgufType::ARRAY: break;
  }
  return nullptr;
}

json array_json(const GgufArray& a, bool full) {
  json items = json::array();
  const uint64_t shown = full ? a.count : std::min<uint64_t>(a.count, kArrayPreview);
  for (uint64_t i = 0; i < shown; ++i) {
    if (a.elem == GgufType::STRING) {
      items.push_back(a.strings[i]);
    } else if (a.elem == GgufType::ARRAY) {
      items.push_back(array_json(a.arrays[i], full));
    } else if (a.elem == GgufType::BOOL) {
      items.push_back(a.int_at(i) != 0);
    } else if (a.is_float()) {
      items.push_back(a.float_at(i));
    } else if (a.elem == GgufType::U64) {
      items.push_back(static_cast<uint64_t>(a.int_at(i)));
    } else {
      items.push_back(a.int_at(i));
    }
  }
  return json{{"element_type", gguf_type_name(a.elem)}, {"count", a.count}, {"values", items},
              {"truncated", shown < a.count}};
}

json value_json(const GgufValue& v, bool full) {
  json out{{"type", gguf_type_name(v.type)}};
  out["value"] = v.type == GgufType::ARRAY ? array_json(v.arr, full) : scalar_json(v);
  return out;
}

std::string value_text(const GgufValue& v) {
  if (v.type == GgufType::STRING) {
    std::string s = escape_for_message(v.s, 60);
    return "\"" + s + "\"";
  }
  if (v.type != GgufType::ARRAY) return scalar_json(v).dump();
  std::string s = fmt::format("[{} x {}]", gguf_type_name(v.arr.elem), v.arr.count);
  const uint64_t shown = std::min<uint64_t>(v.arr.count, 4);
  for (uint64_t i = 0; i < shown; ++i) {
    s += i ? ", " : " ";
    if (v.arr.elem == GgufType::STRING) s += "\"" + escape_for_message(v.arr.strings[i], 20) + "\"";
    else if (v.arr.elem == GgufType::ARRAY) s += "[...]";
    else if (v.arr.is_float()) s += fmt::format("{:g}", v.arr.float_at(i));
    else s += std::to_string(v.arr.int_at(i));
  }
  if (shown < v.arr.count) s += ", ...";
  return s;
}

// Hyperparameters and tokenizer summary; absent parts are reported, not fatal.
json summary_json(const GgufFile& f) {
  json s;
  s["architecture"] = f.architecture();
  s["name"] = f.get_string("general.name").value_or("");
  if (auto ft = f.find("general.file_type"); ft && ft->as_int()) s["file_type"] = *ft->as_int();
  try {
    const ModelConfig c = ModelConfig::from_gguf(f);
    s["hyperparameters"] = {{"dim", c.dim}, {"hidden_dim", c.hidden_dim}, {"n_layers", c.n_layers},
                            {"n_heads", c.n_heads}, {"n_kv_heads", c.n_kv_heads}, {"head_dim", c.head_dim},
                            {"rope_dim", c.rope_dim}, {"vocab_size", c.vocab_size}, {"n_ctx_train", c.n_ctx_train},
                            {"norm_eps", c.norm_eps}, {"rope_theta", c.rope_theta},
                            {"rope_style", c.info.rope == RopeStyle::Neox ? "neox" : "norm"},
                            {"activation", activation_name(c.act)}, {"sub_norms", c.info.sub_norms},
                            {"lm_head", c.tied_output ? "tied to token_embd" : "output.weight"}};
  } catch (const Error& e) {
    s["hyperparameters_error"] = e.what();
  }
  if (has_vocab(f)) {
    try {
      const VocabData v = vocab_from_gguf(f);
      json t{{"model", v.model}, {"pre", v.pre.empty() ? json(nullptr) : json(v.pre)}, {"vocab_size", v.tokens.size()},
             {"merges", v.merges.size()}, {"add_bos", v.add_bos}};
      if (!v.pipeline.empty()) {
        t["pre_used"] = "the stored Hugging Face pipeline (tokenizer.bitnet.hf_pipeline)";
      } else if (v.model == "gpt2" && v.pre.empty()) {
        t["pre_used"] = "llama-bpe (tokenizer.ggml.pre is absent)";
      }
      for (auto [key, id] : {std::pair{"bos_id", v.bos_id}, {"eos_id", v.eos_id}, {"eot_id", v.eot_id},
                             {"eom_id", v.eom_id}, {"unk_id", v.unk_id}, {"pad_id", v.pad_id}})
        if (id >= 0) t[key] = id;
      const auto tmpl = f.find("tokenizer.chat_template");
      t["chat_template"] = tmpl && tmpl->type == GgufType::STRING;
      s["tokenizer"] = t;
    } catch (const Error& e) {
      s["tokenizer_error"] = e.what();
    }
  } else {
    s["tokenizer"] = nullptr;
  }
  return s;
}

json stats_json(const GgufTensorInfo& t) {
  json j{{"name", t.name}, {"type", type_traits(t.type).name}};
  if (!type_traits(t.type).computable) {
    j["error"] = fmt::format("statistics are not available for type {}", type_traits(t.type).name);
    return j;
  }
  const TensorStats s = tensor_stats(t);
  j.update({{"count", s.count}, {"mean", s.mean}, {"std", s.std}, {"rms", s.rms}, {"min", s.min}, {"max", s.max},
            {"nonfinite", s.nonfinite}, {"zero_fraction", s.count ? double(s.zeros) / s.count : 0.0}});
  if (s.ternary) {
    j["codes"] = {{"-1", s.codes[0]}, {"0", s.codes[1]}, {"+1", s.codes[2]}, {"invalid", s.codes[3]}};
    if (s.n_scales == 1) j["scale"] = s.scale_median;
    else j["scales"] = {{"count", s.n_scales}, {"min", s.scale_min}, {"median", s.scale_median}, {"max", s.scale_max},
                        {"nonfinite", s.scale_nonfinite}};
  }
  return j;
}

void print_text(const GgufFile& f, const json& summary, const std::vector<json>& stats) {
  std::printf("file: %s\n", f.path().c_str());
  std::printf("GGUF v%u, %zu metadata keys, %zu tensors, alignment %lu, data at byte %lu, %lu bytes\n", f.version(),
              f.kvs().size(), f.tensors().size(), (unsigned long)f.alignment(), (unsigned long)f.data_offset(),
              (unsigned long)f.file_size());
  std::printf("architecture: %s  name: %s\n", summary["architecture"].get<std::string>().c_str(),
              summary["name"].get<std::string>().c_str());
  if (summary.contains("hyperparameters")) {
    const json& h = summary["hyperparameters"];
    std::printf("hyperparameters: dim %u, hidden_dim %u, n_layers %u, heads %u/%u (head_dim %u), vocab %u, ctx %u, "
                "eps %g, rope %s theta %g, act %s, LM head %s\n",
                h["dim"].get<unsigned>(), h["hidden_dim"].get<unsigned>(), h["n_layers"].get<unsigned>(),
                h["n_heads"].get<unsigned>(), h["n_kv_heads"].get<unsigned>(), h["head_dim"].get<unsigned>(),
                h["vocab_size"].get<unsigned>(), h["n_ctx_train"].get<unsigned>(), h["norm_eps"].get<double>(),
                h["rope_style"].get<std::string>().c_str(), h["rope_theta"].get<double>(),
                h["activation"].get<std::string>().c_str(), h["lm_head"].get<std::string>().c_str());
  } else if (summary.contains("hyperparameters_error")) {
    std::printf("hyperparameters: %s\n", summary["hyperparameters_error"].get<std::string>().c_str());
  }
  if (summary.contains("tokenizer_error")) {
    std::printf("tokenizer: %s\n", summary["tokenizer_error"].get<std::string>().c_str());
  } else if (summary["tokenizer"].is_null()) {
    std::printf("tokenizer: none\n");
  } else {
    const json& t = summary["tokenizer"];
    std::string ids;
    for (const char* k : {"bos_id", "eos_id", "eot_id", "eom_id", "unk_id", "pad_id"})
      if (t.contains(k)) ids += fmt::format(" {} {}", std::string(k).substr(0, 3), t[k].get<int>());
    std::printf("tokenizer: %s, pre %s, %zu tokens, %zu merges,%s, chat template %s\n",
                t["model"].get<std::string>().c_str(),
                t["pre"].is_null() ? (t.contains("pre_used") ? "absent (llama-bpe used)" : "absent")
                                    : t["pre"].get<std::string>().c_str(),
                t["vocab_size"].get<size_t>(), t["merges"].get<size_t>(), ids.c_str(),
                t["chat_template"].get<bool>() ? "present" : "absent");
  }
  std::printf("\nmetadata:\n");
  for (const GgufKV& kv : f.kvs())
    std::printf("  %-44s %-7s %s\n", escape_for_message(kv.key).c_str(), gguf_type_name(kv.value.type),
                value_text(kv.value).c_str());
  std::printf("\ntensors:\n  %-36s %-22s %-7s %14s %14s\n", "name", "shape", "type", "bytes", "offset");
  for (const GgufTensorInfo& t : f.tensors())
    std::printf("  %-36s %-22s %-7s %14lu %14lu\n", escape_for_message(t.name).c_str(), t.shape_string().c_str(),
                type_traits(t.type).name, (unsigned long)t.nbytes, (unsigned long)t.offset);
  for (const json& s : stats) {
    std::printf("\n%s (%s):\n", s["name"].get<std::string>().c_str(), s["type"].get<std::string>().c_str());
    if (s.contains("error")) {
      std::printf("  %s\n", s["error"].get<std::string>().c_str());
      continue;
    }
    std::printf("  count %lu  mean %.6g  std %.6g  rms %.6g  min %.6g  max %.6g  non-finite %lu  zero fraction %.4f\n",
                s["count"].get<unsigned long>(), s["mean"].get<double>(), s["std"].get<double>(),
                s["rms"].get<double>(), s["min"].get<double>(), s["max"].get<double>(),
                s["nonfinite"].get<unsigned long>(), s["zero_fraction"].get<double>());
    if (s.contains("codes")) {
      const json& c = s["codes"];
      std::printf("  codes: -1 %lu  0 %lu  +1 %lu  invalid %lu\n", c["-1"].get<unsigned long>(),
                  c["0"].get<unsigned long>(), c["+1"].get<unsigned long>(), c["invalid"].get<unsigned long>());
      if (s.contains("scale")) std::printf("  scale %.7g\n", s["scale"].get<double>());
      else
        std::printf("  block scales: %lu, min %.7g, median %.7g, max %.7g, non-finite %lu\n",
                    s["scales"]["count"].get<unsigned long>(), s["scales"]["min"].get<double>(),
                    s["scales"]["median"].get<double>(), s["scales"]["max"].get<double>(),
                    s["scales"]["nonfinite"].get<unsigned long>());
    }
  }
}

}  // namespace

Action register_inspect(CLI::App& app) {
  struct Opts {
    std::string path;
    bool json = false, full = false;
    std::vector<std::string> tensors;
  };
  auto o = std::make_shared<Opts>();
  app.add_option("file", o->path, "GGUF file (default: the trained model, or $BITNET_MODEL)");
  app.add_flag("--json", o->json, "Machine-readable output");
  app.add_flag("--full", o->full, "With --json: print arrays in full (otherwise the first 8 elements)");
  app.add_option("--tensor", o->tensors, "Print statistics of tensors matching NAME (glob, repeatable)");
  return [o]() {
    o->path = model_or_default(o->path);
    auto f = GgufFile::open(o->path);
    std::vector<json> stats;
    for (const std::string& pattern : o->tensors) {
      bool any = false;
      for (const GgufTensorInfo& t : f->tensors())
        if (fnmatch(pattern.c_str(), t.name.c_str(), 0) == 0) {
          stats.push_back(stats_json(t));
          any = true;
        }
      if (!any) fail("{}: no tensor matches '{}'", o->path, pattern);
    }
    const json summary = summary_json(*f);
    if (!o->json) {
      print_text(*f, summary, stats);
      return 0;
    }
    json j{{"file", f->path()}, {"version", f->version()}, {"alignment", f->alignment()},
           {"data_offset", f->data_offset()}, {"file_size", f->file_size()}};
    j["summary"] = summary;
    json md = json::object();
    for (const GgufKV& kv : f->kvs()) md[kv.key] = value_json(kv.value, o->full);
    j["metadata"] = md;
    json ts = json::array();
    for (const GgufTensorInfo& t : f->tensors()) {
      json shape = json::array();
      for (uint32_t d = 0; d < t.n_dims; ++d) shape.push_back(t.ne[d]);
      ts.push_back({{"name", t.name}, {"shape", shape}, {"type", type_traits(t.type).name}, {"type_id", t.type_id},
                    {"bytes", t.nbytes}, {"offset", t.offset}});
    }
    j["tensors"] = ts;
    if (!stats.empty()) j["stats"] = stats;
    std::printf("%s\n", j.dump(2, ' ', false, json::error_handler_t::replace).c_str());
    return 0;
  };
}

}  // namespace bitnet::cli

// bitnet validate FILE... [--json] [--strict]
// Exit: 0 clean, 1 an error-level finding (with --strict: any warning too), 2 a file could not be read.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "bitnet/base/error.h"
#include "bitnet/format/gguf.h"
#include "bitnet/model/validate.h"
#include "commands.h"

namespace bitnet::cli {

Action register_validate(CLI::App& app) {
  struct Opts {
    std::vector<std::string> files;
    bool json = false, strict = false, quiet = false;
  };
  auto o = std::make_shared<Opts>();
  app.add_option("files", o->files, "GGUF files (default: the trained model, or $BITNET_MODEL)");
  app.add_flag("--json", o->json, "Machine-readable output");
  app.add_flag("--strict", o->strict, "Treat warnings as errors");
  app.add_flag("-q,--quiet", o->quiet, "Print only warnings and errors");
  return [o]() {
    int rc = 0;
    if (o->files.empty()) o->files.push_back(default_model_path());
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (const std::string& path : o->files) {
      nlohmann::ordered_json fj{{"file", path}};
      ValidationReport report;
      try {
        auto f = GgufFile::open(path);
        report = validate_model(*f);
      } catch (const Error& e) {
        rc = 2;
        if (o->json) {
          fj["status"] = "unreadable";
          fj["error"] = e.what();
          out.push_back(fj);
        } else {
          std::printf("%s: unreadable: %s\n", path.c_str(), e.what());
        }
        continue;
      }
      const bool bad = report.has(Severity::Error) || (o->strict && report.has(Severity::Warning));
      if (bad && rc == 0) rc = 1;
      const char* status = bad ? "errors" : report.has(Severity::Warning) ? "ok, with warnings" : "clean";
      if (o->json) {
        fj["status"] = status;
        nlohmann::ordered_json fs = nlohmann::ordered_json::array();
        for (const Finding& f : report.findings)
          fs.push_back({{"severity", severity_name(f.severity)}, {"check", f.check}, {"subject", f.subject},
                        {"message", f.message}});
        fj["findings"] = fs;
        out.push_back(fj);
        continue;
      }
      std::printf("%s: %s\n", path.c_str(), status);
      for (const Finding& f : report.findings) {
        if (o->quiet && f.severity == Severity::Info) continue;
        std::printf("  %-7s %-16s %s: %s\n", severity_name(f.severity), f.check.c_str(),
                    f.subject.empty() ? "(file)" : f.subject.c_str(), f.message.c_str());
      }
    }
    if (o->json) std::printf("%s\n", out.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace).c_str());
    return rc;
  };
}

}  // namespace bitnet::cli

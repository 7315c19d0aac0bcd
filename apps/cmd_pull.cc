// bitnet pull REPO[:FILE] [--revision R]   the file's local path on stdout (downloaded unless cached)
// bitnet ls [--json]                       the model cache
// bitnet rm REPO[:FILE]                    removes cached files (and partial downloads)
// The hub, the cache and its layout: src/bitnet/hub/hub.h.
#include <cstdio>

#include <nlohmann/json.hpp>

#include "bitnet/hub/hub.h"
#include "commands.h"

namespace bitnet::cli {

Action register_pull(CLI::App& app) {
  struct Opts {
    std::string ref, revision = "main";
    int timeout = 60;
    bool quiet = false;
  };
  auto o = std::make_shared<Opts>();
  app.add_option("REPO", o->ref, "owner/name[:file], e.g. microsoft/bitnet-b1.58-2B-4T-gguf")->required();
  app.add_option("--revision", o->revision, "Branch, tag or commit")->capture_default_str();
  app.add_option("--timeout", o->timeout, "Seconds without a byte before a transfer fails (it resumes later)")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  app.add_flag("-q,--quiet", o->quiet, "No progress bar or messages; only the path");
  return [o]() {
    hub::Options opts = hub::default_options();
    opts.revision = o->revision;
    opts.stall_timeout_s = o->timeout;
    opts.quiet = o->quiet;
    if (o->quiet) opts.progress = false;
    std::printf("%s\n", hub::pull(hub::parse_ref(o->ref), opts).c_str());
    return 0;
  };
}

Action register_ls(CLI::App& app) {
  auto json = std::make_shared<bool>(false);
  app.add_flag("--json", *json, "Machine-readable output");
  return [json]() {
    const std::string cache = hub::cache_dir();
    const auto entries = hub::list(cache);
    if (*json) {
      nlohmann::ordered_json list = nlohmann::ordered_json::array();
      for (const auto& e : entries)
        list.push_back({{"repo", e.repo}, {"revision", e.revision}, {"file", e.file}, {"path", e.path},
                        {"bytes", e.bytes}, {"partial", e.partial}});
      std::printf("%s\n", nlohmann::ordered_json{{"cache", cache}, {"entries", list}}.dump(2).c_str());
      return 0;
    }
    std::printf("cache: %s\n", cache.c_str());
    if (entries.empty()) std::printf("(empty)\n");
    for (const auto& e : entries)
      std::printf("%-40s %-10s %-36s %10.1f MB%s\n", e.repo.c_str(), e.revision.c_str(), e.file.c_str(), e.bytes / 1e6,
                  e.partial ? "  (partial: the next pull resumes it)" : "");
    return 0;
  };
}

Action register_rm(CLI::App& app) {
  auto ref = std::make_shared<std::string>();
  app.add_option("REPO", *ref, "owner/name[:file]: that file, or every file of the repository")->required();
  return [ref]() {
    for (const std::string& p : hub::remove(hub::parse_ref(*ref), hub::cache_dir())) std::printf("removed %s\n", p.c_str());
    return 0;
  };
}

}  // namespace bitnet::cli

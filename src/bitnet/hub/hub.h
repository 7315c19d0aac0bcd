// Models from a Hugging Face-style hub: `bitnet pull REPO[:FILE]`, `-hf REPO[:FILE]`, `bitnet ls`, `bitnet rm`.
//
// A file is fetched from {endpoint}/{repo}/resolve/{revision}/{file} (HF_ENDPOINT, default
// https://huggingface.co; HF_TOKEN as "Authorization: Bearer", which libcurl does not forward to another host
// on a redirect) into the cache:
//   {cache}/{owner}--{name}/{revision}/{file}          the verified file (only ever placed by rename)
//   {cache}/{owner}--{name}/{revision}/{file}.part     bytes so far: a later pull resumes with a Range request
//   {cache}/{owner}--{name}/{revision}/{file}.lock     flock()ed while a process downloads: a second pull of the
//                                                      same file waits, then finds it in place
// The file's sha256 is checked against the hub's X-Linked-Etag (or ETag) when that is a sha256 (the hub gives
// one for LFS files, which model weights are); a mismatch deletes the partial file.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace bitnet::hub {

struct Ref {
  std::string repo;  // "owner/name"
  std::string file;  // empty: the repository's default model file
};

// "owner/name" or "owner/name:file.gguf". Error naming the text when it is not of that form.
Ref parse_ref(const std::string& text);

struct Options {
  std::string endpoint;   // default: $HF_ENDPOINT, else https://huggingface.co
  std::string token;      // default: $HF_TOKEN
  std::string cache_dir;  // default: cache_dir() below
  std::string revision = "main";
  int stall_timeout_s = 60;  // no byte for this long: the transfer fails (it can be resumed)
  bool progress = false;     // a progress bar on stderr
  bool quiet = false;        // no "downloading ..." lines
};

// $BITNET_CACHE, else $XDG_CACHE_HOME/bitnet, else ~/.cache/bitnet.
std::string cache_dir();
// Options with the environment's defaults filled in (endpoint, token, cache, progress when stderr is a terminal).
Options default_options();

// The local path of ref's file, downloading it first unless it is in the cache. When ref.file is empty the
// file is chosen from the repository's listing ({endpoint}/api/models/{repo}): a .gguf, preferring I2_S,
// then TQ2_0, TQ1_0, other types (a known repository's default first). Throws bitnet::Error with the
// status and URL (401: HF_TOKEN missing or wrong; 404: names the repository, file and revision).
std::string pull(const Ref& ref, const Options& opts);

struct CacheEntry {
  std::string repo, revision, file, path;
  uint64_t bytes = 0;
  bool partial = false;  // a .part awaiting resumption
};
std::vector<CacheEntry> list(const std::string& cache_dir);
// Removes ref's file (every revision; every file of the repository when ref.file is empty), partial
// downloads included. Returns the paths removed; Error when nothing matched.
std::vector<std::string> remove(const Ref& ref, const std::string& cache_dir);

}  // namespace bitnet::hub

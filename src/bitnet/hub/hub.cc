#include "bitnet/hub/hub.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <cstring>
#include <system_error>
#include <tuple>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "bitnet/base/error.h"

namespace bitnet::hub {

namespace fs = std::filesystem;

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool is_sha256(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
}

// Repositories whose default file is known (the hub lists several quantizations in some of them).
const std::pair<const char*, const char*> kKnownDefaults[] = {
    {"microsoft/bitnet-b1.58-2B-4T-gguf", "ggml-model-i2_s.gguf"},
};

void check_path_part(const std::string& s, const char* what, const std::string& whole) {
  if (s.empty() || s == "." || s == ".." || s.find('\0') != std::string::npos)
    fail("'{}': the {} '{}' is not a usable name", whole, what, s);
}

fs::path entry_dir(const std::string& cache, const std::string& repo, const std::string& revision) {
  const size_t slash = repo.find('/');
  return fs::path(cache) / (repo.substr(0, slash) + "--" + repo.substr(slash + 1)) / revision;
}

void curl_init_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) fail("libcurl could not be initialised");
  });
}

std::string url_encode_path(const std::string& s) {  // keeps '/', escapes what a URL path cannot hold
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '/' || c == '-' || c == '_' || c == '.' || c == '~') out += static_cast<char>(c);
    else out += fmt::format("%{:02X}", c);
  }
  return out;
}

// One transfer's state, shared with libcurl's callbacks.
struct Transfer {
  std::FILE* file = nullptr;       // the .part, opened on the first byte of a successful response
  fs::path part;
  uint64_t resume_from = 0;
  uint64_t written = 0;            // bytes written this transfer
  std::string body;                // a response that is not the file (an error page, a JSON listing)
  bool to_file = false;
  long status = 0;                 // of the final response
  std::string linked_etag, etag;   // X-Linked-Etag anywhere in the redirect chain; ETag of the last response
  std::string error;               // set by a callback that stopped the transfer
  CURL* curl = nullptr;
  bool progress = false;
  std::string label;
  std::chrono::steady_clock::time_point last_print{};
};

size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::string line(data, size * n);
  while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.pop_back();
  if (line.rfind("HTTP/", 0) == 0) t->etag.clear();  // a new response of the redirect chain
  const size_t colon = line.find(':');
  if (colon == std::string::npos) return size * n;
  const std::string key = lower(line.substr(0, colon));
  std::string value = line.substr(colon + 1);
  value.erase(0, value.find_first_not_of(" \t"));
  if (value.rfind("W/", 0) == 0) value.erase(0, 2);
  if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
  if (key == "x-linked-etag") t->linked_etag = value;
  if (key == "etag") t->etag = value;
  return size * n;
}

size_t on_body(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t bytes = size * n;
  long code = 0;
  curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &code);
  if (!t->to_file || (code != 200 && code != 206)) {
    if (t->body.size() < (1u << 20)) t->body.append(data, std::min<size_t>(bytes, (1u << 20) - t->body.size()));
    return bytes;
  }
  if (!t->file) {
    // 206: the server honoured the Range request, append; 200: it sent the whole file, start over.
    const bool append = code == 206 && t->resume_from > 0;
    t->file = std::fopen(t->part.c_str(), append ? "ab" : "wb");
    if (!t->file) {
      t->error = fmt::format("cannot write {}: {}", t->part.string(), std::strerror(errno));
      return 0;
    }
    if (!append) t->resume_from = 0;
  }
  if (std::fwrite(data, 1, bytes, t->file) != bytes) {
    t->error = fmt::format("cannot write {}: {}", t->part.string(), std::strerror(errno));
    return 0;
  }
  t->written += bytes;
  return bytes;
}

int on_progress(void* user, curl_off_t total, curl_off_t now, curl_off_t, curl_off_t) {
  auto* t = static_cast<Transfer*>(user);
  if (!t->progress || total <= 0) return 0;
  const auto clock = std::chrono::steady_clock::now();
  if (now < total && clock - t->last_print < std::chrono::milliseconds(200)) return 0;
  t->last_print = clock;
  const double done = static_cast<double>(t->resume_from + static_cast<uint64_t>(now));
  const double all = static_cast<double>(t->resume_from + static_cast<uint64_t>(total));
  const int width = 30, filled = static_cast<int>(width * done / all);
  std::fprintf(stderr, "\r%s [%s%s] %5.1f%% %.1f/%.1f MB", t->label.c_str(), std::string(filled, '#').c_str(),
               std::string(width - filled, ' ').c_str(), 100 * done / all, done / 1e6, all / 1e6);
  if (now == total) std::fprintf(stderr, "\n");
  return 0;
}

// GET url. With `part`: the body goes to that file (resuming after its current size); else to t.body.
Transfer http_get(const std::string& url, const Options& o, const fs::path* part, const std::string& label) {
  curl_init_once();
  Transfer t;
  CURL* c = curl_easy_init();
  if (!c) fail("libcurl could not start a transfer");
  t.curl = c;
  t.progress = o.progress && part;
  t.label = label;
  if (part) {
    t.part = *part;
    t.to_file = true;
    std::error_code ec;
    t.resume_from = fs::exists(*part, ec) ? fs::file_size(*part, ec) : 0;
    if (ec) t.resume_from = 0;
  }
  char errbuf[CURL_ERROR_SIZE] = {};
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "bitnet");
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);  // a transfer that stalls this long fails
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, static_cast<long>(o.stall_timeout_s));
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, &t);
  if (!o.token.empty()) {  // bound to the first host: not sent on to a redirect's content host
    curl_easy_setopt(c, CURLOPT_HTTPAUTH, CURLAUTH_BEARER);
    curl_easy_setopt(c, CURLOPT_XOAUTH2_BEARER, o.token.c_str());
  }
  const std::string range = fmt::format("{}-", t.resume_from);
  if (t.resume_from > 0) curl_easy_setopt(c, CURLOPT_RANGE, range.c_str());
  const CURLcode rc = curl_easy_perform(c);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &t.status);
  curl_easy_cleanup(c);
  if (t.file) {
    const bool flushed = std::fflush(t.file) == 0 && ::fsync(fileno(t.file)) == 0;
    std::fclose(t.file);
    t.file = nullptr;
    if (!flushed && t.error.empty()) t.error = fmt::format("cannot write {}: {}", t.part.string(), std::strerror(errno));
  }
  if (!t.error.empty()) fail("{}", t.error);
  if (rc != CURLE_OK)
    t.error = fmt::format("{} ({})", errbuf[0] ? errbuf : curl_easy_strerror(rc), curl_easy_strerror(rc));
  return t;
}

[[noreturn]] void fail_status(const Transfer& t, const std::string& url, const std::string& repo,
                              const std::string& file, const std::string& revision, const Options& o) {
  std::string detail;
  const auto j = nlohmann::json::parse(t.body, nullptr, false);
  if (j.is_object() && j.contains("error") && j["error"].is_string()) detail = ": " + j["error"].get<std::string>();
  if (t.status == 401 || t.status == 403)
    fail("{} from {}{}: {}", t.status, url, detail,
         o.token.empty() ? "the repository needs a token: set HF_TOKEN" : "HF_TOKEN was refused (wrong, or without access)");
  if (t.status == 404)
    fail("404 from {}{}: {} has no file '{}' at revision '{}' (or the repository does not exist)", url, detail, repo,
         file.empty() ? "(listing)" : file, revision);
  fail("HTTP {} from {}{}", t.status, url, detail);
}

std::string sha256_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) fail("cannot read {}", p.string());
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) != 1) fail("sha256: OpenSSL could not start a digest");
  std::vector<char> buf(1 << 20);
  while (f) {
    f.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    if (f.gcount() > 0) EVP_DigestUpdate(ctx, buf.data(), static_cast<size_t>(f.gcount()));
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx, md, &len);
  EVP_MD_CTX_free(ctx);
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) hex += fmt::format("{:02x}", md[i]);
  return hex;
}

std::string default_file(const std::string& repo, const Options& o) {
  for (const auto& [r, f] : kKnownDefaults)
    if (lower(repo) == lower(r)) return f;
  std::string url = fmt::format("{}/api/models/{}/revision/{}", o.endpoint, url_encode_path(repo),
                                url_encode_path(o.revision));
  Transfer t = http_get(url, o, nullptr, "");
  if (t.error.empty() && t.status == 404 && o.revision == "main") {  // hubs without the revision route
    url = fmt::format("{}/api/models/{}", o.endpoint, url_encode_path(repo));
    t = http_get(url, o, nullptr, "");
  }
  if (!t.error.empty()) fail("listing {}: {}", url, t.error);
  if (t.status != 200) fail_status(t, url, repo, "", o.revision, o);
  const auto j = nlohmann::json::parse(t.body, nullptr, false);
  if (!j.is_object() || !j.contains("siblings") || !j["siblings"].is_array())
    fail("{}: the hub's answer has no 'siblings' list of files", url);
  std::vector<std::string> ggufs, all;
  for (const auto& s : j["siblings"]) {
    if (!s.is_object() || !s.contains("rfilename") || !s["rfilename"].is_string()) continue;
    const std::string name = s["rfilename"];
    all.push_back(name);
    if (lower(name).size() > 5 && lower(name).ends_with(".gguf")) ggufs.push_back(name);
  }
  for (const char* want : {"i2_s", "tq2_0", "tq1_0"})
    for (const std::string& g : ggufs)
      if (lower(g).find(want) != std::string::npos) return g;
  if (!ggufs.empty()) return ggufs.front();
  std::string names;
  for (size_t i = 0; i < all.size() && i < 12; ++i) names += (i ? ", " : "") + all[i];
  fail("{} has no .gguf file to choose (files: {}); convert a checkpoint with `bitnet convert`, or name a file "
       "with {}:FILE",
       repo, names.empty() ? "none" : names, repo);
}

// An exclusive flock on `path`, released on destruction.
class FileLock {
 public:
  explicit FileLock(const fs::path& path, const std::string& what) {
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) fail("cannot open lock file {}: {}", path.string(), std::strerror(errno));
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      std::fprintf(stderr, "bitnet: waiting for another process downloading %s\n", what.c_str());
      while (::flock(fd_, LOCK_EX) != 0)
        if (errno != EINTR) fail("cannot lock {}: {}", path.string(), std::strerror(errno));
    }
  }
  ~FileLock() { ::close(fd_); }  // closing releases the lock
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace

Ref parse_ref(const std::string& text) {
  Ref r;
  const size_t colon = text.find(':');
  r.repo = text.substr(0, colon);
  if (colon != std::string::npos) {
    r.file = text.substr(colon + 1);
    if (r.file.empty()) fail("'{}': nothing after ':' (expected REPO:FILE)", text);
  }
  const size_t slash = r.repo.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == r.repo.size() || r.repo.find('/', slash + 1) != std::string::npos)
    fail("'{}': expected a repository as owner/name, optionally :FILE (e.g. microsoft/bitnet-b1.58-2B-4T-gguf)", text);
  check_path_part(r.repo.substr(0, slash), "owner", text);
  check_path_part(r.repo.substr(slash + 1), "repository name", text);
  for (const char c : r.repo)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' || c == '/'))
      fail("'{}': the repository name may hold letters, digits, '-', '_' and '.' only", text);
  if (!r.file.empty()) {
    if (r.file.front() == '/') fail("'{}': the file must be a path inside the repository", text);
    for (const auto& part : fs::path(r.file)) check_path_part(part.string(), "file path component", text);
  }
  return r;
}

std::string cache_dir() {
  if (const std::string c = env("BITNET_CACHE"); !c.empty()) return c;
  if (const std::string x = env("XDG_CACHE_HOME"); !x.empty()) return (fs::path(x) / "bitnet").string();
  const std::string home = env("HOME");
  if (home.empty()) fail("no cache folder: set BITNET_CACHE (HOME is not set)");
  return (fs::path(home) / ".cache" / "bitnet").string();
}

Options default_options() {
  Options o;
  o.endpoint = env("HF_ENDPOINT");
  if (o.endpoint.empty()) o.endpoint = "https://huggingface.co";
  while (!o.endpoint.empty() && o.endpoint.back() == '/') o.endpoint.pop_back();
  o.token = env("HF_TOKEN");
  o.cache_dir = cache_dir();
  o.progress = ::isatty(STDERR_FILENO) != 0;
  return o;
}

std::string pull(const Ref& in, const Options& o) {
  Ref ref = in;
  check_path_part(o.revision, "revision", o.revision);
  if (o.revision.find('/') != std::string::npos)
    fail("revision '{}': a branch, tag or commit without '/' is expected", o.revision);
  const fs::path dir = entry_dir(o.cache_dir, ref.repo, o.revision);
  if (ref.file.empty()) {
    try {
      ref.file = default_file(ref.repo, o);
    } catch (const Error& e) {
      // Offline (or the hub refuses the listing): one GGUF of this repository and revision in the cache will do.
      std::error_code ec;
      std::vector<fs::path> cached;
      for (const auto& f : fs::directory_iterator(dir, ec))
        if (f.is_regular_file(ec) && lower(f.path().filename().string()).ends_with(".gguf")) cached.push_back(f.path());
      if (cached.size() != 1) throw;
      if (!o.quiet)
        std::fprintf(stderr, "bitnet: note: %s; using the cached %s\n", e.what(), cached.front().filename().c_str());
      return cached.front().string();
    }
  }
  const fs::path final_path = dir / ref.file;
  std::error_code ec;
  if (fs::is_regular_file(final_path, ec)) return final_path.string();
  fs::create_directories(final_path.parent_path(), ec);
  if (ec) fail("cannot create {}: {}", final_path.parent_path().string(), ec.message());

  const std::string what = ref.repo + ":" + ref.file;
  FileLock lock(fs::path(final_path.string() + ".lock"), what);
  if (fs::is_regular_file(final_path, ec)) return final_path.string();  // the other process finished it

  const fs::path part(final_path.string() + ".part");
  const std::string url = fmt::format("{}/{}/resolve/{}/{}", o.endpoint, url_encode_path(ref.repo),
                                      url_encode_path(o.revision), url_encode_path(ref.file));
  if (!o.quiet) std::fprintf(stderr, "bitnet: downloading %s\n", url.c_str());
  // A transfer that breaks after making progress is resumed (a Range request from the bytes on disk) a few
  // times before giving up; what is on disk stays for a later pull.
  Transfer t;
  for (int attempt = 0;; ++attempt) {
    t = http_get(url, o, &part, ref.file);
    // An error response never reaches the .part (on_body keeps it in t.body), so what is on disk stays.
    if (t.status >= 400 && t.status != 416) fail_status(t, url, ref.repo, ref.file, o.revision, o);
    if (t.error.empty()) break;
    if (t.written == 0 || attempt == 4)
      fail("downloading {}: {}; {} bytes are kept in {} and the next pull resumes from there", url, t.error,
           fs::exists(part, ec) ? fs::file_size(part, ec) : 0, part.string());
    if (!o.quiet) std::fprintf(stderr, "bitnet: the transfer broke (%s); resuming\n", t.error.c_str());
  }
  if (!fs::is_regular_file(part, ec)) fail("downloading {}: the server sent no file", url);
  const std::string expected = lower(is_sha256(t.linked_etag) ? t.linked_etag : t.etag);
  if (is_sha256(expected)) {
    const std::string got = sha256_file(part);
    if (got != expected) {
      fs::remove(part, ec);
      fail("downloading {}: sha256 {} does not match the hub's {}; the download was removed", url, got, expected);
    }
  } else if (!o.quiet) {
    std::fprintf(stderr, "bitnet: note: the hub gave no sha256 for %s; the file is not verified\n", what.c_str());
  }
  fs::rename(part, final_path, ec);
  if (ec) fail("cannot move {} to {}: {}", part.string(), final_path.string(), ec.message());
  return final_path.string();
}

std::vector<CacheEntry> list(const std::string& cache) {
  std::vector<CacheEntry> out;
  std::error_code ec;
  if (!fs::is_directory(cache, ec)) return out;
  for (const auto& repo_dir : fs::directory_iterator(cache, ec)) {
    const std::string name = repo_dir.path().filename().string();
    const size_t sep = name.find("--");
    if (!repo_dir.is_directory() || sep == std::string::npos) continue;
    const std::string repo = name.substr(0, sep) + "/" + name.substr(sep + 2);
    for (const auto& rev_dir : fs::directory_iterator(repo_dir.path(), ec)) {
      if (!rev_dir.is_directory()) continue;
      for (const auto& f : fs::recursive_directory_iterator(rev_dir.path(), ec)) {
        if (!f.is_regular_file()) continue;
        std::string rel = fs::relative(f.path(), rev_dir.path(), ec).string();
        if (rel.ends_with(".lock")) continue;
        CacheEntry e{repo, rev_dir.path().filename().string(), rel, f.path().string(), f.file_size(ec), false};
        if (rel.ends_with(".part")) {
          e.partial = true;
          e.file = rel.substr(0, rel.size() - 5);
        }
        out.push_back(std::move(e));
      }
    }
  }
  std::sort(out.begin(), out.end(), [](const CacheEntry& a, const CacheEntry& b) {
    return std::tie(a.repo, a.revision, a.file, a.partial) < std::tie(b.repo, b.revision, b.file, b.partial);
  });
  return out;
}

std::vector<std::string> remove(const Ref& ref, const std::string& cache) {
  std::vector<std::string> removed;
  std::error_code ec;
  for (const CacheEntry& e : list(cache)) {
    if (e.repo != ref.repo || (!ref.file.empty() && e.file != ref.file)) continue;
    if (fs::remove(e.path, ec)) removed.push_back(e.path);
    fs::remove(fs::path(e.path.substr(0, e.path.size() - (e.partial ? 5 : 0)) + ".lock"), ec);
  }
  if (removed.empty())
    fail("nothing in the cache {} matches {}{}", cache, ref.repo, ref.file.empty() ? "" : ":" + ref.file);
  // Empty folders left behind go too, deepest first.
  const size_t slash = ref.repo.find('/');
  const fs::path repo_dir = fs::path(cache) / (ref.repo.substr(0, slash) + "--" + ref.repo.substr(slash + 1));
  std::vector<fs::path> dirs;
  for (const auto& d : fs::recursive_directory_iterator(repo_dir, ec))
    if (d.is_directory(ec)) dirs.push_back(d.path());
  std::sort(dirs.begin(), dirs.end(), [](const fs::path& a, const fs::path& b) { return a.string() > b.string(); });
  dirs.push_back(repo_dir);
  for (const fs::path& d : dirs)
    if (fs::is_empty(d, ec)) fs::remove(d, ec);
  return removed;
}

}  // namespace bitnet::hub

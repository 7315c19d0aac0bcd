"""A local stand-in for the Hugging Face hub, for `bitnet pull` tests (no network here).

Two HTTP servers on 127.0.0.1: the hub, answering like huggingface.co
  GET /api/models/{owner}/{name}/revision/{rev}   {"siblings": [{"rfilename": ...}, ...]}
  GET /{owner}/{name}/resolve/{rev}/{file}        302 to the content host, with X-Linked-Etag (the sha256)
                                                  and X-Linked-Size, as the hub does for LFS files
and a content host serving /blob/{sha256} with Range requests (206), whose behaviour per blob can be set:
  "ok", "cut" (the first response stops halfway and the connection closes), "stall" (every response stops
  after some bytes and hangs), "slow" (bytes trickle, so concurrent pulls overlap).
Private repositories want "Authorization: Bearer <token>" on the hub (401 otherwise). The content host
records whether an Authorization header reached it (it must not: the token is for the hub only) and counts
the body bytes it sent per blob.
"""
import hashlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Repo:
    def __init__(self, files, token=None, wrong_hash=False, listing_without_revision=False):
        self.files = files            # name -> bytes
        self.token = token            # None: public
        self.wrong_hash = wrong_hash  # report a sha256 that is not the content's
        self.listing_without_revision = listing_without_revision  # only /api/models/{repo} lists files


class MockHub:
    def __init__(self):
        self.repos = {}
        self.mode = {}                # sha -> "ok" | "cut" | "stall" | "slow"
        self.sent = {}                # sha -> body bytes sent
        self.ranges = []              # Range headers received by the content host
        self.auth_seen_by_cdn = False
        self.hub_requests = 0
        self.blobs = {}
        self.stopping = False
        self.lock = threading.Lock()
        hub, cdn = self._hub_handler(), self._cdn_handler()
        self.hub = ThreadingHTTPServer(("127.0.0.1", 0), hub)
        self.cdn = ThreadingHTTPServer(("127.0.0.1", 0), cdn)
        self.hub.daemon_threads = self.cdn.daemon_threads = True
        for s in (self.hub, self.cdn):
            threading.Thread(target=s.serve_forever, daemon=True).start()

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.hub.server_address[1]}"

    def add_repo(self, name, files, **kw):
        self.repos[name] = Repo(files, **kw)
        for data in files.values():
            self.blobs[hashlib.sha256(data).hexdigest()] = data

    def sha(self, data):
        return hashlib.sha256(data).hexdigest()

    def close(self):
        self.stopping = True
        self.hub.shutdown()
        self.cdn.shutdown()
        self.hub.server_close()
        self.cdn.server_close()

    def _hub_handler(self):
        mock = self

        class Hub(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def send_json(self, status, obj, headers=()):
                body = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in headers:
                    self.send_header(k, v)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def authorized(self, repo):
                if repo.token is None:
                    return True
                if self.headers.get("Authorization") == f"Bearer {repo.token}":
                    return True
                self.send_json(401, {"error": "Invalid credentials in Authorization header"})
                return False

            def do_GET(self):
                with mock.lock:
                    mock.hub_requests += 1
                m = re.fullmatch(r"/api/models/([^/]+/[^/]+)(/revision/([^/]+))?", self.path)
                if m:
                    repo = mock.repos.get(m.group(1))
                    if not repo or (repo.listing_without_revision and m.group(2)):
                        return self.send_json(404, {"error": "Repository not found"})
                    if self.authorized(repo):
                        self.send_json(200, {"id": m.group(1), "siblings": [{"rfilename": f} for f in repo.files]})
                    return
                m = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", self.path)
                if not m:
                    return self.send_json(404, {"error": "Not found"})
                repo = mock.repos.get(m.group(1))
                if not repo:
                    return self.send_json(404, {"error": "Repository not found"}, [("X-Error-Code", "RepoNotFound")])
                if not self.authorized(repo):
                    return
                data = repo.files.get(m.group(3))
                if data is None:
                    return self.send_json(404, {"error": "Entry not found"}, [("X-Error-Code", "EntryNotFound")])
                sha = mock.sha(data)
                linked = mock.sha(data + b"x") if repo.wrong_hash else sha
                self.send_response(302)
                self.send_header("Location", f"http://127.0.0.1:{mock.cdn.server_address[1]}/blob/{sha}")
                self.send_header("X-Linked-Etag", f'"{linked}"')
                self.send_header("X-Linked-Size", str(len(data)))
                self.send_header("ETag", '"0123abcd"')
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_HEAD = do_GET

        return Hub

    def _cdn_handler(self):
        mock = self

        class Cdn(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                if self.headers.get("Authorization"):
                    mock.auth_seen_by_cdn = True
                m = re.fullmatch(r"/blob/([0-9a-f]{64})", self.path)
                data = mock.blobs.get(m.group(1)) if m else None
                if data is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                sha = m.group(1)
                start, status = 0, 200
                rng = self.headers.get("Range")
                if rng:
                    mock.ranges.append(rng)
                    r = re.fullmatch(r"bytes=(\d+)-", rng)
                    start = int(r.group(1))
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    status = 206
                body = data[start:]
                self.send_response(status)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("ETag", f'"{sha}"')
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                mode = mock.mode.get(sha, "ok")
                limit = len(body)
                if mode == "cut":
                    mock.mode[sha] = "ok"  # once
                    limit = len(body) // 2
                elif mode == "stall":
                    limit = min(len(body), 64 * 1024)
                step = 16 * 1024 if mode == "slow" else 256 * 1024
                sent = 0
                try:
                    while sent < limit:
                        chunk = body[sent:min(limit, sent + step)]
                        self.wfile.write(chunk)
                        self.wfile.flush()
                        sent += len(chunk)
                        with mock.lock:
                            mock.sent[sha] = mock.sent.get(sha, 0) + len(chunk)
                        if mode == "slow":
                            time.sleep(0.01)
                    if mode == "stall":
                        deadline = time.time() + 30
                        while time.time() < deadline and not mock.stopping:
                            time.sleep(0.05)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                self.close_connection = True

        return Cdn

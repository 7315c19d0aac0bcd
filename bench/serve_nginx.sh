#!/usr/bin/env bash
# Scale-out the standard way: two `bitnet serve` replicas behind Debian's nginx on loopback (least_conn,
# retries on connection errors), load through nginx, one replica stopped midway; every request must still
# succeed. Prints the counts per replica and the failures; exit 1 on any failure.
#   bench/serve_nginx.sh [BITNET] [REQUESTS] [CLIENTS]     (default build/release/apps/bitnet 120 8)
# Installs nginx-light when nginx is missing (apt). Uses the default model unless BITNET_MODEL is set.
set -euo pipefail
cd "$(dirname "$0")/.."
bitnet=${1:-build/release/apps/bitnet}
requests=${2:-120}
clients=${3:-8}
if ! command -v nginx >/dev/null; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nginx-light
fi
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

start_replica() {  # sets PORT and PID (no command substitution: it would run in a subshell)
  local log=$1
  "$bitnet" serve --port 0 -t 1 --parallel 4 2>"$log" &
  PID=$!
  pids+=("$PID")
  for _ in $(seq 200); do
    grep -q "ready" "$log" 2>/dev/null && break
    sleep 0.05
  done
  PORT=$(grep -o "127.0.0.1:[0-9]*" "$log" | head -1 | cut -d: -f2)
  [ -n "$PORT" ] || { echo "replica did not start:"; cat "$log"; exit 1; }
}
start_replica "$work/a.log"; port_a=$PORT; pid_a=$PID
start_replica "$work/b.log"; port_b=$PORT
port_n=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

cat >"$work/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/error.log warn;
events { worker_connections 256; }
http {
  log_format upstream '\$upstream_addr \$status';
  access_log $work/access.log upstream;
  client_body_temp_path $work/body;
  proxy_temp_path $work/proxy;
  upstream bitnet {
    least_conn;
    server 127.0.0.1:$port_a max_fails=1 fail_timeout=10s;
    server 127.0.0.1:$port_b max_fails=1 fail_timeout=10s;
    keepalive 16;
  }
  server {
    listen 127.0.0.1:$port_n;
    location / {
      proxy_pass http://bitnet;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;              # server-sent events pass through as they come
      proxy_read_timeout 600s;
      # A replica that refuses connections, or answers 503 (queue full, shutting down: nothing was done),
      # is skipped; retrying the POST is then safe.
      proxy_next_upstream error timeout http_503 non_idempotent;
      proxy_next_upstream_tries 2;
    }
    location = /health { proxy_pass http://bitnet; }
  }
}
EOF
nginx -c "$work/nginx.conf" -p "$work" &
pids+=($!)
for _ in $(seq 100); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1', $port_n), 1)" 2>/dev/null && break
  sleep 0.05
done
echo "replicas on $port_a and $port_b, nginx on $port_n; $requests requests from $clients clients; replica $port_a stops midway"

set +e
python3 - "$port_n" "$requests" "$clients" "$pid_a" <<'EOF'
import http.client, json, os, signal, sys, threading, time
port, total, clients, pid_a = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
lock = threading.Lock()
done, failures, next_i = 0, [], 0
def worker():
    global done, next_i
    while True:
        with lock:
            if next_i >= total:
                return
            i = next_i
            next_i += 1
        body = {"prompt": "It was a fine day, and", "max_tokens": 8 + i % 24, "temperature": 0.7, "seed": i,
                "stream": i % 2 == 0}
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            c.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
            r = c.getresponse()
            text = r.read().decode()
            ok = r.status == 200 and (text.rstrip().endswith("data: [DONE]") if body["stream"] else "choices" in text)
            if not ok:
                with lock:
                    failures.append((i, r.status, text[:200]))
        except Exception as e:
            with lock:
                failures.append((i, "exception", repr(e)))
        with lock:
            done += 1
            if done == total // 2:
                os.kill(pid_a, signal.SIGTERM)  # stop replica A midway
t0 = time.time()
threads = [threading.Thread(target=worker) for _ in range(clients)]
for t in threads: t.start()
for t in threads: t.join()
print(f"{total} requests in {time.time() - t0:.1f} s: {total - len(failures)} succeeded, {len(failures)} failed")
for f in failures[:10]:
    print("  failed:", f)
sys.exit(1 if failures else 0)
EOF
status=$?
echo "requests by upstream (nginx access log; 'A, B' = retried on B after A refused):"
sort "$work/access.log" | uniq -c | sed 's/^/  /'
exit $status

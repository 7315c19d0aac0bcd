#!/usr/bin/env bash
# Installs everything bitnet needs to build and test, from Debian 12 packages. Safe to re-run.
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
packages=(
  build-essential cmake ninja-build pkg-config   # toolchain
  clang libclang-rt-dev                          # tsan / fuzz presets (clang's sanitizer runtimes)
  libfmt-dev                                     # string formatting for error messages
  nlohmann-json3-dev                             # JSON: --json output, tokenizer.json
  libcli11-dev                                   # command-line parsing (each flag declared once)
  libpcre2-dev                                   # Unicode regex for the LLaMA-3 pre-tokenizer
  libutf8proc-dev                                # Unicode normalization (NFC/NFKC) of tokenizer.json normalizers
  libcpp-httplib-dev                             # HTTP server of `bitnet serve` (as llama-server uses)
  libcurl4-openssl-dev libssl-dev                # `bitnet pull`: downloads (libcurl), sha256 (OpenSSL)
  libgtest-dev libgmock-dev                      # unit tests
  python3 python3-numpy                          # CLI tests, independent reference forward pass
  python3-sentencepiece                          # SentencePiece itself: tokenizer.model parity (tests/text)
  curl                                           # the README's server examples, run by tests/server
  g++-aarch64-linux-gnu qemu-user                # ARM NEON table: cross-built and tested under emulation
)
missing=()
for p in "${packages[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
# Node.js + npm run the independent oracles (@huggingface/gguf, node-llama-cpp); keep an existing install.
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
echo "install-deps: all dependencies present"

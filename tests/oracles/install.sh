#!/usr/bin/env bash
# install.sh DIR PACKAGE@VERSION...: installs npm packages into DIR once (pinned versions).
# Exit 77 (the test suite's "skipped") when npm or the registry cannot be reached.
set -u
dir=$1; shift
stamp="$dir/.installed-$(echo "$*" | sha256sum | cut -c1-16)"  # one stamp per package list
[ -f "$stamp" ] && exit 0
if ! command -v npm >/dev/null; then echo "SKIP: npm is not installed"; exit 77; fi
mkdir -p "$dir"
# Tests run in parallel (ctest -j) and several install into one folder: one npm at a time there, or one
# npm's rewrite of node_modules pulls packages from under a test already using them.
exec 9>"$dir/.install-lock"
flock 9
[ -f "$stamp" ] && exit 0
if ! (cd "$dir" && timeout 300 npm install --no-audit --no-fund --prefix "$dir" -E "$@" >"$dir/npm.log" 2>&1); then
  echo "SKIP: npm could not install $* (registry unreachable?); see $dir/npm.log"
  tail -5 "$dir/npm.log"
  exit 77
fi
touch "$stamp"

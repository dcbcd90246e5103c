#!/usr/bin/env bash
# Runs chat.mjs (matrix-js-sdk, the SDK of Element Web) against a freshly
# started Hearth on a loopback port with a temporary data directory.
# Usage: tests/js-sdk/run.sh [path/to/hearth]   (default: target/debug/hearth)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${1:-$here/../../target/debug/hearth}"
data="$(mktemp -d)"
log="$data/hearth.log"
pid=""
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    rm -rf "$data"
}
trap cleanup EXIT
(cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
"$bin" serve --data-dir "$data/db" --listen 127.0.0.1:0 >"$log" 2>&1 &
pid=$!
url=""
for _ in $(seq 1 100); do
    url="$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$log" | head -n1 || true)"
    [ -n "$url" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$log"; exit 1; }
    sleep 0.1
done
[ -n "$url" ] || { echo "hearth did not start"; cat "$log"; exit 1; }
node "$here/chat.mjs" "$url" 2> >(grep -v -e MatrixRTC -e 'push rule' -e EventTimelineSet >&2)

#!/usr/bin/env bash
# CI for the board: cross-build the aarch64 release binary, run it under
# qemu-user as a Raspberry Pi would (register, whoami, rooms if present,
# systemd notifications, clean SIGTERM), check the systemd units, then the
# Debian packages and Raspberry Pi scripts (.ci/packages.sh).
# Installs what it needs (Debian packages, the rustup target). Loopback only.
# HEARTH_BOARD_TARGET=armv7-unknown-linux-gnueabihf (or aarch64-unknown-linux-musl)
# runs the same checks for another target.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

t0=$SECONDS
step() { echo "== $* (t+$((SECONDS - t0)) s)"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

step "tools"
missing=()
command -v curl >/dev/null || missing+=(curl)
command -v python3 >/dev/null || missing+=(python3)
command -v systemd-analyze >/dev/null || missing+=(systemd)
if [ ${#missing[@]} -gt 0 ]; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

work=$(mktemp -d)
server_pid=
notify_pid=
# Stops only what this script started, by PID.
cleanup() {
  for pid in $server_pid $notify_pid; do
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; fi
  done
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  if [ -f "$work/server.log" ]; then echo "--- server log" >&2; cat "$work/server.log" >&2; fi
  if [ -f "$work/notify.log" ]; then echo "--- notifications" >&2; cat "$work/notify.log" >&2; fi
  exit 1
}
trap 'fail "command failed at line $LINENO"' ERR

# CI checks the Pi's target; the others can be run by hand the same way.
target=${HEARTH_BOARD_TARGET:-aarch64-unknown-linux-gnu}
case "$target" in
  aarch64-unknown-linux-gnu) qemu=(qemu-aarch64-static -L /usr/aarch64-linux-gnu) ;;
  aarch64-unknown-linux-musl) qemu=(qemu-aarch64-static) ;;
  armv7-unknown-linux-gnueabihf) qemu=(qemu-arm-static -L /usr/arm-linux-gnueabihf) ;;
  *) echo "board.sh: unsupported HEARTH_BOARD_TARGET $target" >&2; exit 2 ;;
esac
step "build $target"
board/build.sh "$target" | tee "$work/build.log"
bin=$(tail -n 1 "$work/build.log" | cut -d' ' -f1)
test -x "$bin"

step "smoke test under ${qemu[*]}"

# A free loopback port: bind port 0, read it back, release it.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"

# Stand in for systemd: receive notifications on a datagram socket and log
# them one per line. WATCHDOG_USEC=2 s asks for a ping every second.
python3 - "$work/notify" "$work/notify.log" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a", buffering=1) as log:
    while True:
        log.write(s.recv(4096).decode().replace("\n", "\\n") + "\n")
PY
notify_pid=$!
for _ in $(seq 50); do [ -S "$work/notify" ] && break; sleep 0.1; done
[ -S "$work/notify" ] || fail "notification receiver did not start"

started=$SECONDS
NOTIFY_SOCKET="$work/notify" WATCHDOG_USEC=2000000 \
  "${qemu[@]}" "$bin" serve \
  --listen "127.0.0.1:$port" --data-dir "$work/data" --server-name localhost \
  --registration open >"$work/server.log" 2>&1 &
server_pid=$!

# curl wrapper: prints the body, then the status code on its own last line.
req() { curl -sS -m 30 -w '\n%{http_code}' "$@"; }
status() { tail -n 1 <<<"$1"; }
body() { sed '$d' <<<"$1"; }
json() { python3 -c 'import json,sys; v=json.load(sys.stdin)
for k in sys.argv[1].split("."): v=v[k]
print(v)' "$1"; }

for _ in $(seq 600); do
  curl -sf -m 2 "$base/_matrix/client/versions" >/dev/null 2>&1 && break
  kill -0 "$server_pid" 2>/dev/null || fail "server exited during start-up"
  sleep 0.1
done
curl -sf -m 5 "$base/_matrix/client/versions" >/dev/null || fail "no answer on $base within 60 s"
echo "   serving after $((SECONDS - started)) s"
grep -qx 'READY=1' "$work/notify.log" || fail "answering HTTP but no READY=1 on NOTIFY_SOCKET"

# Registration through user-interactive auth: the first call opens a session.
r=$(req -X POST -H 'Content-Type: application/json' \
  -d '{"username":"smoke","password":"correct horse battery staple"}' \
  "$base/_matrix/client/v3/register")
[ "$(status "$r")" = 401 ] || fail "register without auth: expected 401, got $(status "$r"): $(body "$r")"
session=$(body "$r" | json session) || fail "no session in 401: $(body "$r")"
body "$r" | grep -q 'm.login.dummy' || fail "m.login.dummy not offered: $(body "$r")"
r=$(req -X POST -H 'Content-Type: application/json' \
  -d "{\"username\":\"smoke\",\"password\":\"correct horse battery staple\",\"auth\":{\"type\":\"m.login.dummy\",\"session\":\"$session\"}}" \
  "$base/_matrix/client/v3/register")
[ "$(status "$r")" = 200 ] || fail "register with m.login.dummy: $(status "$r"): $(body "$r")"
token=$(body "$r" | json access_token)
echo "   registered $(body "$r" | json user_id)"

r=$(req -H "Authorization: Bearer $token" "$base/_matrix/client/v3/account/whoami")
[ "$(status "$r")" = 200 ] || fail "whoami: $(status "$r"): $(body "$r")"
[ "$(body "$r" | json user_id)" = "@smoke:localhost" ] || fail "whoami: $(body "$r")"
echo "   whoami ok"

r=$(req -X POST -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
  -d '{"name":"smoke"}' "$base/_matrix/client/v3/createRoom")
if [ "$(status "$r")" = 404 ] && grep -q M_UNRECOGNIZED <<<"$(body "$r")"; then
  echo "   createRoom is not implemented yet (404 M_UNRECOGNIZED): skipping send and sync"
else
  [ "$(status "$r")" = 200 ] || fail "createRoom: $(status "$r"): $(body "$r")"
  room=$(body "$r" | json room_id)
  room_enc=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$room")
  r=$(req -X PUT -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -d '{"msgtype":"m.text","body":"hello from the board"}' \
    "$base/_matrix/client/v3/rooms/$room_enc/send/m.room.message/smoke1")
  [ "$(status "$r")" = 200 ] || fail "send: $(status "$r"): $(body "$r")"
  event=$(body "$r" | json event_id)
  r=$(req -H "Authorization: Bearer $token" "$base/_matrix/client/v3/sync?timeout=0")
  [ "$(status "$r")" = 200 ] || fail "sync: $(status "$r"): $(body "$r")"
  body "$r" | python3 -c '
import json, sys
room, event = sys.argv[1], sys.argv[2]
events = json.load(sys.stdin)["rooms"]["join"][room]["timeline"]["events"]
assert any(e.get("event_id") == event and e.get("content", {}).get("body") == "hello from the board"
           for e in events), events
' "$room" "$event" || fail "sync does not return the message $event in $room"
  echo "   created $room, sent $event, sync returns it"
fi

# The first ping goes out as the watchdog task starts, the next every second.
for _ in $(seq 30); do grep -qx 'WATCHDOG=1' "$work/notify.log" && break; sleep 0.1; done
grep -qx 'WATCHDOG=1' "$work/notify.log" || fail "no WATCHDOG=1 with WATCHDOG_USEC set"

stopping=$SECONDS
kill -TERM "$server_pid"
for _ in $(seq 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$server_pid" 2>/dev/null; then fail "still running 10 s after SIGTERM"; fi
rc=0; wait "$server_pid" || rc=$?  # the status of the process we started
server_pid=
[ "$rc" = 0 ] || fail "exit status $rc after SIGTERM"
grep -qx 'STOPPING=1' "$work/notify.log" || fail "no STOPPING=1 on shutdown"
echo "   SIGTERM: exited 0 after $((SECONDS - stopping)) s; notifications: $(sort "$work/notify.log" | uniq -c | tr -s ' \n' ' ')"

step "systemd units"
root="$work/root"
mkdir -p "$root/usr/bin" "$root/usr/lib/systemd" "$root/etc/systemd/system" \
  "$root/usr/lib/sysusers.d" "$root/usr/lib/tmpfiles.d"
# verify needs the stock targets the unit orders itself against and an
# executable at ExecStart; the real /usr/bin is not touched.
cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/"
cp "$bin" "$root/usr/bin/hearth"
cp systemd/hearth.service "$root/etc/systemd/system/"
cp systemd/hearth.sysusers "$root/usr/lib/sysusers.d/hearth.conf"
cp systemd/hearth.tmpfiles "$root/usr/lib/tmpfiles.d/hearth.conf"
# verify exits 0 on unknown keys and only warns: treat any output as failure.
out=$(systemd-analyze verify --root="$root" hearth.service 2>&1) || fail "systemd-analyze verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify: $out"
echo "   systemd-analyze verify: clean"
systemd-sysusers --root="$root" hearth.conf
grep -q '^hearth:x:[0-9]*:[0-9]*:.*:/var/lib/hearth:' "$root/etc/passwd" || fail "sysusers did not create hearth"
systemd-tmpfiles --root="$root" --create hearth.conf
[ "$(stat -c %a "$root/var/lib/hearth")" = 750 ] || fail "tmpfiles: /var/lib/hearth mode"
echo "   sysusers and tmpfiles apply cleanly"
systemd-analyze security --offline=true --root="$root" hearth.service 2>/dev/null | tail -n 1 || true

kill "$notify_pid"; wait "$notify_pid" 2>/dev/null || true; notify_pid=

# Debian packages (arm64 from the binary just tested, amd64 from a native
# release build) and the Raspberry Pi scripts, in scratch roots.
if [ "$target" = aarch64-unknown-linux-gnu ]; then
  step "Debian packages and Raspberry Pi scripts"
  HEARTH_ARM64_BIN="$bin" as_root env PATH="$PATH" HOME="$HOME" bash .ci/packages.sh
fi
step "board checks passed"

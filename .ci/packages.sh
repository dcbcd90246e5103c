#!/usr/bin/env bash
# CI for the Debian packages and the Raspberry Pi appliance scripts, all in
# scratch directories (the machine's own /usr, /etc and dpkg database are
# not touched; nothing listens beyond loopback):
#
#  - shellcheck every board script and maintainer script;
#  - build the arm64 package (from HEARTH_ARM64_BIN, the binary .ci/board.sh
#    built, or board/build.sh) and the amd64 package (a native release
#    build, or HEARTH_AMD64_BIN), and inspect both with dpkg-deb;
#  - install → upgrade (a second build with a higher version) → remove →
#    purge → install the amd64 package into a scratch root with
#    `dpkg --root --force-script-chrootless` (the maintainer scripts honour
#    DPKG_ROOT), checking where files land, the system user, the service's
#    enablement, the conffile, and that data in /var/lib/hearth survives;
#  - customise a scratch directory laid out like Raspberry Pi OS Lite's root
#    file system, run the first-boot script against it, and log in from
#    loopback as the admin it created, on a server started from that root;
#  - if this machine can loop-mount, customise a small made-up disk image;
#  - the mDNS responder over real multicast between two network namespaces
#    it creates (.ci/mdns.sh; skipped where namespaces cannot be made).
# Needs root (dpkg --root writes root-owned files); installs what it lacks.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

t0=$SECONDS
step() { echo "== $* (t+$((SECONDS - t0)) s)"; }
fail() { echo "FAIL: $*" >&2; [ -f "${log:-}" ] && { echo "--- server log" >&2; cat "$log" >&2; }; exit 1; }
trap 'fail "command failed at line $LINENO"' ERR
[ "$(id -u)" = 0 ] || { echo "packages.sh: run as root (dpkg --root creates root-owned files)" >&2; exit 1; }

step "tools"
missing=()
for t in shellcheck:shellcheck dpkg-deb:dpkg readelf:binutils curl:curl python3:python3 \
  systemd-sysusers:systemd xz:xz-utils mkfs.ext4:e2fsprogs ip:iproute2; do
  command -v "${t%%:*}" >/dev/null || missing+=("${t#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

work=$(mktemp -d)
server_pid=
log=
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then kill -KILL "$server_pid"; fi
  if mountpoint -q "$work/mnt" 2>/dev/null; then umount "$work/mnt"; fi
  rm -rf "$work"
}
trap cleanup EXIT

step "shellcheck"
shellcheck board/*.sh board/raspberry-pi/*.sh board/debian/postinst board/debian/prerm \
  board/debian/postrm .ci/board.sh .ci/packages.sh .ci/mdns.sh
echo "   clean"

step "packages"
amd64_bin=${HEARTH_AMD64_BIN:-}
if [ -z "$amd64_bin" ]; then
  cargo build --release --locked
  amd64_bin=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/release/hearth
fi
arm64=$(HEARTH_BIN=${HEARTH_ARM64_BIN:-} board/deb.sh aarch64-unknown-linux-gnu | tail -n 1)
v1=$(HEARTH_BIN=$amd64_bin board/deb.sh x86_64-unknown-linux-gnu | tail -n 1)
upstream=$(dpkg-deb -f "$v1" Version | sed 's/-[^-]*$//')
v2=$(HEARTH_BIN=$amd64_bin HEARTH_DEB_VERSION="$upstream-2" board/deb.sh x86_64-unknown-linux-gnu | tail -n 1)
for deb in "$arm64" "$v1" "$v2"; do echo "   $(basename "$deb"): $(stat -c %s "$deb") bytes"; done

# dpkg-deb -I/-c: the fields, the conffile and the file list.
[ "$(dpkg-deb -f "$arm64" Architecture)" = arm64 ] || fail "arm64 package: $(dpkg-deb -f "$arm64" Architecture)"
[ "$(dpkg-deb -f "$v1" Architecture)" = amd64 ] || fail "amd64 package: $(dpkg-deb -f "$v1" Architecture)"
dpkg --compare-versions "$(dpkg-deb -f "$v2" Version)" gt "$(dpkg-deb -f "$v1" Version)" ||
  fail "the second build is not newer"
for deb in "$arm64" "$v1"; do
  dpkg-deb -f "$deb" Depends | grep -Eq '^libc6 \(>= 2\.[0-9]+\)' || fail "$deb: Depends: $(dpkg-deb -f "$deb" Depends)"
  dpkg-deb -I "$deb" conffiles | grep -qx /etc/hearth/hearth.toml || fail "$deb: conffile"
  dpkg-deb -c "$deb" | awk '{ print $1, $2, $6 }' >"$work/list"
  for want in "-rwxr-xr-x root/root ./usr/bin/hearth" \
    "-rw-r--r-- root/root ./usr/lib/systemd/system/hearth.service" \
    "-rw-r--r-- root/root ./usr/lib/sysusers.d/hearth.conf" \
    "-rw-r--r-- root/root ./usr/lib/tmpfiles.d/hearth.conf" \
    "-rw-r--r-- root/root ./etc/hearth/hearth.toml" \
    "-rw-r--r-- root/root ./usr/share/doc/hearth/copyright"; do
    grep -qxF -- "$want" "$work/list" || fail "$deb lacks '$want': $(cat "$work/list")"
  done
  ! grep -q 'var/lib/hearth' "$work/list" || fail "$deb must not own /var/lib/hearth"
done
mkdir "$work/x"
dpkg-deb -x "$arm64" "$work/x"
readelf -h "$work/x/usr/bin/hearth" | grep -q 'Machine:.*AArch64' || fail "arm64 package holds no AArch64 binary"
grep -qx 'data_dir = "/var/lib/hearth"' "$work/x/etc/hearth/hearth.toml" || fail "packaged config: data_dir"
cmp -s systemd/hearth.service "$work/x/usr/lib/systemd/system/hearth.service" || fail "unit differs"
echo "   arm64 and amd64 packages have the expected fields and files"

# A scratch root with an empty dpkg database that knows libc6 and
# libgcc-s1, as any Debian system's does, so Depends are met.
new_root() {
  local r=$1
  mkdir -p "$r/var/lib/dpkg/info" "$r/var/lib/dpkg/updates" "$r/etc/systemd/system" "$r/usr/lib/systemd/system"
  printf 'root:x:0:0:root:/root:/bin/sh\n' >"$r/etc/passwd"
  printf 'root:x:0:\n' >"$r/etc/group"
  printf 'root:*:20000:0:99999:7:::\n' >"$r/etc/shadow"
  printf 'root:*::\n' >"$r/etc/gshadow"
  chmod 0640 "$r/etc/shadow" "$r/etc/gshadow"
  for dep in libc6:2.36-9 libgcc-s1:12.2.0-14 dpkg:1.21.22; do
    printf 'Package: %s\nStatus: install ok installed\nPriority: required\nArchitecture: %s\nMulti-Arch: same\nVersion: %s\nMaintainer: x <x@x>\nDescription: stand-in\n\n' \
      "${dep%%:*}" "${2:-amd64}" "${dep#*:}"
  done >"$r/var/lib/dpkg/status"
  for dep in libc6 libgcc-s1 dpkg; do touch "$r/var/lib/dpkg/info/$dep:${2:-amd64}.list"; done
  # multi-user.target, which hearth.service is WantedBy, for systemctl --root.
  cp /usr/lib/systemd/system/multi-user.target "$r/usr/lib/systemd/system/"
}
dpkg_in() { local r=$1; shift; dpkg --root="$r" --force-script-chrootless "$@"; }
status_of() { dpkg-query --root="$1" -W -f '${Status} ${Version}' hearth 2>/dev/null || true; }

step "install, upgrade, remove, purge into a scratch root"
r=$work/root
new_root "$r"
dpkg_in "$r" -i "$v1" >"$work/dpkg.log" 2>&1 || fail "install: $(cat "$work/dpkg.log")"
[ "$(status_of "$r")" = "install ok installed $(dpkg-deb -f "$v1" Version)" ] || fail "status: $(status_of "$r")"
for f in usr/bin/hearth usr/lib/systemd/system/hearth.service usr/lib/sysusers.d/hearth.conf \
  usr/lib/tmpfiles.d/hearth.conf etc/hearth/hearth.toml; do
  [ -f "$r/$f" ] || fail "install: /$f missing"
done
"$r/usr/bin/hearth" --version | grep -q '^hearth ' || fail "installed binary does not run"
grep -q '^hearth:x:[0-9]*:[0-9]*:[^:]*:/var/lib/hearth:' "$r/etc/passwd" || fail "no hearth user: $(cat "$r/etc/passwd")"
grep -q '^hearth:' "$r/etc/group" || fail "no hearth group"
uid=$(awk -F: '$1 == "hearth" { print $3 }' "$r/etc/passwd")
gid=$(awk -F: '$1 == "hearth" { print $3 }' "$r/etc/group")
[ "$(stat -c '%u:%g %a' "$r/var/lib/hearth")" = "$uid:$gid 750" ] || fail "/var/lib/hearth: $(stat -c '%u:%g %a' "$r/var/lib/hearth")"
[ "$(stat -c '%u:%g %a' "$r/etc/hearth")" = "0:$gid 750" ] || fail "/etc/hearth: $(stat -c '%u:%g %a' "$r/etc/hearth")"
wants=$r/etc/systemd/system/multi-user.target.wants/hearth.service
[ -L "$wants" ] || fail "hearth.service not enabled"
echo "   installed: files in place, user hearth ($uid:$gid), data dir 0750, service enabled"

# Data and a changed conffile must outlive everything but an explicit rm.
echo "precious" >"$r/var/lib/hearth/keep-me"
chown "$uid:$gid" "$r/var/lib/hearth/keep-me"
sed -i 's/^server_name = .*/server_name = "upgraded.local"/' "$r/etc/hearth/hearth.toml"
dpkg_in "$r" -i "$v2" >"$work/dpkg.log" 2>&1 || fail "upgrade: $(cat "$work/dpkg.log")"
[ "$(status_of "$r")" = "install ok installed $upstream-2" ] || fail "status after upgrade: $(status_of "$r")"
[ "$(cat "$r/var/lib/hearth/keep-me")" = precious ] || fail "upgrade lost data"
grep -qx 'server_name = "upgraded.local"' "$r/etc/hearth/hearth.toml" || fail "upgrade replaced the changed config"
[ "$(awk -F: '$1 == "hearth" { print $3 }' "$r/etc/passwd")" = "$uid" ] || fail "upgrade changed the uid"
[ "$(grep -c '^hearth:' "$r/etc/passwd")" = 1 ] || fail "upgrade added a second hearth user"
echo "   upgraded to $upstream-2: data and the changed config kept"

dpkg_in "$r" -r hearth >"$work/dpkg.log" 2>&1 || fail "remove: $(cat "$work/dpkg.log")"
[ "$(status_of "$r")" = "deinstall ok config-files $upstream-2" ] || fail "status after remove: $(status_of "$r")"
if [ -e "$r/usr/bin/hearth" ] || [ -e "$r/usr/lib/systemd/system/hearth.service" ]; then
  fail "remove left the binary or unit"
fi
[ "$(cat "$r/var/lib/hearth/keep-me")" = precious ] || fail "remove lost data"
grep -q 'upgraded.local' "$r/etc/hearth/hearth.toml" || fail "remove deleted the config"
echo "   removed: binary and unit gone; data and config kept"

dpkg_in "$r" -P hearth >"$work/dpkg.log" 2>&1 || fail "purge: $(cat "$work/dpkg.log")"
grep -q 'data in /var/lib/hearth is kept' "$work/dpkg.log" || fail "purge did not say the data is kept: $(cat "$work/dpkg.log")"
[ -z "$(status_of "$r")" ] || [ "$(status_of "$r" | cut -d' ' -f3)" = not-installed ] || fail "status after purge: $(status_of "$r")"
[ ! -e "$r/etc/hearth/hearth.toml" ] || fail "purge left the config"
[ ! -L "$wants" ] || fail "purge left the service enabled"
[ "$(cat "$r/var/lib/hearth/keep-me")" = precious ] || fail "purge lost data"
grep -q '^hearth:' "$r/etc/passwd" || fail "purge removed the user (files in /var/lib/hearth would lose their owner)"
dpkg_in "$r" -i "$v1" >"$work/dpkg.log" 2>&1 || fail "reinstall: $(cat "$work/dpkg.log")"
[ "$(cat "$r/var/lib/hearth/keep-me")" = precious ] || fail "reinstall after purge lost data"
[ -L "$wants" ] || fail "reinstall after purge did not enable the service"
echo "   purged: config and enablement gone; data and user kept; reinstall works"

# Without systemd-sysusers (a system without systemd), postinst falls back
# to useradd: PATH is every command of this machine but that one.
shim=$work/path-without-sysusers
mkdir "$shim"
for dir in /usr/local/sbin /usr/local/bin /usr/sbin /usr/bin /sbin /bin; do
  for cmd in "$dir"/*; do
    [ -x "$cmd" ] && [ ! -e "$shim/${cmd##*/}" ] && ln -s "$cmd" "$shim/${cmd##*/}"
  done
done
rm "$shim/systemd-sysusers"
r3=$work/root-useradd
new_root "$r3"
PATH=$shim dpkg_in "$r3" -i "$v1" >"$work/dpkg.log" 2>&1 || fail "install without sysusers: $(cat "$work/dpkg.log")"
grep -q '^hearth:x:[0-9]*:[0-9]*:Hearth Matrix homeserver:/var/lib/hearth:/usr/sbin/nologin$' "$r3/etc/passwd" ||
  fail "useradd fallback: $(cat "$r3/etc/passwd")"
grep -q '^hearth:!' "$r3/etc/shadow" || fail "useradd fallback: $(cat "$r3/etc/shadow")"
uid=$(awk -F: '$1 == "hearth" { print $3 }' "$r3/etc/passwd")
[ "$(stat -c %u "$r3/var/lib/hearth")" = "$uid" ] || fail "useradd fallback: data dir owner"
echo "   without systemd-sysusers: useradd made the user"

step "Raspberry Pi: customise a scratch image root, first boot, log in"
img=$work/pi
new_root "$img"
mkdir -p "$img/boot/firmware" "$img/usr/sbin"
printf 'console=serial0,115200 root=PARTUUID=abcd-02 rootfstype=ext4 fsck.repair=yes rootwait\n' >"$img/boot/firmware/cmdline.txt"
printf 'proc /proc proc defaults 0 0\nPARTUUID=abcd-01 /boot/firmware vfat defaults 0 2\nPARTUUID=abcd-02 / ext4 defaults,relatime 0 1\n' >"$img/etc/fstab"
echo hearthpi >"$img/etc/hostname"
# Raspberry Pi OS Lite runs avahi-daemon, which announces <hostname>.local.
printf '#!/bin/sh\n' >"$img/usr/sbin/avahi-daemon"
chmod 755 "$img/usr/sbin/avahi-daemon"
# coturn, as if installed: its binary and group (a stock turnserver.conf).
mkdir -p "$img/usr/bin"
printf '#!/bin/sh\n' >"$img/usr/bin/turnserver"
chmod 755 "$img/usr/bin/turnserver"
printf 'turnserver:x:990:\n' >>"$img/etc/group"
printf '# stock\n' >"$img/etc/turnserver.conf"
if board/raspberry-pi/customise-image.sh --root "$img" "$arm64" >"$work/c.log" 2>&1; then
  fail "customise accepted an arm64 package for an amd64 image"
fi
grep -q 'is for arm64 but the image' "$work/c.log" || fail "customise: $(cat "$work/c.log")"
board/raspberry-pi/customise-image.sh --root "$img" "$v1"
[ -f "$img/var/cache/hearth/$(basename "$v1")" ] || fail "customise: no package in /var/cache/hearth"
[ -x "$img/usr/local/sbin/hearth-firstboot" ] || fail "customise: no first-boot script"
[ "$(readlink "$img/etc/systemd/system/multi-user.target.wants/hearth-firstboot.service")" = \
  /etc/systemd/system/hearth-firstboot.service ] || fail "customise: first-boot unit not enabled"
[ -f "$img/boot/firmware/hearth.txt" ] || fail "customise: no hearth.txt"
# verify wants the stock units the new one orders itself against.
cp -a /usr/lib/systemd/system "$img/usr/lib/systemd/"
out=$(systemd-analyze verify --root="$img" hearth-firstboot.service 2>&1 | grep -v 'usr/local/sbin/hearth-firstboot' || true)
[ -z "$out" ] || fail "systemd-analyze verify hearth-firstboot.service: $out"
# The user edits hearth.txt on a PC (Windows line ends) to choose the admin.
printf 'admin=Alice\r\nadmin_password=correct horse battery staple\r\n' >>"$img/boot/firmware/hearth.txt"

HEARTH_ROOT=$img "$img/usr/local/sbin/hearth-firstboot" >"$work/firstboot.log" 2>&1 ||
  fail "first boot: $(cat "$work/firstboot.log")"
sed 's/^/   | /' "$work/firstboot.log"
cfg=$img/etc/hearth/hearth.toml
for want in 'server_name = "hearthpi.local"' 'listen = "0.0.0.0:8008"' 'registration = "token"' \
  'data_dir = "/var/lib/hearth"' 'mdns = false'; do
  grep -qxF "$want" "$cfg" || fail "first boot config lacks $want"
done
grep -q 'http://hearthpi.local:8008' "$work/firstboot.log" || fail "first boot did not print the URL"
# Calls: one generated secret in both configs, coturn's file for its group only.
turn_secret=$(sed -n 's/^static-auth-secret=//p' "$img/etc/turnserver.conf")
[ "${#turn_secret}" -ge 48 ] || fail "turnserver.conf secret: $(cat "$img/etc/turnserver.conf")"
grep -qxF "turn_shared_secret = \"$turn_secret\"" "$cfg" || fail "hearth.toml lacks the TURN secret"
grep -qxF 'turn_uris = ["turn:hearthpi.local:3478?transport=udp", "turn:hearthpi.local:3478?transport=tcp"]' "$cfg" ||
  fail "hearth.toml turn_uris: $(grep turn_uris "$cfg")"
for want in use-auth-secret realm=hearthpi.local listening-port=3478 min-port=49160 max-port=49200 \
  no-tls no-dtls no-multicast-peers denied-peer-ip=127.0.0.0-127.255.255.255 \
  denied-peer-ip=192.168.0.0-192.168.255.255; do
  grep -qxF "$want" "$img/etc/turnserver.conf" || fail "turnserver.conf lacks $want"
done
[ "$(stat -c '%a %g' "$img/etc/turnserver.conf")" = "640 990" ] ||
  fail "turnserver.conf: $(stat -c '%a %g' "$img/etc/turnserver.conf")"
grep -qx '# stock' "$img/etc/turnserver.conf.orig" || fail "the package's turnserver.conf was not kept"
grep -q 'Storage=volatile' "$img/etc/systemd/journald.conf.d/hearth-sd-card.conf" || fail "journald not volatile"
grep -Eq '^PARTUUID=abcd-02[[:space:]]+/[[:space:]]+ext4[[:space:]]+defaults,noatime[[:space:]]' "$img/etc/fstab" ||
  fail "fstab: $(cat "$img/etc/fstab")"
grep -q '/boot/firmware[[:space:]]*vfat[[:space:]]*defaults ' "$img/etc/fstab" || fail "fstab: boot line changed"
grep -qx 'admin_password=' "$img/boot/firmware/hearth.txt" || fail "password left in hearth.txt"
creds=$img/root/hearth-first-admin.txt
[ "$(stat -c %a "$creds")" = 600 ] || fail "credentials file mode $(stat -c %a "$creds")"
grep -q 'admin account: *@alice:hearthpi.local' "$creds" || fail "credentials: $(cat "$creds")"
token=$(sed -n 's/^registration token: *\([^ ]*\).*/\1/p' "$creds")
[ -n "$token" ] || fail "no registration token in credentials"
uid=$(awk -F: '$1 == "hearth" { print $3 }' "$img/etc/passwd")
[ -z "$(find "$img/var/lib/hearth" ! -uid "$uid")" ] || fail "data not owned by hearth: $(find "$img/var/lib/hearth" ! -uid "$uid" -ls)"

again=$(HEARTH_ROOT=$img "$img/usr/local/sbin/hearth-firstboot" 2>&1) || fail "second run: $again"
grep -q 'already set up' <<<"$again" || fail "second run: $again"

# Start the server from that root, on loopback only, and log in.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log=$work/server.log
"$img/usr/bin/hearth" serve --config "$cfg" --data-dir "$img/var/lib/hearth" \
  --listen "127.0.0.1:$port" >"$log" 2>&1 &
server_pid=$!
base=http://127.0.0.1:$port
for _ in $(seq 300); do
  curl -sf -m 2 "$base/_matrix/client/versions" >/dev/null 2>&1 && break
  kill -0 "$server_pid" 2>/dev/null || fail "server exited during start-up"
  sleep 0.1
done
r=$(curl -sS -m 30 -X POST -H 'Content-Type: application/json' \
  -d '{"type":"m.login.password","identifier":{"type":"m.id.user","user":"alice"},"password":"correct horse battery staple"}' \
  "$base/_matrix/client/v3/login")
grep -q '"user_id":"@alice:hearthpi.local"' <<<"$r" || fail "admin login: $r"
r=$(curl -sS -m 30 -X POST -H 'Content-Type: application/json' -d '{"username":"bob","password":"another long password"}' \
  "$base/_matrix/client/v3/register")
session=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["session"])' <<<"$r")
r=$(curl -sS -m 30 -X POST -H 'Content-Type: application/json' \
  -d "{\"username\":\"bob\",\"password\":\"another long password\",\"auth\":{\"type\":\"m.login.registration_token\",\"token\":\"$token\",\"session\":\"$session\"}}" \
  "$base/_matrix/client/v3/register")
grep -q '"user_id":"@bob:hearthpi.local"' <<<"$r" || fail "register with the first-boot token: $r"
bob_token=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])' <<<"$r")
r=$(curl -sS -m 30 -H "Authorization: Bearer $bob_token" "$base/_matrix/client/v3/voip/turnServer")
python3 - "$turn_secret" "$r" <<'PY' || fail "turnServer: $r"
import base64, hashlib, hmac, json, sys
secret, body = sys.argv[1], json.loads(sys.argv[2])
expected = base64.b64encode(hmac.new(secret.encode(), body["username"].encode(), hashlib.sha1).digest()).decode()
assert body["username"].endswith(":@bob:hearthpi.local"), body
assert body["password"] == expected, body
assert body["uris"][0] == "turn:hearthpi.local:3478?transport=udp", body
PY
kill -TERM "$server_pid"
wait "$server_pid" || fail "server exit status $?"
server_pid=
log=
echo "   first boot made @alice:hearthpi.local (admin), a working registration token and a TURN secret shared with coturn"

# Without avahi, and with a name chosen in hearth.txt, mDNS is switched on.
img2=$work/pi2
new_root "$img2"
mkdir -p "$img2/boot/firmware"
echo raspberrypi >"$img2/etc/hostname"
board/raspberry-pi/customise-image.sh --root "$img2" "$v2" >/dev/null
printf 'server_name=Family.local\ncalls=No\n' >>"$img2/boot/firmware/hearth.txt"
mkdir -p "$img2/usr/bin"
printf '#!/bin/sh\n' >"$img2/usr/bin/turnserver"
chmod 755 "$img2/usr/bin/turnserver"
HEARTH_ROOT=$img2 "$img2/usr/local/sbin/hearth-firstboot" >"$work/firstboot2.log" 2>&1 ||
  fail "first boot 2: $(cat "$work/firstboot2.log")"
grep -qx 'server_name = "family.local"' "$img2/etc/hearth/hearth.toml" || fail "hearth.txt server_name not used"
grep -qx 'mdns = true' "$img2/etc/hearth/hearth.toml" || fail "mdns not switched on without avahi"
if grep -qE '^turn_(uris|shared_secret|username|password) ' "$img2/etc/hearth/hearth.toml" || [ -e "$img2/etc/turnserver.conf" ]; then
  fail "calls=no still set up a TURN relay"
fi
grep -q 'admin password: *[A-Za-z0-9]\{20,\}' "$img2/root/hearth-first-admin.txt" || fail "no generated password"
"$img2/usr/bin/hearth" user list --config "$img2/etc/hearth/hearth.toml" --data-dir "$img2/var/lib/hearth" |
  grep -qx '@admin:family.local.admin' || fail "default admin missing"
echo "   without avahi: mdns = true, generated admin password; calls=no: no TURN relay"

step "Raspberry Pi: customise a made-up disk image"
# Two partitions like Raspberry Pi OS Lite's (FAT boot, ext4 root) in an MBR
# disk image, xz-compressed as downloads are. Loop mounts need privileges a
# container may lack; then this part is skipped, saying so.
probe=$work/probe.ext4
truncate -s 8M "$probe"
mkfs.ext4 -q -F "$probe"
mkdir -p "$work/mnt"
if ! mount -o loop,ro "$probe" "$work/mnt" 2>/dev/null; then
  echo "   SKIPPED: this machine cannot loop-mount"
else
  umount "$work/mnt"
  if ! command -v mkfs.vfat >/dev/null || ! command -v mcopy >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dosfstools mtools >/dev/null
  fi
  tree=$work/pi-image-root
  new_root "$tree" arm64
  mkdir -p "$tree/boot/firmware"
  echo raspberrypi >"$tree/etc/hostname"
  boot_start=8192 boot_count=65536 root_start=73728 root_count=90112
  truncate -s $((boot_count * 512)) "$work/boot.fat"
  mkfs.vfat -n BOOTFS "$work/boot.fat" >/dev/null
  truncate -s $((root_count * 512)) "$work/root.ext4"
  mkfs.ext4 -q -F -L rootfs -d "$tree" "$work/root.ext4"
  disk=$work/raspios-lite.img
  truncate -s $(((root_start + root_count) * 512)) "$disk"
  python3 - "$disk" "$boot_start" "$boot_count" "$root_start" "$root_count" <<'PY'
import struct, sys
path, b0, bn, r0, rn = sys.argv[1], *map(int, sys.argv[2:])
entry = lambda kind, start, count: struct.pack("<B3sB3sII", 0, b"\0" * 3, kind, b"\0" * 3, start, count)
with open(path, "r+b") as f:
    f.seek(440)
    f.write(struct.pack("<I", 0xABCD) + b"\0\0" + entry(0x0C, b0, bn) + entry(0x83, r0, rn) + b"\0" * 32 + b"\x55\xaa")
PY
  dd if="$work/boot.fat" of="$disk" bs=512 seek="$boot_start" conv=notrunc,sparse status=none
  dd if="$work/root.ext4" of="$disk" bs=512 seek="$root_start" conv=notrunc,sparse status=none
  xz -T1 -0 "$disk"
  before=$(sha256sum <"$disk.xz")
  board/raspberry-pi/customise-image.sh "$disk.xz" "$arm64" "$work/hearth-pi.img" | sed 's/^/   | /'
  [ "$(sha256sum <"$disk.xz")" = "$before" ] || fail "customise changed the source image"
  mount -o loop,ro,offset=$((root_start * 512)),sizelimit=$((root_count * 512)) "$work/hearth-pi.img" "$work/mnt"
  [ -f "$work/mnt/var/cache/hearth/$(basename "$arm64")" ] || fail "image: no package"
  [ -x "$work/mnt/usr/local/sbin/hearth-firstboot" ] || fail "image: no first-boot script"
  [ -L "$work/mnt/etc/systemd/system/multi-user.target.wants/hearth-firstboot.service" ] || fail "image: unit not enabled"
  umount "$work/mnt"
  mcopy -i "$work/hearth-pi.img@@$((boot_start * 512))" ::hearth.txt "$work/hearth.txt"
  cmp -s "$work/hearth.txt" board/raspberry-pi/hearth.txt || fail "image: no hearth.txt on the boot partition"
  echo "   the customised image holds the package, the first-boot unit and hearth.txt"
fi

step "mDNS between two network namespaces"
bash .ci/mdns.sh "$amd64_bin"

step "package checks passed"

#!/usr/bin/env bash
# Build a Debian package of Hearth with dpkg-deb (no debhelper, no cargo-deb).
#
#   board/deb.sh [TARGET]      (default: aarch64-unknown-linux-gnu)
#
# TARGET and the package architecture it makes:
#   aarch64-unknown-linux-gnu       arm64  (64-bit Raspberry Pi OS, Debian, Ubuntu)
#   armv7-unknown-linux-gnueabihf   armhf  (32-bit Raspberry Pi OS)
#   x86_64-unknown-linux-gnu        amd64  (a PC; built natively on an x86_64 host)
#
# The binary comes from board/build.sh TARGET (or `cargo build --release` for
# the host), unless HEARTH_BIN names one already built. The version is
# Cargo.toml's with Debian revision 1, unless HEARTH_DEB_VERSION gives a whole
# Debian version (e.g. 0.1.0-2). Dependencies are read off the binary's
# dynamic section. Writes <target dir>/debian/hearth_<version>_<arch>.deb and
# prints its path on the last line.
#
# What the package holds and does on install, upgrade, remove and purge is
# described in board/README.md ("The Debian package").
set -euo pipefail
cd "$(dirname "$0")/.."

target=${1:-aarch64-unknown-linux-gnu}
case "$target" in
  aarch64-unknown-linux-gnu) arch=arm64; machine=AArch64 ;;
  armv7-unknown-linux-gnueabihf) arch=armhf; machine=ARM ;;
  x86_64-unknown-linux-gnu) arch=amd64; machine=X86-64 ;;
  -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "deb.sh: unsupported target '$target' (see board/deb.sh --help)" >&2; exit 2 ;;
esac
for tool in dpkg-deb readelf python3; do
  command -v "$tool" >/dev/null || { echo "deb.sh: $tool not found (Debian: dpkg, binutils, python3)" >&2; exit 1; }
done

meta=$(cargo metadata --format-version 1 --no-deps)
field() { python3 -c 'import json, sys; m = json.load(sys.stdin); print(eval(sys.argv[1]))' "$1" <<<"$meta"; }
target_dir=$(field 'm["target_directory"]')
upstream=$(field '[p for p in m["packages"] if p["name"] == "hearth"][0]["version"]')
version=${HEARTH_DEB_VERSION:-$upstream-1}

bin=${HEARTH_BIN:-}
if [ -z "$bin" ]; then
  if [ "$target" = "$(rustc -vV | sed -n 's/^host: //p')" ]; then
    cargo build --release --locked
    bin="$target_dir/release/hearth"
  elif [ "$arch" = amd64 ]; then
    echo "deb.sh: build the amd64 package on an x86_64 host (or set HEARTH_BIN)" >&2; exit 1
  else
    bin=$(board/build.sh "$target" | tail -n 1 | cut -d' ' -f1)
  fi
fi
[ -x "$bin" ] || { echo "deb.sh: no executable at $bin" >&2; exit 1; }
# A binary for another machine would install fine and then fail to start.
readelf -h "$bin" | grep -q "Machine:.*$machine" ||
  { echo "deb.sh: $bin is not an $machine binary: $(readelf -h "$bin" | grep Machine:)" >&2; exit 1; }

# Depends: one package per shared library the binary needs; libc6 at least
# as new as the newest GLIBC_ symbol version it uses.
glibc=$(readelf -V "$bin" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -n 1)
depends=$(
  for lib in $(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    case "$lib" in
      libc.so.6|libm.so.6|libpthread.so.0|libdl.so.2|librt.so.1|ld-linux*) echo "libc6 (>= ${glibc:-2.34})" ;;
      libgcc_s.so.1) echo "libgcc-s1 (>= 4.2)" ;;
      *) echo "deb.sh: no Debian package known for $lib; add it here" >&2; exit 1 ;;
    esac
  done | sort -u | paste -sd, | sed 's/,/, /g'
)

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
pkg="$stage/hearth"
install -D -m 0755 "$bin" "$pkg/usr/bin/hearth"
install -D -m 0644 systemd/hearth.service "$pkg/usr/lib/systemd/system/hearth.service"
install -D -m 0644 systemd/hearth.sysusers "$pkg/usr/lib/sysusers.d/hearth.conf"
install -D -m 0644 systemd/hearth.tmpfiles "$pkg/usr/lib/tmpfiles.d/hearth.conf"
# The default configuration: the example with the packaged data directory.
mkdir -p "$pkg/etc/hearth"
{
  echo "# /etc/hearth/hearth.toml: installed by the hearth package; your changes"
  echo "# are kept on upgrades (dpkg asks when a new version changes this file too)."
  echo "#"
  sed 's|^data_dir = "hearth-data"$|data_dir = "/var/lib/hearth"|' hearth.example.toml
} >"$pkg/etc/hearth/hearth.toml"
grep -qx 'data_dir = "/var/lib/hearth"' "$pkg/etc/hearth/hearth.toml" ||
  { echo "deb.sh: hearth.example.toml has no data_dir line to change" >&2; exit 1; }
chmod 0644 "$pkg/etc/hearth/hearth.toml"
install -D -m 0644 board/debian/copyright "$pkg/usr/share/doc/hearth/copyright"
install -m 0644 board/README.md "$pkg/usr/share/doc/hearth/README.board.md"
install -m 0644 systemd/README.md "$pkg/usr/share/doc/hearth/README.systemd.md"
printf 'hearth (%s) unstable; urgency=medium\n\n  * Built from the Hearth repository.\n\n -- Hearth developers <dev@hearth.invalid>  %s\n' \
  "$version" "$(date -R -u -d "@${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}")" |
  gzip -9n >"$pkg/usr/share/doc/hearth/changelog.Debian.gz"

mkdir -p "$pkg/DEBIAN"
for script in postinst prerm postrm; do
  install -m 0755 "board/debian/$script" "$pkg/DEBIAN/$script"
done
echo /etc/hearth/hearth.toml >"$pkg/DEBIAN/conffiles"
(cd "$pkg" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) >"$pkg/DEBIAN/md5sums"
installed_size=$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
cat >"$pkg/DEBIAN/control" <<CONTROL
Package: hearth
Version: $version
Architecture: $arch
Maintainer: Hearth developers <dev@hearth.invalid>
Installed-Size: $installed_size
Depends: $depends
Recommends: systemd
Suggests: coturn
Section: net
Priority: optional
Description: Matrix homeserver for single-board computers
 Hearth is a small Matrix homeserver for a Raspberry Pi or another board
 on a home LAN: one binary, data in /var/lib/hearth, run by systemd as
 the system user hearth. It never contacts the internet on its own.
CONTROL

out="$target_dir/debian"
mkdir -p "$out"
deb="$out/hearth_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$deb" >/dev/null
echo "$deb"

#!/usr/bin/env bash
# Turn a stock Raspberry Pi OS Lite image into a Hearth appliance image.
#
#   sudo board/raspberry-pi/customise-image.sh SOURCE.img[.xz] hearth_VERSION_arm64.deb OUT.img
#   board/raspberry-pi/customise-image.sh --root DIR hearth_VERSION_arm64.deb
#
# The first form copies SOURCE to OUT (decompressing .xz), loop-mounts its
# root partition (ext4, the second in the MBR partition table), customises
# it, and writes hearth.txt into the boot partition (FAT, the first) with
# mtools, which needs no vfat support in the kernel; SOURCE is never
# changed. Needs root, util-linux, xz-utils and mtools. The second form
# customises a root file system already unpacked or mounted at DIR (with
# the boot partition at DIR/boot/firmware, or DIR/boot on images before
# Bookworm); CI runs it against a scratch directory laid out like the image.
#
# Customising adds, and changes nothing else:
#   /var/cache/hearth/hearth_*.deb           the package, installed at first boot
#   /usr/local/sbin/hearth-firstboot         board/raspberry-pi/hearth-firstboot.sh
#   /etc/systemd/system/hearth-firstboot.service, enabled for multi-user.target
#   <boot>/hearth.txt                        settings to edit on a PC (unless present)
# The Pi installs the package natively at first boot, so no emulation of the
# board is needed here. Write OUT.img with Raspberry Pi Imager ("Use custom")
# or dd; see board/README.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

usage() { sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }
die() { echo "customise-image: $*" >&2; exit 1; }

# Customises the root file system at $1 with package $2; hearth.txt goes to
# directory $3 (default: the root's boot partition mount point).
customise_root() {
  local r=$1 deb=$2 boot=${3:-}
  if [ ! -d "$r/etc" ] || [ ! -d "$r/usr" ]; then
    die "$r does not look like a root file system (no etc/ or usr/)"
  fi
  [ "$(dpkg-deb -f "$deb" Package)" = hearth ] || die "$deb is not a hearth package"
  local arch
  arch=$(dpkg-deb -f "$deb" Architecture)
  # An image's own dpkg knows its architecture: refuse a package for another.
  if [ -f "$r/var/lib/dpkg/status" ]; then
    local native
    native=$(sed -n '/^Package: dpkg$/,/^$/s/^Architecture: //p' "$r/var/lib/dpkg/status")
    if [ -n "$native" ] && [ "$native" != "$arch" ]; then
      die "$deb is for $arch but the image's dpkg is $native"
    fi
  fi
  if [ -z "$boot" ]; then
    if [ -d "$r/boot/firmware" ]; then boot=$r/boot/firmware; else boot=$r/boot; fi
  fi
  install -d -m 0755 "$r/var/cache/hearth"
  rm -f "$r"/var/cache/hearth/hearth_*.deb
  install -m 0644 "$deb" "$r/var/cache/hearth/"
  install -D -m 0755 "$here/hearth-firstboot.sh" "$r/usr/local/sbin/hearth-firstboot"
  install -D -m 0644 "$here/hearth-firstboot.service" "$r/etc/systemd/system/hearth-firstboot.service"
  install -d -m 0755 "$r/etc/systemd/system/multi-user.target.wants"
  ln -sfn /etc/systemd/system/hearth-firstboot.service \
    "$r/etc/systemd/system/multi-user.target.wants/hearth-firstboot.service"
  install -d "$boot"
  [ -e "$boot/hearth.txt" ] || install -m 0644 "$here/hearth.txt" "$boot/hearth.txt"
  echo "customised $r: $(basename "$deb") installs at first boot"
}

# Start sector and sector count of MBR partition N (1-4) of an image.
partition() {
  local img=$1 n=$2 at=$((446 + 16 * ($2 - 1)))
  local start count
  start=$(od -An -t u4 --endian=little -j $((at + 8)) -N 4 "$img" | tr -d ' ')
  count=$(od -An -t u4 --endian=little -j $((at + 12)) -N 4 "$img" | tr -d ' ')
  if [ "${start:-0}" = 0 ] || [ "${count:-0}" = 0 ]; then
    die "$img has no partition $n in an MBR partition table"
  fi
  echo "$start $count"
}

case "${1:-}" in
  -h|--help) usage 0 ;;
  --root)
    [ $# = 3 ] || usage
    customise_root "$2" "$3"
    exit 0 ;;
esac
[ $# = 3 ] || usage
src=$1 deb=$2 out=$3
[ "$(id -u)" = 0 ] || die "loop-mounting an image needs root (sudo)"
[ -f "$src" ] || die "no image at $src"
[ -f "$deb" ] || die "no package at $deb"
[ -e "$out" ] && die "$out exists; not overwriting it"

case "$src" in
  *.xz) xz -dc "$src" >"$out" ;;
  *) cp --sparse=always "$src" "$out" ;;
esac
command -v mcopy >/dev/null || die "mcopy not found (Debian: apt install mtools)"
case "$src" in
  *.xz) xz -dc "$src" >"$out" ;;
  *) cp --sparse=always "$src" "$out" ;;
esac
mnt=$(mktemp -d)
staged=$(mktemp -d)
cleanup() {
  if mountpoint -q "$mnt"; then umount "$mnt" || true; fi
  rmdir "$mnt" 2>/dev/null || true
  rm -rf "$staged"
}
trap cleanup EXIT
read -r boot_start _ < <(partition "$out" 1)
read -r root_start root_count < <(partition "$out" 2)
# A loop device with an offset needs no partition device nodes, so this
# works in containers without udev too.
mount -o loop,offset=$((root_start * 512)),sizelimit=$((root_count * 512)) "$out" "$mnt"
free=$(df --output=avail -k "$mnt" | tail -n 1)
[ "$free" -gt $(( $(stat -c %s "$deb") / 1024 + 1024 )) ] || die "the image's root file system is full"
customise_root "$mnt" "$deb" "$staged"
umount "$mnt"
# -D s: a hearth.txt already on the boot partition is kept.
mcopy -D s -i "$out@@$((boot_start * 512))" "$staged/hearth.txt" ::hearth.txt
echo "wrote $out"

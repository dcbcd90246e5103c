#!/usr/bin/env bash
# Cross-build a release `hearth` for a single-board computer.
#
#   board/build.sh [TARGET]      (default: aarch64-unknown-linux-gnu)
#
# TARGET is one of
#   aarch64-unknown-linux-gnu       64-bit Raspberry Pi OS / Debian / Ubuntu (Pi 3, 4, 5, Zero 2 W)
#   armv7-unknown-linux-gnueabihf   32-bit Raspberry Pi OS and other ARMv7 boards
#   aarch64-unknown-linux-musl      static binary for any 64-bit ARM Linux (Alpine, OpenWrt, older glibc)
#
# Installs what is missing: the rustup target, and on Debian/Ubuntu the
# cross gcc (used as linker, see .cargo/config.toml) plus qemu-user-static,
# with which the new binary is run once (`hearth --version`) as a check.
# Prints the binary's path and size on the last line.
set -euo pipefail
cd "$(dirname "$0")/.."

target=${1:-aarch64-unknown-linux-gnu}
case "$target" in
  aarch64-unknown-linux-gnu)
    cross_gcc=aarch64-linux-gnu-gcc
    debs=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
    qemu="qemu-aarch64-static"; sysroot=/usr/aarch64-linux-gnu ;;
  armv7-unknown-linux-gnueabihf)
    cross_gcc=arm-linux-gnueabihf-gcc
    debs=(gcc-arm-linux-gnueabihf libc6-dev-armhf-cross)
    qemu="qemu-arm-static"; sysroot=/usr/arm-linux-gnueabihf ;;
  aarch64-unknown-linux-musl)
    # musl's libc and start files come with the rustup target; the glibc
    # cross gcc only drives the link and compiles blake3's C parts.
    cross_gcc=aarch64-linux-gnu-gcc
    debs=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
    qemu="qemu-aarch64-static"; sysroot= ;;
  -h|--help)
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *)
    echo "build.sh: unsupported target '$target' (see board/build.sh --help)" >&2; exit 2 ;;
esac

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! rustup target list --installed | grep -qx "$target"; then
  echo "== rustup target add $target"
  rustup target add "$target"
fi

if ! command -v "$cross_gcc" >/dev/null || ! command -v "$qemu" >/dev/null; then
  if command -v apt-get >/dev/null; then
    echo "== apt-get install ${debs[*]} qemu-user-static"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${debs[@]}" qemu-user-static >/dev/null
  elif ! command -v "$cross_gcc" >/dev/null; then
    echo "build.sh: $cross_gcc not found; install a cross toolchain for $target" >&2
    exit 1
  fi
fi

echo "== cargo build --release --target $target"
start=$SECONDS
cargo build --release --locked --target "$target"
echo "   built in $((SECONDS - start)) s"

# Ask cargo where the target directory is: honours CARGO_TARGET_DIR and
# build.target-dir without this script guessing.
target_dir=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
bin="$target_dir/$target/release/hearth"

if command -v "$qemu" >/dev/null; then
  echo "== $qemu $bin --version"
  "$qemu" ${sysroot:+-L "$sysroot"} "$bin" --version
fi

size=$(stat -c %s "$bin")
echo "$bin $size bytes ($(( (size + 1048575) / 1048576 )) MiB)"

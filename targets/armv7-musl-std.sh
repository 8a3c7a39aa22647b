#!/usr/bin/env bash
# Installs the Rust standard library for a 32-bit ARM musl target into the toolchain's sysroot,
# for machines where `rustup target add` cannot download it (this one gets a 404 from rustup's
# mirror for armv7-unknown-linux-musleabihf, and thumbv7neon-unknown-linux-musleabihf, the
# Thumb-2 build of the same boards, is a tier-3 target that rustup never ships).
#   targets/armv7-musl-std.sh [armv7-unknown-linux-musleabihf | thumbv7neon-unknown-linux-musleabihf]
#
# It does what rustup's rust-std component would: std is compiled from the rust-src component by
# the installed rustc itself (so the two always match), and the linker's start files, libc and
# unwinder go into `self-contained/`, where rustc looks for them when it links a static musl
# binary: musl 1.2 from Debian's musl-dev:armhf, crtbegin/crtend and the ARM EHABI unwinder
# (libgcc_eh, as libunwind.a) from Debian's gcc-arm-linux-gnueabihf.
#
# Afterwards `cargo build --target <that target>` works like for any other installed target.
# Idempotent: exits at once when the target's std is already there.
# Needs: rustup component rust-src, gcc-arm-linux-gnueabihf, musl-dev:armhf (.ci/run installs them).
set -euo pipefail

target=${1:-armv7-unknown-linux-musleabihf}
case $target in
  armv7-unknown-linux-musleabihf | thumbv7neon-unknown-linux-musleabihf) ;;
  *) echo "$target: not a 32-bit ARM musl target this script knows" >&2; exit 2 ;;
esac
# Cargo's and cc's per-target variable names: upper-case with underscores, lower-case with underscores.
target_var=$(echo "$target" | tr 'a-z-' 'A-Z_')
cc_var=$(echo "$target" | tr '-' '_')
sysroot=$(rustc --print sysroot)
lib="$sysroot/lib/rustlib/$target/lib"
if compgen -G "$lib/libstd-*.rlib" >/dev/null; then
  echo "$target: standard library already installed in $lib"
  exit 0
fi
if rustup target add "$target" >/dev/null 2>&1; then
  echo "$target: installed by rustup"
  exit 0
fi

musl=/usr/lib/arm-linux-musleabihf
[ -f "$musl/libc.a" ] || { echo "missing $musl/libc.a: apt-get install musl-dev:armhf (after dpkg --add-architecture armhf)" >&2; exit 1; }
gcc_dir=$(dirname "$(arm-linux-gnueabihf-gcc -print-libgcc-file-name)")
src="$sysroot/lib/rustlib/src/rust/library"
[ -d "$src" ] || { echo "missing $src: rustup component add rust-src" >&2; exit 1; }

echo "$target: building the standard library from rust-src (about a minute)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The start files must be in place before std's own probe binary links.
mkdir -p "$lib/self-contained"
cp "$musl"/{crt1.o,crti.o,crtn.o,Scrt1.o,rcrt1.o,libc.a} "$lib/self-contained/"
cp "$gcc_dir"/{crtbegin.o,crtbeginS.o,crtend.o,crtendS.o} "$lib/self-contained/"
cp "$gcc_dir/libgcc_eh.a" "$lib/self-contained/libunwind.a"

# A throwaway crate whose build compiles std; its binary proves the result links and runs.
mkdir -p "$work/probe/src"
cat >"$work/probe/Cargo.toml" <<'EOF'
[package]
name = "std-probe"
version = "0.0.0"
edition = "2021"
[workspace]
[profile.release]
debug = "line-tables-only"
EOF
echo "fn main() { println!(\"std for $target works\"); }" >"$work/probe/src/main.rs"
# As in Rust's own build of std: panic_abort itself is compiled with panic=abort, everything
# else with unwinding, so that binaries of either panic strategy link against the one std.
cat >"$work/rustc-wrapper" <<'WRAPPER'
#!/bin/sh
case " $* " in *" --crate-name panic_abort "*) exec "$@" -C panic=abort ;; esac
exec "$@"
WRAPPER
chmod +x "$work/rustc-wrapper"

# Like the released std: bitcode embedded (for LTO builds), panic=unwind (tests need it; a
# panic=abort binary links it too), position-independent code (PIE and non-PIE both link);
# the probe links statically, which thumbv7neon's target (unlike armv7's) does not default to.
(
  cd "$work/probe"
  RUSTC_BOOTSTRAP=1 RUSTC_WRAPPER="$work/rustc-wrapper" \
  CARGO_TARGET_DIR="$work/target" \
  env "CARGO_TARGET_${target_var}_LINKER=arm-linux-gnueabihf-gcc" "CC_${cc_var}=arm-linux-gnueabihf-gcc" \
  RUSTFLAGS="-C embed-bitcode=yes -C target-feature=+crt-static" \
    cargo build --release -q -Z build-std=std,test,proc_macro,panic_abort,panic_unwind --target "$target"
) || { rm -rf "$lib"; echo "$target: building std failed" >&2; exit 1; }

find "$work/target/$target/release/deps" -name 'lib*.rlib' ! -name 'libstd_probe*' -exec cp {} "$lib/" \;
echo "$target: installed $(ls "$lib"/*.rlib | wc -l) crates in $lib"
if command -v qemu-arm >/dev/null; then
  qemu-arm "$work/target/$target/release/std-probe"
fi

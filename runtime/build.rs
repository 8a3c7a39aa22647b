//! Link settings for the size-optimised board image (`cargo build --profile release-small
//! --target aarch64-unknown-linux-musl`, or a 32-bit ARM musl target): it links without unwind
//! tables.
//!
//! Why that is safe there: that profile aborts on panic (nothing ever unwinds) and strips
//! symbols (a backtrace could only print `<unknown>` frames), so the tables served nothing,
//! yet they were 1.97 MB of the 11.2 MB aarch64 binary (`.eh_frame` 1.52 MB plus its index;
//! `.ARM.exidx`/`.ARM.extab` 0.21 MB on armv7). With them gone a panic still prints its
//! message and aborts; `RUST_BACKTRACE=1` prints no frames. bench/README.md, "Binary size".
//!
//! Cargo tells a build script the profile's optimisation level but not its panic strategy
//! (`CARGO_CFG_PANIC` is the target's default), so the rule keys on what it can see: a release
//! build at opt-level "s" or "z" for a static musl target. In this workspace that is only
//! `release-small`, which inherits `panic = "abort"` from `release` (Cargo.toml); debug and
//! test builds, which unwind, keep their tables.

use std::{env, fs, path::PathBuf};

/// Added ahead of the linker's default script (`INSERT` keeps the default): every input's
/// unwind tables are dropped, except the C start files' — crtbegin.o refers to its own
/// `.eh_frame` to register it, and the link fails without it.
const NO_UNWIND_TABLES: &str = "\
SECTIONS {
  /DISCARD/ : {
    EXCLUDE_FILE(*crtbegin*.o *crtend*.o) *(.eh_frame)
    EXCLUDE_FILE(*crtbegin*.o *crtend*.o) *(.ARM.exidx*)
    EXCLUDE_FILE(*crtbegin*.o *crtend*.o) *(.ARM.extab*)
  }
} INSERT AFTER .text;
";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let var = |name: &str| env::var(name).unwrap_or_default();
    let size_optimised =
        var("PROFILE") == "release" && matches!(var("OPT_LEVEL").as_str(), "s" | "z");
    let static_musl =
        var("CARGO_CFG_TARGET_OS") == "linux" && var("CARGO_CFG_TARGET_ENV") == "musl";
    if !(size_optimised && static_musl) {
        return;
    }
    let script = PathBuf::from(var("OUT_DIR")).join("no-unwind-tables.ld");
    match fs::write(&script, NO_UNWIND_TABLES) {
        Ok(()) => println!("cargo:rustc-link-arg-bins=-Wl,-T,{}", script.display()),
        // Not fatal: the binary is only larger.
        Err(e) => println!(
            "cargo:warning=cannot write {}: {e}; linking with unwind tables",
            script.display()
        ),
    }
}

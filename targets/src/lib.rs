//! flood-targets — board profiles for the ARM devices `floodrt` is flashed onto.
//!
//! A profile names the Rust target triple the board's binary is built for and the run
//! settings that suit it: threads, memory cap, tiles per batch and numeric precision (f16
//! only where the CPU has FP16 arithmetic, ARMv8.2-A and later). `floodrt segment --profile
//! rpi5` applies one; flags given explicitly win. The profiles are compiled in from
//! `targets/boards/*.toml`, so a device needs no extra files.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

use serde::{Deserialize, Serialize};

/// The boards floodrt knows, as (name, TOML).
const BOARDS: &[(&str, &str)] = &[
    ("rpi4", include_str!("../boards/rpi4.toml")),
    ("rpi5", include_str!("../boards/rpi5.toml")),
    ("jetson-orin", include_str!("../boards/jetson-orin.toml")),
    ("armv7-512m", include_str!("../boards/armv7-512m.toml")),
];

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardProfile {
    pub name: String,
    pub description: String,
    /// Rust target triple of the board's binary.
    pub target: String,
    /// Threads for the model's matrix products.
    pub threads: usize,
    /// Memory cap, in floodrt's `--max-memory` syntax.
    pub max_memory: String,
    /// Tiles per inference call, for models whose batch is not fixed.
    pub tile_batch: usize,
    pub precision: Precision,
}

/// Arithmetic the model runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    F32,
    /// Half precision where the CPU computes it natively; ops that misbehave in f16 stay f32.
    F16,
}

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("no board profile {name:?}; known boards: {known}")]
    Unknown { name: String, known: String },
    #[error("board profile {name}: {source}")]
    Invalid {
        name: String,
        source: toml::de::Error,
    },
}

impl BoardProfile {
    /// The profile called `name`.
    pub fn named(name: &str) -> Result<BoardProfile, ProfileError> {
        let Some((_, text)) = BOARDS.iter().find(|(n, _)| *n == name) else {
            let known = BOARDS
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ");
            return Err(ProfileError::Unknown {
                name: name.into(),
                known,
            });
        };
        toml::from_str(text).map_err(|source| ProfileError::Invalid {
            name: name.into(),
            source,
        })
    }

    /// Every known profile.
    pub fn all() -> Result<Vec<BoardProfile>, ProfileError> {
        BOARDS.iter().map(|(n, _)| BoardProfile::named(n)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_board_parses_and_is_named_like_its_file() {
        for (name, _) in BOARDS {
            let p = BoardProfile::named(name).unwrap();
            assert_eq!(&p.name, name);
            assert!(p.threads >= 1 && p.tile_batch >= 1);
            assert!(p.target.contains("linux"), "{}", p.target);
        }
    }

    #[test]
    fn f16_only_where_the_cpu_has_it() {
        // ARMv8.2-A (Cortex-A76, A78AE) has FP16 arithmetic; the A72 and ARMv7 boards do not.
        for name in ["rpi5", "jetson-orin"] {
            assert_eq!(
                BoardProfile::named(name).unwrap().precision,
                Precision::F16,
                "{name}"
            );
        }
        for name in ["rpi4", "armv7-512m"] {
            assert_eq!(
                BoardProfile::named(name).unwrap().precision,
                Precision::F32,
                "{name}"
            );
        }
    }

    #[test]
    fn the_small_drone_board_is_32_bit_with_a_tight_budget() {
        let p = BoardProfile::named("armv7-512m").unwrap();
        assert_eq!(p.target, "armv7-unknown-linux-musleabihf");
        assert_eq!(p.max_memory, "256MiB");
    }

    #[test]
    fn an_unknown_board_lists_the_known_ones() {
        let err = BoardProfile::named("pi9").unwrap_err().to_string();
        assert_eq!(
            err,
            "no board profile \"pi9\"; known boards: rpi4, rpi5, jetson-orin, armv7-512m"
        );
    }
}

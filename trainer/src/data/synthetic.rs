//! Synthetic Sentinel-1 flood scenes (`flood-synth`) as training chips: the pretraining data.
//!
//! Scenes are drawn in parallel and normalised exactly like real S1Hand chips, so the same
//! crops, augmentations and batches serve both.

use serde::{Deserialize, Serialize};

use super::chips::Chip;

/// `[data.synthetic]`: train on generated scenes instead of a chip folder.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SyntheticSection {
    /// How many scenes to draw; crops are cut from them like from real chips.
    pub scenes: usize,
    /// Scene side, px (about 10 m each).
    #[serde(default = "default_size")]
    pub size: usize,
    /// Seed of the first scene; scene i is drawn from `first_seed + i`.
    #[serde(default)]
    pub first_seed: u64,
}

fn default_size() -> usize {
    256
}

/// Draws the scenes of `section` as normalised S1 chips (event `synthetic`), on all cores.
pub fn chips(section: &SyntheticSection) -> Vec<Chip> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let seeds: Vec<u64> = (0..section.scenes as u64)
        .map(|i| section.first_seed + i)
        .collect();
    let per = seeds.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = seeds
            .chunks(per)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|&s| chip(s, section.size))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            // A panic in the generator is a bug: pass it on rather than train on fewer scenes.
            .flat_map(|w| w.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

fn chip(seed: u64, size: usize) -> Chip {
    let w = flood_synth::chip(seed, size);
    Chip::from_s1_db(
        format!("synthetic_{seed}"),
        "synthetic".into(),
        size,
        size,
        &w.vv,
        &w.vh,
        w.label,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Sensor;

    #[test]
    fn scenes_become_normalised_chips_with_their_labels() {
        let section = SyntheticSection {
            scenes: 3,
            size: 64,
            first_seed: 10,
        };
        let chips = chips(&section);
        assert_eq!(chips.len(), 3);
        assert_eq!(chips[1].name, "synthetic_11");
        let w = flood_synth::chip(11, 64);
        let c = &chips[1];
        assert_eq!(c.label, w.label);
        let i = (0..64 * 64).find(|&i| w.vh[i].is_finite()).unwrap();
        let expected = (w.vh[i] - Sensor::S1.mean()[1]) / Sensor::S1.std()[1];
        assert!((c.image[64 * 64 + i] - expected).abs() < 1e-6);
    }
}

//! Synthetic Sentinel-1 flood scenes with exact labels: the pretraining data of `floodtrain
//! pretrain` and the scene of `floodrt demo`.
//!
//! ```text
//! seed ─▶ Scene (levels, rivers, flood plain, lakes, parcels, roads, town, hills, swath)
//!      ─▶ surface(x, y) ─▶ mean backscatter (dB) × correlated Gamma speckle ─▶ Window {vv, vh, label}
//! ```
//!
//! The physics is what a model can transfer to real radar: speckle as Gamma-distributed
//! intensity in linear power (4–5 looks, correlated over about 2 px), levels spanning the
//! Sen1Floods11 events with per-scene gain and an incidence ramp, shapes that look like floods
//! (meandering rivers, plains flooded up to a level of low ground, lakes), and the look-alikes
//! that fool a threshold: wind-roughened water and flooded forest (water, but bright), sand,
//! roads and radar shadow (dark, but dry), bright town; no-data swath edges. Every pixel is a
//! pure function of the scene (seed and size) and its (x, y), so a scene of any size renders
//! window by window in bounded memory and is the same on every machine.

mod noise;
mod render;
mod scene;

pub use render::Window;
pub use scene::{Levels, Scene, Surface};

/// Renders a whole scene of `size`² pixels drawn from `seed`.
pub fn chip(seed: u64, size: usize) -> Window {
    Scene::new(seed, size, size).render(0, 0, size, size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scene_is_the_same_every_time_and_windows_join_seamlessly() {
        let scene = Scene::new(11, 128, 128);
        let whole = scene.render(0, 0, 64, 64);
        let again = Scene::new(11, 128, 128).render(0, 0, 64, 64);
        assert_eq!(
            whole.vv.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            again.vv.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        let part = scene.render(16, 8, 32, 40);
        for r in 0..32 {
            for c in 0..40 {
                let (a, b) = (part.vh[r * 40 + c], whole.vh[(r + 8) * 64 + c + 16]);
                assert!(a.to_bits() == b.to_bits(), "({r}, {c}): {a} vs {b}");
                assert_eq!(part.label[r * 40 + c], whole.label[(r + 8) * 64 + c + 16]);
            }
        }
    }

    #[test]
    fn labels_are_exactly_the_water_surfaces() {
        let scene = Scene::new(5, 96, 96);
        let w = scene.render(0, 0, 96, 96);
        for y in 0..96 {
            for x in 0..96 {
                let s = scene.surface(x, y);
                let l = w.label[(y * 96 + x) as usize];
                match s {
                    Surface::NoData => assert!(l == -1 && w.vv[(y * 96 + x) as usize].is_nan()),
                    s => assert_eq!(l, s.is_water() as i8),
                }
            }
        }
        assert_eq!(scene.labels(0, 0, 96, 96), w.label);
    }

    /// On one surface, the linear intensity has unit mean (relative to the surface's level),
    /// an equivalent number of looks near the scene's looks, and neighbour correlation ≈ 0.67.
    #[test]
    fn speckle_is_gamma_with_the_scenes_looks_and_correlated_over_two_pixels() {
        let scene = Scene::new(3, 200, 200);
        let s = scene.speckle(0, 0, 0, 200, 200);
        let n = s.len() as f64;
        let mean = s.iter().sum::<f64>() / n;
        let var = s.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        let enl = mean * mean / var;
        assert!((mean - 1.0).abs() < 0.03, "mean {mean}");
        assert!(
            (enl - scene.looks as f64).abs() < 0.6,
            "ENL {enl} vs {} looks",
            scene.looks
        );
        let lag = |k: usize| {
            let mut acc = 0.0;
            for r in 0..200 {
                for c in 0..200 - k {
                    acc += (s[r * 200 + c] - mean) * (s[r * 200 + c + k] - mean);
                }
            }
            acc / (200.0 * (200 - k) as f64) / var
        };
        let (l1, l2, l4) = (lag(1), lag(2), lag(4));
        assert!((0.58..0.76).contains(&l1), "lag-1 correlation {l1}");
        assert!((0.12..0.32).contains(&l2), "lag-2 correlation {l2}");
        assert!(l4.abs() < 0.05, "lag-4 correlation {l4}");
    }

    /// Across many scenes: dry, partly and mostly flooded chips, each look-alike, no-data edges.
    #[test]
    fn scenes_span_dry_to_flooded_with_look_alikes() {
        let mut shares = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut with_nodata = 0;
        for seed in 0..120u64 {
            let scene = Scene::new(seed, 256, 256);
            let mut water = 0usize;
            let mut labelled = 0usize;
            for y in (0..256).step_by(2) {
                for x in (0..256).step_by(2) {
                    let s = scene.surface(x, y);
                    seen.insert(std::mem::discriminant(&s));
                    if s != Surface::NoData {
                        labelled += 1;
                        water += s.is_water() as usize;
                    }
                }
            }
            with_nodata += (labelled < 128 * 128) as usize;
            shares.push(water as f64 / labelled.max(1) as f64);
        }
        let dry = shares.iter().filter(|&&s| s < 0.01).count();
        let mid = shares.iter().filter(|&&s| (0.1..0.6).contains(&s)).count();
        let wet = shares.iter().filter(|&&s| s > 0.6).count();
        assert!(
            dry >= 10 && mid >= 20 && wet >= 5,
            "dry {dry} mid {mid} wet {wet}"
        );
        assert!(
            (10..60).contains(&with_nodata),
            "{with_nodata} scenes with no data"
        );
        // Every surface type occurs somewhere (12 variants).
        assert_eq!(seen.len(), 12, "surfaces seen: {}", seen.len());
    }

    #[test]
    fn water_is_darker_than_land_in_vh_by_the_levels_of_real_events() {
        let (mut w, mut l) = (Vec::new(), Vec::new());
        for seed in 0..30 {
            let c = chip(seed, 128);
            for i in 0..c.vh.len() {
                match c.label[i] {
                    1 => w.push(c.vh[i] as f64),
                    0 => l.push(c.vh[i] as f64),
                    _ => {}
                }
            }
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let (mw, ml) = (mean(&w), mean(&l));
        // Sen1Floods11 (shared chips, measured): water VH −21…−28 dB, land −14…−18 dB.
        assert!((-28.0..-21.0).contains(&mw), "water VH {mw}");
        assert!((-18.5..-13.0).contains(&ml), "land VH {ml}");
    }
}

//! The health check a device runs before it activates an adapter: the merged model, fed a
//! canonical input, must give finite outputs close to what the trainer computed on the same
//! input and signed into the adapter.
//!
//! Close, not bit-equal: the trainer (burn) and the device (tract, another CPU, perhaps int8
//! weights) add in different orders, so a digest of raw floats would refuse good adapters.
//! The check compares means over 8×8-pixel blocks of every output channel with a tolerance
//! the trainer chooses for the base's weight encoding.

use serde::{Deserialize, Serialize};

/// Side of the square blocks the output is averaged over.
pub const BLOCK_PX: usize = 8;

/// What the trainer expects the merged model to output on [`canonical_input`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Expected {
    pub batch: u32,
    pub channels: u32,
    pub tile_px: u32,
    /// [`block_means`] of the trainer's output.
    pub block_means: Vec<f32>,
    /// Largest accepted |device − trainer| of any block mean.
    pub tolerance: f32,
}

/// Why a model failed its health check.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum HealthError {
    #[error("the model outputs {0} non-finite values on the health-check input")]
    NotFinite(usize),
    #[error("the output has {found} values, the health check expects {expected} ({batch}×{channels}×{tile}²)")]
    Shape {
        found: usize,
        expected: usize,
        batch: u32,
        channels: u32,
        tile: u32,
    },
    #[error("the output differs from the trainer's by {diff} (tolerance {tolerance}) on the health-check input; the merge or the model is broken")]
    Mismatch { diff: f32, tolerance: f32 },
}

/// A smooth, deterministic input in normalised units (about ±2), different per tile and band.
/// Row-major `[batch, bands, tile_px, tile_px]`.
pub fn canonical_input(batch: usize, bands: usize, tile_px: usize) -> Vec<f32> {
    let mut values = Vec::with_capacity(batch * bands * tile_px * tile_px);
    for b in 0..batch {
        for c in 0..bands {
            let phase = (b * bands + c) as f32;
            for y in 0..tile_px {
                for x in 0..tile_px {
                    let (fx, fy) = (x as f32 / tile_px as f32, y as f32 / tile_px as f32);
                    values.push(
                        2.0 * (6.0 * fx + 4.0 * fy * fy + phase).sin() * (3.0 * fy - phase).cos(),
                    );
                }
            }
        }
    }
    values
}

/// Means over [`BLOCK_PX`]² blocks of a row-major `[batch, channels, tile_px, tile_px]` output.
pub fn block_means(output: &[f32], batch: usize, channels: usize, tile_px: usize) -> Vec<f32> {
    let blocks = tile_px / BLOCK_PX;
    let mut means = vec![0f32; batch * channels * blocks * blocks];
    for (plane, pixels) in output.chunks_exact(tile_px * tile_px).enumerate() {
        for (y, row) in pixels
            .chunks_exact(tile_px)
            .enumerate()
            .take(blocks * BLOCK_PX)
        {
            for (x, v) in row.iter().enumerate().take(blocks * BLOCK_PX) {
                means[(plane * blocks + y / BLOCK_PX) * blocks + x / BLOCK_PX] += v;
            }
        }
    }
    let area = (BLOCK_PX * BLOCK_PX) as f32;
    means.iter_mut().for_each(|m| *m /= area);
    means
}

impl Expected {
    /// What `output` (the trainer's, on the canonical input) says, with `tolerance`.
    pub fn from_output(
        output: &[f32],
        batch: usize,
        channels: usize,
        tile_px: usize,
        tolerance: f32,
    ) -> Expected {
        Expected {
            batch: batch as u32,
            channels: channels as u32,
            tile_px: tile_px as u32,
            block_means: block_means(output, batch, channels, tile_px),
            tolerance,
        }
    }

    /// Checks the device's output on the canonical input; returns the largest difference.
    pub fn check(&self, output: &[f32]) -> Result<f32, HealthError> {
        let (batch, channels, tile) = (
            self.batch as usize,
            self.channels as usize,
            self.tile_px as usize,
        );
        let expected = batch * channels * tile * tile;
        if output.len() != expected {
            return Err(HealthError::Shape {
                found: output.len(),
                expected,
                batch: self.batch,
                channels: self.channels,
                tile: self.tile_px,
            });
        }
        let bad = output.iter().filter(|v| !v.is_finite()).count();
        if bad > 0 {
            return Err(HealthError::NotFinite(bad));
        }
        let means = block_means(output, batch, channels, tile);
        let diff = means
            .iter()
            .zip(&self.block_means)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        // A list of the wrong length (a malformed adapter) never matches.
        if means.len() != self.block_means.len() || !(diff <= self.tolerance) {
            return Err(HealthError::Mismatch {
                diff,
                tolerance: self.tolerance,
            });
        }
        Ok(diff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_means_average_each_block_of_each_plane() {
        // 1 tile, 2 channels, 16 px: channel 0 is the column index, channel 1 all 3.
        let mut out: Vec<f32> = (0..256).map(|i| (i % 16) as f32).collect();
        out.extend(std::iter::repeat_n(3.0, 256));
        let means = block_means(&out, 1, 2, 16);
        assert_eq!(means, [3.5, 11.5, 3.5, 11.5, 3.0, 3.0, 3.0, 3.0]);
    }

    #[test]
    fn the_check_accepts_small_differences_and_refuses_the_rest() {
        let input = canonical_input(2, 1, 16);
        assert!(input.iter().all(|v| v.is_finite() && v.abs() <= 2.0));
        let expected = Expected::from_output(&input, 2, 1, 16, 1e-3);
        let mut output = input.clone();
        output[5] += 0.01; // one pixel: its block mean moves by 0.01/64
        let diff = expected.check(&output).unwrap();
        assert!((diff - 0.01 / 64.0).abs() < 1e-6, "{diff}");
        output[5] += 1.0;
        assert!(matches!(
            expected.check(&output),
            Err(HealthError::Mismatch { .. })
        ));
        output[5] = f32::NAN;
        assert_eq!(expected.check(&output), Err(HealthError::NotFinite(1)));
        assert!(matches!(
            expected.check(&output[1..]),
            Err(HealthError::Shape { .. })
        ));
    }
}

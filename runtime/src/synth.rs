//! A synthetic Sentinel-1-like scene for `floodrt demo` and the scale benchmarks: VV and VH
//! backscatter in dB over textured land, a meandering river with a tributary, a flood plain
//! where low ground beside the river is under water, multiplicative speckle, and a no-data
//! wedge like the edge of a radar swath. Every pixel is a pure function of (seed, x, y), so
//! the scene is written tile by tile in bounded memory and is the same on every machine.
//!
//! Levels (dB) are typical of C-band GRD: land VV −9, VH −16; open water VV −21, VH −28.
//! Speckle is 4-look gamma, as in multi-looked GRD products.

use std::path::Path;

use anyhow::Context;
use geotiff_writer::{Compression, GeoTiffBuilder};
use ndarray::Array3;

/// Pixel size of Sen1Floods11 chips, about 10 m, in degrees.
pub const PIXEL_DEG: f64 = 8.983e-5;
const TILE: usize = 256;
const LOOKS: u32 = 4;

#[derive(Clone, Copy, Debug)]
pub struct SynthScene {
    pub size: usize,
    pub seed: u64,
    /// North-west corner (lon, lat) in EPSG:4326.
    pub origin: (f64, f64),
}

impl SynthScene {
    pub fn new(size: usize, seed: u64) -> SynthScene {
        SynthScene {
            size,
            seed,
            origin: (6.0, 49.8),
        }
    }

    /// Whether (x, y) is water in the ground truth the scene was drawn from.
    pub fn is_water(&self, x: usize, y: usize) -> bool {
        let n = self.size as f64;
        let (u, v) = (x as f64 / n, y as f64 / n);
        let river = river_distance(u, v);
        let tributary =
            ((u - 0.3 - 0.05 * (9.0 * v).sin()).abs()).max(if v < 0.5 { 0.0 } else { 1.0 });
        let channel = river < 0.012 || tributary < 0.006;
        // Ground rises away from the river with gentle undulation; the flood fills the low parts.
        let ground = river * 6.0 + 0.08 * (7.0 * u + 3.0).sin() * (5.0 * v + 1.0).cos();
        channel || (ground < 0.16 && u > 0.45)
    }

    /// Outside the swath: a wedge in the north-west corner.
    pub fn is_nodata(&self, x: usize, y: usize) -> bool {
        x + y < self.size / 8
    }

    /// (VV, VH) in dB at (x, y); NaN outside the swath.
    pub fn pixel(&self, x: usize, y: usize) -> (f32, f32) {
        if self.is_nodata(x, y) {
            return (f32::NAN, f32::NAN);
        }
        let n = self.size as f64;
        let (u, v) = (x as f64 / n, y as f64 / n);
        let texture = 1.5 * ((23.0 * u).sin() * (17.0 * v).cos()) as f32;
        let (vv, vh) = if self.is_water(x, y) {
            (-21.0, -28.0)
        } else {
            (-9.0 + texture, -16.0 + texture)
        };
        let h = hash(self.seed, x as u64, y as u64);
        (vv + speckle_db(h), vh + speckle_db(hash(h, 1, 2)))
    }

    /// Writes the scene as a 2-band float32 tiled, deflated GeoTIFF, one tile at a time.
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let n = self.size;
        let builder = GeoTiffBuilder::new(n as u32, n as u32)
            .bands(2)
            .compression(Compression::Deflate)
            .tile_size(TILE as u32, TILE as u32)
            .epsg(4326)
            .pixel_scale(PIXEL_DEG, PIXEL_DEG)
            .origin(self.origin.0, self.origin.1)
            .nodata("nan");
        let file = std::fs::File::create(path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        let mut writer = builder.tile_writer::<f32, _>(std::io::BufWriter::new(file))?;
        for ty in (0..n).step_by(TILE) {
            for tx in (0..n).step_by(TILE) {
                let (rows, cols) = (TILE.min(n - ty), TILE.min(n - tx));
                let mut tile = Array3::<f32>::zeros((rows, cols, 2));
                for r in 0..rows {
                    for c in 0..cols {
                        let (vv, vh) = self.pixel(tx + c, ty + r);
                        tile[[r, c, 0]] = vv;
                        tile[[r, c, 1]] = vh;
                    }
                }
                writer.write_tile_3d(tx, ty, &tile.view())?;
            }
        }
        writer
            .finish()
            .with_context(|| format!("finishing {}", path.display()))?;
        Ok(())
    }
}

/// Distance (in scene units) from (u, v) to the main river's meandering centre line.
fn river_distance(u: f64, v: f64) -> f64 {
    let centre = 0.55 + 0.12 * (6.0 * v + 0.5).sin() + 0.04 * (17.0 * v).sin();
    (u - centre).abs()
}

/// Speckle in dB: 10·log10 of a unit-mean gamma variate with `LOOKS` looks.
fn speckle_db(mut h: u64) -> f32 {
    let mut sum = 0.0f64;
    for _ in 0..LOOKS {
        h = splitmix(h);
        let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        sum -= u.ln();
    }
    (10.0 * (sum / LOOKS as f64).log10()) as f32
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn hash(seed: u64, x: u64, y: u64) -> u64 {
    splitmix(splitmix(seed ^ x.wrapping_mul(0x1000_0000_01B3)) ^ y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speckle_has_unit_mean_in_linear_power() {
        let mean: f64 = (0..20_000u64)
            .map(|i| 10f64.powf(speckle_db(splitmix(i)) as f64 / 10.0))
            .sum::<f64>()
            / 20_000.0;
        assert!((mean - 1.0).abs() < 0.02, "{mean}");
    }

    #[test]
    fn the_scene_has_water_land_and_a_no_data_wedge() {
        let s = SynthScene::new(512, 7);
        let water = (0..512)
            .flat_map(|y| (0..512).map(move |x| (x, y)))
            .filter(|&(x, y)| s.is_water(x, y))
            .count();
        let share = water as f64 / (512.0 * 512.0);
        assert!(share > 0.05 && share < 0.6, "{share}");
        assert!(s.pixel(0, 0).0.is_nan());
        assert_eq!(s.pixel(300, 300), SynthScene::new(512, 7).pixel(300, 300));
    }
}

//! The synthetic Sentinel-1 scene of `floodrt demo` and the scale benchmarks, drawn by
//! `flood-synth` (the generator the trainer pretrains on) and written as a georeferenced
//! GeoTIFF one tile at a time: every pixel is a pure function of the scene and its (x, y), so
//! memory stays bounded whatever the scene's size.

use std::path::Path;

use anyhow::Context;
use flood_synth::Scene;
use geotiff_writer::{Compression, GeoTiffBuilder};
use ndarray::Array3;

/// Pixel size of Sen1Floods11 chips, about 10 m, in degrees.
pub const PIXEL_DEG: f64 = 8.983e-5;
const TILE: usize = 256;

#[derive(Clone, Debug)]
pub struct SynthScene {
    pub scene: Scene,
    /// North-west corner (lon, lat) in EPSG:4326.
    pub origin: (f64, f64),
}

impl SynthScene {
    pub fn new(size: usize, seed: u64) -> SynthScene {
        SynthScene {
            scene: Scene::new(seed, size, size),
            origin: (6.0, 49.8),
        }
    }

    /// Writes the scene as a 2-band (VV, VH dB) float32 tiled, deflated GeoTIFF, NaN outside
    /// the swath.
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let (rows, cols) = (self.scene.rows, self.scene.cols);
        let builder = GeoTiffBuilder::new(cols as u32, rows as u32)
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
        for ty in (0..rows).step_by(TILE) {
            for tx in (0..cols).step_by(TILE) {
                let (h, w) = (TILE.min(rows - ty), TILE.min(cols - tx));
                let window = self.scene.render(tx as i64, ty as i64, h, w);
                let mut tile = Array3::<f32>::zeros((h, w, 2));
                for r in 0..h {
                    for c in 0..w {
                        tile[[r, c, 0]] = window.vv[r * w + c];
                        tile[[r, c, 1]] = window.vh[r * w + c];
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

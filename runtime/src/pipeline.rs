//! Pipeline: scene ──▶ tiles ──▶ engine ──▶ blend ──▶ sinks, one batch of tiles at a time.
//! Memory is bounded by the batch and about one tile-height of scene width, whatever the
//! scene's size.

use std::time::Instant;

use anyhow::Context;
use flood_models::{Manifest, Units};
use indicatif::ProgressBar;

use crate::area::PixelArea;
use crate::blend::{Blender, FinishedRow};
use crate::engine::Engine;
use crate::scene::{Scene, Window};
use crate::sink::{MaskRow, RowSink, NODATA};
use crate::tiles::{Tile, TileGrid};

#[derive(Clone, Debug)]
pub struct SegmentConfig {
    pub overlap_px: usize,
    pub scene_units: Units,
    pub threshold: f32,
}

/// Counts gathered while the rows stream past.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Stats {
    pub width: usize,
    pub height: usize,
    pub tiles: usize,
    pub batches: usize,
    pub water_pixels: u64,
    pub land_pixels: u64,
    pub nodata_pixels: u64,
    /// None when the scene has no usable georeferencing.
    pub water_area_km2: Option<f64>,
    pub valid_area_km2: Option<f64>,
    pub seconds: f64,
    pub model_seconds: f64,
}

impl Stats {
    pub fn water_fraction(&self) -> f64 {
        let valid = self.water_pixels + self.land_pixels;
        if valid == 0 {
            0.0
        } else {
            self.water_pixels as f64 / valid as f64
        }
    }

    pub fn nodata_fraction(&self) -> f64 {
        self.nodata_pixels as f64 / (self.width * self.height).max(1) as f64
    }
}

pub fn segment(
    scene: &Scene,
    engine: &Engine,
    manifest: &Manifest,
    cfg: &SegmentConfig,
    sinks: &mut [Box<dyn RowSink + '_>],
    progress: &ProgressBar,
) -> anyhow::Result<Stats> {
    let started = Instant::now();
    let tile_px = engine.config.tile_px;
    let batch = engine.config.batch;
    let grid = TileGrid::new(scene.width(), scene.height(), tile_px, cfg.overlap_px)?;
    let tiles: Vec<Tile> = grid.tiles().collect();
    let mut blender = Blender::new(&grid);
    let area = PixelArea::of(scene);
    let mut stats = Stats {
        width: scene.width(),
        height: scene.height(),
        tiles: tiles.len(),
        ..Stats::default()
    };
    let (mut water_m2, mut valid_m2) = (0f64, 0f64);
    progress.set_length(tiles.len() as u64);

    let bands = manifest.band_count();
    let plane = tile_px * tile_px;
    for (b, chunk) in tiles.chunks(batch).enumerate() {
        let mut input = vec![0f32; batch * bands * plane];
        let mut windows = Vec::with_capacity(chunk.len());
        for (slot, tile) in chunk.iter().enumerate() {
            let window = scene
                .read_window(tile.y, tile.x, tile.rows, tile.cols)
                .with_context(|| format!("reading {tile}"))?;
            fill_input(
                &mut input[slot * bands * plane..(slot + 1) * bands * plane],
                &window,
                manifest,
                cfg.scene_units,
                tile_px,
            );
            windows.push(window);
        }
        let model_started = Instant::now();
        let probability = engine.run(input).with_context(|| {
            format!(
                "running the model on batch {b} ({} tiles from {})",
                chunk.len(),
                chunk[0]
            )
        })?;
        stats.model_seconds += model_started.elapsed().as_secs_f64();
        stats.batches += 1;
        for (slot, (tile, window)) in chunk.iter().zip(&windows).enumerate() {
            let p = &probability[slot * plane..(slot + 1) * plane];
            let cropped: Vec<f32> = (0..tile.rows)
                .flat_map(|r| p[r * tile_px..r * tile_px + tile.cols].iter().copied())
                .collect();
            blender.add(&grid, tile, &cropped, |r, c| window.is_valid(r, c));
        }
        progress.inc(chunk.len() as u64);
        let done = b * batch + chunk.len();
        let upto = tiles
            .get(done)
            .map_or(scene.height(), |next| grid.row_start(next.grid_row));
        for row in blender.take_finished(upto) {
            let m2 = area.row_m2(row.y);
            let (water, land) = emit_row(&row, cfg.threshold, sinks)?;
            stats.water_pixels += water;
            stats.land_pixels += land;
            stats.nodata_pixels += scene.width() as u64 - water - land;
            if let Some(m2) = m2 {
                water_m2 += water as f64 * m2;
                valid_m2 += (water + land) as f64 * m2;
            }
        }
    }
    if !matches!(area, PixelArea::Unknown) {
        stats.water_area_km2 = Some(water_m2 / 1e6);
        stats.valid_area_km2 = Some(valid_m2 / 1e6);
    }
    stats.seconds = started.elapsed().as_secs_f64();
    Ok(stats)
}

/// Thresholds a finished row into the mask, hands it to every sink, returns (water, land) counts.
fn emit_row(
    row: &FinishedRow,
    threshold: f32,
    sinks: &mut [Box<dyn RowSink + '_>],
) -> anyhow::Result<(u64, u64)> {
    let mask: Vec<u8> = row
        .probability
        .iter()
        .map(|&p| {
            if p.is_nan() {
                NODATA
            } else {
                (p > threshold) as u8
            }
        })
        .collect();
    let water = mask.iter().filter(|&&m| m == 1).count() as u64;
    let land = mask.iter().filter(|&&m| m == 0).count() as u64;
    let out = MaskRow {
        y: row.y,
        probability: &row.probability,
        mask: &mask,
    };
    for sink in sinks.iter_mut() {
        sink.write_row(&out)?;
    }
    Ok((water, land))
}

/// Writes one tile into its `bands × tile_px × tile_px` slot of the batch, preprocessed as the
/// manifest says. A window smaller than the tile (a scene smaller than one tile) is mirrored
/// into the rest, which keeps the model's view of the edge natural rather than a black wall.
pub fn fill_input(
    slot: &mut [f32],
    window: &Window,
    manifest: &Manifest,
    units: Units,
    tile_px: usize,
) {
    let plane = tile_px * tile_px;
    for b in 0..window.bands.min(manifest.band_count()) {
        let src = window.band(b);
        let dst = &mut slot[b * plane..(b + 1) * plane];
        for r in 0..tile_px {
            let sr = mirror(r, window.rows);
            for c in 0..tile_px {
                let sc = mirror(c, window.cols);
                dst[r * tile_px + c] =
                    manifest
                        .preprocess
                        .apply(b, src[sr * window.cols + sc], units);
            }
        }
    }
}

/// Index `i` reflected into `0..n` (… 2 1 0 1 2 … n-2 n-1 n-2 …).
fn mirror(i: usize, n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    let period = 2 * (n - 1);
    let k = i % period;
    if k < n {
        k
    } else {
        period - k
    }
}

#[cfg(test)]
mod tests {
    use super::mirror;

    #[test]
    fn mirror_reflects_without_repeating_the_edge() {
        let got: Vec<_> = (0..8).map(|i| mirror(i, 3)).collect();
        assert_eq!(got, [0, 1, 2, 1, 0, 1, 2, 1]);
        assert_eq!(mirror(5, 1), 0);
    }
}

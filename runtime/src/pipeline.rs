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
use crate::reference::{FloodStats, ReferenceWater};
use crate::scene::{Scene, Window};
use crate::sink::{MaskRow, RowSink, NODATA};
use crate::tiles::{Stripe, TileGrid};

#[derive(Clone, Debug)]
pub struct SegmentConfig {
    pub overlap_px: usize,
    /// Columns owned by one vertical stripe; a multiple of 256 (see [`default_stripe_px`]).
    pub stripe_px: usize,
    pub threshold: f32,
    /// Hand the allocator's free pages back to the system after every engine call, so that
    /// a memory budget planned from one measured call holds over thousands (see
    /// [`crate::allocator::release_free_memory`]).
    pub release_memory: bool,
}

/// Counts gathered while the rows stream past.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Stats {
    pub width: usize,
    pub height: usize,
    /// Tiles in the grid.
    pub tiles: usize,
    /// Tiles run, counting the ones on stripe borders that run in both stripes.
    pub tiles_run: usize,
    pub batches: usize,
    pub water_pixels: u64,
    pub land_pixels: u64,
    pub nodata_pixels: u64,
    /// None when the scene has no usable georeferencing.
    pub water_area_km2: Option<f64>,
    pub valid_area_km2: Option<f64>,
    pub seconds: f64,
    pub model_seconds: f64,
    /// Water split into flood and permanent water, for runs with reference water.
    pub flood: Option<FloodStats>,
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

/// The JSON report of a finished run: what ran, on what, what it found, what it cost.
pub fn scene_report(
    input: &crate::scene::SceneInput,
    scene: &Scene,
    prepared: &crate::model::PreparedModel,
    cfg: &SegmentConfig,
    stats: &Stats,
    plan: &crate::budget::MemoryPlan,
    outputs: serde_json::Value,
) -> serde_json::Value {
    serde_json::json!({
        "scene": input.path().display().to_string(),
        "scene_files": input.paths(),
        "radar_units": scene.units().iter().map(|(file, units, source)| serde_json::json!({ "file": file, "units": units, "source": source })).collect::<Vec<_>>(),
        "model": { "name": prepared.manifest.name, "source": prepared.file.source, "sha256": prepared.file.digest.to_hex() },
        "adapter": &prepared.adapter,
        "crs_epsg": scene.epsg(),
        "tile_px": prepared.engine.config.tile_px,
        "overlap_px": cfg.overlap_px,
        "batch": prepared.engine.config.batch,
        "engine": prepared.engine.runtime_name(),
        "threads": prepared.engine.config.threads,
        "tile_workers": prepared.engine.workers(),
        "stats": stats,
        "water_fraction": stats.water_fraction(),
        "nodata_fraction": stats.nodata_fraction(),
        "peak_rss_mib": crate::budget::peak_rss_bytes().map(|b| b as f64 / 1048576.0),
        "memory_plan": plan,
        "max_memory_bytes": prepared.budget,
        "outputs": outputs,
    })
}

pub fn segment(
    scene: &Scene,
    engine: &Engine,
    manifest: &Manifest,
    cfg: &SegmentConfig,
    reference: Option<&ReferenceWater>,
    sinks: &mut [Box<dyn RowSink + '_>],
    progress: &ProgressBar,
) -> anyhow::Result<Stats> {
    let reference = reference.filter(|r| !r.is_empty());
    let started = Instant::now();
    let grid = TileGrid::new(
        scene.width(),
        scene.height(),
        engine.config.tile_px,
        cfg.overlap_px,
    )?;
    let stripes = grid.stripes(cfg.stripe_px);
    let mut run = Run {
        scene,
        engine,
        manifest,
        cfg,
        grid: &grid,
        area: PixelArea::of(scene),
        stats: Stats {
            width: scene.width(),
            height: scene.height(),
            tiles: grid.len(),
            flood: reference.map(|_| FloodStats::default()),
            ..Stats::default()
        },
        reference,
        water_m2: 0.0,
        valid_m2: 0.0,
        flood_m2: 0.0,
        permanent_m2: 0.0,
    };
    progress.set_length(stripes.iter().map(|s| s.tiles.len() as u64).sum());
    for stripe in &stripes {
        for sink in sinks.iter_mut() {
            sink.begin_stripe(stripe.x0, stripe.x1)?;
        }
        run.stripe(stripe, sinks, progress)?;
    }
    let mut stats = run.stats;
    if !matches!(run.area, PixelArea::Unknown) {
        stats.water_area_km2 = Some(run.water_m2 / 1e6);
        stats.valid_area_km2 = Some(run.valid_m2 / 1e6);
        if let Some(flood) = &mut stats.flood {
            flood.flood_area_km2 = Some(run.flood_m2 / 1e6);
            flood.permanent_water_area_km2 = Some(run.permanent_m2 / 1e6);
        }
    }
    stats.seconds = started.elapsed().as_secs_f64();
    Ok(stats)
}

/// Stripe width used when the caller has no reason to choose: wide enough that few tiles run
/// twice, narrow enough that row buffers stay a few tens of MiB.
pub fn default_stripe_px(tile_px: usize) -> usize {
    (4096usize).max(8 * tile_px).next_multiple_of(256)
}

/// State of one segmentation run across its stripes.
struct Run<'a> {
    scene: &'a Scene,
    engine: &'a Engine,
    manifest: &'a Manifest,
    cfg: &'a SegmentConfig,
    grid: &'a TileGrid,
    area: PixelArea,
    stats: Stats,
    reference: Option<&'a ReferenceWater>,
    water_m2: f64,
    valid_m2: f64,
    flood_m2: f64,
    permanent_m2: f64,
}

impl Run<'_> {
    /// Runs a stripe's tiles in batches, blending them and emitting rows as they finish.
    fn stripe(
        &mut self,
        stripe: &Stripe,
        sinks: &mut [Box<dyn RowSink + '_>],
        progress: &ProgressBar,
    ) -> anyhow::Result<()> {
        let (tile_px, batch) = (self.engine.config.tile_px, self.engine.config.batch);
        let bands = self.manifest.band_count();
        let plane = tile_px * tile_px;
        let mut blender = Blender::new(stripe.span_x0, stripe.span_x1);
        for (b, chunk) in stripe.tiles.chunks(batch).enumerate() {
            let mut input = vec![0f32; batch * bands * plane];
            let mut windows = Vec::with_capacity(chunk.len());
            for (slot, tile) in chunk.iter().enumerate() {
                let window = self
                    .scene
                    .read_window(tile.y, tile.x, tile.rows, tile.cols)
                    .with_context(|| format!("reading {tile}"))?;
                let slot_input = &mut input[slot * bands * plane..(slot + 1) * bands * plane];
                // The scene delivers radar bands in dB, whatever the files hold.
                fill_input(slot_input, &window, self.manifest, Units::Db, tile_px);
                windows.push(window);
            }
            let model_started = Instant::now();
            let probability = self.engine.run(input).with_context(|| {
                format!(
                    "running the model on a batch of {} tiles from {}",
                    chunk.len(),
                    chunk[0]
                )
            })?;
            if self.cfg.release_memory {
                crate::allocator::release_free_memory();
            }
            self.stats.model_seconds += model_started.elapsed().as_secs_f64();
            self.stats.batches += 1;
            self.stats.tiles_run += chunk.len();
            for (slot, (tile, window)) in chunk.iter().zip(&windows).enumerate() {
                let p = &probability[slot * plane..(slot + 1) * plane];
                let cropped: Vec<f32> = (0..tile.rows)
                    .flat_map(|r| p[r * tile_px..r * tile_px + tile.cols].iter().copied())
                    .collect();
                blender.add(self.grid, tile, &cropped, |r, c| window.is_valid(r, c));
            }
            progress.inc(chunk.len() as u64);
            let done = b * batch + chunk.len();
            let upto = stripe.tiles.get(done).map_or(self.scene.height(), |next| {
                self.grid.row_start(next.grid_row)
            });
            for row in blender.take_finished(upto) {
                self.emit(&row, stripe, sinks)?;
            }
        }
        Ok(())
    }

    /// Thresholds the stripe's own columns of a finished row into the mask (split into flood
    /// and permanent water when there is reference water), hands them to every sink, and
    /// counts them.
    fn emit(
        &mut self,
        row: &FinishedRow,
        stripe: &Stripe,
        sinks: &mut [Box<dyn RowSink + '_>],
    ) -> anyhow::Result<()> {
        let probability = &row.probability[stripe.x0 - row.x0..stripe.x1 - row.x0];
        let threshold = self.cfg.threshold;
        let mut mask: Vec<u8> = probability
            .iter()
            .map(|&p| {
                if p.is_nan() {
                    NODATA
                } else {
                    (p > threshold) as u8
                }
            })
            .collect();
        let land = mask.iter().filter(|&&m| m == 0).count() as u64;
        let nodata = mask.iter().filter(|&&m| m == NODATA).count() as u64;
        let water = mask.len() as u64 - land - nodata;
        let mut split = (0, 0);
        if let (Some(reference), Some(flood)) = (self.reference, &mut self.stats.flood) {
            split = reference
                .classify(row.y, stripe.x0, &mut mask, flood)
                .context("reading the reference water")?;
        }
        let out = MaskRow {
            y: row.y,
            x0: stripe.x0,
            probability,
            mask: &mask,
        };
        for sink in sinks.iter_mut() {
            sink.write_row(&out)?;
        }
        self.stats.water_pixels += water;
        self.stats.land_pixels += land;
        self.stats.nodata_pixels += nodata;
        if let Some(m2) = self.area.row_m2(row.y) {
            self.water_m2 += water as f64 * m2;
            self.valid_m2 += (water + land) as f64 * m2;
            self.flood_m2 += split.0 as f64 * m2;
            self.permanent_m2 += split.1 as f64 * m2;
        }
        Ok(())
    }
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

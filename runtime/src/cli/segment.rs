//! `floodrt segment`: one scene in, a georeferenced water mask (and optional probability,
//! polygons and report) out.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use super::{progress_bar, ModelArgs};
use crate::budget::peak_rss_bytes;
use crate::pipeline::{segment, SegmentConfig, Stats};
use crate::sink::geojson::GeoJsonSink;
use crate::sink::geotiff::{GeoTiffSink, Layer};
use crate::sink::RowSink;

/// Map water in a scene: GeoTIFF mask, probability raster, GeoJSON polygons, flooded km².
#[derive(Args, Debug)]
pub struct SegmentArgs {
    /// GeoTIFF with the bands the model's manifest names (VV, VH in dB for Sentinel-1).
    pub scene: PathBuf,
    /// Where to write the mask: uint8, 0 land, 1 water, 255 no data; tiled, deflate.
    #[arg(short, long, value_name = "MASK.tif")]
    pub output: PathBuf,
    /// Also write the water probability, uint8 percent 0–100, 255 no data.
    #[arg(long, value_name = "P.tif")]
    pub probability: Option<PathBuf>,
    /// Also write water polygons as GeoJSON, in the scene's CRS.
    #[arg(long, value_name = "WATER.geojson")]
    pub vector: Option<PathBuf>,
    /// Also write a JSON report: water area in km², fractions, tiles, timings, peak memory.
    #[arg(long, value_name = "R.json")]
    pub report: Option<PathBuf>,
    /// Write the mask (and probability) as Cloud-Optimized GeoTIFFs with overviews.
    #[arg(long)]
    pub cog: bool,
    #[command(flatten)]
    pub model: ModelArgs,
}

pub fn run(args: SegmentArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    let prepared = args.model.prepare()?;
    let (scene, plan) = prepared.open_scene(&args.scene)?;
    let mut sinks: Vec<Box<dyn RowSink>> = vec![Box::new(GeoTiffSink::create(
        &args.output,
        &scene,
        Layer::Mask,
        args.cog,
    )?)];
    if let Some(p) = &args.probability {
        sinks.push(Box::new(GeoTiffSink::create(
            p,
            &scene,
            Layer::Probability,
            args.cog,
        )?));
    }
    if let Some(v) = &args.vector {
        sinks.push(Box::new(GeoJsonSink::create(v, &scene)?));
    }
    let cfg = SegmentConfig {
        overlap_px: args.model.overlap,
        stripe_px: prepared.stripe_px,
        scene_units: args.model.scene_units.into(),
        threshold: prepared.manifest.output.threshold,
    };
    let bar = progress_bar(quiet, "segmenting");
    let stats = segment(
        &scene,
        &prepared.engine,
        &prepared.manifest,
        &cfg,
        &mut sinks,
        &bar,
    )
    .with_context(|| format!("segmenting {}", args.scene.display()))?;
    bar.finish_and_clear();
    for sink in sinks {
        sink.finish()?;
    }
    let report = serde_json::json!({
        "scene": args.scene.display().to_string(),
        "model": { "name": prepared.manifest.name, "source": prepared.file.source, "sha256": prepared.file.digest.to_hex() },
        "crs_epsg": scene.epsg(),
        "tile_px": prepared.engine.config.tile_px,
        "overlap_px": cfg.overlap_px,
        "batch": prepared.engine.config.batch,
        "threads": prepared.engine.config.threads,
        "stats": &stats,
        "water_fraction": stats.water_fraction(),
        "nodata_fraction": stats.nodata_fraction(),
        "peak_rss_mib": peak_rss_bytes().map(|b| b as f64 / 1048576.0),
        "memory_plan": &plan,
        "max_memory_bytes": prepared.budget,
        "outputs": { "mask": &args.output, "probability": &args.probability, "vector": &args.vector },
    });
    if let Some(path) = &args.report {
        write_atomically(path, serde_json::to_string_pretty(&report)?.as_bytes())?;
    }
    if !quiet {
        eprintln!("{}", summary_line(&stats, &args.output));
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn summary_line(stats: &Stats, output: &Path) -> String {
    let area = stats
        .water_area_km2
        .map_or("unknown area".to_string(), |a| format!("{a:.3} km²"));
    format!(
        "water {area} ({:.1} % of valid pixels), no data {:.1} %, {} tiles in {:.1} s -> {}",
        100.0 * stats.water_fraction(),
        100.0 * stats.nodata_fraction(),
        stats.tiles,
        stats.seconds,
        output.display()
    )
}

/// Writes `bytes` to a temporary file beside `path`, syncs it, and renames it into place.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut tmp = crate::sink::temp_beside(path)?;
    tmp.write_all(bytes)?;
    crate::sink::publish(tmp, path)?;
    Ok(())
}

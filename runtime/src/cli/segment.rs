//! `floodrt segment`: one scene in, a georeferenced water mask (and optional probability,
//! polygons and report) out.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use super::{progress_bar, ModelArgs, SceneArgs};
use crate::pipeline::{scene_report, segment, SegmentConfig, Stats};
use crate::sink::geojson::GeoJsonSink;
use crate::sink::geotiff::{GeoTiffSink, Layer};
use crate::sink::{write_atomically, RowSink};

/// Map water in a scene: GeoTIFF mask, probability raster, GeoJSON polygons, flooded km².
#[derive(Args, Debug)]
pub struct SegmentArgs {
    #[command(flatten)]
    pub scene: SceneArgs,
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
    let input = args.scene.input(args.model.scene_units);
    let (scene, plan) = prepared.open_scene(&input)?;
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
    .with_context(|| format!("segmenting {}", input.path().display()))?;
    bar.finish_and_clear();
    for sink in sinks {
        sink.finish()?;
    }
    let outputs = serde_json::json!({ "mask": &args.output, "probability": &args.probability, "vector": &args.vector });
    let report = scene_report(&input, &scene, &prepared, &cfg, &stats, &plan, outputs);
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

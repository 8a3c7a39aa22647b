//! `floodrt segment`: one scene in, a georeferenced water mask (and optional probability,
//! polygons and report) out.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use super::{progress_bar, ModelArgs, PreparedModel, SceneArgs};
use crate::pipeline::{scene_report, segment, SegmentConfig, Stats};
use crate::reference::{class, ReferenceWater};
use crate::scene::{epsg_name, RadarUnits, Scene, SceneFiles, SceneInput};
use crate::sink::geotiff::{GeoTiffSink, Layer};
use crate::sink::{write_atomically, RowSink};
use crate::vector::{self, VectorOptions};

/// Map water in a scene: GeoTIFF mask, probability raster, outlines (GeoJSON, GeoPackage), km².
///
/// With reference water (--before and/or --permanent-water) the output tells flood water from
/// the water that was there before: 0 land, 1 flood water, 2 permanent water, 255 no data, with
/// a colour table, and the report gives flooded and permanent-water km² apart.
#[derive(Args, Debug)]
pub struct SegmentArgs {
    #[command(flatten)]
    pub scene: SceneArgs,
    /// Where to write the mask: uint8, 0 land, 1 water, 255 no data; tiled, deflate. With
    /// reference water: the classes above, with a colour table.
    #[arg(short, long, value_name = "MASK.tif")]
    pub output: PathBuf,
    /// Also write the water probability, uint8 percent 0–100, 255 no data.
    #[arg(long, value_name = "P.tif")]
    pub probability: Option<PathBuf>,
    /// Also write water outlines: polygons with holes traced along pixel edges, one per
    /// connected region, with class, pixels and area_m2. `.gpkg` writes a GeoPackage, anything
    /// else GeoJSON. With reference water, flood and permanent water are separate classes.
    #[arg(long, value_name = "WATER.geojson")]
    pub vector: Option<PathBuf>,
    /// Simplify the outlines (Douglas–Peucker) by up to this many metres, keeping every
    /// polygon valid [default: every pixel corner kept].
    #[arg(long, value_name = "METRES", requires = "vector")]
    pub simplify: Option<f64>,
    /// Coordinates of the outlines: `scene` (the scene's CRS) or `4326` (WGS 84 longitude and
    /// latitude, as GeoJSON's RFC 7946 recommends; from UTM scenes).
    #[arg(long, value_name = "CRS", default_value = "scene", value_parser = ["scene", "4326"], requires = "vector")]
    pub vector_crs: String,
    /// Also write a JSON report: water area in km², fractions, tiles, timings, peak memory.
    #[arg(long, value_name = "R.json")]
    pub report: Option<PathBuf>,
    /// Write the mask (and probability) as Cloud-Optimized GeoTIFFs with overviews.
    #[arg(long)]
    pub cog: bool,
    #[command(flatten)]
    pub reference: ReferenceArgs,
    #[command(flatten)]
    pub model: ModelArgs,
}

/// Water that was there before the flood.
#[derive(Args, Debug, Clone, Default)]
pub struct ReferenceArgs {
    /// A pre-event scene in the scene's CRS (any grid: looked up nearest-neighbour), segmented
    /// with the same model first; water in both is permanent water. One file, or one per
    /// polarisation with --before-vv and --before-vh.
    #[arg(long, value_name = "PRE.tif", conflicts_with_all = ["before_vv", "before_vh"])]
    pub before: Option<PathBuf>,
    /// The pre-event scene's VV as a single-band file.
    #[arg(long, value_name = "VV.tif", requires = "before_vh")]
    pub before_vv: Option<PathBuf>,
    /// The pre-event scene's VH as a single-band file.
    #[arg(long, value_name = "VH.tif", requires = "before_vv")]
    pub before_vh: Option<PathBuf>,
    /// A reference water raster in the scene's CRS (any grid), e.g. a JRC Global Surface Water
    /// occurrence tile or a national water layer; values at or above --permanent-threshold are
    /// permanent water, its no data is unknown (water there counts as flood).
    #[arg(long, value_name = "WATER.tif")]
    pub permanent_water: Option<PathBuf>,
    /// Threshold for --permanent-water: 50 suits JRC occurrence (percent of months under
    /// water), 1 a 0/1 mask.
    #[arg(long, value_name = "N", default_value_t = 50.0)]
    pub permanent_threshold: f32,
}

impl ReferenceArgs {
    fn before_input(&self, units: Option<RadarUnits>) -> Option<SceneInput> {
        let files = match (&self.before, &self.before_vv, &self.before_vh) {
            (Some(path), _, _) => SceneFiles::One(path.clone()),
            (None, Some(vv), Some(vh)) => {
                SceneFiles::PerBand(vec![("vv".into(), vv.clone()), ("vh".into(), vh.clone())])
            }
            _ => return None,
        };
        Some(SceneInput { files, units })
    }
}

pub fn run(args: SegmentArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    let prepared = args.model.prepare()?;
    let input = args.scene.input(args.model.scene_units);
    let (scene, plan) = prepared.open_scene(&input)?;
    let cfg = SegmentConfig {
        overlap_px: args.model.overlap,
        stripe_px: plan.stripe_px,
        threshold: prepared.manifest.output.threshold,
        release_memory: prepared.budget.is_some(),
    };
    // Outlines that cannot be written are refused before any work.
    let outline_options = VectorOptions {
        simplify_m: args.simplify,
        wgs84: args.vector_crs == "4326",
    };
    if let Some(v) = &args.vector {
        vector::check(v, &scene, &outline_options)?;
    }
    let (reference, before) = reference_water(&args, &prepared, &scene, &cfg, quiet)?;
    let layer = if reference.is_empty() {
        Layer::Mask
    } else {
        Layer::Classes
    };
    let mut sinks: Vec<Box<dyn RowSink>> = vec![Box::new(GeoTiffSink::create(
        &args.output,
        &scene,
        layer,
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
    let stats = segment_into(
        &prepared,
        (&scene, &input),
        &cfg,
        Some(&reference),
        sinks,
        ("segmenting", quiet),
    )?;
    drop(reference);
    let outlines = match &args.vector {
        Some(v) => {
            let classes: &[(u8, &str)] = if layer == Layer::Classes {
                &[(class::FLOOD, "flood"), (class::PERMANENT, "permanent")]
            } else {
                &[(1, "water")]
            };
            let stats = vector::write_outlines(&args.output, classes, &outline_options, v)
                .with_context(|| format!("writing outlines to {}", v.display()))?;
            Some(stats)
        }
        None => None,
    };
    let outputs = serde_json::json!({
        if layer == Layer::Classes { "classes" } else { "mask" }: &args.output,
        "probability": &args.probability,
        "vector": &args.vector,
    });
    let mut report = scene_report(&input, &scene, &prepared, &cfg, &stats, &plan, outputs);
    if let Some(outlines) = outlines {
        report["outlines"] = serde_json::json!(outlines);
    }
    if let Some(before) = &before {
        report["before"] = serde_json::json!({
            "scene_files": before.input.paths(),
            "stats": before.stats,
        });
    }
    if let Some(path) = &args.reference.permanent_water {
        report["permanent_water"] = serde_json::json!({
            "file": path,
            "threshold": args.reference.permanent_threshold,
        });
    }
    if let Some(path) = &args.report {
        write_atomically(path, serde_json::to_string_pretty(&report)?.as_bytes())?;
    }
    if !quiet {
        eprintln!("{}", summary_line(&stats, &args.output));
    }
    Ok(ExitCode::SUCCESS)
}

/// A pre-event scene's run, kept for the report; its mask lives in `_dir` until dropped.
struct Before {
    input: SceneInput,
    stats: Stats,
    _dir: tempfile::TempDir,
}

/// The reference water the arguments name: the pre-event scene segmented into a temporary
/// mask beside the output (same model, same settings), and/or the user's water raster.
fn reference_water(
    args: &SegmentArgs,
    prepared: &PreparedModel,
    scene: &Scene,
    cfg: &SegmentConfig,
    quiet: bool,
) -> anyhow::Result<(ReferenceWater, Option<Before>)> {
    let mut reference = ReferenceWater::default();
    let mut before = None;
    if let Some(input) = args.reference.before_input(args.model.scene_units) {
        let (pre, _) = prepared.open_scene(&input)?;
        if pre.epsg() != scene.epsg() {
            anyhow::bail!(
                "the pre-event scene {} is in {}, the scene in {}; warp it first, e.g. `gdalwarp -t_srs {} -r bilinear {} pre_aligned.tif`",
                input.path().display(),
                epsg_name(pre.epsg()),
                epsg_name(scene.epsg()),
                epsg_name(scene.epsg()),
                input.path().display()
            );
        }
        let dir = tempfile::Builder::new()
            .prefix(".floodrt-before-")
            .tempdir_in(crate::sink::parent_dir(&args.output))
            .with_context(|| format!("cannot write beside {}", args.output.display()))?;
        let mask = dir.path().join("before-mask.tif");
        let sinks: Vec<Box<dyn RowSink>> = vec![Box::new(GeoTiffSink::create(
            &mask,
            &pre,
            Layer::Mask,
            false,
        )?)];
        let stats = segment_into(
            prepared,
            (&pre, &input),
            cfg,
            None,
            sinks,
            ("segmenting the pre-event scene", quiet),
        )?;
        reference.add(&mask, 1.0, scene)?;
        before = Some(Before {
            input,
            stats,
            _dir: dir,
        });
    }
    if let Some(path) = &args.reference.permanent_water {
        reference
            .add(path, args.reference.permanent_threshold, scene)
            .with_context(|| format!("reference water {}", path.display()))?;
    }
    Ok((reference, before))
}

/// Segments a scene into `sinks` behind a progress bar (`what`, hidden when quiet) and
/// completes them.
fn segment_into(
    prepared: &PreparedModel,
    (scene, input): (&Scene, &SceneInput),
    cfg: &SegmentConfig,
    reference: Option<&ReferenceWater>,
    mut sinks: Vec<Box<dyn RowSink + '_>>,
    (what, quiet): (&str, bool),
) -> anyhow::Result<Stats> {
    let bar = progress_bar(quiet, what);
    let stats = segment(
        scene,
        &prepared.engine,
        &prepared.manifest,
        cfg,
        reference,
        &mut sinks,
        &bar,
    )
    .with_context(|| format!("segmenting {}", input.path().display()))?;
    bar.finish_and_clear();
    for sink in sinks {
        sink.finish()?;
    }
    Ok(stats)
}

pub(crate) fn summary_line(stats: &Stats, output: &Path) -> String {
    let km2 = |a: Option<f64>| a.map_or("unknown area".to_string(), |a| format!("{a:.3} km²"));
    let water = match &stats.flood {
        Some(f) => format!(
            "flood water {}, permanent water {}",
            km2(f.flood_area_km2),
            km2(f.permanent_water_area_km2)
        ),
        None => format!("water {}", km2(stats.water_area_km2)),
    };
    format!(
        "{water} ({:.1} % of valid pixels), no data {:.1} %, {} tiles in {:.1} s -> {}",
        100.0 * stats.water_fraction(),
        100.0 * stats.nodata_fraction(),
        stats.tiles,
        stats.seconds,
        output.display()
    )
}

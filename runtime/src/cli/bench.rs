//! `floodrt bench`: figures, not pass/fail. `latency` times the engine on batches of a real
//! chip; `mosaic` builds large scenes from real chips for the memory-scaling runs (see
//! bench/README.md for the scripts that put both next to onnxruntime).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Subcommand};
use geotiff_writer::{Compression, GeoTiffBuilder};
use ndarray::Array3;

use super::ModelArgs;
use crate::budget::peak_rss_bytes;
use crate::model::PreparedModel;
use crate::pipeline::fill_input;
use crate::scene::Scene;

/// Benchmarks: engine latency, and mosaics of real chips for scale runs.
#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub what: BenchCommand,
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    Latency(LatencyArgs),
    Profile(ProfileArgs),
    Mosaic(MosaicArgs),
}

/// Time every node of the optimised plan on one call's tiles (one tile when the engine runs
/// tiles side by side) and print where the time goes, by tract operator and by node.
#[derive(Args, Debug)]
pub struct ProfileArgs {
    /// Scene to cut the tiles from (its top-left batch of tiles is used).
    pub scene: PathBuf,
    /// Profiled runs, after one warm-up run; times are their means.
    #[arg(long, default_value_t = 5)]
    pub iterations: usize,
    /// Nodes to list individually, slowest first.
    #[arg(long, default_value_t = 12)]
    pub top: usize,
    #[command(flatten)]
    pub model: ModelArgs,
}

/// Time the model on full batches cut from one scene; print per-tile latency and peak RSS.
#[derive(Args, Debug)]
pub struct LatencyArgs {
    /// Scene to cut the tiles from (its top-left batch of tiles is used).
    pub scene: PathBuf,
    /// Timed runs, after one warm-up run.
    #[arg(long, default_value_t = 10)]
    pub iterations: usize,
    /// Also write the batch fed to the model as raw little-endian f32 (NCHW), so another
    /// runtime can be timed on exactly the same input.
    #[arg(long, value_name = "FILE")]
    pub dump_input: Option<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
}

/// Write a SIZE×SIZE scene tiled from the chips in a folder (for memory-scaling runs).
#[derive(Args, Debug)]
pub struct MosaicArgs {
    /// Folder of 2-band float32 chips (e.g. Sen1Floods11 S1Hand/).
    #[arg(long, value_name = "DIR")]
    pub chips: PathBuf,
    /// Side of the mosaic in pixels.
    #[arg(long)]
    pub size: usize,
    #[arg(short, long, value_name = "OUT.tif")]
    pub output: PathBuf,
}

pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    match args.what {
        BenchCommand::Latency(a) => latency(a),
        BenchCommand::Profile(a) => profile(a),
        BenchCommand::Mosaic(a) => mosaic(a),
    }
}

fn latency(args: LatencyArgs) -> anyhow::Result<ExitCode> {
    let prepared = args.model.prepare()?;
    let input = first_batch(&prepared, &args.scene, &args.model)?;
    let c = prepared.engine.config;
    if let Some(path) = &args.dump_input {
        let bytes: Vec<u8> = input.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    }
    prepared.engine.run_raw(input.clone())?;
    let mut seconds = Vec::with_capacity(args.iterations);
    for _ in 0..args.iterations.max(1) {
        let t = Instant::now();
        prepared.engine.run_raw(input.clone())?;
        seconds.push(t.elapsed().as_secs_f64());
    }
    seconds.sort_by(f64::total_cmp);
    let median = seconds[seconds.len() / 2];
    let out = serde_json::json!({
        "runtime": format!("floodrt ({})", prepared.engine.runtime_name()),
        "model": prepared.file.source,
        "batch": c.batch,
        "tile_px": c.tile_px,
        "threads": c.threads,
        "tile_workers": prepared.engine.workers(),
        "plan_batch": prepared.engine.plan_batch(),
        "iterations": seconds.len(),
        "batch_ms_median": median * 1e3,
        "batch_ms_min": seconds[0] * 1e3,
        "tile_ms_median": median * 1e3 / c.batch as f64,
        "peak_rss_mib": peak_rss_bytes().map(|b| b as f64 / 1048576.0),
    });
    outln!("{}", serde_json::to_string(&out)?)?;
    Ok(ExitCode::SUCCESS)
}

/// The scene's top-left tiles, one full batch, preprocessed as the manifest says.
fn first_batch(
    prepared: &PreparedModel,
    scene: &std::path::Path,
    model: &ModelArgs,
) -> anyhow::Result<Vec<f32>> {
    let input = crate::scene::SceneInput {
        units: model.scene_units,
        ..crate::scene::SceneInput::file(scene)
    };
    let (scene, _) = prepared.open_scene(&input)?;
    let c = prepared.engine.config;
    let bands = prepared.manifest.band_count();
    let plane = bands * c.tile_px * c.tile_px;
    let mut input = vec![0f32; c.batch * plane];
    let per_row = (scene.width() / c.tile_px).max(1);
    for slot in 0..c.batch {
        let (ty, tx) = ((slot / per_row) * c.tile_px, (slot % per_row) * c.tile_px);
        let (rows, cols) = (
            c.tile_px.min(scene.height() - ty.min(scene.height())),
            c.tile_px.min(scene.width()),
        );
        let window = scene.read_window(
            ty.min(scene.height() - rows),
            tx.min(scene.width() - cols),
            rows,
            cols,
        )?;
        fill_input(
            &mut input[slot * plane..(slot + 1) * plane],
            &window,
            &prepared.manifest,
            flood_models::Units::Db,
            c.tile_px,
        );
    }
    Ok(input)
}

fn profile(args: ProfileArgs) -> anyhow::Result<ExitCode> {
    let prepared = args.model.prepare()?;
    let input = first_batch(&prepared, &args.scene, &args.model)?;
    let engine = &prepared.engine;
    engine.profile(&input)?;
    let runs = args.iterations.max(1);
    // Per node: operator, name, seconds summed over the runs.
    let mut nodes: Vec<(String, String, f64)> = Vec::new();
    let mut wall = 0.0;
    for _ in 0..runs {
        let started = Instant::now();
        let times = engine.profile(&input)?;
        wall += started.elapsed().as_secs_f64();
        if nodes.is_empty() {
            nodes = times
                .iter()
                .map(|t| (t.op.clone(), t.node.clone(), 0.0))
                .collect();
        }
        for (slot, t) in nodes.iter_mut().zip(&times) {
            slot.2 += t.seconds;
        }
    }
    let ms = |s: f64| s * 1e3 / runs as f64;
    let total: f64 = nodes.iter().map(|n| n.2).sum();
    let mut by_op: Vec<(String, usize, f64)> = Vec::new();
    for (op, _, s) in &nodes {
        match by_op.iter_mut().find(|o| &o.0 == op) {
            Some(o) => (o.1, o.2) = (o.1 + 1, o.2 + s),
            None => by_op.push((op.clone(), 1, *s)),
        }
    }
    by_op.sort_by(|a, b| b.2.total_cmp(&a.2));
    let c = engine.config;
    outln!(
        "{} — {} tile(s) of {}² per plan run, {} thread(s) ({}), {:?}; mean of {runs} runs: {:.1} ms in nodes, {:.1} ms wall",
        prepared.manifest.name,
        engine.plan_batch(),
        c.tile_px,
        c.threads,
        if engine.workers() > 1 { "one per tile worker" } else { "tract's executor" },
        c.precision,
        ms(total),
        ms(wall)
    )?;
    outln!("\n| operator | nodes | ms | share |\n|---|---|---|---|")?;
    for (op, count, s) in &by_op {
        outln!(
            "| {op} | {count} | {:.2} | {:.1} % |",
            ms(*s),
            100.0 * s / total
        )?;
    }
    nodes.sort_by(|a, b| b.2.total_cmp(&a.2));
    outln!("\n| slowest nodes | operator | ms |\n|---|---|---|")?;
    for (op, name, s) in nodes.iter().take(args.top) {
        outln!("| {name} | {op} | {:.2} |", ms(*s))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn mosaic(args: MosaicArgs) -> anyhow::Result<ExitCode> {
    let mut chips: Vec<PathBuf> = std::fs::read_dir(&args.chips)
        .with_context(|| format!("cannot list {}", args.chips.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "tif"))
        .collect();
    chips.sort();
    let scenes: Vec<Scene> = chips
        .iter()
        .map(|p| Scene::open(p, 4 << 20))
        .collect::<Result<_, _>>()?;
    let first = scenes
        .first()
        .with_context(|| format!("no .tif chips in {}", args.chips.display()))?;
    let (cw, ch) = (first.width(), first.height());
    let n = args.size;
    let mut builder = GeoTiffBuilder::new(n as u32, n as u32)
        .bands(first.bands() as u32)
        .compression(Compression::Deflate)
        .tile_size(256, 256)
        .nodata("nan");
    if let Some(gt) = first.transform() {
        builder = builder.crs(first.crs().clone()).transform(*gt);
    }
    let file = std::fs::File::create(&args.output)
        .with_context(|| format!("cannot create {}", args.output.display()))?;
    let mut writer = builder.tile_writer::<f32, _>(std::io::BufWriter::new(file))?;
    // One 256-px block at a time, each cut from the chip that covers it in a repeating pattern.
    for ty in (0..n).step_by(256) {
        for tx in (0..n).step_by(256) {
            let (rows, cols) = (256.min(n - ty), 256.min(n - tx));
            let which = (ty / ch + 3 * (tx / cw)) % scenes.len();
            let window = scenes[which].read_window(
                ty % ch,
                tx % cw,
                rows.min(ch - ty % ch),
                cols.min(cw - tx % cw),
            )?;
            let mut block = Array3::<f32>::from_elem((rows, cols, window.bands), f32::NAN);
            for b in 0..window.bands {
                for r in 0..window.rows {
                    for c in 0..window.cols {
                        block[[r, c, b]] = window.band(b)[r * window.cols + c];
                    }
                }
            }
            writer.write_tile_3d(tx, ty, &block.view())?;
        }
    }
    writer.finish()?;
    eprintln!(
        "wrote {} ({n}×{n} px from {} chips)",
        args.output.display(),
        scenes.len()
    );
    Ok(ExitCode::SUCCESS)
}

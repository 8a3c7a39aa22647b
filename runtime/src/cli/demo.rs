//! `floodrt demo`: the whole job on a fresh machine with no files: draw a synthetic
//! Sentinel-1-like scene (see `synth`), segment it with the embedded model, and write the mask,
//! a report and a PNG quicklook.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use super::segment::{self, SegmentArgs};
use super::{ModelArgs, SceneArgs};
use crate::metrics::{Confusion, Fragments, SMALL_COMPONENT_PX};
use crate::scene::Scene;
use crate::sink::NODATA;
use crate::synth::SynthScene;

/// Run end to end on a synthetic scene: scene.tif, mask.tif, probability.tif, report.json,
/// score.json (the mask against the scene's exact labels) and quicklook.png.
///
/// The scene is drawn, not downloaded, by the generator the default model was pretrained on:
/// field parcels, roads and a meandering river in flood, correlated radar speckle and a no-data
/// swath edge, in EPSG:4326 at Sentinel-1's ~10 m.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Folder for the outputs (created if missing).
    #[arg(long, value_name = "DIR", default_value = "floodrt-demo")]
    pub out: PathBuf,
    /// Scene side in pixels.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub size: usize,
    /// Seed of the synthetic scene (flood-synth); the default draws a river in flood across a
    /// swath edge.
    #[arg(long, default_value_t = 206)]
    pub seed: u64,
    /// Segment with this model (a file or `embedded:NAME`) instead of the default.
    #[arg(long, value_name = "M.onnx")]
    pub model: Option<PathBuf>,
}

pub fn run(args: DemoArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    if !(64..=16384).contains(&args.size) {
        anyhow::bail!("--size {} is out of range; use 64 to 16384", args.size);
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let scene_path = args.out.join("scene.tif");
    let synth = SynthScene::new(args.size, args.seed);
    synth.write(&scene_path)?;
    if !quiet {
        eprintln!(
            "wrote synthetic scene {} ({}×{} px, VV+VH dB)",
            scene_path.display(),
            args.size,
            args.size
        );
    }
    let mask_path = args.out.join("mask.tif");
    let segment_args = SegmentArgs {
        scene: SceneArgs {
            scene: Some(scene_path.clone()),
            vv: None,
            vh: None,
        },
        output: mask_path.clone(),
        probability: Some(args.out.join("probability.tif")),
        vector: None,
        simplify: None,
        vector_crs: "scene".into(),
        report: Some(args.out.join("report.json")),
        cog: false,
        reference: Default::default(),
        model: ModelArgs {
            model: args.model.clone(),
            ..ModelArgs::default()
        },
    };
    segment::run(segment_args, quiet)?;
    let png = args.out.join("quicklook.png");
    let scene = Scene::open(&scene_path, 16 << 20)?;
    crate::sink::quicklook::write(&scene, &mask_path, &png)?;
    let (confusion, fragments) = score_against_truth(&synth, &mask_path)?;
    let score_path = args.out.join("score.json");
    std::fs::write(
        &score_path,
        serde_json::to_string_pretty(&serde_json::json!({
            "truth": "the synthetic scene's exact labels",
            "iou": confusion.scores().iou,
            "f1": confusion.scores().f1,
            "counts": confusion,
            "fragments": fragments,
            "small_component_share": fragments.small_share(),
        }))?,
    )
    .with_context(|| format!("cannot write {}", score_path.display()))?;
    if !quiet {
        let pct = |v: Option<f64>| v.map_or("-".into(), |v| format!("{:.2} %", 100.0 * v));
        eprintln!(
            "water IoU against the scene's exact labels {}; predicted water in specks under {SMALL_COMPONENT_PX} px {}",
            confusion.scores().iou.map_or("-".into(), |v| format!("{v:.4}")),
            pct(fragments.small_share())
        );
        eprintln!(
            "wrote {}, {}, {}, {}",
            mask_path.display(),
            args.out.join("report.json").display(),
            score_path.display(),
            png.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Counts the mask against the scene's exact labels, and how much of its water lies in specks.
/// The demo's scenes are at most 16384² px, so the mask (one byte a pixel) fits in memory for
/// the connected components; the labels are drawn stripe by stripe.
fn score_against_truth(
    synth: &SynthScene,
    mask_path: &Path,
) -> anyhow::Result<(Confusion, Fragments)> {
    let mask_scene = Scene::open(mask_path, 16 << 20)?;
    let (width, height) = (mask_scene.width(), mask_scene.height());
    let mut mask = Vec::with_capacity(width * height);
    let mut confusion = Confusion::default();
    for y in (0..height).step_by(256) {
        let rows = 256.min(height - y);
        let predicted = mask_scene.read_window(y, 0, rows, width)?;
        let truth = synth.scene.labels(0, y as i64, rows, width);
        for (m, &label) in predicted.band(0).iter().zip(&truth) {
            let m = if m.is_nan() { NODATA } else { *m as u8 };
            if m != NODATA && label >= 0 {
                confusion.add_pixel(m == 1, label == 1);
            }
            mask.push(m);
        }
    }
    Ok((confusion, Fragments::of_mask(&mask, width)))
}

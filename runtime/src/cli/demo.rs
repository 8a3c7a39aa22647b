//! `floodrt demo`: the whole job on a fresh machine with no files: draw a synthetic
//! Sentinel-1-like scene (see `synth`), segment it with the embedded model, and write the mask,
//! a report and a PNG quicklook.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use super::segment::{self, SegmentArgs};
use super::ModelArgs;
use crate::scene::Scene;
use crate::synth::SynthScene;

/// Run end to end on a synthetic scene: scene.tif, mask.tif, report.json, quicklook.png.
///
/// The scene is drawn, not downloaded: textured land, a meandering river, a flooded plain,
/// radar speckle and a no-data wedge, in EPSG:4326 at Sentinel-1's ~10 m.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Folder for the outputs (created if missing).
    #[arg(long, value_name = "DIR", default_value = "floodrt-demo")]
    pub out: PathBuf,
    /// Scene side in pixels.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub size: usize,
    /// Seed for the synthetic speckle.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Segment with this model instead of the embedded baseline.
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
        scene: scene_path.clone(),
        output: mask_path.clone(),
        probability: Some(args.out.join("probability.tif")),
        vector: None,
        report: Some(args.out.join("report.json")),
        cog: false,
        model: ModelArgs {
            model: args.model.clone(),
            ..ModelArgs::default()
        },
    };
    segment::run(segment_args, quiet)?;
    let png = args.out.join("quicklook.png");
    write_quicklook(&scene_path, &mask_path, &png)?;
    if !quiet {
        eprintln!(
            "wrote {}, {}, {}",
            mask_path.display(),
            args.out.join("report.json").display(),
            png.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// An RGB picture at most 1024 px wide: radar VV as grey, water in blue, no data black.
/// Reads one output row band at a time, by windows.
pub fn write_quicklook(scene_path: &Path, mask_path: &Path, png_path: &Path) -> anyhow::Result<()> {
    let scene = Scene::open(scene_path, 16 << 20)?;
    let mask = Scene::open(mask_path, 16 << 20)?;
    let step = scene.width().div_ceil(1024).max(1);
    let (w, h) = (scene.width().div_ceil(step), scene.height().div_ceil(step));
    let mut rgb = Vec::with_capacity(w * h * 3);
    for oy in 0..h {
        let y = oy * step;
        let radar = scene.read_window(y, 0, 1, scene.width())?;
        let water = mask.read_window(y, 0, 1, mask.width())?;
        for ox in 0..w {
            let x = ox * step;
            let vv = radar.band(0)[x];
            let m = water.band(0)[x];
            let grey = (((vv + 25.0) / 25.0).clamp(0.0, 1.0) * 255.0) as u8;
            let px = if m.is_nan() || !vv.is_finite() {
                [0, 0, 0]
            } else if m == 1.0 {
                [20, 90, 220]
            } else {
                [grey, grey, grey]
            };
            rgb.extend_from_slice(&px);
        }
    }
    let file = std::fs::File::create(png_path)
        .with_context(|| format!("cannot create {}", png_path.display()))?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), w as u32, h as u32);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.write_header()?.write_image_data(&rgb)?;
    Ok(())
}

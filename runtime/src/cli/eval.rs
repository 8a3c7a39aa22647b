//! `floodrt eval`: score a model on hand-labelled chips in the Sen1Floods11 layout.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use super::{progress_bar, ModelArgs, PreparedModel};
use crate::metrics::{count, Confusion, Fragments, Scores, SMALL_COMPONENT_PX};
use crate::pipeline::{segment, SegmentConfig};
use crate::scene::Scene;
use crate::sink::geotiff::{GeoTiffSink, Layer};
use crate::sink::{MemorySink, RowSink};

/// Score a model on labelled chips: per-chip and pooled water IoU, F1, precision, recall.
///
/// DIR holds `S1Hand/*_S1Hand.tif` and `LabelHand/*_LabelHand.tif` (the Sen1Floods11 layout).
/// Pixels labelled −1 or without input data are left out. "Pooled" adds the confusion counts
/// of all chips before dividing, as the Sen1Floods11 baselines report.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Folder in the Sen1Floods11 layout.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// One JSON object on stdout (`pooled.iou` is the pooled water IoU).
    #[arg(long)]
    pub json: bool,
    /// Also write each chip's predicted mask to DIR/NAME_mask.tif (GeoTIFF, georeferenced like
    /// the chip: 1 water, 0 land, 255 no data), to look at where the model errs.
    #[arg(long, value_name = "DIR")]
    pub masks: Option<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
}

/// One chip's scores, and the predicted mask (row-major; 1 water, 0 land, 255 no-data).
#[derive(serde::Serialize)]
pub struct ChipResult {
    pub chip: String,
    #[serde(flatten)]
    pub confusion: Confusion,
    #[serde(flatten)]
    pub scores: Scores,
    pub water_fraction_pred: f64,
    /// Predicted water pixels, and those in components under 10 px (speckle).
    pub fragments: Fragments,
    pub small_component_share: Option<f64>,
    #[serde(skip)]
    pub mask: Vec<u8>,
}

pub fn run(args: EvalArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    let pairs = chip_pairs(&args.data)?;
    let prepared = args.model.prepare()?;
    if let Some(dir) = &args.masks {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the --masks folder {}", dir.display()))?;
    }
    let bar = progress_bar(quiet || args.json, "evaluating");
    let chips = evaluate(&prepared, &args.model, &pairs, args.masks.as_deref(), &bar)?;
    bar.finish_and_clear();
    let mut pooled = Confusion::default();
    let mut fragments = Fragments::default();
    for c in &chips {
        pooled.add(&c.confusion);
        fragments.add(&c.fragments);
    }
    let scores = pooled.scores();
    if args.json {
        let out = serde_json::json!({
            "model": { "name": prepared.manifest.name, "source": prepared.file.source, "sha256": prepared.file.digest.to_hex() },
            "tile_px": prepared.engine.config.tile_px,
            "overlap_px": args.model.overlap,
            "chips": chips,
            "pooled": { "chips": chips.len(), "tp": pooled.tp, "fp": pooled.fp, "fn": pooled.fn_, "tn": pooled.tn,
                        "iou": scores.iou, "f1": scores.f1, "precision": scores.precision, "recall": scores.recall, "miou": scores.miou,
                        "fragments": fragments, "small_component_share": fragments.small_share() },
        });
        outln!("{}", serde_json::to_string_pretty(&out)?)?;
    } else {
        print_table(&chips, &pooled, &scores)?;
        outln!(
            "predicted water in components under {SMALL_COMPONENT_PX} px: {}",
            fragments
                .small_share()
                .map_or("- (no water predicted)".into(), |s| format!(
                    "{:.2} %",
                    100.0 * s
                ))
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn segment_config(prepared: &PreparedModel, options: &ModelArgs) -> SegmentConfig {
    SegmentConfig {
        overlap_px: options.overlap,
        stripe_px: prepared.stripe_px,
        threshold: prepared.manifest.output.threshold,
        release_memory: prepared.budget.is_some(),
    }
}

/// Scores `prepared` (made from `options`) on each (chip, S1 path, label path); with
/// `masks_dir`, also writes each predicted mask there as `NAME_mask.tif`.
pub fn evaluate(
    prepared: &PreparedModel,
    options: &ModelArgs,
    pairs: &[(String, PathBuf, PathBuf)],
    masks_dir: Option<&Path>,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<Vec<ChipResult>> {
    let cfg = segment_config(prepared, options);
    bar.set_length(pairs.len() as u64);
    let mut chips = Vec::new();
    for (chip, s1, label) in pairs {
        let mask_file = masks_dir.map(|d| d.join(format!("{chip}_mask.tif")));
        let result = evaluate_chip(
            prepared,
            &cfg,
            options.scene_units,
            chip,
            s1,
            label,
            mask_file.as_deref(),
        )
        .with_context(|| format!("evaluating chip {chip}"))?;
        chips.push(result);
        bar.inc(1);
    }
    Ok(chips)
}

/// (chip name, S1 path, label path) for every S1 chip that has a label, sorted by name.
pub fn chip_pairs(dir: &Path) -> anyhow::Result<Vec<(String, PathBuf, PathBuf)>> {
    let s1_dir = dir.join("S1Hand");
    let entries = std::fs::read_dir(&s1_dir).with_context(|| {
        format!(
            "cannot list {}; --data must hold S1Hand/ and LabelHand/ (the Sen1Floods11 layout)",
            s1_dir.display()
        )
    })?;
    let mut pairs = Vec::new();
    for entry in entries {
        let path = entry?.path();
        let Some(chip) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix("_S1Hand.tif"))
        else {
            continue;
        };
        let label = dir.join("LabelHand").join(format!("{chip}_LabelHand.tif"));
        if label.exists() {
            pairs.push((chip.to_string(), path.clone(), label));
        } else {
            log::info!("{chip}: no label in LabelHand/, skipped");
        }
    }
    pairs.sort();
    if pairs.is_empty() {
        anyhow::bail!("no labelled chips in {}: expected S1Hand/NAME_S1Hand.tif with LabelHand/NAME_LabelHand.tif", dir.display());
    }
    Ok(pairs)
}

fn evaluate_chip(
    prepared: &PreparedModel,
    cfg: &SegmentConfig,
    units: Option<crate::scene::RadarUnits>,
    chip: &str,
    s1: &Path,
    label_path: &Path,
    mask_file: Option<&Path>,
) -> anyhow::Result<ChipResult> {
    let input = crate::scene::SceneInput {
        units,
        ..crate::scene::SceneInput::file(s1)
    };
    let (scene, _) = prepared.open_scene(&input)?;
    let label_scene = Scene::open(label_path, 16 << 20)?;
    if (label_scene.width(), label_scene.height()) != (scene.width(), scene.height()) {
        anyhow::bail!(
            "{} is {}×{} but {} is {}×{}",
            label_path.display(),
            label_scene.width(),
            label_scene.height(),
            s1.display(),
            scene.width(),
            scene.height()
        );
    }
    let mut memory = MemorySink::new(scene.width(), scene.height());
    {
        let mut sinks: Vec<Box<dyn RowSink + '_>> = vec![Box::new(&mut memory)];
        if let Some(file) = mask_file {
            sinks.push(Box::new(GeoTiffSink::create(
                file,
                &scene,
                Layer::Mask,
                false,
            )?));
        }
        segment(
            &scene,
            &prepared.engine,
            &prepared.manifest,
            cfg,
            None,
            &mut sinks,
            &indicatif::ProgressBar::hidden(),
        )?;
        for sink in sinks {
            sink.finish()?;
        }
    }
    let window = label_scene.read_window(0, 0, label_scene.height(), label_scene.width())?;
    // −1 is "no label"; a label file that declares −1 as no-data reads as NaN.
    let label: Vec<i16> = window
        .band(0)
        .iter()
        .map(|&v| if v.is_nan() { -1 } else { v as i16 })
        .collect();
    let confusion = count(&memory.mask, &label);
    let fragments = Fragments::of_mask(&memory.mask, scene.width());
    Ok(ChipResult {
        fragments,
        small_component_share: fragments.small_share(),
        chip: chip.to_string(),
        confusion,
        scores: confusion.scores(),
        water_fraction_pred: fragments.water_px as f64 / memory.mask.len().max(1) as f64,
        mask: memory.mask,
    })
}

fn print_table(chips: &[ChipResult], pooled: &Confusion, scores: &Scores) -> std::io::Result<()> {
    let f = |v: Option<f64>| v.map_or("   -  ".to_string(), |x| format!("{x:6.4}"));
    outln!(
        "{:<24} {:>9} {:>9} {:>9} {:>6} {:>6} {:>6} {:>6}",
        "chip",
        "tp",
        "fp",
        "fn",
        "iou",
        "f1",
        "prec",
        "recall"
    )?;
    for c in chips {
        let s = &c.scores;
        outln!(
            "{:<24} {:>9} {:>9} {:>9} {} {} {} {}",
            c.chip,
            c.confusion.tp,
            c.confusion.fp,
            c.confusion.fn_,
            f(s.iou),
            f(s.f1),
            f(s.precision),
            f(s.recall)
        )?;
    }
    outln!(
        "{:<24} {:>9} {:>9} {:>9} {} {} {} {}",
        format!("pooled ({} chips)", chips.len()),
        pooled.tp,
        pooled.fp,
        pooled.fn_,
        f(scores.iou),
        f(scores.f1),
        f(scores.precision),
        f(scores.recall)
    )
}

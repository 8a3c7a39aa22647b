use std::path::PathBuf;
use std::process::ExitCode;

use indicatif::ProgressBar;

use super::device::DeviceArg;
use crate::train::evaluate::evaluate;
use crate::train::fit::{load_chips, load_run};
use crate::train::loss::LossKind;

/// Evaluate a trained model on labelled chips: pooled water IoU, F1, precision, recall, mIoU,
/// per event and per chip.
///
/// Chips are cut into tiles of the training crop size; water is where the probability
/// exceeds 0.5; pixels with label −1 or an invalid band are left out.
#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// Run folder written by `floodtrain train` (model.json + model.bpk).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Sen1Floods11-style folder.
    #[arg(long)]
    data: PathBuf,
    /// CSV of `S1Hand,LabelHand` file pairs; without it, every labelled chip (or --chips).
    #[arg(long)]
    split: Option<PathBuf>,
    #[arg(long, value_delimiter = ',')]
    chips: Option<Vec<String>>,
    #[arg(long, default_value_t = 256)]
    tile: usize,
    #[arg(long, default_value_t = 4)]
    batch: usize,
    /// Print the full JSON (per chip and event) instead of a summary.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    device: DeviceArg,
}

pub fn run(args: EvalArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    let device = args.device.device()?;
    if args.tile == 0 || !args.tile.is_multiple_of(8) {
        anyhow::bail!("--tile {} must be a positive multiple of 8", args.tile);
    }
    let (config, model) = load_run(&args.checkpoint, &device)?;
    let sensor = config.sensor;
    let kind = if config.classes == 1 {
        LossKind::BceDice
    } else {
        LossKind::CrossEntropy
    };
    let chips = load_chips(
        &args.data,
        sensor,
        args.split.as_deref(),
        args.chips.as_deref(),
    )?;
    let bar = if quiet || args.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(chips.len() as u64)
    };
    let evaluation = evaluate(
        &model,
        &chips,
        args.tile,
        args.batch,
        kind,
        &device,
        |chip, counts| {
            bar.inc(1);
            bar.set_message(format!(
                "{} IoU {:.3}",
                chip.name,
                counts.scores().iou.unwrap_or(f64::NAN)
            ));
        },
    );
    bar.finish_and_clear();
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&evaluation.to_json())?)?;
    } else {
        let s = evaluation.pooled().scores();
        let f = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.4}"));
        outln!("chips      {}", chips.len())?;
        outln!("water IoU  {}", f(s.iou))?;
        outln!("F1         {}", f(s.f1))?;
        outln!("precision  {}", f(s.precision))?;
        outln!("recall     {}", f(s.recall))?;
        outln!("mIoU       {}", f(s.miou))?;
    }
    Ok(ExitCode::SUCCESS)
}

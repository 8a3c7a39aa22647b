use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use super::device::DevicesArg;
use crate::model::clay::Preset;
use crate::model::{Arm, LoraTarget};
use crate::train::config::{DataSection, ModelSection, OptimSection, TrainConfig};
use crate::train::evaluate::evaluate;
use crate::train::fit::{load_chips, training_chips, write_json, Trainer};

/// Fine-tune Clay on flood chips: frozen encoder, LoRA, or full fine-tuning.
///
/// All options live in one TOML file (`--config run.toml`; see README for a full example);
/// the flags below override single values, and without a file `--data` and `--out` suffice.
/// The run folder receives `model.bpk`, `model.json`, `optimizer.bpk`, `state.json`,
/// a `train.jsonl` log (loss, learning rate, running IoU per step) and, when validation chips
/// are given, `eval.json`. `--resume` continues an interrupted run from its last checkpoint.
#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// Run configuration (TOML).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Sen1Floods11-style folder (overrides data.dir).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Run folder (overrides out).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Clay checkpoint, .ckpt or .safetensors (overrides model.checkpoint).
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// s1 (VV, VH in dB) or s2 (Clay's 10 Sentinel-2 bands) (overrides data.sensor).
    #[arg(long, value_enum)]
    sensor: Option<crate::data::Sensor>,
    /// CSV of `S1Hand,LabelHand` file pairs to train on (overrides data.train_split).
    #[arg(long)]
    train_split: Option<PathBuf>,
    /// CSV of file pairs to evaluate on after training (overrides data.valid_split).
    #[arg(long)]
    valid_split: Option<PathBuf>,
    #[arg(long, value_enum)]
    preset: Option<Preset>,
    #[arg(long, value_enum)]
    mode: Option<Arm>,
    #[arg(long)]
    lora_rank: Option<usize>,
    /// Comma-separated: qkv, q, k, v, out, fc1, fc2.
    #[arg(long)]
    lora_targets: Option<String>,
    #[arg(long)]
    steps: Option<usize>,
    /// Training crop side in pixels, a multiple of 8 (overrides data.crop_px).
    #[arg(long)]
    crop_px: Option<usize>,
    #[arg(long)]
    batch: Option<usize>,
    #[arg(long)]
    lr: Option<f64>,
    #[arg(long)]
    seed: Option<u64>,
    /// Train only on these chips (comma-separated names, e.g. India_900498).
    #[arg(long, value_delimiter = ',')]
    train_chips: Option<Vec<String>>,
    /// Evaluate on these chips after training.
    #[arg(long, value_delimiter = ',')]
    valid_chips: Option<Vec<String>>,
    /// Continue the run in --out from its last checkpoint.
    #[arg(long)]
    resume: bool,
    #[command(flatten)]
    devices: DevicesArg,
}

fn config_from_args(args: &TrainArgs) -> anyhow::Result<TrainConfig> {
    let mut config = match &args.config {
        Some(path) => TrainConfig::load(path)?,
        None => TrainConfig {
            model: ModelSection::default(),
            data: DataSection {
                dir: args
                    .data
                    .clone()
                    .context("give --config run.toml, or at least --data DIR and --out RUN_DIR")?,
                sensor: crate::data::Sensor::S1,
                train_split: None,
                train_chips: None,
                valid_split: None,
                valid_chips: None,
                synthetic: None,
                crop_px: 256,
                augment: true,
            },
            optim: OptimSection::default(),
            seed: 42,
            out: args
                .out
                .clone()
                .context("give --out RUN_DIR (where the model and log go)")?,
        },
    };
    let m = &mut config.model;
    if let Some(v) = &args.data {
        config.data.dir = v.clone();
    }
    if let Some(v) = args.sensor {
        config.data.sensor = v;
    }
    // A chip list given on the command line replaces the file's, whichever form either takes.
    if let Some(v) = &args.train_split {
        config.data.train_split = Some(v.clone());
        config.data.train_chips = None;
    }
    if let Some(v) = &args.valid_split {
        config.data.valid_split = Some(v.clone());
        config.data.valid_chips = None;
    }
    if let Some(v) = &args.out {
        config.out = v.clone();
    }
    if let Some(v) = &args.checkpoint {
        m.checkpoint = Some(v.clone());
    }
    if let Some(v) = args.preset {
        m.preset = v;
    }
    if let Some(v) = args.mode {
        m.arm = v;
    }
    if let Some(v) = args.lora_rank {
        m.lora_rank = v;
    }
    if let Some(v) = &args.lora_targets {
        m.lora_targets = LoraTarget::parse_list(v).map_err(anyhow::Error::msg)?;
    }
    if let Some(v) = args.crop_px {
        config.data.crop_px = v;
    }
    if let Some(v) = args.steps {
        config.optim.steps = v;
    }
    if let Some(v) = args.batch {
        config.optim.batch = v;
    }
    if let Some(v) = args.lr {
        config.optim.lr = v;
    }
    if let Some(v) = args.seed {
        config.seed = v;
    }
    if let Some(v) = &args.train_chips {
        config.data.train_chips = Some(v.clone());
        config.data.train_split = None;
    }
    if let Some(v) = &args.valid_chips {
        config.data.valid_chips = Some(v.clone());
        config.data.valid_split = None;
    }
    config.validate()?;
    Ok(config)
}

pub fn run(args: TrainArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    let config = config_from_args(&args)?;
    let devices = args.devices.autodiff_devices()?;
    let Some(eval_device) = devices.first().map(|d| d.clone().without_autodiff()) else {
        anyhow::bail!("--devices: name at least one device");
    };
    let d = &config.data;
    if !quiet && d.synthetic.is_some() {
        eprintln!("drawing the synthetic scenes…");
    }
    let train = training_chips(&config)?;
    let has_valid = d.valid_split.is_some() || d.valid_chips.is_some();
    let valid = if has_valid {
        load_chips(
            &d.dir,
            d.sensor,
            d.valid_split.as_deref(),
            d.valid_chips.as_deref(),
        )?
    } else {
        Vec::new()
    };
    if let Some(shared) = valid
        .iter()
        .find(|v| train.iter().any(|t| t.name == v.name))
    {
        eprintln!("floodtrain: warning: {} is in both the training and the validation chips; its scores are not a fair estimate", shared.name);
    }
    let mut trainer = Trainer::new(config.clone(), args.resume, &devices)?;
    let counts = trainer.model.param_counts();
    if !quiet {
        eprintln!(
            "{} training chips, {} validation; encoder {} + LoRA {} + head {} parameters, {} trainable",
            train.len(), valid.len(), counts.encoder, counts.lora, counts.head, counts.trainable
        );
    }
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(config.optim.steps as u64)
    };
    bar.set_style(ProgressStyle::with_template(
        "{bar:30} {pos}/{len} steps {msg} [{elapsed} < {eta}]",
    )?);
    bar.set_position(trainer.state.step as u64);
    trainer.fit(&train, |step, loss, iou| {
        bar.set_position(step as u64);
        bar.set_message(format!("loss {loss:.4} IoU {iou:.3}"));
    })?;
    bar.finish();
    if let Some(path) = trainer.save_encoder()? {
        if !quiet {
            eprintln!("encoder under Clay's key names: {}", path.display());
        }
    }
    if !valid.is_empty() {
        let model = trainer.inference_model();
        let evaluation = evaluate(
            &model,
            &valid,
            d.crop_px,
            config.optim.batch,
            config.model.loss,
            &eval_device,
            |_, _| {},
        );
        let json = evaluation.to_json();
        write_json(&config.out.join("eval.json"), &json)?;
        if !quiet {
            eprintln!(
                "validation water IoU {:.4} (pooled over {} chips)",
                evaluation.pooled().scores().iou.unwrap_or(f64::NAN),
                valid.len()
            );
        }
    }
    if !quiet {
        eprintln!("saved {}", config.out.display());
    }
    Ok(ExitCode::SUCCESS)
}

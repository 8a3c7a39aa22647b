use std::process::ExitCode;

use burn::tensor::Device;

use crate::model::clay::Preset;
use crate::model::{Arm, FloodModelConfig, HeadKind, LoraConfig, LoraTarget};

/// Count encoder, LoRA, head and trainable parameters of a configuration (no weights needed).
///
/// Example: `floodtrain params --preset large --mode lora --lora-rank 256 --lora-targets qkv`
/// gives the paper's setting: 25,165,824 LoRA parameters on a 311,442,944-parameter encoder.
#[derive(clap::Args, Debug)]
pub struct ParamsArgs {
    #[arg(long, value_enum, default_value = "tiny")]
    preset: Preset,
    #[arg(long, value_enum, default_value = "lora")]
    mode: Arm,
    #[arg(long, default_value_t = 16)]
    lora_rank: usize,
    /// α; the adapter output is scaled by α/r [default: the rank, i.e. scale 1].
    #[arg(long)]
    lora_alpha: Option<f64>,
    /// Comma-separated: qkv (fused), q, k, v, out, fc1, fc2.
    #[arg(long, default_value = "qkv")]
    lora_targets: String,
    #[arg(long, value_enum, default_value = "deconv")]
    head: HeadKind,
    /// Output channels: 1 (water logit, BCE + Dice) or 2 (land/water, cross-entropy).
    #[arg(long, default_value_t = 1)]
    classes: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: ParamsArgs) -> anyhow::Result<ExitCode> {
    let targets = LoraTarget::parse_list(&args.lora_targets).map_err(anyhow::Error::msg)?;
    let config = FloodModelConfig {
        encoder: args.preset.config(),
        head: args.head,
        classes: args.classes,
        sensor: crate::data::Sensor::S1,
        gsd_m: 10.0,
        arm: args.mode,
        lora: (args.mode == Arm::Lora).then(|| LoraConfig {
            rank: args.lora_rank,
            alpha: args.lora_alpha.unwrap_or(args.lora_rank as f64),
            targets,
        }),
    };
    let counts = crate::model::flood::count_params(&config, &Device::flex());
    if args.json {
        println!("{}", serde_json::to_string_pretty(&counts)?);
    } else {
        println!("encoder    {:>13}", group(counts.encoder));
        println!("lora       {:>13}", group(counts.lora));
        println!("head       {:>13}", group(counts.head));
        println!("trainable  {:>13}", group(counts.trainable));
        println!("total      {:>13}", group(counts.total));
    }
    Ok(ExitCode::SUCCESS)
}

/// 25165824 → "25,165,824".
fn group(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

use std::process::ExitCode;

use burn::tensor::Device;

use flood_models::adapter::Dtype;
use flood_models::sign::SigningKey;
use flood_models::Digest;

use flood_models::health::Expected;

use crate::export::{adapter, onnx_bytes, ExportOptions, Quantize, Weights};
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
    /// Also export the (randomly initialised) model in memory and report file sizes: merged
    /// ONNX in f32, f16 and int8, the base, and the adapter in f32 and f16. Sizes do not depend
    /// on the weights' values, so no training is needed. Takes a few GB of memory for `large`.
    #[arg(long)]
    export_sizes: bool,
    /// Tile and batch the size report exports for.
    #[arg(long, default_value_t = 256, requires = "export_sizes")]
    tile: usize,
    #[arg(long, default_value_t = 4, requires = "export_sizes")]
    batch: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Bytes of each export artefact.
#[derive(Debug, serde::Serialize)]
struct ExportSizes {
    merged_f32: usize,
    merged_f16: usize,
    merged_int8: usize,
    base_f32: usize,
    base_int8: usize,
    adapter_f32: Option<usize>,
    adapter_f16: Option<usize>,
}

fn export_sizes(
    config: &FloodModelConfig,
    tile_px: usize,
    batch: usize,
    device: &Device,
) -> anyhow::Result<ExportSizes> {
    let model = config.init(device);
    let size = |weights, quantize| {
        let options = ExportOptions {
            name: "size-report".into(),
            batch,
            tile_px,
            quantize,
        };
        onnx_bytes(config, &model, weights, &options, device).map(|b| b.len())
    };
    // Any key: a signature has the same size whoever signs.
    let key = SigningKey::from_bytes(&[1; 32]);
    let adapter_size = |dtype| -> anyhow::Result<Option<usize>> {
        if config.arm != Arm::Lora {
            return Ok(None);
        }
        // The health values' count, not their values, sets the size: skip the forward pass.
        let zeros = vec![0.0; batch * config.classes * tile_px * tile_px];
        let health = Expected::from_output(&zeros, batch, config.classes, tile_px, 1e-3);
        Ok(Some(
            adapter(&model, Digest::of(b"base"), 1, dtype, Some(health))?
                .encode(&key)?
                .len(),
        ))
    };
    Ok(ExportSizes {
        merged_f32: size(Weights::Merged, Quantize::None)?,
        merged_f16: size(Weights::Merged, Quantize::F16)?,
        merged_int8: size(Weights::Merged, Quantize::Int8)?,
        base_f32: size(Weights::Base, Quantize::None)?,
        base_int8: size(Weights::Base, Quantize::Int8)?,
        adapter_f32: adapter_size(Dtype::F32)?,
        adapter_f16: adapter_size(Dtype::F16)?,
    })
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
    let device = Device::flex();
    let counts = crate::model::flood::count_params(&config, &device);
    let sizes = args
        .export_sizes
        .then(|| export_sizes(&config, args.tile, args.batch, &device))
        .transpose()?;
    if args.json {
        let mut json = serde_json::to_value(&counts)?;
        if let (Some(sizes), Some(map)) = (&sizes, json.as_object_mut()) {
            map.insert("export_bytes".into(), serde_json::to_value(sizes)?);
        }
        outln!("{}", serde_json::to_string_pretty(&json)?)?;
    } else {
        outln!("encoder    {:>13}", group(counts.encoder))?;
        outln!("lora       {:>13}", group(counts.lora))?;
        outln!("head       {:>13}", group(counts.head))?;
        outln!("trainable  {:>13}", group(counts.trainable))?;
        outln!("total      {:>13}", group(counts.total))?;
        if let Some(s) = &sizes {
            let mib =
                |b: usize| format!("{:>13} bytes {:>9.2} MiB", group(b), b as f64 / 1048576.0);
            outln!("\nexport (tile {}, batch {}):", args.tile, args.batch)?;
            outln!("merged f32   {}", mib(s.merged_f32))?;
            outln!("merged f16   {}", mib(s.merged_f16))?;
            outln!(
                "merged int8  {}  ({:.1} % of f32)",
                mib(s.merged_int8),
                100.0 * s.merged_int8 as f64 / s.merged_f32 as f64
            )?;
            outln!("base f32     {}", mib(s.base_f32))?;
            outln!("base int8    {}", mib(s.base_int8))?;
            if let (Some(f32_), Some(f16_)) = (s.adapter_f32, s.adapter_f16) {
                outln!("adapter f32  {}", mib(f32_))?;
                outln!("adapter f16  {}", mib(f16_))?;
            }
        }
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

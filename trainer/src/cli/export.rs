use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use flood_models::adapter::Dtype;
use flood_models::sign::SigningKey;
use flood_models::Digest;

use super::device::DeviceArg;
use crate::export::{
    adapter, health, onnx_bytes, write_atomically, ExportOptions, Quantize, Weights,
};
use crate::model::Arm;
use crate::train::fit::load_run;

/// Export a trained model as ONNX for floodrt, and its LoRA adapter as a signed file.
///
/// The ONNX has LoRA merged into the weights (W' = W + (α/r)·B·A), the patch embedding
/// evaluated once for the model's bands (a plain Conv), a fixed batch and tile, and the manifest
/// (bands, normalisation, tile, classes, threshold, content hash, the LoRA-mergeable weights)
/// embedded, so floodrt needs no sidecar.
///
/// For over-the-air updates, `--base-out` writes the same model without LoRA (what a device
/// keeps) and `--adapter-out` the adapter alone, bound to that base file's SHA-256 and signed
/// with `--signing-key` (make one with `floodtrain keygen`). Devices merge it with
/// `floodrt segment --model base.onnx --adapter adapter.flad --trust KEY.pub`.
///
/// Example: floodtrain export --checkpoint runs/lora --out merged.onnx --quantize int8
///   --base-out base.onnx --adapter-out lora.flad --signing-key workstation.key
#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// Run folder written by `floodtrain train`.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Where to write the merged ONNX.
    #[arg(long)]
    out: PathBuf,
    /// The bands the model takes, comma-separated; must match the run's sensor (vv,vh for S1).
    #[arg(long, value_delimiter = ',')]
    bands: Option<Vec<String>>,
    /// How to store the large weights: none (f32), int8 (per-output-channel, about a quarter
    /// of the size) or f16 (half). The graph computes in f32 in every case.
    #[arg(long, value_enum, default_value = "none")]
    quantize: Quantize,
    /// Tile side in pixels (a multiple of 8).
    #[arg(long, default_value_t = 256)]
    tile: usize,
    /// Tiles per inference call (fixed in the graph).
    #[arg(long, default_value_t = 4)]
    batch: usize,
    /// The model's name in its manifest (floodrt's messages and reports) [default: the run
    /// folder's name].
    #[arg(long)]
    name: Option<String>,
    /// Also write the model without LoRA (same quantization, tile and batch): the base a
    /// device keeps and merges adapters into.
    #[arg(long, value_name = "BASE.onnx")]
    base_out: Option<PathBuf>,
    /// Also write the LoRA adapter alone, for the base written by --base-out.
    #[arg(long, value_name = "A.flad", requires_all = ["base_out", "signing_key"])]
    adapter_out: Option<PathBuf>,
    /// Secret key that signs the adapter (from `floodtrain keygen`).
    #[arg(long, value_name = "KEY")]
    signing_key: Option<PathBuf>,
    /// Adapter version; devices refuse one not newer than theirs [default: the Unix time].
    #[arg(long, value_name = "N")]
    adapter_version: Option<u64>,
    /// Precision of the adapter's factors.
    #[arg(long, value_enum, default_value = "f32")]
    adapter_dtype: AdapterDtype,
    #[command(flatten)]
    device: DeviceArg,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum AdapterDtype {
    F32,
    F16,
}

pub fn run(args: ExportArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    let device = args.device.device()?;
    let (config, model) = load_run(&args.checkpoint, &device)?;
    let expected: Vec<String> = config
        .sensor
        .band_names()
        .iter()
        .map(|b| b.to_lowercase())
        .collect();
    if let Some(bands) = &args.bands {
        let given: Vec<String> = bands.iter().map(|b| b.trim().to_lowercase()).collect();
        if given != expected {
            anyhow::bail!(
                "--bands {} does not match the model's bands {} (trained on {:?})",
                given.join(","),
                expected.join(","),
                config.sensor
            );
        }
    }
    if args.base_out.is_some() && config.arm != Arm::Lora {
        anyhow::bail!("--base-out: {} was trained with --mode {:?}, so it has no adapter to leave out; export it without --base-out", args.checkpoint.display(), config.arm);
    }
    // Read the key before the long work, so a wrong path fails at once.
    let key = args
        .signing_key
        .as_deref()
        .map(read_signing_key)
        .transpose()?;
    let name = args.name.clone().unwrap_or_else(|| {
        args.checkpoint
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("flood-model")
            .to_string()
    });
    let options = ExportOptions {
        name,
        batch: args.batch,
        tile_px: args.tile,
        quantize: args.quantize,
    };
    let report = |path: &Path, bytes: &[u8]| {
        if !quiet {
            eprintln!(
                "wrote {} ({} bytes, sha256 {})",
                path.display(),
                bytes.len(),
                Digest::of(bytes)
            );
        }
    };

    let merged = onnx_bytes(&config, &model, Weights::Merged, &options, &device)?;
    write_atomically(&args.out, &merged)?;
    report(&args.out, &merged);
    if let Some(base_out) = &args.base_out {
        let base = onnx_bytes(&config, &model, Weights::Base, &options, &device)?;
        write_atomically(base_out, &base)?;
        report(base_out, &base);
        if let (Some(adapter_out), Some(key)) = (&args.adapter_out, &key) {
            let dtype = match args.adapter_dtype {
                AdapterDtype::F32 => Dtype::F32,
                AdapterDtype::F16 => Dtype::F16,
            };
            let version = args.adapter_version.unwrap_or_else(unix_time);
            let health = health(&config, &model, &options, &device);
            let bytes =
                adapter(&model, Digest::of(&base), version, dtype, Some(health))?.encode(key)?;
            write_atomically(adapter_out, &bytes)?;
            report(adapter_out, &bytes);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn read_signing_key(path: &Path) -> anyhow::Result<SigningKey> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "{}: cannot read the signing key; make one with `floodtrain keygen --out {}`",
            path.display(),
            path.display()
        )
    })?;
    SigningKey::from_hex(&text).with_context(|| format!("{}: not a signing key", path.display()))
}

fn unix_time() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_secs())
}

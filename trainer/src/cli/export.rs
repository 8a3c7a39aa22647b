use std::path::PathBuf;
use std::process::ExitCode;

use flood_models::Digest;

use super::device::DeviceArg;
use crate::export::{onnx_bytes, write_atomically};
use crate::train::fit::load_run;

/// Export a trained model as ONNX for floodrt: LoRA merged into the weights, the patch
/// embedding evaluated once for the model's bands (a plain Conv), fixed batch and tile, the
/// manifest (bands, normalisation, tile, classes) embedded so floodrt needs no sidecar.
///
/// Only f32 is written so far; `--quantize int8|f16`, `--base-out` and `--adapter-out` are the
/// next steps of the export work (issue #4).
#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// Run folder written by `floodtrain train`.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Where to write the ONNX.
    #[arg(long)]
    out: PathBuf,
    /// The bands the model takes, comma-separated; must match the run's sensor (vv,vh for S1).
    #[arg(long, value_delimiter = ',')]
    bands: Option<Vec<String>>,
    /// Tile side in pixels (a multiple of 8).
    #[arg(long, default_value_t = 256)]
    tile: usize,
    /// Tiles per inference call (fixed in the graph).
    #[arg(long, default_value_t = 4)]
    batch: usize,
    #[command(flatten)]
    device: DeviceArg,
}

pub fn run(args: ExportArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    let device = args.device.device()?;
    let (config, model) = load_run(&args.checkpoint, &device)?;
    let expected: Vec<String> = config.sensor.band_names().iter().map(|b| b.to_lowercase()).collect();
    if let Some(bands) = &args.bands {
        let given: Vec<String> = bands.iter().map(|b| b.trim().to_lowercase()).collect();
        if given != expected {
            anyhow::bail!("--bands {} does not match the model's bands {} (trained on {:?})", given.join(","), expected.join(","), config.sensor);
        }
    }
    let name = args.checkpoint.file_name().and_then(|n| n.to_str()).unwrap_or("flood-model").to_string();
    let bytes = onnx_bytes(&config, model, &name, args.batch, args.tile, &device)?;
    write_atomically(&args.out, &bytes)?;
    if !quiet {
        eprintln!("wrote {} ({} bytes, sha256 {})", args.out.display(), bytes.len(), Digest::of(&bytes));
    }
    Ok(ExitCode::SUCCESS)
}

use std::path::PathBuf;
use std::process::ExitCode;

use burn::tensor::Device;

use crate::parity::{self, TOLERANCE};

/// Check the Rust Clay encoder against reference PyTorch outputs.
///
/// DIR holds `clay_encoder.ckpt`, `clay_encoder.safetensors`, `io.safetensors` and
/// `config.json` (dims, batch, input size). Both checkpoint files are loaded, the stored inputs
/// run through the encoder, and the max abs difference at each stage (patch_kernel,
/// patch_embed, with_encodings, encoder_out) is printed as JSON. Exits 1 when any stage
/// differs by more than 1e-4.
#[derive(clap::Args, Debug)]
pub struct ParityArgs {
    /// Fixture folder, e.g. ../shared/fixtures/clay-parity.
    dir: PathBuf,
}

pub fn run(args: ParityArgs) -> anyhow::Result<ExitCode> {
    let device = Device::flex();
    parity::read_config(&args.dir)?;
    let mut results = Vec::new();
    for file in ["clay_encoder.ckpt", "clay_encoder.safetensors"] {
        let checkpoint = args.dir.join(file);
        if !checkpoint.exists() {
            anyhow::bail!("{}: missing; a parity fixture holds clay_encoder.ckpt and clay_encoder.safetensors", checkpoint.display());
        }
        results.push(parity::check(&args.dir, &checkpoint, &device)?);
    }
    let worst = results.iter().map(|r| r.worst()).fold(0.0, f64::max);
    let report = serde_json::json!({
        "tolerance": TOLERANCE,
        "pass": worst <= TOLERANCE,
        "checkpoints": results.iter().map(|r| serde_json::json!({
            "file": r.checkpoint,
            "max_abs_diff": r.max_abs_diff.iter().map(|(k, v)| (k.clone(), serde_json::json!(v))).collect::<serde_json::Map<_, _>>(),
        })).collect::<Vec<_>>(),
    });
    outln!("{}", serde_json::to_string_pretty(&report)?)?;
    Ok(if worst <= TOLERANCE {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

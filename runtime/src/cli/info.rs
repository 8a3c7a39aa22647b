//! `floodrt info`: what a model takes and gives, its manifest, size and operators.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::model::load_model;

/// Describe a model: inputs, outputs, manifest, parameter count, operator histogram.
#[derive(Args, Debug)]
pub struct InfoArgs {
    /// ONNX model or `embedded:NAME` [default: the built-in default model, with its card].
    pub model: Option<PathBuf>,
    /// Manifest (TOML) for a model that carries none.
    #[arg(long, value_name = "M.toml")]
    pub manifest: Option<PathBuf>,
    /// One JSON object on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: InfoArgs) -> anyhow::Result<ExitCode> {
    let (file, manifest) = load_model(args.model.as_deref(), args.manifest.as_deref())?;
    if manifest.is_none() {
        log::warn!(
            "{} carries no manifest in its metadata; pass one with --manifest M.toml",
            file.source
        );
    }
    let info = file.info();
    let card = crate::embedded::card(&file.source);
    if args.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({ "model": info, "manifest": manifest, "card": card })
            )?
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(card) = &card {
        outln!("{}\n", card.text.trim_end())?;
    }
    outln!("model       {}", info.source)?;
    outln!("sha256      {}", info.sha256)?;
    outln!("opset       {}", info.opset)?;
    for t in &info.inputs {
        outln!(
            "input       {} {} [{}]",
            t.name,
            t.element_type,
            t.shape.join(", ")
        )?;
    }
    for t in &info.outputs {
        outln!(
            "output      {} {} [{}]",
            t.name,
            t.element_type,
            t.shape.join(", ")
        )?;
    }
    outln!(
        "parameters  {} ({:.2} MiB of weights)",
        info.parameters,
        info.weight_bytes as f64 / 1048576.0
    )?;
    let ops: Vec<String> = info
        .operators
        .iter()
        .map(|(op, n)| format!("{op} ×{n}"))
        .collect();
    outln!("operators   {}", ops.join(", "))?;
    match manifest {
        Some(m) => outln!(
            "\nmanifest{}:\n{}",
            if args.manifest.is_some() {
                " (from --manifest)"
            } else {
                " (embedded)"
            },
            m.to_toml()
        )?,
        None => outln!("\nmanifest    none; pass --manifest M.toml to run this model")?,
    }
    Ok(ExitCode::SUCCESS)
}

//! Clay parity: run the encoder on a fixture's stored inputs and compare every stage with the
//! reference PyTorch outputs (`floodtrain parity DIR`).

use std::path::Path;

use burn::tensor::{Device, Tensor};
use serde::Deserialize;

use crate::model::checkpoint::{CheckpointError, StateDict, TensorFile};
use crate::model::clay::{ClayEncoderConfig, PATCH_PX};

/// Largest max-abs difference a stage may show.
pub const TOLERANCE: f64 = 1e-4;

/// The stages a fixture stores, in forward order.
pub const STAGES: [&str; 4] = [
    "patch_kernel",
    "patch_embed",
    "with_encodings",
    "encoder_out",
];

/// `config.json` of a parity fixture.
#[derive(Debug, Deserialize)]
pub struct FixtureConfig {
    pub dim: usize,
    pub depth: usize,
    pub heads: usize,
    pub dim_head: usize,
    pub mlp_ratio: usize,
    #[serde(default = "default_patch")]
    pub patch_size: usize,
    pub batch: usize,
    pub height: usize,
    pub width: usize,
}

fn default_patch() -> usize {
    PATCH_PX
}

/// Max abs difference per stage for one checkpoint file.
#[derive(Debug, serde::Serialize)]
pub struct StageDiffs {
    pub checkpoint: String,
    pub max_abs_diff: Vec<(String, f32)>,
}

impl StageDiffs {
    pub fn worst(&self) -> f64 {
        self.max_abs_diff
            .iter()
            .map(|(_, d)| f64::from(*d))
            .fold(0.0, f64::max)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ParityError {
    #[error("{path}: {reason}")]
    Config { path: String, reason: String },
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

pub fn read_config(dir: &Path) -> Result<FixtureConfig, ParityError> {
    let path = dir.join("config.json");
    let err = |reason: String| ParityError::Config {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| err(format!("cannot read: {e}")))?;
    let config: FixtureConfig =
        serde_json::from_str(&text).map_err(|e| err(format!("not a parity config: {e}")))?;
    if config.patch_size != PATCH_PX {
        return Err(err(format!(
            "patch_size {} is not Clay's {PATCH_PX}",
            config.patch_size
        )));
    }
    Ok(config)
}

impl FixtureConfig {
    pub fn encoder(&self) -> ClayEncoderConfig {
        ClayEncoderConfig::new(self.dim, self.depth, self.heads)
            .with_dim_head(self.dim_head)
            .with_mlp_ratio(self.mlp_ratio)
    }
}

/// Loads `checkpoint`, runs the stored inputs through it and compares each stage.
pub fn check(dir: &Path, checkpoint: &Path, device: &Device) -> Result<StageDiffs, ParityError> {
    let config = read_config(dir)?;
    let encoder_config = config.encoder();
    encoder_config
        .validate()
        .map_err(|reason| ParityError::Config {
            path: dir.join("config.json").display().to_string(),
            reason,
        })?;
    let encoder = StateDict::open(checkpoint)?.load_encoder(&encoder_config, device)?;

    let mut io = TensorFile::open(&dir.join("io.safetensors"))?;
    let (b, h, w) = (config.batch, config.height, config.width);
    let waves = io.data("waves")?;
    let waves_um: Vec<f32> = waves.try_to_vec::<f32>().map_err(|e| ParityError::Config {
        path: "io.safetensors".into(),
        reason: format!("{e:?}"),
    })?;
    let bands = waves_um.len();
    let gsd: Vec<f32> = io
        .data("gsd")?
        .try_to_vec::<f32>()
        .map_err(|e| ParityError::Config {
            path: "io.safetensors".into(),
            reason: format!("{e:?}"),
        })?;
    let gsd_m = gsd.first().copied().unwrap_or(10.0);
    let pixels: Tensor<4> = io.tensor("pixels", [b, bands, h, w], device)?;
    let time: Tensor<2> = io.tensor("time", [b, 4], device)?;
    let latlon: Tensor<2> = io.tensor("latlon", [b, 4], device)?;
    let metadata = Tensor::cat(vec![time, latlon], 1);

    let stages = encoder.forward_stages(pixels, metadata, &waves_um, gsd_m);
    let tokens = (h / PATCH_PX) * (w / PATCH_PX);
    let d = config.dim;
    let mut diffs = Vec::new();
    diffs.push((
        "patch_kernel".to_string(),
        max_abs_diff(
            stages.patch_kernel,
            io.tensor("patch_kernel", [d, bands, PATCH_PX, PATCH_PX], device)?,
        ),
    ));
    if io.names().iter().any(|n| n == "patch_bias") {
        diffs.push((
            "patch_bias".to_string(),
            max_abs_diff(stages.patch_bias, io.tensor("patch_bias", [d], device)?),
        ));
    }
    diffs.push((
        "patch_embed".to_string(),
        max_abs_diff(
            stages.patch_embed,
            io.tensor("patch_embed", [b, tokens, d], device)?,
        ),
    ));
    diffs.push((
        "with_encodings".to_string(),
        max_abs_diff(
            stages.with_encodings,
            io.tensor("with_encodings", [b, tokens, d], device)?,
        ),
    ));
    diffs.push((
        "encoder_out".to_string(),
        max_abs_diff(
            stages.encoder_out,
            io.tensor("encoder_out", [b, tokens + 1, d], device)?,
        ),
    ));
    Ok(StageDiffs {
        checkpoint: checkpoint.display().to_string(),
        max_abs_diff: diffs,
    })
}

fn max_abs_diff<const D: usize>(ours: Tensor<D>, reference: Tensor<D>) -> f32 {
    let diff = (ours - reference).abs().max().into_scalar::<f32>();
    // NaN anywhere must fail the check, not vanish in a max.
    if diff.is_nan() {
        f32::INFINITY
    } else {
        diff
    }
}

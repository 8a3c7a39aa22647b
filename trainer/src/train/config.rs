//! `run.toml`: every training option in one file; the CLI overrides single values.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data::synthetic::SyntheticSection;
use crate::data::Sensor;
use crate::model::clay::{ClayEncoderConfig, Preset};
use crate::model::{Arm, FloodModelConfig, HeadKind, LoraConfig, LoraTarget};
use crate::train::loss::LossKind;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    #[serde(default)]
    pub model: ModelSection,
    pub data: DataSection,
    #[serde(default)]
    pub optim: OptimSection,
    /// Seeds weights, crops and augmentations; the same seed repeats a run exactly.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Run folder: model, optimizer state, `train.jsonl`, `eval.json`.
    pub out: PathBuf,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSection {
    /// Clay encoder weights (`.ckpt` or `.safetensors`); without one the encoder starts random.
    pub checkpoint: Option<PathBuf>,
    pub preset: Preset,
    /// Custom dims override the preset's.
    pub dim: Option<usize>,
    pub depth: Option<usize>,
    pub heads: Option<usize>,
    pub dim_head: Option<usize>,
    pub mlp_ratio: Option<usize>,
    pub arm: Arm,
    pub head: HeadKind,
    pub loss: LossKind,
    pub lora_rank: usize,
    /// Defaults to the rank (scale α/r = 1).
    pub lora_alpha: Option<f64>,
    pub lora_targets: Vec<LoraTarget>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// Sen1Floods11 layout: `S1Hand/`, `S2Hand/`, `LabelHand/` (training chips unless
    /// `synthetic` is set; validation chips always).
    #[serde(default)]
    pub dir: PathBuf,
    /// Train on generated Sentinel-1 scenes instead of the folder's chips (pretraining).
    pub synthetic: Option<SyntheticSection>,
    #[serde(default = "default_sensor")]
    pub sensor: Sensor,
    /// CSV of `S1Hand,LabelHand` file pairs to train on; without it, `train_chips` or every chip.
    pub train_split: Option<PathBuf>,
    /// Chip names (`India_900498`) to train on (a subset of `train_split` when both are given).
    pub train_chips: Option<Vec<String>>,
    /// CSV or names to evaluate on after training (never the training chips when reporting).
    pub valid_split: Option<PathBuf>,
    pub valid_chips: Option<Vec<String>>,
    #[serde(default = "default_crop")]
    pub crop_px: usize,
    #[serde(default = "default_true")]
    pub augment: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OptimSection {
    /// Optimizer steps.
    pub steps: usize,
    /// Samples per micro-batch.
    pub batch: usize,
    /// Micro-batches whose gradients add up to one step.
    pub accumulate: usize,
    pub lr: f64,
    pub min_lr: f64,
    pub warmup_steps: usize,
    pub weight_decay: f32,
    /// Save the run every this many steps (and at the end).
    pub save_every: usize,
}

fn default_seed() -> u64 {
    42
}
fn default_sensor() -> Sensor {
    Sensor::S1
}
fn default_crop() -> usize {
    256
}
fn default_true() -> bool {
    true
}

impl Default for ModelSection {
    fn default() -> Self {
        Self {
            checkpoint: None,
            preset: Preset::Tiny,
            dim: None,
            depth: None,
            heads: None,
            dim_head: None,
            mlp_ratio: None,
            arm: Arm::Lora,
            head: HeadKind::Deconv,
            loss: LossKind::BceDice,
            lora_rank: 16,
            lora_alpha: None,
            lora_targets: vec![LoraTarget::Qkv],
        }
    }
}

impl Default for OptimSection {
    fn default() -> Self {
        Self {
            steps: 500,
            batch: 4,
            accumulate: 1,
            lr: 1e-3,
            min_lr: 1e-5,
            warmup_steps: 20,
            weight_decay: 0.01,
            save_every: 100,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl TrainConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let err = |reason: String| ConfigError::Read {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        toml::from_str(&text).map_err(|e| err(e.to_string()))
    }

    pub fn encoder(&self) -> ClayEncoderConfig {
        let m = &self.model;
        let base = m.preset.config();
        ClayEncoderConfig::new(
            m.dim.unwrap_or(base.dim),
            m.depth.unwrap_or(base.depth),
            m.heads.unwrap_or(base.heads),
        )
        .with_dim_head(m.dim_head.unwrap_or(base.dim_head))
        .with_mlp_ratio(m.mlp_ratio.unwrap_or(base.mlp_ratio))
    }

    pub fn flood_model(&self) -> FloodModelConfig {
        let m = &self.model;
        FloodModelConfig {
            encoder: self.encoder(),
            head: m.head,
            classes: m.loss.classes(),
            sensor: self.data.sensor,
            gsd_m: 10.0,
            arm: m.arm,
            lora: (m.arm == Arm::Lora).then(|| LoraConfig {
                rank: m.lora_rank,
                alpha: m.lora_alpha.unwrap_or(m.lora_rank as f64),
                targets: m.lora_targets.clone(),
            }),
        }
    }

    /// Checks what serde cannot: sizes and combinations.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |s: String| Err(ConfigError::Invalid(s));
        self.encoder().validate().map_err(ConfigError::Invalid)?;
        let o = &self.optim;
        if o.steps == 0 || o.batch == 0 || o.accumulate == 0 {
            return bad("optim.steps, optim.batch and optim.accumulate must be at least 1".into());
        }
        if !(o.lr > 0.0 && o.lr.is_finite()) || o.min_lr < 0.0 || o.min_lr > o.lr {
            return bad(format!(
                "optim.lr {} must be positive and at least optim.min_lr {}",
                o.lr, o.min_lr
            ));
        }
        if self.data.crop_px == 0 || !self.data.crop_px.is_multiple_of(8) {
            return bad(format!(
                "data.crop_px {} must be a positive multiple of 8 (Clay's patch size)",
                self.data.crop_px
            ));
        }
        if let Some(synthetic) = &self.data.synthetic {
            if self.data.sensor != Sensor::S1 {
                return bad(
                    "data.synthetic draws Sentinel-1 scenes; set data.sensor = \"s1\"".into(),
                );
            }
            if synthetic.scenes == 0 || synthetic.size < self.data.crop_px {
                return bad(format!(
                    "data.synthetic needs at least one scene of at least data.crop_px ({}) pixels",
                    self.data.crop_px
                ));
            }
        } else if self.data.dir.as_os_str().is_empty() {
            return bad(
                "data.dir is missing: the chip folder to train on (or set data.synthetic)".into(),
            );
        }
        if self.model.arm == Arm::Lora {
            if self.model.lora_rank == 0 {
                return bad("model.lora_rank must be at least 1".into());
            }
            let names: Vec<String> = self
                .model
                .lora_targets
                .iter()
                .map(|t| format!("{t:?}").to_lowercase())
                .collect();
            LoraTarget::parse_list(&names.join(",")).map_err(ConfigError::Invalid)?;
        }
        Ok(())
    }
}

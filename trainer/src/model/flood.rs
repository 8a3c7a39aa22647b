//! The flood model: Clay encoder + segmentation head, adapted by one of the paper's three arms.

use burn::module::{Lora, Module, ModuleVisitor, Param, ParamGroup};
use burn::tensor::{Device, Tensor};

use super::clay::{encoder::patch_grid, ClayEncoder, ClayEncoderConfig};
use super::head::{Head, HeadKind};
use crate::data::Sensor;

/// How the encoder is adapted (the paper's arms).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Arm {
    /// Encoder fixed; only the head trains.
    Frozen,
    /// Encoder fixed, LoRA adapters on the chosen projections; adapters and head train.
    Lora,
    /// Everything trains.
    Full,
}

/// A projection LoRA can adapt.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum LoraTarget {
    /// Clay's fused q|k|v projection, one adapter over all three.
    Qkv,
    /// The q third alone (the encoder keeps q, k, v split).
    Q,
    /// The k third alone.
    K,
    /// The v third alone.
    V,
    /// The attention output projection.
    Out,
    /// The MLP's first layer.
    Fc1,
    /// The MLP's second layer.
    Fc2,
}

impl LoraTarget {
    /// The weight's path inside a block.
    fn block_path(self) -> &'static str {
        match self {
            LoraTarget::Qkv => "attn.to_qkv.weight",
            LoraTarget::Q => "attn.to_q.weight",
            LoraTarget::K => "attn.to_k.weight",
            LoraTarget::V => "attn.to_v.weight",
            LoraTarget::Out => "attn.to_out.weight",
            LoraTarget::Fc1 => "ff.fc1.weight",
            LoraTarget::Fc2 => "ff.fc2.weight",
        }
    }

    /// Parses `qkv`, `q,v`, `out,fc1,fc2`…
    pub fn parse_list(list: &str) -> Result<Vec<LoraTarget>, String> {
        use clap::ValueEnum;
        let mut targets = Vec::new();
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let target = LoraTarget::from_str(name, true)
                .map_err(|_| format!("unknown LoRA target `{name}` (use qkv, q, k, v, out, fc1, fc2, comma-separated)"))?;
            if !targets.contains(&target) {
                targets.push(target);
            }
        }
        if targets.is_empty() {
            return Err("no LoRA targets given (use e.g. `qkv` or `q,v`)".into());
        }
        if targets.contains(&LoraTarget::Qkv)
            && targets
                .iter()
                .any(|t| matches!(t, LoraTarget::Q | LoraTarget::K | LoraTarget::V))
        {
            return Err(
                "`qkv` adapts the fused projection; it cannot be combined with q, k or v".into(),
            );
        }
        Ok(targets)
    }

    /// Whether these targets need q, k, v as separate projections.
    pub fn needs_split(targets: &[LoraTarget]) -> bool {
        targets
            .iter()
            .any(|t| matches!(t, LoraTarget::Q | LoraTarget::K | LoraTarget::V))
    }
}

/// LoRA settings: rank r, scale α/r, targets.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LoraConfig {
    pub rank: usize,
    pub alpha: f64,
    pub targets: Vec<LoraTarget>,
}

/// Everything needed to rebuild a model (saved as `config.json` beside its weights).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FloodModelConfig {
    pub encoder: ClayEncoderConfig,
    pub head: HeadKind,
    /// 1: one water logit (BCE + Dice); 2: land/water logits (cross-entropy).
    pub classes: usize,
    /// The input bands (their wavelengths condition Clay's patch embedding) and normalisation.
    pub sensor: Sensor,
    pub gsd_m: f32,
    pub arm: Arm,
    pub lora: Option<LoraConfig>,
}

#[derive(Module, Debug)]
pub struct FloodModel {
    pub encoder: ClayEncoder,
    pub head: Head,
    #[module(skip)]
    pub waves_um: Vec<f32>,
    pub gsd_m: f32,
}

impl FloodModelConfig {
    /// The encoder config this model needs (split q/k/v when LoRA targets a third).
    pub fn encoder_config(&self) -> ClayEncoderConfig {
        let split = self
            .lora
            .as_ref()
            .is_some_and(|l| self.arm == Arm::Lora && LoraTarget::needs_split(&l.targets));
        self.encoder.clone().with_split_qkv(split)
    }

    /// Puts a head on `encoder` and applies the arm. The encoder must have been built (or
    /// loaded) with [`Self::encoder_config`].
    pub fn build(&self, encoder: ClayEncoder, device: &Device) -> FloodModel {
        let encoder = match (self.arm, &self.lora) {
            (Arm::Frozen, _) => encoder.freeze(),
            (Arm::Lora, Some(lora)) => encoder.apply_lora(
                Lora::new(lora.rank, lora.alpha)
                    .set_param_group(lora_group(&lora.targets, self.encoder.depth)),
            ),
            (Arm::Lora, None) | (Arm::Full, _) => encoder,
        };
        FloodModel {
            encoder,
            head: Head::new(self.head, self.encoder.dim, self.classes, device),
            waves_um: self.sensor.waves_um(),
            gsd_m: self.gsd_m,
        }
    }

    /// A model with random encoder weights (tests, parameter counts, benchmarks).
    pub fn init(&self, device: &Device) -> FloodModel {
        self.build(self.encoder_config().init(device), device)
    }
}

/// The exact weights LoRA adapts, by path inside the encoder.
pub fn lora_group(targets: &[LoraTarget], depth: usize) -> ParamGroup {
    let paths: Vec<String> = (0..depth)
        .flat_map(|i| {
            targets
                .iter()
                .map(move |t| format!("blocks.{i}.{}", t.block_path()))
        })
        .collect();
    ParamGroup::from_paths(paths)
}

impl FloodModel {
    /// # Shapes
    /// - `pixels`: `[B, C, H, W]` normalised, H and W multiples of 8
    /// - returns logits `[B, classes, H, W]`
    pub fn forward(&self, pixels: Tensor<4>) -> Tensor<4> {
        let [batch, ..] = pixels.dims();
        let grid = patch_grid(&pixels);
        let metadata = Tensor::zeros([batch, 8], &pixels.device());
        let tokens = self
            .encoder
            .forward(pixels, metadata, &self.waves_um, self.gsd_m);
        let [_, n, dim] = tokens.dims();
        self.head
            .forward(tokens.slice([0..batch, 1..n, 0..dim]), grid)
    }
}

/// Parameter counts by part; LoRA factors are counted apart from the encoder weights they adapt.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ParamCounts {
    pub encoder: usize,
    pub lora: usize,
    pub head: usize,
    pub trainable: usize,
    pub total: usize,
}

/// Every float parameter with its path and whether it trains.
#[derive(Default)]
pub struct ParamList {
    path: Vec<String>,
    pub params: Vec<ParamInfo>,
}

#[derive(Clone, Debug)]
pub struct ParamInfo {
    pub path: String,
    pub id: burn::module::ParamId,
    pub numel: usize,
    pub trainable: bool,
}

impl ModuleVisitor for ParamList {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.params.push(ParamInfo {
            path: self.path.join("."),
            id: param.id,
            numel: param.shape().num_elements(),
            trainable: param.is_require_grad(),
        });
    }
}

impl ParamInfo {
    /// LoRA factors live under the reparameterised weight: `….weight.lora.a` / `.b`.
    pub fn is_lora(&self) -> bool {
        self.path.contains(".lora.")
    }
}

impl FloodModel {
    pub fn param_list(&self) -> Vec<ParamInfo> {
        let mut list = ParamList::default();
        self.visit(&mut list);
        list.params
    }

    pub fn param_counts(&self) -> ParamCounts {
        let mut counts = ParamCounts::default();
        for p in self.param_list() {
            match () {
                _ if p.is_lora() => counts.lora += p.numel,
                _ if p.path.starts_with("encoder") => counts.encoder += p.numel,
                _ => counts.head += p.numel,
            }
            if p.trainable {
                counts.trainable += p.numel;
            }
            counts.total += p.numel;
        }
        counts
    }
}

/// Counts the parameters of a configuration on a model with freshly initialised weights
/// (burn initialises parameters lazily, so most of them are never materialised here). The
/// model is built for autodiff, where "trainable" (requires grad) has its meaning.
pub fn count_params(config: &FloodModelConfig, device: &Device) -> ParamCounts {
    config.init(&device.clone().autodiff()).param_counts()
}

/// Every float parameter's values with its path, in visiting order (for bit-exact comparisons).
pub fn param_values<M: Module>(module: &M) -> Vec<(String, Vec<f32>)> {
    let mut collector = ValueCollector::default();
    module.visit(&mut collector);
    collector.values
}

#[derive(Default)]
struct ValueCollector {
    path: Vec<String>,
    values: Vec<(String, Vec<f32>)>,
}

impl ModuleVisitor for ValueCollector {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let values = param
            .val()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap_or_default();
        self.values.push((self.path.join("."), values));
    }
}

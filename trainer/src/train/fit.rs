//! The training loop: micro-batches → BCE+Dice → backward → accumulate → AdamW step, with a
//! warm-up/cosine schedule, a JSONL log, checkpoints and resume.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use burn::module::Module;
use burn::optim::{
    AdamWConfig, GradientsAccumulator, GradientsParams, ModuleOptimizer, MultiGradientsParams,
};
use burn::store::{BurnpackStore, ModuleSnapshot};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::data::augment::{cut, Augmenter};
use crate::data::batcher::batch;
use crate::data::{chips, Chip};
use crate::model::checkpoint::StateDict;
use crate::model::{FloodModel, FloodModelConfig};
use crate::train::config::TrainConfig;
use crate::train::loss::{loss, water_probability};
use crate::train::metrics::Confusion;
use crate::train::schedule::learning_rate;

/// File names inside a run folder.
/// Burnpack, not safetensors: it keeps each parameter's id, which the optimizer state is keyed
/// by, so a resumed run continues exactly.
pub const MODEL_FILE: &str = "model.bpk";
pub const MODEL_CONFIG_FILE: &str = "model.json";
pub const OPTIMIZER_FILE: &str = "optimizer.bpk";
pub const STATE_FILE: &str = "state.json";
pub const LOG_FILE: &str = "train.jsonl";
pub const CONFIG_FILE: &str = "config.json";
/// The trained encoder under Clay's key names, written by runs that train it (arm `full`).
pub const ENCODER_FILE: &str = "encoder.safetensors";

/// Progress of a run, saved with every checkpoint.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RunState {
    /// Optimizer steps completed.
    pub step: usize,
    pub last_loss: f64,
}

/// One line of `train.jsonl`.
#[derive(Debug, Serialize)]
struct LogLine {
    step: usize,
    loss: f64,
    lr: f64,
    /// Water IoU over the batches since the previous line.
    running_iou: f64,
    seconds: f64,
}

/// Loads the chips named by a split CSV, a name list, or (neither) the whole folder.
pub fn load_chips(
    dir: &Path,
    sensor: chips::Sensor,
    split: Option<&Path>,
    names: Option<&[String]>,
) -> anyhow::Result<Vec<Chip>> {
    let mut refs = chips::list(dir, sensor, split)?;
    if let Some(names) = names {
        for name in names {
            if !refs.iter().any(|r| &r.name == name) {
                anyhow::bail!(
                    "chip `{name}` is not in {} (looked for {}/{name}_{}.tif)",
                    dir.display(),
                    sensor.folder(),
                    sensor.folder()
                );
            }
        }
        refs.retain(|r| names.contains(&r.name));
    }
    refs.iter()
        .map(|r| chips::load(r, sensor).with_context(|| format!("loading chip {}", r.name)))
        .collect()
}

/// The chips a run trains on: drawn scenes (`data.synthetic`) or the data folder's chips.
pub fn training_chips(config: &TrainConfig) -> anyhow::Result<Vec<Chip>> {
    let d = &config.data;
    match &d.synthetic {
        Some(section) => Ok(crate::data::synthetic::chips(section)),
        None => load_chips(
            &d.dir,
            d.sensor,
            d.train_split.as_deref(),
            d.train_chips.as_deref(),
        ),
    }
}

/// Builds the model a config describes: encoder from its checkpoint (or random), arm, head.
pub fn build_model(
    config: &TrainConfig,
    device: &Device,
) -> anyhow::Result<(FloodModelConfig, FloodModel)> {
    let model_config = config.flood_model();
    let encoder_config = model_config.encoder_config();
    let encoder = match &config.model.checkpoint {
        Some(path) => StateDict::open(path)?.load_encoder(&encoder_config, device)?,
        None => encoder_config.init(device),
    };
    Ok((model_config.clone(), model_config.build(encoder, device)))
}

/// Rebuilds a trained model from its run folder (`model.json` + `model.safetensors`).
pub fn load_run(dir: &Path, device: &Device) -> anyhow::Result<(FloodModelConfig, FloodModel)> {
    let config_path = dir.join(MODEL_CONFIG_FILE);
    let text = fs::read_to_string(&config_path).with_context(|| {
        format!(
            "{}: cannot read; is {} a floodtrain run folder?",
            config_path.display(),
            dir.display()
        )
    })?;
    let config: FloodModelConfig = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a model config", config_path.display()))?;
    let mut model = config.init(device);
    let weights = dir.join(MODEL_FILE);
    if !weights.is_file() {
        anyhow::bail!(
            "{}: missing; the run has not saved a model yet",
            weights.display()
        );
    }
    let mut store = BurnpackStore::from_file(&weights).auto_extension(false);
    let result = model
        .load_from(&mut store)
        .map_err(|e| anyhow::anyhow!("{}: {e}", weights.display()))?;
    if !result.missing.is_empty() {
        anyhow::bail!(
            "{}: missing weights for {:?}",
            weights.display(),
            result.missing
        );
    }
    Ok((config, model))
}

pub struct Trainer {
    pub config: TrainConfig,
    pub model_config: FloodModelConfig,
    pub model: FloodModel,
    optimizer: ModuleOptimizer,
    pub state: RunState,
    /// Where the replicas train; the model and optimizer state live on the first.
    devices: Vec<Device>,
}

impl Trainer {
    /// Prepares a run on one or more devices (autodiff ones: `Device::autodiff`); with
    /// `resume`, continues from the run folder's last checkpoint.
    pub fn new(config: TrainConfig, resume: bool, devices: &[Device]) -> anyhow::Result<Self> {
        config.validate()?;
        let Some(device) = devices.first() else {
            anyhow::bail!("no device to train on");
        };
        anyhow::ensure!(
            config.optim.batch >= devices.len(),
            "optim.batch is {} but there are {} devices: each device needs at least one sample per micro-batch; raise the batch or use fewer devices",
            config.optim.batch,
            devices.len()
        );
        // Weight init draws from burn's generator: seed it so a run repeats exactly.
        device.seed(config.seed);
        let (model_config, mut model) = build_model(&config, device)?;
        let mut optimizer: ModuleOptimizer = AdamWConfig::new()
            .with_weight_decay(config.optim.weight_decay)
            .init();
        let mut state = RunState::default();
        let state_path = config.out.join(STATE_FILE);
        if resume && state_path.is_file() {
            state = serde_json::from_str(&fs::read_to_string(&state_path)?)
                .with_context(|| format!("{}: not a run state", state_path.display()))?;
            let weights = config.out.join(MODEL_FILE);
            model
                .load_from(&mut BurnpackStore::from_file(&weights).auto_extension(false))
                .map_err(|e| anyhow::anyhow!("{}: {e}", weights.display()))?;
            let optim_path = config.out.join(OPTIMIZER_FILE);
            optimizer = optimizer
                .load(&optim_path)
                .map_err(|e| anyhow::anyhow!("{}: {e:?}", optim_path.display()))?;
        }
        Ok(Self {
            config,
            model_config,
            model,
            optimizer,
            state,
            devices: devices.to_vec(),
        })
    }

    /// Runs the remaining steps on `chips`; `on_step` sees (step, loss) after each.
    pub fn fit(
        &mut self,
        chips: &[Chip],
        mut on_step: impl FnMut(usize, f64, f64),
    ) -> anyhow::Result<RunState> {
        anyhow::ensure!(!chips.is_empty(), "no training chips");
        let out = self.config.out.clone();
        fs::create_dir_all(&out)
            .with_context(|| format!("{}: cannot create the run folder", out.display()))?;
        write_json(&out.join(CONFIG_FILE), &self.config)?;
        write_json(&out.join(MODEL_CONFIG_FILE), &self.model_config)?;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(out.join(LOG_FILE))?;
        let o = self.config.optim.clone();
        let kind = self.config.model.loss;
        let side = self.config.data.crop_px;
        let started = Instant::now();
        let mut window = Confusion::default();
        while self.state.step < o.steps {
            let step = self.state.step;
            // Each step draws from its own seed, so a resumed run sees the same samples.
            let mut augmenter = Augmenter::new(
                self.config
                    .seed
                    .wrapping_mul(0x9E37_79B9)
                    .wrapping_add(step as u64),
                side,
                self.config.data.augment,
            );
            // Data parallel: one replica per device, each on its share of every micro-batch.
            let replicas: Vec<FloodModel> = self
                .devices
                .iter()
                .map(|device| self.model.clone().fork(device))
                .collect();
            let mut accumulators: Vec<_> = replicas
                .iter()
                .map(|_| GradientsAccumulator::<FloodModel>::new())
                .collect();
            let mut losses = Vec::new();
            for _ in 0..o.accumulate {
                let samples: Vec<_> = augmenter
                    .pick(chips.len(), o.batch)
                    .into_iter()
                    .map(|i| cut(&chips[i], augmenter.view(&chips[i]), side))
                    .collect();
                let batches: Vec<_> = shards(&samples, self.devices.len())
                    .zip(&self.devices)
                    .map(|(shard, device)| batch(shard, device))
                    .collect();
                let valid_pixels: usize = batches.iter().map(|b| b.valid_pixels).sum();
                for ((b, replica), accumulator) in
                    batches.into_iter().zip(&replicas).zip(&mut accumulators)
                {
                    // The loss is a mean over the micro-batch's valid pixels: weighing each
                    // shard's mean by its share of them makes the sum that same mean (Dice,
                    // a ratio over the whole micro-batch, becomes the shares' weighted sum).
                    let share = b.valid_pixels as f64 / valid_pixels.max(1) as f64;
                    let logits = replica.forward(b.pixels);
                    window.add(&batch_confusion(
                        water_probability(kind, logits.clone().detach()),
                        &b.target,
                        &b.valid,
                    ));
                    let value = loss(kind, logits, b.target, b.valid)
                        .mul_scalar(share)
                        .div_scalar(o.accumulate as f64);
                    losses.push(value.clone().detach());
                    let grads = GradientsParams::from_grads(value.backward(), replica);
                    accumulator.accumulate(replica, grads);
                }
            }
            // Read the losses only now, so that asynchronous devices are not waited on one by one.
            let step_loss: f64 = losses
                .into_iter()
                .map(|value| value.into_scalar::<f32>() as f64)
                .sum();
            let mut grads = MultiGradientsParams::default();
            for (mut accumulator, device) in accumulators.into_iter().zip(&self.devices) {
                grads.grads.push((accumulator.grads(), device.clone()));
            }
            let lr = learning_rate(step, o.steps, o.lr, o.warmup_steps, o.min_lr);
            // burn sums each parameter's gradients across devices onto one of them.
            self.model = self.optimizer.step_multi(lr, self.model.clone(), grads);
            self.state = RunState {
                step: step + 1,
                last_loss: step_loss,
            };
            let line = LogLine {
                step: step + 1,
                loss: step_loss,
                lr,
                running_iou: window.scores().iou.unwrap_or(f64::NAN),
                seconds: started.elapsed().as_secs_f64(),
            };
            writeln!(log, "{}", serde_json::to_string(&line)?)?;
            on_step(step + 1, step_loss, window.scores().iou.unwrap_or(f64::NAN));
            if (step + 1).is_multiple_of(10) {
                window = Confusion::default();
            }
            if (step + 1).is_multiple_of(o.save_every.max(1)) || step + 1 == o.steps {
                self.save()?;
            }
        }
        Ok(self.state.clone())
    }

    /// Writes model, optimizer and state; the state goes last, so a crash mid-save resumes
    /// from the previous complete checkpoint's step with weights at least as new.
    pub fn save(&self) -> anyhow::Result<()> {
        let out = &self.config.out;
        let weights = out.join(MODEL_FILE);
        let tmp = out.join(format!("{MODEL_FILE}.tmp"));
        self.model
            .save_into(
                &mut BurnpackStore::from_file(&tmp)
                    .auto_extension(false)
                    .overwrite(true),
            )
            .map_err(|e| anyhow::anyhow!("{}: {e}", tmp.display()))?;
        fs::rename(&tmp, &weights)?;
        let optim_path = out.join(OPTIMIZER_FILE);
        self.optimizer
            .save(&optim_path)
            .map_err(|e| anyhow::anyhow!("{}: {e:?}", optim_path.display()))?;
        write_json(&out.join(STATE_FILE), &self.state)
    }

    /// Writes the encoder under Clay's key names (`encoder.safetensors`) when this run trained
    /// it, so later runs start from it with `model.checkpoint`.
    pub fn save_encoder(&self) -> anyhow::Result<Option<PathBuf>> {
        if self.model_config.arm != crate::model::Arm::Full {
            return Ok(None);
        }
        let path = self.config.out.join(ENCODER_FILE);
        crate::model::checkpoint::save_encoder(&self.model.valid().encoder, &path)?;
        Ok(Some(path))
    }

    /// The model without autodiff, for evaluation.
    pub fn inference_model(&self) -> FloodModel {
        self.model.valid()
    }
}

/// Water confusion of one batch (probabilities vs targets over valid pixels).
fn batch_confusion(
    prob: burn::tensor::Tensor<4>,
    target: &burn::tensor::Tensor<4>,
    valid: &burn::tensor::Tensor<4>,
) -> Confusion {
    let p: Vec<f32> = prob.into_data().try_to_vec::<f32>().unwrap_or_default();
    let y: Vec<f32> = target.to_data().try_to_vec::<f32>().unwrap_or_default();
    let v: Vec<f32> = valid.to_data().try_to_vec::<f32>().unwrap_or_default();
    let mut counts = Confusion::default();
    for i in 0..p.len().min(y.len()).min(v.len()) {
        if v[i] > 0.5 {
            counts.add_pixel(p[i] > 0.5, y[i] > 0.5);
        }
    }
    counts
}

pub fn write_json<T: Serialize>(path: &PathBuf, value: &T) -> anyhow::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let mut file =
        File::create(&tmp).with_context(|| format!("{}: cannot write", tmp.display()))?;
    file.write_all(serde_json::to_string_pretty(value)?.as_bytes())?;
    file.sync_all()?;
    fs::rename(&tmp, path).with_context(|| format!("{}: cannot write", path.display()))
}

/// `items` cut into `parts` contiguous runs whose lengths differ by at most one.
fn shards<T>(items: &[T], parts: usize) -> impl Iterator<Item = &[T]> {
    let (base, extra) = (items.len() / parts, items.len() % parts);
    (0..parts).scan(0, move |start, i| {
        let len = base + usize::from(i < extra);
        let run = &items[*start..*start + len];
        *start += len;
        Some(run)
    })
}

use std::process::ExitCode;
use std::time::Instant;

use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Distribution, Tensor};

use super::device::DeviceArg;
use crate::model::clay::Preset;
use crate::model::{Arm, FloodModelConfig, HeadKind, LoraConfig, LoraTarget};
use crate::train::loss::{loss, LossKind};

/// Time training steps (forward + backward + AdamW) on random input, and print JSON.
///
/// `bench/train_step_vs_pytorch.py` runs the same step with the reference PyTorch code
/// (claymodel 1.5.0) on the same machine and batch and prints the ratio.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    #[arg(long, value_enum, default_value = "tiny")]
    preset: Preset,
    #[arg(long, value_enum, default_value = "full")]
    mode: Arm,
    #[arg(long, default_value_t = 16)]
    lora_rank: usize,
    #[arg(long, default_value = "qkv")]
    lora_targets: String,
    #[arg(long, default_value_t = 4)]
    batch: usize,
    /// Input side in pixels (a multiple of 8).
    #[arg(long, default_value_t = 256)]
    size: usize,
    /// Timed steps.
    #[arg(long, default_value_t = 5)]
    steps: usize,
    /// Untimed steps first.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    #[command(flatten)]
    device: DeviceArg,
}

pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    if args.size == 0 || !args.size.is_multiple_of(8) || args.steps == 0 {
        anyhow::bail!("--size must be a positive multiple of 8 and --steps at least 1");
    }
    let device = args.device.device()?.autodiff();
    device.seed(1);
    let config = FloodModelConfig {
        encoder: args.preset.config(),
        head: HeadKind::Deconv,
        classes: 1,
        sensor: crate::data::Sensor::S1,
        gsd_m: 10.0,
        arm: args.mode,
        lora: (args.mode == Arm::Lora)
            .then(|| {
                LoraTarget::parse_list(&args.lora_targets).map(|targets| LoraConfig {
                    rank: args.lora_rank,
                    alpha: args.lora_rank as f64,
                    targets,
                })
            })
            .transpose()
            .map_err(anyhow::Error::msg)?,
    };
    let mut model = config.init(&device);
    let counts = model.param_counts();
    let mut optimizer: ModuleOptimizer = AdamWConfig::new().with_weight_decay(0.01).init();
    let shape = [args.batch, 2, args.size, args.size];
    let pixels = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
    let target = Tensor::<4>::random(
        [args.batch, 1, args.size, args.size],
        Distribution::Bernoulli(0.3),
        &device,
    );
    let valid = Tensor::<4>::ones([args.batch, 1, args.size, args.size], &device);
    let mut times = Vec::new();
    let mut phases = PhaseTimes::default();
    for i in 0..args.warmup + args.steps {
        let mut clock = PhaseClock::start(&device);
        let logits = model.forward(pixels.clone());
        let value = loss(LossKind::BceDice, logits, target.clone(), valid.clone());
        let forward = clock.lap()?;
        let grads = GradientsParams::from_grads(value.backward(), &model);
        let backward = clock.lap()?;
        model = optimizer.step(1e-3, model, grads);
        let optimizer_ms = clock.lap()?;
        if i >= args.warmup {
            times.push(forward + backward + optimizer_ms);
            phases.forward.push(forward);
            phases.backward.push(backward);
            phases.optimizer.push(optimizer_ms);
        }
    }
    let step_median = median(&mut times); // sorts: times[0] is the fastest step
    let report = serde_json::json!({
        "implementation": format!("floodtrain (burn 0.22, --device {})", args.device.device),
        "preset": args.preset, "mode": args.mode, "batch": args.batch, "size": args.size,
        "trainable_params": counts.trainable,
        "step_ms_median": step_median,
        "step_ms_min": times[0],
        "steps": times.len(),
        "phase_ms_median": {
            "forward_and_loss": median(&mut phases.forward),
            "backward": median(&mut phases.backward),
            "optimizer": median(&mut phases.optimizer),
        },
    });
    outln!("{}", serde_json::to_string_pretty(&report)?)?;
    Ok(ExitCode::SUCCESS)
}

/// Per-phase times of the timed steps, in milliseconds.
#[derive(Default)]
struct PhaseTimes {
    forward: Vec<f64>,
    backward: Vec<f64>,
    optimizer: Vec<f64>,
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Times consecutive phases of a step; each lap waits for the device first, so work queued by
/// an asynchronous backend is charged to the phase that queued it.
struct PhaseClock<'a> {
    device: &'a burn::tensor::Device,
    last: Instant,
}

impl<'a> PhaseClock<'a> {
    fn start(device: &'a burn::tensor::Device) -> Self {
        Self {
            device,
            last: Instant::now(),
        }
    }

    fn lap(&mut self) -> anyhow::Result<f64> {
        self.device
            .sync()
            .map_err(|e| anyhow::anyhow!("device sync: {e:?}"))?;
        let now = Instant::now();
        let ms = (now - self.last).as_secs_f64() * 1e3;
        self.last = now;
        Ok(ms)
    }
}

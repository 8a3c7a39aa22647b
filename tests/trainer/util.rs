use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The shared data folder, or None (the caller skips) when it is absent.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("FLOOD_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    dir.join("data/sen1floods11").is_dir().then_some(dir)
}

/// `let shared = need_shared!();` returns from the test with a message when data is absent.
macro_rules! need_shared {
    () => {
        match crate::util::shared_dir() {
            Some(dir) => dir,
            None => {
                eprintln!(
                    "skipping: shared data not found (set FLOOD_SHARED or put it at ../shared)"
                );
                return;
            }
        }
    };
}

pub fn floodtrain() -> Command {
    Command::new(env!("CARGO_BIN_EXE_floodtrain"))
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("floodtrain runs")
}

/// Runs and insists on exit 0; returns stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs, insists on exit `code`, returns stderr.
pub fn run_code(cmd: &mut Command, code: i32) -> String {
    let out = run(cmd);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The loss of every step a run logged, in order (`train.jsonl`).
pub fn logged_losses(run: &Path) -> Vec<f64> {
    std::fs::read_to_string(run.join("train.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["loss"]
                .as_f64()
                .unwrap()
        })
        .collect()
}

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn parity_fixture(shared: &Path) -> PathBuf {
    shared.join("fixtures/clay-parity")
}

/// Asserts that every encoder weight of the run in `run` (LoRA factors aside) equals the
/// checkpoint's, bit for bit: the frozen base was never touched.
pub fn assert_base_untouched(run: &Path, checkpoint: &Path) {
    use floodtrain::model::checkpoint::StateDict;
    use floodtrain::model::flood::param_values;
    let device = burn::tensor::Device::flex();
    let (config, trained) = floodtrain::train::fit::load_run(run, &device).unwrap();
    let base = StateDict::open(checkpoint)
        .unwrap()
        .load_encoder(&config.encoder_config(), &device)
        .unwrap();
    let trained: Vec<_> = param_values(&trained.encoder)
        .into_iter()
        .filter(|(p, _)| !p.contains(".lora."))
        .collect();
    let base = param_values(&base);
    assert_eq!(trained.len(), base.len());
    for ((path, a), (_, b)) in trained.iter().zip(&base) {
        assert!(
            a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()),
            "{path} changed"
        );
    }
}

//! The `floodtrain` command line: one file per subcommand, each with its `Args` and `run`.

/// `println!` that returns the write error instead of panicking on it, for `?`: a reader that
/// closes the pipe early (`floodtrain … | head`) ends the run quietly (see `main`).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

mod bench;
mod cv;
mod device;
mod eval;
mod export;
mod keygen;
mod params;
mod parity;
mod push;
mod train;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Fine-tune the Clay foundation model to map flood water, and check it against the reference.
///
/// floodtrain loads a Clay encoder checkpoint (official `.ckpt` or safetensors), puts a
/// segmentation head on it and trains one of the paper's three arms (frozen encoder, LoRA, full
/// fine-tuning) on Sen1Floods11-style chips, on the CPU by default.
///
/// A trained run becomes what the devices run with `export` (merged ONNX, f32/f16/int8, and for
/// over-the-air updates the base plus a signed adapter; keys from `keygen`), and reaches a device
/// running `floodrt serve` with `push`.
///
/// Without official Clay weights, `train` pretrains an encoder on synthetic Sentinel-1 flood
/// scenes (`[data.synthetic]`, see trainer/configs/flood-pretrain.toml) and saves it under
/// Clay's key names; `cv` scores a recipe honestly, one held-out flood event at a time.
///
/// Start with `floodtrain params --preset large --mode lora --lora-rank 256` to size a run, or
/// `floodtrain parity DIR` to check the encoder against PyTorch outputs.
#[derive(Parser, Debug)]
#[command(
    name = "floodtrain",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// No progress bar; errors are still printed.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    Train(train::TrainArgs),
    Cv(cv::CvArgs),
    Eval(eval::EvalArgs),
    Export(export::ExportArgs),
    Keygen(keygen::KeygenArgs),
    Parity(parity::ParityArgs),
    Params(params::ParamsArgs),
    Push(push::PushArgs),
    Bench(bench::BenchArgs),
}

/// Parses `std::env::args`, runs, and maps the outcome to an exit code: 0 ok, 1 check failed, 2 error.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        // Like `head` itself and ripgrep: output nobody reads any more is not an error.
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("floodtrain: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Train(args) => train::run(args, cli.quiet),
        Command::Cv(args) => cv::run(args, cli.quiet),
        Command::Eval(args) => eval::run(args, cli.quiet),
        Command::Export(args) => export::run(args, cli.quiet),
        Command::Keygen(args) => keygen::run(args),
        Command::Parity(args) => parity::run(args),
        Command::Params(args) => params::run(args),
        Command::Push(args) => push::run(args, cli.quiet),
        Command::Bench(args) => bench::run(args),
    }
}

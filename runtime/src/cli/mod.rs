//! The `floodrt` command line: one file per subcommand, each with its `Args` and `run`.

/// `println!` that returns the write error instead of panicking on it, for `?`: a reader that
/// closes the pipe early (`floodrt … | head`) ends the run quietly (see `main`).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

mod bench;
mod demo;
mod eval;
mod info;
mod model;
mod segment;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use eval::{chip_pairs, evaluate, ChipResult};
pub use model::{read_adapter, ModelArgs, PreparedModel, SceneArgs};

/// Map flood water in Sentinel-1 radar scenes, offline, on small machines.
///
/// floodrt cuts a GeoTIFF scene into overlapping tiles, runs a segmentation model (ONNX, via
/// tract) on them in batches, blends the tiles back without seams and streams a georeferenced
/// water mask to disk. Memory stays bounded however large the scene.
///
/// Without `--model` it runs its built-in flood model, flood-s1-v1 (Sentinel-1 VV+VH in dB;
/// `floodrt info` shows its card and honest scores); `--model embedded:vh-threshold` runs the
/// plain VH < −20 dB baseline, `--model M.onnx` any exported model.
///
/// Start with `floodrt demo`, then `floodrt segment SCENE.tif -o mask.tif`.
#[derive(Parser, Debug)]
#[command(
    name = "floodrt",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// No progress bar and no summary; errors are still printed.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// More log output (-v info, -vv debug). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    Segment(Box<segment::SegmentArgs>),
    Eval(eval::EvalArgs),
    Info(info::InfoArgs),
    Demo(demo::DemoArgs),
    Bench(bench::BenchArgs),
    Serve(serve::ServeArgs),
}

/// Parses `std::env::args`, runs, and maps the outcome to an exit code: 0 ok, 2 error.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        _ => "debug",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level))
        .format_timestamp(None)
        .init();
    match run(cli) {
        Ok(code) => code,
        // Like `head` itself and ripgrep: output nobody reads any more is not an error.
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("floodrt: {}", message(&err));
            if is_disk_full(&err) {
                // Every output is written to a temporary file renamed into place when whole,
                // so what was there before is untouched (tests/e2e/disk_full.rs).
                eprintln!("floodrt: the disk is full: free space there or write to another disk. No partial file was left: each output is whole or as it was before.");
            }
            ExitCode::from(2)
        }
    }
}

/// The error and its causes, like `{:#}`, less causes that only repeat the end of the one
/// before (format libraries often print their source inside their own message).
fn message(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if !parts.last().is_some_and(|before| before.ends_with(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

fn is_io(err: &anyhow::Error, kind: std::io::ErrorKind) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == kind)
    })
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    is_io(err, std::io::ErrorKind::BrokenPipe)
}

/// ENOSPC, also where a format library kept only the message of the I/O error.
fn is_disk_full(err: &anyhow::Error) -> bool {
    is_io(err, std::io::ErrorKind::StorageFull)
        || err
            .chain()
            .any(|cause| cause.to_string().contains("(os error 28)"))
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let quiet = cli.quiet;
    match cli.command {
        Command::Segment(args) => segment::run(*args, quiet),
        Command::Eval(args) => eval::run(args, quiet),
        Command::Info(args) => info::run(args),
        Command::Demo(args) => demo::run(args, quiet),
        Command::Bench(args) => bench::run(args),
        Command::Serve(args) => serve::run(args),
    }
}

/// A progress bar on stderr, hidden when quiet or when stderr is not a terminal.
pub(crate) fn progress_bar(quiet: bool, what: &str) -> indicatif::ProgressBar {
    if quiet {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(0);
    let style =
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(what.to_string());
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_that_repeat_the_one_before_are_printed_once_and_a_full_disk_is_recognised() {
        let io = std::io::Error::from(std::io::ErrorKind::StorageFull);
        let text = io.to_string();
        let err = anyhow::Error::new(io)
            .context(format!("TIFF writer error: I/O error: {text}"))
            .context("writing m.tif at row 0");
        assert_eq!(
            message(&err),
            format!("writing m.tif at row 0: TIFF writer error: I/O error: {text}")
        );
        assert!(is_disk_full(&err));
        assert!(!is_disk_full(&anyhow::anyhow!("m.tif: permission denied")));
    }
}

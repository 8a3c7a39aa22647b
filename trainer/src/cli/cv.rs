use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};

use super::device::DeviceArg;
use crate::train::config::TrainConfig;
use crate::train::cv::{fold_config, fold_events, load_pool, run_fold, write_summary, ArmSpec};
use crate::train::metrics::Evaluation;

/// Event-grouped cross-validation of a training recipe, arm by arm.
///
/// For every flood event in the data folder (the part of a chip name before its last `_`),
/// each arm trains on the chips of all other events and predicts the held-out event's chips;
/// the scores pool every held-out prediction, so no chip is scored by a model that saw its
/// event. Events without a scorable pixel (all no data) are skipped.
///
/// Arms: `frozen`, `lora`, `full` start from the recipe's `model.checkpoint`; add `-random`
/// (e.g. `lora-random`) to start from random weights and see what the checkpoint buys.
/// Fold runs go to OUT/ARM/EVENT/ (finished folds are reused when rerun), the summary to
/// OUT/cv.json.
///
/// Example: `floodtrain cv --config trainer/configs/flood-adapt.toml --arms frozen,lora,full,lora-random --out runs/cv`
#[derive(clap::Args, Debug)]
pub struct CvArgs {
    /// The recipe (TOML, as for `train`); its data.dir holds the labelled chips.
    #[arg(long)]
    config: PathBuf,
    /// Comma-separated arms.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "frozen,lora,full,lora-random"
    )]
    arms: Vec<String>,
    /// Folder for the fold runs and cv.json.
    #[arg(long, default_value = "runs/cv")]
    out: PathBuf,
    /// Only these held-out events (comma-separated), e.g. to run folds on several machines.
    #[arg(long, value_delimiter = ',')]
    events: Option<Vec<String>>,
    /// Optimizer steps per fold (overrides optim.steps).
    #[arg(long)]
    steps: Option<usize>,
    /// Clay checkpoint the non-random arms start from (overrides model.checkpoint).
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Sen1Floods11-style folder (overrides data.dir).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Print cv.json instead of the table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    device: DeviceArg,
}

pub fn run(args: CvArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    let mut recipe = TrainConfig::load(&args.config)?;
    if let Some(v) = args.steps {
        recipe.optim.steps = v;
    }
    if let Some(v) = &args.checkpoint {
        recipe.model.checkpoint = Some(v.clone());
    }
    if let Some(v) = &args.data {
        recipe.data.dir = v.clone();
    }
    anyhow::ensure!(
        recipe.data.synthetic.is_none(),
        "{}: cross-validation scores real chips; remove data.synthetic",
        args.config.display()
    );
    recipe.validate()?;
    let specs = args
        .arms
        .iter()
        .map(|a| ArmSpec::parse(a))
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?;
    if specs.iter().any(|s| !s.random_init) && recipe.model.checkpoint.is_none() {
        anyhow::bail!(
            "{}: the arms {:?} start from model.checkpoint, which the recipe does not set (give --checkpoint, or use only -random arms)",
            args.config.display(),
            args.arms
        );
    }
    let device = args.device.device()?;
    let pool = load_pool(&recipe)?;
    let mut events = fold_events(&pool);
    if let Some(only) = &args.events {
        let known: BTreeSet<&String> = events.iter().collect();
        if let Some(missing) = only.iter().find(|e| !known.contains(e)) {
            anyhow::bail!(
                "event `{missing}` has no scorable chip in {} (events: {})",
                recipe.data.dir.display(),
                events.join(", ")
            );
        }
        events.retain(|e| only.contains(e));
    }
    anyhow::ensure!(
        events.len() >= 2,
        "cross-validation needs at least two events with scorable chips"
    );
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new((specs.len() * events.len() * recipe.optim.steps) as u64)
    };
    bar.set_style(ProgressStyle::with_template(
        "{bar:30} {pos}/{len} steps {msg} [{elapsed} < {eta}]",
    )?);
    let mut results = Vec::new();
    for &spec in &specs {
        let mut arm = Evaluation::default();
        for event in &events {
            let config = fold_config(&recipe, spec, &args.out, event);
            let start = bar.position();
            let name = spec.name();
            let fold = run_fold(&config, &pool, event, &device, |step, loss, _| {
                bar.set_position(start + step as u64);
                bar.set_message(format!("{name} without {event}: loss {loss:.4}"));
            })?;
            bar.set_position(start + recipe.optim.steps as u64);
            for (chip, (ev, counts)) in fold.chips {
                arm.add_chip(&chip, &ev, counts);
            }
        }
        results.push((spec, arm));
    }
    bar.finish_and_clear();
    let path = write_summary(&args.out, &results)?;
    if args.json {
        outln!("{}", std::fs::read_to_string(&path)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "held-out water IoU (event-grouped cross-validation, {} folds)",
        events.len()
    )?;
    outln!("{:<14} {:>7}  {}", "arm", "pooled", events.join("  "))?;
    for (spec, e) in &results {
        let per = e.events();
        let cells: Vec<String> = events
            .iter()
            .map(|ev| {
                let iou = per.get(ev).and_then(|c| c.scores().iou);
                format!(
                    "{:>w$}",
                    iou.map_or("-".into(), |v| format!("{v:.3}")),
                    w = ev.len()
                )
            })
            .collect();
        let pooled = e.pooled().scores().iou.unwrap_or(f64::NAN);
        outln!("{:<14} {pooled:>7.4}  {}", spec.name(), cells.join("  "))?;
    }
    outln!("details: {}", path.display())?;
    Ok(ExitCode::SUCCESS)
}

//! Event-grouped cross-validation: every chip is predicted by a model that never saw its
//! flood event. One fold per event; each arm trains once per fold on the other events' chips.
//!
//! Results pool the held-out predictions of all folds (the paper's water IoU) and keep the
//! per-event and per-chip counts. Each fold's run folder holds its `fold.json`, so an
//! interrupted cross-validation continues where it stopped.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;
use burn::tensor::Device;

use crate::data::Chip;
use crate::model::Arm;
use crate::train::config::TrainConfig;
use crate::train::evaluate::evaluate;
use crate::train::fit::{write_json, Trainer};
use crate::train::metrics::{Confusion, Evaluation};

/// One arm of the comparison: how the encoder adapts, and whether it starts from the
/// configured checkpoint or from random weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArmSpec {
    pub arm: Arm,
    pub random_init: bool,
}

impl ArmSpec {
    /// `frozen`, `lora`, `full`, or any of them with `-random` (encoder not loaded).
    pub fn parse(text: &str) -> Result<ArmSpec, String> {
        let (name, random_init) = match text.strip_suffix("-random") {
            Some(name) => (name, true),
            None => (text, false),
        };
        let arm = match name {
            "frozen" => Arm::Frozen,
            "lora" => Arm::Lora,
            "full" => Arm::Full,
            _ => {
                return Err(format!(
                    "unknown arm `{text}`: use frozen, lora or full, optionally with -random (e.g. lora-random)"
                ))
            }
        };
        Ok(ArmSpec { arm, random_init })
    }

    pub fn name(self) -> String {
        let arm = format!("{:?}", self.arm).to_lowercase();
        if self.random_init {
            format!("{arm}-random")
        } else {
            arm
        }
    }
}

/// The folds: events that have at least one scorable pixel, in name order.
pub fn fold_events(chips: &[Chip]) -> Vec<String> {
    let mut events: Vec<String> = chips
        .iter()
        .filter(|c| (0..c.rows * c.cols).any(|i| c.is_valid(i)))
        .map(|c| c.event.clone())
        .collect();
    events.sort();
    events.dedup();
    events
}

/// The run configuration of one (arm, held-out event) fold.
pub fn fold_config(recipe: &TrainConfig, spec: ArmSpec, out: &Path, event: &str) -> TrainConfig {
    let mut config = recipe.clone();
    config.model.arm = spec.arm;
    if spec.random_init {
        config.model.checkpoint = None;
    }
    config.data.train_split = None;
    config.data.valid_split = None;
    config.data.valid_chips = None;
    config.out = out.join(spec.name()).join(event);
    config
}

/// Trains one fold on every chip outside `event` and predicts the event's chips; reuses a
/// finished fold's saved result (`fold.json`).
pub fn run_fold(
    config: &TrainConfig,
    pool: &[Chip],
    event: &str,
    device: &Device,
    on_step: impl FnMut(usize, f64, f64),
) -> anyhow::Result<Evaluation> {
    let done = config.out.join("fold.json");
    if let Ok(text) = fs::read_to_string(&done) {
        if let Ok(saved) = serde_json::from_str::<FoldResult>(&text) {
            return Ok(saved.evaluation());
        }
    }
    let (held_out, train): (Vec<Chip>, Vec<Chip>) =
        pool.iter().cloned().partition(|c| c.event == event);
    anyhow::ensure!(
        !train.is_empty(),
        "fold {event}: no chips of other events to train on"
    );
    let mut trainer = Trainer::new(config.clone(), true, &[device.clone().autodiff()])?;
    trainer.fit(&train, on_step)?;
    let evaluation = evaluate(
        &trainer.inference_model(),
        &held_out,
        config.data.crop_px,
        config.optim.batch,
        config.model.loss,
        device,
        |_, _| {},
    );
    let result = FoldResult::of(&evaluation);
    write_json(&done, &result)?;
    Ok(evaluation)
}

/// A fold's per-chip counts as saved in its `eval.json` (plus the usual scores).
#[derive(serde::Serialize, serde::Deserialize)]
struct FoldResult {
    chips: BTreeMap<String, (String, Confusion)>,
    scores: serde_json::Value,
}

impl FoldResult {
    fn of(e: &Evaluation) -> FoldResult {
        FoldResult {
            chips: e.chips.clone(),
            scores: e.to_json(),
        }
    }
    fn evaluation(&self) -> Evaluation {
        Evaluation {
            chips: self.chips.clone(),
        }
    }
}

/// Reads the chips of `dir` (the recipe's chip list, or all labelled ones) for the folds.
pub fn load_pool(recipe: &TrainConfig) -> anyhow::Result<Vec<Chip>> {
    let d = &recipe.data;
    crate::train::fit::load_chips(&d.dir, d.sensor, None, d.train_chips.as_deref())
        .with_context(|| format!("reading the cross-validation chips in {}", d.dir.display()))
}

/// Writes `cv.json`: per arm, the pooled held-out scores, events and chips.
pub fn write_summary(out: &Path, results: &[(ArmSpec, Evaluation)]) -> anyhow::Result<PathBuf> {
    let arms: serde_json::Map<String, serde_json::Value> = results
        .iter()
        .map(|(spec, e)| (spec.name(), e.to_json()))
        .collect();
    let path = out.join("cv.json");
    write_json(
        &path,
        &serde_json::json!({
            "protocol": "event-grouped cross-validation: one fold per event, trained on the other events' chips; scores pool every held-out prediction",
            "arms": arms,
        }),
    )?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arm_names_round_trip() {
        for name in ["frozen", "lora", "full", "lora-random", "full-random"] {
            assert_eq!(ArmSpec::parse(name).unwrap().name(), name);
        }
        assert!(ArmSpec::parse("loRA").is_err());
        assert!(ArmSpec::parse("random").is_err());
    }

    #[test]
    fn folds_skip_events_with_nothing_to_score() {
        let chip = |name: &str, label: i8| Chip {
            name: name.into(),
            event: name.split('_').next().unwrap().into(),
            bands: 1,
            rows: 1,
            cols: 2,
            image: vec![0.0, 0.0],
            label: vec![label, label],
        };
        let pool = [
            chip("B_1", 1),
            chip("A_1", 0),
            chip("C_1", -1),
            chip("A_2", 1),
        ];
        assert_eq!(fold_events(&pool), ["A", "B"]);
    }
}

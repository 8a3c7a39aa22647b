//! Whole-chip evaluation: tile each chip at the training crop size, predict, count.

use burn::tensor::Device;

use crate::data::augment::{cut, tiling};
use crate::data::batcher::batch;
use crate::data::Chip;
use crate::model::FloodModel;
use crate::train::loss::{water_probability, LossKind};
use crate::train::metrics::{Confusion, Evaluation};

/// Water probability for every pixel of a chip (row-major), tiles of `side` pixels, `batch_size` at a time.
pub fn predict_chip(
    model: &FloodModel,
    chip: &Chip,
    side: usize,
    batch_size: usize,
    kind: LossKind,
    device: &Device,
) -> Vec<f32> {
    let mut prob = vec![0f32; chip.rows * chip.cols];
    let views = tiling(chip.rows, chip.cols, side);
    for group in views.chunks(batch_size.max(1)) {
        let samples: Vec<_> = group.iter().map(|&v| cut(chip, v, side)).collect();
        let inputs = batch(&samples, device);
        let out = water_probability(kind, model.forward(inputs.pixels));
        let values: Vec<f32> = out.into_data().try_to_vec::<f32>().unwrap_or_default();
        for (k, view) in group.iter().enumerate() {
            let tile = &values[k * side * side..(k + 1) * side * side];
            for r in 0..side.min(chip.rows - view.row) {
                for c in 0..side.min(chip.cols - view.col) {
                    prob[(view.row + r) * chip.cols + view.col + c] = tile[r * side + c];
                }
            }
        }
    }
    prob
}

/// Counts over a chip's valid pixels, water where the probability exceeds 0.5.
pub fn chip_confusion(chip: &Chip, prob: &[f32]) -> Confusion {
    let mut counts = Confusion::default();
    for (i, &p) in prob.iter().enumerate() {
        if chip.is_valid(i) {
            counts.add_pixel(p > 0.5, chip.label[i] == 1);
        }
    }
    counts
}

/// Evaluates a model (no autodiff) over chips; `on_chip` sees each result as it comes.
pub fn evaluate(
    model: &FloodModel,
    chips: &[Chip],
    side: usize,
    batch_size: usize,
    kind: LossKind,
    device: &Device,
    mut on_chip: impl FnMut(&Chip, &Confusion),
) -> Evaluation {
    let mut evaluation = Evaluation::default();
    for chip in chips {
        let prob = predict_chip(model, chip, side, batch_size, kind, device);
        let counts = chip_confusion(chip, &prob);
        on_chip(chip, &counts);
        evaluation.add_chip(&chip.name, &chip.event, counts);
    }
    evaluation
}

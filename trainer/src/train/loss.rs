//! Losses over valid pixels only: BCE + Dice (the paper) on one water logit, or cross-entropy
//! on two logits. Invalid pixels (no data, label −1) contribute nothing, not even to the mean.

use burn::tensor::activation::{log_sigmoid, log_softmax, sigmoid};
use burn::tensor::Tensor;

/// Which loss trains the head; fixes the number of output channels.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum LossKind {
    /// Binary cross-entropy + soft Dice on one water logit (the paper).
    BceDice,
    /// Cross-entropy on land/water logits.
    CrossEntropy,
}

impl LossKind {
    pub fn classes(self) -> usize {
        match self {
            LossKind::BceDice => 1,
            LossKind::CrossEntropy => 2,
        }
    }
}

const DICE_SMOOTH: f64 = 1.0;

/// # Shapes
/// - `logits`: `[B, classes, H, W]`; `target`, `valid`: `[B, 1, H, W]`
/// - returns a scalar `[1]`
pub fn loss(kind: LossKind, logits: Tensor<4>, target: Tensor<4>, valid: Tensor<4>) -> Tensor<1> {
    match kind {
        LossKind::BceDice => {
            bce(logits.clone(), target.clone(), valid.clone()) + dice(logits, target, valid)
        }
        LossKind::CrossEntropy => cross_entropy(logits, target, valid),
    }
}

/// Masked mean of −[y·log σ(x) + (1−y)·log σ(−x)] (log-sigmoid form: no overflow).
pub fn bce(logits: Tensor<4>, target: Tensor<4>, valid: Tensor<4>) -> Tensor<1> {
    let per_pixel = (target.clone() * log_sigmoid(logits.clone())
        + (target.neg() + 1.0) * log_sigmoid(logits.neg()))
    .neg();
    masked_mean(per_pixel, valid)
}

/// 1 − (2·Σ p·y + s) / (Σ p + Σ y + s) over valid pixels of the whole batch.
pub fn dice(logits: Tensor<4>, target: Tensor<4>, valid: Tensor<4>) -> Tensor<1> {
    let p = sigmoid(logits) * valid.clone();
    let y = target * valid;
    let overlap = (p.clone() * y.clone())
        .sum()
        .mul_scalar(2.0)
        .add_scalar(DICE_SMOOTH);
    let total = (p.sum() + y.sum()).add_scalar(DICE_SMOOTH);
    (overlap / total).neg().add_scalar(1.0)
}

/// Masked mean of −log softmax(x)[y] with land = channel 0, water = channel 1.
pub fn cross_entropy(logits: Tensor<4>, target: Tensor<4>, valid: Tensor<4>) -> Tensor<1> {
    let [b, _, h, w] = logits.dims();
    let log_p = log_softmax(logits, 1);
    let land = log_p.clone().slice([0..b, 0..1, 0..h, 0..w]);
    let water = log_p.slice([0..b, 1..2, 0..h, 0..w]);
    let per_pixel = (target.clone() * water + (target.neg() + 1.0) * land).neg();
    masked_mean(per_pixel, valid)
}

fn masked_mean(per_pixel: Tensor<4>, valid: Tensor<4>) -> Tensor<1> {
    let count = valid.clone().sum().clamp_min(1.0);
    (per_pixel * valid).sum() / count
}

/// Water probability from the logits, `[B, 1, H, W]`.
pub fn water_probability(kind: LossKind, logits: Tensor<4>) -> Tensor<4> {
    match kind {
        LossKind::BceDice => sigmoid(logits),
        LossKind::CrossEntropy => {
            let [b, _, h, w] = logits.dims();
            burn::tensor::activation::softmax(logits, 1).slice([0..b, 1..2, 0..h, 0..w])
        }
    }
}

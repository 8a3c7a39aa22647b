//! Water-class metrics as the paper and Sen1Floods11 report them, shared by `floodrt eval` and
//! `floodtrain eval` so both halves score a model the same way: a confusion count over valid
//! pixels, pooled by adding counts.

use serde::Serialize;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Confusion {
    pub tp: u64,
    pub fp: u64,
    #[serde(rename = "fn")]
    pub fn_: u64,
    pub tn: u64,
}

/// Scores derived from a [`Confusion`]; None where the denominator is zero.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Scores {
    /// Water IoU, TP / (TP + FP + FN): the paper's IoU.
    pub iou: Option<f64>,
    /// 2·TP / (2·TP + FP + FN) = 2·IoU / (1 + IoU).
    pub f1: Option<f64>,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    /// Mean of the water and not-water IoU.
    pub miou: Option<f64>,
}

fn ratio(num: u64, den: u64) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

impl Confusion {
    /// Counts one valid pixel.
    pub fn add_pixel(&mut self, predicted_water: bool, is_water: bool) {
        match (predicted_water, is_water) {
            (true, true) => self.tp += 1,
            (true, false) => self.fp += 1,
            (false, true) => self.fn_ += 1,
            (false, false) => self.tn += 1,
        }
    }

    pub fn add(&mut self, other: &Confusion) {
        self.tp += other.tp;
        self.fp += other.fp;
        self.fn_ += other.fn_;
        self.tn += other.tn;
    }

    pub fn scores(&self) -> Scores {
        let iou = ratio(self.tp, self.tp + self.fp + self.fn_);
        let land_iou = ratio(self.tn, self.tn + self.fp + self.fn_);
        Scores {
            iou,
            f1: ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn_),
            precision: ratio(self.tp, self.tp + self.fp),
            recall: ratio(self.tp, self.tp + self.fn_),
            miou: iou.zip(land_iou).map(|(a, b)| (a + b) / 2.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_follow_their_definitions() {
        let c = Confusion {
            tp: 6,
            fp: 2,
            fn_: 2,
            tn: 10,
        };
        let s = c.scores();
        let iou = s.iou.unwrap();
        assert!((iou - 0.6).abs() < 1e-12);
        assert!((s.f1.unwrap() - 2.0 * iou / (1.0 + iou)).abs() < 1e-12);
        assert!((s.precision.unwrap() - 0.75).abs() < 1e-12);
        assert!((s.miou.unwrap() - (0.6 + 10.0 / 14.0) / 2.0).abs() < 1e-12);
        assert_eq!(Confusion::default().scores().iou, None);
    }

    #[test]
    fn pixels_and_counts_add_up() {
        let mut a = Confusion::default();
        a.add_pixel(true, true);
        a.add_pixel(true, false);
        a.add_pixel(false, true);
        a.add_pixel(false, false);
        a.add(&Confusion {
            tp: 1,
            fp: 0,
            fn_: 0,
            tn: 2,
        });
        assert_eq!(
            a,
            Confusion {
                tp: 2,
                fp: 1,
                fn_: 1,
                tn: 3
            }
        );
    }
}

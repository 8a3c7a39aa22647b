//! Water-class metrics as the paper and Sen1Floods11 report them: a confusion count over
//! pixels with a label (not −1) and input data (mask not no-data), pooled by adding counts.

use crate::sink::NODATA;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Confusion {
    pub tp: u64,
    pub fp: u64,
    #[serde(rename = "fn")]
    pub fn_: u64,
    pub tn: u64,
}

/// Scores derived from a [`Confusion`]; None where the denominator is zero.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Scores {
    pub iou: Option<f64>,
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
    /// Counts `mask` (0/1/[`NODATA`]) against `label` (0/1, −1 no label).
    pub fn count(mask: &[u8], label: &[i16]) -> Confusion {
        let mut c = Confusion::default();
        for (&m, &l) in mask.iter().zip(label) {
            match (m, l) {
                (NODATA, _) | (_, -1) => {}
                (1, 1) => c.tp += 1,
                (1, _) => c.fp += 1,
                (_, 1) => c.fn_ += 1,
                _ => c.tn += 1,
            }
        }
        c
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
    fn counts_skip_unlabelled_and_no_data_pixels() {
        let mask = [1, 1, 0, 0, NODATA, 1];
        let label = [1, 0, 1, 0, 1, -1];
        assert_eq!(
            Confusion::count(&mask, &label),
            Confusion {
                tp: 1,
                fp: 1,
                fn_: 1,
                tn: 1
            }
        );
    }

    #[test]
    fn f1_is_2iou_over_1_plus_iou() {
        let c = Confusion {
            tp: 50,
            fp: 10,
            fn_: 20,
            tn: 100,
        };
        let s = c.scores();
        let iou = s.iou.unwrap();
        assert!((s.f1.unwrap() - 2.0 * iou / (1.0 + iou)).abs() < 1e-12);
        assert_eq!(Confusion::default().scores().iou, None);
    }
}

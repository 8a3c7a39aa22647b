//! Water-class metrics as the paper and Sen1Floods11 report them, shared by `floodrt eval` and
//! `floodtrain eval` so both halves score a model the same way: a confusion count over valid
//! pixels, pooled by adding counts.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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

/// Connected components smaller than this many pixels count as speckle in [`Fragments`].
pub const SMALL_COMPONENT_PX: usize = 10;

/// How fragmented a water mask is: predicted water pixels in total, and those in 8-connected
/// components under [`SMALL_COMPONENT_PX`] — the isolated "water" specks a threshold scatters
/// over dry land. Pooled by adding counts, like [`Confusion`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fragments {
    pub water_px: u64,
    pub small_component_px: u64,
}

impl Fragments {
    /// Counts `mask` (row-major, `width` wide; 1 = water, anything else not).
    pub fn of_mask(mask: &[u8], width: usize) -> Fragments {
        let height = mask.len() / width.max(1);
        let mut seen = vec![false; mask.len()];
        let mut stack = Vec::new();
        let mut counts = Fragments::default();
        for start in 0..width * height {
            if mask[start] != 1 || seen[start] {
                continue;
            }
            // Flood-fill one component, iteratively (a scene-sized one must not overflow a stack).
            seen[start] = true;
            stack.push(start);
            let mut size = 0u64;
            while let Some(i) = stack.pop() {
                size += 1;
                let (r, c) = (i / width, i % width);
                for dr in [-1i64, 0, 1] {
                    for dc in [-1i64, 0, 1] {
                        let (nr, nc) = (r as i64 + dr, c as i64 + dc);
                        if nr < 0 || nc < 0 || nr >= height as i64 || nc >= width as i64 {
                            continue;
                        }
                        let j = nr as usize * width + nc as usize;
                        if mask[j] == 1 && !seen[j] {
                            seen[j] = true;
                            stack.push(j);
                        }
                    }
                }
            }
            counts.water_px += size;
            if (size as usize) < SMALL_COMPONENT_PX {
                counts.small_component_px += size;
            }
        }
        counts
    }

    pub fn add(&mut self, other: &Fragments) {
        self.water_px += other.water_px;
        self.small_component_px += other.small_component_px;
    }

    /// Share of predicted water in components under [`SMALL_COMPONENT_PX`]; None without water.
    pub fn small_share(&self) -> Option<f64> {
        ratio(self.small_component_px, self.water_px)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragments_count_water_in_small_eight_connected_components() {
        // A 3×4 block (12 px, kept), a diagonal pair (one 2-px component), a lone pixel.
        #[rustfmt::skip]
        let mask = [
            1, 1, 1, 1, 0, 0, 0, 0,
            1, 1, 1, 1, 0, 1, 0, 0,
            1, 1, 1, 1, 0, 0, 1, 0,
            0, 0, 0, 0, 0, 0, 0, 0,
            255, 0, 0, 0, 0, 0, 0, 1,
        ];
        let f = Fragments::of_mask(&mask, 8);
        assert_eq!(
            f,
            Fragments {
                water_px: 15,
                small_component_px: 3
            }
        );
        assert!((f.small_share().unwrap() - 0.2).abs() < 1e-12);
        assert_eq!(Fragments::of_mask(&[0, 255], 2).small_share(), None);
    }

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

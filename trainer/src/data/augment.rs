//! Random crops, flips and 90° rotations, drawn from a seeded generator so runs repeat exactly.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::Chip;

/// One training example: `bands × side × side` image (NaN invalid) and labels (−1 invalid).
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub side: usize,
    pub bands: usize,
    pub image: Vec<f32>,
    pub label: Vec<i8>,
}

/// Where and how to cut a sample out of a chip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct View {
    pub row: usize,
    pub col: usize,
    /// Quarter turns, 0..4.
    pub turns: u8,
    pub flip: bool,
}

/// The augmentation stream: one generator for the whole run, seeded from the config.
pub struct Augmenter {
    rng: StdRng,
    pub side: usize,
    pub enabled: bool,
}

impl Augmenter {
    pub fn new(seed: u64, side: usize, enabled: bool) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            side,
            enabled,
        }
    }

    /// A random view of a chip: any crop position, and with augmentation on, a flip and 0–3 quarter turns.
    pub fn view(&mut self, chip: &Chip) -> View {
        let row = self
            .rng
            .random_range(0..=chip.rows.saturating_sub(self.side));
        let col = self
            .rng
            .random_range(0..=chip.cols.saturating_sub(self.side));
        let (turns, flip) = if self.enabled {
            (self.rng.random_range(0..4u8), self.rng.random_bool(0.5))
        } else {
            (0, false)
        };
        View {
            row,
            col,
            turns,
            flip,
        }
    }

    /// Draws `count` chip indices with replacement.
    pub fn pick(&mut self, chips: usize, count: usize) -> Vec<usize> {
        (0..count)
            .map(|_| self.rng.random_range(0..chips))
            .collect()
    }
}

/// Cuts `view` out of `chip`; parts beyond the chip edge are invalid (NaN, label −1).
pub fn cut(chip: &Chip, view: View, side: usize) -> Sample {
    let n = chip.rows * chip.cols;
    let mut image = vec![f32::NAN; chip.bands * side * side];
    let mut label = vec![-1i8; side * side];
    for r in 0..side {
        for c in 0..side {
            let (sr, sc) = source(r, c, side, view);
            let (sr, sc) = (sr + view.row, sc + view.col);
            if sr >= chip.rows || sc >= chip.cols {
                continue;
            }
            let (dst, src) = (r * side + c, sr * chip.cols + sc);
            label[dst] = chip.label[src];
            for b in 0..chip.bands {
                image[b * side * side + dst] = chip.image[b * n + src];
            }
        }
    }
    Sample {
        side,
        bands: chip.bands,
        image,
        label,
    }
}

/// Output pixel (r, c) of a turned/flipped square crop → pixel of the unturned crop.
fn source(r: usize, c: usize, side: usize, view: View) -> (usize, usize) {
    let last = side - 1;
    let c = if view.flip { last - c } else { c };
    match view.turns % 4 {
        0 => (r, c),
        1 => (c, last - r),
        2 => (last - r, last - c),
        _ => (last - c, r),
    }
}

/// Views that tile a whole chip with `side`-pixel squares (the last row/column pulled onto the
/// edge), for evaluation.
pub fn tiling(rows: usize, cols: usize, side: usize) -> Vec<View> {
    let starts = |len: usize| -> Vec<usize> {
        if len <= side {
            return vec![0];
        }
        let mut s: Vec<usize> = (0..len - side).step_by(side).collect();
        s.push(len - side);
        s.dedup();
        s
    };
    starts(rows)
        .into_iter()
        .flat_map(|row| {
            starts(cols).into_iter().map(move |col| View {
                row,
                col,
                turns: 0,
                flip: false,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chip(rows: usize, cols: usize) -> Chip {
        Chip {
            name: "T_1".into(),
            event: "T".into(),
            bands: 2,
            rows,
            cols,
            image: (0..2 * rows * cols).map(|v| v as f32).collect(),
            label: (0..rows * cols).map(|v| (v % 2) as i8).collect(),
        }
    }

    #[test]
    fn turns_and_flips_are_permutations_of_the_crop() {
        let chip = chip(8, 8);
        let plain = cut(
            &chip,
            View {
                row: 2,
                col: 1,
                turns: 0,
                flip: false,
            },
            4,
        );
        for turns in 0..4 {
            for flip in [false, true] {
                let s = cut(
                    &chip,
                    View {
                        row: 2,
                        col: 1,
                        turns,
                        flip,
                    },
                    4,
                );
                let mut a = s.image.clone();
                let mut b = plain.image.clone();
                a.sort_by(f32::total_cmp);
                b.sort_by(f32::total_cmp);
                assert_eq!(a, b, "turns {turns} flip {flip}");
            }
        }
        // One (counter-clockwise) quarter turn brings the crop's top-right pixel to the top-left.
        let turned = cut(
            &chip,
            View {
                row: 0,
                col: 0,
                turns: 1,
                flip: false,
            },
            4,
        );
        assert_eq!(turned.image[0], chip.image[3]);
        // A flip mirrors the columns.
        let flipped = cut(
            &chip,
            View {
                row: 0,
                col: 0,
                turns: 0,
                flip: true,
            },
            4,
        );
        assert_eq!(flipped.image[0], chip.image[3]);
        assert_eq!(flipped.image[4 * 4 - 1], chip.image[3 * 8]);
    }

    #[test]
    fn crops_past_the_edge_are_invalid_and_tiling_covers_the_chip() {
        let chip = chip(5, 5);
        let s = cut(
            &chip,
            View {
                row: 0,
                col: 0,
                turns: 0,
                flip: false,
            },
            8,
        );
        assert_eq!(s.label.iter().filter(|&&l| l >= 0).count(), 25);
        assert!(s.image[7].is_nan());
        let views = tiling(512, 300, 256);
        assert_eq!(views.len(), 4);
        assert!(views.iter().any(|v| v.row == 256 && v.col == 44));
    }

    #[test]
    fn the_same_seed_gives_the_same_views() {
        let chip = chip(512, 512);
        let draw = |seed| {
            let mut aug = Augmenter::new(seed, 256, true);
            (0..5).map(|_| aug.view(&chip)).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }
}

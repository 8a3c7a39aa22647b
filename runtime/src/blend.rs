//! Blend: overlapping tile outputs become one seamless probability surface. Each pixel's water
//! probability is the weighted mean of the tiles that cover it (weights from
//! [`TileGrid::weight`]), so weights always sum to 1. Only the rows still awaiting a tile are
//! held: at most about one tile's height of one stripe's width, never the scene.

use std::collections::VecDeque;

use crate::tiles::{Tile, TileGrid};

struct Row {
    sum: Vec<f32>,
    weight: Vec<f32>,
    /// False where any input band had no data.
    valid: Vec<bool>,
}

/// A finished row of the blender's columns: water probability per pixel, NaN where the input
/// had no data.
pub struct FinishedRow {
    pub y: usize,
    /// Scene column of `probability[0]`.
    pub x0: usize,
    pub probability: Vec<f32>,
}

pub struct Blender {
    /// First scene column the buffered rows hold.
    x0: usize,
    width: usize,
    first_row: usize,
    rows: VecDeque<Row>,
}

impl Blender {
    /// A blender for scene columns `x0..x1`.
    pub fn new(x0: usize, x1: usize) -> Blender {
        Blender {
            x0,
            width: x1 - x0,
            first_row: 0,
            rows: VecDeque::new(),
        }
    }

    /// Bytes held per buffered row; the row count stays below tile height plus one batch span.
    pub fn bytes_per_row(width: usize) -> usize {
        width * (4 + 4 + 1)
    }

    /// Adds a tile's water probability (`tile.rows × tile.cols`, row-major) and validity.
    pub fn add(
        &mut self,
        grid: &TileGrid,
        tile: &Tile,
        probability: &[f32],
        valid: impl Fn(usize, usize) -> bool,
    ) {
        debug_assert!(
            tile.y >= self.first_row,
            "{tile} arrived after its rows were finished"
        );
        while self.first_row + self.rows.len() < tile.y + tile.rows {
            self.rows.push_back(Row {
                sum: vec![0.0; self.width],
                weight: vec![0.0; self.width],
                valid: vec![true; self.width],
            });
        }
        for r in 0..tile.rows {
            let row = &mut self.rows[tile.y + r - self.first_row];
            for c in 0..tile.cols {
                let w = grid.weight(tile, r, c);
                let x = tile.x + c - self.x0;
                row.sum[x] += w * probability[r * tile.cols + c];
                row.weight[x] += w;
                row.valid[x] &= valid(r, c);
            }
        }
    }

    /// Hands back, in order, every row above `upto`; no later tile may touch those rows.
    pub fn take_finished(&mut self, upto: usize) -> Vec<FinishedRow> {
        let mut done = Vec::new();
        while self.first_row < upto {
            let Some(row) = self.rows.pop_front() else {
                break;
            };
            let probability = row
                .sum
                .iter()
                .zip(&row.weight)
                .zip(&row.valid)
                .map(|((&s, &w), &ok)| if ok && w > 0.0 { s / w } else { f32::NAN })
                .collect();
            done.push(FinishedRow {
                y: self.first_row,
                x0: self.x0,
                probability,
            });
            self.first_row += 1;
        }
        done
    }

    pub fn buffered_rows(&self) -> usize {
        self.rows.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blend_constant(
        w: usize,
        h: usize,
        tile: usize,
        overlap: usize,
        p: impl Fn(&Tile) -> f32,
    ) -> Vec<FinishedRow> {
        let grid = TileGrid::new(w, h, tile, overlap).unwrap();
        let mut blender = Blender::new(0, grid.width);
        let mut out = Vec::new();
        let tiles: Vec<_> = grid.tiles().collect();
        for (i, t) in tiles.iter().enumerate() {
            blender.add(&grid, t, &vec![p(t); t.rows * t.cols], |_, _| true);
            let next_row = tiles.get(i + 1).map_or(h, |n| {
                if n.grid_row != t.grid_row {
                    grid.row_start(n.grid_row)
                } else {
                    grid.row_start(t.grid_row)
                }
            });
            out.extend(blender.take_finished(next_row));
            assert!(blender.buffered_rows() <= tile);
        }
        out
    }

    #[test]
    fn constant_tiles_blend_to_the_same_constant_with_no_seams() {
        let rows = blend_constant(700, 500, 128, 16, |_| 0.75);
        assert_eq!(rows.len(), 500);
        for (i, r) in rows.iter().enumerate() {
            assert_eq!(r.y, i);
            assert!(r.probability.iter().all(|&p| (p - 0.75).abs() < 1e-6));
        }
    }

    #[test]
    fn overlaps_mix_neighbours_smoothly() {
        let rows = blend_constant(
            240,
            128,
            128,
            16,
            |t| if t.grid_col == 0 { 0.0 } else { 1.0 },
        );
        let line = &rows[64].probability;
        // Monotone from the left tile's 0 to the right tile's 1, with no jump larger than a ramp step.
        for x in 1..240 {
            assert!(line[x] >= line[x - 1] - 1e-6);
            assert!(line[x] - line[x - 1] < 0.2, "jump at {x}");
        }
        assert_eq!(line[0], 0.0);
        assert_eq!(line[239], 1.0);
    }

    #[test]
    fn no_data_stays_no_data() {
        let grid = TileGrid::new(64, 64, 64, 0).unwrap();
        let mut b = Blender::new(0, grid.width);
        let t = grid.tiles().next().unwrap();
        b.add(&grid, &t, &vec![0.9; 64 * 64], |r, c| r != 3 || c != 5);
        let rows = b.take_finished(64);
        assert!(rows[3].probability[5].is_nan());
        assert_eq!(rows[3].probability[6], 0.9);
    }
}

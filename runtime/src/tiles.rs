//! Tiles: a grid of model-sized squares over the scene. Neighbours overlap by at least
//! `overlap_px`; the last tile of a row or column is pulled back to end on the scene edge, so no
//! tile reads past the scene (no padding artefacts) unless the scene is smaller than one tile.
//!
//! Wide scenes are cut into vertical [`Stripe`]s processed one after another, top to bottom, so
//! the rows held for blending are as wide as a stripe, not the scene: memory stays flat
//! however large the scene. Tiles that straddle a stripe border run in both stripes, so every
//! output pixel still gets the votes of all tiles that cover it.

use std::fmt;

#[derive(Debug, thiserror::Error)]
pub enum TileError {
    #[error("overlap {overlap_px} px must be smaller than half the tile ({tile_px} px); lower --overlap")]
    OverlapTooLarge { tile_px: usize, overlap_px: usize },
    #[error("the scene is empty ({width}×{height} px)")]
    EmptyScene { width: usize, height: usize },
}

#[derive(Clone, Debug)]
pub struct TileGrid {
    pub width: usize,
    pub height: usize,
    pub tile_px: usize,
    pub overlap_px: usize,
    xs: Vec<usize>,
    ys: Vec<usize>,
}

/// One tile: the scene pixels it covers, `rows × cols`, at most `tile_px` each way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tile {
    pub index: usize,
    pub grid_row: usize,
    pub grid_col: usize,
    pub y: usize,
    pub x: usize,
    pub rows: usize,
    pub cols: usize,
}

impl fmt::Display for Tile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "tile {} (rows {}..{}, cols {}..{})",
            self.index,
            self.y,
            self.y + self.rows,
            self.x,
            self.x + self.cols
        )
    }
}

impl TileGrid {
    pub fn new(
        width: usize,
        height: usize,
        tile_px: usize,
        overlap_px: usize,
    ) -> Result<TileGrid, TileError> {
        if width == 0 || height == 0 {
            return Err(TileError::EmptyScene { width, height });
        }
        if overlap_px * 2 >= tile_px {
            return Err(TileError::OverlapTooLarge {
                tile_px,
                overlap_px,
            });
        }
        let stride = tile_px - overlap_px;
        Ok(TileGrid {
            width,
            height,
            tile_px,
            overlap_px,
            xs: offsets(width, tile_px, stride),
            ys: offsets(height, tile_px, stride),
        })
    }

    pub fn len(&self) -> usize {
        self.xs.len() * self.ys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn grid_rows(&self) -> usize {
        self.ys.len()
    }

    /// First scene row of grid row `r`; the scene height past the last grid row.
    pub fn row_start(&self, r: usize) -> usize {
        self.ys.get(r).copied().unwrap_or(self.height)
    }

    /// Tiles in row-major order, so rows of the output finish in order.
    pub fn tiles(&self) -> impl Iterator<Item = Tile> + '_ {
        let per_row = self.xs.len();
        self.ys.iter().enumerate().flat_map(move |(r, &y)| {
            self.xs.iter().enumerate().map(move |(c, &x)| Tile {
                index: r * per_row + c,
                grid_row: r,
                grid_col: c,
                y,
                x,
                rows: self.tile_px.min(self.height),
                cols: self.tile_px.min(self.width),
            })
        })
    }

    /// Blend weight of the pixel at (`row`, `col`) inside `tile`: 1 in the middle, ramping
    /// linearly towards 0 across `overlap_px` at every edge a neighbour shares, and staying 1
    /// at scene edges, where no other tile can vote.
    pub fn weight(&self, tile: &Tile, row: usize, col: usize) -> f32 {
        let wy = taper(
            row,
            tile.rows,
            self.overlap_px,
            tile.y == 0,
            tile.y + tile.rows >= self.height,
        );
        let wx = taper(
            col,
            tile.cols,
            self.overlap_px,
            tile.x == 0,
            tile.x + tile.cols >= self.width,
        );
        wy * wx
    }
}

/// A vertical band of the output: it owns columns `x0..x1` (multiples of the output block
/// size, so whole GeoTIFF blocks are written) and runs every tile touching them, which span
/// `span_x0..span_x1`.
#[derive(Clone, Debug)]
pub struct Stripe {
    pub x0: usize,
    pub x1: usize,
    pub span_x0: usize,
    pub span_x1: usize,
    /// Row-major, so the stripe's output rows finish in order.
    pub tiles: Vec<Tile>,
}

impl TileGrid {
    /// Stripes owning at most `stripe_px` columns each (`stripe_px` a multiple of `block_px`).
    pub fn stripes(&self, stripe_px: usize) -> Vec<Stripe> {
        let stripe_px = stripe_px.max(1);
        let mut stripes = Vec::new();
        let mut x0 = 0;
        while x0 < self.width {
            let x1 = (x0 + stripe_px).min(self.width);
            let tiles: Vec<Tile> = self
                .tiles()
                .filter(|t| t.x < x1 && t.x + t.cols > x0)
                .collect();
            let span_x0 = tiles.iter().map(|t| t.x).min().unwrap_or(x0);
            let span_x1 = tiles.iter().map(|t| t.x + t.cols).max().unwrap_or(x1);
            stripes.push(Stripe {
                x0,
                x1,
                span_x0,
                span_x1,
                tiles,
            });
            x0 = x1;
        }
        stripes
    }
}

fn offsets(len: usize, tile: usize, stride: usize) -> Vec<usize> {
    if len <= tile {
        return vec![0];
    }
    let mut v: Vec<usize> = (0..)
        .map(|i| i * stride)
        .take_while(|&o| o + tile < len)
        .collect();
    v.push(len - tile);
    v.dedup();
    v
}

fn taper(i: usize, n: usize, ramp: usize, at_start: bool, at_end: bool) -> f32 {
    if ramp == 0 {
        return 1.0;
    }
    let r = ramp as f32;
    let from_start = if at_start { 1.0 } else { (i as f32 + 0.5) / r };
    let from_end = if at_end {
        1.0
    } else {
        ((n - i) as f32 - 0.5) / r
    };
    from_start.min(from_end).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coverage(grid: &TileGrid) -> Vec<u32> {
        let mut hits = vec![0u32; grid.width * grid.height];
        for t in grid.tiles() {
            assert!(
                t.y + t.rows <= grid.height && t.x + t.cols <= grid.width,
                "{t} leaves the scene"
            );
            for r in 0..t.rows {
                for c in 0..t.cols {
                    hits[(t.y + r) * grid.width + t.x + c] += 1;
                }
            }
        }
        hits
    }

    #[test]
    fn tiles_cover_every_pixel_and_stay_inside() {
        for (w, h, tile, overlap) in [
            (512, 512, 256, 0),
            (1000, 777, 256, 32),
            (100, 300, 256, 32),
            (257, 256, 256, 64),
        ] {
            let grid = TileGrid::new(w, h, tile, overlap).unwrap();
            assert!(
                coverage(&grid).iter().all(|&n| n >= 1),
                "{w}x{h} tile {tile} overlap {overlap}"
            );
        }
    }

    #[test]
    fn no_overlap_on_a_512_chip_gives_the_four_quadrants_in_reference_order() {
        let grid = TileGrid::new(512, 512, 256, 0).unwrap();
        let corners: Vec<_> = grid.tiles().map(|t| (t.y, t.x)).collect();
        assert_eq!(corners, [(0, 0), (0, 256), (256, 0), (256, 256)]);
        assert!(coverage(&grid).iter().all(|&n| n == 1));
    }

    #[test]
    fn weights_are_positive_and_one_at_scene_edges() {
        let grid = TileGrid::new(1000, 600, 256, 32).unwrap();
        for t in grid.tiles() {
            for r in 0..t.rows {
                for c in 0..t.cols {
                    let w = grid.weight(&t, r, c);
                    assert!(w > 0.0 && w <= 1.0);
                }
            }
        }
        let first = grid.tiles().next().unwrap();
        assert_eq!(grid.weight(&first, 0, 0), 1.0);
        assert!(grid.weight(&first, 0, 255) < 0.05);
    }

    #[test]
    fn stripes_own_every_column_once_and_run_every_tile_that_touches_them() {
        let grid = TileGrid::new(5000, 300, 256, 32).unwrap();
        let stripes = grid.stripes(2048);
        assert_eq!(
            stripes.iter().map(|s| (s.x0, s.x1)).collect::<Vec<_>>(),
            [(0, 2048), (2048, 4096), (4096, 5000)]
        );
        for s in &stripes {
            for t in grid.tiles().filter(|t| t.x < s.x1 && t.x + t.cols > s.x0) {
                assert!(
                    s.tiles.contains(&t),
                    "{t} missing from stripe {}..{}",
                    s.x0,
                    s.x1
                );
            }
            assert!(s.span_x0 <= s.x0 && s.span_x1 >= s.x1);
        }
        let total: usize = stripes.iter().map(|s| s.tiles.len()).sum();
        assert!(
            total < grid.len() * 12 / 10,
            "stripes repeat few tiles: {total} vs {}",
            grid.len()
        );
        assert_eq!(grid.stripes(8192).len(), 1);
    }

    #[test]
    fn refuses_an_overlap_of_half_a_tile() {
        let err = TileGrid::new(512, 512, 256, 128).unwrap_err().to_string();
        assert!(err.contains("lower --overlap"), "{err}");
    }
}

//! Outlines traced from a raster one row at a time: every 4-connected region of chosen pixels
//! becomes one polygon, an outer ring and its holes, along pixel edges. Only the regions that
//! reach the current row are held (their boundary edges so far); a region is assembled into
//! rings and handed on as soon as a row no longer touches it, so memory follows the open
//! outlines, not the scene.
//!
//! Coordinates are pixel corners: x right, y down. Edges run with the region on their right
//! (clockwise on screen), so outer rings have positive shoelace area and holes negative.

use std::collections::HashMap;

/// A pixel corner.
pub type Vertex = (i64, i64);

/// One polygon: its outer ring first, then holes; each ring closed (first vertex repeated).
#[derive(Clone, Debug, PartialEq)]
pub struct PixelPolygon {
    pub rings: Vec<Vec<Vertex>>,
    /// Pixels inside (outer ring area minus holes).
    pub pixels: u64,
}

#[derive(Clone, Copy, Debug)]
struct Run {
    x0: i64,
    x1: i64,
    region: u64,
}

#[derive(Default)]
struct Region {
    edges: Vec<(Vertex, Vertex)>,
    pixels: u64,
}

/// Traces regions row by row; feed rows top to bottom with [`Tracer::row`], then
/// [`Tracer::finish`].
pub struct Tracer {
    y: i64,
    previous: Vec<Run>,
    regions: HashMap<u64, Region>,
    next_id: u64,
}

impl Default for Tracer {
    fn default() -> Self {
        Tracer::new()
    }
}

impl Tracer {
    pub fn new() -> Tracer {
        Tracer {
            y: 0,
            previous: Vec::new(),
            regions: HashMap::new(),
            next_id: 0,
        }
    }

    /// Regions still open: what the tracer holds in memory.
    pub fn open_regions(&self) -> usize {
        self.regions.len()
    }

    /// Takes the next row (`inside[x]`: the pixel belongs to a region) and returns the
    /// polygons that this row closed.
    pub fn row(&mut self, inside: impl Iterator<Item = bool>) -> Vec<PixelPolygon> {
        let runs = runs_of(inside);
        self.step(&runs)
    }

    /// Closes every region still open (the scene's bottom edge).
    pub fn finish(mut self) -> Vec<PixelPolygon> {
        self.step(&[])
    }

    fn step(&mut self, runs: &[(i64, i64)]) -> Vec<PixelPolygon> {
        let y = self.y;
        // Regions merged in this row: old id → the id it was merged into.
        let mut merged: HashMap<u64, u64> = HashMap::new();
        let resolve = |merged: &HashMap<u64, u64>, mut id: u64| {
            while let Some(&to) = merged.get(&id) {
                id = to;
            }
            id
        };
        let mut current = Vec::with_capacity(runs.len());
        for &(x0, x1) in runs {
            let mut region = None;
            let above: Vec<u64> = self
                .previous
                .iter()
                .filter(|p| p.x0 < x1 && x0 < p.x1)
                .map(|p| p.region)
                .collect();
            for above in above {
                let other = resolve(&merged, above);
                match region {
                    None => region = Some(other),
                    Some(r) if r != other => {
                        self.merge(other, r);
                        merged.insert(other, r);
                    }
                    _ => {}
                }
            }
            let id = region.unwrap_or_else(|| {
                self.next_id += 1;
                self.next_id
            });
            let r = self.regions.entry(id).or_default();
            r.pixels += (x1 - x0) as u64;
            // Sides of the run: left edge goes up, right edge goes down.
            r.edges.push(((x0, y + 1), (x0, y)));
            r.edges.push(((x1, y), (x1, y + 1)));
            current.push(Run { x0, x1, region: id });
        }
        // A later run may have merged the region an earlier run of this row joined.
        for run in &mut current {
            run.region = resolve(&merged, run.region);
        }
        // Horizontal edges on the line y: tops of this row's runs where the row above is
        // outside (going right), bottoms of the previous row's runs where this row is outside
        // (going left).
        for run in &current {
            for (a, b) in uncovered(run.x0, run.x1, &self.previous) {
                self.edge(run.region, (a, y), (b, y));
            }
        }
        let previous = std::mem::take(&mut self.previous);
        let mut touched: Vec<u64> = Vec::new();
        for above in &previous {
            let id = resolve(&merged, above.region);
            for (a, b) in uncovered(above.x0, above.x1, &current) {
                self.edge(id, (b, y), (a, y));
            }
            touched.push(id);
        }
        touched.sort_unstable();
        touched.dedup();
        let mut closed = Vec::new();
        for id in touched {
            if !current.iter().any(|r| r.region == id) {
                if let Some(region) = self.regions.remove(&id) {
                    closed.push(assemble(region));
                }
            }
        }
        self.previous = current;
        self.y += 1;
        closed
    }

    fn edge(&mut self, id: u64, from: Vertex, to: Vertex) {
        self.regions.entry(id).or_default().edges.push((from, to));
    }

    /// Moves region `from`'s edges into `into`.
    fn merge(&mut self, from: u64, into: u64) {
        let Some(mut moved) = self.regions.remove(&from) else {
            return;
        };
        let target = self.regions.entry(into).or_default();
        if moved.edges.len() > target.edges.len() {
            std::mem::swap(&mut moved.edges, &mut target.edges);
        }
        target.edges.append(&mut moved.edges);
        target.pixels += moved.pixels;
    }
}

/// Maximal runs of `true` as [x0, x1).
fn runs_of(inside: impl Iterator<Item = bool>) -> Vec<(i64, i64)> {
    let mut runs = Vec::new();
    let mut start = None;
    let mut x = 0i64;
    for v in inside {
        match (v, start) {
            (true, None) => start = Some(x),
            (false, Some(s)) => {
                runs.push((s, x));
                start = None;
            }
            _ => {}
        }
        x += 1;
    }
    if let Some(s) = start {
        runs.push((s, x));
    }
    runs
}

/// Parts of [x0, x1) that no run in `other` (sorted, disjoint) covers.
fn uncovered(x0: i64, x1: i64, other: &[Run]) -> Vec<(i64, i64)> {
    let mut parts = Vec::new();
    let mut at = x0;
    for r in other.iter().filter(|r| r.x0 < x1 && x0 < r.x1) {
        if r.x0 > at {
            parts.push((at, r.x0));
        }
        at = at.max(r.x1);
    }
    if at < x1 {
        parts.push((at, x1));
    }
    parts
}

/// Links a closed region's edges into rings. Where the region meets itself only at a corner
/// (two of its pixels diagonal, the other two outside), the ring turns so as to keep the two
/// pixels' sides together: the rings stay simple, and a hole that touches the outer ring does
/// so at that one point, as OGC simple features allow.
fn assemble(region: Region) -> PixelPolygon {
    let mut out: HashMap<Vertex, Vec<usize>> = HashMap::with_capacity(region.edges.len());
    for (i, (from, _)) in region.edges.iter().enumerate() {
        out.entry(*from).or_default().push(i);
    }
    let mut used = vec![false; region.edges.len()];
    let mut rings = Vec::new();
    for start in 0..region.edges.len() {
        if used[start] {
            continue;
        }
        let mut ring = vec![region.edges[start].0];
        let mut at = start;
        used[start] = true;
        loop {
            let (from, to) = region.edges[at];
            let heading = (to.0 - from.0, to.1 - from.1);
            // The start edge stays a choice, so that a ring through a corner where the region
            // meets itself closes with the right pairing there too.
            let choices: Vec<usize> = out
                .get(&to)
                .map(|v| {
                    v.iter()
                        .copied()
                        .filter(|&e| !used[e] || e == start)
                        .collect()
                })
                .unwrap_or_default();
            let next = match choices.as_slice() {
                [] => break,
                [only] => *only,
                several => several
                    .iter()
                    .copied()
                    .find(|&e| {
                        let (a, b) = region.edges[e];
                        is_left_turn(heading, (b.0 - a.0, b.1 - a.1))
                    })
                    .unwrap_or(several[0]),
            };
            if next == start {
                break;
            }
            let (a, b) = region.edges[next];
            let turn = (b.0 - a.0).signum() != heading.0.signum()
                || (b.1 - a.1).signum() != heading.1.signum();
            if turn {
                ring.push(to);
            }
            used[next] = true;
            at = next;
        }
        // Closed: the walk ended where it began. Drop the start if it lies mid-side.
        let first = ring[0];
        ring.push(first);
        rings.push(drop_collinear_start(ring));
    }
    // The outer ring is the one with positive area; the rest are holes.
    if let Some(outer) = rings.iter().position(|r| shoelace2(r) > 0) {
        rings.swap(0, outer);
    }
    PixelPolygon {
        rings,
        pixels: region.pixels,
    }
}

/// In screen coordinates (y down) a left turn from heading (dx, dy) is the cross product > 0?
/// With y down, turning left from east (1, 0) faces north (0, −1): cross = 1·(−1) − 0·0 < 0.
fn is_left_turn(heading: (i64, i64), next: (i64, i64)) -> bool {
    heading.0 * next.1 - heading.1 * next.0 < 0
}

/// Removes the closing vertex's twin if the ring starts in the middle of a straight side.
fn drop_collinear_start(mut ring: Vec<Vertex>) -> Vec<Vertex> {
    let n = ring.len();
    if n >= 4 {
        let (a, b, c) = (ring[n - 2], ring[0], ring[1]);
        let collinear = (b.0 - a.0) * (c.1 - b.1) - (b.1 - a.1) * (c.0 - b.0) == 0;
        if collinear {
            ring.remove(0);
            ring[n - 2] = ring[0];
            ring.truncate(n - 1);
        }
    }
    ring
}

/// Twice the signed area (shoelace) of a closed ring.
pub fn shoelace2(ring: &[Vertex]) -> i64 {
    ring.windows(2)
        .map(|w| w[0].0 * w[1].1 - w[1].0 * w[0].1)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Traces a picture: '#' inside, anything else outside.
    fn trace(picture: &[&str]) -> Vec<PixelPolygon> {
        let mut tracer = Tracer::new();
        let mut polygons = Vec::new();
        for row in picture {
            polygons.extend(tracer.row(row.chars().map(|c| c == '#')));
        }
        polygons.extend(tracer.finish());
        polygons
    }

    fn assert_simple(ring: &[Vertex]) {
        let mut seen: Vec<Vertex> = ring[..ring.len() - 1].to_vec();
        seen.sort_unstable();
        let n = seen.len();
        seen.dedup();
        assert_eq!(seen.len(), n, "ring visits a vertex twice: {ring:?}");
        assert_eq!(ring.first(), ring.last());
    }

    fn area(p: &PixelPolygon) -> i64 {
        p.rings.iter().map(|r| shoelace2(r)).sum::<i64>() / 2
    }

    #[test]
    fn a_square_is_one_ring_of_four_corners() {
        let p = trace(&["....", ".##.", ".##.", "...."]);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].rings, [vec![(1, 1), (3, 1), (3, 3), (1, 3), (1, 1)]]);
        assert_eq!((p[0].pixels, area(&p[0])), (4, 4));
    }

    #[test]
    fn a_ring_of_water_has_a_hole() {
        let p = trace(&["#####", "#...#", "#.#.#", "#...#", "#####"]);
        assert_eq!(p.len(), 2, "the frame and the island inside it");
        let frame = p
            .iter()
            .find(|p| p.rings.len() == 2)
            .expect("frame with a hole");
        assert!(shoelace2(&frame.rings[0]) > 0 && shoelace2(&frame.rings[1]) < 0);
        assert_eq!((frame.pixels as i64, area(frame)), (16, 16));
        for r in &frame.rings {
            assert_simple(r);
        }
    }

    #[test]
    fn regions_joined_lower_down_become_one_polygon() {
        let p = trace(&["#.#.#", "#.#.#", "#####"]);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].rings.len(), 1, "a comb has no holes");
        assert_eq!((p[0].pixels, area(&p[0])), (11, 11));
        assert_simple(&p[0].rings[0]);
    }

    #[test]
    fn diagonal_neighbours_are_separate_polygons_and_rings_stay_simple() {
        let p = trace(&["#.", ".#"]);
        assert_eq!(p.len(), 2);
        // A frame whose hole reaches the outside only through a corner: the hole touches the
        // outer ring at one point, each ring simple.
        let p = trace(&["####", "#..#", "#.#.", "####"]);
        let big = p.iter().max_by_key(|p| p.pixels).unwrap();
        for r in &big.rings {
            assert_simple(r);
        }
        assert_eq!(big.rings.len(), 2, "{:?}", big.rings);
        assert_eq!(area(big), big.pixels as i64);
    }

    #[test]
    fn a_region_merged_away_after_an_earlier_run_joined_it_stays_one() {
        // Row 3 joins the left column to region a, then the run on its right merges a into
        // the island that began on row 2; row 4 continues the left column.
        let p = trace(&["#######", "#.....#", "#..#..#", "#.#####", "#......"]);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(area(&p[0]), p[0].pixels as i64);
        for r in &p[0].rings {
            assert_simple(r);
        }
    }

    #[test]
    fn every_random_picture_gives_simple_rings_that_account_for_every_pixel() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for round in 0..2000 {
            let (w, h) = (5 + round % 13, 4 + round % 11);
            let picture: Vec<String> = (0..h)
                .map(|_| {
                    (0..w)
                        .map(|_| {
                            seed ^= seed << 13;
                            seed ^= seed >> 7;
                            seed ^= seed << 17;
                            if seed % 100 < 55 {
                                '#'
                            } else {
                                '.'
                            }
                        })
                        .collect()
                })
                .collect();
            let rows: Vec<&str> = picture.iter().map(|s| s.as_str()).collect();
            let polygons = trace(&rows);
            let inside = picture
                .iter()
                .flat_map(|r| r.chars())
                .filter(|&c| c == '#')
                .count();
            let pixels: u64 = polygons.iter().map(|p| p.pixels).sum();
            assert_eq!(pixels as usize, inside, "{picture:#?}");
            for p in &polygons {
                assert_eq!(area(p), p.pixels as i64, "{picture:#?}");
                assert!(shoelace2(&p.rings[0]) > 0);
                for r in &p.rings {
                    assert_simple(r);
                }
                for hole in &p.rings[1..] {
                    assert!(shoelace2(hole) < 0, "{picture:#?}");
                }
            }
        }
    }
}

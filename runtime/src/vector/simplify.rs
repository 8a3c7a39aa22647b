//! Douglas–Peucker simplification of traced outlines that keeps each polygon valid: a ring is
//! simplified only while it stays simple, keeps its orientation and crosses none of its
//! polygon's other rings; otherwise it keeps its traced vertices. Vertices are a subset of the
//! traced ones, so the tests are exact integer arithmetic. (Separate polygons are simplified
//! independently: two that come within twice the tolerance of each other may then touch.)

use super::trace::{shoelace2, Vertex};

/// `rings` (outer first, then holes, each closed) simplified with `tolerance` pixels.
pub fn polygon(rings: &[Vec<Vertex>], tolerance: f64) -> Vec<Vec<Vertex>> {
    let mut chosen: Vec<Vec<Vertex>> = rings.to_vec();
    if tolerance <= 0.0 {
        return chosen;
    }
    let mut index = SegmentGrid::new(rings);
    for (i, ring) in rings.iter().enumerate() {
        let simpler = ring_dp(ring, tolerance);
        let keeps_shape = simpler.len() >= 4
            && simpler.len() < ring.len()
            && shoelace2(&simpler).signum() == shoelace2(ring).signum();
        if keeps_shape && is_valid(std::slice::from_ref(&simpler)) && !index.crosses(i, &simpler) {
            index.replace(i, ring, &simpler);
            chosen[i] = simpler;
        }
    }
    chosen
}

/// The polygon's current segments in a uniform grid of cells, by ring, so that a candidate
/// ring is checked only against the other rings' segments near it: a polygon with thousands
/// of holes costs about what its vertices do, not holes × vertices.
struct SegmentGrid {
    origin: Vertex,
    cell: i64,
    side: i64,
    cells: Vec<Vec<(usize, Vertex, Vertex)>>,
}

impl SegmentGrid {
    fn new(rings: &[Vec<Vertex>]) -> SegmentGrid {
        let all = rings.iter().flatten();
        let (x0, y0, x1, y1) = all.fold((i64::MAX, i64::MAX, i64::MIN, i64::MIN), |b, v| {
            (b.0.min(v.0), b.1.min(v.1), b.2.max(v.0), b.3.max(v.1))
        });
        let segments: usize = rings.iter().map(|r| r.len()).sum();
        let side = ((segments as f64).sqrt() as i64).clamp(1, 512);
        let extent = (x1 - x0).max(y1 - y0).max(1);
        let cell = (extent + side) / side;
        let mut grid = SegmentGrid {
            origin: (x0, y0),
            cell,
            side,
            cells: vec![Vec::new(); (side * side) as usize],
        };
        for (i, ring) in rings.iter().enumerate() {
            grid.insert(i, ring);
        }
        grid
    }

    /// Cells a segment's bounding box covers.
    fn cells_of(&self, a: Vertex, b: Vertex) -> impl Iterator<Item = usize> + '_ {
        let at = |v: i64, o: i64| ((v - o) / self.cell).clamp(0, self.side - 1);
        let (cx0, cx1) = (
            at(a.0.min(b.0), self.origin.0),
            at(a.0.max(b.0), self.origin.0),
        );
        let (cy0, cy1) = (
            at(a.1.min(b.1), self.origin.1),
            at(a.1.max(b.1), self.origin.1),
        );
        (cy0..=cy1).flat_map(move |cy| (cx0..=cx1).map(move |cx| (cy * self.side + cx) as usize))
    }

    fn insert(&mut self, ring_index: usize, ring: &[Vertex]) {
        for w in ring.windows(2) {
            let cells: Vec<usize> = self.cells_of(w[0], w[1]).collect();
            for c in cells {
                self.cells[c].push((ring_index, w[0], w[1]));
            }
        }
    }

    fn replace(&mut self, ring_index: usize, old: &[Vertex], new: &[Vertex]) {
        for w in old.windows(2) {
            let cells: Vec<usize> = self.cells_of(w[0], w[1]).collect();
            for c in cells {
                self.cells[c].retain(|s| s.0 != ring_index);
            }
        }
        self.insert(ring_index, new);
    }

    /// Whether `candidate` (for ring `ring_index`) meets another ring's segment improperly.
    fn crosses(&self, ring_index: usize, candidate: &[Vertex]) -> bool {
        candidate.windows(2).any(|w| {
            self.cells_of(w[0], w[1]).any(|c| {
                self.cells[c]
                    .iter()
                    .any(|s| s.0 != ring_index && bad_intersection((w[0], w[1]), (s.1, s.2)))
            })
        })
    }
}

/// Douglas–Peucker on a closed ring, split at the vertex farthest from the first.
fn ring_dp(ring: &[Vertex], tolerance: f64) -> Vec<Vertex> {
    let n = ring.len() - 1; // distinct vertices
    if n < 4 {
        return ring.to_vec();
    }
    let d2 = |a: Vertex, b: Vertex| (a.0 - b.0).pow(2) + (a.1 - b.1).pow(2);
    let far = (1..n)
        .max_by_key(|&i| d2(ring[0], ring[i]))
        .unwrap_or(n / 2);
    let mut keep = vec![false; ring.len()];
    keep[0] = true;
    keep[far] = true;
    keep[n] = true;
    let mut stack = vec![(0, far), (far, n)];
    while let Some((a, b)) = stack.pop() {
        if b <= a + 1 {
            continue;
        }
        let (pa, pb) = (ring[a], ring[b]);
        let (mut worst, mut at) = (0.0f64, a);
        for (i, &p) in ring.iter().enumerate().take(b).skip(a + 1) {
            let d = distance_to_segment(p, pa, pb);
            if d > worst {
                (worst, at) = (d, i);
            }
        }
        if worst > tolerance {
            keep[at] = true;
            stack.push((a, at));
            stack.push((at, b));
        }
    }
    ring.iter()
        .zip(&keep)
        .filter(|(_, &k)| k)
        .map(|(&p, _)| p)
        .collect()
}

fn distance_to_segment(p: Vertex, a: Vertex, b: Vertex) -> f64 {
    let (px, py, ax, ay, bx, by) = (
        p.0 as f64, p.1 as f64, a.0 as f64, a.1 as f64, b.0 as f64, b.1 as f64,
    );
    let (dx, dy) = (bx - ax, by - ay);
    let len2 = dx * dx + dy * dy;
    let t = if len2 == 0.0 {
        0.0
    } else {
        (((px - ax) * dx + (py - ay) * dy) / len2).clamp(0.0, 1.0)
    };
    ((px - ax - t * dx).powi(2) + (py - ay - t * dy).powi(2)).sqrt()
}

/// No two segments of the rings cross or overlap; segments may meet only at shared vertices
/// (consecutive ones in a ring, or the single point where a hole touches another ring).
pub fn is_valid(rings: &[Vec<Vertex>]) -> bool {
    let mut segments: Vec<(Vertex, Vertex)> = rings
        .iter()
        .flat_map(|r| r.windows(2).map(|w| (w[0], w[1])))
        .collect();
    segments.sort_by_key(|(a, b)| a.0.min(b.0));
    let mut active: Vec<(Vertex, Vertex)> = Vec::new();
    for s in segments {
        let x = s.0 .0.min(s.1 .0);
        active.retain(|(a, b)| a.0.max(b.0) >= x);
        for &t in &active {
            if bad_intersection(s, t) {
                return false;
            }
        }
        active.push(s);
    }
    true
}

fn orient(a: Vertex, b: Vertex, c: Vertex) -> i64 {
    ((b.0 - a.0) * (c.1 - a.1) - (b.1 - a.1) * (c.0 - a.0)).signum()
}

fn on_segment(p: Vertex, a: Vertex, b: Vertex) -> bool {
    orient(a, b, p) == 0
        && p.0 >= a.0.min(b.0)
        && p.0 <= a.0.max(b.0)
        && p.1 >= a.1.min(b.1)
        && p.1 <= a.1.max(b.1)
}

/// Segments that intersect anywhere but at a vertex both share as an endpoint.
fn bad_intersection(s: (Vertex, Vertex), t: (Vertex, Vertex)) -> bool {
    let shared = [s.0, s.1].iter().any(|p| *p == t.0 || *p == t.1);
    let (o1, o2, o3, o4) = (
        orient(s.0, s.1, t.0),
        orient(s.0, s.1, t.1),
        orient(t.0, t.1, s.0),
        orient(t.0, t.1, s.1),
    );
    if o1 != o2 && o3 != o4 && o1 != 0 && o2 != 0 && o3 != 0 && o4 != 0 {
        return true; // a proper crossing
    }
    // Touching: an endpoint of one on the other. Fine only where both have that vertex,
    // unless the segments are collinear and overlap beyond it.
    let touches = [(t.0, s), (t.1, s), (s.0, t), (s.1, t)]
        .iter()
        .filter(|(p, seg)| on_segment(*p, seg.0, seg.1))
        .map(|(p, _)| *p)
        .collect::<Vec<_>>();
    if touches.is_empty() {
        return false;
    }
    let collinear = o1 == 0 && o2 == 0;
    if collinear {
        // Overlapping collinear segments share more than a point.
        let distinct: std::collections::BTreeSet<Vertex> = touches.into_iter().collect();
        return distinct.len() > 1 || !shared;
    }
    !shared
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_staircase_becomes_its_diagonal_and_a_square_stays() {
        // A 4-step staircase triangle: (0,0) → (4,0) → down the steps → (0,4).
        let ring = vec![
            (0, 0),
            (4, 0),
            (4, 1),
            (3, 1),
            (3, 2),
            (2, 2),
            (2, 3),
            (1, 3),
            (1, 4),
            (0, 4),
            (0, 0),
        ];
        let s = polygon(&[ring.clone()], 1.0);
        assert!(s[0].len() < ring.len(), "{:?}", s[0]);
        assert!(is_valid(&s));
        let square = vec![(0, 0), (3, 0), (3, 3), (0, 3), (0, 0)];
        assert_eq!(polygon(&[square.clone()], 5.0), [square]);
    }

    #[test]
    fn a_hole_that_would_cross_its_shell_keeps_its_vertices() {
        // A shell with a notch, and a hole hugging the notch: simplifying the shell across the
        // notch would cut through the hole, so the shell keeps its notch.
        let shell = vec![
            (0, 0),
            (10, 0),
            (10, 10),
            (6, 10),
            (6, 5),
            (4, 5),
            (4, 10),
            (0, 10),
            (0, 0),
        ];
        let hole = vec![(3, 7), (3, 9), (2, 9), (2, 7), (3, 7)];
        assert!(is_valid(&[shell.clone(), hole.clone()]));
        let s = polygon(&[shell.clone(), hole.clone()], 6.0);
        assert!(is_valid(&s), "{s:?}");
    }

    #[test]
    fn simplified_traces_of_random_pictures_stay_valid() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut simplified = 0;
        for round in 0..400 {
            let (w, h) = (12 + round % 20, 10 + round % 17);
            let mut tracer = super::super::trace::Tracer::new();
            let mut polygons = Vec::new();
            for _ in 0..h {
                let row: Vec<bool> = (0..w)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        seed % 100 < 60
                    })
                    .collect();
                polygons.extend(tracer.row(row.into_iter()));
            }
            polygons.extend(tracer.finish());
            for p in polygons {
                let s = polygon(&p.rings, 1.5);
                assert!(is_valid(&s), "{:?} -> {s:?}", p.rings);
                assert!(shoelace2(&s[0]) > 0);
                simplified += usize::from(s != p.rings);
            }
        }
        assert!(simplified > 100, "only {simplified} polygons changed");
    }

    #[test]
    fn crossings_and_overlaps_are_invalid_touching_at_a_vertex_is_not() {
        let bowtie = vec![(0, 0), (2, 2), (2, 0), (0, 2), (0, 0)];
        assert!(!is_valid(&[bowtie]));
        // Traced rings touch at a vertex both have.
        let shell = vec![(0, 0), (4, 0), (4, 4), (0, 4), (0, 2), (0, 0)];
        let touching_hole = vec![(0, 2), (2, 1), (2, 3), (0, 2)];
        assert!(is_valid(&[shell.clone(), touching_hole]));
        let overlapping = vec![(0, 1), (0, 3), (2, 2), (0, 1)];
        assert!(!is_valid(&[shell, overlapping]));
    }
}

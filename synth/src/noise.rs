//! Deterministic randomness: every value is a pure function of its seed and coordinates, so a
//! scene can be drawn window by window, in any order, on any machine, with the same result.

/// SplitMix64's finaliser: a fast, well-mixed 64-bit hash step.
pub fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Hash of a seed and two signed coordinates.
pub fn hash2(seed: u64, x: i64, y: i64) -> u64 {
    splitmix(splitmix(seed ^ (x as u64).wrapping_mul(0x1000_0000_01B3)) ^ y as u64)
}

/// A uniform draw in (0, 1) from a hash: never exactly 0, so logarithms stay finite.
pub fn unit(h: u64) -> f64 {
    ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64
}

/// Two independent standard normal draws (Box–Muller) from one hash.
pub fn normal_pair(h: u64) -> (f64, f64) {
    let (u1, u2) = (unit(h), unit(splitmix(h)));
    let r = (-2.0 * u1.ln()).sqrt();
    let a = std::f64::consts::TAU * u2;
    (r * a.cos(), r * a.sin())
}

/// A small sequential generator for drawing a scene's parameters from its seed.
pub struct Draw(u64);

impl Draw {
    pub fn new(seed: u64) -> Draw {
        Draw(splitmix(seed ^ 0x5EED_F100_D5CE_4E00))
    }
    fn next(&mut self) -> u64 {
        self.0 = splitmix(self.0);
        self.0
    }
    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * unit(self.next())
    }
    /// Log-uniform in [lo, hi): as many narrow features as wide ones.
    pub fn log_range(&mut self, lo: f64, hi: f64) -> f64 {
        (self.range(lo.ln(), hi.ln())).exp()
    }
    pub fn chance(&mut self, p: f64) -> bool {
        unit(self.next()) < p
    }
    pub fn normal(&mut self, mean: f64, sd: f64) -> f64 {
        mean + sd * normal_pair(self.next()).0
    }
    /// A fresh seed for one noise field of the scene.
    pub fn seed(&mut self) -> u64 {
        self.next()
    }
}

/// Smooth value noise in [0, 1]: random values on an integer lattice, interpolated with a
/// smoothstep, so the field is continuous with features about one lattice cell wide.
pub fn value_noise(seed: u64, x: f64, y: f64) -> f64 {
    let (fx, fy) = (x.floor(), y.floor());
    let (ix, iy) = (fx as i64, fy as i64);
    let smooth = |t: f64| t * t * (3.0 - 2.0 * t);
    let (tx, ty) = (smooth(x - fx), smooth(y - fy));
    let at = |dx: i64, dy: i64| unit(hash2(seed, ix + dx, iy + dy));
    let top = at(0, 0) + (at(1, 0) - at(0, 0)) * tx;
    let bottom = at(0, 1) + (at(1, 1) - at(0, 1)) * tx;
    top + (bottom - top) * ty
}

/// Fractal (three-octave) value noise in [0, 1] with features about `scale` pixels wide.
pub fn fbm(seed: u64, x: f64, y: f64, scale: f64) -> f64 {
    let (mut sum, mut weight, mut total, mut freq) = (0.0, 1.0, 0.0, 1.0 / scale);
    for octave in 0..3u64 {
        sum += weight * value_noise(seed.wrapping_add(octave), x * freq, y * freq);
        total += weight;
        weight *= 0.5;
        freq *= 2.0;
    }
    sum / total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normals_have_unit_variance() {
        let n = 20_000u64;
        let (mut s, mut s2) = (0.0, 0.0);
        for i in 0..n {
            let (a, b) = normal_pair(splitmix(i));
            s += a + b;
            s2 += a * a + b * b;
        }
        let mean = s / (2 * n) as f64;
        let var = s2 / (2 * n) as f64 - mean * mean;
        assert!(
            mean.abs() < 0.02 && (var - 1.0).abs() < 0.03,
            "{mean} {var}"
        );
    }

    #[test]
    fn value_noise_is_continuous_and_bounded() {
        for i in 0..1000 {
            let x = i as f64 * 0.037;
            let (a, b) = (value_noise(3, x, 1.3), value_noise(3, x + 1e-6, 1.3));
            assert!((0.0..=1.0).contains(&a));
            assert!((a - b).abs() < 1e-4);
        }
    }
}

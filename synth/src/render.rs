//! From surfaces to a radar image: mean backscatter × speckle, in dB.
//!
//! Speckle is what a coherent imager sees: each look is the squared magnitude of a complex
//! circular Gaussian field, and a multi-looked GRD pixel averages a few looks, so the intensity
//! is Gamma-distributed with unit mean. Real GRD speckle is also correlated between neighbours
//! (the processor's resampling): convolving the complex field with a Gaussian of σ = 1.12 px
//! gives the intensity a lag-1 correlation of about 0.67 and lag-2 of about 0.2, what the
//! Sen1Floods11 chips show (measured over 9×9 windows). The kernel is normalised to unit energy,
//! so the marginal distribution stays Gamma(looks).

use crate::noise::{hash2, normal_pair, splitmix};
use crate::scene::Scene;

/// Kernel half-width, px.
const HALO: usize = 3;
const SPECKLE_SIGMA: f64 = 1.12;

/// A rendered window of a scene: VV and VH in dB (NaN outside the swath), labels 1 water,
/// 0 not water, −1 no data; row-major, `rows`×`cols`.
#[derive(Clone, Debug)]
pub struct Window {
    pub rows: usize,
    pub cols: usize,
    pub vv: Vec<f32>,
    pub vh: Vec<f32>,
    pub label: Vec<i8>,
}

impl Window {
    /// Water pixels over labelled pixels (0 when none is labelled).
    pub fn water_share(&self) -> f64 {
        let labelled = self.label.iter().filter(|&&l| l >= 0).count();
        let water = self.label.iter().filter(|&&l| l == 1).count();
        water as f64 / labelled.max(1) as f64
    }
}

/// The 1-D kernel whose outer product with itself has unit energy (Σ w² = 1 in 2-D).
fn kernel() -> [f64; 2 * HALO + 1] {
    let mut k = [0.0; 2 * HALO + 1];
    for (i, w) in k.iter_mut().enumerate() {
        let d = i as f64 - HALO as f64;
        *w = (-d * d / (2.0 * SPECKLE_SIGMA * SPECKLE_SIGMA)).exp();
    }
    let energy: f64 = k.iter().map(|w| w * w).sum();
    k.map(|w| w / energy.sqrt())
}

impl Scene {
    /// Renders the window whose top-left pixel is (x0, y0) (column, row). Every pixel depends
    /// only on the scene and its own coordinates, so adjacent windows join seamlessly.
    pub fn render(&self, x0: i64, y0: i64, rows: usize, cols: usize) -> Window {
        let n = rows * cols;
        let mut vv = vec![f32::NAN; n];
        let mut vh = vec![f32::NAN; n];
        let mut label = vec![-1i8; n];
        let speckle = [
            self.speckle(0, x0, y0, rows, cols),
            self.speckle(1, x0, y0, rows, cols),
        ];
        for r in 0..rows {
            for c in 0..cols {
                let (x, y) = (x0 + c as i64, y0 + r as i64);
                let surface = self.surface(x, y);
                let i = r * cols + c;
                if let Some((mv, mh)) = self.mean_db(surface, x, y) {
                    vv[i] = (mv + 10.0 * speckle[0][i].log10()) as f32;
                    vh[i] = (mh + 10.0 * speckle[1][i].log10()) as f32;
                }
                label[i] = surface.label();
            }
        }
        Window {
            rows,
            cols,
            vv,
            vh,
            label,
        }
    }

    /// The labels of a window alone (1 water, 0 not water, −1 no data), as `render` gives
    /// them, without the cost of drawing the radar image.
    pub fn labels(&self, x0: i64, y0: i64, rows: usize, cols: usize) -> Vec<i8> {
        (0..rows as i64)
            .flat_map(|r| (0..cols as i64).map(move |c| self.surface(x0 + c, y0 + r).label()))
            .collect()
    }

    /// Unit-mean correlated speckle intensity for one band over a window.
    pub(crate) fn speckle(
        &self,
        band: u64,
        x0: i64,
        y0: i64,
        rows: usize,
        cols: usize,
    ) -> Vec<f64> {
        let k = kernel();
        let (hr, hc) = (rows + 2 * HALO, cols + 2 * HALO);
        let mut sum = vec![0.0f64; rows * cols];
        for look in 0..self.looks as u64 {
            let field_seed =
                splitmix(self.seed ^ (band << 8 | look).wrapping_mul(0xA076_1D64_78BD_642F));
            // White complex noise with E|n|² = 1 over the window and its halo…
            let mut re = vec![0.0f64; hr * hc];
            let mut im = vec![0.0f64; hr * hc];
            for r in 0..hr {
                for c in 0..hc {
                    let h = hash2(
                        field_seed,
                        x0 + c as i64 - HALO as i64,
                        y0 + r as i64 - HALO as i64,
                    );
                    let (a, b) = normal_pair(h);
                    re[r * hc + c] = a * std::f64::consts::FRAC_1_SQRT_2;
                    im[r * hc + c] = b * std::f64::consts::FRAC_1_SQRT_2;
                }
            }
            // …smoothed along rows, then columns, and squared.
            let (re, im) = (blur(&re, hr, hc, &k), blur(&im, hr, hc, &k));
            for (s, (a, b)) in sum.iter_mut().zip(re.iter().zip(&im)) {
                *s += a * a + b * b;
            }
        }
        let looks = self.looks as f64;
        sum.iter_mut().for_each(|s| *s /= looks);
        sum
    }
}

/// Separable convolution of an `hr`×`hc` field with `k`, keeping only the interior
/// (`hr − 2·HALO`)×(`hc − 2·HALO`) where the kernel fits.
fn blur(field: &[f64], hr: usize, hc: usize, k: &[f64]) -> Vec<f64> {
    let (rows, cols) = (hr - 2 * HALO, hc - 2 * HALO);
    let mut across = vec![0.0f64; hr * cols];
    for r in 0..hr {
        for c in 0..cols {
            across[r * cols + c] = (0..k.len()).map(|j| k[j] * field[r * hc + c + j]).sum();
        }
    }
    let mut out = vec![0.0f64; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            out[r * cols + c] = (0..k.len())
                .map(|j| k[j] * across[(r + j) * cols + c])
                .sum();
        }
    }
    out
}

//! Weight-only int8: symmetric, one scale per output channel, no zero point — what ONNX
//! `DequantizeLinear` with an `axis` computes (`w = q · scale[c]`). The trainer quantises at
//! export; a device merging an adapter into an int8 base dequantises, adds the delta and
//! quantises again with these same functions, so both halves round identically.

/// A row-major tensor shape seen as `[outer, channels, inner]` around the channel axis.
#[derive(Clone, Copy, Debug)]
struct Channels {
    channels: usize,
    inner: usize,
}

impl Channels {
    fn new(dims: &[usize], axis: usize) -> Channels {
        Channels {
            channels: dims.get(axis).copied().unwrap_or(1),
            inner: dims.iter().skip(axis + 1).product(),
        }
    }

    /// The channel of flat index `i`.
    fn of(&self, i: usize) -> usize {
        (i / self.inner.max(1)) % self.channels.max(1)
    }
}

/// Quantises `values` (shape `dims`) per channel of `axis`: returns the int8 values and one
/// scale per channel. A channel of zeros gets scale 1 (any scale represents it exactly).
pub fn quantize(values: &[f32], dims: &[usize], axis: usize) -> (Vec<i8>, Vec<f32>) {
    let ch = Channels::new(dims, axis);
    let mut max_abs = vec![0f32; ch.channels];
    for (i, v) in values.iter().enumerate() {
        let c = ch.of(i);
        max_abs[c] = max_abs[c].max(v.abs());
    }
    let scales: Vec<f32> = max_abs
        .iter()
        .map(|&m| {
            if m > 0.0 && m.is_finite() {
                m / 127.0
            } else {
                1.0
            }
        })
        .collect();
    let q = values
        .iter()
        .enumerate()
        .map(|(i, v)| (v / scales[ch.of(i)]).round().clamp(-127.0, 127.0) as i8)
        .collect();
    (q, scales)
}

/// The f32 values of a per-channel int8 tensor.
pub fn dequantize(q: &[i8], scales: &[f32], dims: &[usize], axis: usize) -> Vec<f32> {
    let ch = Channels::new(dims, axis);
    q.iter()
        .enumerate()
        .map(|(i, &v)| f32::from(v) * scales.get(ch.of(i)).copied().unwrap_or(0.0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_output_channel_gets_its_own_scale() {
        // [d_in 2, d_out 3], channels along axis 1.
        let w = [1.0, -0.5, 0.0, -2.0, 0.25, 0.0];
        let (q, scales) = quantize(&w, &[2, 3], 1);
        assert_eq!(scales, [2.0 / 127.0, 0.5 / 127.0, 1.0]);
        assert_eq!(q, [64, -127, 0, -127, 64, 0]);
        let back = dequantize(&q, &scales, &[2, 3], 1);
        for (a, b) in w.iter().zip(&back) {
            assert!((a - b).abs() <= 0.5 * 2.0 / 127.0 + 1e-7, "{a} vs {b}");
        }
    }

    #[test]
    fn the_error_is_at_most_half_a_step_along_axis_zero() {
        // [c_out 4, 3, 2, 2] conv kernel.
        let dims = [4, 3, 2, 2];
        let w: Vec<f32> = (0..48)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.013 * (1 + i / 12) as f32)
            .collect();
        let (q, scales) = quantize(&w, &dims, 0);
        assert_eq!(scales.len(), 4);
        let back = dequantize(&q, &scales, &dims, 0);
        for (i, (a, b)) in w.iter().zip(&back).enumerate() {
            assert!((a - b).abs() <= 0.5 * scales[i / 12] + 1e-7);
        }
        // Requantising dequantised values is exact: the device's round trip adds no error.
        assert_eq!(quantize(&back, &dims, 0).0, q);
    }
}

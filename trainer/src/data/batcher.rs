//! Samples → tensors: pixels (invalid set to 0, the normalised mean), targets and validity.

use burn::tensor::{Device, Tensor, TensorData};

use super::augment::Sample;

/// A batch on the device.
///
/// # Shapes
/// - `pixels`: `[B, C, S, S]`; `target`: `[B, 1, S, S]` (0/1); `valid`: `[B, 1, S, S]` (0/1)
pub struct Batch {
    pub pixels: Tensor<4>,
    pub target: Tensor<4>,
    pub valid: Tensor<4>,
    /// How many pixels of `valid` are 1, counted on the host.
    pub valid_pixels: usize,
}

pub fn batch(samples: &[Sample], device: &Device) -> Batch {
    let (b, side) = (samples.len(), samples.first().map_or(0, |s| s.side));
    let bands = samples.first().map_or(0, |s| s.bands);
    let pixels_per = side * side;
    let mut pixels = Vec::with_capacity(b * bands * pixels_per);
    let mut target = Vec::with_capacity(b * pixels_per);
    let mut valid = Vec::with_capacity(b * pixels_per);
    let mut valid_pixels = 0;
    for s in samples {
        pixels.extend(s.image.iter().map(|&v| if v.is_finite() { v } else { 0.0 }));
        for i in 0..pixels_per {
            let ok = s.label[i] >= 0
                && (0..bands).all(|band| s.image[band * pixels_per + i].is_finite());
            valid.push(if ok { 1.0f32 } else { 0.0 });
            valid_pixels += usize::from(ok);
            target.push(if ok && s.label[i] == 1 { 1.0f32 } else { 0.0 });
        }
    }
    Batch {
        valid_pixels,
        pixels: Tensor::from_data(TensorData::new(pixels, [b, bands, side, side]), device),
        target: Tensor::from_data(TensorData::new(target, [b, 1, side, side]), device),
        valid: Tensor::from_data(TensorData::new(valid, [b, 1, side, side]), device),
    }
}

//! Segmentation heads that turn the encoder's patch tokens back into per-pixel logits.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d, PixelShuffle, PixelShuffleConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use super::clay::PATCH_PX;

/// Which head sits on the encoder.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum HeadKind {
    /// The paper's light "deconvolution" decoder: three stride-2 transposed convolutions
    /// (D→256→128→64, ReLU) back to full resolution and a 3×3 classifier.
    Deconv,
    /// The same three ×2 transposed convolutions at half the widths (D→128→64→32): a quarter
    /// of the decoder's compute, for small encoders and small boards.
    DeconvLight,
    /// Clay v1.5's head: Conv3×3(D→512)+BN+ReLU, Conv3×3(512→512)+BN+ReLU,
    /// Conv3×3(512→64·8²), PixelShuffle(8), Conv3×3(64→classes).
    PixelShuffle,
}

const DECONV_WIDTHS: [usize; 3] = [256, 128, 64];
const DECONV_LIGHT_WIDTHS: [usize; 3] = [128, 64, 32];

#[derive(Module, Debug)]
pub struct DeconvHead {
    pub up: Vec<ConvTranspose2d>,
    pub classifier: Conv2d,
}

#[derive(Module, Debug)]
pub struct PixelShuffleHead {
    pub conv1: Conv2d,
    pub bn1: BatchNorm,
    pub conv2: Conv2d,
    pub bn2: BatchNorm,
    pub conv3: Conv2d,
    pub shuffle: PixelShuffle,
    pub classifier: Conv2d,
}

#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)] // one head per model, built once
pub enum Head {
    Deconv(DeconvHead),
    PixelShuffle(PixelShuffleHead),
}

fn conv3x3(c_in: usize, c_out: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([c_in, c_out], [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(device)
}

impl Head {
    pub fn new(kind: HeadKind, dim: usize, classes: usize, device: &Device) -> Self {
        match kind {
            HeadKind::Deconv | HeadKind::DeconvLight => {
                let widths = if kind == HeadKind::Deconv {
                    DECONV_WIDTHS
                } else {
                    DECONV_LIGHT_WIDTHS
                };
                let mut c_in = dim;
                let up = widths
                    .iter()
                    .map(|&c_out| {
                        let layer = ConvTranspose2dConfig::new([c_in, c_out], [2, 2])
                            .with_stride([2, 2])
                            .init(device);
                        c_in = c_out;
                        layer
                    })
                    .collect();
                Head::Deconv(DeconvHead {
                    up,
                    classifier: conv3x3(c_in, classes, device),
                })
            }
            HeadKind::PixelShuffle => Head::PixelShuffle(PixelShuffleHead {
                conv1: conv3x3(dim, 512, device),
                bn1: BatchNormConfig::new(512).init(device),
                conv2: conv3x3(512, 512, device),
                bn2: BatchNormConfig::new(512).init(device),
                conv3: conv3x3(512, 64 * PATCH_PX * PATCH_PX, device),
                shuffle: PixelShuffleConfig::new(PATCH_PX).init(),
                classifier: conv3x3(64, classes, device),
            }),
        }
    }

    /// # Shapes
    /// - `tokens`: `[B, L, D]` patch tokens (no cls), row-major over `grid` = [rows, cols]
    /// - returns `[B, classes, 8·rows, 8·cols]`
    pub fn forward(&self, tokens: Tensor<3>, grid: [usize; 2]) -> Tensor<4> {
        let [batch, _, dim] = tokens.dims();
        let features = tokens
            .swap_dims(1, 2)
            .reshape([batch, dim, grid[0], grid[1]]);
        match self {
            Head::Deconv(head) => {
                // Three ×2 steps make the ×8 of the patch size.
                let x = head.up.iter().fold(features, |x, up| relu(up.forward(x)));
                head.classifier.forward(x)
            }
            Head::PixelShuffle(head) => {
                let x = relu(head.bn1.forward(head.conv1.forward(features)));
                let x = relu(head.bn2.forward(head.conv2.forward(x)));
                let x = head.shuffle.forward(head.conv3.forward(x));
                head.classifier.forward(x)
            }
        }
    }
}

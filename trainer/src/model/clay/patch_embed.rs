//! Clay's wavelength-conditioned patch embedding (DOFA-style): a small transformer turns the
//! band wavelengths into the kernel and bias of the 8×8, stride-8 patch convolution, so one
//! encoder takes any set of bands.

use burn::module::{Module, Param};
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::gelu;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Distribution, Tensor, TensorData};

use super::attention::scaled_dot_product;
use super::PATCH_PX;

/// Width of the wavelength embedding and of the hypernetwork's tokens.
pub const WAVE_DIM: usize = 128;
/// Learned tokens whose outputs become the conv kernel rows.
const LATENT_TOKENS: usize = 128;
const WAVE_HEADS: usize = 4;
const WAVE_FF: usize = 2048;
/// Clay scales the generated kernel (not the bias) by this constant.
const KERNEL_SCALE: f64 = 0.02;

/// `x + gelu(l2(gelu(l1(x))))` (claymodel's `FCResLayer`).
#[derive(Module, Debug)]
pub struct FcResLayer {
    pub l1: Linear,
    pub l2: Linear,
}

/// One post-norm `nn.TransformerEncoderLayer` (d 128, 4 heads, FF 2048, GELU, no dropout),
/// applied to an unbatched sequence.
#[derive(Module, Debug)]
pub struct WaveEncoderLayer {
    /// PyTorch's `in_proj_weight`/`in_proj_bias`: q|k|v stacked.
    pub in_proj: Linear,
    pub out_proj: Linear,
    pub linear1: Linear,
    pub linear2: Linear,
    pub norm1: LayerNorm,
    pub norm2: LayerNorm,
}

/// The hypernetwork (claymodel's `WavesTransformer`).
#[derive(Module, Debug)]
pub struct WeightGenerator {
    pub weight_tokens: Param<Tensor<2>>,
    pub bias_token: Param<Tensor<2>>,
    pub encoder: WaveEncoderLayer,
    pub fc_weight: Linear,
    pub fc_bias: Linear,
}

#[derive(Module, Debug)]
pub struct DynamicEmbedding {
    pub fclayer: FcResLayer,
    pub weight_generator: WeightGenerator,
    pub dim: usize,
}

fn linear(d_in: usize, d_out: usize, device: &Device) -> Linear {
    LinearConfig::new(d_in, d_out).init(device)
}

impl DynamicEmbedding {
    pub fn new(dim: usize, device: &Device) -> Self {
        let token = |n| {
            Param::from_tensor(Tensor::random(
                [n, WAVE_DIM],
                Distribution::Normal(0.0, 0.02),
                device,
            ))
        };
        Self {
            fclayer: FcResLayer {
                l1: linear(WAVE_DIM, WAVE_DIM, device),
                l2: linear(WAVE_DIM, WAVE_DIM, device),
            },
            weight_generator: WeightGenerator {
                weight_tokens: token(LATENT_TOKENS),
                bias_token: token(1),
                encoder: WaveEncoderLayer {
                    in_proj: linear(WAVE_DIM, 3 * WAVE_DIM, device),
                    out_proj: linear(WAVE_DIM, WAVE_DIM, device),
                    linear1: linear(WAVE_DIM, WAVE_FF, device),
                    linear2: linear(WAVE_FF, WAVE_DIM, device),
                    norm1: LayerNormConfig::new(WAVE_DIM).init(device),
                    norm2: LayerNormConfig::new(WAVE_DIM).init(device),
                },
                fc_weight: linear(WAVE_DIM, PATCH_PX * PATCH_PX * dim, device),
                fc_bias: linear(WAVE_DIM, dim, device),
            },
            dim,
        }
    }

    /// The patch convolution for these bands.
    ///
    /// # Shapes
    /// - `waves_um`: `[C]` band wavelengths in micrometres
    /// - returns kernel `[D, C, 8, 8]` (already × 0.02) and bias `[D]`
    pub fn kernel(&self, waves_um: &[f32], device: &Device) -> (Tensor<4>, Tensor<1>) {
        let bands = waves_um.len();
        let waves = sincos_1d(waves_um, WAVE_DIM, device);
        let waves = self.fclayer.forward(waves);
        let gen = &self.weight_generator;
        let tokens = Tensor::cat(
            vec![gen.weight_tokens.val(), waves, gen.bias_token.val()],
            0,
        );
        let out = gen.encoder.forward(tokens.clone());
        let band_rows = LATENT_TOKENS..LATENT_TOKENS + bands;
        let weights = gen
            .fc_weight
            .forward(out.clone().slice([band_rows.clone()]) + tokens.slice([band_rows]));
        let bias = gen.fc_bias.forward(out.slice([
            LATENT_TOKENS + bands..LATENT_TOKENS + bands + 1,
            0..WAVE_DIM,
        ]));
        // "cin (cout k1 k2) -> cout cin k1 k2"
        let kernel = weights
            .reshape([bands, self.dim, PATCH_PX, PATCH_PX])
            .swap_dims(0, 1)
            .mul_scalar(KERNEL_SCALE);
        (kernel, bias.reshape([self.dim]))
    }

    /// # Shapes
    /// - `pixels`: `[B, C, H, W]`, H and W multiples of 8
    /// - returns `[B, L, D]` with L = (H/8)·(W/8) in row-major patch order
    pub fn forward(&self, pixels: Tensor<4>, waves_um: &[f32]) -> Tensor<3> {
        let (kernel, bias) = self.kernel(waves_um, &pixels.device());
        Self::apply(pixels, kernel, bias)
    }

    /// The convolution itself, for a kernel computed once (export, repeated batches).
    pub fn apply(pixels: Tensor<4>, kernel: Tensor<4>, bias: Tensor<1>) -> Tensor<3> {
        let options = ConvOptions::new([PATCH_PX, PATCH_PX], [0, 0], [1, 1], 1);
        let out = conv2d(pixels, kernel, Some(bias), options);
        let [b, d, h, w] = out.dims();
        out.reshape([b, d, h * w]).swap_dims(1, 2)
    }
}

impl FcResLayer {
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let y = gelu(self.l2.forward(gelu(self.l1.forward(x.clone()))));
        x + y
    }
}

impl WaveEncoderLayer {
    /// # Shapes
    /// - `x`: `[S, 128]` → `[S, 128]`
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let [seq, width] = x.dims();
        let head = width / WAVE_HEADS;
        let split = |t: Tensor<2>| t.reshape([seq, WAVE_HEADS, head]).swap_dims(0, 1);
        let qkv = self.in_proj.forward(x.clone());
        let q = split(qkv.clone().slice([0..seq, 0..width]));
        let k = split(qkv.clone().slice([0..seq, width..2 * width]));
        let v = split(qkv.slice([0..seq, 2 * width..3 * width]));
        let attended =
            scaled_dot_product(q.unsqueeze_dim(0), k.unsqueeze_dim(0), v.unsqueeze_dim(0))
                .squeeze_dim::<3>(0)
                .swap_dims(0, 1)
                .reshape([seq, width]);
        let x = self.norm1.forward(x + self.out_proj.forward(attended));
        let ff = self.linear2.forward(gelu(self.linear1.forward(x.clone())));
        self.norm2.forward(x + ff)
    }
}

/// `[sin(w·ω), cos(w·ω)]` with ω_k = 10000^-(k/(n/2 − 1)).
///
/// # Shapes
/// - returns `[C, width]`
fn sincos_1d(waves: &[f32], width: usize, device: &Device) -> Tensor<2> {
    let half = width / 2;
    let mut rows = Vec::with_capacity(waves.len() * width);
    for &wave in waves {
        let scaled: Vec<f32> = (0..half)
            .map(|k| {
                let omega = 1.0 / 10000f32.powf(k as f32 / (half - 1) as f32);
                wave * omega
            })
            .collect();
        rows.extend(scaled.iter().map(|v| v.sin()));
        rows.extend(scaled.iter().map(|v| v.cos()));
    }
    Tensor::from_data(TensorData::new(rows, [waves.len(), width]), device)
}

//! Position and metadata encodings, the pre-norm transformer blocks and the encoder that joins
//! them to the patch embedding.

use burn::module::{Module, Param};
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::gelu;
use burn::tensor::module::linear as linear_op;
use burn::tensor::{Device, Distribution, Tensor, TensorData};

use super::attention::scaled_dot_product;
use super::{ClayEncoderConfig, DynamicEmbedding, PATCH_PX};

/// Number of metadata values appended to every token's position encoding: sin/cos week,
/// sin/cos hour, sin/cos lat, sin/cos lon.
pub const METADATA_VALUES: usize = 8;

/// `x + to_out(attention(to_qkv(LN(x))))`'s left half; q|k|v fused as in Clay, or split.
#[derive(Module, Debug)]
pub struct Attention {
    pub norm: LayerNorm,
    pub to_qkv: Option<Linear>,
    pub to_q: Option<Linear>,
    pub to_k: Option<Linear>,
    pub to_v: Option<Linear>,
    pub to_out: Linear,
    pub heads: usize,
    pub dim_head: usize,
}

/// `x + fc2(gelu(fc1(LN(x))))`'s left half.
#[derive(Module, Debug)]
pub struct FeedForward {
    pub norm: LayerNorm,
    pub fc1: Linear,
    pub fc2: Linear,
}

#[derive(Module, Debug)]
pub struct Block {
    pub attn: Attention,
    pub ff: FeedForward,
}

#[derive(Module, Debug)]
pub struct ClayEncoder {
    pub patch_embedding: DynamicEmbedding,
    pub cls_token: Param<Tensor<3>>,
    pub blocks: Vec<Block>,
    pub norm: LayerNorm,
    pub dim: usize,
}

/// The intermediate results `floodtrain parity` compares with the reference.
pub struct EncoderStages {
    pub patch_kernel: Tensor<4>,
    pub patch_bias: Tensor<1>,
    pub patch_embed: Tensor<3>,
    pub with_encodings: Tensor<3>,
    pub encoder_out: Tensor<3>,
}

fn linear(d_in: usize, d_out: usize, bias: bool, device: &Device) -> Linear {
    LinearConfig::new(d_in, d_out).with_bias(bias).init(device)
}

impl ClayEncoder {
    pub fn new(config: &ClayEncoderConfig, device: &Device) -> Self {
        let (dim, inner) = (config.dim, config.inner_dim());
        let proj = |n| Some(linear(dim, n, false, device));
        let blocks = (0..config.depth)
            .map(|_| Block {
                attn: Attention {
                    norm: LayerNormConfig::new(dim).init(device),
                    to_qkv: if config.split_qkv {
                        None
                    } else {
                        proj(3 * inner)
                    },
                    to_q: if config.split_qkv { proj(inner) } else { None },
                    to_k: if config.split_qkv { proj(inner) } else { None },
                    to_v: if config.split_qkv { proj(inner) } else { None },
                    to_out: linear(inner, dim, false, device),
                    heads: config.heads,
                    dim_head: config.dim_head,
                },
                ff: FeedForward {
                    norm: LayerNormConfig::new(dim).init(device),
                    fc1: linear(dim, dim * config.mlp_ratio, true, device),
                    fc2: linear(dim * config.mlp_ratio, dim, true, device),
                },
            })
            .collect();
        Self {
            patch_embedding: DynamicEmbedding::new(dim, device),
            cls_token: Param::from_tensor(Tensor::random(
                [1, 1, dim],
                Distribution::Normal(0.0, 0.02),
                device,
            )),
            blocks,
            norm: LayerNormConfig::new(dim).init(device),
            dim,
        }
    }

    /// Patch tokens ready for the blocks: embedding plus position/metadata encodings.
    ///
    /// # Shapes
    /// - `pixels`: `[B, C, H, W]`; `metadata`: `[B, 8]` (time then lat/lon; zeros when unknown)
    /// - returns `[B, L, D]`
    pub fn add_encodings(
        &self,
        patches: Tensor<3>,
        grid: [usize; 2],
        metadata: Tensor<2>,
        gsd_m: f32,
    ) -> Tensor<3> {
        let [batch, tokens, dim] = patches.dims();
        let device = patches.device();
        let position = position_encoding(grid, dim - METADATA_VALUES, gsd_m, &device)
            .unsqueeze_dim::<3>(0)
            .expand([batch, tokens, dim - METADATA_VALUES]);
        let metadata = metadata
            .unsqueeze_dim::<3>(1)
            .expand([batch, tokens, METADATA_VALUES]);
        patches + Tensor::cat(vec![position, metadata], 2)
    }

    /// Runs the cls token and the patch tokens through the blocks and the final LayerNorm.
    ///
    /// # Shapes
    /// - `tokens`: `[B, L, D]` → `[B, 1 + L, D]`, cls first
    pub fn transform(&self, tokens: Tensor<3>) -> Tensor<3> {
        let [batch, _, dim] = tokens.dims();
        let cls = self.cls_token.val().expand([batch, 1, dim]);
        let mut x = Tensor::cat(vec![cls, tokens], 1);
        for block in &self.blocks {
            x = block.forward(x);
        }
        self.norm.forward(x)
    }

    /// The whole encoder.
    ///
    /// # Shapes
    /// - `pixels`: `[B, C, H, W]` (H, W multiples of 8); `metadata`: `[B, 8]`
    /// - returns `[B, 1 + L, D]`
    pub fn forward(
        &self,
        pixels: Tensor<4>,
        metadata: Tensor<2>,
        waves_um: &[f32],
        gsd_m: f32,
    ) -> Tensor<3> {
        let grid = patch_grid(&pixels);
        let patches = self.patch_embedding.forward(pixels, waves_um);
        self.transform(self.add_encodings(patches, grid, metadata, gsd_m))
    }

    /// The encoder with every stage kept, for parity checks.
    pub fn forward_stages(
        &self,
        pixels: Tensor<4>,
        metadata: Tensor<2>,
        waves_um: &[f32],
        gsd_m: f32,
    ) -> EncoderStages {
        let grid = patch_grid(&pixels);
        let (patch_kernel, patch_bias) = self.patch_embedding.kernel(waves_um, &pixels.device());
        let patch_embed = DynamicEmbedding::apply(pixels, patch_kernel.clone(), patch_bias.clone());
        let with_encodings = self.add_encodings(patch_embed.clone(), grid, metadata, gsd_m);
        let encoder_out = self.transform(with_encodings.clone());
        EncoderStages {
            patch_kernel,
            patch_bias,
            patch_embed,
            with_encodings,
            encoder_out,
        }
    }
}

/// Patch rows and columns of an input.
pub fn patch_grid(pixels: &Tensor<4>) -> [usize; 2] {
    let [_, _, h, w] = pixels.dims();
    [h / PATCH_PX, w / PATCH_PX]
}

impl Block {
    /// # Shapes
    /// - `x`: `[B, N, D]` → `[B, N, D]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let x = x.clone() + self.attn.forward(x);
        x.clone() + self.ff.forward(x)
    }
}

impl FeedForward {
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        adapted(&self.fc2, gelu(adapted(&self.fc1, self.norm.forward(x))))
    }
}

impl Attention {
    /// Scaled dot-product attention over all tokens (no mask), scale 1/√dim_head.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [batch, tokens, _] = x.dims();
        let inner = self.heads * self.dim_head;
        let x = self.norm.forward(x);
        let (q, k, v) = match (&self.to_qkv, &self.to_q, &self.to_k, &self.to_v) {
            (Some(qkv), ..) => {
                let qkv = adapted(qkv, x);
                let mut parts = qkv.chunk(3, 2).into_iter();
                match (parts.next(), parts.next(), parts.next()) {
                    (Some(q), Some(k), Some(v)) => (q, k, v),
                    _ => unreachable!("chunk(3) of a 3·inner axis gives three parts"),
                }
            }
            (None, Some(q), Some(k), Some(v)) => {
                (adapted(q, x.clone()), adapted(k, x.clone()), adapted(v, x))
            }
            _ => unreachable!("an Attention is built with either to_qkv or to_q/to_k/to_v"),
        };
        let heads = |t: Tensor<3>| {
            t.reshape([batch, tokens, self.heads, self.dim_head])
                .swap_dims(1, 2)
        };
        let out = scaled_dot_product(heads(q), heads(k), heads(v))
            .swap_dims(1, 2)
            .reshape([batch, tokens, inner]);
        adapted(&self.to_out, out)
    }
}

/// A linear layer whose weight may carry a LoRA adapter: `x·W + b + s·(x·A)·B`.
///
/// burn's adapter materialises `W + s·A·B` as the weight, so autodiff computed a full
/// `d_in × d_out` gradient of that merged matrix (as costly as training the weight itself)
/// and only then reduced it to A and B. Kept apart, the frozen `W` only passes the gradient
/// on to `x`, and A and B get theirs through rank-r products. Same value, up to rounding.
///
/// # Shapes
/// - `x`: `[B, N, d_in]` → `[B, N, d_out]`
pub fn adapted(layer: &Linear, x: Tensor<3>) -> Tensor<3> {
    let Some(lora) = layer.weight.adapter() else {
        return layer.forward(x);
    };
    let bias = layer.bias.as_ref().map(Param::val);
    let base = linear_op(x.clone(), layer.weight.base(), bias);
    // As one [B·N, d_in] matrix: a batch of skinny rank-r products was slower than one.
    let [batch, tokens, d_in] = x.dims();
    let low_rank = x
        .reshape([batch * tokens, d_in])
        .matmul(lora.a.val().mul_scalar(lora.scale))
        .matmul(lora.b.val());
    let [_, d_out] = low_rank.dims();
    base + low_rank.reshape([batch, tokens, d_out])
}

/// The `width / 4` angular frequencies of the sin-cos encoding, scaled by the ground sample
/// distance (Clay v1.5's `posemb_sincos_2d_with_gsd`).
pub fn position_frequencies(width: usize, gsd_m: f32) -> Vec<f32> {
    let quarter = width / 4;
    (0..quarter)
        .map(|j| {
            let fraction = j as f32 / (quarter.max(2) - 1) as f32;
            1.0 / 10000f32.powf(2.0 * fraction / width as f32) * gsd_m
        })
        .collect()
}

/// Clay's GSD-scaled 2-D sin-cos encoding: `[sin(col·ω), cos(col·ω), sin(row·ω), cos(row·ω)]`,
/// ω_j = gsd · 10000^-(2·(j/(Q−1))/width), Q = width/4, over the row-major patch grid.
///
/// # Shapes
/// - returns `[rows·cols, width]`
pub fn position_encoding(grid: [usize; 2], width: usize, gsd_m: f32, device: &Device) -> Tensor<2> {
    let omega = position_frequencies(width, gsd_m);
    let [rows, cols] = grid;
    let mut data = Vec::with_capacity(rows * cols * width);
    for row in 0..rows {
        for col in 0..cols {
            let (x, y) = (col as f32, row as f32);
            data.extend(omega.iter().map(|w| (x * w).sin()));
            data.extend(omega.iter().map(|w| (x * w).cos()));
            data.extend(omega.iter().map(|w| (y * w).sin()));
            data.extend(omega.iter().map(|w| (y * w).cos()));
        }
    }
    Tensor::from_data(TensorData::new(data, [rows * cols, width]), device)
}

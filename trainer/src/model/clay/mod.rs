//! The Clay encoder (claymodel 1.5.0), reproduced layer for layer so that official checkpoints
//! load unchanged and give the reference outputs (see `floodtrain parity`).
//!
//! ```text
//! pixels ─▶ DynamicEmbedding ─▶ + position/metadata encoding ─▶ [cls | tokens] ─▶ blocks ─▶ LayerNorm
//! [B,C,H,W]  (conv whose kernel a      (GSD-scaled sin-cos,         [B,1+L,D]      pre-norm ViT
//!             hypernetwork makes        time, lat/lon)
//!             from the wavelengths)
//! ```

pub mod attention;
pub mod encoder;
mod patch_embed;

pub use encoder::{Attention, Block, ClayEncoder, EncoderStages, FeedForward};
pub use patch_embed::{DynamicEmbedding, WAVE_DIM};

use burn::config::Config;
use burn::tensor::Device;

/// Clay's patch size: every preset embeds 8×8 pixel patches.
pub const PATCH_PX: usize = 8;

/// Encoder dimensions. Build one from a [`Preset`] or with custom dims, then `init`.
#[derive(Config, Debug, PartialEq)]
pub struct ClayEncoderConfig {
    /// Token width D.
    pub dim: usize,
    /// Number of transformer blocks.
    pub depth: usize,
    /// Attention heads per block.
    pub heads: usize,
    /// Width of one head.
    #[config(default = 64)]
    pub dim_head: usize,
    /// Hidden width of the MLP as a multiple of `dim`.
    #[config(default = 4)]
    pub mlp_ratio: usize,
    /// Keep q, k and v as three separate projections instead of Clay's fused `to_qkv`, so that
    /// LoRA can adapt the q and v thirds alone. Loading splits the fused checkpoint weight.
    #[config(default = false)]
    pub split_qkv: bool,
}

/// The published Clay sizes (REFERENCE.md §2).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    Tiny,
    Small,
    /// Clay v1.
    Base,
    /// Clay v1.5.
    Large,
}

impl Preset {
    pub fn config(self) -> ClayEncoderConfig {
        let (dim, depth, heads, mlp_ratio) = match self {
            Preset::Tiny => (192, 6, 4, 2),
            Preset::Small => (384, 6, 6, 2),
            Preset::Base => (768, 12, 12, 4),
            Preset::Large => (1024, 24, 16, 4),
        };
        let dim_head = if self == Preset::Tiny { 48 } else { 64 };
        ClayEncoderConfig::new(dim, depth, heads)
            .with_dim_head(dim_head)
            .with_mlp_ratio(mlp_ratio)
    }
}

impl ClayEncoderConfig {
    /// Width of the attention projections: heads × dim_head.
    pub fn inner_dim(&self) -> usize {
        self.heads * self.dim_head
    }

    /// Refuses dims the position encoding cannot use (D − 8 must split into four equal parts).
    pub fn validate(&self) -> Result<(), String> {
        if self.dim < 16 || !(self.dim - 8).is_multiple_of(4) {
            return Err(format!(
                "dim {} must be at least 16 with dim − 8 divisible by 4",
                self.dim
            ));
        }
        if self.depth == 0 || self.heads == 0 || self.dim_head == 0 || self.mlp_ratio == 0 {
            return Err("depth, heads, dim_head and mlp_ratio must all be positive".into());
        }
        Ok(())
    }

    pub fn init(&self, device: &Device) -> ClayEncoder {
        ClayEncoder::new(self, device)
    }
}

//! floodtrain — the workstation half: fine-tunes Clay for flood segmentation with burn.
//!
//! ```text
//! checkpoint ─▶ model::clay (encoder, parity) ─▶ model::flood (arm: frozen | LoRA | full, head)
//! Sen1Floods11 ─▶ data (chips, crops, flips) ─▶ train (BCE+Dice, AdamW, cosine) ─▶ metrics (IoU, F1)
//! ```
//! Everything runs on burn's pure-Rust CPU backend by default; `--features cuda` adds CUDA where
//! burn's LLVM bundle can be downloaded at build time, `--features libtorch` burn's LibTorch.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod allocator;
pub mod cli;
pub mod data;
pub mod export;
pub mod model;
pub mod parity;
pub mod train;

//! floodrt — offline, tiled, memory-bounded flood segmentation of satellite scenes.
//!
//! One module per stage of the data flow:
//! ```text
//!   scene ──▶ tiles ──▶ engine ──▶ blend ──▶ sink
//! (GeoTIFF)  (grid)    (tract)    (seams)   (GeoTIFF/COG mask, probability, GeoJSON, metrics)
//! ```
//! `pipeline` drives them one batch at a time; `budget` checks up front that a run fits its
//! memory cap; `model` loads what runs (a file or one of the `embedded` models — the default,
//! and the threshold `baseline` — with a verified adapter merged); `ota` keeps over-the-air
//! adapters; `cli` is the `floodrt` binary. `cli` and `ota` both load through `model`.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod allocator;
pub mod area;
pub mod baseline;
pub mod blend;
pub mod budget;
pub mod cli;
pub mod embedded;
pub mod engine;
#[doc(hidden)]
pub mod fuzz;
pub mod metrics;
pub mod model;
pub mod ota;
pub mod pipeline;
pub mod reference;
pub mod scene;
pub mod sink;
pub mod synth;
pub mod tiles;
pub mod vector;

//! End-to-end tests of `floodrt`: the real binary on the shared Sentinel-1 chips and model.
//! Tests that need `../shared` (or `$FLOOD_SHARED`) skip with a message when it is absent;
//! GDAL checks skip likewise when `gdalinfo` is missing, except in CI, where they must run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod util;

mod cross;
mod disk_full;
mod errors;
mod eval;
mod flood;
mod fuzz_corpus;
mod golden;
mod offline;
mod onnxruntime;
mod outlines;
mod products;
mod scene_formats;
mod segment;
mod serve_http;
mod tiny_disk;

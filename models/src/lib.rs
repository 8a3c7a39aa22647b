//! flood-models — the contract between the trainer and the runtime.
//!
//! A segmentation ONNX is only half a model: the runtime must also know which bands go in, in
//! which order and units, how they are normalised, what size of tile the graph takes, and what
//! the output means. [`Manifest`] says all of that. It travels inside the ONNX
//! (`metadata_props`, key [`MANIFEST_METADATA_KEY`]) or as a TOML sidecar. This crate is compiled
//! for the field devices too, so it stays small: serde, toml, thiserror, sha2, and for
//! [`adapter`] files postcard, ed25519-dalek and half.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod adapter;
mod digest;
mod error;
pub mod health;
mod manifest;
pub mod metrics;
pub mod protocol;
pub mod quant;
pub mod sign;

pub use digest::{Digest, Hasher};
pub use error::ManifestError;
pub use manifest::{
    Manifest, MergeableWeight, ModelInput, ModelOutput, OutputKind, Preprocess, SampleType, Units,
    WeightLayout, MANIFEST_METADATA_KEY,
};

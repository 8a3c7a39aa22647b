//! Training data: Sen1Floods11-style chips, normalised for Clay, cropped and augmented.
//!
//! ```text
//! DIR/{S1Hand,S2Hand,LabelHand} ─▶ chips (read + normalise) ─┐
//! flood-synth scenes ─▶ synthetic (draw + normalise) ──────────┴▶ augment (crop, flip, rot90) ─▶ batcher
//! ```

pub mod augment;
pub mod batcher;
pub mod chips;
pub mod raster;
pub mod synthetic;

pub use chips::{Chip, ChipRef, Sensor};

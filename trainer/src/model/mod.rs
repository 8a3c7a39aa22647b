//! The networks: Clay's encoder, the segmentation heads, the assembled flood model and the
//! checkpoint loader.

pub mod checkpoint;
pub mod clay;
pub mod flood;
pub mod head;

pub use flood::{Arm, FloodModel, FloodModelConfig, LoraConfig, LoraTarget, ParamCounts};
pub use head::HeadKind;

#[cfg(test)]
mod tests;

//! Training and evaluation: losses, metrics, the learning-rate schedule and the loop.

pub mod config;
pub mod cv;
pub mod evaluate;
pub mod fit;
pub mod loss;
pub mod metrics;
pub mod schedule;

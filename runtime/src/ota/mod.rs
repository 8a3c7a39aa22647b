//! Over-the-air adapters (issue #5): the store, where a device keeps its base model and
//! adapters so that an update interrupted at any instant leaves a working device, and the
//! device logic that checks, installs and switches adapters while jobs keep running, its
//! segmentation jobs, and the tokio servers behind `floodrt serve`: the OTA protocol and the
//! ground-station page.

pub mod device;
pub mod jobs;
pub mod server;
pub mod store;
pub mod web;

pub use device::{Device, Loaded};
pub use store::{Pointer, Store, StoreError};

//! Over-the-air adapters (issue #5): the store, where a device keeps its base model and
//! adapters so that an update interrupted at any instant leaves a working device, and the
//! device logic that checks, installs and switches adapters while jobs keep running, and the
//! tokio server behind `floodrt serve`.

pub mod device;
pub mod server;
pub mod store;

pub use device::{Device, Loaded};
pub use store::{Pointer, Store, StoreError};

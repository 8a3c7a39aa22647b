//! Over-the-air adapters (issue #5). So far the store: where a device keeps its base model and
//! adapters so that an update interrupted at any instant leaves a working device.

pub mod store;

pub use store::{Pointer, Store, StoreError};

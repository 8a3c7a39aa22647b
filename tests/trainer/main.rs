//! End-to-end tests of `floodtrain`, run as the user runs it. Tests that need the shared data
//! (`../shared` or `FLOOD_SHARED`) skip with a message when it is absent.

#[macro_use]
mod util;

mod devices;
mod disk_full;
mod errors;
mod export;
mod learn;
mod load;
mod ota;
mod page;
mod parity;
mod pretrain;
#[path = "../e2e/tiny_disk.rs"]
mod tiny_disk;

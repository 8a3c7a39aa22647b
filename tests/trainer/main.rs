//! End-to-end tests of `floodtrain`, run as the user runs it. Tests that need the shared data
//! (`../shared` or `FLOOD_SHARED`) skip with a message when it is absent.

#[macro_use]
mod util;

mod errors;
mod export;
mod learn;
mod ota;
mod page;
mod parity;
mod pretrain;

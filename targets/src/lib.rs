//! flood-targets — board profiles for the ARM devices floodrt is flashed onto (threads, memory
//! budget, tile batch, numeric mode). Not implemented yet: see issue #6.

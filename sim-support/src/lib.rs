//! What the seeded, replayable simulations of the protocol crates share (FLIP,
//! the sequencer, the Bullet and directory servers): one seeded generator, so
//! that a failing seed replays exactly, and one timed event queue. A dev-dependency only: nothing of it
//! runs on a board.
#![forbid(unsafe_code)]

mod events;
mod rng;

pub use events::EventQueue;

pub use rng::SplitMix64;

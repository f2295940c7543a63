//! What the seeded, replayable simulations of the protocol crates share (FLIP,
//! the sequencer, the Bullet and directory servers): one seeded generator, so
//! that a failing seed replays exactly. A dev-dependency only: nothing of it
//! runs on a board.
#![forbid(unsafe_code)]

mod rng;

pub use rng::SplitMix64;

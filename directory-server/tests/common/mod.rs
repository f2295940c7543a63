//! Helpers shared by the directory server's host tests.
pub mod lin;
pub mod model;
pub mod sim;
pub mod spec;

//! Helpers shared by the directory server's host tests.
pub mod model;
pub mod sim;

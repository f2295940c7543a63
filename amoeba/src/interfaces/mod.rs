//! Every server's interface, declared once with [`interface!`](crate::interface):
//! command numbers, access, argument and reply layout. Clients (boards and host) and
//! servers both use these modules; nobody writes a command number or packs a header
//! by hand.
//!
//! Command numbers are grouped per server as in Amoeba: standard commands from 1000,
//! Bullet from 2000, SOAP (directory) from 2100, run server from 3000, process server
//! from 3100, TTY from 3300, disk from 3400, the demo services from 4000.

mod demo;
pub mod standard;

pub use demo::{counter, echo};

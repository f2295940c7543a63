//! What user processes, the nucleus and the host share in this Amoeba-style system.
//!
//! * [`Port`], [`GetPort`] and the one-way function [`one_way`] (SHA-256 truncated to
//!   48 bits): a server listens on its private get-port `G` and publishes the put-port
//!   `P = F(G)`.
//! * [`Capability`]: `port (48) | object (24) | rights (8) | check (48)`, 16 bytes on the
//!   wire (big endian). The owner capability's check is a random value from the
//!   ChaCha20 CSPRNG [`Rng`]; a capability restricted to rights `R` carries
//!   `check' = F(random XOR [R; 6])` (see [`restrict`]); the server checks any
//!   capability with [`verify`] in constant time.
//! * [`Header`]: the fixed-size message header of every request and reply.
//! * [`interface!`](macro@crate::interface) and [`interfaces`]: every server's interface declared once —
//!   command numbers (standard from 1000, Bullet from 2000, SOAP from 2100, run
//!   server from 3000, process server from 3100), client stubs, server traits and
//!   dispatchers — and [`Status`]: reply status codes (OK = 0, errors < 0).
//! * [`server`]: the object table most servers keep, which gives them the
//!   capability checks and standard commands of their interface.
//! * [`exec`] and [`files`]: starting programs on boards and moving whole files,
//!   from the host or from a board.
//!
//! ```
//! use amoeba::{Rng, GetPort, Rights, Capability, verify};
//! let mut rng = Rng::from_seed([7; 32]);
//! let get = GetPort::random(&mut rng);
//! let put = get.put_port();
//! let random = rng.check();
//! let owner = Capability::owner(put, 42, random);
//! let read_only = owner.restrict(Rights::READ).unwrap();
//! assert_eq!(verify(&random, &read_only), Ok(Rights::READ));
//! assert_eq!(verify(&random, &owner), Ok(Rights::ALL));
//! ```
#![cfg_attr(not(test), no_std)]
#![cfg_attr(not(feature = "user"), forbid(unsafe_code))]
// With the user runtime, unsafe code is still denied everywhere but in `user`.
#![cfg_attr(feature = "user", deny(unsafe_code))]
#![warn(missing_docs)]

extern crate alloc;

mod cap;
pub mod exec;
pub mod files;
mod header;
pub mod interface;
pub mod interfaces;
mod port;
mod rng;
pub mod server;
pub mod sim_rng;
mod status;
pub mod syscall;
#[cfg(feature = "user")]
#[allow(unsafe_code)]
pub mod user;

pub use cap::{CapError, Capability, Check, OBJECT_MAX, Private, Rights, restrict, verify};
pub use header::{HEADER_LEN, Header, HeaderError};
pub use port::{GetPort, ParseError, Port, one_way};
pub use rng::Rng;
pub use status::Status;

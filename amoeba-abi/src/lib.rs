//! The ABI everyone shares in this Amoeba-style system: the nucleus, user
//! processes, servers, the protocol crates and the host.
//!
//! * [`Port`], [`GetPort`] and F: a server listens on its private get-port `G` and
//!   publishes the put-port `P = F(G)`, the 48-bit hash of the public half of an
//!   Ed25519 key derived from G ([`LocateKey`]), so that it can prove it holds G to
//!   a client that knows only P ([`verify_locate`]). The one-way function
//!   [`one_way`] (SHA-256 truncated to 48 bits) makes restricted capability checks.
//! * [`Capability`]: `port (48) | object (24) | rights (8) | check (48)`, 16 bytes on the
//!   wire (big endian). The owner capability's check is a random value from the
//!   ChaCha20 CSPRNG [`Rng`]; a capability restricted to rights `R` carries
//!   `check' = F(random XOR [R; 6])` (see [`restrict`]); the server checks any
//!   capability with [`verify`] in constant time.
//! * [`Header`]: the fixed-size message header of every request and reply, and
//!   [`Status`]: reply status codes (OK = 0, errors < 0).
//! * [`syscall`]: the system-call numbers and the structures they pass.
//!
//! The interfaces declared on top of this live in `amoeba-ipc`, the client
//! library (exec, files) in `amoeba-client`, the user runtime in `amoeba-rt`.
//! With the feature `serde`, capabilities, rights and statuses serialise (the
//! interfaces' typed buffers need it; the protocol crates do not).
//!
//! ```
//! use amoeba_abi::{Rng, GetPort, Rights, Capability, verify};
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
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

mod cap;
mod header;
mod port;
mod rng;
mod status;
pub mod syscall;
pub mod wire;

pub use cap::{CapError, Capability, Check, OBJECT_MAX, Private, Rights, restrict, verify};
pub use header::{HEADER_LEN, Header, HeaderError};
pub use port::{
    GetPort, LOCATE_KEY_LEN, LOCATE_SIGNATURE_LEN, LocateKey, ParseError, Port, one_way, put_port_of_key,
    verify_locate,
};
pub use rng::Rng;
pub use status::Status;

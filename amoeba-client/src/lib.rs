//! What a client of the pool's servers does, from the host or from a program on a
//! board, over any transport: starting programs on boards ([`exec`]: parse the
//! ELF file, create and fill segments remotely, send the descriptor, as Amoeba's
//! `exec_file` did) and moving files to and from the Bullet server ([`files`]).
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

pub mod exec;
pub mod files;

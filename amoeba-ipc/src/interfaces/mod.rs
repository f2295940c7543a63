//! Every server's interface, declared once with [`interface!`](crate::interface):
//! command numbers, access, argument and reply layout. Clients (boards and host) and
//! servers both use these modules; nobody writes a command number or packs a header
//! by hand.
//!
//! Command numbers are grouped per server as in Amoeba: standard commands from 1000,
//! Bullet from 2000, SOAP (directory) from 2100, run server from 3000, process server from
//! 3100, TTY from 3300, disk from 3400, the boot service from 3500, bootstrap
//! and report (`starter`) from 3600, the demo services from 4000.

pub mod boot;
mod bullet_files;
mod demo;
pub mod directory;
mod disk_blocks;
pub mod process;
pub mod run;
pub mod standard;
pub mod starter;
mod terminal;

pub use boot::boot_service;
pub use bullet_files::{BS_COMMIT, BS_IO_MAX, BS_SAFETY, BulletStats, bullet};
pub use demo::{Cost, GROUP_LOG_ENTRY, GroupLogEntry, GroupLogWhat, OrderHash, costs, counter, echo};
pub use directory::soap;
pub use disk_blocks::{DISK_IO_MAX, DISK_READ, DISK_WRITE, disk};
pub use process::process_server;
pub use run::run_server;
pub use starter::bootstrap;
pub use terminal::{
    TTY_CREATE_RIGHT, TTY_LOG_NAME_MAX, TTY_NAME_RIGHT, TTY_READ_MAX, TTY_READ_RIGHT, TTY_WRITE_RIGHT,
    is_log_name, tty,
};

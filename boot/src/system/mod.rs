//! Bringing the system up on a booted pool, in order, through the process
//! servers with the host capabilities (DESIGN.md "Booting a whole pool"):
//! the Bullet server on the board with the disk, then the directory replicas,
//! then the run server. Each server prints its capability on its board's
//! console, where the host reads it.

pub mod directory;

use crate::pool::Pool;
use amoeba::Capability;
use amoeba::exec::Exec;
use amoeba::interfaces::process::HOST_DISK;
use amoeba::interfaces::process_server;
use anyhow::{Context, Result};
use std::time::Duration;

/// Blocks at the start of the disk kept for the directory service's anchors;
/// the Bullet server gets the rest.
pub const ANCHOR_BLOCKS: u64 = 64;
/// How long a server has to come up.
const SERVER_START: Duration = Duration::from_secs(60);
/// The Bullet server's heap: its cache and the files being written.
const BULLET_HEAP: u64 = 160 << 20;

/// Random hex for a server's new secrets.
fn seed_hex() -> Result<String> {
    let mut bytes = [0u8; 24];
    let mut urandom = std::fs::File::open("/dev/urandom")?;
    std::io::Read::read_exact(&mut urandom, &mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The disk of board `board` from block `first` on (all of the rest).
pub fn disk_capability(pool: &Pool, board: usize, first: u64, count: u32) -> Result<Capability> {
    let host = pool.host_capability(board).restrict(HOST_DISK).expect("an owner capability restricts");
    process_server::Client::new(&mut *pool.rpc())
        .disk(&host, 0, first, count)
        .map_err(|status| anyhow::anyhow!("board {board} has no usable disk: {status}"))
}

/// Starts the Bullet server on board `board` (which has the disk); its super
/// capability, which stays the same across restarts on the same disk.
pub fn start_bullet(pool: &Pool, board: usize) -> Result<Capability> {
    let disk = disk_capability(pool, board, ANCHOR_BLOCKS, 0)?;
    let mut exec = Exec::new("bullet-server", &["bullet-server"]).with_capability("DISK", disk);
    exec.heap_size = BULLET_HEAP;
    exec.startup.environment.push(format!("SEED={}", seed_hex()?));
    pool.exec_with(board, "bullet-server", &exec)?;
    let console = &pool.boards()[board];
    let capability = console
        .wait_for_line("bullet-server: capability ", SERVER_START)
        .with_context(|| format!("the Bullet server did not start:\n{}", console.console_tail(15)))?;
    let capability = capability.rsplit(' ').next().unwrap_or("").parse().context("reading its capability")?;
    Ok(capability)
}

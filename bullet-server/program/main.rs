//! `bullet-server`: the Bullet file server as a user process. It serves the files
//! kept on the disk object its capability environment names `DISK` (a board's
//! virtio disk, reached by RPC) and announces its super capability, which
//! stays the same across restarts, to its starter (`BOOTSTRAP`, by RPC; its
//! console line `bullet-server: capability <cap>` is for people).
//! A second thread syncs every few seconds, so that unsafe commits and destroys
//! reach the disk, and ages the uncommitted files now and then, so that a file
//! whose writer went away gives its memory or its reserved blocks back.
//!
//! It never formats a disk on its own: a disk whose superblock copies are both
//! damaged (or that holds no store) is refused with a message saying why, and
//! left exactly as it is. Only `FORMAT=1`, which the host sets for a disk it has
//! just made empty (`up --fresh-disk`), lets it make a new store, and then only on
//! a disk that holds none.
//!
//! Environment: `CACHE_MIB` (default 32), `INODES` (default 4096, at format time),
//! `SEED` (hex, mixed into the random numbers of a new store), `FORMAT` (1: the
//! disk is new).
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use amoeba_abi::{Header, Rng, Status};
use amoeba_ipc::interface::Transport;
use amoeba_ipc::interfaces::starter::Announcement;
use amoeba_ipc::interfaces::{BS_IO_MAX, bullet, standard};
use amoeba_rt::println;
use amoeba_rt::rpc::Nucleus;
use amoeba_rt::{env, starter, sys, thread, time};
use bullet_server::{BulletService, Config, DiskObject, MountError, ReplyInto, Store};

amoeba_rt::entry!(main);

/// Microseconds between background syncs.
const SYNC_PERIOD_US: u64 = 2_000_000;
/// Syncs between two ages of the uncommitted files (an untouched one goes after
/// `Config::uncommitted_life` ages: about two minutes).
const SYNCS_PER_AGE: u32 = 15;
/// Exit status of a server that refuses the disk it was given.
const REFUSED: i32 = 2;
/// The largest request: a piece of a file and room for the rest.
const REQUEST_MAX: usize = BS_IO_MAX + 4096;

/// The nucleus's `trans`, with replies received straight into the caller's
/// buffer: a disk read lands where the store wants it, with no buffer between.
struct Kernel;

impl Transport for Kernel {
    fn trans(
        &mut self,
        request: &Header,
        buf: &[u8],
        reply_limit: usize,
    ) -> Result<(Header, Vec<u8>), Status> {
        Nucleus.trans(request, buf, reply_limit)
    }
}

impl ReplyInto for Kernel {
    fn trans_into(
        &mut self,
        request: &Header,
        buf: &[u8],
        reply: &mut [u8],
    ) -> Result<(Header, usize), Status> {
        sys::trans(request, buf, reply)
    }
}

fn number(name: &str, default: u64) -> u64 {
    env::var(name).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn rng() -> Rng {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&time::ticks().to_le_bytes());
    if let Some(hex) = env::var("SEED") {
        for (i, pair) in hex.as_bytes().chunks(2).take(24).enumerate() {
            let text = core::str::from_utf8(pair).unwrap_or("0");
            seed[8 + i] = u8::from_str_radix(text, 16).unwrap_or(0);
        }
    }
    Rng::from_seed(seed)
}

fn open_store() -> Result<Store<DiskObject<Kernel>>, String> {
    let disk = env::capability("DISK").ok_or("no DISK capability in the environment")?;
    let device =
        DiskObject::open(Kernel, disk).map_err(|s| alloc::format!("the disk does not answer: {s}"))?;
    let config = Config {
        cache_bytes: (number("CACHE_MIB", 32) as usize) << 20,
        inode_count: number("INODES", 4096) as u32,
        ..Config::default()
    };
    let format_allowed = env::var("FORMAT") == Some("1");
    match Store::mount(device, config, rng()) {
        Ok(store) => {
            let counters = store.stats().counters;
            if counters.superblocks_rewritten > 0 {
                println!(
                    "bullet-server: a superblock copy was damaged; recovered from the other and written again"
                );
            }
            if counters.layout_upgraded {
                println!("bullet-server: the store now keeps a backup superblock in its last block");
            }
            Ok(store)
        }
        Err(failure) if failure.error == MountError::NotFormatted && format_allowed => {
            println!("bullet-server: formatting the new disk");
            Store::format(failure.device, config, rng()).map_err(|f| alloc::format!("format failed: {f}"))
        }
        Err(failure) if failure.error == MountError::NotFormatted => Err(alloc::format!(
            "refusing to start: {}. The disk is left as it is; nothing was written. \
             (A new, empty store is made only for a fresh disk: `up --fresh-disk`, which loses \
             everything on it.)",
            failure.error
        )),
        Err(failure) => {
            Err(alloc::format!("refusing to start: {}. The disk is left as it is.", failure.error))
        }
    }
}

fn main(_: u64) -> i32 {
    let store = match open_store() {
        Ok(store) => store,
        Err(why) => {
            println!("bullet-server: {why}");
            return REFUSED;
        }
    };
    let stats = store.stats();
    let capability = store.super_capability();
    println!(
        "bullet-server: {} files, {} of {} blocks free",
        stats.files, stats.free_blocks, stats.data_blocks
    );
    println!("bullet-server: capability {capability}");
    let get = store.get_port();
    starter::announce_soon("bullet-server", Announcement::Serving(capability));
    thread::spawn(move || {
        let mut syncs = 0u32;
        loop {
            time::sleep_us(SYNC_PERIOD_US);
            let _ = bullet::Client::new(Nucleus).sync(&capability);
            syncs += 1;
            if syncs.is_multiple_of(SYNCS_PER_AGE) {
                let _ = standard::Client::new(Nucleus).age(&capability);
            }
        }
    });
    // Chunk writes are answered first and written right after, before the next
    // request: the client's next chunk travels while this one goes to disk.
    let mut service = BulletService::with_write_behind(store);
    let mut buf = Vec::new();
    if buf.try_reserve_exact(REQUEST_MAX).is_err() {
        println!("bullet-server: no memory for the request buffer");
        return 1;
    }
    buf.resize(REQUEST_MAX, 0);
    loop {
        let (request, len) = match sys::get_request(&get, &mut buf) {
            Ok(got) => got,
            Err(status) => {
                println!("bullet-server: get_request failed: {status}");
                return 1;
            }
        };
        service.dispatch_then_write(&request, &buf[..len], |reply, data| {
            // A client that gave up meanwhile is not the server's problem.
            let _ = sys::put_reply(reply, data);
        });
    }
}

//! `bullet-server`: the Bullet file server as a user process. It serves the files
//! kept on the disk object its capability environment names `DISK` (a board's
//! virtio disk, reached by RPC), formatting it on first use, and prints its super
//! capability (`bullet-server: capability <cap>`), which stays the same across
//! restarts. A second thread syncs every few seconds, so that unsafe commits and
//! destroys reach the disk.
//!
//! Environment: `CACHE_MIB` (default 32), `INODES` (default 4096, at format time),
//! `SEED` (hex, mixed into the random numbers of a new store).
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use amoeba::interfaces::{BS_IO_MAX, bullet};
use amoeba::user::rpc::{Nucleus, serve};
use amoeba::user::{env, thread, time};
use amoeba::{Rng, println};
use bullet_server::{BulletService, Config, DiskObject, MountError, Store};

amoeba::entry!(main);

/// Seconds between background syncs.
const SYNC_PERIOD_US: u64 = 2_000_000;

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

fn open_store() -> Result<Store<DiskObject<Nucleus>>, alloc::string::String> {
    let disk = env::capability("DISK").ok_or("no DISK capability in the environment")?;
    let device =
        DiskObject::open(Nucleus, disk).map_err(|s| alloc::format!("the disk does not answer: {s}"))?;
    let config = Config {
        cache_bytes: (number("CACHE_MIB", 32) as usize) << 20,
        inode_count: number("INODES", 4096) as u32,
        ..Config::default()
    };
    match Store::mount(device, config, rng()) {
        Ok(store) => Ok(store),
        Err(failure) if failure.error == MountError::NotFormatted => {
            println!("bullet-server: formatting a new store");
            Store::format(failure.device, config, rng()).map_err(|f| alloc::format!("format failed: {f}"))
        }
        Err(failure) => Err(alloc::format!("mount failed: {failure}")),
    }
}

fn main(_: u64) -> i32 {
    let store = match open_store() {
        Ok(store) => store,
        Err(why) => {
            println!("bullet-server: {why}");
            return 1;
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
    thread::spawn(move || {
        loop {
            time::sleep_us(SYNC_PERIOD_US);
            let _ = bullet::Client::new(Nucleus).sync(&capability);
        }
    });
    let mut service = BulletService::new(store);
    let status = serve(&get, BS_IO_MAX + 4096, |header, buf| service.dispatch(header, buf));
    println!("bullet-server: get_request failed: {status}");
    1
}

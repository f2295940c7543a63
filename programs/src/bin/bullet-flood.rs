//! `bullet-flood`: `argument` threads (at most 8, the default quota of
//! transactions) each make one 1 MiB file on the Bullet server named by its
//! `BULLET` capability at the same moment, committed with the safety flag;
//! then the files that were made are read back, one at a time. A pool test
//! floods board 0 with many of these beside host clients.
//!
//! Exit status: `made | no_space << 8 | other << 16`, where `made` counts the
//! files made and read back intact, `no_space` the creates refused with
//! `NoSpace` (or `NoMem`: the server had no room then), and `other` anything
//! else (a file that came back wrong counts there too).
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use amoeba_abi::{Capability, Status};
use amoeba_ipc::interfaces::{BS_COMMIT, BS_SAFETY, bullet};
use amoeba_rt::println;
use amoeba_rt::rpc::Nucleus;
use amoeba_rt::sync::Mutex;
use amoeba_rt::{env, thread};
use core::sync::atomic::{AtomicU32, Ordering};

amoeba_rt::entry!(main);

const FILE: usize = 1 << 20;
const MAX_THREADS: u64 = 8;

static MADE: AtomicU32 = AtomicU32::new(0);
static NO_SPACE: AtomicU32 = AtomicU32::new(0);
static OTHER: AtomicU32 = AtomicU32::new(0);
/// The files made, with the seed of their contents, to read back afterwards.
static FILES: Mutex<Vec<(u64, Capability)>> = Mutex::new(Vec::new());

fn pattern(at: usize, seed: u64) -> u8 {
    (at as u64).wrapping_mul(13).wrapping_add(seed) as u8
}

fn flood_one(seed: u64) {
    let Some(server) = env::capability("BULLET") else {
        OTHER.fetch_add(1, Ordering::SeqCst);
        return;
    };
    let data: Vec<u8> = (0..FILE).map(|at| pattern(at, seed)).collect();
    match bullet::Client::new(Nucleus).create(&server, BS_COMMIT | BS_SAFETY, &data) {
        Ok(file) => FILES.lock().push((seed, file)),
        Err(Status::NoSpace | Status::NoMem) => {
            NO_SPACE.fetch_add(1, Ordering::SeqCst);
        }
        Err(status) => {
            println!("bullet-flood: create {seed}: {status}");
            OTHER.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn main(argument: u64) -> i32 {
    let threads = argument.clamp(1, MAX_THREADS);
    let base = amoeba_rt::time::now_us();
    let mut handles = Vec::new();
    for index in 0..threads {
        match thread::try_spawn_with_stack(32 * 1024, move || flood_one(base ^ index)) {
            Ok(handle) => handles.push(handle),
            Err(_) => {
                OTHER.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
    for handle in handles {
        handle.join();
    }
    for (seed, file) in FILES.lock().iter() {
        let back = amoeba_client::files::get(&mut Nucleus, file, |_| {});
        let intact = back
            .as_ref()
            .is_ok_and(|b| b.len() == FILE && b.iter().enumerate().all(|(at, &x)| x == pattern(at, *seed)));
        if intact {
            MADE.fetch_add(1, Ordering::SeqCst);
        } else {
            println!("bullet-flood: file {seed} came back wrong: {:?}", back.map(|b| b.len()));
            OTHER.fetch_add(1, Ordering::SeqCst);
        }
    }
    let (made, no_space, other) =
        (MADE.load(Ordering::SeqCst), NO_SPACE.load(Ordering::SeqCst), OTHER.load(Ordering::SeqCst));
    println!("bullet-flood: {made} made, {no_space} refused for want of space, {other} failed otherwise");
    (made | no_space << 8 | other << 16) as i32
}

//! Files written in chunks straight to disk (`reserve`, `write`, `commit`): larger
//! than the cache and than the memory for uncommitted files, held to the rules of
//! chunked writes, never readable before their commit, gone with their space freed
//! when they are destroyed, aged or cut by a restart, and stepped around by
//! compaction. Property test: any sequence of chunk sizes round-trips.

use amoeba_abi::{Capability, Rights, Rng, Status};
use amoeba_ipc::interfaces::{BS_COMMIT, BS_SAFETY};
use bullet_server::sim::{SimDisk, SplitMix64};
use bullet_server::{Config, Store};
use proptest::prelude::*;

const SAFE: u32 = BS_COMMIT | BS_SAFETY;
const BS: usize = 512;

/// Little memory: a 64 KiB cache, 64 KiB of uncommitted files.
fn config() -> Config {
    Config { inode_count: 64, cache_bytes: 64 << 10, uncommitted_bytes: 64 << 10, ..Config::default() }
}

fn store(blocks: u64) -> Store<SimDisk> {
    Store::format(SimDisk::new(BS, blocks), config(), Rng::from_seed([7; 32])).unwrap()
}

fn remount(s: Store<SimDisk>) -> Store<SimDisk> {
    Store::mount(s.into_device(), config(), Rng::from_seed([8; 32])).unwrap()
}

fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0; len];
    SplitMix64::new(seed).fill(&mut v);
    v
}

fn check(s: &mut Store<SimDisk>) {
    s.check_consistency().unwrap();
    s.check_disk().unwrap();
}

/// Reads a file back in pieces of at most 1 MiB, as the server does for a client.
fn read_back(s: &mut Store<SimDisk>, cap: &Capability) -> Vec<u8> {
    let size = s.size(cap).unwrap() as usize;
    let mut back = Vec::with_capacity(size);
    while back.len() < size {
        back.extend_from_slice(s.read(cap, back.len() as u64, 1 << 20).unwrap());
    }
    back
}

/// Writes `data` into a new reserved file in `chunk`-byte pieces and commits it.
fn stream(s: &mut Store<SimDisk>, data: &[u8], chunk: usize, flags: u32) -> Result<Capability, Status> {
    let sup = s.super_capability();
    let file = s.reserve(&sup, data.len() as u64)?;
    for (i, piece) in data.chunks(chunk).enumerate() {
        s.write(&file, (i * chunk) as u64, piece)?;
    }
    s.commit(&file, flags)?;
    Ok(file)
}

#[test]
fn a_file_larger_than_memory_goes_straight_to_disk() {
    let mut s = store(16 << 10);
    let data = bytes((3 << 20) + 123, 1);
    let sup = s.super_capability();
    let file = s.reserve(&sup, data.len() as u64).unwrap();
    assert_eq!(s.size(&file), Ok(data.len() as u64));
    assert_eq!(s.stats().reserved, 1);
    let free_after_reserve = s.stats().free_blocks;
    for (i, piece) in data.chunks(1 << 20).enumerate() {
        s.write(&file, (i << 20) as u64, piece).unwrap();
        assert_eq!(s.read(&file, 0, 1), Err(Status::NotNow), "readable before its commit");
        let st = s.stats();
        assert_eq!((st.uncommitted_bytes, st.cached_bytes), (0, 0), "the file went through memory");
    }
    assert_eq!(s.stats().free_blocks, free_after_reserve, "the blocks were all taken by the reserve");
    s.commit(&file, SAFE).unwrap();
    assert_eq!(s.stats().reserved, 0);
    assert!(read_back(&mut s, &file) == data);
    check(&mut s);
    let mut s = remount(s);
    assert!(read_back(&mut s, &file) == data, "the safe commit survives a restart");
    assert!(s.stats().cached_bytes <= config().cache_bytes);
    check(&mut s);
    // Committed, it is immutable like every file.
    assert_eq!(s.write(&file, 0, &[0; BS]), Err(Status::ArgBad));
    assert_eq!(s.commit(&file, SAFE), Err(Status::ArgBad));
}

#[test]
fn chunks_follow_the_rules() {
    let mut s = store(4096);
    let sup = s.super_capability();
    let size = 10 * BS + 7;
    let data = bytes(size, 2);
    let file = s.reserve(&sup, size as u64).unwrap();
    // Not at a block boundary, past what is written, past the end, a partial block
    // that does not end the file.
    assert_eq!(s.write(&file, 1, &data[1..BS]), Err(Status::ArgBad));
    assert_eq!(s.write(&file, BS as u64, &data[BS..2 * BS]), Err(Status::ArgBad));
    assert_eq!(s.write(&file, 0, &vec![0; size + 1]), Err(Status::ArgBad));
    assert_eq!(s.write(&file, 0, &data[..BS + 1]), Err(Status::ArgBad));
    assert_eq!(s.write(&file, u64::MAX - 511, &data[..BS]), Err(Status::ArgBad));
    // Rights: writing needs modify; reserving needs the server's create right.
    let read_only = file.restrict(Rights::READ).unwrap();
    assert_eq!(s.write(&read_only, 0, &data[..BS]), Err(Status::Denied));
    assert_eq!(s.commit(&read_only, SAFE), Err(Status::Denied));
    assert_eq!(s.reserve(&file, 10), Err(Status::Denied));
    assert_eq!(s.reserve(&sup.restrict(Rights::READ).unwrap(), 10), Err(Status::Denied));
    // Not whole yet: no commit. A chunk may be written again (a retried request).
    s.write(&file, 0, &data[..4 * BS]).unwrap();
    s.write(&file, 2 * BS as u64, &data[2 * BS..4 * BS]).unwrap();
    assert_eq!(s.commit(&file, SAFE), Err(Status::ArgBad));
    s.write(&file, 4 * BS as u64, &data[4 * BS..]).unwrap();
    // Edits are for files in memory; this one is written in place.
    assert_eq!(s.modify(&file, 0, b"x", 0), Err(Status::ArgBad));
    assert!(s.info(&file).unwrap().contains("uncommitted"));
    s.commit(&file, BS_COMMIT).unwrap();
    assert_eq!(read_back(&mut s, &file), data);
    // Empty and one-block files.
    for len in [0, 1, BS] {
        let f = stream(&mut s, &bytes(len, len as u64), BS, SAFE).unwrap();
        assert_eq!(read_back(&mut s, &f), bytes(len, len as u64));
    }
    check(&mut s);
}

#[test]
fn an_unfinished_file_leaves_nothing_behind() {
    let mut s = store(4096);
    let sup = s.super_capability();
    let free = s.stats().free_blocks;
    let data = bytes(100 * BS, 3);
    // Destroyed: its blocks are free at once (no inode on disk names them).
    let a = s.reserve(&sup, data.len() as u64).unwrap();
    s.write(&a, 0, &data[..50 * BS]).unwrap();
    assert_eq!(s.stats().free_blocks, free - 100);
    s.destroy(&a).unwrap();
    assert_eq!((s.stats().free_blocks, s.stats().waiting_blocks), (free, 0));
    check(&mut s);
    // Aged: gone once untouched for its life; writes count as touches.
    let b = s.reserve(&sup, data.len() as u64).unwrap();
    for _ in 0..3 {
        s.age(&sup).unwrap();
        s.write(&b, 0, &data[..BS]).unwrap();
    }
    for _ in 0..config().uncommitted_life {
        s.age(&sup).unwrap();
    }
    assert_eq!(s.size(&b), Err(Status::CapBad));
    assert_eq!(s.stats().free_blocks, free);
    // Cut by a restart: gone, and its space is free.
    let c = s.reserve(&sup, data.len() as u64).unwrap();
    s.write(&c, 0, &data).unwrap();
    let kept = stream(&mut s, &bytes(7 * BS, 4), 3 * BS, SAFE).unwrap();
    let mut s = remount(s);
    assert_eq!(s.size(&c), Err(Status::CapBad));
    assert_eq!(s.stats().free_blocks, free - 7);
    assert_eq!(read_back(&mut s, &kept), bytes(7 * BS, 4));
    check(&mut s);
}

#[test]
fn the_largest_file_is_as_large_as_compaction_can_make_a_run() {
    let mut s = store(2048);
    let sup = s.super_capability();
    let data_blocks = s.stats().data_blocks;
    assert_eq!(s.stats().largest_run, data_blocks);
    // Ten files of 50 blocks, the fourth of 30; the first and the fourth destroyed.
    let mut kept = Vec::new();
    for i in 0..10 {
        let data = bytes(if i == 3 { 30 } else { 50 } * BS, i);
        kept.push((stream(&mut s, &data, 8 * BS, SAFE).unwrap(), data));
    }
    for gone in [3, 0] {
        s.destroy(&kept.remove(gone).0).unwrap();
    }
    s.sync(&sup).unwrap();
    let used = 8 * 50;
    assert_eq!(s.stats().largest_run, data_blocks - used);
    // A file being written takes the 30-block hole (the best fit) and stays there:
    // compaction goes around it, so the 50 blocks below it stay apart.
    let pinned = s.reserve(&sup, 20 * BS as u64).unwrap();
    let pinned_data = bytes(20 * BS, 99);
    s.write(&pinned, 0, &pinned_data[..10 * BS]).unwrap();
    let largest = s.stats().largest_run;
    assert_eq!(largest, data_blocks - used - 20 - 50);
    let too_big = (largest + 1) as usize * BS;
    let moved = s.stats().counters.blocks_moved;
    assert_eq!(s.reserve(&sup, too_big as u64), Err(Status::NoSpace));
    assert_eq!(s.stats().counters.blocks_moved, moved, "a hopeless compaction was not tried");
    let big = bytes(largest as usize * BS, 100);
    let f = stream(&mut s, &big, 1 << 20, SAFE).unwrap();
    assert!(s.stats().counters.compactions > 0);
    s.write(&pinned, 10 * BS as u64, &pinned_data[10 * BS..]).unwrap();
    s.commit(&pinned, SAFE).unwrap();
    kept.push((f, big));
    kept.push((pinned, pinned_data));
    check(&mut s);
    let mut s = remount(s);
    for (f, data) in &kept {
        assert!(&read_back(&mut s, f) == data);
    }
    check(&mut s);
}

#[test]
fn an_edit_too_large_for_memory_says_no_mem() {
    let mut s = store(4096);
    let big = stream(&mut s, &bytes(200 << 10, 5), 64 << 10, SAFE).unwrap();
    // Its copy would exceed the memory for uncommitted files: refused, not attempted.
    assert_eq!(s.modify(&big, 0, b"x", SAFE), Err(Status::NoMem));
    assert_eq!(s.insert(&big, 0, b"x", SAFE), Err(Status::NoMem));
    assert_eq!(read_back(&mut s, &big), bytes(200 << 10, 5));
    check(&mut s);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    /// Any file size and chunk size (whole blocks) round-trips, across a restart.
    #[test]
    fn any_chunking_round_trips(size in 0usize..40_000, chunk_blocks in 1usize..20, seed in any::<u64>()) {
        let mut s = store(1024);
        let data = bytes(size, seed);
        let file = stream(&mut s, &data, chunk_blocks * BS, SAFE).unwrap();
        prop_assert_eq!(read_back(&mut s, &file), data.clone());
        let mut s = remount(s);
        prop_assert_eq!(read_back(&mut s, &file), data);
        s.check_consistency().unwrap();
        s.check_disk().unwrap();
    }
}

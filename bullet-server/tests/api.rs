//! The store's operations as a client sees them, over a simulated disk: round trips
//! of awkward sizes, immutability, rights, the cache bound and order, compaction,
//! running out of space, uncommitted files, and what survives a restart.

use amoeba_abi::{Capability, Check, Port, Rights, Rng, Status};
use amoeba_ipc::interfaces::{BS_COMMIT, BS_SAFETY};
use bullet_server::sim::{SimDisk, SplitMix64};
use bullet_server::{Config, MountError, Store};

const SAFE: u32 = BS_COMMIT | BS_SAFETY;
const BS: usize = 512;

fn config() -> Config {
    Config { inode_count: 64, cache_bytes: 1 << 20, ..Config::default() }
}

fn store_with(blocks: u64, config: Config) -> Store<SimDisk> {
    Store::format(SimDisk::new(BS, blocks), config, Rng::from_seed([7; 32])).unwrap()
}

fn store(blocks: u64) -> Store<SimDisk> {
    store_with(blocks, config())
}

fn remount(s: Store<SimDisk>, config: Config) -> Store<SimDisk> {
    Store::mount(s.into_device(), config, Rng::from_seed([8; 32])).unwrap()
}

fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0; len];
    SplitMix64::new(seed).fill(&mut v);
    v
}

fn read_all(s: &mut Store<SimDisk>, cap: &Capability) -> Vec<u8> {
    let size = s.size(cap).unwrap() as usize;
    s.read(cap, 0, size).unwrap().to_vec()
}

fn check(s: &mut Store<SimDisk>) {
    s.check_consistency().unwrap();
    s.check_disk().unwrap();
}

#[test]
fn round_trips_of_awkward_sizes() {
    let sizes = [0, 1, BS - 1, BS, BS + 1, 3 * BS, (1 << 20) + 1];
    let mut s = store(8192);
    let sup = s.super_capability();
    let caps: Vec<_> =
        sizes.iter().map(|&n| (n, s.create(&sup, &bytes(n, n as u64), SAFE).unwrap())).collect();
    for (n, cap) in &caps {
        assert_eq!(s.size(cap), Ok(*n as u64));
        assert_eq!(read_all(&mut s, cap), bytes(*n, *n as u64), "size {n}");
        // A read past the end is cut short; one starting past the end is refused.
        assert_eq!(s.read(cap, *n as u64, 10).unwrap(), b"");
        assert_eq!(s.read(cap, *n as u64 + 1, 10), Err(Status::ArgBad));
        if *n > 2 {
            assert_eq!(s.read(cap, 1, n - 2).unwrap(), &bytes(*n, *n as u64)[1..n - 1]);
        }
    }
    check(&mut s);
    let mut s = remount(s, config());
    check(&mut s);
    for (n, cap) in &caps {
        assert_eq!(read_all(&mut s, cap), bytes(*n, *n as u64), "size {n} after remount");
    }
}

#[test]
fn transfers_are_large_and_contiguous() {
    let cfg = Config { cache_bytes: 2 << 20, ..config() };
    let mut s = store_with(8192, cfg);
    let sup = s.super_capability();
    let data = bytes((1 << 20) + 1, 1);
    let before = s.device().stats();
    let cap = s.create(&sup, &data, SAFE).unwrap();
    let after = s.device().stats();
    // 1 MiB + 1 block of data, one inode block: three writes, not 2049.
    assert_eq!(after.writes - before.writes, 3);
    assert_eq!(after.blocks_written - before.blocks_written, 2049 + 1);
    // Uncached read: the whole file in two reads (the device moves 1 MiB per call).
    let mut s = remount(s, cfg);
    let before = s.device().stats();
    assert_eq!(s.read(&cap, 0, 10).unwrap(), &data[..10]);
    assert_eq!(s.device().stats().reads - before.reads, 2);
    // Cached now: no more disk reads.
    assert_eq!(s.read(&cap, 1 << 20, 1).unwrap(), &data[1 << 20..]);
    assert_eq!(s.device().stats().reads - before.reads, 2);
}

/// A file built in memory, piece by piece, and committed with its last piece.
const BIG: usize = 64 << 20;

#[test]
fn a_64_mib_file_built_in_pieces() {
    let blocks = (BIG / BS) as u64 + 1024;
    let cfg = Config { cache_bytes: 8 << 20, uncommitted_bytes: BIG, max_file_size: BIG as u32, ..config() };
    let mut s = store_with(blocks, cfg);
    let sup = s.super_capability();
    let data = bytes(BIG, 64);
    let piece = 1 << 20;
    let cap = s.create(&sup, &data[..piece], 0).unwrap();
    for at in (piece..data.len()).step_by(piece) {
        let flags = if at + piece == data.len() { SAFE } else { 0 };
        assert_eq!(s.modify(&cap, at as u64, &data[at..at + piece], flags), Ok(cap));
    }
    assert_eq!(s.size(&cap), Ok(BIG as u64));
    assert_eq!(s.modify(&sup, 0, b"x", 0), Err(Status::ArgBad));
    // Larger than the cache: served by direct reads of the blocks asked for.
    let mut s = remount(s, cfg);
    for at in [0, 12345, BIG - 1000] {
        assert_eq!(s.read(&cap, at as u64, 1000).unwrap(), &data[at..at + 1000]);
    }
    assert!(s.cached_objects().is_empty());
    let mut back = Vec::with_capacity(data.len());
    while back.len() < data.len() {
        back.extend_from_slice(s.read(&cap, back.len() as u64, 3 << 20).unwrap());
    }
    assert!(back == data, "64 MiB file differs");
    // One byte more than the largest file is refused, however it is made.
    let sup = s.super_capability();
    assert_eq!(s.create(&sup, &vec![0; BIG + 1], SAFE), Err(Status::Overflow));
    let c = s.create(&sup, b"x", 0).unwrap();
    assert_eq!(s.modify(&c, 1, &vec![0; BIG], 0), Err(Status::Overflow));
    assert_eq!(s.reserve(&sup, BIG as u64 + 1), Err(Status::Overflow));
    check(&mut s);
}

#[test]
fn edits_of_a_committed_file_make_new_files() {
    let mut s = store(1024);
    let sup = s.super_capability();
    let old = s.create(&sup, b"hello world", SAFE).unwrap();
    let modified = s.modify(&old, 6, b"there!", BS_COMMIT).unwrap();
    let inserted = s.insert(&old, 5, b",", BS_COMMIT).unwrap();
    let deleted = s.delete(&old, 5, 6, BS_COMMIT).unwrap();
    let appended = s.modify(&old, 11, b"!", 0).unwrap();
    let caps = [old, modified, inserted, deleted, appended];
    for (i, a) in caps.iter().enumerate() {
        for b in &caps[i + 1..] {
            assert_ne!(a.object, b.object);
        }
    }
    assert_eq!(read_all(&mut s, &old), b"hello world");
    assert_eq!(read_all(&mut s, &modified), b"hello there!");
    assert_eq!(read_all(&mut s, &inserted), b"hello, world");
    assert_eq!(read_all(&mut s, &deleted), b"hello");
    // Without the commit flag the new file is uncommitted: size yes, read not yet.
    assert_eq!(s.size(&appended), Ok(12));
    assert_eq!(s.read(&appended, 0, 1), Err(Status::NotNow));
    // An uncommitted file changes in place and keeps its capability.
    assert_eq!(s.insert(&appended, 0, b">", 0), Ok(appended));
    assert_eq!(s.delete(&appended, 1, 6, 0), Ok(appended));
    assert_eq!(s.modify(&appended, 5, b"", BS_COMMIT), Ok(appended));
    assert_eq!(read_all(&mut s, &appended), b">world!");
    // Committed now: the next edit makes a new file again.
    let again = s.modify(&appended, 0, b"<", BS_COMMIT).unwrap();
    assert_ne!(again.object, appended.object);
    assert_eq!(read_all(&mut s, &appended), b">world!");
    assert_eq!(read_all(&mut s, &again), b"<world!");
    // Edits outside the file are refused.
    assert_eq!(s.modify(&old, 12, b"x", 0), Err(Status::ArgBad));
    assert_eq!(s.insert(&old, 12, b"x", 0), Err(Status::ArgBad));
    assert_eq!(s.delete(&old, 6, 6, 0), Err(Status::ArgBad));
    assert_eq!(s.delete(&old, 12, 0, 0), Err(Status::ArgBad));
    check(&mut s);
}

#[test]
fn rights_and_forgeries() {
    let mut s = store(1024);
    let sup = s.super_capability();
    let cap = s.create(&sup, b"secret", SAFE).unwrap();
    let ro = cap.restrict(Rights::READ).unwrap();
    assert_eq!(read_all(&mut s, &ro), b"secret");
    assert_eq!(s.modify(&ro, 0, b"x", 0), Err(Status::Denied));
    assert_eq!(s.insert(&ro, 0, b"x", 0), Err(Status::Denied));
    assert_eq!(s.delete(&ro, 0, 1, 0), Err(Status::Denied));
    assert_eq!(s.destroy(&ro), Err(Status::Denied));
    // Modify needs read too, since it copies.
    let mo = cap.restrict(Rights::MODIFY).unwrap();
    assert_eq!(s.modify(&mo, 0, b"x", 0), Err(Status::Denied));
    assert_eq!(s.read(&mo, 0, 1), Err(Status::Denied));
    let rm = cap.restrict(Rights::READ | Rights::MODIFY).unwrap();
    assert!(s.modify(&rm, 0, b"x", 0).is_ok());
    // Forgeries: every check byte, raised rights, other port, other object, no object.
    for i in 0..6 {
        let mut f = ro;
        f.check.0[i] ^= 1;
        assert_eq!(s.read(&f, 0, 1), Err(Status::CapBad));
    }
    assert_eq!(s.destroy(&Capability { rights: Rights::ALL, ..ro }), Err(Status::CapBad));
    assert_eq!(s.read(&Capability { port: Port([1; 6]), ..cap }, 0, 1), Err(Status::CapBad));
    assert_eq!(s.read(&Capability { object: cap.object + 1, ..cap }, 0, 1), Err(Status::CapBad));
    assert_eq!(s.read(&Capability { object: 1 << 20, ..cap }, 0, 1), Err(Status::CapBad));
    assert_eq!(s.create(&Capability { check: Check([0; 6]), ..sup }, b"", 0), Err(Status::CapBad));
    // The server's capability: only the owner may create and age; files may not create.
    let sup_ro = sup.restrict(Rights::READ).unwrap();
    assert_eq!(s.create(&sup_ro, b"", 0), Err(Status::Denied));
    assert_eq!(s.age(&sup_ro), Err(Status::Denied));
    assert_eq!(s.create(&cap, b"", 0), Err(Status::Denied));
    assert_eq!(s.age(&cap), Err(Status::Denied));
    assert_eq!(s.destroy(&sup), Err(Status::Denied));
    assert_eq!(s.read(&sup, 0, 1), Err(Status::ArgBad));
    // STD_RESTRICT through the server: a restricted capability restricted further.
    let r = s.restrict(&rm, Rights::READ).unwrap();
    assert_eq!(r, ro);
    assert_eq!(s.restrict(&ro, Rights::ALL).unwrap().rights, Rights::READ);
    // Destroyed: every capability for it is bad, and stays bad for the next file in
    // the same inode.
    assert_eq!(s.destroy(&cap), Ok(()));
    assert_eq!(s.read(&ro, 0, 1), Err(Status::CapBad));
    assert_eq!(s.destroy(&cap), Err(Status::CapBad));
    let mut reused = None;
    for _ in 0..64 {
        let c = s.create(&sup, b"n", 0).unwrap();
        if c.object == cap.object {
            reused = Some(c);
            break;
        }
    }
    let reused = reused.expect("inode reused");
    assert_ne!(reused.check, cap.check);
    assert_eq!(s.size(&ro), Err(Status::CapBad));
}

#[test]
fn cache_keeps_its_bound_and_evicts_least_recently_used() {
    let cfg = Config { cache_bytes: 3 * 1024, ..config() };
    let mut s = store_with(1024, cfg);
    let sup = s.super_capability();
    let caps: Vec<_> = (0..4).map(|i| s.create(&sup, &bytes(1024, i), SAFE).unwrap()).collect();
    let mut s = remount(s, cfg);
    let objects = |s: &Store<SimDisk>| s.cached_objects();
    for c in &caps[..3] {
        s.read(c, 0, 1).unwrap();
    }
    assert_eq!(objects(&s), [caps[0].object, caps[1].object, caps[2].object]);
    s.read(&caps[0], 0, 1).unwrap(); // 0 becomes most recent
    assert_eq!(objects(&s), [caps[1].object, caps[2].object, caps[0].object]);
    s.read(&caps[3], 0, 1).unwrap(); // evicts 1, the least recently used
    assert_eq!(objects(&s), [caps[2].object, caps[0].object, caps[3].object]);
    assert_eq!(s.stats().cached_bytes, 3 * 1024);
    let loads = s.stats().counters.disk_loads;
    s.read(&caps[0], 0, 1).unwrap();
    assert_eq!(s.stats().counters.disk_loads, loads, "cached file read from disk");
    s.read(&caps[1], 0, 1).unwrap();
    assert_eq!(s.stats().counters.disk_loads, loads + 1, "evicted file not reloaded");
    // A file larger than the cache is never cached, and evicts nothing.
    let big = s.create(&sup, &bytes(4 * 1024, 9), SAFE).unwrap();
    assert_eq!(read_all(&mut s, &big), bytes(4 * 1024, 9));
    assert_eq!(objects(&s).len(), 3);
    assert!(s.stats().cached_bytes <= cfg.cache_bytes);
    // A destroyed file leaves the cache.
    s.destroy(&caps[1]).unwrap();
    assert!(!objects(&s).contains(&caps[1].object));
    check(&mut s);
}

/// Files of `sizes` blocks one after the other, then every other one destroyed and
/// the removal synced: holes between the survivors.
fn fragmented(s: &mut Store<SimDisk>, sizes: &[usize]) -> Vec<(Capability, Vec<u8>)> {
    let sup = s.super_capability();
    let mut kept = Vec::new();
    for (i, &blocks) in sizes.iter().enumerate() {
        let data = bytes(blocks * BS - i % 3, i as u64);
        let cap = s.create(&sup, &data, SAFE).unwrap();
        if i % 2 == 0 {
            s.destroy(&cap).unwrap();
        } else {
            kept.push((cap, data));
        }
    }
    s.sync(&sup).unwrap();
    kept
}

fn assert_all_intact(s: &mut Store<SimDisk>, files: &[(Capability, Vec<u8>)]) {
    for (cap, data) in files {
        assert_eq!(&read_all(s, cap), data);
    }
}

#[test]
fn compaction_makes_room_for_a_file_that_fits_no_hole() {
    let mut s = store(1024);
    let data_blocks = s.stats().data_blocks as usize;
    let sizes: Vec<usize> = (0..20).map(|i| [30, 20, 45, 10][i % 4]).collect();
    let used: usize = sizes.iter().sum();
    let mut files = fragmented(&mut s, &sizes);
    let st = s.stats();
    assert_eq!(st.free_blocks as usize, data_blocks - used + sizes.iter().step_by(2).sum::<usize>());
    assert!(st.largest_hole < st.free_blocks);
    let want = st.free_blocks as usize * BS;
    let sup = s.super_capability();
    let big = s.create(&sup, &bytes(want, 99), SAFE).unwrap();
    files.push((big, bytes(want, 99)));
    let st = s.stats();
    assert_eq!(st.counters.compactions, 1);
    assert!(st.counters.blocks_moved > 0);
    assert_eq!(st.free_blocks, 0);
    check(&mut s);
    assert_all_intact(&mut s, &files);
    let mut s = remount(s, config());
    check(&mut s);
    assert_all_intact(&mut s, &files);
}

#[test]
fn compaction_moves_a_file_over_itself_in_steps() {
    // [hole 1][file 40][hole 1][rest full]: the file must move down by one block,
    // which only works piece by piece.
    let mut s = store_with(1024, Config { inode_count: 16, ..config() });
    let sup = s.super_capability();
    let data_blocks = s.stats().data_blocks as usize;
    let first = s.create(&sup, &bytes(BS, 1), SAFE).unwrap();
    let file = s.create(&sup, &bytes(40 * BS, 2), SAFE).unwrap();
    let gap = s.create(&sup, &bytes(BS, 3), SAFE).unwrap();
    let rest = s.create(&sup, &bytes((data_blocks - 43) * BS, 4), SAFE).unwrap();
    assert_eq!(s.stats().free_blocks, 1);
    s.destroy(&first).unwrap();
    s.destroy(&gap).unwrap();
    let two = s.create(&sup, &bytes(2 * BS, 5), SAFE).unwrap();
    let st = s.stats();
    assert_eq!(st.counters.blocks_moved, 40);
    assert!(st.counters.inode_rounds >= 40, "one durable inode version per one-block step");
    check(&mut s);
    let files =
        [(file, bytes(40 * BS, 2)), (rest, bytes((data_blocks - 43) * BS, 4)), (two, bytes(2 * BS, 5))];
    assert_all_intact(&mut s, &files);
}

#[test]
fn no_space_loses_nothing() {
    let mut s = store(512);
    let sup = s.super_capability();
    let mut files = fragmented(&mut s, &[10, 20, 30, 40, 50, 60]);
    let st = s.stats();
    let too_big = bytes((st.free_blocks as usize + 1) * BS - 100, 7);
    assert_eq!(s.create(&sup, &too_big, SAFE), Err(Status::NoSpace));
    assert_eq!(s.create(&sup, &too_big, BS_COMMIT), Err(Status::NoSpace));
    assert_eq!(s.stats().files, files.len(), "the failed creates left no file behind");
    // Uncommitted, it is accepted; its commit fails and leaves it uncommitted.
    let pending = s.create(&sup, &too_big, 0).unwrap();
    assert_eq!(s.modify(&pending, 0, b"", SAFE), Err(Status::NoSpace));
    assert_eq!(s.size(&pending), Ok(too_big.len() as u64));
    assert_eq!(s.delete(&pending, 0, 500, SAFE), Ok(pending), "fits after shrinking");
    files.push((pending, too_big[500..].to_vec()));
    assert_eq!(s.stats().free_blocks, 0);
    assert_eq!(s.create(&sup, b"x", SAFE), Err(Status::NoSpace));
    assert_eq!(s.create(&sup, b"", SAFE).map(|_| ()), Ok(()), "empty files take no blocks");
    check(&mut s);
    assert_all_intact(&mut s, &files);
    let mut s = remount(s, config());
    assert_all_intact(&mut s, &files);
}

#[test]
fn full_inode_table_is_no_space() {
    let mut s = store_with(1024, Config { inode_count: 5, ..config() });
    let sup = s.super_capability();
    let caps: Vec<_> = (0..5).map(|i| s.create(&sup, &[i], SAFE).unwrap()).collect();
    assert_eq!(s.create(&sup, b"x", 0), Err(Status::NoSpace));
    assert_eq!(s.modify(&caps[0], 0, b"y", 0), Err(Status::NoSpace));
    s.destroy(&caps[0]).unwrap();
    assert!(s.create(&sup, b"x", 0).is_ok());
    for c in &caps[1..] {
        assert_eq!(read_all(&mut s, c), [c.object as u8 - 1]);
    }
}

#[test]
fn uncommitted_files_age_and_do_not_survive_a_restart() {
    let cfg = Config { uncommitted_life: 2, uncommitted_bytes: 4096, ..config() };
    let mut s = store_with(1024, cfg);
    let sup = s.super_capability();
    let kept = s.create(&sup, b"kept", 0).unwrap();
    let aged = s.create(&sup, b"aged", 0).unwrap();
    let committed = s.create(&sup, b"committed", SAFE).unwrap();
    assert_eq!(s.age(&sup), Ok(0));
    s.touch(&kept).unwrap();
    assert_eq!(s.age(&sup), Ok(1));
    assert_eq!(s.size(&aged), Err(Status::CapBad));
    assert_eq!(s.size(&kept), Ok(4));
    for _ in 0..5 {
        s.age(&sup).unwrap();
    }
    assert_eq!(s.size(&kept), Err(Status::CapBad));
    assert_eq!(read_all(&mut s, &committed), b"committed");
    // Uncommitted data is bounded in memory.
    assert_eq!(s.create(&sup, &[0; 4097], 0), Err(Status::NoMem));
    let big = s.create(&sup, &[0; 4000], 0).unwrap();
    assert_eq!(s.modify(&big, 4000, &[0; 97], 0), Err(Status::NoMem));
    assert_eq!(s.stats().uncommitted_bytes, 4000);
    let mut s = remount(s, cfg);
    assert_eq!(s.size(&big), Err(Status::CapBad));
    assert_eq!(s.stats().files, 1);
}

#[test]
fn identity_survives_a_restart_and_info_describes() {
    let mut s = store(1024);
    let sup = s.super_capability();
    let put = s.put_port();
    assert_eq!(s.get_port().put_port(), put);
    let cap = s.create(&sup, b"abc", SAFE).unwrap();
    let pending = s.create(&sup, b"de", 0).unwrap();
    assert_eq!(s.info(&cap).unwrap(), "bullet file, 3 bytes");
    assert_eq!(s.info(&pending).unwrap(), "bullet file, 2 bytes, uncommitted");
    assert!(s.info(&sup).unwrap().starts_with("bullet server: 2 files (1 uncommitted)"));
    let mut s = remount(s, config());
    assert_eq!(s.put_port(), put);
    assert_eq!(s.super_capability(), sup);
    assert!(s.create(&sup, b"new", SAFE).is_ok());
    assert_eq!(read_all(&mut s, &cap.restrict(Rights::READ).unwrap()), b"abc");
}

#[test]
fn destroyed_blocks_wait_for_the_inode_to_be_durable() {
    let mut s = store(256);
    let sup = s.super_capability();
    let cap = s.create(&sup, &bytes(10 * BS, 1), SAFE).unwrap();
    let free = s.stats().free_blocks;
    s.destroy(&cap).unwrap();
    let st = s.stats();
    assert_eq!((st.free_blocks, st.waiting_blocks), (free, 10));
    check(&mut s);
    s.sync(&sup).unwrap();
    let st = s.stats();
    assert_eq!((st.free_blocks, st.waiting_blocks), (free + 10, 0));
    // A create that needs the waiting blocks gets them by syncing first.
    let all = s.stats().free_blocks as usize * BS;
    let a = s.create(&sup, &bytes(all, 2), SAFE).unwrap();
    s.destroy(&a).unwrap();
    assert_eq!(s.stats().free_blocks, 0);
    assert!(s.create(&sup, &bytes(all, 3), BS_COMMIT).is_ok());
    check(&mut s);
}

#[test]
fn mount_refuses_what_is_not_a_store() {
    let disk = SimDisk::new(BS, 256);
    assert_eq!(
        Store::mount(disk, config(), Rng::from_seed([1; 32])).err().map(|f| f.error),
        Some(MountError::NotFormatted)
    );
    // Both superblock copies damaged (one is recovered from the other: see
    // `superblock.rs`).
    let s = store(256);
    let mut disk = s.into_device();
    disk.damage(0, &[0xff; 8]);
    disk.damage(255, &[0xff; 8]);
    assert_eq!(
        Store::mount(disk, config(), Rng::from_seed([1; 32])).err().map(|f| f.error),
        Some(MountError::NotFormatted)
    );
    // Another block size.
    let s = Store::format(SimDisk::new(1024, 256), config(), Rng::from_seed([1; 32])).unwrap();
    let mut disk = SimDisk::new(BS, 512);
    let mut block0 = vec![0; 1024];
    let mut old = s.into_device();
    bullet_server::BlockDevice::read(&mut old, 0, &mut block0).unwrap();
    disk.damage(0, &block0[..BS]);
    assert!(Store::mount(disk, config(), Rng::from_seed([1; 32])).is_err());
    // Too small to format.
    assert_eq!(
        Store::format(SimDisk::new(BS, 4), config(), Rng::from_seed([1; 32])).err().map(|f| f.error),
        Some(MountError::Geometry)
    );
}

#[test]
fn a_damaged_inode_slot_falls_back_to_the_other_version() {
    let mut s = store(256);
    let sup = s.super_capability();
    // Inode block 0 after format: slot 0 = version 1, slot 1 = version 0. The safe
    // commit of `a` writes version 2 (slot 1); the sync after `b` writes version 3
    // (slot 0).
    let a = s.create(&sup, b"first", SAFE).unwrap();
    let b = s.create(&sup, b"second", BS_COMMIT).unwrap();
    s.sync(&sup).unwrap();
    let geo = s.geometry();
    let mut disk = s.into_device();
    disk.damage(geo.table_start, &[0xa5; 100]);
    let mut s = Store::mount(disk, config(), Rng::from_seed([3; 32])).unwrap();
    assert_eq!(read_all(&mut s, &a), b"first");
    assert_eq!(s.size(&b), Err(Status::CapBad));
    check(&mut s);
    // Both slots damaged: mount refuses rather than guess.
    let mut disk = s.into_device();
    disk.damage(geo.table_start, &[0xa5; 100]);
    disk.damage(geo.table_start + 1, &[0xa5; 100]);
    let failure = Store::mount(disk, config(), Rng::from_seed([3; 32])).err().unwrap();
    assert!(matches!(failure.error, MountError::Corrupt(_)));
    // The device comes back, and can be formatted afresh.
    let mut s = Store::format(failure.device, config(), Rng::from_seed([4; 32])).unwrap();
    assert_eq!(s.stats().files, 0);
    check(&mut s);
}

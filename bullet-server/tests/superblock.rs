//! The superblock's backup copy: a damaged first block (or a damaged backup) is
//! recovered from the other copy and written again, files and capabilities intact;
//! with both copies damaged mount refuses and writes nothing, so the disk is left
//! exactly as it was for whoever repairs it.

use amoeba_abi::{Capability, Rng, Status};
use amoeba_ipc::interfaces::{BS_COMMIT, BS_SAFETY};
use bullet_server::sim::{SimDisk, SplitMix64};
use bullet_server::{Config, MountError, Store};

const SAFE: u32 = BS_COMMIT | BS_SAFETY;
const BS: usize = 512;
const BLOCKS: u64 = 2048;

fn config() -> Config {
    Config { inode_count: 64, cache_bytes: 1 << 20, ..Config::default() }
}

fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0; len];
    SplitMix64::new(seed).fill(&mut v);
    v
}

/// A store with a few files, synced; the files with their contents.
fn store_with_files() -> (Store<SimDisk>, Vec<(Capability, Vec<u8>)>) {
    let mut s = Store::format(SimDisk::new(BS, BLOCKS), config(), Rng::from_seed([1; 32])).unwrap();
    let sup = s.super_capability();
    let files: Vec<_> = [0, 1, 700, 5000, 100_000]
        .into_iter()
        .map(|n| {
            let data = bytes(n, n as u64);
            (s.create(&sup, &data, SAFE).unwrap(), data)
        })
        .collect();
    s.sync(&sup).unwrap();
    (s, files)
}

#[allow(clippy::result_large_err)] // the failure hands the disk back, as `Store::mount` does
fn mount(disk: SimDisk) -> Result<Store<SimDisk>, bullet_server::MountFailure<SimDisk>> {
    Store::mount(disk, config(), Rng::from_seed([2; 32]))
}

fn assert_intact(s: &mut Store<SimDisk>, files: &[(Capability, Vec<u8>)]) {
    for (cap, data) in files {
        let size = s.size(cap).unwrap() as usize;
        assert_eq!(s.read(cap, 0, size).unwrap(), data.as_slice());
    }
}

/// Kinds of damage to a block: zeroed, garbage, one bit flipped.
fn damaged(disk: &mut SimDisk, block: u64, kind: u64) {
    let at = block as usize * BS;
    let mut content = disk.contents()[at..at + BS].to_vec();
    match kind {
        0 => content.fill(0),
        1 => SplitMix64::new(block).fill(&mut content),
        _ => content[20] ^= 0x04,
    }
    disk.damage(block, &content);
}

#[test]
fn a_damaged_first_block_is_recovered_from_the_backup_and_written_again() {
    for kind in 0..3 {
        let (s, files) = store_with_files();
        let sup = s.super_capability();
        let mut disk = s.into_device();
        damaged(&mut disk, 0, kind);
        let mut s = mount(disk).unwrap_or_else(|f| panic!("damage {kind}: {}", f.error));
        assert_eq!(s.stats().counters.superblocks_rewritten, 1);
        assert_eq!(s.super_capability(), sup, "the same identity: old capabilities still work");
        assert_intact(&mut s, &files);
        s.check_consistency().unwrap();
        s.check_disk().unwrap(); // both copies describe the store again
        // The repair is durable: the next mount needs no backup.
        let mut s = mount(s.into_device()).unwrap();
        assert_eq!(s.stats().counters.superblocks_rewritten, 0);
        assert_intact(&mut s, &files);
        assert!(s.create(&sup, b"after the repair", SAFE).is_ok());
    }
}

#[test]
fn a_damaged_backup_is_written_again() {
    let (s, files) = store_with_files();
    let mut disk = s.into_device();
    damaged(&mut disk, BLOCKS - 1, 1);
    let mut s = mount(disk).unwrap();
    assert_eq!(s.stats().counters.superblocks_rewritten, 1);
    s.check_disk().unwrap();
    assert_intact(&mut s, &files);
}

#[test]
fn with_both_copies_damaged_mount_refuses_and_writes_nothing() {
    for (first, last) in [(0, 0), (1, 2), (2, 0)] {
        let (s, _) = store_with_files();
        let mut disk = s.into_device();
        damaged(&mut disk, 0, first);
        damaged(&mut disk, BLOCKS - 1, last);
        let before = disk.contents().to_vec();
        let writes = disk.stats().writes;
        let failure = mount(disk).err().expect("mount refuses");
        assert_eq!(failure.error, MountError::NotFormatted);
        assert!(failure.error.to_string().contains("backup"), "{}", failure.error);
        assert_eq!(failure.device.stats().writes, writes, "mount wrote to the disk");
        assert!(failure.device.contents() == before.as_slice(), "the disk changed");
    }
}

#[test]
fn a_cut_repair_is_finished_by_the_next_mount() {
    let mut finished = 0;
    for seed in 0..40 {
        let (s, files) = store_with_files();
        let mut disk = s.into_device();
        damaged(&mut disk, 0, seed % 3);
        // The mount reads (flush, block 0, backup, the inode table), then writes
        // block 0 again: cut it somewhere around there.
        let mut rng = SplitMix64::new(seed);
        disk.crash_after(4 + rng.below(6));
        let mut disk = match mount(disk) {
            Ok(s) if !s.device().is_crashed() => {
                finished += 1;
                s.into_device()
            }
            Ok(s) => s.into_device(),
            Err(f) => f.device,
        };
        disk.restart(&mut rng);
        let mut s = mount(disk).unwrap_or_else(|f| panic!("seed {seed}: {}", f.error));
        s.check_disk().unwrap();
        assert_intact(&mut s, &files);
    }
    assert!(finished < 40, "no mount was cut");
}

#[test]
fn a_store_without_a_backup_still_mounts_and_gains_one() {
    // The layout before backups: see the unit tests of the store for the upgrade
    // itself; here a store whose superblock copies are both fine stays as it is.
    let (s, files) = store_with_files();
    let mut s = mount(s.into_device()).unwrap();
    assert!(!s.stats().counters.layout_upgraded);
    assert_eq!(s.geometry().backup_block(), Some(BLOCKS - 1));
    assert_eq!(s.stats().data_blocks, BLOCKS - s.geometry().data_start - 1);
    assert_intact(&mut s, &files);
    // A file may use every data block, never the backup's.
    let sup = s.super_capability();
    let free = s.stats().free_blocks as usize;
    let all = s.create(&sup, &bytes(free * BS, 9), SAFE).unwrap();
    assert_eq!(s.create(&sup, b"x", SAFE), Err(Status::NoSpace));
    let mut s = mount(s.into_device()).unwrap();
    assert_eq!(s.stats().counters.superblocks_rewritten, 0, "the full disk left the backup alone");
    assert_eq!(s.read(&all, 0, 10).unwrap(), &bytes(free * BS, 9)[..10]);
}

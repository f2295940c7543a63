//! Directory recovery never skips a newer anchor. A replica is killed, so its
//! anchor falls behind while the other two take 200 more updates; the pool is
//! stopped, and started again on the same disk behind QEMU's `blkdebug` filter,
//! which fails the first read of the newest anchors' halves and of the first
//! block of every file they name (with EIO, once each): a disk or a file server
//! that fails for a while. Recovery must try those reads again and come back
//! with every update; skipping the anchors whose reads failed would recover the
//! old replica's shorter history.

use amoeba_abi::{Capability, Rights};
use amoeba_client::files;
use amoeba_ipc::interfaces::directory::{Lookup, NewRow};
use amoeba_ipc::interfaces::soap;
use directory_server::layout::{HALF_BLOCKS, slot_first_block};
use directory_server::report::Beginning;
use directory_server::store::Anchor;
use directory_server::store::Reading;
use directory_server::workload::value_cap;
use host_station::rpc_client::RpcClient;
use pool_system::directory::{DirectoryService, replica_boards, retrying};
use pool_system::{self, ANCHOR_BLOCKS};
use pool_tests::{TestPool, boot_with, config};
use qemu_pool::exec::Control;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Size of board 0's disk.
const DISK_MIB: u64 = 64;
/// Bytes of a disk sector.
const SECTOR: usize = 512;
/// Boards of the pool (one directory replica on each).
const BOARDS: u16 = 3;
/// The replica that is killed and falls behind.
const BEHIND: u8 = 2;
/// Updates before the kill, and after it (enough for log files beyond the anchors' tails).
const BEFORE: u32 = 20;
const AFTER: u32 = 200;

/// A pool whose board 0 has the disk `image`, through `drive` if given (what
/// QEMU opens instead of the image itself).
fn boot_pool(image: &Path, fresh: bool, drive: Option<PathBuf>) -> TestPool {
    let (config, dir) = config(BOARDS);
    let mut config = config.with_disk(image, DISK_MIB << 20, fresh).unwrap();
    if let Some(drive) = drive {
        config.boards[0].disk = Some(drive);
    }
    boot_with(config, dir)
}

fn start_services(pool: &TestPool) -> (Capability, DirectoryService) {
    let bullet = pool_system::start_bullet(pool, 0).unwrap_or_else(|e| panic!("{e:#}"));
    let service = DirectoryService::start(pool, bullet, &replica_boards(BOARDS as usize))
        .unwrap_or_else(|e| panic!("{e:#}"));
    (bullet, service)
}

fn client(pool: &TestPool) -> RpcClient {
    RpcClient::new(pool.new_host_port().unwrap())
}

fn row(k: u32) -> NewRow {
    NewRow {
        name: format!("row-{k}"),
        caps: vec![value_cap(k)],
        masks: vec![Rights(0xff), Rights(0x0f), Rights(2)],
    }
}

/// Every row of `dir`: name → capabilities.
fn rows(rpc: &mut RpcClient, dir: &Capability) -> BTreeMap<String, Vec<Capability>> {
    let listing = retrying(|| soap::Client::new(&mut *rpc).list(dir)).unwrap();
    listing
        .rows
        .into_iter()
        .map(|r| match soap::Client::new(&mut *rpc).lookup(dir, &r.name).unwrap() {
            Lookup::Found(caps) => (r.name, caps),
            other => panic!("{}: {other:?}", r.name),
        })
        .collect()
}

/// The first sector of each file `anchors` name (at most a sector of each).
fn first_sectors(rpc: &mut RpcClient, anchors: &[&Anchor]) -> BTreeSet<Vec<u8>> {
    anchors
        .iter()
        .flat_map(|a| std::iter::once(a.checkpoint).chain(a.logs.iter().copied()))
        .map(|file| {
            let mut bytes = files::get(rpc, &file, |_| {}).unwrap_or_else(|s| panic!("reading {file}: {s}"));
            bytes.truncate(SECTOR);
            bytes
        })
        .collect()
}

/// Sectors of Bullet's part of `image` that begin with one of `wanted` and with
/// none of `spared`.
fn sectors_starting_with(image: &Path, wanted: &BTreeSet<Vec<u8>>, spared: &BTreeSet<Vec<u8>>) -> Vec<u64> {
    let bytes = std::fs::read(image).unwrap();
    let matches = |sector: &[u8], set: &BTreeSet<Vec<u8>>| set.iter().any(|start| sector.starts_with(start));
    bytes
        .chunks(SECTOR)
        .enumerate()
        .skip(ANCHOR_BLOCKS as usize)
        .filter(|(_, sector)| matches(sector, wanted) && !matches(sector, spared))
        .map(|(n, _)| n as u64)
        .collect()
}

/// A `blkdebug` drive over `image` that fails the first read of each of `sectors`.
fn failing_once(image: &Path, sectors: &[u64]) -> PathBuf {
    let rules = image.with_extension("blkdebug");
    let text: String = sectors
        .iter()
        .map(|sector| {
            format!(
                "[inject-error]\nevent = \"none\"\niotype = \"read\"\nerrno = \"5\"\nsector = \"{sector}\"\n\
                 once = \"on\"\n"
            )
        })
        .collect();
    std::fs::write(&rules, text).unwrap();
    PathBuf::from(format!("blkdebug:{}:{}", rules.display(), image.display()))
}

#[test]
fn reads_of_the_newest_state_that_fail_at_recovery_are_retried_and_nothing_is_lost() {
    let disk_dir = tempfile::tempdir().unwrap();
    let image = disk_dir.path().join("disk.img");
    let mut pool = boot_pool(&image, true, None);
    let (_bullet, service) = start_services(&pool);
    let mut rpc = client(&pool);
    let columns: Vec<String> = ["owner", "group", "other"].iter().map(|c| c.to_string()).collect();
    let dir = soap::Client::new(&mut rpc).create(&service.super_capability(), &columns).unwrap();
    let entry = NewRow { name: "rows".into(), caps: vec![dir], ..row(0) };
    soap::Client::new(&mut rpc).append(&service.root, &entry).unwrap();
    for k in 0..BEFORE {
        soap::Client::new(&mut rpc).append(&dir, &row(k)).unwrap();
    }
    // One replica stops; the other two go on.
    let behind = service.replicas[BEHIND as usize].process;
    pool.control(&behind.capability, Control::Destroy).unwrap();
    for k in BEFORE..BEFORE + AFTER {
        retrying(|| soap::Client::new(&mut rpc).append(&dir, &row(k))).unwrap();
    }
    let expected = rows(&mut rpc, &dir);
    assert_eq!(expected.len(), (BEFORE + AFTER) as usize);
    let anchors: Vec<Anchor> = service
        .stored_anchors(&mut rpc)
        .unwrap()
        .into_iter()
        .map(|a| a.expect("every replica wrote"))
        .collect();
    let best = anchors.iter().map(Anchor::rank).max().unwrap();
    assert!(anchors[BEHIND as usize].rank() < best, "the killed replica's anchor is behind: {anchors:?}");
    let newest: Vec<&Anchor> = anchors.iter().filter(|a| a.replica != BEHIND).collect();
    assert!(newest.iter().all(|a| !a.logs.is_empty()), "the newest anchors name log files: {newest:?}");
    let wanted = first_sectors(&mut rpc, &newest);
    let spared = first_sectors(&mut rpc, &[&anchors[BEHIND as usize]]);
    pool.shut_down();
    drop(pool);

    // Fail the first read of the newest anchors' halves and of their files.
    let files = sectors_starting_with(&image, &wanted, &spared);
    assert!(files.len() >= newest.len(), "the newest anchors' files are not on the disk: {files:?}");
    let halves = newest.iter().flat_map(|a| {
        let first = slot_first_block(a.replica);
        [first, first + HALF_BLOCKS]
    });
    let sectors: Vec<u64> = halves.chain(files.iter().copied()).collect();
    println!("failing the first read of sectors {sectors:?}");
    let pool = boot_pool(&image, false, Some(failing_once(&image, &sectors)));
    let (_bullet, service) = start_services(&pool);
    let mut rpc = client(&pool);
    let dir = match soap::Client::new(&mut rpc).lookup(&service.root, "rows").unwrap() {
        Lookup::Found(caps) => caps[0],
        other => panic!("{other:?}"),
    };
    let creator = service.status(&mut rpc, 0).unwrap();
    println!("{creator}");
    let retried = &creator.start.read_retries;
    assert!(
        retried.iter().any(|r| matches!(r, Reading::Anchor(_)))
            && retried.iter().any(|r| matches!(r, Reading::State(_))),
        "the injected failures did not reach recovery: {creator:?}"
    );
    assert!(matches!(creator.start.beginning, Beginning::Recovered(_)), "{creator:?}");
    assert_eq!(rows(&mut rpc, &dir), expected, "recovery lost acknowledged updates");
}

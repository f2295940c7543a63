//! The nucleus' disk server on a real board with a virtio-blk disk: the
//! kernel self-test (`test=disk`) writes, reads back and flushes through
//! the driver's interrupts; the disk interface answers the host by RPC
//! with range checks and capability checks; requests from several clients
//! queue and all complete; and data flushed before the board's QEMU is
//! killed with SIGKILL is there when the board boots again on the image.
//!
//! Until the process server hands out disk capabilities, `test=disk`
//! boards print one for the disk after the self-test's area.

use amoeba_abi::{Capability, Rights, Status};
use amoeba_ipc::interfaces::disk::Client;
use amoeba_ipc::interfaces::standard;
use amoeba_ipc::interfaces::{DISK_IO_MAX, DISK_READ};
use host_station::rpc_client::RpcClient;
use pool_control::pattern::splitmix64;
use pool_tests::{TestPool, boot_with, config};
use qemu_pool::BoardSpec;
use qemu_pool::board::prepare_disk;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const DISK_BYTES: u64 = 64 << 20;
const BLOCK: usize = 512;
/// Blocks at the start of the disk the kernel self-test owns (its capability starts after them).
const SELF_TEST_BLOCKS: u64 = 8192;
const BLOCKS_PER_MIB: u32 = (DISK_IO_MAX / BLOCK) as u32;
const CONSOLE_TIMEOUT: Duration = Duration::from_secs(60);

/// One `test=disk` board on a fresh disk image in the run directory.
fn boot_disk_board() -> (TestPool, PathBuf) {
    boot_disk_board_with(|image| image.to_path_buf())
}

/// Like [`boot_disk_board`]; `drive` says what QEMU opens for the image
/// (the image itself, or a filter in front of it).
fn boot_disk_board_with(drive: impl FnOnce(&Path) -> PathBuf) -> (TestPool, PathBuf) {
    let (mut config, dir) = config(1);
    let image = dir.path().join("disk0.img");
    prepare_disk(&image, DISK_BYTES, true).expect("making the disk image");
    config.boards[0] = BoardSpec {
        extra_bootargs: "test=disk".into(),
        disk: Some(drive(&image)),
        ..BoardSpec::new(0, "test")
    };
    (boot_with(config, dir), image)
}

/// Waits for the self-test's verdict (it must pass) and returns the board's console.
fn self_test_verdict(pool: &TestPool) -> String {
    let board = &pool.boards()[0];
    let deadline = Instant::now() + CONSOLE_TIMEOUT;
    loop {
        let console = board.console_text();
        if let Some(line) = console.lines().find(|line| line.starts_with("disk self-test: passed")) {
            eprintln!("{line}");
            return console;
        }
        assert!(!console.contains("disk self-test: FAILED"), "the self-test failed:\n{console}");
        assert!(Instant::now() < deadline, "no self-test verdict:\n{console}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The disk after the self-test's area, from board 0's process server (the
/// host holds its host capability; the capability the nucleus prints for
/// the same range is for people).
fn disk_capability(pool: &TestPool) -> Capability {
    pool_system::disk_capability(pool, 0, SELF_TEST_BLOCKS, 0).unwrap_or_else(|e| panic!("{e:#}"))
}

fn host_client(pool: &TestPool) -> RpcClient {
    RpcClient::new(pool.new_host_port().expect("a host port"))
}

/// Bytes that depend on `seed` and their place: a misplaced block shows.
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    (0..len.div_ceil(8) as u64)
        .flat_map(|word| splitmix64(seed ^ word.rotate_left(17)).to_le_bytes())
        .take(len)
        .collect()
}

#[test]
fn flushed_data_survives_sigkill_and_reboot() {
    let (mut pool, _image) = boot_disk_board();
    let console = self_test_verdict(&pool);
    assert!(console.contains("disk self-test: no earlier self-test data"), "{console}");
    // QEMU's cache=writeback: the device takes flushes, so the test's flush reaches the host.
    assert!(
        console.contains("nucleus: disk of 64 MiB (read-write, write cache flushed on request)"),
        "{console}"
    );
    let capability = disk_capability(&pool);
    let mut host = host_client(&pool);
    let data = pattern(0xD15C, DISK_IO_MAX);
    let first = 1000;
    Client::new(&mut host).write(&capability, first, &data).expect("writing a megabyte");
    Client::new(&mut host).flush(&capability).expect("flushing");

    pool.kill_board(0).unwrap();
    pool.restart_board(0).unwrap();
    let console = self_test_verdict(&pool);
    assert!(console.contains("disk self-test: generation 1 from an earlier boot is intact"), "{console}");
    let capability = disk_capability(&pool);
    let mut host = host_client(&pool);
    let read = Client::new(&mut host).read(&capability, first, BLOCKS_PER_MIB).expect("reading it back");
    assert!(read == data, "the megabyte flushed before the kill differs after the reboot");
}

#[test]
fn the_disk_interface_checks_ranges_and_capabilities() {
    let (pool, _image) = boot_disk_board();
    self_test_verdict(&pool);
    let owner = disk_capability(&pool);
    let mut host = host_client(&pool);
    let mut disk = Client::new(&mut host);

    let geometry = disk.geometry(&owner).expect("geometry");
    assert_eq!(geometry.block_size as usize, BLOCK);
    let blocks = DISK_BYTES / BLOCK as u64 - SELF_TEST_BLOCKS;
    assert_eq!(geometry.block_count, blocks, "the range is the disk after the self-test's area");

    // A megabyte at the very end of the range, and a block at its start.
    let last_mib = blocks - BLOCKS_PER_MIB as u64;
    let data = pattern(1, DISK_IO_MAX);
    let started = Instant::now();
    disk.write(&owner, last_mib, &data).expect("writing a megabyte");
    let written = started.elapsed();
    assert!(disk.read(&owner, last_mib, BLOCKS_PER_MIB).expect("reading it") == data);
    let read = started.elapsed() - written;
    disk.write(&owner, 0, &pattern(2, BLOCK)).expect("writing block 0 of the range");
    assert_eq!(disk.read(&owner, 0, 1).unwrap(), pattern(2, BLOCK));
    disk.flush(&owner).expect("flushing");
    eprintln!("1 MiB from the host: write {written:?}, read {read:?}");

    // Past the range, empty, too big, not whole blocks: refused.
    assert_eq!(disk.read(&owner, blocks - 1, 2), Err(Status::ArgBad));
    assert_eq!(disk.read(&owner, blocks, 1), Err(Status::ArgBad));
    assert_eq!(disk.read(&owner, u64::MAX, 1), Err(Status::ArgBad));
    assert_eq!(disk.read(&owner, 0, 0), Err(Status::ArgBad));
    assert_eq!(disk.read(&owner, 0, BLOCKS_PER_MIB + 1), Err(Status::ArgBad));
    assert_eq!(disk.write(&owner, blocks, &pattern(3, BLOCK)), Err(Status::ArgBad));
    assert_eq!(disk.write(&owner, 0, &pattern(3, BLOCK + 1)), Err(Status::ArgBad));
    assert_eq!(disk.write(&owner, 0, &[]), Err(Status::ArgBad));
    assert_eq!(disk.read(&owner, 0, 1).unwrap(), pattern(2, BLOCK), "refused writes changed nothing");

    // Forged, raised and restricted capabilities.
    let mut forged = owner;
    forged.check.0[0] ^= 1;
    assert_eq!(disk.read(&forged, 0, 1), Err(Status::CapBad));
    assert_eq!(disk.write(&forged, 0, &pattern(4, BLOCK)), Err(Status::CapBad));
    let mut other_object = owner;
    other_object.object += 1;
    assert_eq!(disk.geometry(&other_object), Err(Status::CapBad));
    let read_only = owner.restrict(DISK_READ).unwrap();
    assert_eq!(disk.read(&read_only, 0, 1).unwrap(), pattern(2, BLOCK));
    assert_eq!(disk.geometry(&read_only).unwrap(), geometry);
    assert_eq!(disk.write(&read_only, 0, &pattern(4, BLOCK)), Err(Status::Denied));
    assert_eq!(disk.flush(&read_only), Err(Status::Denied));
    let mut raised = read_only;
    raised.rights = Rights::ALL;
    assert_eq!(disk.write(&raised, 0, &pattern(4, BLOCK)), Err(Status::CapBad));
    assert_eq!(disk.read(&owner, 0, 1).unwrap(), pattern(2, BLOCK), "refused writes changed nothing");

    let info = host.std_info(&owner).expect("STD_INFO");
    assert!(info.contains(&format!("{blocks} blocks")), "STD_INFO says \"{info}\"");

    // The server restricts as the client does; destroying forgets the range, not its blocks.
    let mut standard = standard::Client::new(&mut host);
    assert_eq!(standard.restrict(&owner, DISK_READ), Ok(read_only));
    assert_eq!(standard.destroy(&read_only), Err(Status::Denied));
    standard.destroy(&owner).expect("STD_DESTROY");
    assert_eq!(Client::new(&mut host).geometry(&owner), Err(Status::CapBad));
}

#[test]
fn requests_from_several_clients_queue_and_all_complete() {
    const CLIENTS: u64 = 4;
    const ROUNDS: u64 = 4;
    const BLOCKS: u32 = 512; // 256 KiB per request
    let (pool, _image) = boot_disk_board();
    self_test_verdict(&pool);
    let owner = disk_capability(&pool);
    let started = Instant::now();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let mut host = host_client(&pool);
                scope.spawn(move || {
                    let mut disk = Client::new(&mut host);
                    for round in 0..ROUNDS {
                        let first = (client * ROUNDS + round) * BLOCKS as u64;
                        let data = pattern(client << 8 | round, BLOCKS as usize * BLOCK);
                        disk.write(&owner, first, &data).expect("a queued write");
                        assert!(disk.read(&owner, first, BLOCKS).expect("a queued read") == data);
                    }
                    disk.flush(&owner).expect("a queued flush");
                })
            })
            .collect();
        // Requests that need no device are answered while the others wait for it.
        let mut host = host_client(&pool);
        let mut answered_while_busy = 0;
        for _ in 0..20 {
            Client::new(&mut host).geometry(&owner).expect("geometry while the disk is busy");
            answered_while_busy += usize::from(workers.iter().any(|worker| !worker.is_finished()));
        }
        assert!(answered_while_busy > 0, "the geometry calls came only after the disk was idle");
        for worker in workers {
            worker.join().expect("a client failed");
        }
    });
    eprintln!("{CLIENTS} clients × {ROUNDS} rounds of 256 KiB write + read: {:?}", started.elapsed());
    // Everyone's data is where it belongs (nothing overwrote a neighbour's).
    let mut host = host_client(&pool);
    let mut disk = Client::new(&mut host);
    for client in 0..CLIENTS {
        for round in 0..ROUNDS {
            let first = (client * ROUNDS + round) * BLOCKS as u64;
            let expected = pattern(client << 8 | round, BLOCKS as usize * BLOCK);
            assert!(disk.read(&owner, first, BLOCKS).unwrap() == expected, "client {client} round {round}");
        }
    }
}

#[test]
fn device_errors_become_statuses_and_the_disk_keeps_working() {
    // QEMU's blkdebug filter fails reads of one sector and writes of another with EIO.
    const BAD_READ: u64 = 50_000;
    const BAD_WRITE: u64 = 60_000;
    let (pool, _image) = boot_disk_board_with(|image| {
        let rules = image.with_extension("blkdebug");
        let rule = |iotype: &str, sector: u64| {
            format!(
                "[inject-error]\nevent = \"none\"\niotype = \"{iotype}\"\nerrno = \"5\"\nsector = \"{sector}\"\n"
            )
        };
        std::fs::write(&rules, rule("read", BAD_READ) + &rule("write", BAD_WRITE)).unwrap();
        PathBuf::from(format!("blkdebug:{}:{}", rules.display(), image.display()))
    });
    self_test_verdict(&pool);
    let owner = disk_capability(&pool);
    let mut host = host_client(&pool);
    let mut disk = Client::new(&mut host);
    let (bad_read, bad_write) = (BAD_READ - SELF_TEST_BLOCKS, BAD_WRITE - SELF_TEST_BLOCKS);
    assert_eq!(disk.read(&owner, bad_read, 1), Err(Status::SysErr));
    // A megabyte with one bad block in its middle fails as a whole.
    assert_eq!(disk.read(&owner, bad_read - 1000, BLOCKS_PER_MIB), Err(Status::SysErr));
    assert_eq!(disk.write(&owner, bad_write, &pattern(5, BLOCK)), Err(Status::SysErr));
    assert_eq!(disk.read(&owner, bad_write, 1).unwrap(), vec![0; BLOCK], "the failed write wrote nothing");
    // The rest of the disk still works.
    let data = pattern(6, DISK_IO_MAX);
    disk.write(&owner, 0, &data).expect("a write after the errors");
    assert!(disk.read(&owner, 0, BLOCKS_PER_MIB).unwrap() == data);
    disk.flush(&owner).expect("a flush after the errors");
}

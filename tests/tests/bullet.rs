//! The Bullet server on a real pool: the board with the disk serves files to
//! the host and to programs on other boards; files are immutable and held to
//! their capabilities' rights; a safely committed file survives the board
//! being killed at any moment; a full disk says so and loses nothing.

use amoeba_abi::{Capability, Check, Rights, Status};
use amoeba_client::exec::Exec;
use amoeba_client::files;
use amoeba_ipc::interfaces::starter::Value;
use amoeba_ipc::interfaces::{BS_COMMIT, BS_SAFETY, BulletStats, bullet, standard};
use host_station::rpc_client::RpcClient;
use pool_tests::{TestPool, boot_with, config};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// A pool whose board 0 has a fresh disk of `mib` MiB, with the Bullet server up.
fn pool_with_bullet(boards: u16, mib: u64) -> (TestPool, Capability) {
    let (config, dir) = config(boards);
    let config = config.with_disk(dir.path().join("disk.img"), mib << 20, true).unwrap();
    let pool = boot_with(config, dir);
    let bullet = pool_system::start_bullet(&pool, 0).unwrap_or_else(|e| panic!("{e:#}"));
    (pool, bullet)
}

fn pattern(size: usize, seed: usize) -> Vec<u8> {
    (0..size).map(|i| (i * 7 + seed) as u8).collect()
}

fn client(pool: &TestPool) -> RpcClient {
    RpcClient::new(pool.new_host_port().unwrap())
}

fn stats(rpc: &mut RpcClient, bullet: &Capability) -> BulletStats {
    bullet::Client::new(rpc).stats(bullet).unwrap()
}

/// Free space is exactly what the live files leave (after a sync).
fn assert_space_adds_up(rpc: &mut RpcClient, bullet: &Capability) {
    bullet::Client::new(&mut *rpc).sync(bullet).unwrap();
    let s = stats(rpc, bullet);
    assert_eq!(s.free_blocks + s.used_blocks + s.waiting_blocks, s.data_blocks, "{s:?}");
    assert_eq!(s.waiting_blocks, 0, "{s:?}");
}

#[test]
fn files_round_trip_from_the_host_and_from_a_program_on_another_board() {
    let (pool, bullet) = pool_with_bullet(2, 64);
    let mut rpc = client(&pool);
    for size in [0, 1, (1 << 20) + 1] {
        let data = pattern(size, 3);
        let file = files::put(&mut rpc, &bullet, &data, |_| {}).unwrap();
        assert_eq!(files::get(&mut rpc, &file, |_| {}).unwrap(), data, "{size} bytes");
    }
    // 40 MiB + 3 from a program with a 4 MiB heap: streamed both ways.
    let exec = Exec::new("bullet-client", &["bullet-client", "0", "1", "1048577", "41943043"])
        .with_capability("BULLET", bullet);
    let client = pool.start_told(1, &exec);
    assert_eq!(
        pool.wait_process(&client.started, Duration::from_secs(120)),
        Some(0),
        "{}",
        pool.consoles(10)
    );
    let Some(Value::Capability(file)) = client.figure("file 1048577") else {
        panic!("the program reported no file of 1048577 bytes: {:?}", client.told.figures())
    };
    // What the program stored, the host reads.
    assert_eq!(files::get(&mut rpc, &file, |_| {}).unwrap(), pattern(1048577, 1048577));
    assert_space_adds_up(&mut rpc, &bullet);
}

#[test]
fn a_file_of_64_mib_round_trips() {
    let (pool, bullet) = pool_with_bullet(1, 160);
    let mut rpc = client(&pool);
    let data = pattern(64 << 20, 5);
    let mut pieces = 0;
    let file = files::put(&mut rpc, &bullet, &data, |_| pieces += 1).unwrap();
    assert_eq!(pieces, 64, "sent in 1 MiB pieces");
    assert_eq!(bullet::Client::new(&mut rpc).size(&file).unwrap(), 64 << 20);
    let back = files::get(&mut rpc, &file, |_| {}).unwrap();
    assert!(back == data, "the 64 MiB file came back changed");
    assert_space_adds_up(&mut rpc, &bullet);
}

#[test]
fn files_are_immutable_and_held_to_their_rights() {
    let (pool, bullet) = pool_with_bullet(1, 16);
    let mut rpc = client(&pool);
    let mut files = bullet::Client::new(&mut rpc);
    let file = files.create(&bullet, BS_COMMIT | BS_SAFETY, b"the first version").unwrap();
    let edited = files.modify(&file, 4, BS_COMMIT, b"FIRST").unwrap();
    assert_ne!(edited, file, "an edit makes a new file");
    assert_eq!(files.read(&file, 0, 100).unwrap(), b"the first version");
    assert_eq!(files.read(&edited, 0, 100).unwrap(), b"the FIRST version");

    let read_only = file.restrict(Rights::READ).unwrap();
    assert_eq!(files.read(&read_only, 4, 5).unwrap(), b"first");
    assert_eq!(files.modify(&read_only, 0, BS_COMMIT, b"x"), Err(Status::Denied));
    let mut forged = file;
    forged.check = Check([0x33; 6]);
    assert_eq!(files.read(&forged, 0, 1), Err(Status::CapBad));
    let mut raised = read_only;
    raised.rights = Rights::ALL;
    assert_eq!(files.read(&raised, 0, 1), Err(Status::CapBad));
    assert_eq!(files.create(&read_only, BS_COMMIT, b"x"), Err(Status::Denied));
    let mut std = standard::Client::new(&mut rpc);
    assert_eq!(std.destroy(&read_only), Err(Status::Denied));
    assert!(std.info(&file).unwrap().contains("17 bytes"), "{}", std.info(&file).unwrap());
    std.destroy(&file).unwrap();
    let mut files = bullet::Client::new(&mut rpc);
    assert_eq!(files.read(&file, 0, 1), Err(Status::CapBad));
    assert_eq!(files.read(&edited, 0, 3).unwrap(), b"the", "the other file stays");
}

/// Creates up to `count` files with the safety flag until the board dies;
/// the files acknowledged, with their contents.
fn create_until_killed(
    mut rpc: RpcClient,
    bullet: Capability,
    seed: usize,
    done: &AtomicUsize,
) -> Vec<(Capability, Vec<u8>)> {
    let mut acknowledged = Vec::new();
    for index in 0..CREATIONS {
        let data = pattern(1000 + index * 997 % 20_000, index + seed);
        match bullet::Client::new(&mut rpc).create(&bullet, BS_COMMIT | BS_SAFETY, &data) {
            Ok(file) => acknowledged.push((file, data)),
            Err(_) => break, // the board is gone
        }
        done.store(acknowledged.len(), Ordering::SeqCst);
    }
    acknowledged
}

/// Files the crash test tries to create in each round.
const CREATIONS: usize = 400;

#[test]
fn safely_committed_files_survive_the_board_killed_at_any_moment() {
    let (mut pool, bullet) = pool_with_bullet(1, 64);
    let mut survivors: Vec<(Capability, Vec<u8>)> = Vec::new();
    // The board dies after this many acknowledged creations and a little more,
    // somewhere in the middle of the next ones.
    let kill_moments = [(3, 1), (37, 7), (150, 4)];
    for (round, (after, extra_ms)) in kill_moments.into_iter().enumerate() {
        let rpc = client(&pool);
        let done = Arc::new(AtomicUsize::new(0));
        let progress = done.clone();
        let creator = std::thread::spawn(move || create_until_killed(rpc, bullet, round * 1000, &progress));
        while done.load(Ordering::SeqCst) < after {
            std::thread::sleep(Duration::from_micros(200));
        }
        std::thread::sleep(Duration::from_millis(extra_ms));
        pool.kill_board(0).unwrap();
        let acknowledged = creator.join().unwrap();
        assert!(acknowledged.len() < CREATIONS, "round {round}: the board was killed after all creations");
        survivors.extend(acknowledged);
        pool.restart_board(0).unwrap();
        let again = pool_system::start_bullet(&pool, 0).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(again, bullet, "the server keeps its capability across a crash");
        let mut rpc = client(&pool);
        for (file, data) in &survivors {
            assert_eq!(&files::get(&mut rpc, file, |_| {}).unwrap(), data, "an acknowledged file changed");
        }
        assert_space_adds_up(&mut rpc, &bullet);
    }
    assert!(survivors.len() >= 10, "too few files were acknowledged to test anything: {}", survivors.len());
}

#[test]
fn a_full_disk_says_no_space_and_loses_nothing() {
    let (pool, bullet) = pool_with_bullet(1, 8);
    let mut rpc = client(&pool);
    let mut stored = Vec::new();
    let refused = loop {
        let data = pattern(512 << 10, stored.len());
        match files::put(&mut rpc, &bullet, &data, |_| {}) {
            Ok(file) => stored.push((file, data)),
            Err(status) => break status,
        }
        assert!(stored.len() < 64, "an 8 MiB disk took more than 32 MiB");
    };
    assert_eq!(refused, Status::NoSpace);
    assert!(stored.len() >= 10, "{} files fit", stored.len());
    for (file, data) in &stored {
        assert_eq!(&files::get(&mut rpc, file, |_| {}).unwrap(), data);
    }
    assert_space_adds_up(&mut rpc, &bullet);
}

/// Board 0 under 100 concurrent 1 MiB creates, 60 from host stations and 40
/// from programs on two other boards: every create either makes a file (read
/// back whole afterwards) or is refused with "no space" (the server board's
/// queues and the server's memory are bounded), nothing else fails, the board
/// and its server live on, and the files committed before are all intact.
#[test]
fn board_0_survives_100_concurrent_one_mib_creates_from_the_host_and_from_boards() {
    const HOST_CREATES: usize = 60;
    const PROGRAMS_PER_BOARD: usize = 5;
    const THREADS_PER_PROGRAM: u64 = 4;
    let (pool, bullet) = pool_with_bullet(3, 512);
    let mut rpc = client(&pool);
    let kept: Vec<(Vec<u8>, Capability)> = (0..3)
        .map(|seed| {
            let data = pattern(300_000 + seed, seed);
            let file = bullet::Client::new(&mut rpc).create(&bullet, BS_COMMIT | BS_SAFETY, &data).unwrap();
            (data, file)
        })
        .collect();

    let mut programs = Vec::new();
    for board in [1, 2] {
        for _ in 0..PROGRAMS_PER_BOARD {
            let mut exec = Exec::new("bullet-flood", &["bullet-flood"])
                .with_argument(THREADS_PER_PROGRAM)
                .with_capability("BULLET", bullet);
            exec.heap_size = 24 << 20;
            programs.push(pool.exec_with(board, "bullet-flood", &exec).unwrap());
        }
    }
    let made = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(std::sync::Mutex::new(Vec::new()));
    let created = Arc::new(std::sync::Mutex::new(Vec::new()));
    let hosts: Vec<_> = (0..HOST_CREATES)
        .map(|seed| {
            let port = pool.new_host_port().unwrap();
            let (refused, failed, created) = (refused.clone(), failed.clone(), created.clone());
            std::thread::spawn(move || {
                let mut rpc = RpcClient::new(port);
                let data = pattern(1 << 20, seed);
                match bullet::Client::new(&mut rpc).create(&bullet, BS_COMMIT | BS_SAFETY, &data) {
                    Ok(file) => created.lock().unwrap().push((data, file)),
                    Err(Status::NoSpace | Status::NoMem) => {
                        refused.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(status) => failed.lock().unwrap().push(format!("host {seed}: {status}")),
                }
            })
        })
        .collect();
    for host in hosts {
        host.join().unwrap();
    }
    for (data, file) in created.lock().unwrap().iter() {
        if files::get(&mut rpc, file, |_| {}).as_deref() == Ok(&data[..]) {
            made.fetch_add(1, Ordering::SeqCst);
        } else {
            failed.lock().unwrap().push(String::from("a host's file came back wrong"));
        }
    }
    for program in &programs {
        let status =
            pool.wait_process(program, Duration::from_secs(300)).expect("bullet-flood ends") as usize;
        made.fetch_add(status & 0xff, Ordering::SeqCst);
        refused.fetch_add((status >> 8) & 0xff, Ordering::SeqCst);
        if status >> 16 != 0 {
            failed.lock().unwrap().push(format!(
                "a program on board {}: {} failed",
                program.board,
                status >> 16
            ));
        }
    }
    let (made, refused) = (made.load(Ordering::SeqCst), refused.load(Ordering::SeqCst));
    let failed = failed.lock().unwrap().clone();
    eprintln!(
        "100 concurrent creates: {made} made, {refused} refused with no space, {} failed",
        failed.len()
    );
    assert!(failed.is_empty(), "creates that neither succeeded nor were refused for space: {failed:?}");
    assert_eq!(made + refused, HOST_CREATES + 2 * PROGRAMS_PER_BOARD * THREADS_PER_PROGRAM as usize);
    assert!(made > 0, "no create succeeded");

    // The board and its server live on, and lost nothing committed.
    assert!(pool.host().echo(pool.boards()[0].mac, 5, b"alive", Duration::from_secs(5)).unwrap().is_some());
    for (data, file) in &kept {
        assert_eq!(&files::get(&mut rpc, file, |_| {}).unwrap(), data, "a file committed before the flood");
    }
    assert_space_adds_up(&mut rpc, &bullet);
    let console = pool.boards()[0].console_text();
    assert!(!console.contains("panic"), "{console}");
}

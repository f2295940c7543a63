//! The run server on a real pool: programs go where it puts them — spread
//! over equal processors, away from busy ones, never where they do not fit,
//! never on a dead board — and a program on a board starts children the
//! same way.

use amoeba_abi::Capability;
use amoeba_client::exec::{Exec, exec_placed};
use amoeba_ipc::interfaces::process_server;
use amoeba_ipc::interfaces::run_server;
use boot::rpc_client::RpcClient;
use boot::system;
use pool_tests::{TestPool, boot, boot_with, config};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Board 0's boot program `name`, as a file any board can read.
fn program_file(pool: &TestPool, name: &str) -> Capability {
    process_server::Client::new(&mut *pool.rpc()).boot_program(&pool.host_capability(0), name).unwrap()
}

/// Waits until the run server sees `alive` processors answering.
fn wait_until_alive(pool: &TestPool, run: &Capability, alive: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let hosts = run_server::Client::new(&mut *pool.rpc()).hosts(run).unwrap();
        if hosts.iter().filter(|h| h.alive).count() == alive {
            return;
        }
        assert!(Instant::now() < deadline, "the run server sees {hosts:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn place(rpc: &mut RpcClient, run: &Capability, file: &Capability, exec: &Exec) -> String {
    exec_placed(rpc, run, file, exec).unwrap_or_else(|e| panic!("{e}")).0
}

#[test]
fn programs_spread_over_equal_processors_and_avoid_busy_ones() {
    let pool = boot(4);
    let run = system::start_run_server(&pool, 3).unwrap();
    wait_until_alive(&pool, &run, 4);
    let hog = program_file(&pool, "hog");
    let mut rpc = RpcClient::new(pool.new_host_port().unwrap());
    let mut per_board: BTreeMap<String, usize> = BTreeMap::new();
    let mut started = Vec::new();
    for round in 0..12 {
        let mut exec = Exec::new("hog", &["hog"]);
        exec.argument = round;
        let (host, process) = exec_placed(&mut rpc, &run, &hog, &exec).unwrap_or_else(|e| panic!("{e}"));
        *per_board.entry(host).or_default() += 1;
        started.push(process);
    }
    let (min, max) = (per_board.values().min().unwrap(), per_board.values().max().unwrap());
    assert!(per_board.len() == 4 && max - min <= 1, "12 programs on 4 boards: {per_board:?}");
    for process in &started {
        amoeba_ipc::interfaces::standard::Client::new(&mut rpc).destroy(process).unwrap();
    }

    // Two hogs each on boards 0 and 1: new programs go to boards 2 and 3.
    for board in [0, 1] {
        for _ in 0..2 {
            pool.exec(board, "hog", 100).unwrap();
        }
    }
    std::thread::sleep(Duration::from_millis(1500)); // a few polls see the load
    let hello = program_file(&pool, "hello");
    for _ in 0..2 {
        let host = place(&mut rpc, &run, &hello, &Exec::new("hello", &["hello"]));
        assert!(host == "board2" || host == "board3", "a program went to busy {host}");
    }
}

#[test]
fn programs_go_only_where_they_fit_and_never_to_a_dead_board() {
    let (mut config, dir) = config(3);
    config.boards[1].memory_mib = 512;
    let mut pool = boot_with(config, dir);
    let run = system::start_run_server(&pool, 2).unwrap();
    wait_until_alive(&pool, &run, 3);
    let hello = program_file(&pool, "hello");
    let mut rpc = RpcClient::new(pool.new_host_port().unwrap());
    // A 150 MiB heap fits only the 512 MiB board (twice); 600 MiB fits nowhere.
    let mut big = Exec::new("hello", &["hello"]);
    big.heap_size = 150 << 20;
    for _ in 0..2 {
        assert_eq!(place(&mut rpc, &run, &hello, &big), "board1");
    }
    big.heap_size = 600 << 20;
    let error = exec_placed(&mut rpc, &run, &hello, &big).unwrap_err();
    assert_eq!(error.status, amoeba_abi::Status::NoSpace, "{error}");
    assert!(error.to_string().contains("asking the run server for a processor"), "{error}");

    // Board 0 dies: within 2 s the run server leaves it out, and exec goes on.
    pool.kill_board(0).unwrap();
    let killed = Instant::now();
    wait_until_alive(&pool, &run, 2);
    assert!(killed.elapsed() < Duration::from_secs(3), "it took {:?} to notice", killed.elapsed());
    // hello's file lives on board 0, which is gone: use board 1's copy.
    let hello =
        process_server::Client::new(&mut rpc).boot_program(&pool.host_capability(1), "hello").unwrap();
    for _ in 0..4 {
        let host = place(&mut rpc, &run, &hello, &Exec::new("hello", &["hello"]));
        assert_ne!(host, "board0");
    }
}

#[test]
fn a_program_on_a_board_starts_two_children_through_the_run_server() {
    let pool = boot(3);
    let run = system::start_run_server(&pool, 2).unwrap();
    wait_until_alive(&pool, &run, 3);
    let exec = Exec::new("spawn-two", &["spawn-two"])
        .with_capability("RUN", run)
        .with_capability("PROGRAM", program_file(&pool, "show-env"));
    let started = pool.exec_with(1, "spawn-two", &exec).unwrap();
    assert_eq!(pool.wait_process(&started, Duration::from_secs(60)), Some(0), "{}", pool.consoles(10));
    let console = pool.boards()[1].console_text();
    for word in ["one", "two"] {
        let line = console.lines().find(|l| l.starts_with(&format!("spawn-two: child {word} on board")));
        assert!(line.is_some_and(|l| l.ends_with("exited with 42")), "{console}");
    }
}

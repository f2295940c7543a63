//! The run server on a real pool: programs go where it puts them — spread
//! over equal processors, away from busy ones, never where they do not fit,
//! never on a dead board — a program on a board starts children the same
//! way, a burst of 64 over 32 boards spreads and shows as load, and rows of
//! its pool directory that do not answer believably through their
//! capability (a fake host, a forged capability, a port nobody serves) never
//! get a program.

use amoeba_abi::{Capability, Check, GetPort, Rng, Status};
use amoeba_client::exec::{Exec, exec_placed};
use amoeba_ipc::interfaces::process::{HOST_PLACEMENT, HostInfo};
use amoeba_ipc::interfaces::run::{PlacementRequest, RUN_READ};
use amoeba_ipc::interfaces::starter::Value;
use amoeba_ipc::interfaces::{process_server, run_server, standard};
use host_station::rpc_client::RpcClient;
use host_station::rpc_server::RpcServer;
use pool_system::names;
use pool_tests::{TestPool, boot, boot_with, config};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Board 0's boot program `name`, as a file any board can read.
fn program_file(pool: &TestPool, name: &str) -> Capability {
    process_server::Client::new(&mut *pool.rpc()).boot_program(&pool.host_capability(0), name).unwrap()
}

/// Waits until the run server sees `alive` processors answering.
fn wait_until_alive(pool: &TestPool, run: &Capability, alive: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
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
    let run = pool_system::start_run_server(&pool, 3).unwrap();
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
    let run = pool_system::start_run_server(&pool, 2).unwrap();
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
    let run = pool_system::start_run_server(&pool, 2).unwrap();
    wait_until_alive(&pool, &run, 3);
    let exec = Exec::new("spawn-two", &["spawn-two"])
        .with_capability("RUN", run)
        .with_capability("PROGRAM", program_file(&pool, "show-env"));
    let spawner = pool.start_told(1, &exec);
    assert_eq!(
        pool.wait_process(&spawner.started, Duration::from_secs(60)),
        Some(0),
        "{}",
        pool.consoles(10)
    );
    for word in ["one", "two"] {
        let host = spawner.figure(&format!("child {word} host"));
        assert!(
            matches!(&host, Some(Value::Text(h)) if h.starts_with("board")),
            "child {word} ran on {host:?}"
        );
        assert_eq!(spawner.figure(&format!("child {word} status")), Some(Value::Signed(42)), "child {word}");
    }
}

#[test]
fn sixty_four_hogs_in_a_row_give_each_of_thirty_two_boards_one_to_three_and_show_as_load() {
    let begun = Instant::now();
    let pool = boot(32);
    let run = pool_system::start_run_server(&pool, 31).unwrap();
    wait_until_alive(&pool, &run, 32);
    println!("32 boards and the run server up in {:.1?}", begun.elapsed());
    let hog = program_file(&pool, "hog");
    let mut rpc = RpcClient::new(pool.new_host_port().unwrap());
    let mut per_board: BTreeMap<String, u32> = BTreeMap::new();
    let mut started = Vec::new();
    let burst = Instant::now();
    for round in 0..64 {
        let mut exec = Exec::new("hog", &["hog"]);
        exec.argument = round;
        let (host, process) = exec_placed(&mut rpc, &run, &hog, &exec).unwrap_or_else(|e| panic!("{e}"));
        *per_board.entry(host).or_default() += 1;
        started.push(process);
    }
    println!("64 hogs placed in {:.1?}: {per_board:?}", burst.elapsed());
    assert_eq!(per_board.len(), 32, "64 hogs on {} of 32 boards: {per_board:?}", per_board.len());
    assert!(per_board.values().all(|n| (1..=3).contains(n)), "64 hogs on 32 boards: {per_board:?}");

    // Once polled, each board's load in `hosts` is near its number of hogs
    // (its reports show them; the placements no longer count on top). The
    // run server's own board carries its 32 polling threads too, which wait
    // behind its hogs: there the load is at least its hogs.
    let deadline = Instant::now() + Duration::from_secs(10);
    let loads = loop {
        std::thread::sleep(Duration::from_millis(500));
        let hosts = run_server::Client::new(&mut rpc).hosts(&run).unwrap();
        let loads: BTreeMap<String, (f64, u32, u32)> = hosts
            .iter()
            .map(|h| {
                let load = h.info.as_ref().map_or(f64::NAN, |i| i.load_milli() as f64 / 1000.0);
                (h.name.clone(), (load, per_board[&h.name], h.pending))
            })
            .collect();
        let near = |(name, (load, hogs, pending)): (&String, &(f64, u32, u32))| {
            let hogs = f64::from(*hogs);
            *pending == 0 && *load >= hogs - 0.5 && (name == "board31" || *load <= hogs + 0.5)
        };
        if loads.iter().all(near) {
            break loads;
        }
        assert!(Instant::now() < deadline, "(load, hogs, pending) per board: {loads:?}");
    };
    println!("(load, hogs, pending) per board: {loads:?}");
    for process in &started {
        standard::Client::new(&mut rpc).destroy(process).unwrap();
    }
}

/// A host station that answers every request with the process server's info
/// reply `report`, the way a fake processor would try to attract programs;
/// the commands it was sent.
fn fake_host(pool: &TestPool, report: HostInfo, rng: &mut Rng) -> (RpcServer, Arc<Mutex<Vec<u32>>>) {
    let commands = Arc::new(Mutex::new(Vec::new()));
    let seen = commands.clone();
    let server = RpcServer::start(
        pool.new_host_port().unwrap(),
        GetPort::random(rng),
        Box::new(move |header, _| {
            seen.lock().unwrap().push(header.command);
            process_server::info::reply(report.clone()).unwrap()
        }),
    );
    (server, commands)
}

fn random_rng() -> Rng {
    let mut seed = [0u8; 32];
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    seed[..16].copy_from_slice(&nanos.to_le_bytes());
    Rng::from_seed(seed)
}

#[test]
fn rows_that_do_not_answer_believably_through_their_capability_never_get_a_program() {
    let (config, dir) = config(3);
    let config = config.with_disk(dir.path().join("disk.img"), 64 << 20, true).unwrap();
    let pool = boot_with(config, dir);
    let bullet = pool_system::start_bullet(&pool, 0).unwrap_or_else(|e| panic!("{e:#}"));
    let root =
        pool_system::directory::start_directory(&pool, bullet, &[0]).unwrap_or_else(|e| panic!("{e:#}"));
    let mut rpc = RpcClient::new(pool.new_host_port().unwrap());
    let hosts = names::ensure_directory(&mut rpc, &root, "hosts").unwrap();
    let placement = |board: usize| pool.host_capability(board).restrict(HOST_PLACEMENT).unwrap();
    names::enter(&mut rpc, &hosts, "board0", placement(0)).unwrap();
    names::enter(&mut rpc, &hosts, "board1", placement(1)).unwrap();
    // A row with more than placement rights: the run server must not hand those out.
    names::enter(&mut rpc, &hosts, "board2", pool.host_capability(2)).unwrap();
    // A host station that says it is idle with a terabyte free.
    let mut rng = random_rng();
    let tempting = HostInfo {
        free_bytes: 1 << 40,
        largest_free: 1 << 40,
        processes: 1,
        processes_created: 1,
        uptime_us: 60_000_000,
        ..HostInfo::default()
    };
    let (fake, fake_commands) = fake_host(&pool, tempting, &mut rng);
    let fake_row = Capability { port: fake.port(), object: 0, rights: HOST_PLACEMENT, check: rng.check() };
    names::enter(&mut rpc, &hosts, "fake", fake_row).unwrap();
    // Board 1's port with a check nobody issued.
    let forged = Capability { check: Check([0x5a; 6]), ..placement(1) };
    names::enter(&mut rpc, &hosts, "forged", forged).unwrap();
    // A port no station serves.
    let nobody = Capability::for_port(GetPort::random(&mut rng).put_port());
    names::enter(&mut rpc, &hosts, "nobody", Capability { rights: HOST_PLACEMENT, ..nobody }).unwrap();

    let run = pool_system::start_run_server_for(&pool, 2, &hosts).unwrap();
    wait_until_alive(&pool, &run, 3);
    let hello = program_file(&pool, "hello");
    for _ in 0..12 {
        let host = place(&mut rpc, &run, &hello, &Exec::new("hello", &["hello"]));
        assert!(["board0", "board1", "board2"].contains(&host.as_str()), "hello went to {host}");
    }
    let request = PlacementRequest { program: "hello".into(), memory: 1 << 20, text: None };
    for _ in 0..32 {
        let placement = run_server::Client::new(&mut rpc).find_host(&run, &request).unwrap();
        assert!(["board0", "board1", "board2"].contains(&placement.host.as_str()), "{placement:?}");
        assert_eq!(placement.capability.rights, HOST_PLACEMENT, "{placement:?}");
    }

    let reports = run_server::Client::new(&mut rpc).hosts(&run).unwrap();
    let report =
        |name: &str| reports.iter().find(|h| h.name == name).unwrap_or_else(|| panic!("{reports:?}"));
    assert!(report("fake").impossible_reports > 0 && !report("fake").alive, "{reports:?}");
    for name in ["fake", "forged", "nobody"] {
        assert!(!report(name).alive && report(name).info.is_none(), "{name}: {reports:?}");
    }
    let commands = fake_commands.lock().unwrap().clone();
    assert!(
        !commands.is_empty() && commands.iter().all(|c| *c == process_server::PS_INFO),
        "the fake host was sent {commands:?}"
    );

    // Placement needs the run server's place right; reading the pool does not.
    let read_only = standard::Client::new(&mut rpc).restrict(&run, RUN_READ).unwrap();
    assert_eq!(
        run_server::Client::new(&mut rpc).find_host(&read_only, &request).unwrap_err(),
        Status::Denied
    );
    assert_eq!(run_server::Client::new(&mut rpc).hosts(&read_only).unwrap().len(), 6);
}

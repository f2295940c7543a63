//! Each board's process server, by RPC: only holders of the board's host
//! capability build processes there, and only with the rights they hold;
//! the host and programs on other boards build processes from segments they
//! fill (or that the board fills from a file itself), with argv, environment
//! and capabilities; output reaches the starter's terminal; exit statuses come
//! back; under loss, every creation starts exactly one process.

use amoeba_abi::{Capability, Check, GetPort, Port, Status};
use amoeba_client::exec::{Exec, Program};
use amoeba_ipc::interfaces::process::{
    HOST_INFO, HOST_PLACEMENT, PROCESS_INSPECT, SEGMENT_READ, SegmentSource,
};
use amoeba_ipc::interfaces::{process_server, standard};
use host_station::rpc_client::RpcClient;
use host_station::tty_server::Sink;
use pool_tests::{TestPool, boot};
use std::time::Duration;

const EXIT_TIMEOUT: Duration = Duration::from_secs(60);

fn client(pool: &TestPool) -> RpcClient {
    RpcClient::new(pool.new_host_port().unwrap())
}

#[test]
fn a_stranger_without_the_host_capability_can_do_nothing() {
    let pool = boot(2);
    let told = pool.run_told(1, "ticker", 0);
    assert!(told.wait_reports("tick", 1, Duration::from_secs(20)), "the ticker runs");
    let ticker = told.started;
    let host = pool.host_capability(1);
    let mut stranger = client(&pool);
    let mut processes = process_server::Client::new(&mut stranger);

    // Knowing the board's port is not enough: a made-up check is refused.
    let guessed = Capability { check: Check([0x11; 6]), ..host };
    assert_eq!(processes.segment_create(&guessed, 4096), Err(Status::CapBad));
    assert_eq!(processes.info(&guessed), Err(Status::CapBad));
    assert_eq!(processes.process_capability(&guessed, ticker.pid), Err(Status::CapBad));
    let program = pool.program_bytes("hello").unwrap();
    let error = amoeba_client::exec::exec(
        &mut stranger,
        &guessed,
        Program::Bytes(&program),
        &Exec::new("hello", &[]),
    )
    .unwrap_err();
    assert_eq!(error.status, Status::CapBad, "{error}");
    let mut processes = process_server::Client::new(&mut stranger);
    let forged_process = Capability { check: Check([0x22; 6]), ..ticker.capability };
    assert_eq!(processes.stun(&forged_process), Err(Status::CapBad));
    assert_eq!(processes.signal(&forged_process, 9), Err(Status::CapBad));
    assert_eq!(standard::Client::new(&mut stranger).destroy(&forged_process), Err(Status::CapBad));

    // A restricted host capability does only what its rights say.
    let info_only = host.restrict(HOST_INFO).unwrap();
    let mut processes = process_server::Client::new(&mut stranger);
    assert!(processes.info(&info_only).unwrap().processes >= 1);
    assert_eq!(processes.segment_create(&info_only, 4096), Err(Status::Denied));
    assert_eq!(processes.process_capability(&info_only, ticker.pid), Err(Status::Denied));
    let placement = host.restrict(HOST_PLACEMENT).unwrap();
    let segment = processes.segment_create(&placement, 8192).unwrap();
    let read_only = segment.restrict(SEGMENT_READ).unwrap();
    assert_eq!(processes.segment_write(&read_only, 0, b"no"), Err(Status::Denied));
    processes.segment_write(&segment, 4090, b"across").unwrap();
    assert_eq!(processes.read(&read_only, 4090, 6).unwrap(), b"across");
    assert_eq!(processes.segment_write(&segment, 8190, b"past the end"), Err(Status::ArgBad));

    // A restricted process capability inspects but does not stun or destroy.
    let inspect_only = ticker.capability.restrict(PROCESS_INSPECT).unwrap();
    assert_eq!(processes.inspect(&inspect_only).unwrap().name, "ticker");
    assert_eq!(processes.stun(&inspect_only), Err(Status::Denied));
    assert_eq!(standard::Client::new(&mut stranger).destroy(&inspect_only), Err(Status::Denied));
    // The ticker went on through all of it.
    let ticks = told.figures("tick").len();
    assert!(told.wait_reports("tick", ticks + 1, Duration::from_millis(1500)), "the ticker was disturbed");
}

#[test]
fn the_host_and_a_program_on_another_board_build_processes_on_a_third() {
    let pool = boot(3);
    // The host builds show-env on board 2 from segments it fills.
    let terminal = pool.tty().terminal(Sink::Buffer);
    let root = Capability { port: Port([7; 6]), ..Capability::NULL };
    let mut exec = Exec::new("show-env", &["show-env", "a", "b"])
        .with_capability("STDOUT", terminal.capability)
        .with_capability("ROOT", root);
    exec.startup.environment.push("X=1".into());
    let started = pool.exec_with(2, "show-env", &exec).unwrap();
    assert_eq!(pool.wait_process(&started, EXIT_TIMEOUT), Some(43));
    let output =
        terminal.wait_for("show-env: cap ROOT", Duration::from_secs(10)).expect("output reaches the host");
    for line in [
        "show-env: argv show-env",
        "show-env: argv b",
        "show-env: env X=1",
        "show-env: cap ROOT 070707070707",
    ] {
        assert!(output.contains(line), "missing {line:?} in:\n{output}");
    }
    assert!(!pool.boards()[2].console_text().contains("show-env: argv"), "the output went to the console");

    // A program on board 1 builds it on board 2: by filling segments, then by
    // having board 2 read the program from board 1's boot bundle itself.
    let source =
        process_server::Client::new(&mut *pool.rpc()).boot_program(&pool.host_capability(1), "show-env");
    let source = source.expect("board 1 serves its boot programs");
    for mode in ["bytes", "file"] {
        let terminal = pool.tty().terminal(Sink::Buffer);
        let exec = Exec::new("spawner", &["spawner", mode, "show-env", "x"])
            .with_capability("TARGET", pool.host_capability(2).restrict(HOST_PLACEMENT).unwrap())
            .with_capability("PROGRAM", source)
            .with_capability("STDOUT", terminal.capability);
        let spawner = pool.exec_with(1, "spawner", &exec).unwrap();
        assert_eq!(pool.wait_process(&spawner, EXIT_TIMEOUT), Some(0), "{}", terminal.text());
        let output = terminal.text();
        for line in ["show-env: argv x", "show-env: env FROM=spawner", "spawner: child exited with 42"] {
            assert!(output.contains(line), "{mode}: missing {line:?} in:\n{output}");
        }
    }
}

#[test]
fn a_segment_made_from_a_capability_holds_what_the_target_board_read() {
    let pool = boot(2);
    let size: u64 = (3 << 20) + 5;
    let get = 0x0000_5eed;
    let server = pool.run_told(0, "pattern-server", (get << 32) | size);
    let file = server.serving();
    assert_eq!(file.port, GetPort(Port::from_u64(get)).put_port());
    let pattern = |offset: u64| (offset.wrapping_mul(31) ^ (offset >> 8)) as u8;
    let (offset, length, segment_size) = (1000u64, (2 << 20) + 3, 3u64 << 20);
    let mut rpc = client(&pool);
    let mut processes = process_server::Client::new(&mut rpc);
    let source = SegmentSource { source: file, offset, length, size: segment_size };
    let segment = processes.segment_create_from(&pool.host_capability(1), &source).unwrap();
    let mut bytes = Vec::new();
    while (bytes.len() as u64) < segment_size {
        bytes.extend(processes.read(&segment, bytes.len() as u64, 1 << 20).unwrap());
    }
    assert_eq!(bytes.len() as u64, segment_size);
    let wrong = (0..length).find(|&i| bytes[i as usize] != pattern(offset + i));
    assert_eq!(wrong, None, "the segment differs from the file");
    assert!(bytes[length as usize..].iter().all(|&b| b == 0), "the rest of the segment is zero");
    // A source the board cannot read is an error, and leaves no segment behind.
    let before = processes.info(&pool.host_capability(1)).unwrap().free_bytes;
    let forged = Capability { check: Check([1; 6]), ..file };
    let bad = SegmentSource { source: forged, ..source };
    assert_eq!(processes.segment_create_from(&pool.host_capability(1), &bad), Err(Status::CapBad));
    assert_eq!(processes.info(&pool.host_capability(1)).unwrap().free_bytes, before);
}

#[test]
fn under_loss_every_remote_creation_starts_exactly_one_process() {
    const CREATIONS: usize = 200;
    const CLIENTS: usize = 8;
    let pool = boot(1);
    let host = pool.host_capability(0);
    let program = pool.program_bytes("nop").unwrap();
    let before = pool.board_info(0).unwrap().processes_created;
    let ports: Vec<_> = (0..CLIENTS).map(|_| pool.new_host_port().unwrap()).collect();
    pool.switch().apply_faults("loss=30 dup=10 reorder=10").unwrap();
    // Several clients at once, each creating its share one after the other.
    let outcomes: Vec<_> = std::thread::scope(|scope| {
        let program = &program;
        let workers: Vec<_> = ports
            .into_iter()
            .map(|port| {
                scope.spawn(move || {
                    let mut rpc = RpcClient::new(port);
                    let mut exec = Exec::new("nop", &["nop"]);
                    exec.heap_size = 64 << 10;
                    (0..CREATIONS / CLIENTS)
                        .map(|_| amoeba_client::exec::exec(&mut rpc, &host, Program::Bytes(program), &exec))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap()).collect()
    });
    let started = outcomes.iter().filter(|o| o.is_ok()).count();
    let failures: Vec<_> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
    let stats = pool.switch().stats();
    pool.switch().apply_faults("clear").unwrap();
    assert!(stats.dropped_loss > 0 && stats.duplicated > 0, "the faults must have happened: {stats:?}");
    let created =
        process_server::Client::new(&mut *pool.rpc()).info(&host).unwrap().processes_created - before;
    assert_eq!(started, CREATIONS, "every creation went through; failures: {failures:?}");
    assert_eq!(created, started as u64, "{created} processes were made for {started} creations");
}

/// Amoeba's garbage collection on the process server: a segment made for a
/// process that never came (its client died) is freed after
/// `SEGMENT_LIFE` (6) ages without use; one that is touched lives on; only
/// the owner of the board may age it; quotas above the default need the
/// owner too.
#[test]
fn untouched_free_segments_age_away_and_quotas_above_the_default_need_the_owner() {
    use amoeba_client::exec::Exec;
    use amoeba_ipc::interfaces::process::{HOST_CREATE, Quotas};
    let pool = boot(1);
    let host = pool.host_capability(0);
    let mut rpc = client(&pool);
    let placement = host.restrict(HOST_PLACEMENT).unwrap();
    let before = process_server::Client::new(&mut rpc).info(&host).unwrap().free_bytes;
    let mut processes = process_server::Client::new(&mut rpc);
    let forgotten = processes.segment_create(&placement, 1 << 20).unwrap();
    let kept = processes.segment_create(&placement, 1 << 20).unwrap();
    assert_eq!(standard::Client::new(&mut rpc).age(&placement), Err(Status::Denied), "aging takes the owner");
    for age in 1..=6 {
        standard::Client::new(&mut rpc).touch(&kept).unwrap();
        let collected = standard::Client::new(&mut rpc).age(&host).unwrap();
        assert_eq!(collected, u32::from(age == 6), "age {age}");
    }
    let mut processes = process_server::Client::new(&mut rpc);
    assert_eq!(processes.read(&forgotten, 0, 16), Err(Status::CapBad), "an aged segment is gone");
    assert_eq!(processes.read(&kept, 0, 4).unwrap(), vec![0; 4], "a touched one lives");
    standard::Client::new(&mut rpc).destroy(&kept).unwrap();
    assert_eq!(process_server::Client::new(&mut rpc).info(&host).unwrap().free_bytes, before);

    // More than the default quotas: only with the owner capability.
    let program = pool.program_bytes("hello").unwrap();
    let mut greedy = Exec::new("hello", &["hello"]);
    greedy.quotas = Quotas { threads: Quotas::DEFAULT.threads * 2, ..Quotas::DEFAULT };
    let creator = host.restrict(HOST_CREATE).unwrap();
    let refused =
        amoeba_client::exec::exec(&mut rpc, &creator, Program::Bytes(&program), &greedy).unwrap_err();
    assert_eq!(refused.status, Status::Denied, "{refused}");
    let beyond =
        Exec { quotas: Quotas { threads: Quotas::CEILING.threads + 1, ..Quotas::DEFAULT }, ..greedy.clone() };
    let refused = amoeba_client::exec::exec(&mut rpc, &host, Program::Bytes(&program), &beyond).unwrap_err();
    assert_eq!(refused.status, Status::ArgBad, "{refused}");
    let started = amoeba_client::exec::exec(&mut rpc, &host, Program::Bytes(&program), &greedy).unwrap();
    let started = qemu_pool::exec::Started { board: 0, pid: started.object, capability: started };
    assert_eq!(pool.wait_process(&started, EXIT_TIMEOUT), Some(7));
    // A refused creation leaves no segment behind.
    assert_eq!(process_server::Client::new(&mut rpc).info(&host).unwrap().free_bytes, before);
}

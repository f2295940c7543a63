//! FLIP RPC across a real pool: servers are user processes reached by their
//! put-port from other boards and from the host; capabilities are checked;
//! requests run at most once through loss, duplication, reordering and a
//! server board's death.

use amoeba_abi::{Capability, GetPort, Port, Rights, Status};
use amoeba_ipc::interfaces::{counter, echo, process_server, standard};
use host_station::rpc_client::RpcClient;
use pool_tests::{TELL_TIMEOUT, TestPool, Told, boot};
use qemu_pool::exec::Control;
use std::time::{Duration, Instant};

const EXIT_TIMEOUT: Duration = Duration::from_secs(60);

fn put_port(seed: u64) -> Port {
    GetPort(Port::from_u64(seed)).put_port()
}

/// Starts a server program and waits until it announces that it serves; it
/// and the capability it announced.
fn start_server(pool: &TestPool, board: usize, program: &str, argument: u64) -> (Told, Capability) {
    let server = pool.run_told(board, program, argument);
    let capability = server.serving();
    (server, capability)
}

/// The echo service's reply: the answering server's tag and the echoed bytes.
fn echo(client: &mut RpcClient, port: Port, text: &[u8]) -> Result<(u32, Vec<u8>), Status> {
    echo::Client::new(client).echo(&Capability::for_port(port), text)
}

#[test]
fn an_echo_server_answers_clients_on_two_boards_and_the_host() {
    let pool = boot(3);
    let seed = 0x0000_0bad_cafe;
    let (_server, serving) = start_server(&pool, 0, "echo-server", seed);
    assert_eq!(serving, Capability::for_port(put_port(seed)));
    let clients: Vec<_> =
        [1, 2].iter().map(|&b| (b, pool.run_told(b, "echo-client", put_port(seed).to_u64()))).collect();
    for (board, client) in clients {
        let status = pool.wait_process(&client.started, EXIT_TIMEOUT);
        assert_eq!(status, Some(0), "echo client on board {board}");
        assert_eq!(client.unsigned("answered"), 10, "echo client on board {board}");
    }
    let mut host = RpcClient::new(pool.new_host_port().unwrap());
    let (_, reply) = echo(&mut host, put_port(seed), b"from the host").expect("the host's call is answered");
    assert_eq!(reply, b"from the host");
}

#[test]
fn knowing_only_the_put_port_does_not_receive_requests() {
    let pool = boot(2);
    let seed = 0x0000_1234_5678;
    let (server, _) = start_server(&pool, 0, "echo-server", seed | (1 << 48));
    // The impostor calls get_request with the put-port as if it were the get-port.
    let (impostor, _) = start_server(&pool, 1, "impostor", put_port(seed).to_u64());
    let mut host = RpcClient::new(pool.new_host_port().unwrap());
    for round in 0..10u8 {
        let (tag, reply) = echo(&mut host, put_port(seed), &[round]).expect("answered");
        assert_eq!((tag, reply), (1, vec![round]), "only the real server may answer");
    }
    assert_eq!(impostor.figure("got a request"), None, "the impostor got a request");
    // Without the real server nobody serves the put-port.
    pool.control(&server.started.capability, Control::Destroy).unwrap();
    assert_eq!(echo(&mut host, put_port(seed), b"anyone?").unwrap_err(), Status::RpcNotFound);
}

/// Starts the counter server on board `board` with get-port `seed`; it and
/// the owner capability of its counter, which it announces.
fn start_counter(pool: &TestPool, board: usize, seed: u64) -> (Told, Capability) {
    start_server(pool, board, "counter-server", seed)
}

#[derive(Clone, Copy)]
enum CounterCall {
    Increment,
    Read,
    SlowIncrement,
}
use CounterCall::*;

fn counter_call(client: &mut RpcClient, cap: &Capability, call: CounterCall) -> Result<u32, Status> {
    let mut counter = counter::Client::new(client);
    match call {
        Increment => counter.increment(cap),
        Read => counter.read(cap),
        SlowIncrement => counter.slow_increment(cap),
    }
}

#[test]
fn a_client_reaches_a_server_restarted_in_place() {
    // The server process ends and a new one takes the same get-port on the same
    // board; the host's long-lived client calls it before it serves (it waits
    // 1 s after announcing), so its request is first refused as NOT_HERE.
    let pool = boot(1);
    let seed = 0x0000_0000_5151;
    let (first, owner) = start_counter(&pool, 0, seed);
    let mut host = RpcClient::new(pool.new_host_port().unwrap());
    assert_eq!(counter_call(&mut host, &owner, Increment), Ok(1));
    pool.control(&first.started.capability, Control::Destroy).unwrap();
    assert!(pool.wait_process(&first.started, EXIT_TIMEOUT).is_some(), "the first server ended");
    let start_delay_s = 1u64 << 48;
    let (_second, owner) = start_counter(&pool, 0, seed | start_delay_s);
    assert_eq!(owner.port, put_port(seed), "the new server serves the same port");
    assert_eq!(counter_call(&mut host, &owner, Increment), Ok(1), "the same client reaches the new server");
    assert_eq!(counter_call(&mut host, &owner, Read), Ok(1), "its call ran once");
}

#[test]
fn forged_and_restricted_capabilities_are_refused() {
    let pool = boot(2);
    let (_server, owner) = start_counter(&pool, 1, 0x0000_0000_7777);
    let mut host = RpcClient::new(pool.new_host_port().unwrap());
    assert_eq!(counter_call(&mut host, &owner, Increment), Ok(1));
    let info = host.std_info(&owner).expect("std_info answers");
    assert!(!info.is_empty());

    let mut forged = owner;
    forged.check.0[5] ^= 0x40;
    assert_eq!(counter_call(&mut host, &forged, Increment), Err(Status::CapBad));
    let read_only = owner.restrict(Rights::READ).unwrap();
    assert_eq!(counter_call(&mut host, &read_only, Increment), Err(Status::Denied));
    assert_eq!(counter_call(&mut host, &read_only, Read), Ok(1), "refused calls changed nothing");
    // Raising the rights of a restricted capability is a forgery too.
    let mut raised = read_only;
    raised.rights = Rights::ALL;
    assert_eq!(counter_call(&mut host, &raised, Increment), Err(Status::CapBad));
}

#[test]
fn under_loss_duplication_and_reordering_executions_equal_successful_calls() {
    let pool = boot(2);
    let (_server, owner) = start_counter(&pool, 1, 0x0000_0000_8888);
    let mut host = RpcClient::new(pool.new_host_port().unwrap());
    pool.switch().apply_faults("loss=30 dup=10 reorder=10").unwrap();
    let mut successes = 0;
    for _ in 0..60 {
        if counter_call(&mut host, &owner, Increment).is_ok() {
            successes += 1;
        }
    }
    let stats = pool.switch().stats();
    assert!(stats.dropped_loss > 0 && stats.duplicated > 0, "the faults must have happened: {stats:?}");
    pool.switch().apply_faults("clear").unwrap();
    let executed = counter_call(&mut host, &owner, Read).unwrap();
    assert!(successes > 0);
    assert_eq!(
        executed, successes,
        "the server executed {executed} increments for {successes} successful calls"
    );
}

#[test]
fn a_dead_server_board_gives_an_error_and_nothing_runs_twice_after_its_reboot() {
    let mut pool = boot(2);
    let seed = 0x0000_0000_9999;
    let (server, owner) = start_counter(&pool, 1, seed);
    let host_port = pool.new_host_port().unwrap();
    let caller = std::thread::spawn(move || {
        let mut client = RpcClient::new(host_port);
        let started = Instant::now();
        let result = counter_call(&mut client, &owner, SlowIncrement);
        (result, started.elapsed(), client)
    });
    assert!(server.wait_reports("slow increment", 1, TELL_TIMEOUT), "the slow increment never began");
    pool.kill_board(1).unwrap();
    let (result, elapsed, mut client) = caller.join().unwrap();
    assert!(result.is_err(), "a call whose server died must fail, got {result:?}");
    assert!(elapsed < Duration::from_secs(30), "the failure took {elapsed:?}");

    pool.restart_board(1).unwrap();
    let (_fresh_server, fresh) = start_counter(&pool, 1, seed);
    std::thread::sleep(Duration::from_secs(2));
    // The old capability died with the old server, and the new server has run nothing.
    assert!(counter_call(&mut client, &owner, Read).is_err());
    assert_eq!(counter_call(&mut client, &fresh, Read), Ok(0));
}

#[test]
fn two_servers_on_one_port_share_the_calls() {
    let pool = boot(3);
    let seed = 0x0000_4242_4242;
    let _first = start_server(&pool, 0, "echo-server", seed | (1 << 48));
    let _second = start_server(&pool, 1, "echo-server", seed | (2 << 48));
    // Each server announces just before its first get_request registers the
    // port; give both time to get there, so that the first locate finds both.
    std::thread::sleep(Duration::from_millis(300));
    let mut host = RpcClient::new(pool.new_host_port().unwrap());
    let mut served = [0usize; 3];
    for round in 0..40u8 {
        let (tag, _) = echo(&mut host, put_port(seed), &[round]).expect("answered");
        served[tag as usize] += 1;
    }
    assert!(served[1] > 0 && served[2] > 0, "both servers must get a share: {served:?}");
}

#[test]
fn each_board_serves_its_processes_by_rpc() {
    let pool = boot(2);
    let told = pool.run_told(1, "ticker", 0);
    assert!(told.wait_reports("tick", 1, TELL_TIMEOUT), "the ticker never ticked");
    let ticker = told.started;
    let mut host = RpcClient::new(pool.new_host_port().unwrap());
    let info = host.std_info(&ticker.capability).expect("the process server answers STD_INFO");
    assert!(info.contains(&format!("process {} (ticker): running", ticker.pid)), "{info}");

    let inspect_only = ticker.capability.restrict(Rights(amoeba_abi::syscall::RIGHT_INSPECT)).unwrap();
    let mut processes = process_server::Client::new(&mut host);
    assert_eq!(processes.stun(&inspect_only), Err(Status::Denied));
    assert_eq!(processes.stun(&ticker.capability), Ok(()));
    let info = host.std_info(&ticker.capability).unwrap();
    assert!(info.contains("stunned"), "{info}");
    assert_eq!(standard::Client::new(&mut host).destroy(&ticker.capability), Ok(()));
    assert_eq!(pool.wait_process(&ticker, EXIT_TIMEOUT), Some(amoeba_abi::syscall::EXIT_DESTROYED));
}

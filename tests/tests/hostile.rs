//! A hostile or careless program hurts nobody but itself: each attack of the
//! `attack` program runs on a board beside a `bystander` process, and then
//! the same board must still answer RPC, run `hello` for another client,
//! have left the bystander's memory as it was, and get back all the segment
//! memory and kernel heap the attacker took once it has ended.

use amoeba_abi::syscall::{EXIT_FAULT, SCHED_PREEMPTIVE};
use amoeba_client::exec::{Exec, Program};
use amoeba_ipc::interfaces::process::{HostInfo, ProcessState};
use boot::exec::{Control, Started};
use boot::rpc_client::RpcClient;
use pool_tests::{TestPool, boot};
use std::time::{Duration, Instant};

/// Where `bystander` maps its segment (its memory is watched from there).
const BYSTANDER_SEGMENT: u64 = 0x2000_0000;
/// `bystander`'s stop signal.
const BYSTANDER_STOP: u32 = 12;
/// Kernel heap the board may keep after an attack (records of ended
/// processes, FLIP's records of the clients that called).
const HEAP_SLACK: u64 = 512 << 10;
const ATTACK_TIMEOUT: Duration = Duration::from_secs(120);

fn info(pool: &TestPool) -> HostInfo {
    pool.board_info(0).unwrap_or_else(|status| panic!("board 0 does not report itself: {status}"))
}

/// Starts `bystander` and waits until it has its watched segment mapped.
fn start_bystander(pool: &TestPool) -> Started {
    let bystander = pool.exec(0, "bystander", 600).unwrap_or_else(|e| panic!("{e:#}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let report = pool.inspect(&bystander.capability).expect("the bystander can be inspected");
        if report.segments.iter().any(|&(address, _, _)| address == BYSTANDER_SEGMENT) {
            // Its pattern is written right after the mapping.
            std::thread::sleep(Duration::from_millis(300));
            return bystander;
        }
        assert!(Instant::now() < deadline, "the bystander never mapped its segment");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until no process named `name` is alive on board 0.
fn wait_until_gone(pool: &TestPool, name: &str) {
    let deadline = Instant::now() + ATTACK_TIMEOUT;
    loop {
        let mut rpc = pool.rpc();
        let list = amoeba_ipc::interfaces::process_server::Client::new(&mut *rpc)
            .processes(&pool.host_capability(0))
            .expect("the process list");
        drop(rpc);
        let alive =
            list.iter().filter(|p| p.name == name && !matches!(p.state, ProcessState::Exited(_))).count();
        if alive == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "{alive} {name} processes still alive");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Runs attack `attack` on board 0 beside a bystander, expects the attacker
/// to end with `expected`, then checks the board as the module says.
fn attack_and_check(attack: u64, expected: i32) {
    let pool = boot(1);
    let bystander = start_bystander(&pool);
    let before = info(&pool);

    let attacker =
        pool.exec_spawning(0, "attack", attack, SCHED_PREEMPTIVE).unwrap_or_else(|e| panic!("{e:#}"));
    let status = pool.wait_process(&attacker, ATTACK_TIMEOUT).expect("the attacker ends");
    assert_eq!(status, expected, "attack {attack} ended with {status}");
    wait_until_gone(&pool, "attack");

    // The board answers RPC, and frames.
    assert!(
        pool.host().echo(pool.boards()[0].mac, 9, b"alive?", Duration::from_secs(5)).unwrap().is_some(),
        "board 0 does not answer an echo after attack {attack}"
    );
    // It runs hello for another client (a host station of its own).
    let mut other = RpcClient::new(pool.new_host_port().expect("a second host port"));
    let hello = pool.program_bytes("hello").expect("hello is built");
    let process = amoeba_client::exec::exec(
        &mut other,
        &pool.host_capability(0),
        Program::Bytes(&hello),
        &Exec::new("hello", &["hello"]),
    )
    .unwrap_or_else(|error| panic!("hello does not start after attack {attack}: {error}"));
    let hello = Started { board: 0, pid: process.object, capability: process };
    assert_eq!(pool.wait_process(&hello, Duration::from_secs(60)), Some(7), "hello after attack {attack}");

    // Everything the attacker took comes back (free segments die of age).
    let deadline = Instant::now() + Duration::from_secs(60);
    let after = loop {
        let after = info(&pool);
        let heap_back = after.kernel_heap_free + HEAP_SLACK >= before.kernel_heap_free;
        if after.free_bytes == before.free_bytes && heap_back {
            break after;
        }
        if Instant::now() > deadline {
            break after;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(after.free_bytes, before.free_bytes, "segment memory after attack {attack}");
    assert!(
        after.kernel_heap_free + HEAP_SLACK >= before.kernel_heap_free,
        "kernel heap after attack {attack}: {} KiB free, {} KiB before",
        after.kernel_heap_free >> 10,
        before.kernel_heap_free >> 10
    );

    if std::env::var_os("HOSTILE_CONSOLES").is_some() {
        eprintln!("attack {attack}:\n{}", pool.consoles(400));
    }
    // The bystander's memory is as it left it.
    assert_eq!(pool.control(&bystander.capability, Control::Signal(BYSTANDER_STOP)), Ok(()));
    assert_eq!(
        pool.wait_process(&bystander, Duration::from_secs(30)),
        Some(0),
        "the bystander's memory changed"
    );
}

#[test]
fn a_thread_bomb_is_refused_and_the_board_recovers() {
    attack_and_check(1, 0);
}

#[test]
fn a_fork_bomb_is_refused_and_the_board_recovers() {
    attack_and_check(2, 0);
}

#[test]
fn a_segment_bomb_is_refused_and_the_board_recovers() {
    attack_and_check(3, 0);
}

/// The mapping across two regions is refused whole: the write where it was
/// asked for faults, and the process dies of it alone.
#[test]
fn exhausted_translation_tables_refuse_a_mapping_whole() {
    attack_and_check(4, EXIT_FAULT);
}

#[test]
fn a_large_copy_from_a_segment_of_the_same_board_needs_no_kernel_heap() {
    attack_and_check(5, 0);
}

#[test]
fn sixty_four_concurrent_one_mib_transactions_are_bounded() {
    attack_and_check(6, 0);
}

#[test]
fn a_process_started_without_the_host_capability_is_denied() {
    // The attacker is started without HOST: `exec`, not `exec_spawning`.
    let pool = boot(1);
    let attacker = pool.exec(0, "attack", 7).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(pool.wait_process(&attacker, ATTACK_TIMEOUT), Some(0), "{}", pool.consoles(10));
}

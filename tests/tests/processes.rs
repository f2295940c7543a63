//! User programs on real boards: they run in EL0 in their own address
//! spaces, are scheduled, synchronise, fault alone, survive hostile calls,
//! share segments, and obey their process capability.

use amoeba_abi::syscall::{EXIT_DESTROYED, EXIT_FAULT, SCHED_PREEMPTIVE, SCHED_RUN_TO_COMPLETION};
use amoeba_client::exec::Exec;
use amoeba_ipc::interfaces::starter::Value;
use pool_tests::{TestPool, Told, boot, boot_with, config};
use qemu_pool::exec::{Control, Started};
use std::time::{Duration, Instant};

const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

fn console(pool: &TestPool) -> String {
    pool.boards()[0].console_text()
}

fn exec(pool: &TestPool, program: &str, argument: u64, scheduling: u32) -> Started {
    pool.exec_scheduled(0, program, argument, scheduling).unwrap_or_else(|e| panic!("{e:#}"))
}

/// Like [`exec`], with a bootstrap object the program reports its results to.
fn exec_told(pool: &TestPool, program: &str, argument: u64, scheduling: u32) -> Told {
    pool.start_told(0, &Exec::new(program, &[program]).with_argument(argument).with_scheduling(scheduling))
}

/// Like [`exec_told`], with the board's host capability (create right) as
/// `HOST` and (info right) as `HOSTINFO`: for programs that start processes
/// themselves.
fn exec_spawning(pool: &TestPool, program: &str, argument: u64) -> Told {
    let info = pool.host_capability(0).restrict(amoeba_ipc::interfaces::process::HOST_INFO).unwrap();
    let exec = Exec::new(program, &[program])
        .with_argument(argument)
        .with_scheduling(SCHED_PREEMPTIVE)
        .with_capability(amoeba_abi::syscall::HOST_CAPABILITY_NAME, pool.host_create_capability(0))
        .with_capability("HOSTINFO", info);
    pool.start_told(0, &exec)
}

/// The CPU time process `started` has used.
fn cpu_us(pool: &TestPool, started: &Started) -> u64 {
    pool.inspect(&started.capability).expect("the process server reports the process").cpu_us
}

/// Waits until the ticker has reported `times` ticks in all.
fn wait_for_ticks(ticker: &Told, times: usize) {
    assert!(
        ticker.wait_reports("tick", times, Duration::from_secs(20)),
        "the ticker did not tick {times} times"
    );
}

fn wait_exit(pool: &TestPool, started: &Started) -> i32 {
    pool.wait_process(started, EXIT_TIMEOUT)
        .unwrap_or_else(|| panic!("process {} did not exit; console:\n{}", started.pid, console(pool)))
}

/// The board's free segment memory: (free bytes, largest free run).
fn memory(pool: &TestPool) -> (u64, u64) {
    let info = pool.board_info(0).expect("the process server reports its board");
    (info.free_bytes, info.largest_free)
}

#[test]
fn hello_prints_and_exits_with_its_status() {
    let pool = boot(1);
    let hello = exec(&pool, "hello", 0, SCHED_PREEMPTIVE);
    assert_eq!(wait_exit(&pool, &hello), 7);
    assert!(console(&pool).contains("hello from the pool"), "{}", console(&pool));
}

#[test]
fn a_missing_program_is_a_clear_error() {
    let pool = boot(1);
    let error = pool.exec(0, "no-such-program", 0).unwrap_err();
    assert!(format!("{error:#}").contains("no program no-such-program"), "{error:#}");
}

#[test]
fn two_cpu_hogs_on_one_board_both_make_progress() {
    let pool = boot(1);
    let first = exec(&pool, "hog", 1, SCHED_PREEMPTIVE);
    let second = exec(&pool, "hog", 2, SCHED_PREEMPTIVE);
    // Each gets the processor in turn: both use CPU time (a hog never blocks,
    // so only preemption gives the other one any).
    let deadline = Instant::now() + Duration::from_secs(20);
    while [&first, &second].iter().any(|hog| cpu_us(&pool, hog) < 400_000) {
        let used: Vec<u64> = [&first, &second].iter().map(|hog| cpu_us(&pool, hog)).collect();
        assert!(Instant::now() < deadline, "the hogs did not both run: CPU time {used:?} µs");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The network path still answers while both spin.
    assert!(pool.host().echo(pool.boards()[0].mac, 1, b"busy?", Duration::from_secs(2)).unwrap().is_some());
    for hog in [first, second] {
        assert_eq!(pool.control(&hog.capability, Control::Destroy), Ok(()));
        assert_eq!(wait_exit(&pool, &hog), EXIT_DESTROYED);
    }
}

#[test]
fn a_run_to_completion_process_is_not_preempted_by_its_own_threads() {
    let pool = boot(1);
    let rtc = exec_told(&pool, "rtc", 0, SCHED_RUN_TO_COMPLETION);
    assert_eq!(wait_exit(&pool, &rtc.started), 0);
    assert_eq!(rtc.figures("interleaved"), [Value::Flag(false)]);
    // The same program under time slices does interleave: the check can fail.
    let sliced = exec_told(&pool, "rtc", 0, SCHED_PREEMPTIVE);
    assert_eq!(wait_exit(&pool, &sliced.started), 0);
    assert_eq!(sliced.figures("interleaved"), [Value::Flag(true)]);
}

#[test]
fn the_mutex_counter_gives_the_exact_total() {
    let pool = boot(1);
    let counter = exec_told(&pool, "counter", 0, SCHED_PREEMPTIVE);
    assert_eq!(wait_exit(&pool, &counter.started), 0, "{}", console(&pool));
    assert_eq!(counter.unsigned("total"), 40_000);
}

#[test]
fn a_faulting_program_dies_alone_with_a_report() {
    let pool = boot(1);
    let ticker = exec_told(&pool, "ticker", 0, SCHED_PREEMPTIVE);
    wait_for_ticks(&ticker, 2);
    let fault = exec(&pool, "fault", 0, SCHED_PREEMPTIVE);
    assert_eq!(wait_exit(&pool, &fault), EXIT_FAULT);
    let text = console(&pool);
    assert!(text.contains("fault: about to write to an unmapped address"), "{text}");
    assert!(
        text.contains(&format!("process {} (fault) killed: data abort from a lower EL", fault.pid)),
        "{text}"
    );
    assert!(text.contains("FAR 0x8"), "{text}");
    // The other process and the nucleus go on.
    let ticks = ticker.figures("tick").len();
    wait_for_ticks(&ticker, ticks + 3);
    assert!(pool.host().echo(pool.boards()[0].mac, 2, b"alive", Duration::from_secs(2)).unwrap().is_some());
}

#[test]
fn a_hostile_program_gets_errors_and_the_board_survives() {
    let pool = boot(1);
    let hostile = exec_spawning(&pool, "hostile", 0);
    let status = wait_exit(&pool, &hostile.started);
    assert_eq!(status, 0, "{}", console(&pool));
    assert_eq!(hostile.unsigned("failed"), 0, "{}", console(&pool));
    let checks = hostile.unsigned("checks");
    assert!(checks >= 30, "only {checks} checks");
    assert!(pool.host().echo(pool.boards()[0].mac, 3, b"alive", Duration::from_secs(2)).unwrap().is_some());
    let hello = exec(&pool, "hello", 0, SCHED_PREEMPTIVE);
    assert_eq!(wait_exit(&pool, &hello), 7, "the board still runs programs");
}

#[test]
fn a_shared_segment_carries_data_between_two_processes() {
    let pool = boot(1);
    let parent = exec_spawning(&pool, "shm-parent", 0);
    assert_eq!(wait_exit(&pool, &parent.started), 0, "{}", console(&pool));
    assert!(parent.flag("ok"), "{}", console(&pool));
}

#[test]
fn a_stunned_process_makes_no_progress_until_resumed() {
    let pool = boot(1);
    let told = exec_told(&pool, "ticker", 0, SCHED_PREEMPTIVE);
    let ticker = told.started;
    wait_for_ticks(&told, 2);
    assert_eq!(pool.control(&ticker.capability, Control::Stun), Ok(()));
    std::thread::sleep(Duration::from_millis(200));
    let frozen = told.figures("tick").len();
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(told.figures("tick").len(), frozen, "a stunned process ticked");
    assert_eq!(pool.control(&ticker.capability, Control::Resume), Ok(()));
    wait_for_ticks(&told, frozen + 3);

    // A forged check field is refused and changes nothing.
    let mut forged = ticker.capability;
    forged.check.0[0] ^= 1;
    assert_eq!(pool.control(&forged, Control::Stun), Err(amoeba_abi::Status::CapBad));
    let before = told.figures("tick").len();
    wait_for_ticks(&told, before + 2);
}

#[test]
fn destroy_returns_all_of_a_process_memory() {
    let pool = boot(1);
    let before = memory(&pool);
    let told = exec_told(&pool, "ticker", 0, SCHED_PREEMPTIVE);
    let ticker = told.started;
    wait_for_ticks(&told, 1);
    let during = memory(&pool);
    assert!(during.0 < before.0, "a running process uses segment memory");
    assert_eq!(pool.control(&ticker.capability, Control::Destroy), Ok(()));
    assert_eq!(wait_exit(&pool, &ticker), EXIT_DESTROYED);
    let after = memory(&pool);
    assert_eq!(after, before, "memory after destroy must equal memory before the process");
}

#[test]
fn signals_are_caught_or_ignored_between_threads_and_end_a_process_by_default() {
    let pool = boot(1);
    let signals = exec_told(&pool, "signals", 0, SCHED_PREEMPTIVE);
    assert_eq!(wait_exit(&pool, &signals.started), 0, "{}", console(&pool));
    assert_eq!(signals.unsigned("failures"), 0, "{}", console(&pool));

    // A signal the process does not catch ends it, with the signal in its status.
    let told = exec_told(&pool, "ticker", 0, SCHED_PREEMPTIVE);
    let ticker = told.started;
    wait_for_ticks(&told, 1);
    let signal = 7;
    assert_eq!(pool.control(&ticker.capability, Control::Signal(signal as u32)), Ok(()));
    assert_eq!(wait_exit(&pool, &ticker), amoeba_abi::syscall::EXIT_SIGNAL_BASE - signal);
}

/// `spawn-cycle`'s argument: `total` processes, `at_once` of them alive together.
fn spawn_cycle_argument(total: u64, at_once: u64) -> u64 {
    total | (at_once << 32)
}

/// Runs `spawn-cycle` on board 0 and checks that every process was created
/// and exited, and that the board's segment memory all came back.
fn cycle_processes(pool: &TestPool, total: u64, at_once: u64, timeout: Duration) {
    let before = memory(pool);
    let cycle = exec_spawning(pool, "spawn-cycle", spawn_cycle_argument(total, at_once));
    let status = pool.wait_process(&cycle.started, timeout).unwrap_or_else(|| {
        panic!("spawn-cycle did not finish in {timeout:?}:\n{}", pool.boards()[0].console_tail(20))
    });
    assert_eq!(status, 0, "{}", pool.boards()[0].console_tail(20));
    assert_eq!(cycle.unsigned("done"), total, "{}", pool.boards()[0].console_tail(20));
    assert_eq!(memory(pool), before, "every process's memory came back");
}

/// Address-space ids are reused (with the TLB entries of the old owner
/// invalidated): a board whose id space is cut to ids 1 to 8 (`asids=8`)
/// creates 300 processes, 3 at a time next to `spawn-cycle` itself.
#[test]
fn address_space_ids_are_reused_after_exit() {
    let (mut config, dir) = config(1);
    config.boards[0].extra_bootargs = "asids=8".into();
    let pool = boot_with(config, dir);
    cycle_processes(&pool, 300, 3, Duration::from_secs(120));
}

/// 70,000 processes on one board, one after another: more than the 65,535
/// address-space ids, and more process records than the kernel heap holds.
/// Slow (minutes): `just soak-nucleus` runs it.
#[test]
#[ignore = "soak: several minutes; run with `just soak-nucleus`"]
fn seventy_thousand_processes_on_one_board() {
    let pool = boot(1);
    cycle_processes(&pool, 70_000, 1, Duration::from_secs(3600));
}

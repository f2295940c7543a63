//! The pool boots, the boards answer on the virtual Ethernet, the switch's
//! faults work, and a failing board is seen as failing.

use pool_control::{Frame, Message};
use pool_tests::{board_with_args, boot, config, process_exists, start_with};
use std::collections::HashSet;
use std::time::{Duration, Instant};

const ECHO_TIMEOUT: Duration = Duration::from_secs(2);
/// How long to wait before concluding that a frame will not come.
const SILENCE: Duration = Duration::from_millis(400);

#[test]
fn four_boards_boot_and_answer_echo_and_are_killed_with_the_pool() {
    let mut pool = boot(4);
    assert_eq!(pool.boards().len(), 4);
    for (index, board) in pool.boards().iter().enumerate() {
        let rtt = pool.host().echo(board.mac, index as u32, b"are you there", ECHO_TIMEOUT).unwrap();
        assert!(rtt.is_some(), "board {} did not answer the echo", board.spec.id);
        assert!(
            board.console_text().contains("ready"),
            "board {} console lacks its ready line",
            board.spec.id
        );
        assert!(
            !board.console_text().contains("no virtio-rng device"),
            "board {} must seed its capabilities from virtio-rng",
            board.spec.id
        );
    }
    // The uptime a board reports is counted by its timer interrupts.
    let board = &pool.boards()[0];
    let first = pool.host().board_status(board.mac, ECHO_TIMEOUT).unwrap().expect("board 0 reports status");
    assert_eq!((first.board_id, first.role.as_str(), first.incarnation), (0, "pool", board.incarnation));
    std::thread::sleep(Duration::from_millis(600));
    let second = pool.host().board_status(board.mac, ECHO_TIMEOUT).unwrap().expect("board 0 reports status");
    let advanced = second.uptime.saturating_sub(first.uptime);
    assert!(
        (Duration::from_millis(300)..Duration::from_secs(5)).contains(&advanced),
        "uptime advanced by {advanced:?} over 600 ms: timer interrupts are not ticking"
    );
    let macs: HashSet<_> = pool.boards().iter().map(|b| b.mac).collect();
    assert_eq!(macs.len(), 4, "boards must have distinct MACs");
    let pids = pool.qemu_pids();
    assert_eq!(pids.len(), 4);
    pool.shut_down();
    for pid in pids {
        assert!(!process_exists(pid), "QEMU {pid} outlived its pool");
    }
}

#[test]
fn broadcast_from_the_host_reaches_every_board() {
    let pool = boot(4);
    let answered = pool.host().broadcast_echo(77, Duration::from_secs(3)).unwrap();
    let mut expected: Vec<_> = pool.boards().iter().map(|b| b.mac).collect();
    expected.sort();
    assert_eq!(answered, expected);
}

/// Sends `count` echoes without waiting and counts distinct answers.
fn pipelined_echo_success(pool: &qemu_pool::Pool, count: u32, first_id: u32) -> f64 {
    let target = pool.boards()[0].mac;
    for id in first_id..first_id + count {
        pool.host().send(target, &Message::EchoRequest { id, payload: b"loss test" }).unwrap();
        std::thread::sleep(Duration::from_micros(500));
    }
    let mut answered = HashSet::new();
    while let Some(frame) = pool.host().recv_timeout(SILENCE) {
        if let Ok(Message::EchoReply { id, .. }) = Frame::parse(&frame).unwrap().message()
            && (first_id..first_id + count).contains(&id)
        {
            answered.insert(id);
        }
    }
    answered.len() as f64 / count as f64
}

#[test]
fn loss_injection_drops_frames_measurably() {
    let pool = boot(1);
    assert_eq!(pipelined_echo_success(&pool, 100, 0), 1.0, "a clean switch must lose nothing");

    pool.switch().apply_faults("loss=50").unwrap();
    let before = pool.switch().stats();
    let success = pipelined_echo_success(&pool, 400, 1000);
    let after = pool.switch().stats();
    // Both the request and the reply cross the lossy switch: 0.5 * 0.5.
    assert!((0.15..=0.35).contains(&success), "round-trip success {success:.2} with 50% loss each way");
    let dropped = after.dropped_loss - before.dropped_loss;
    let delivered = after.copies_delivered - before.copies_delivered;
    let loss = dropped as f64 / (dropped + delivered) as f64;
    assert!((0.42..=0.58).contains(&loss), "switch dropped {loss:.2} of copies");

    pool.switch().apply_faults("clear").unwrap();
    assert_eq!(pipelined_echo_success(&pool, 100, 5000), 1.0, "after clearing faults nothing is lost");
}

#[test]
fn partition_stops_traffic_between_its_sides_until_healed() {
    let pool = boot(4);
    let mac = |id: u16| pool.board(id).unwrap().mac;
    let host = pool.host();
    assert!(
        host.peer_echo(mac(0), mac(2), 1, ECHO_TIMEOUT).unwrap(),
        "board 0 reaches board 2 before the partition"
    );

    pool.switch().apply_faults("partition=b0,b1,h0/b2,b3").unwrap();
    assert!(host.echo(mac(0), 2, b"x", ECHO_TIMEOUT).unwrap().is_some(), "same side: host reaches board 0");
    assert!(host.peer_echo(mac(0), mac(1), 3, ECHO_TIMEOUT).unwrap(), "same side: board 0 reaches board 1");
    assert!(host.echo(mac(2), 4, b"x", SILENCE).unwrap().is_none(), "across: host must not reach board 2");
    assert!(!host.peer_echo(mac(0), mac(3), 5, SILENCE).unwrap(), "across: board 0 must not reach board 3");
    assert!(pool.switch().stats().dropped_partition > 0);

    pool.switch().apply_faults("heal").unwrap();
    assert!(host.echo(mac(2), 6, b"x", ECHO_TIMEOUT).unwrap().is_some(), "healed: host reaches board 2");
    assert!(host.peer_echo(mac(0), mac(3), 7, ECHO_TIMEOUT).unwrap(), "healed: board 0 reaches board 3");
}

#[test]
fn an_exception_is_reported_and_stops_the_board_with_failure() {
    let (mut config, dir) = config(1);
    config.boards = vec![board_with_args(0, "test=exception")];
    let mut pool = start_with(config, dir);
    let status = pool.wait_exit(0, Duration::from_secs(30)).unwrap();
    assert_eq!(status.code(), Some(1), "the board must stop with a failure status");
    let console = pool.board(0).unwrap().console_text();
    for expected in [
        "unexpected synchronous exception from current EL with SPx",
        "EC 0x25 (data abort from the same EL)",
        "translation fault at level 1 on read",
        "FAR 0xffff000100000000",
        "x30",
        "board stopped (failure)",
    ] {
        assert!(console.contains(expected), "console lacks \"{expected}\":\n{console}");
    }
}

#[test]
fn a_board_that_stops_before_ready_fails_the_boot_with_its_console() {
    let (mut config, dir) = config(2);
    config.boards[1] = board_with_args(1, "test=poweroff");
    let started = Instant::now();
    let error = match qemu_pool::Pool::boot(config) {
        Ok(_) => panic!("a pool with a board that powers off must not boot"),
        Err(error) => format!("{error:#}"),
    };
    drop(dir);
    assert!(error.contains("board 1 stopped before it was ready"), "{error}");
    assert!(error.contains("test mode: powering off"), "the error must show the console tail: {error}");
    assert!(started.elapsed() < Duration::from_secs(30), "the failure must be noticed promptly");
}

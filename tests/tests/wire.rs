//! The switch is the pool's F-box: a station that lies about its MAC gets
//! nothing meant for another station, and its frames go nowhere; every
//! host station gets a MAC of its own from the switch.

use pool_control::{BROADCAST, Mac, Message, encode_frame};
use pool_tests::boot;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

#[test]
fn a_station_sending_as_board_2_receives_nothing_meant_for_board_2() {
    let pool = boot(3);
    let victim = pool.boards()[2].mac;
    let thief = pool.new_host_port().expect("a host port");
    assert_ne!(thief.mac(), victim);
    let stop = Arc::new(AtomicBool::new(false));
    let stolen = Arc::new(AtomicUsize::new(0));

    // The thief sends from board 2's MAC about every 2 ms (to everyone, and
    // to board 0), and counts what reaches it meant for board 2.
    let board0 = pool.boards()[0].mac;
    let thief_thread = {
        let (stop, stolen) = (stop.clone(), stolen.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let to = if sent.is_multiple_of(2) { BROADCAST } else { board0 };
                let len = encode_frame(&mut buf, to, victim, &Message::Discover).unwrap();
                thief.send_frame(&buf[..len]).unwrap();
                sent += 1;
                while let Some(frame) = thief.recv_any_timeout(Duration::from_millis(2)) {
                    if frame[..6] == victim.0 {
                        stolen.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            sent
        })
    };

    // Meanwhile the owner talks to board 2: process-server calls and a program.
    for _ in 0..20 {
        pool.board_info(2).expect("board 2 answers its owner");
    }
    let hello = pool.exec(2, "hello", 0).expect("hello starts on board 2");
    assert_eq!(pool.wait_process(&hello, Duration::from_secs(60)), Some(7));
    assert!(pool.host().echo(victim, 77, b"still me?", Duration::from_secs(5)).unwrap().is_some());

    stop.store(true, Ordering::Relaxed);
    let sent = thief_thread.join().unwrap();
    assert_eq!(stolen.load(Ordering::Relaxed), 0, "the thief received frames meant for board 2");
    let stats = pool.switch().stats();
    assert!(
        stats.dropped_spoofed >= sent,
        "{sent} spoofed frames sent, {} dropped: {stats}",
        stats.dropped_spoofed
    );
    assert!(stats.to_string().contains("spoofed source"), "{stats}");
}

#[test]
fn host_stations_get_distinct_macs_and_unicast_to_nobody_is_dropped() {
    let pool = boot(1);
    let stations: Vec<_> = (0..8).map(|_| pool.new_host_port().expect("a host port")).collect();
    let mut macs: Vec<Mac> = stations.iter().map(|s| s.mac()).collect();
    macs.sort_unstable_by_key(|m| m.0);
    macs.dedup();
    assert_eq!(macs.len(), stations.len(), "two stations share a MAC");
    let attachments: Vec<u64> = stations.iter().map(|s| s.attachment()).collect();
    assert!(attachments.windows(2).all(|w| w[0] < w[1]), "attachments do not grow: {attachments:?}");

    // A frame to a MAC nobody has reaches nobody.
    let before = pool.switch().stats().dropped_unknown_destination;
    let mut buf = [0u8; 64];
    let len = encode_frame(&mut buf, Mac::for_board(40), stations[0].mac(), &Message::Discover).unwrap();
    stations[0].send_frame(&buf[..len]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(pool.switch().stats().dropped_unknown_destination, before + 1);
    assert!(stations[1].recv_any_timeout(Duration::from_millis(200)).is_none());
}

//! A hostile station on a live pool (issue 21): a raw host port of the switch,
//! which sends whatever frames it likes, tries each attack against a pool whose
//! Bullet server is up. One pool is booted for all of them (one `#[test]`,
//! attack after attack). Each check names the defence it rests on, and fails if
//! that defence is taken away:
//!
//! 1. **MAC theft** (the switch as F-box, `vswitch`): the station sends from
//!    board 2's MAC while the owner talks to board 2. It receives nothing meant
//!    for board 2, and the switch counts every spoofed frame as dropped. Without
//!    the per-port MAC the switch would learn board 2 behind the thief and send it
//!    board 2's frames.
//! 2. **HERE_IS impostor** (the FLIP locate proof, `flip::locate`): the station
//!    answers every LOCATE for the Bullet server's put-port with a HERE_IS for
//!    itself, signed with its own key, or carrying the real server's proof from an
//!    earlier locate (replayed), under its own address or the server's. A fresh
//!    host client and a program on board 1 then use Bullet: every request goes to
//!    Bullet, the impostor receives none, and the host client counts the refused
//!    answers. Without the proof the clients would cache the impostor next to the
//!    server and send it every other request, capabilities and all.
//! 3. **Fake host** (the same proof): meanwhile the impostor also answers for
//!    every board's process-server port, pretending to be an idle processor, while
//!    the run server starts, polls the boards and places programs. It never
//!    receives a poll (which carries the host capability), and every placement
//!    names a real board. (A fake *row* in the pool directory, reporting zero load
//!    through a host capability nobody issued, is `run_server.rs`'s test.)
//! 4. **Request replayed after the server forgot the client** (FLIP's memory
//!    epoch, `flip::server`): the station stores a file through its own FLIP
//!    endpoint, keeping every request frame it sent, waits until the server has
//!    forgotten it (the client time-to-live), and sends them all again, verbatim.
//!    The server refuses them (NOT_HERE, stale) and the Bullet server holds no
//!    second file. Without the epoch rule the forgotten client's requests would
//!    run again as a newcomer's, and the create would make a second file.
//!
//! Not here yet: the group attacks (forged `Data`, a `Send` without the send
//! right, a replayed JoinReq); the sequencer's `tests/hostile.rs` covers those
//! defences off the pool.

use amoeba_abi::{Capability, GetPort, Header, Port, Status};
use amoeba_client::exec::Exec;
use amoeba_client::files;
use amoeba_ipc::interface::Transport;
use amoeba_ipc::interfaces::run::PlacementRequest;
use amoeba_ipc::interfaces::{bullet, run_server};
use flip::wire::{
    F_REPLY, F_STALE, FlipHeader, Frame, HereIsProof, LOCATE_NONCE_LEN, Packet, PacketType, here_is_message,
};
use flip::{Addr, Endpoint, Event, Mac};
use host_station::host_port::HostPort;
use host_station::rpc_client::{RpcClient, pool_config};
use pool_control::{BROADCAST, Message, encode_frame};
use pool_tests::{TestPool, boot_with, config};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A pool of three boards whose board 0 has a fresh disk and the Bullet server.
fn pool_with_bullet() -> (TestPool, Capability) {
    let (config, dir) = config(3);
    let config = config.with_disk(dir.path().join("disk.img"), 64 << 20, true).unwrap();
    let pool = boot_with(config, dir);
    let bullet = pool_system::start_bullet(&pool, 0).unwrap_or_else(|e| panic!("{e:#}"));
    (pool, bullet)
}

/// Files the Bullet server holds (committed or not).
fn bullet_files(rpc: &mut RpcClient, bullet: &Capability) -> u64 {
    let stats = bullet::Client::new(rpc).stats(bullet).expect("Bullet answers its owner");
    stats.files + stats.uncommitted
}

#[test]
fn a_raw_host_port_tries_each_attack_on_a_live_pool() {
    let (pool, bullet) = pool_with_bullet();
    mac_theft(&pool);
    impostor_for_bullet_and_the_boards(&pool, &bullet);
    replay_after_the_server_forgot(&pool, &bullet);
}

/// Attack 1: the station sends as board 2 and listens for board 2's frames.
fn mac_theft(pool: &TestPool) {
    let victim = pool.boards()[2].mac;
    let thief = pool.new_host_port().expect("a host port");
    let stop = Arc::new(AtomicBool::new(false));
    let stolen = Arc::new(AtomicU64::new(0));
    let dropped_before = pool.switch().stats().dropped_spoofed;
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
    for _ in 0..10 {
        pool.board_info(2).expect("board 2 answers its owner");
    }
    let hello = pool.exec(2, "hello", 0).expect("hello starts on board 2");
    assert_eq!(pool.wait_process(&hello, Duration::from_secs(120)), Some(7));
    stop.store(true, Ordering::Relaxed);
    let sent = thief_thread.join().unwrap();
    assert_eq!(stolen.load(Ordering::Relaxed), 0, "the thief received frames meant for board 2");
    let dropped = pool.switch().stats().dropped_spoofed - dropped_before;
    assert!(dropped >= sent, "{sent} spoofed frames sent, {dropped} dropped");
}

/// A HERE_IS from the impostor's MAC, for the locate `locate` (a parsed LOCATE).
fn here_is(me: Mac, to: Mac, locate: &FlipHeader, src: Addr, payload: &[u8]) -> Vec<u8> {
    let header = FlipHeader {
        ptype: PacketType::HereIs,
        flags: 0,
        hops: 1,
        dst: locate.dst,
        src,
        dst_inc: locate.src_inc,
        src_inc: 1,
        msg_id: 1,
        total_len: payload.len() as u32,
        frag_off: 0,
    };
    Frame { dst: to, src: me, packet: Packet { header, payload } }.encode()
}

/// What the impostor saw and did.
#[derive(Default)]
struct Imposture {
    /// LOCATEs for Bullet's port it answered.
    answered: AtomicU64,
    /// LOCATEs for a board's process-server port it answered.
    answered_hosts: AtomicU64,
    /// Request or enquiry frames that reached it: each one a failure of the proof.
    requests: AtomicU64,
}

/// Attacks 2 and 3: the station answers every LOCATE for Bullet's put-port, and
/// for every board's process-server port, as if it served it.
fn impostor_for_bullet_and_the_boards(pool: &TestPool, bullet: &Capability) {
    let put = bullet.port;
    let hosts: Vec<Port> = (0..pool.boards().len()).map(|i| pool.host_capability(i).port).collect();
    let impostor = pool.new_host_port().expect("a host port");
    let me = Mac(impostor.mac().0);
    let my_addr = Addr::node(me);

    // First a real proof to replay: the impostor locates Bullet itself.
    let nonce = [0x5a; LOCATE_NONCE_LEN];
    let ask = FlipHeader {
        ptype: PacketType::Locate,
        flags: 0,
        hops: 1,
        dst: Addr::port(put),
        src: my_addr,
        dst_inc: 0,
        src_inc: 1,
        msg_id: 0,
        total_len: LOCATE_NONCE_LEN as u32,
        frag_off: 0,
    };
    let locate =
        Frame { dst: Mac::BROADCAST, src: me, packet: Packet { header: ask, payload: &nonce } }.encode();
    let mut recorded: Option<(Addr, Vec<u8>)> = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    while recorded.is_none() && Instant::now() < deadline {
        impostor.send_frame(&locate).unwrap();
        let until = Instant::now() + Duration::from_secs(2);
        while recorded.is_none() && Instant::now() < until {
            let Some(frame) = impostor.recv_any_timeout(Duration::from_millis(100)) else { continue };
            if let Ok(f) = Frame::parse(&frame)
                && f.packet.header.ptype == PacketType::HereIs
                && f.packet.header.dst == Addr::port(put)
            {
                recorded = Some((f.packet.header.src, f.packet.payload.to_vec()));
            }
        }
    }
    let (server_addr, real_proof) = recorded.expect("the Bullet server answers a LOCATE");

    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Imposture::default());
    let own_key = GetPort(Port([0x66; 6])).locate_key();
    let thread = {
        let (stop, seen, hosts) = (stop.clone(), seen.clone(), hosts.clone());
        std::thread::spawn(move || {
            let mut variant = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let Some(frame) = impostor.recv_any_timeout(Duration::from_millis(20)) else { continue };
                let Ok(f) = Frame::parse(&frame) else { continue };
                let h = f.packet.header;
                let target = h.dst.as_port().filter(|p| *p == put || hosts.contains(p));
                match (h.ptype, target) {
                    (PacketType::Locate, Some(port)) => {
                        let Ok(nonce) = <[u8; LOCATE_NONCE_LEN]>::try_from(f.packet.payload) else {
                            continue;
                        };
                        let count = if port == put { &seen.answered } else { &seen.answered_hosts };
                        count.fetch_add(1, Ordering::Relaxed);
                        // Every kind of answer, every time.
                        let signed = own_key.sign(&here_is_message(&nonce, port, my_addr, 1, 1));
                        let own =
                            HereIsProof { public_key: own_key.public_key(), signature: signed }.encode();
                        for (src, proof) in
                            [(my_addr, &own[..]), (my_addr, &real_proof[..]), (server_addr, &real_proof[..])]
                        {
                            impostor.send_frame(&here_is(me, f.src, &h, src, proof)).unwrap();
                        }
                        variant += 1;
                    }
                    (PacketType::Unidata, _) if h.flags & F_REPLY == 0 => {
                        seen.requests.fetch_add(1, Ordering::Relaxed);
                    }
                    (PacketType::Enquiry, _) => {
                        seen.requests.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
            }
            variant
        })
    };

    // A host client that has never located Bullet, and a program on board 1.
    let mut rpc = RpcClient::new(pool.new_host_port().unwrap());
    for k in 0..4u8 {
        let data = vec![k; 3000 + k as usize];
        let file = files::put(&mut rpc, bullet, &data, |_| {}).expect("Bullet stores the host's file");
        assert_eq!(files::get(&mut rpc, &file, |_| {}).expect("Bullet reads it back"), data);
    }
    let exec =
        Exec::new("bullet-client", &["bullet-client", "0", "1", "5000"]).with_capability("BULLET", *bullet);
    let started = pool.exec_with(1, "bullet-client", &exec).unwrap();
    assert_eq!(pool.wait_process(&started, Duration::from_secs(180)), Some(0), "{}", pool.consoles(10));
    // The run server starts now, so its first polls of the boards meet the impostor.
    let run = pool_system::start_run_server(pool, 2).unwrap_or_else(|e| panic!("{e:#}"));
    pool_system::wait_for_processors(pool, &run, pool.boards().len()).unwrap_or_else(|e| panic!("{e:#}"));
    let request = PlacementRequest { program: "hello".into(), memory: 1 << 20, text: None };
    let boards: Vec<String> = pool.boards().iter().map(|b| format!("board{}", b.spec.id)).collect();
    for _ in 0..16 {
        let placement = run_server::Client::new(&mut rpc).find_host(&run, &request).expect("a placement");
        assert!(boards.contains(&placement.host), "placed on {placement:?}");
        assert!(hosts.contains(&placement.capability.port), "placed on {placement:?}");
    }
    stop.store(true, Ordering::Relaxed);
    thread.join().unwrap();

    let answered = seen.answered.load(Ordering::Relaxed);
    assert!(answered >= 1, "the impostor saw no LOCATE for Bullet: the attack did not happen");
    assert!(
        seen.answered_hosts.load(Ordering::Relaxed) >= 1,
        "the impostor saw no LOCATE for a process server: the attack did not happen"
    );
    assert_eq!(seen.requests.load(Ordering::Relaxed), 0, "requests went to the impostor");
    assert!(rpc.stats().here_is_refused >= 3, "the host client refused the impostor's answers");
}

/// A raw station with its own FLIP endpoint that keeps every request frame it
/// sends, so that it can replay them.
struct RecordingStation {
    port: HostPort,
    endpoint: Endpoint,
    started: Instant,
    /// Request fragments sent (UNIDATA without the reply flag), in order.
    requests: Vec<Vec<u8>>,
}

impl RecordingStation {
    fn new(port: HostPort) -> RecordingStation {
        let endpoint = Endpoint::new(Mac(port.mac().0), port.flip_incarnation(), pool_config());
        RecordingStation { port, endpoint, started: Instant::now(), requests: Vec::new() }
    }

    fn now(&self) -> u64 {
        self.started.elapsed().as_micros() as u64
    }

    fn flush(&mut self) {
        while let Some(t) = self.endpoint.poll_transmit() {
            if let Ok(f) = Frame::parse(&t.frame)
                && f.packet.header.ptype == PacketType::Unidata
                && f.packet.header.flags & F_REPLY == 0
            {
                self.requests.push(t.frame.clone());
            }
            self.port.send_frame(&t.frame).unwrap();
        }
    }
}

impl Transport for RecordingStation {
    fn trans(
        &mut self,
        request: &Header,
        buf: &[u8],
        _reply_limit: usize,
    ) -> Result<(Header, Vec<u8>), Status> {
        let now = self.now();
        let id = self.endpoint.start_trans(now, request, buf);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            self.flush();
            while let Some(event) = self.endpoint.poll_event() {
                if let Event::TransDone { id: done, result } = event
                    && done == id
                {
                    return result;
                }
            }
            if Instant::now() > deadline {
                return Err(Status::RpcFailure);
            }
            let now = self.now();
            let wait =
                self.endpoint.next_deadline().map_or(10_000, |d| d.saturating_sub(now).clamp(100, 10_000));
            if let Some(frame) = self.port.recv_any_timeout(Duration::from_micros(wait)) {
                let now = self.now();
                self.endpoint.handle_frame(now, &frame);
            }
            let now = self.now();
            self.endpoint.handle_timeout(now);
        }
    }
}

/// Attack 3: the station replays its own requests once the server forgot it.
fn replay_after_the_server_forgot(pool: &TestPool, bullet: &Capability) {
    let mut owner = RpcClient::new(pool.new_host_port().unwrap());
    let mut station = RecordingStation::new(pool.new_host_port().unwrap());
    let before = bullet_files(&mut owner, bullet);
    let file = files::put(&mut station, bullet, b"made once", |_| {}).expect("the station stores a file");
    assert_eq!(bullet_files(&mut owner, bullet), before + 1);
    assert!(!station.requests.is_empty());

    // The server forgets a silent client after the time-to-live, on its next
    // cleanup pass.
    std::thread::sleep(Duration::from_micros(pool_config().client_ttl) + Duration::from_secs(15));
    let requests = std::mem::take(&mut station.requests);
    for frame in &requests {
        station.port.send_frame(frame).unwrap();
    }
    let mut stale = 0;
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        let Some(frame) = station.port.recv_any_timeout(Duration::from_millis(100)) else { continue };
        if let Ok(f) = Frame::parse(&frame)
            && f.packet.header.ptype == PacketType::NotHere
            && f.packet.header.flags & F_STALE != 0
        {
            stale += 1;
        }
    }
    assert!(stale >= 1, "the server answered the replayed requests with no refusal");
    assert_eq!(bullet_files(&mut owner, bullet), before + 1, "a replayed request ran again");
    assert_eq!(files::get(&mut owner, &file, |_| {}).unwrap(), b"made once");
}

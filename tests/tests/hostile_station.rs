//! A hostile station on a live pool (issue 21): a raw host port of the switch,
//! which sends whatever frames it likes, tries each attack against a pool whose
//! Bullet server is up. One pool is booted for attacks 1 to 4 (one `#[test]`,
//! attack after attack), and one for the group attacks (5). Each check names the defence it rests on, and fails if
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
//! 5. **Group attacks** (a second pool, `a_raw_host_port_attacks_a_live_group`): a
//!    group whose sequencer is a host member (so its counters can be read) and whose
//!    other members run `group-log` on two boards, attacked by two stations: an
//!    *insider* that joined honestly with a receive-only capability (so it holds the
//!    group key, as every member does) and an *outsider* holding no capability.
//!    - **Forged `Data`** for the next sequence numbers and ones far ahead, to the
//!      group and to each board: from the outsider under the sequencer's address and
//!      its own (the packet tag, `sequencer::auth`: no group key, the tag fails, the
//!      sequencer counts them in `rejected_packets`); from the insider, tagged with
//!      the real group key, under the sequencer's address (the sender address is
//!      bound to the frame's source MAC, `sequencer::ethernet::parse_frame`, which
//!      the switch vouches for) and under its own address claiming the sequencer's
//!      member id (entries only from the current sequencer, by id and address).
//!      Without the address binding the boards delivered the insider's entries as
//!      the sequencer's, and their order left the sequencer's.
//!    - **`Send` without the send right**: the insider's, tagged with the group key
//!      under its own member id, which its own library would never send; the
//!      sequencer refuses each (`refused_sends`, the send right checked where the
//!      order is made). The outsider's, with no key: rejected at the tag.
//!    - **Replayed `JoinReq`**: the boards' join requests, recorded on the wire and
//!      sent again from the outsider's port, as they were and under its own
//!      address. The first are dropped by the address binding (and, had they
//!      passed, their proof answers a challenge that the boards' own joins moved
//!      on); the second fail their proof (it binds the sender's address). Nobody
//!      new joins.
//!
//!    Both boards and the sequencer then deliver the same honest messages, each
//!    once, in the same order, and nothing forged.
//!
//! 6. **The directory group's owner capability** (a third pool,
//!    `the_directory_replicas_hold_no_group_owner_capability`): what replica 0
//!    prints and the other replicas join with carries the receive and send rights
//!    only, never the owner's (whose check is the group's secret).

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

/// The directory's replicas join their group with a capability restricted to
/// receiving and sending, and that is all that leaves replica 0 (its console,
/// which `up` shows, and the capability the others and the boot service get):
/// the owner capability would give its holder the group's secret, hence its key,
/// without ever joining.
#[test]
fn the_directory_replicas_hold_no_group_owner_capability() {
    use directory_server::REPLICA_GROUP_RIGHTS;
    use pool_system::directory::{DirectoryService, replica_boards};
    let (pool, bullet) = pool_with_bullet();
    let service =
        DirectoryService::start(&pool, bullet, &replica_boards(3)).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(service.group.rights, REPLICA_GROUP_RIGHTS, "what the replicas join with");
    assert!(!service.group.rights.is_owner());
    let console = pool.boards()[0].console_text();
    let printed: Vec<Capability> = console
        .lines()
        .filter_map(|line| line.split("directory-server 0: group ").nth(1))
        .map(|text| text.trim().parse().expect("a capability"))
        .collect();
    assert!(!printed.is_empty(), "replica 0 printed no group capability:\n{console}");
    for capability in printed {
        assert_eq!(capability, service.group, "replica 0 printed another capability than the replicas got");
    }
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

// ------------------------------------------------------------------ group attacks

/// How many lines each `group-log` member and the host send.
const GROUP_LINES: u64 = 40;
/// Members of the attacked group: the host (sequencer), the insider, two boards.
const GROUP_MEMBERS: usize = 4;
/// What every forged application message starts with.
const FORGED: &[u8] = b"FORGED";

/// A hostile station that joined the group with a capability holding the
/// receive right only. It joined honestly, so it holds what every member
/// holds (the group's secret, from its welcome, and the group key), and it
/// keeps its member alive so the group counts it in. It also records the
/// join requests it hears on the wire, and sends whatever frames an attack
/// calls for from its own port.
struct Insider {
    port: HostPort,
    member: sequencer::GroupMember,
    epoch: Instant,
    me: u64,
    /// Join requests of other stations, as whole frames.
    join_requests: Vec<Vec<u8>>,
    /// Application messages it delivered.
    delivered: u64,
    /// The members that said bye.
    byes: u64,
}

impl Insider {
    fn join(port: HostPort, capability: &Capability) -> Insider {
        let me = sequencer::ethernet::member_address(port.mac().0, 1);
        let config = sequencer::Config::default();
        let member = sequencer::GroupMember::join_group_with_nonce(config, capability, me, 0, 0x1a51de);
        let mut insider = Insider {
            port,
            member,
            epoch: Instant::now(),
            me,
            join_requests: Vec::new(),
            delivered: 0,
            byes: 0,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !insider.member.is_member() {
            assert!(Instant::now() < deadline, "the insider could not join with a receive-only capability");
            insider.step(Duration::from_millis(5));
        }
        insider
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    /// Moves frames and time for at most `wait`, as `GroupClient` does.
    fn step(&mut self, wait: Duration) {
        while let Some(t) = self.member.poll_transmit() {
            let frame = sequencer::ethernet::encode_frame(self.port.mac().0, self.me, t.dest, &t.bytes);
            self.port.send_frame(&frame).unwrap();
        }
        if let Some(frame) = self.port.recv_any_timeout(wait)
            && let Some((to, from, packet)) = sequencer::ethernet::parse_frame(&frame)
        {
            let is_join_request = sequencer::wire::Packet::decode(packet)
                .is_ok_and(|p| matches!(p.body, sequencer::wire::Body::JoinReq { .. }));
            if is_join_request && from != self.me {
                self.join_requests.push(frame.clone());
            }
            if to == 0 || to == self.me {
                let now = self.now();
                let _ = self.member.handle_packet(now, from, packet);
            }
        }
        let now = self.now();
        self.member.handle_timeout(now);
        while let Some((message, _)) = self.member.receive() {
            self.delivered += 1;
            self.byes += u64::from(message.payload == b"bye");
        }
        while self.member.poll_event().is_some() {}
    }

    fn run_for(&mut self, time: Duration) {
        let until = Instant::now() + time;
        while Instant::now() < until {
            self.step(Duration::from_millis(2));
        }
    }

    /// Sends a group packet from its own port, as member address `from`.
    fn send_as(&self, from: u64, dest: sequencer::Dest, packet: &[u8]) {
        let frame = sequencer::ethernet::encode_frame(self.port.mac().0, from, dest, packet);
        self.port.send_frame(&frame).unwrap();
    }
}

/// What the stations outside the order did, for the checks afterwards.
#[derive(Debug, Default)]
struct GroupAttacks {
    /// Packets sealed with a key the group never used (the outsider's):
    /// each one the sequencer must reject at the tag.
    forged_at_the_sequencer: u64,
    /// `Send`s the insider sealed with the group key, under its own member id.
    sends_without_the_right: u64,
    /// Join requests recorded and replayed.
    join_requests_replayed: u64,
    /// The members after the replays had time to work, as (id, address).
    members_after: Vec<(u32, u64)>,
}

/// The attacks on the group, from `insider` (a member with the receive right
/// only) and `outsider` (a station holding no capability for the group).
fn attack_the_group(insider: &mut Insider, outsider: &HostPort) -> GroupAttacks {
    use sequencer::Dest;
    use sequencer::auth::{Key, group_key, seal};
    use sequencer::wire::{Body, Entry, EntryBody, Header, Item, Packet};

    let mut report = GroupAttacks::default();
    let info = insider.member.get_info();
    let group = insider.member.owner_capability();
    let port = group.port.to_u64();
    // What a member learns in its welcome: the group key.
    let key = group_key(port, &group.check);
    let guessed = Key([0x42; 32]);
    let sequencer_address =
        info.members.iter().find(|(id, _)| *id == info.sequencer_id).map(|(_, a)| *a).expect("a sequencer");
    let boards: Vec<u64> = info
        .members
        .iter()
        .map(|(_, a)| *a)
        .filter(|a| *a != sequencer_address && *a != insider.me)
        .collect();
    let outsider_address = sequencer::ethernet::member_address(outsider.mac().0, 1);
    let send_outside = |from: u64, dest: Dest, packet: &[u8]| {
        let frame = sequencer::ethernet::encode_frame(outsider.mac().0, from, dest, packet);
        outsider.send_frame(&frame).unwrap();
    };

    // (a) Data as if from the sequencer, for the next sequence numbers and
    // ones far ahead: from the outsider (a guessed key) under the
    // sequencer's address and its own; from the insider (the real group key)
    // under the sequencer's address, and under its own claiming the
    // sequencer's member id.
    for round in 0..3u32 {
        let next = insider.member.get_info().next_seq;
        for seq in [next, next + 1, next + 3, next + 40] {
            let entry = Entry {
                sender: info.sequencer_id,
                msg_id: 10_000 + round,
                body: EntryBody::App([FORGED, b" data"].concat()),
            };
            let body =
                Body::Data { seq, accepted: seq + 1, stable: 0, flags: 0, items: vec![Item::Entry(entry)] };
            for dest in std::iter::once(Dest::Group).chain(boards.iter().map(|b| Dest::Member(*b))) {
                let to = match dest {
                    Dest::Group => 0,
                    Dest::Member(a) => a,
                };
                let header = Header { port, inc: info.incarnation, src: info.sequencer_id, to };
                let packet = Packet { header, body: body.clone() };
                send_outside(sequencer_address, dest, &seal(&guessed, sequencer_address, &packet));
                send_outside(outsider_address, dest, &seal(&guessed, outsider_address, &packet));
                if dest == Dest::Group {
                    // The sequencer hears the broadcasts; under its own
                    // address it ignores them, under the outsider's it
                    // rejects them at the tag.
                    report.forged_at_the_sequencer += 1;
                }
                insider.send_as(sequencer_address, dest, &seal(&key, sequencer_address, &packet));
                insider.send_as(insider.me, dest, &seal(&key, insider.me, &packet));
            }
        }
        insider.run_for(Duration::from_millis(100));
    }

    // (b) Sends into the order: the insider's, sealed with the group key
    // under its own member id (its library would refuse; the sequencer must);
    // the outsider's, with no key, under its own address and the insider's.
    let me = info.member_id;
    for k in 0..3u32 {
        let ack = insider.member.get_info().expected_seq;
        let send =
            || Body::Send { msg_id: 20_000 + k, ack, leave: false, payload: [FORGED, b" send"].concat() };
        let header = |src: u32| Header { port, inc: info.incarnation, src, to: sequencer_address };
        let dest = Dest::Member(sequencer_address);
        insider.send_as(
            insider.me,
            dest,
            &seal(&key, insider.me, &Packet { header: header(me), body: send() }),
        );
        report.sends_without_the_right += 1;
        let from = outsider_address;
        send_outside(
            from,
            dest,
            &seal(&guessed, from, &Packet { header: header(sequencer::NO_MEMBER), body: send() }),
        );
        report.forged_at_the_sequencer += 1;
        // As the insider, from the outsider's port: dropped before the tag (the
        // insider's address is not on the outsider's MAC).
        let from = insider.me;
        send_outside(from, dest, &seal(&guessed, from, &Packet { header: header(me), body: send() }));
        insider.run_for(Duration::from_millis(100));
    }

    // (c) The boards' join requests, recorded on the wire, sent again from
    // the outsider's port (the switch drops any other source MAC): as they
    // were, and under the outsider's own member address.
    assert!(!insider.join_requests.is_empty(), "the insider heard no join request");
    for frame in insider.join_requests.clone() {
        let mut replay = frame.clone();
        replay[6..12].copy_from_slice(&outsider.mac().0);
        outsider.send_frame(&replay).unwrap();
        replay[22..30].copy_from_slice(&outsider_address.to_be_bytes());
        outsider.send_frame(&replay).unwrap();
        report.join_requests_replayed += 1;
        insider.run_for(Duration::from_millis(20));
    }
    insider.run_for(Duration::from_secs(2));
    report.members_after = insider.member.get_info().members;
    report
}

/// The hash `group-log` reports as `order` for messages delivered in this order.
fn group_log_order_hash(order: &[(u64, u32, String)]) -> u64 {
    let mut hash = amoeba_ipc::interfaces::OrderHash::default();
    for (sequence, sender, text) in order {
        hash.add(*sequence, *sender, text.as_bytes());
    }
    hash.value()
}

#[test]
fn a_raw_host_port_attacks_a_live_group() {
    use amoeba_abi::Rights;
    use host_station::group_client::GroupClient;
    use sequencer::{RIGHT_RECEIVE, RIGHT_SEND};

    let pool = pool_tests::boot(2);
    // The host is the group's sequencer, so its counters can be read.
    let host = pool.new_host_port().unwrap();
    let mut group = GroupClient::create(
        host,
        GetPort(Port([0x6a, 0x05, 0x71, 0x1e, 0, 1])),
        sequencer::Config::default(),
    )
    .unwrap();
    let owner = group.capability();
    let host_address = group.address();
    let stop = Arc::new(AtomicBool::new(false));
    let sequencer_thread = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            group.wait_for_members(GROUP_MEMBERS, Duration::from_secs(120)).unwrap();
            let me = group.view().0;
            let mut delivered = Vec::new();
            let mut receive_all = |group: &mut GroupClient, wait: Duration| {
                while let Some(message) = group.receive(wait).unwrap() {
                    let text = String::from_utf8_lossy(&message.payload).into_owned();
                    delivered.push((message.seq, message.sender, text));
                }
            };
            for line in 0..GROUP_LINES {
                group.send(format!("line {line} from member {me}").as_bytes()).unwrap();
                receive_all(&mut group, Duration::from_millis(30));
            }
            group.send(b"bye").unwrap();
            while !stop.load(Ordering::Relaxed) {
                receive_all(&mut group, Duration::from_millis(20));
            }
            (delivered, group.rejected_packets(), group.refused_sends())
        })
    };

    // The insider joins first, so it hears the boards' join requests.
    let receive_only = owner.restrict(Rights(RIGHT_RECEIVE.0)).unwrap();
    let attacker = {
        let (port, outsider) = (pool.new_host_port().unwrap(), pool.new_host_port().unwrap());
        let (joined_tx, joined) = std::sync::mpsc::channel();
        let stop = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut insider = Insider::join(port, &receive_only);
            joined_tx.send(insider.me).unwrap();
            // Until the group talks: every member in, and messages flowing.
            let deadline = Instant::now() + Duration::from_secs(120);
            while insider.member.get_info().members.len() < GROUP_MEMBERS || insider.delivered < 10 {
                assert!(Instant::now() < deadline, "the group did not get going");
                insider.step(Duration::from_millis(2));
            }
            let report = attack_the_group(&mut insider, &outsider);
            // It stays until the others said bye, then leaves, so the
            // `group-log` members, which wait for every member, can end.
            while insider.byes < 3 && !stop.load(Ordering::Relaxed) {
                insider.step(Duration::from_millis(2));
            }
            let now = insider.now();
            insider.member.leave_group(now).unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            while !insider.member.is_gone() && Instant::now() < deadline {
                insider.step(Duration::from_millis(2));
            }
            report
        });
        let insider_address = joined.recv_timeout(Duration::from_secs(90)).expect("the insider joined");
        (thread, insider_address)
    };
    let (attacker, insider_address) = attacker;

    let member = owner.restrict(Rights(RIGHT_RECEIVE.0 | RIGHT_SEND.0)).unwrap();
    let argument = (GROUP_LINES << 32) | ((GROUP_MEMBERS as u64) << 48) | (2 << 56);
    let logs: Vec<_> = (0..2)
        .map(|board| {
            let exec =
                Exec::new("group-log", &["group-log"]).with_argument(argument).with_capability("ARG", member);
            pool.start_told(board, &exec)
        })
        .collect();
    for (board, log) in logs.iter().enumerate() {
        let status = pool.wait_process(&log.started, Duration::from_secs(240));
        assert_eq!(status, Some(0), "group-log on board {board}:\n{}", pool.boards()[board].console_text());
    }
    stop.store(true, Ordering::Relaxed);
    let report = attacker.join().unwrap();
    let (host_order, rejected, refused) = sequencer_thread.join().unwrap();
    eprintln!("{report:?}, rejected {rejected}, refused {refused}");

    // One order everywhere, the honest messages only, each once: the
    // sequencer's own order holds no forged message and grows, and each
    // board's member delivered as many messages, in an order with the same hash.
    let honest = 3 * (GROUP_LINES as usize + 1);
    assert!(host_order.iter().all(|(_, _, text)| !text.starts_with("FORGED")), "{host_order:?}");
    assert_eq!(host_order.len(), honest, "the sequencer delivered {host_order:?}");
    assert!(host_order.windows(2).all(|w| w[0].0 < w[1].0), "the sequence numbers must grow: {host_order:?}");
    for (board, log) in logs.iter().enumerate() {
        let console = || pool.boards()[board].console_text();
        assert_eq!(log.unsigned("delivered"), honest as u64, "board {board}:\n{}", console());
        assert_eq!(
            log.unsigned("order"),
            group_log_order_hash(&host_order),
            "board {board}'s order differs from the sequencer's {host_order:?}:\n{}",
            console()
        );
    }
    // The sequencer counted what it refused: every packet sealed without the
    // group's key at the tag, every send without the right by the rule.
    assert!(rejected >= report.forged_at_the_sequencer, "{rejected} rejected, {report:?}");
    assert_eq!(refused, report.sends_without_the_right, "the sequencer's refused sends");
    // The replayed join requests let nobody in: the members are the four
    // that joined, none at the outsider's address.
    assert!(report.join_requests_replayed >= 2, "{report:?}");
    let addresses: Vec<u64> = report.members_after.iter().map(|(_, a)| *a).collect();
    assert_eq!(addresses.len(), GROUP_MEMBERS, "{report:?}");
    assert!(addresses.contains(&host_address) && addresses.contains(&insider_address), "{report:?}");
}

//! Targeted scenarios on a small deterministic network.

use std::collections::{BTreeMap, VecDeque};

use amoeba_abi::{GetPort, Header, Port, Status};
use flip::wire::{
    FlipHeader, Frame, HERE_IS_PROOF_LEN, HereIsProof, LOCATE_NONCE_LEN, Packet, PacketType, here_is_message,
};
use flip::{Addr, Config, Endpoint, Event, Mac, ReqId, TransId};

type TransResult = Result<(Header, Vec<u8>), Status>;

const MS: u64 = 1000;
const SEC: u64 = 1_000_000;

fn mac(i: usize) -> Mac {
    Mac([2, 0, 0, 0, 0, i as u8 + 1])
}

/// How a node's server application answers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum App {
    /// Reply immediately: the request buffer, or `reply_size` bytes if set.
    Echo,
    /// Keep requests (the test answers them).
    Hold,
}

struct Net {
    eps: Vec<Endpoint>,
    up: Vec<bool>,
    app: Vec<App>,
    now: u64,
    wire: VecDeque<(u64, usize, Vec<u8>)>,
    delay: u64,
    loss_every: u64, // drop every n-th frame (0 = none)
    dup_every: u64,
    counter: u64,
    reply_size: Option<usize>,
    /// (node, request buffer) per execution.
    executed: Vec<(usize, Vec<u8>)>,
    held: Vec<(usize, ReqId, Vec<u8>)>,
    done: BTreeMap<(usize, TransId), (u64, TransResult)>,
    cfg: Config,
}

impl Net {
    fn new(n: usize, cfg: Config) -> Net {
        Net {
            eps: (0..n).map(|i| Endpoint::new(mac(i), 1, cfg.clone())).collect(),
            up: vec![true; n],
            app: vec![App::Echo; n],
            now: 0,
            wire: VecDeque::new(),
            delay: 100,
            loss_every: 0,
            dup_every: 0,
            counter: 0,
            reply_size: None,
            executed: Vec::new(),
            held: Vec::new(),
            done: BTreeMap::new(),
            cfg,
        }
    }

    fn reboot(&mut self, i: usize) {
        let inc = self.eps[i].incarnation() + 1;
        self.eps[i] = Endpoint::new(mac(i), inc, self.cfg.clone());
        self.up[i] = true;
    }

    fn trans(&mut self, i: usize, port: Port, buf: &[u8]) -> TransId {
        let h = Header { port, command: 77, ..Header::default() };
        let now = self.now;
        let id = self.eps[i].start_trans(now, &h, buf);
        self.pump(i);
        id
    }

    fn pump(&mut self, i: usize) {
        loop {
            while let Some(t) = self.eps[i].poll_transmit() {
                if !self.up[i] {
                    continue;
                }
                for to in 0..self.eps.len() {
                    if to == i || !(t.dst.is_broadcast() || t.dst == mac(to)) {
                        continue;
                    }
                    self.counter += 1;
                    if self.loss_every > 0 && self.counter.is_multiple_of(self.loss_every) {
                        continue;
                    }
                    let dup = self.dup_every > 0 && self.counter.is_multiple_of(self.dup_every);
                    for _ in 0..if dup { 2 } else { 1 } {
                        self.wire.push_back((self.now + self.delay, to, t.frame.clone()));
                    }
                }
            }
            let Some(ev) = self.eps[i].poll_event() else {
                break;
            };
            match ev {
                Event::RequestArrived { req, buf, .. } => {
                    self.executed.push((i, buf.clone()));
                    match self.app[i] {
                        App::Echo => {
                            let reply = match self.reply_size {
                                Some(n) => (0..n).map(|k| (k % 251) as u8).collect(),
                                None => buf,
                            };
                            let now = self.now;
                            self.eps[i].put_reply(now, req, &Header::reply(Status::Ok), &reply).unwrap();
                        }
                        App::Hold => self.held.push((i, req, buf)),
                    }
                }
                Event::TransDone { id, result } => {
                    self.done.insert((i, id), (self.now, result));
                }
            }
        }
    }

    /// Run until `until` (absolute) or until nothing is left to do.
    fn run_until(&mut self, until: u64) {
        loop {
            let next_wire = self.wire.front().map(|w| w.0);
            let next_timer =
                (0..self.eps.len()).filter(|&i| self.up[i]).filter_map(|i| self.eps[i].next_deadline()).min();
            let next = match (next_wire, next_timer) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) | (None, Some(a)) => a,
                (None, None) => break,
            };
            if next > until {
                break;
            }
            self.now = self.now.max(next);
            if next_wire == Some(next) {
                let (_, to, frame) = self.wire.pop_front().unwrap();
                if self.up[to] {
                    let now = self.now;
                    self.eps[to].handle_frame(now, &frame);
                    self.pump(to);
                }
            } else {
                for i in 0..self.eps.len() {
                    if self.up[i] && self.eps[i].next_deadline().is_some_and(|d| d <= self.now) {
                        let now = self.now;
                        self.eps[i].handle_timeout(now);
                        self.pump(i);
                    }
                }
            }
        }
        self.now = self.now.max(until);
    }

    fn result(&self, i: usize, id: TransId) -> Option<&TransResult> {
        self.done.get(&(i, id)).map(|x| &x.1)
    }
}

fn service(n: u8) -> GetPort {
    GetPort(Port([n, 1, 2, 3, 4, 5]))
}

fn cfg() -> Config {
    Config {
        rto_initial: 10 * MS,
        rto_max: 80 * MS,
        max_retries: 5,
        locate_interval: 10 * MS,
        locate_attempts: 4,
        ..Config::default()
    }
}

#[test]
fn round_trip_and_cache() {
    let mut net = Net::new(2, cfg());
    let p = net.eps[1].register_server(&service(1));
    let a = net.trans(0, p, b"hello");
    net.run_until(SEC);
    assert_eq!(net.result(0, a).unwrap().as_ref().unwrap().1, b"hello");
    assert_eq!(net.eps[0].cached_servers(&p).len(), 1);
    let locates = net.eps[0].stats().locates;
    let b = net.trans(0, p, b"again");
    net.run_until(2 * SEC);
    assert_eq!(net.result(0, b).unwrap().as_ref().unwrap().1, b"again");
    assert_eq!(net.eps[0].stats().locates, locates, "second trans used the cache");
    assert_eq!(net.executed.len(), 2);
    assert_eq!(net.eps[0].open_transactions(), 0);
}

#[test]
fn local_rpc_takes_short_path() {
    let mut net = Net::new(1, cfg());
    let p = net.eps[0].register_server(&service(1));
    let a = net.trans(0, p, b"local");
    assert_eq!(net.eps[0].stats().frames_out, 0);
    assert_eq!(net.result(0, a).unwrap().as_ref().unwrap().1, b"local");
}

#[test]
fn one_mib_both_ways_over_lossy_network() {
    let mut net = Net::new(2, cfg());
    net.loss_every = 7; // ~14% loss
    net.dup_every = 11;
    net.reply_size = Some(1 << 20);
    let p = net.eps[1].register_server(&service(1));
    let req: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 253) as u8).collect();
    let a = net.trans(0, p, &req);
    net.run_until(60 * SEC);
    let (h, buf) = net.result(0, a).unwrap().as_ref().unwrap();
    assert_eq!(h.status(), Status::Ok);
    assert_eq!(buf.len(), 1 << 20);
    assert!(buf.iter().enumerate().all(|(k, &b)| b == (k % 251) as u8));
    assert_eq!(net.executed.len(), 1);
    assert_eq!(net.executed[0].1, req);
}

#[test]
fn dead_server_fails_within_bound() {
    let c = cfg();
    let mut net = Net::new(2, c.clone());
    let p = net.eps[1].register_server(&service(1));
    let a = net.trans(0, p, b"x");
    net.run_until(SEC);
    assert!(net.result(0, a).unwrap().is_ok());
    net.up[1] = false; // crash, stays down
    let start = net.now;
    let b = net.trans(0, p, b"y");
    net.run_until(start + 10 * SEC);
    let (t, r) = net.done.get(&(0, b)).unwrap();
    assert_eq!(r.as_ref().unwrap_err(), &Status::RpcFailure);
    // Back-off: 10+20+40+80+80+80 ms.
    let bound: u64 = (0..=c.max_retries).map(|k| (c.rto_initial << k).min(c.rto_max)).sum();
    assert!(t - start <= bound + MS, "took {} > {bound}", t - start);
    // The dead server left the cache: the next trans locates and finds nobody.
    assert!(net.eps[0].cached_servers(&p).is_empty());
    let s = net.now;
    let d = net.trans(0, p, b"z");
    net.run_until(s + 10 * SEC);
    let (t, r) = net.done.get(&(0, d)).unwrap();
    assert_eq!(r.as_ref().unwrap_err(), &Status::RpcNotFound);
    assert!(t - s <= 10 * MS + 20 * MS + 40 * MS + 80 * MS + MS);
}

#[test]
fn nobody_serves_the_port() {
    let mut net = Net::new(3, cfg());
    let a = net.trans(0, service(9).put_port(), b"x");
    net.run_until(10 * SEC);
    assert_eq!(net.result(0, a).unwrap().as_ref().unwrap_err(), &Status::RpcNotFound);
    assert!(net.executed.is_empty());
}

#[test]
fn server_reboot_mid_request_never_runs_twice() {
    let mut net = Net::new(2, cfg());
    net.app[1] = App::Hold;
    let g = service(1);
    let p = net.eps[1].register_server(&g);
    let a = net.trans(0, p, b"once");
    net.run_until(5 * MS);
    assert_eq!(net.executed.len(), 1); // running, no reply yet
    // The server's board reboots (state lost) and the server registers again.
    net.reboot(1);
    net.eps[1].register_server(&g);
    net.app[1] = App::Echo;
    net.run_until(5 * SEC);
    assert_eq!(net.result(0, a).unwrap().as_ref().unwrap_err(), &Status::ServerRestarted);
    assert_eq!(net.executed.len(), 1, "not re-executed after the reboot");
    // The cache learned the new incarnation: the next trans works.
    let b = net.trans(0, p, b"next");
    net.run_until(6 * SEC);
    assert!(net.result(0, b).unwrap().is_ok());
    assert_eq!(net.executed.len(), 2);
}

#[test]
fn client_reboot_reuses_ids_safely() {
    let mut net = Net::new(2, cfg());
    let p = net.eps[1].register_server(&service(1));
    let a = net.trans(0, p, b"first life");
    net.run_until(SEC);
    assert!(net.result(0, a).unwrap().is_ok());
    net.reboot(0);
    net.done.clear();
    let b = net.trans(0, p, b"second life");
    assert_eq!(a, b, "transaction ids restart after a reboot");
    net.run_until(2 * SEC);
    assert_eq!(net.result(0, b).unwrap().as_ref().unwrap().1, b"second life");
    assert_eq!(net.executed.len(), 2);
}

#[test]
fn server_moves_and_locate_follows() {
    let mut net = Net::new(3, cfg());
    let g = service(1);
    let p = net.eps[1].register_server(&g);
    let a = net.trans(0, p, b"at 1");
    net.run_until(SEC);
    assert!(net.result(0, a).unwrap().is_ok());
    assert!(net.eps[1].unregister_server(&g));
    net.eps[2].register_server(&g);
    let b = net.trans(0, p, b"at 2");
    net.run_until(2 * SEC);
    assert!(net.result(0, b).unwrap().is_ok());
    assert_eq!(net.executed.last().unwrap().0, 2);
    assert_eq!(net.eps[0].cached_servers(&p)[0].0, mac(2));
    // Move back: a delayed copy of "at 2" must still never run on node 1.
    net.eps[1].register_server(&g);
    assert!(net.eps[2].unregister_server(&g));
    let c = net.trans(0, p, b"back at 1");
    net.run_until(3 * SEC);
    assert!(net.result(0, c).unwrap().is_ok());
    assert_eq!(net.executed.last().unwrap().0, 1);
    assert_eq!(net.executed.len(), 3);
}

#[test]
fn not_here_tombstone_blocks_late_duplicates() {
    // Node 1 refuses (not registered), the client goes to node 2; a late copy of the
    // request reaching node 1 after it registers must not run.
    let mut net = Net::new(3, cfg());
    let g = service(1);
    let p = net.eps[1].register_server(&g);
    let a = net.trans(0, p, b"warm");
    net.run_until(SEC);
    assert!(net.result(0, a).unwrap().is_ok());
    net.eps[1].unregister_server(&g);
    net.eps[2].register_server(&g);
    let b = net.trans(0, p, b"tricky");
    // Capture the frame going to node 1 and replay it later.
    let copy: Vec<_> = net.wire.iter().filter(|w| w.1 == 1).cloned().collect();
    assert_eq!(copy.len(), 1);
    net.run_until(2 * SEC);
    assert!(net.result(0, b).unwrap().is_ok());
    net.eps[1].register_server(&g);
    let now = net.now;
    net.eps[1].handle_frame(now, &copy[0].2);
    net.pump(1);
    net.run_until(3 * SEC);
    let runs = net.executed.iter().filter(|e| e.1 == b"tricky").count();
    assert_eq!(runs, 1);
}

#[test]
fn a_server_restarted_in_place_is_found_by_the_same_client() {
    // The server process on node 1 ends (its port unregistered) and a new one
    // registers the same get-port on the same node a moment after the client's
    // next request got there: the client's NOT_HERE must not keep it from the new
    // server, and the request it refused must still never run there.
    let mut net = Net::new(2, cfg());
    let g = service(1);
    let p = net.eps[1].register_server(&g);
    let a = net.trans(0, p, b"before");
    net.run_until(SEC);
    assert!(net.result(0, a).unwrap().is_ok());
    assert!(net.eps[1].unregister_server(&g));
    let b = net.trans(0, p, b"after");
    let refused: Vec<_> = net.wire.iter().filter(|w| w.1 == 1).cloned().collect();
    assert_eq!(refused.len(), 1);
    // The request reaches node 1 before the new server registers there.
    net.run_until(SEC + net.delay);
    net.eps[1].register_server(&g);
    net.run_until(2 * SEC);
    assert_eq!(net.result(0, b).unwrap().as_ref().map(|r| r.1.clone()), Ok(b"after".to_vec()));
    // A late copy of the refused request still does not run.
    let now = net.now;
    net.eps[1].handle_frame(now, &refused[0].2);
    net.pump(1);
    net.run_until(3 * SEC);
    let runs = net.executed.iter().filter(|e| e.1 == b"after").count();
    assert_eq!(runs, 1);
    assert_eq!(net.eps[0].open_transactions(), 0);
}

#[test]
fn duplicates_are_answered_from_the_stored_reply() {
    let mut net = Net::new(2, cfg());
    net.dup_every = 1; // every frame twice
    let p = net.eps[1].register_server(&service(1));
    for k in 0..20u8 {
        let a = net.trans(0, p, &[k]);
        let t = net.now + SEC;
        net.run_until(t);
        assert!(net.result(0, a).unwrap().is_ok());
    }
    assert_eq!(net.executed.len(), 20);
    // A late retransmission of a finished request is answered from the stored reply
    // (until the client's acknowledgement frees it), never executed again.
    net.dup_every = 0;
    let a = net.trans(0, p, b"late copy");
    let copy = net.wire.back().unwrap().clone();
    net.up[0] = false; // the client hears nothing: no ack for the reply
    net.run_until(net.now + 5 * MS);
    assert_eq!(net.executed.len(), 21);
    let now = net.now + 100 * MS;
    net.now = now;
    let before = net.eps[1].stats().replays;
    net.eps[1].handle_frame(now, &copy.2);
    net.pump(1);
    assert_eq!(net.eps[1].stats().replays, before + 1);
    net.up[0] = true;
    let t = net.now + SEC;
    net.run_until(t);
    assert!(net.result(0, a).unwrap().is_ok());
    assert_eq!(net.executed.len(), 21);
}

#[test]
fn several_servers_share_the_load() {
    let mut net = Net::new(4, cfg());
    let g = service(1);
    let p = net.eps[1].register_server(&g);
    net.eps[2].register_server(&g);
    net.eps[3].register_server(&g);
    // The first trans locates; give all HERE_IS time to arrive.
    let a = net.trans(0, p, b"0");
    net.run_until(SEC);
    assert!(net.result(0, a).unwrap().is_ok());
    assert_eq!(net.eps[0].cached_servers(&p).len(), 3);
    for k in 0..30u8 {
        let a = net.trans(0, p, &[k]);
        let t = net.now + SEC;
        net.run_until(t);
        assert!(net.result(0, a).unwrap().is_ok());
    }
    for n in 1..4 {
        let c = net.executed.iter().filter(|e| e.0 == n).count();
        assert!(c >= 9, "node {n} served {c}");
    }
}

#[test]
fn long_request_stays_alive_and_max_trans_time_bounds_it() {
    let mut net = Net::new(2, cfg());
    net.app[1] = App::Hold;
    let p = net.eps[1].register_server(&service(1));
    let a = net.trans(0, p, b"slow");
    net.run_until(5 * SEC); // way past the dead-server bound
    assert!(net.result(0, a).is_none(), "server is alive: still waiting");
    let (_, req, _) = net.held.pop().unwrap();
    let now = net.now;
    net.eps[1].put_reply(now, req, &Header::reply(Status::Ok), b"finally").unwrap();
    net.pump(1);
    net.run_until(6 * SEC);
    assert_eq!(net.result(0, a).unwrap().as_ref().unwrap().1, b"finally");
    assert_eq!(
        net.eps[1].put_reply(now, req, &Header::reply(Status::Ok), b""),
        Err(flip::ReplyError::NoSuchRequest)
    );

    let mut c = cfg();
    c.max_trans_time = Some(SEC);
    let mut net = Net::new(2, c);
    net.app[1] = App::Hold;
    let p = net.eps[1].register_server(&service(1));
    let a = net.trans(0, p, b"slow");
    net.run_until(5 * SEC);
    let (t, r) = net.done.get(&(0, a)).unwrap();
    assert_eq!(r.as_ref().unwrap_err(), &Status::RpcFailure);
    assert_eq!(*t, SEC);
}

#[test]
fn abort_and_errors() {
    let mut net = Net::new(2, cfg());
    net.app[1] = App::Hold;
    let p = net.eps[1].register_server(&service(1));
    let a = net.trans(0, p, b"doomed");
    net.run_until(SEC);
    let (_, req, _) = net.held.pop().unwrap();
    let now = net.now;
    net.eps[1].abort_request(now, req, Status::NotNow).unwrap();
    net.pump(1);
    net.run_until(2 * SEC);
    assert_eq!(net.result(0, a).unwrap().as_ref().unwrap_err(), &Status::NotNow);

    // Reply too large → the client gets RpcBadAddress.
    let b = net.trans(0, p, b"big reply please");
    net.run_until(3 * SEC);
    let (_, req, _) = net.held.pop().unwrap();
    let now = net.now;
    let huge = vec![0u8; (1 << 20) + 1];
    assert_eq!(
        net.eps[1].put_reply(now, req, &Header::reply(Status::Ok), &huge),
        Err(flip::ReplyError::TooLarge)
    );
    net.pump(1);
    net.run_until(4 * SEC);
    assert_eq!(net.result(0, b).unwrap().as_ref().unwrap_err(), &Status::RpcBadAddress);

    // Client-side argument errors come at once.
    let c = net.trans(0, p, &huge);
    assert_eq!(net.result(0, c).unwrap().as_ref().unwrap_err(), &Status::RpcBadAddress);
    let d = net.trans(0, Port::NULL, b"");
    assert_eq!(net.result(0, d).unwrap().as_ref().unwrap_err(), &Status::RpcBadPort);

    // Abandoned transaction: no event.
    let e = net.trans(0, p, b"never mind");
    assert!(net.eps[0].abort_trans(e));
    assert!(!net.eps[0].abort_trans(e));
    net.run_until(5 * SEC);
    assert!(net.result(0, e).is_none());
}

#[test]
fn reassembly_budget_is_enforced() {
    let mut c = cfg();
    c.max_reassembly_bytes = 64 * 1024;
    let mut net = Net::new(2, c);
    let p = net.eps[1].register_server(&service(1));
    // A request the server has no room to receive is refused with NoSpace at
    // once (not left to time out), and never runs.
    let a = net.trans(0, p, &vec![1u8; 100_000]);
    net.run_until(SEC);
    assert_eq!(net.result(0, a).unwrap().as_ref().unwrap_err(), &Status::NoSpace);
    net.run_until(20 * SEC);
    assert!(net.executed.is_empty());
    let b = net.trans(0, p, &vec![1u8; 50_000]);
    net.run_until(40 * SEC);
    assert!(net.result(0, b).unwrap().is_ok());
}

#[test]
fn garbage_is_ignored() {
    let mut net = Net::new(2, cfg());
    net.eps[1].register_server(&service(1));
    let mut x = 0x1234_5678_u64;
    for len in 0..2000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut f: Vec<u8> = (0..len % 1600).map(|k| (x >> (k % 56)) as u8).collect();
        if f.len() > 14 {
            f[12] = 0x88;
            f[13] = 0xB6;
        }
        net.eps[1].handle_frame(len as u64, &f);
    }
    assert!(net.eps[1].poll_transmit().is_none());
    assert!(net.eps[1].poll_event().is_none());
    assert!(net.eps[1].stats().frames_bad > 1900);
}

/// The request frames of the last transaction node `from` started, as an adversary
/// on the wire records them (everything queued for `to`).
fn record_frames(net: &Net, to: usize) -> Vec<Vec<u8>> {
    net.wire.iter().filter(|w| w.1 == to).map(|w| w.2.clone()).collect()
}

/// Replay recorded frames to node `to`, verbatim, and let the network settle.
fn replay(net: &mut Net, to: usize, frames: &[Vec<u8>]) {
    let now = net.now;
    for f in frames {
        net.eps[to].handle_frame(now, f);
    }
    net.pump(to);
    let t = net.now + SEC;
    net.run_until(t);
}

#[test]
fn replayed_request_after_ttl_never_runs_twice() {
    // Issue 21: a server that forgot an idle client must not run a replay of one of
    // its old requests. The adversary records a request on the wire and replays it
    // after the client's time-to-live.
    let c = Config { client_ttl: 2 * SEC, ..cfg() };
    let mut net = Net::new(2, c);
    let p = net.eps[1].register_server(&service(1));
    let warm = net.trans(0, p, b"warm up the cache");
    net.run_until(SEC);
    assert!(net.result(0, warm).unwrap().is_ok());
    let a = net.trans(0, p, b"pay 100 once");
    let recorded = record_frames(&net, 1);
    assert!(!recorded.is_empty());
    net.run_until(2 * SEC);
    assert!(net.result(0, a).unwrap().is_ok());
    // Long after the client's time-to-live, several cleanup passes later.
    net.run_until(10 * SEC);
    replay(&mut net, 1, &recorded);
    let runs = net.executed.iter().filter(|e| e.1 == b"pay 100 once").count();
    assert_eq!(runs, 1, "a replayed request ran again after the server forgot its client");
    // The honest client still works: the server remembers it in a few bytes.
    let b = net.trans(0, p, b"next");
    let t = net.now + 5 * SEC;
    net.run_until(t);
    assert!(net.result(0, b).unwrap().is_ok());
    assert!(net.eps[1].stats().refused >= 1);
}

#[test]
fn replayed_request_after_eviction_never_runs_twice() {
    // The same after the client was evicted to make room for others (a server
    // remembers at most `max_clients`).
    let c = Config { max_clients: 3, ..cfg() };
    let mut net = Net::new(8, c);
    let p = net.eps[1].register_server(&service(1));
    let warm = net.trans(0, p, b"warm up the cache");
    net.run_until(SEC);
    assert!(net.result(0, warm).unwrap().is_ok());
    let a = net.trans(0, p, b"pay 100 once");
    let recorded = record_frames(&net, 1);
    net.run_until(2 * SEC);
    assert!(net.result(0, a).unwrap().is_ok());
    // Six other clients push node 0 out of the server's memory.
    for k in 2..8 {
        let x = net.trans(k, p, &[k as u8]);
        let t = net.now + SEC;
        net.run_until(t);
        assert!(net.result(k, x).unwrap().is_ok());
    }
    replay(&mut net, 1, &recorded);
    let runs = net.executed.iter().filter(|e| e.1 == b"pay 100 once").count();
    assert_eq!(runs, 1, "a replayed request ran again after its client was evicted");
}

#[test]
fn stale_epoch_is_refused_and_the_client_relocates() {
    // A client the server forgot (evicted) still holds the server's old memory epoch.
    // Its next request cannot be judged: refused (ServerRestarted), never run; the
    // client then locates again, learns the new epoch, and gets through.
    let c = Config { max_clients: 2, ..cfg() };
    let mut net = Net::new(5, c);
    let p = net.eps[1].register_server(&service(1));
    let a = net.trans(0, p, b"first");
    net.run_until(SEC);
    assert!(net.result(0, a).unwrap().is_ok());
    let epoch = net.eps[1].server_memory().epoch;
    for k in 2..5 {
        let x = net.trans(k, p, &[k as u8]);
        let t = net.now + SEC;
        net.run_until(t);
        assert!(net.result(k, x).unwrap().is_ok());
    }
    let m = net.eps[1].server_memory();
    assert!(m.epoch > epoch, "forgetting a client that used the epoch moved it on");
    assert!(m.forgotten_epoch >= epoch && m.forgotten_epoch < m.epoch);
    assert!(m.clients <= 2);
    let b = net.trans(0, p, b"second");
    let t = net.now + SEC;
    net.run_until(t);
    assert_eq!(net.result(0, b).unwrap().as_ref().unwrap_err(), &Status::ServerRestarted);
    assert!(net.eps[0].cached_servers(&p).is_empty(), "the refusing server left the cache");
    let c2 = net.trans(0, p, b"third");
    let t = net.now + SEC;
    net.run_until(t);
    assert!(net.result(0, c2).unwrap().is_ok());
    assert_eq!(net.executed.iter().filter(|e| e.1 == b"second").count(), 0);
}

#[test]
fn shed_reply_ends_in_rpc_failure_not_a_second_run() {
    // Stored replies are bounded: a reply the client has not acknowledged can be shed
    // for another's. The client's retransmission then learns that the request ran and
    // its reply is gone, and the request does not run again.
    let c = Config { max_reply_bytes: 12_000, ..cfg() };
    let mut net = Net::new(3, c);
    net.reply_size = Some(8_000);
    let p = net.eps[1].register_server(&service(1));
    for n in [0, 2] {
        let w = net.trans(n, p, b"warm");
        let t = net.now + SEC;
        net.run_until(t);
        assert!(net.result(n, w).unwrap().is_ok());
    }
    let a = net.trans(0, p, b"lose my reply");
    let t = net.now + net.delay + 50;
    net.run_until(t); // the request is at the server, which replied at once
    net.up[0] = false; // the reply does not reach the client
    let t = net.now + 2 * MS;
    net.run_until(t);
    assert_eq!(net.eps[1].server_memory().reply_bytes, 8_000 + amoeba_abi::HEADER_LEN);
    let b = net.trans(2, p, b"another reply");
    let t = net.now + 2 * MS;
    net.run_until(t);
    let m = net.eps[1].server_memory();
    assert!(m.reply_bytes <= 12_000, "{m:?}");
    assert_eq!(net.eps[1].stats().replies_lost, 1);
    net.up[0] = true;
    let t = net.now + 5 * SEC;
    net.run_until(t);
    assert!(net.result(2, b).unwrap().is_ok());
    assert_eq!(net.result(0, a).unwrap().as_ref().unwrap_err(), &Status::RpcFailure);
    assert_eq!(net.executed.iter().filter(|e| e.1 == b"lose my reply").count(), 1);
}

#[test]
fn record_budgets_hold_and_shed_records_refuse_replays() {
    // Records pile up while a client keeps an older transaction open (its low-water
    // mark stays put). Within the budgets, finished records are shed, and a replay of
    // a shed one is refused, not run.
    let c = Config { max_records_per_client: 4, max_records: 6, ..cfg() };
    let mut net = Net::new(4, c);
    let p = net.eps[1].register_server(&service(1));
    net.app[2] = App::Hold;
    let slow = net.eps[2].register_server(&service(2));
    for n in [0, 3] {
        let warm = net.trans(n, p, b"warm up the cache");
        let t = net.now + SEC;
        net.run_until(t);
        assert!(net.result(n, warm).unwrap().is_ok());
        net.trans(n, slow, b"keep the low-water mark down");
    }
    let mut recorded = Vec::new();
    for k in 0..12u8 {
        let n = if k % 3 == 0 { 3 } else { 0 };
        let a = net.trans(n, p, &[b'r', k]);
        if k == 1 {
            recorded = record_frames(&net, 1);
        }
        let t = net.now + SEC;
        net.run_until(t);
        assert!(net.result(n, a).unwrap().is_ok());
        let m = net.eps[1].server_memory();
        assert!(m.records <= 6 && m.most_records_per_client <= 4, "{m:?}");
    }
    assert!(net.eps[1].stats().records_shed >= 6);
    assert!(!recorded.is_empty());
    replay(&mut net, 1, &recorded);
    assert_eq!(net.executed.iter().filter(|e| e.1 == [b'r', 1]).count(), 1);
    assert_eq!(net.executed.iter().filter(|e| e.0 == 1).count(), 14);
    assert!(net.eps[1].stats().refused >= 1);
}

#[test]
fn client_with_a_lower_incarnation_gets_in_after_the_old_one_fell_silent() {
    // Incarnation counters may wrap: a client that rebooted with a lower number is
    // ignored while the higher one may still be alive, then served.
    let mut net = Net::new(2, cfg());
    let p = net.eps[1].register_server(&service(1));
    net.eps[0] = Endpoint::new(mac(0), 50, net.cfg.clone());
    let a = net.trans(0, p, b"old life");
    net.run_until(SEC);
    assert!(net.result(0, a).unwrap().is_ok());
    net.eps[0] = Endpoint::new(mac(0), 3, net.cfg.clone());
    let mut ok = false;
    for _ in 0..20 {
        let b = net.trans(0, p, b"new life");
        let t = net.now + 10 * SEC;
        net.run_until(t);
        match net.result(0, b).unwrap() {
            Ok(_) => {
                ok = true;
                break;
            }
            Err(Status::RpcFailure | Status::ServerRestarted) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!(ok, "the rebooted client never got through");
    assert!(net.now <= 2 * 60 * SEC + 20 * SEC);
    assert_eq!(net.executed.iter().filter(|e| e.1 == b"new life").count(), 1);
}

/// The impostor's MAC in the locate scenarios: no endpoint has it, so a frame sent to
/// it is a frame the impostor would receive.
const IMPOSTOR: Mac = Mac([6, 0, 0, 0, 0, 9]);

/// A FLIP frame from the impostor's MAC.
fn impostor_frame(dst: Mac, header: FlipHeader, payload: &[u8]) -> Vec<u8> {
    Frame { dst, src: IMPOSTOR, packet: Packet { header, payload } }.encode()
}

/// A control packet's header (single packet, `len` bytes of payload).
fn control(ptype: PacketType, dst: Addr, src: Addr, dst_inc: u32, msg_id: u64, len: usize) -> FlipHeader {
    FlipHeader {
        ptype,
        flags: 0,
        hops: 1,
        dst,
        src,
        dst_inc,
        src_inc: 1,
        msg_id,
        total_len: len as u32,
        frag_off: 0,
    }
}

/// Every frame `ep` has queued, parsed (only FLIP frames are queued).
fn drain(ep: &mut Endpoint) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| ep.poll_transmit().map(|t| t.frame)).collect()
}

/// Issue 21: a station that answers LOCATEs for a port it does not hold draws no
/// request. The impostor tries each kind of HERE_IS: one signed with its own key, one
/// whose proof is replayed from an earlier locate, the real server's answer to the
/// client's own nonce (obtained by sending the server a LOCATE with it) relayed from
/// the impostor's MAC, both under the server's address and under its own. The client
/// refuses every one, sends nothing to the impostor, and the real server serves.
#[test]
fn impostor_here_is_draws_no_request() {
    let c = cfg();
    let mut client = Endpoint::new(mac(0), 5, c.clone());
    let mut server = Endpoint::new(mac(1), 3, c.clone());
    let get = service(1);
    let p = server.register_server(&get);
    let port_addr = Addr::port(p);
    let me = Addr::node(IMPOSTOR);

    // An honest locate first, whose HERE_IS the impostor keeps for replaying.
    client.start_trans(0, &Header { port: p, command: 77, ..Header::default() }, b"first");
    for f in drain(&mut client) {
        server.handle_frame(0, &f);
    }
    let earlier = drain(&mut server);
    let recorded = Frame::parse(&earlier[0]).unwrap();
    assert_eq!(recorded.packet.header.ptype, PacketType::HereIs);
    let replayed_proof = recorded.packet.payload.to_vec();
    for f in &earlier {
        client.handle_frame(0, f);
    }
    let mut to_server = drain(&mut client);
    while let Some(Event::RequestArrived { req, .. }) = server.poll_event() {
        server.put_reply(0, req, &Header::reply(Status::Ok), b"").unwrap();
    }
    assert!(!to_server.is_empty(), "the honest locate found the server");
    for f in to_server.drain(..) {
        server.handle_frame(0, &f);
    }
    while let Some(Event::RequestArrived { req, .. }) = server.poll_event() {
        server.put_reply(0, req, &Header::reply(Status::Ok), b"").unwrap();
    }
    for f in drain(&mut server) {
        client.handle_frame(0, &f);
    }
    drain(&mut client);

    // Now the client locates again; the impostor sees the broadcast.
    client.forget_port(&p);
    let now = 10 * MS;
    let id = client.start_trans(now, &Header { port: p, command: 77, ..Header::default() }, b"secret");
    let locate = drain(&mut client);
    assert_eq!(locate.len(), 1);
    let lf = Frame::parse(&locate[0]).unwrap();
    assert_eq!(lf.packet.header.ptype, PacketType::Locate);
    let nonce: [u8; LOCATE_NONCE_LEN] = lf.packet.payload.try_into().unwrap();
    let victim_inc = lf.packet.header.src_inc;
    let here_is = |src: Addr, payload: &[u8]| {
        let h = control(PacketType::HereIs, port_addr, src, victim_inc, 1, payload.len());
        impostor_frame(mac(0), h, payload)
    };

    // 1. Signed with its own key, for the right nonce: its key's hash is not P.
    let own = GetPort(Port([0x66; 6])).locate_key();
    let sig = own.sign(&here_is_message(&nonce, p, me, 1, 1));
    let proof = HereIsProof { public_key: own.public_key(), signature: sig };
    client.handle_frame(now, &here_is(me, &proof.encode()));
    // 2. The real server's proof from the earlier locate, replayed.
    client.handle_frame(now, &here_is(me, &replayed_proof));
    client.handle_frame(now, &here_is(Addr::node(mac(1)), &replayed_proof));
    // 3. The real server's answer to this very nonce: the impostor asks it itself.
    let ask = control(PacketType::Locate, port_addr, me, 0, 0, LOCATE_NONCE_LEN);
    server.handle_frame(now, &impostor_frame(mac(1), ask, &nonce));
    let fresh = drain(&mut server);
    assert_eq!(fresh.len(), 1);
    let ff = Frame::parse(&fresh[0]).unwrap();
    assert_eq!(ff.dst, IMPOSTOR);
    let fresh_proof = ff.packet.payload.to_vec();
    // Relayed under the server's address (requests would go to the sender's MAC)...
    client.handle_frame(now, &here_is(Addr::node(mac(1)), &fresh_proof));
    // ...and under its own (the signature names the server's address).
    client.handle_frame(now, &here_is(me, &fresh_proof));
    // 4. A key-and-signature made of garbage.
    client.handle_frame(now, &here_is(me, &[0xa5; HERE_IS_PROOF_LEN]));

    assert_eq!(client.stats().here_is_refused, 6, "every impostor answer was refused");
    assert!(client.cached_servers(&p).is_empty(), "nothing cached from the impostor");
    assert!(drain(&mut client).is_empty(), "no request went anywhere yet");

    // The real server answers the client's LOCATE, and gets the request.
    for f in &locate {
        server.handle_frame(now, f);
    }
    for f in drain(&mut server) {
        client.handle_frame(now, &f);
    }
    let requests = drain(&mut client);
    assert!(!requests.is_empty());
    for f in &requests {
        let fr = Frame::parse(f).unwrap();
        assert_eq!(fr.dst, mac(1), "requests go to the real server only");
        server.handle_frame(now, f);
    }
    let Some(Event::RequestArrived { req, buf, .. }) = server.poll_event() else {
        panic!("no request arrived")
    };
    assert_eq!(buf, b"secret");
    server.put_reply(now, req, &Header::reply(Status::Ok), b"done").unwrap();
    for f in drain(&mut server) {
        client.handle_frame(now, &f);
    }
    let mut result = None;
    while let Some(ev) = client.poll_event() {
        if let Event::TransDone { id: done, result: r } = ev
            && done == id
        {
            result = Some(r);
        }
    }
    assert_eq!(result.unwrap().unwrap().1, b"done");
    assert_eq!(client.cached_servers(&p), vec![(mac(1), Addr::node(mac(1)), 3)]);
}

/// A server answers a LOCATE only with a proof that checks against the put-port alone,
/// and a LOCATE without a nonce is not a packet at all.
#[test]
fn here_is_proof_checks_with_the_put_port() {
    let mut server = Endpoint::new(mac(1), 2, cfg());
    let p = server.register_server(&service(4));
    let nonce = [7u8; LOCATE_NONCE_LEN];
    let ask = control(PacketType::Locate, Addr::port(p), Addr::node(mac(0)), 0, 0, LOCATE_NONCE_LEN);
    server.handle_frame(
        0,
        &Frame { dst: Mac::BROADCAST, src: mac(0), packet: Packet { header: ask, payload: &nonce } }.encode(),
    );
    let answers = drain(&mut server);
    assert_eq!(answers.len(), 1);
    let f = Frame::parse(&answers[0]).unwrap();
    let h = f.packet.header;
    let proof = HereIsProof::parse(f.packet.payload).unwrap();
    let message = here_is_message(&nonce, p, h.src, h.src_inc, h.msg_id);
    assert_eq!(h.src, Addr::node(mac(1)));
    assert!(amoeba_abi::verify_locate(p, &proof.public_key, &message, &proof.signature));
    // Another nonce, another epoch: the same proof does not check.
    assert!(!amoeba_abi::verify_locate(
        p,
        &proof.public_key,
        &here_is_message(&[8; 16], p, h.src, h.src_inc, h.msg_id),
        &proof.signature
    ));
    assert!(!amoeba_abi::verify_locate(
        p,
        &proof.public_key,
        &here_is_message(&nonce, p, h.src, h.src_inc, h.msg_id + 1),
        &proof.signature
    ));
    // Registering again finds the key without deriving it; unregistering keeps count.
    assert_eq!(server.registered_port(&service(4)), Some(p));
    assert_eq!(server.register_server(&service(4)), p);
    assert!(server.unregister_server(&service(4)));
    assert!(server.is_registered(&p));
    assert!(server.unregister_server(&service(4)));
    assert!(!server.is_registered(&p));
    assert_eq!(server.registered_port(&service(4)), None);
}

/// A LOCATE for `port` from station `from` with `nonce`.
fn locate_from(from: Mac, port: Port, nonce: [u8; LOCATE_NONCE_LEN]) -> Vec<u8> {
    let ask = control(PacketType::Locate, Addr::port(port), Addr::node(from), 0, 0, LOCATE_NONCE_LEN);
    Frame { dst: Mac::BROADCAST, src: from, packet: Packet { header: ask, payload: &nonce } }.encode()
}

/// A distinct nonce per `k`.
fn nonce_of(k: u32) -> [u8; LOCATE_NONCE_LEN] {
    let mut n = [0u8; LOCATE_NONCE_LEN];
    n[..4].copy_from_slice(&k.to_be_bytes());
    n
}

/// A flood of LOCATEs with fresh nonces, from one station and from many, costs the
/// server a bounded number of signatures per window; copies of a LOCATE it answered
/// are answered again without signing; the next window answers again.
#[test]
fn a_locate_flood_costs_the_server_a_bounded_number_of_signatures() {
    let c = cfg();
    let mut server = Endpoint::new(mac(1), 2, c.clone());
    let p = server.register_server(&service(5));
    let flooder = Mac([6, 0, 0, 0, 0, 1]);

    // One station, a thousand fresh nonces.
    for k in 0..1000 {
        server.handle_frame(0, &locate_from(flooder, p, nonce_of(k)));
    }
    let answered = drain(&mut server).len() as u64;
    assert_eq!(answered, c.here_is_per_station as u64, "one station's fresh LOCATEs answered");
    assert_eq!(server.stats().here_is_signed, answered);
    // Copies of a LOCATE answered: answered again, no new signature.
    for _ in 0..10 {
        server.handle_frame(1, &locate_from(flooder, p, nonce_of(0)));
    }
    assert_eq!(drain(&mut server).len(), 10, "the retries of an answered LOCATE");
    assert_eq!(server.stats().here_is_signed, answered);

    // A thousand stations, one fresh nonce each.
    for k in 0..1000u32 {
        let from = Mac([6, 0, 0, 1, (k >> 8) as u8, k as u8]);
        server.handle_frame(2, &locate_from(from, p, nonce_of(10_000 + k)));
    }
    let answered = drain(&mut server).len() as u64;
    let signed = server.stats().here_is_signed;
    assert_eq!(signed, c.here_is_per_port as u64, "the port's budget holds over many stations");
    assert_eq!(answered, signed - c.here_is_per_station as u64);
    assert!(server.stats().locates_unanswered >= 2000 - signed);

    // The next window: an honest client is answered with a proof that checks.
    let now = c.here_is_window + 3;
    let honest = mac(0);
    server.handle_frame(now, &locate_from(honest, p, nonce_of(99_999)));
    let answers = drain(&mut server);
    assert_eq!(answers.len(), 1, "a new window answers again");
    let f = Frame::parse(&answers[0]).unwrap();
    let proof = HereIsProof::parse(f.packet.payload).unwrap();
    let h = f.packet.header;
    let message = here_is_message(&nonce_of(99_999), p, h.src, h.src_inc, h.msg_id);
    assert!(amoeba_abi::verify_locate(p, &proof.public_key, &message, &proof.signature));
}

/// A flood of bogus HERE_IS for a client's locate, from one station and from many,
/// costs the client a bounded number of signature checks per broadcast, and the real
/// server is still found.
#[test]
fn bogus_here_is_floods_cost_the_client_a_bounded_number_of_checks() {
    let c = cfg();
    let mut client = Endpoint::new(mac(0), 5, c.clone());
    let mut server = Endpoint::new(mac(1), 3, c.clone());
    let p = server.register_server(&service(6));
    let own = GetPort(Port([0x66; 6])).locate_key();

    let id = client.start_trans(0, &Header { port: p, command: 1, ..Header::default() }, b"through");
    let locate = drain(&mut client);
    let lf = Frame::parse(&locate[0]).unwrap();
    let nonce: [u8; LOCATE_NONCE_LEN] = lf.packet.payload.try_into().unwrap();
    let inc = lf.packet.header.src_inc;
    // A HERE_IS from station `from`, under its own address, signed with the
    // impostor's own key: it passes the cheap tests, only the check refuses it.
    let bogus = |from: Mac| {
        let me = Addr::node(from);
        let sig = own.sign(&here_is_message(&nonce, p, me, 1, 1));
        let proof = HereIsProof { public_key: own.public_key(), signature: sig }.encode();
        let h = control(PacketType::HereIs, Addr::port(p), me, inc, 1, proof.len());
        Frame { dst: mac(0), src: from, packet: Packet { header: h, payload: &proof } }.encode()
    };

    // One station, a thousand answers: one check.
    let one = bogus(IMPOSTOR);
    for _ in 0..1000 {
        client.handle_frame(MS, &one);
    }
    assert_eq!(client.stats().here_is_checked, 1, "one impostor station, one check");
    // A thousand stations: the broadcast's budget.
    for k in 0..1000u32 {
        client.handle_frame(MS, &bogus(Mac([6, 0, 0, 2, (k >> 8) as u8, k as u8])));
    }
    let budget = flip::HERE_IS_CHECKS_PER_BROADCAST as u64;
    assert_eq!(client.stats().here_is_checked, budget, "many stations, one broadcast's budget");
    assert_eq!(client.stats().here_is_refused, 2000, "every bogus answer refused");
    assert!(client.cached_servers(&p).is_empty());

    // The real server's answer to this broadcast finds the budget used up; the next
    // broadcast (same nonce) brings a fresh budget, and the real answer gets in.
    for f in &locate {
        server.handle_frame(MS, f);
    }
    for f in drain(&mut server) {
        client.handle_frame(MS, &f);
    }
    assert!(client.cached_servers(&p).is_empty(), "over the budget, even the real answer is not checked");
    let retry_at = client.next_deadline().unwrap();
    client.handle_timeout(retry_at);
    let again = drain(&mut client);
    assert_eq!(Frame::parse(&again[0]).unwrap().packet.payload, &nonce[..], "the retry carries the nonce");
    for k in 0..1000u32 {
        client.handle_frame(retry_at, &bogus(Mac([6, 0, 0, 3, (k >> 8) as u8, k as u8])));
        if k == 3 {
            for f in &again {
                server.handle_frame(retry_at, f);
            }
            for f in drain(&mut server) {
                client.handle_frame(retry_at, &f);
            }
        }
    }
    assert_eq!(client.cached_servers(&p), vec![(mac(1), Addr::node(mac(1)), 3)], "the real server is found");
    assert!(client.stats().here_is_checked <= 2 * budget, "at most two broadcasts' budgets");
    let to_server = drain(&mut client);
    assert!(
        to_server.iter().all(|f| Frame::parse(f).unwrap().dst == mac(1)),
        "requests go to the real server"
    );
    for f in &to_server {
        server.handle_frame(retry_at, f);
    }
    let Some(Event::RequestArrived { req, buf, .. }) = server.poll_event() else {
        panic!("no request arrived")
    };
    assert_eq!(buf, b"through");
    server.put_reply(retry_at, req, &Header::reply(Status::Ok), b"").unwrap();
    for f in drain(&mut server) {
        client.handle_frame(retry_at, &f);
    }
    let done = std::iter::from_fn(|| client.poll_event())
        .any(|e| matches!(e, Event::TransDone { id: d, result: Ok(_) } if d == id));
    assert!(done, "the transaction ends well");
}

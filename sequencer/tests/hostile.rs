//! A hostile station on the group's segment, one attack per test: it sees
//! every broadcast, sends any packet under any source address, and knows
//! the wire format, but holds no key of the group (or, where a test says
//! so, only what a member holding a lesser capability holds). Each test
//! says what it tries and checks that honest members deliver one order,
//! lose nothing, and deliver nothing forged.

mod common;

use common::{Action, Sig, Sim, owner_capability, payload};
use sequencer::auth::{self, Key};
use sequencer::wire::{Body, Entry, EntryBody, Header, Item, Packet, View, ViewMember};
use sequencer::{Config, RIGHT_RECEIVE};

const MS: u64 = 1000;
/// The adversary's own address (a station that never was a member).
const ADVERSARY: u64 = 0xbad0;
/// What every forged application message carries.
const FORGED: &[u8] = b"FORGED";

fn cfg() -> Config {
    Config {
        retransmit_us: 20 * MS,
        heartbeat_us: 50 * MS,
        sequencer_timeout_us: 300 * MS,
        member_timeout_us: 300 * MS,
        ..Config::default()
    }
}

/// n members, all joined, on a clean network.
fn group(n: usize) -> Sim {
    let mut sim = Sim::new(1, n, cfg());
    sim.create(0);
    for i in 1..n {
        sim.schedule(i as u64 * MS, Action::Join(i));
    }
    sim.run_until(200 * MS);
    assert!(sim.nodes.iter().all(|n| n.joined), "all joined");
    sim
}

/// What the adversary can put on the wire for `header` and `body` as sent
/// from `from`: the encoded packet, sealed with a key it guesses (it has
/// none).
fn forge(from: u64, header: Header, body: Body) -> Vec<u8> {
    auth::seal(&Key([0x42; 32]), from, &Packet { header, body })
}

/// The header the group's sequencer (member 0 at incarnation 0) would use.
fn as_sequencer(sim: &Sim) -> Header {
    let m = sim.nodes[0].m.as_ref().unwrap();
    let info = m.get_info();
    Header { port: common::PORT, inc: info.incarnation, src: info.sequencer_id, to: 0 }
}

fn app(payload: &[u8]) -> Item {
    Item::Entry(Entry { sender: 1, msg_id: 99, body: EntryBody::App(payload.to_vec()) })
}

/// Honest traffic after an attack: every node sends a few messages.
fn honest_traffic(sim: &mut Sim, n: usize) {
    for k in 0..3 {
        for i in 0..n {
            sim.schedule(sim.now + (k as u64 + 1) * 5 * MS, Action::Send(i, payload(i, k, 20)));
        }
    }
}

/// The invariants: one order, nothing forged delivered, every honest
/// message delivered everywhere (among the nodes listed).
fn check(sim: &mut Sim, nodes: &[usize], sent: usize) {
    sim.check(true, true).unwrap();
    for &i in nodes {
        let n = &sim.nodes[i];
        assert!(!n.expelled, "node {i} was expelled");
        let apps: Vec<&Vec<u8>> = n
            .delivered
            .iter()
            .filter_map(|(_, s)| match s {
                Sig::App(p) => Some(p),
                _ => None,
            })
            .collect();
        assert!(apps.iter().all(|p| !p.starts_with(FORGED)), "node {i} delivered a forged message: {apps:?}");
        assert_eq!(apps.len(), sent, "node {i} delivered {} of {sent} messages: {apps:?}", apps.len());
    }
}

/// Data claiming to come from the sequencer, for the next sequence number
/// and for ones far ahead, sent under the sequencer's address and under
/// the adversary's own.
#[test]
fn forged_data_is_not_delivered() {
    let mut sim = group(3);
    let next = sim.nodes[1].m.as_ref().unwrap().get_info().next_seq;
    let h = as_sequencer(&sim);
    for seq in [next, next + 1, next + 5, next + 1000] {
        for to in [1, 2] {
            for from in [sim.addr(0), ADVERSARY] {
                let body =
                    Body::Data { seq, accepted: seq + 1, stable: 0, flags: 0, items: vec![app(FORGED)] };
                sim.inject(100, to, from, forge(from, h, body));
            }
        }
    }
    honest_traffic(&mut sim, 3);
    sim.run_until(sim.now + 1500 * MS);
    check(&mut sim, &[0, 1, 2], 9);
}

/// A group of three: node 0 created it, node 1 joined with the owner
/// capability, node 2 with a receive-only one (it holds the group key).
fn group_with_a_receive_only_member() -> Sim {
    let mut sim = Sim::new(1, 3, cfg());
    sim.create(0);
    sim.schedule(MS, Action::Join(1));
    sim.run_until(100 * MS);
    let receive_only = owner_capability().restrict(RIGHT_RECEIVE).unwrap();
    sim.join_with(2, &receive_only);
    sim.run_until(300 * MS);
    assert!(sim.nodes[2].joined);
    sim
}

/// A member that joined with a capability without the send right sends
/// anyway, bypassing its own library's check: the sequencer refuses.
#[test]
fn a_send_without_the_send_right_is_refused() {
    let mut sim = group_with_a_receive_only_member();
    let id = sim.nodes[2].member_id;
    let inc = sim.nodes[2].m.as_ref().unwrap().get_info().incarnation;
    let h = Header { port: common::PORT, inc, src: id, to: 0 };
    let to = sim.addr(0);
    let from = sim.addr(2);
    for msg_id in 1..4 {
        let body = Body::Send { msg_id, ack: 0, leave: false, payload: FORGED.to_vec() };
        sim.inject(100, 0, from, member_packet(&sim, 2, h, body, Some(to)));
    }
    honest_traffic(&mut sim, 2);
    sim.run_until(sim.now + 1500 * MS);
    check(&mut sim, &[0, 1, 2], 6);
}

/// A member that joined with a receive-only capability holds the group key,
/// so its packets pass the tag: it sends `Data` from its own address, under
/// the sequencer's member id and under its own, for the next sequence numbers
/// and ones ahead. Members take entries only from the current sequencer (by
/// id and address), so nothing of it is delivered. (Under the sequencer's
/// address the insider is stopped below this crate: a group frame's sender
/// address must be on its source MAC, which the switch vouches for.)
#[test]
fn an_insider_s_data_is_not_delivered() {
    let mut sim = group_with_a_receive_only_member();
    let as_seq = as_sequencer(&sim);
    let as_itself = Header { src: sim.nodes[2].member_id, ..as_seq };
    let next = sim.nodes[1].m.as_ref().unwrap().get_info().next_seq;
    let from = sim.addr(2);
    for seq in [next, next + 1, next + 5] {
        for h in [as_seq, as_itself] {
            for to in [0, 1] {
                let body =
                    Body::Data { seq, accepted: seq + 1, stable: 0, flags: 0, items: vec![app(FORGED)] };
                sim.inject(100, to, from, member_packet(&sim, 2, h, body, None));
            }
        }
    }
    honest_traffic(&mut sim, 2);
    sim.run_until(sim.now + 1500 * MS);
    check(&mut sim, &[0, 1, 2], 6);
}

/// A packet member `i` itself could have sent (it holds the group's keys:
/// it is a member, only without the send right).
fn member_packet(sim: &Sim, i: usize, header: Header, body: Body, to: Option<u64>) -> Vec<u8> {
    let key = auth::group_key(common::PORT, &common::SECRET);
    let header = Header { to: to.unwrap_or(0), ..header };
    auth::seal(&key, sim.addr(i), &Packet { header, body })
}

/// The adversary records a joiner's request and joins with it from its own
/// address: the request must not carry anything that lets it in.
#[test]
fn a_recorded_join_request_lets_nobody_else_in() {
    let mut sim = Sim::new(1, 2, cfg());
    sim.create(0);
    sim.schedule(MS, Action::Join(1));
    sim.run_until(200 * MS);
    let requests: Vec<Vec<u8>> = sim
        .tap
        .iter()
        .filter(|(from, b)| {
            *from == sim.addr(1) && Packet::decode(b).is_ok_and(|p| matches!(p.body, Body::JoinReq { .. }))
        })
        .map(|(_, b)| b.clone())
        .collect();
    assert!(!requests.is_empty(), "the joiner broadcast its request");
    for r in &requests {
        sim.inject(100, 0, ADVERSARY, r.clone());
    }
    sim.run_until(sim.now + 500 * MS);
    let members = sim.nodes[0].m.as_ref().unwrap().get_info().members;
    assert!(members.iter().all(|&(_, a)| a != ADVERSARY), "the adversary got in: {members:?}");
}

/// After a member left, the adversary replays its join requests (under its
/// address): nobody is admitted in its name.
#[test]
fn replayed_join_requests_admit_nobody() {
    let mut sim = group(3);
    let requests: Vec<Vec<u8>> = sim
        .tap
        .iter()
        .filter(|(from, b)| {
            *from == sim.addr(2) && Packet::decode(b).is_ok_and(|p| matches!(p.body, Body::JoinReq { .. }))
        })
        .map(|(_, b)| b.clone())
        .collect();
    assert!(!requests.is_empty());
    sim.schedule(sim.now + MS, Action::Leave(2));
    sim.run_until(sim.now + 300 * MS);
    assert!(sim.nodes[2].left);
    let from = sim.addr(2);
    // The departed member's station is gone (its address is free).
    sim.nodes[2].m = None;
    for r in &requests {
        sim.inject(100, 0, from, r.clone());
    }
    sim.run_until(sim.now + 500 * MS);
    for i in 0..2 {
        let members = sim.nodes[i].m.as_ref().unwrap().get_info().members;
        assert!(members.iter().all(|&(_, a)| a != from), "node {i}: replay admitted a ghost: {members:?}");
    }
    honest_traffic(&mut sim, 2);
    sim.run_until(sim.now + 1500 * MS);
    check(&mut sim, &[0, 1], 6);
}

/// Forged reset traffic: a decision that leaves members out, an accept
/// and promises for a round nobody started, and a "not a member" for a
/// member, all claiming the sequencer's address and id.
#[test]
fn forged_resets_change_nothing() {
    let mut sim = group(3);
    let h = as_sequencer(&sim);
    let base = sim.nodes[1].m.as_ref().unwrap().get_info().next_seq;
    let view = View {
        old_inc: h.inc,
        new_inc: h.inc + 1,
        sequencer: 0,
        min_d: base,
        floor: base,
        base,
        members: vec![ViewMember { id: 0, addr: ADVERSARY, ack: base, rights: 0xff }],
        removed: vec![(1, sim.addr(1)), (2, sim.addr(2))],
    };
    let ballot = sequencer::wire::Ballot { round: 7, id: 0 };
    for to in [1, 2] {
        let from = sim.addr(0);
        let member = sim.nodes[to].member_id;
        sim.inject(100, to, from, forge(from, h, Body::Decided { view: view.clone() }));
        sim.inject(100, to, from, forge(from, h, Body::Accept { ballot, view: view.clone() }));
        sim.inject(100, to, from, forge(from, Header { to: sim.addr(to), ..h }, Body::NotMember { member }));
        sim.inject(100, to, ADVERSARY, forge(ADVERSARY, h, Body::Decided { view: view.clone() }));
    }
    // "Accepted" for a round: claims another member's vote.
    let h1 = Header { src: 1, ..h };
    let from = sim.addr(1);
    sim.inject(100, 0, from, forge(from, h1, Body::Accepted { ballot }));
    let prepare = Body::Prepare { ballot: sequencer::wire::Ballot { round: 9, id: 1 } };
    sim.inject(100, 0, from, forge(from, h1, prepare));
    sim.run_until(sim.now + 50 * MS);
    for i in 0..3 {
        let m = sim.nodes[i].m.as_ref().unwrap();
        assert!(m.is_member() && !m.is_resetting(), "node {i} was thrown out or into a reset");
        assert_eq!(m.get_info().incarnation, h.inc, "node {i} installed a forged view");
    }
    honest_traffic(&mut sim, 3);
    sim.run_until(sim.now + 1500 * MS);
    check(&mut sim, &[0, 1, 2], 9);
}

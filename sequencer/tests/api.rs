//! Focused scenarios for each primitive, on a fault-free (or scripted)
//! simulated network.

mod common;

use common::{Action, Faults, Sig, Sim, owner_capability, payload};
use sequencer::{Config, Dest, Event, GroupError, GroupMember, SendError};

const MS: u64 = 1000;

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
fn group(n: usize, cfg: Config) -> Sim {
    let mut sim = Sim::new(1, n, cfg);
    sim.create(0);
    for i in 1..n {
        sim.schedule(i as u64 * MS, Action::Join(i));
    }
    sim.run_until(200 * MS);
    assert!(sim.nodes.iter().all(|n| n.joined), "all joined");
    sim
}

fn apps(sim: &Sim, i: usize) -> Vec<Vec<u8>> {
    sim.nodes[i]
        .delivered
        .iter()
        .filter_map(|(_, s)| match s {
            Sig::App(p) => Some(p.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn all_members_deliver_the_same_order() {
    let mut sim = group(4, cfg());
    for k in 0..5 {
        for i in 0..4 {
            sim.schedule(sim.now + MS, Action::Send(i, payload(i, k, 20)));
        }
    }
    sim.run_until(sim.now + 1000 * MS);
    sim.check(true, true).unwrap();
    let a0 = apps(&sim, 0);
    assert_eq!(a0.len(), 20);
    for i in 1..4 {
        assert_eq!(apps(&sim, i), a0);
    }
}

#[test]
fn receive_reports_more_pending() {
    let mut a = GroupMember::create_group(cfg(), 9, amoeba_abi::Check([1; 6]), 1, 0);
    a.send_to_group(0, b"x").unwrap();
    a.send_to_group(0, b"y").unwrap();
    let (m, more) = a.receive().unwrap();
    assert_eq!((m.payload.as_slice(), more), (&b"x"[..], true));
    let (m, more) = a.receive().unwrap();
    assert_eq!((m.payload.as_slice(), more), (&b"y"[..], false));
    assert!(a.receive().is_none());
    assert!(matches!(a.poll_event(), Some(Event::Joined { .. })));
}

#[test]
fn large_messages_use_bb() {
    let mut c = cfg();
    c.bb_threshold = 32;
    let mut sim = group(3, c);
    let now = sim.now;
    let m = sim.nodes[1].m.as_mut().unwrap();
    m.send_to_group(now, &payload(1, 0, 100)).unwrap();
    // The sender broadcasts the payload itself.
    let t = m.poll_transmit().unwrap();
    assert_eq!(t.dest, Dest::Group);
    let p = sequencer::wire::Packet::decode(&t.bytes).unwrap();
    assert!(matches!(p.body, sequencer::wire::Body::BbData { .. }));
    sim.nodes[1].outstanding.push_back(payload(1, 0, 100));
    // Put it back on the wire and let the group run.
    let mut m2 = sim.nodes[1].m.take().unwrap();
    m2.handle_timeout(now + 30 * MS); // retransmits the BB broadcast
    sim.nodes[1].m = Some(m2);
    sim.flush(1);
    sim.run_until(now + 500 * MS);
    for i in 0..3 {
        assert_eq!(apps(&sim, i), vec![payload(1, 0, 100)]);
    }
}

#[test]
fn resilience_delays_delivery_until_acknowledged() {
    let mut c = cfg();
    c.resilience = 2;
    let mut sim = group(3, c);
    // Cut both ordinary members off: the sequencer stamps but cannot deliver.
    sim.partition = Some([0].into_iter().collect());
    let now = sim.now;
    sim.nodes[0].m.as_mut().unwrap().send_to_group(now, b"r2").unwrap();
    sim.nodes[0].outstanding.push_back(b"r2".to_vec());
    sim.flush(0);
    sim.run_until(now + 100 * MS);
    assert!(apps(&sim, 0).is_empty(), "delivered without r acks");
    sim.partition = None;
    sim.run_until(now + 400 * MS);
    for i in 0..3 {
        assert_eq!(apps(&sim, i), vec![b"r2".to_vec()]);
    }
}

#[test]
fn leave_and_sequencer_handoff() {
    let mut sim = group(3, cfg());
    sim.schedule(sim.now + MS, Action::Leave(2));
    sim.run_until(sim.now + 300 * MS);
    assert!(sim.nodes[2].left);
    sim.schedule(sim.now + MS, Action::Leave(0));
    sim.run_until(sim.now + 300 * MS);
    assert!(sim.nodes[0].left);
    let m1 = sim.nodes[1].m.as_ref().unwrap();
    assert!(m1.is_sequencer(), "the successor took over");
    assert_eq!(m1.get_info().members.len(), 1);
    // The group goes on.
    sim.schedule(sim.now + MS, Action::Send(1, payload(1, 0, 10)));
    sim.run_until(sim.now + 300 * MS);
    assert_eq!(apps(&sim, 1), vec![payload(1, 0, 10)]);
    sim.check(true, true).unwrap();
}

#[test]
fn group_full_denies_join() {
    let mut c = cfg();
    c.max_members = 2;
    let mut sim = Sim::new(2, 3, c);
    sim.create(0);
    sim.schedule(MS, Action::Join(1));
    sim.schedule(100 * MS, Action::Join(2));
    sim.run_until(300 * MS);
    assert!(sim.nodes[1].joined);
    assert!(sim.nodes[2].join_failed);
}

#[test]
fn send_errors() {
    let mut c = cfg();
    c.max_message_size = 10;
    c.max_send_queue = 2;
    let mut j = GroupMember::join_group(c.clone(), &owner_capability(), 2, 0);
    assert_eq!(j.send_to_group(0, b"x"), Err(SendError::NotMember));
    let mut sim = group(2, c);
    let now = sim.now;
    let m = sim.nodes[1].m.as_mut().unwrap();
    assert_eq!(m.send_to_group(now, &[0; 11]), Err(SendError::TooLarge));
    m.send_to_group(now, b"a").unwrap();
    m.send_to_group(now, b"b").unwrap();
    assert_eq!(m.send_to_group(now, b"c"), Err(SendError::WouldBlock));
}

#[test]
fn history_full_throttles_senders() {
    let mut c = cfg();
    c.history_size = 4;
    c.max_send_queue = 64;
    c.member_timeout_us = 10_000 * MS; // keep the silent member in the group
    let mut sim = group(3, c);
    // Member 2 hears nothing: nothing becomes stable.
    sim.partition = Some([2].into_iter().collect());
    for k in 0..20 {
        sim.schedule(sim.now + MS, Action::Send(1, payload(1, k, 10)));
    }
    sim.run_until(sim.now + 200 * MS);
    let info = sim.nodes[0].m.as_ref().unwrap().get_info();
    assert!(info.unstable <= 5, "history overflow: {info:?}");
    assert!(apps(&sim, 1).len() < 20);
    sim.partition = None;
    sim.run_until(sim.now + 2000 * MS);
    for i in 0..3 {
        assert_eq!(apps(&sim, i).len(), 20);
    }
    sim.check(true, true).unwrap();
}

#[test]
fn sequencer_crash_resets_group() {
    let mut c = cfg();
    c.resilience = 1;
    let mut sim = group(4, c);
    for k in 0..3 {
        sim.schedule(sim.now + MS, Action::Send(1, payload(1, k, 10)));
    }
    sim.schedule(sim.now + 5 * MS, Action::Crash(0));
    for k in 3..6 {
        sim.schedule(sim.now + 50 * MS, Action::Send(2, payload(2, k, 10)));
    }
    sim.run_until(sim.now + 3000 * MS);
    sim.check(true, true).unwrap();
    let s = sim.sequencer().expect("a new sequencer");
    let info = sim.nodes[s].m.as_ref().unwrap().get_info();
    assert_eq!(info.incarnation, 1);
    assert_eq!(info.members.len(), 3);
    for i in 1..4 {
        assert!(sim.nodes[i].delivered.iter().any(|(_, s)| matches!(s, Sig::Reset(1, r) if r.len() == 1)));
        assert_eq!(apps(&sim, i).len(), 6);
    }
    sim.check_complete(true).unwrap();
}

#[test]
fn dead_member_is_removed_and_told() {
    let mut sim = group(3, cfg());
    sim.partition = Some([2].into_iter().collect());
    sim.run_until(sim.now + 1000 * MS);
    let info = sim.nodes[0].m.as_ref().unwrap().get_info();
    assert_eq!(info.members.len(), 2);
    sim.partition = None;
    sim.run_until(sim.now + 1000 * MS);
    assert!(sim.nodes[2].expelled, "the removed member learns it");
    sim.check(true, true).unwrap();
}

#[test]
fn lossy_network_still_delivers_everything() {
    let mut sim = group(5, cfg());
    sim.faults = Faults { loss: 0.3, dup: 0.1, delay_min: 100, jitter: 5000 };
    for k in 0..10 {
        for i in 0..5 {
            sim.schedule(sim.now + k as u64 * 7 * MS, Action::Send(i, payload(i, k, 30)));
        }
    }
    sim.run_until(sim.now + 1000 * MS);
    sim.faults = Faults::none();
    assert!(sim.run_until_cond(sim.now + 10_000 * MS, |s| s.settled()));
    sim.check(sim.failures() == 0, true).unwrap();
    if sim.failures() == 0 {
        for i in 0..5 {
            assert_eq!(apps(&sim, i).len(), 50);
        }
    }
}

#[test]
fn expelled_member_reports_error() {
    let mut sim = group(3, cfg());
    sim.partition = Some([1].into_iter().collect());
    sim.run_until(sim.now + 1500 * MS);
    sim.partition = None;
    let mut seen = false;
    sim.run_until(sim.now + 1000 * MS);
    if sim.nodes[1].expelled {
        seen = true;
    }
    assert!(seen);
    let _ = GroupError::Expelled;
}

#[test]
fn join_needs_a_capability_that_verifies() {
    let mut sim = Sim::new(3, 4, cfg());
    sim.create(0);
    let owner = owner_capability();
    // A forged check, and a rights field raised without a matching check.
    let mut forged = owner;
    forged.check = amoeba_abi::Check([0xee; 6]);
    let receive_only = owner.restrict(sequencer::RIGHT_RECEIVE).unwrap();
    let mut raised = receive_only;
    raised.rights = amoeba_abi::Rights::ALL;
    sim.join_with(1, &forged);
    sim.join_with(2, &raised);
    sim.run_until(200 * MS);
    assert!(sim.nodes[1].join_failed && !sim.nodes[1].joined);
    assert!(sim.nodes[2].join_failed && !sim.nodes[2].joined);
    assert_eq!(sim.nodes[0].m.as_ref().unwrap().get_info().members.len(), 1);
    // Without the receive right there is no joining either.
    let send_only = owner.restrict(sequencer::RIGHT_SEND).unwrap();
    sim.join_with(3, &send_only);
    sim.run_until(400 * MS);
    assert!(sim.nodes[3].join_failed);
}

#[test]
fn a_receive_only_member_receives_but_cannot_send() {
    let mut sim = Sim::new(4, 2, cfg());
    sim.create(0);
    let receive_only = owner_capability().restrict(sequencer::RIGHT_RECEIVE).unwrap();
    sim.join_with(1, &receive_only);
    sim.run_until(100 * MS);
    assert!(sim.nodes[1].joined);
    let now = sim.now;
    let reader = sim.nodes[1].m.as_mut().unwrap();
    assert_eq!(reader.send_to_group(now, b"no"), Err(SendError::NotPermitted));
    sim.schedule(sim.now + MS, Action::Send(0, payload(0, 0, 10)));
    sim.run_until(sim.now + 200 * MS);
    assert_eq!(apps(&sim, 1), vec![payload(0, 0, 10)]);
    sim.check(true, true).unwrap();
}

#[test]
fn a_new_sequencer_checks_joiners_too() {
    // After the creator crashes and the group resets, the new sequencer
    // knows the group's secret: good capabilities get in, forged ones not.
    let mut sim = Sim::new(5, 6, cfg());
    sim.create(0);
    for i in 1..4 {
        sim.schedule(i as u64 * MS, Action::Join(i));
    }
    sim.schedule(200 * MS, Action::Crash(0));
    sim.run_until(3_000 * MS);
    let new_sequencer = sim.sequencer().expect("a new sequencer");
    assert_ne!(new_sequencer, 0);
    let mut forged = owner_capability();
    forged.check = amoeba_abi::Check([0; 6]);
    sim.join_with(4, &forged);
    sim.join(5);
    sim.run_until(sim.now + 500 * MS);
    assert!(sim.nodes[4].join_failed && !sim.nodes[4].joined);
    assert!(sim.nodes[5].joined);
    sim.check(true, true).unwrap();
}

#[test]
fn members_that_only_listen_stay_while_one_member_sends_slowly() {
    // One message every 20 ms keeps the sequencer broadcasting more often
    // than its heartbeat, and the listeners' own acks (every quarter of the
    // history) come further apart than the member timeout: the sequencer
    // must still hear from them rather than count them dead.
    let mut sim = group(4, cfg());
    let start = sim.now;
    for k in 0..100 {
        sim.schedule(start + k as u64 * 20 * MS, Action::Send(1, payload(1, k, 30)));
    }
    sim.run_until(start + 2500 * MS);
    sim.check(true, true).unwrap();
    let info = sim.nodes[0].m.as_ref().unwrap().get_info();
    assert_eq!((info.incarnation, info.members.len()), (0, 4), "no reset, nobody removed");
    for i in 0..4 {
        assert_eq!(apps(&sim, i).len(), 100);
    }
}

/// Ends node `i` at once (no majority check, unlike `Action::Crash`).
fn kill(sim: &mut Sim, i: usize) {
    sim.nodes[i].crashed = true;
    sim.nodes[i].m = None;
}

/// A two-member group whose creator asked for `min_reset` (the joiner asks
/// for nothing: the group's parameter reaches it in the welcome).
fn pair(min_reset: Option<u16>) -> Sim {
    let mut c = cfg();
    c.min_reset_members = min_reset;
    let mut sim = Sim::new(11, 2, c);
    sim.create(0);
    sim.cfg.min_reset_members = None;
    sim.schedule(MS, Action::Join(1));
    sim.run_until(100 * MS);
    assert!(sim.nodes[1].joined);
    sim
}

/// Sends a message from `i` and lets the group run for a while.
fn send_and_run(sim: &mut Sim, i: usize, k: u32) {
    sim.schedule(sim.now + MS, Action::Send(i, payload(i, k, 10)));
    sim.run_until(sim.now + 2000 * MS);
}

#[test]
fn a_pair_that_asked_for_it_goes_on_alone_when_its_sequencer_dies() {
    let mut sim = pair(Some(1));
    kill(&mut sim, 0);
    sim.run_until(sim.now + 2000 * MS);
    let m = sim.nodes[1].m.as_ref().unwrap();
    assert!(m.is_sequencer(), "the survivor took over");
    assert_eq!(m.get_info().members.len(), 1);
    send_and_run(&mut sim, 1, 0);
    assert_eq!(apps(&sim, 1), vec![payload(1, 0, 10)]);
    sim.check(true, true).unwrap();
}

#[test]
fn a_pair_that_asked_for_it_goes_on_alone_when_its_member_dies() {
    let mut sim = pair(Some(1));
    kill(&mut sim, 1);
    sim.run_until(sim.now + 2000 * MS);
    let m = sim.nodes[0].m.as_ref().unwrap();
    assert!(m.is_sequencer() && !m.is_resetting());
    assert_eq!(m.get_info().members.len(), 1, "the dead member was removed");
    send_and_run(&mut sim, 0, 0);
    assert_eq!(apps(&sim, 0), vec![payload(0, 0, 10)]);
}

#[test]
fn a_pair_stops_by_default_when_either_dies() {
    // Majority rule: one of two cannot tell a crash from a partition, so it
    // must not go on (the other side might).
    for dead in [0, 1] {
        let mut sim = pair(None);
        kill(&mut sim, dead);
        sim.run_until(sim.now + 2000 * MS);
        let alive = 1 - dead;
        assert!(sim.nodes[alive].m.as_ref().unwrap().is_resetting(), "{alive} must wait for a majority");
        send_and_run(&mut sim, alive, 0);
        assert!(sim.nodes[alive].m.as_ref().unwrap().is_resetting(), "{alive} must wait for a majority");
        assert!(apps(&sim, alive).is_empty(), "nothing delivered without a majority");
    }
}

/// The packets `m` sends from now until `until` with no input but time.
fn transmissions_alone(m: &mut GroupMember, now: u64, until: u64) -> Vec<(u64, Dest, sequencer::wire::Body)> {
    let mut out = Vec::new();
    let mut t = now;
    while t < until {
        while let Some(x) = m.poll_transmit() {
            out.push((t, x.dest, sequencer::wire::Packet::decode(&x.bytes).unwrap().body));
        }
        let Some(next) = m.next_deadline() else { break };
        t = next.max(t + 1);
        m.handle_timeout(t);
    }
    out
}

#[test]
fn bb_retransmissions_back_off_and_go_to_the_sequencer_alone() {
    let mut c = cfg();
    c.bb_threshold = 32;
    c.sequencer_timeout_us = 5000 * MS; // the sender keeps trying all along
    let mut sim = group(3, c);
    let seq_addr = sim.nodes[0].addr;
    let now = sim.now;
    let m = sim.nodes[1].m.as_mut().unwrap();
    m.send_to_group(now, &payload(1, 0, 100)).unwrap();
    let sent: Vec<(u64, Dest)> = transmissions_alone(m, now, now + 1000 * MS)
        .into_iter()
        .filter(|(_, _, b)| matches!(b, sequencer::wire::Body::BbData { .. }))
        .map(|(t, d, _)| (t, d))
        .collect();
    assert_eq!(sent[0], (now, Dest::Group), "the first copy is broadcast");
    assert!(
        sent[1..].iter().all(|(_, d)| *d == Dest::Member(seq_addr)),
        "retransmissions go to the sequencer"
    );
    let gaps: Vec<u64> = sent.windows(2).map(|w| (w[1].0 - w[0].0) / MS).collect();
    assert_eq!(gaps[..6], [20, 40, 80, 160, 160, 160], "exponential backoff, bounded");
}

#[test]
fn the_sequencer_stamps_queued_messages_in_one_packet() {
    let mut sim = group(4, cfg());
    let now = sim.now;
    let seq_addr = sim.nodes[0].addr;
    let mut sends = Vec::new();
    for i in 1..4 {
        let from = sim.nodes[i].addr;
        let m = sim.nodes[i].m.as_mut().unwrap();
        m.send_to_group(now, &payload(i, 0, 10)).unwrap();
        while let Some(t) = m.poll_transmit() {
            if t.dest == Dest::Member(seq_addr) {
                sends.push((from, t.bytes));
            }
        }
    }
    // Three sends arrive before the sequencer gets to put anything on the wire.
    let s = sim.nodes[0].m.as_mut().unwrap();
    for (from, bytes) in &sends {
        s.handle_packet(now, *from, bytes).unwrap();
    }
    let mut data = Vec::new();
    while let Some(t) = s.poll_transmit() {
        if let sequencer::wire::Body::Data { items, .. } =
            sequencer::wire::Packet::decode(&t.bytes).unwrap().body
        {
            data.push(items.len());
        }
    }
    assert_eq!(data, vec![3], "one broadcast carries all three");
}

#[test]
fn batches_stay_within_max_batch_bytes() {
    let mut c = cfg();
    c.max_batch_bytes = 200;
    let mut sim = group(2, c);
    let now = sim.now;
    let s = sim.nodes[0].m.as_mut().unwrap();
    for k in 0..6 {
        s.send_to_group(now, &payload(0, k, 40)).unwrap();
    }
    let mut sizes = Vec::new();
    while let Some(t) = s.poll_transmit() {
        if let sequencer::wire::Body::Data { items, .. } =
            sequencer::wire::Packet::decode(&t.bytes).unwrap().body
        {
            assert!(t.bytes.len() <= 200, "a batch of {} bytes", t.bytes.len());
            sizes.push(items.len());
        }
    }
    assert_eq!(sizes.iter().sum::<usize>(), 6);
    assert!(sizes.len() > 1 && sizes.iter().all(|&n| n > 1), "batched, in several packets: {sizes:?}");
}

#[test]
fn the_sequencers_own_large_messages_go_by_bb() {
    let mut c = cfg();
    c.bb_threshold = 32;
    let mut sim = group(3, c);
    let now = sim.now;
    let s = sim.nodes[0].m.as_mut().unwrap();
    s.send_to_group(now, &payload(0, 0, 100)).unwrap();
    let mut kinds = Vec::new();
    let mut packets = Vec::new();
    while let Some(t) = s.poll_transmit() {
        let body = sequencer::wire::Packet::decode(&t.bytes).unwrap().body;
        kinds.push(match &body {
            sequencer::wire::Body::BbData { payload, .. } => format!("payload {}", payload.len()),
            sequencer::wire::Body::Data { items, .. } => format!(
                "{:?}",
                items.iter().map(|i| matches!(i, sequencer::wire::Item::Bb { .. })).collect::<Vec<_>>()
            ),
            other => format!("{other:?}"),
        });
        packets.push(t);
    }
    assert_eq!(
        kinds,
        vec!["payload 100".to_string(), "[true]".to_string()],
        "payload, then the accept naming it"
    );
    // On the wire, in either order, every member delivers it.
    for t in packets.into_iter().rev() {
        for j in 1..3 {
            let from = sim.nodes[0].addr;
            sim.nodes[j].m.as_mut().unwrap().handle_packet(now, from, &t.bytes).unwrap();
            sim.flush(j);
        }
    }
    sim.nodes[0].outstanding.push_back(payload(0, 0, 100));
    sim.flush(0);
    sim.run_until(now + 500 * MS);
    for i in 0..3 {
        assert_eq!(apps(&sim, i), vec![payload(0, 0, 100)]);
    }
    sim.check(true, true).unwrap();
}

#[test]
fn a_leave_asked_while_joining_is_ordered_after_the_join() {
    let mut sim = Sim::new(12, 3, cfg());
    sim.create(0);
    sim.schedule(MS, Action::Join(1));
    sim.run_until(100 * MS);
    sim.join(2);
    let now = sim.now;
    sim.nodes[2].m.as_mut().unwrap().leave_group(now).unwrap();
    sim.run_until(now + 1000 * MS);
    assert!(sim.nodes[2].joined && sim.nodes[2].left, "joined, then left");
    let id = sim.nodes[2].member_id;
    for i in 0..2 {
        let d = &sim.nodes[i].delivered;
        let joined = d.iter().position(|(_, s)| matches!(s, Sig::Join(m, _) if *m == id));
        let left = d.iter().position(|(_, s)| *s == Sig::Left(id, sequencer::LeaveReason::Left));
        assert!(joined.is_some() && joined < left, "node {i}: {d:?}");
    }
    sim.check(true, true).unwrap();
}

#[test]
fn a_leave_is_ordered_even_on_a_lossy_network() {
    // The leaver is driven only until it is gone (as the nucleus keeps a
    // member whose process exited until its leave is through); the others
    // must order its leave, not remove it as failed.
    for seed in 0..200 {
        let mut sim = Sim::new(seed, 4, cfg());
        sim.create(0);
        for i in 1..4 {
            sim.schedule(i as u64 * MS, Action::Join(i));
        }
        sim.run_until(300 * MS);
        sim.faults = Faults { loss: 0.2, dup: 0.05, delay_min: 100, jitter: 2000 };
        let leaver = 1 + (seed % 3) as usize;
        sim.schedule(sim.now + MS, Action::Leave(leaver));
        sim.run_until(sim.now + 3000 * MS);
        assert!(sim.nodes[leaver].left, "seed {seed}: the leave went through");
        sim.faults = Faults::none();
        assert!(sim.run_until_cond(sim.now + 5000 * MS, |s| s.settled()), "seed {seed}: settles");
        let id = sim.nodes[leaver].member_id;
        for i in (0..4).filter(|&i| i != leaver) {
            assert!(
                sim.nodes[i].delivered.iter().any(|(_, s)| *s == Sig::Left(id, sequencer::LeaveReason::Left)),
                "seed {seed}: node {i} saw the leave"
            );
        }
        sim.check(true, true).unwrap();
    }
}

#[test]
fn a_sequencer_crash_during_a_join_does_not_stall_the_group() {
    // The join is stamped, maybe welcomed, maybe not yet settled: the
    // survivors must reset whatever point the crash hits.
    for delay in [0, 300, 500, 700, 1000, 2000, 5000, 20_000] {
        let mut c = cfg();
        c.resilience = 1;
        let mut sim = Sim::new(13, 4, c);
        sim.create(0);
        sim.schedule(MS, Action::Join(1));
        sim.schedule(2 * MS, Action::Join(2));
        sim.run_until(200 * MS);
        let at = sim.now;
        sim.join(3);
        sim.run_until(at + delay);
        kill(&mut sim, 0);
        assert!(sim.run_until_cond(sim.now + 5000 * MS, |s| s.settled()), "crash {delay} µs into the join");
        assert!(sim.sequencer().is_some_and(|s| s != 0), "a new sequencer");
        sim.check(true, true).unwrap();
    }
}

#[test]
fn a_leave_is_ordered_when_the_member_goes_away_at_once() {
    // The leave request leaves once; then the member is gone for good.
    let mut sim = group(3, cfg());
    let now = sim.now;
    let id = sim.nodes[1].member_id;
    sim.nodes[1].m.as_mut().unwrap().leave_group(now).unwrap();
    sim.flush(1);
    kill(&mut sim, 1);
    sim.run_until(now + 2000 * MS);
    for i in [0, 2] {
        assert!(
            sim.nodes[i].delivered.iter().any(|(_, s)| *s == Sig::Left(id, sequencer::LeaveReason::Left)),
            "node {i} ordered the leave (not a removal): {:?}",
            sim.nodes[i].delivered
        );
    }
    sim.check(true, true).unwrap();
}

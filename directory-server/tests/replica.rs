//! One replica driven by hand, as a board program would drive it: its group sends
//! come back as deliveries, its storage operations run on a disk, its replies are
//! collected. Shows the calling pattern and checks the single-replica paths.

mod common;

use amoeba_abi::{Check, Rights, Status};
use common::sim::{Disk, initial_state};
use directory_server::store::{read_anchor, recover};
use directory_server::{
    GroupInput, Lookup, NOT_SERVING, Output, Query, Replica, ReplicaConfig, Reply, Request, Start, State,
    Update,
};

/// A one-member "group": what the replica sends is delivered straight back.
struct Loop {
    r: Replica<u32>,
    disk: Disk,
    now: u64,
    replies: Vec<(u32, Result<Reply, Status>)>,
}

impl Loop {
    fn new(state: State, disk: Disk) -> Loop {
        let cfg = ReplicaConfig { replicas: 1, ..ReplicaConfig::default() };
        let mut disk = disk;
        let previous = read_anchor(&mut disk, 0).unwrap();
        let r = Replica::new(cfg, Start::Create(state), previous, [9; 32]);
        Loop { r, disk, now: 1, replies: Vec::new() }
    }

    fn run(&mut self) {
        while let Some(out) = self.r.poll_output() {
            match out {
                Output::Group(payload) => {
                    self.r.on_group(self.now, GroupInput::Message { sender: 0, payload })
                }
                Output::Peer { .. } => panic!("no peers in a one-replica group"),
                Output::Reply { handle, result } => self.replies.push((handle, result)),
                Output::Store { id, op } => {
                    let result = op.run(&mut self.disk);
                    self.r.on_store_done(self.now, id, result);
                }
            }
        }
    }

    fn tick(&mut self, dt: u64) {
        self.now += dt;
        self.r.on_tick(self.now);
        self.run();
    }

    fn call(&mut self, handle: u32, req: Request) -> Result<Reply, Status> {
        self.r.on_request(self.now, handle, req);
        self.run();
        let i = self.replies.iter().position(|(h, _)| *h == handle).expect("answered at once in a loop");
        self.replies.remove(i).1
    }
}

#[test]
fn a_single_replica_serves_updates_and_reads_and_restarts_from_disk() {
    let (state, [root, _]) = initial_state();
    let sup = state.super_capability();
    let mut l = Loop::new(state, Disk::default());
    let q = Request::Query(Query::Lookup { dir: root, path: "sub".into() });
    assert_eq!(l.call(1, q.clone()), Err(NOT_SERVING), "not in the group yet");
    l.r.on_group(l.now, GroupInput::Joined { member_id: 0, members: vec![0] });
    l.run();
    assert!(l.r.is_serving());
    // Before its first lease the read goes through the group as a barrier.
    assert!(!l.r.has_lease());
    assert!(matches!(l.call(2, q.clone()), Ok(Reply::Lookup(Lookup::Found(_)))));
    l.tick(1);
    assert!(l.r.has_lease());
    // The replica picks the new directory's check; the client's is ignored.
    let create = Update::Create { server: sup, columns: vec!["owner".into()], check: Check([0; 6]) };
    let Ok(Reply::Capability(dir)) = l.call(3, Request::Update(create)) else { panic!() };
    assert_ne!(dir.check, Check([0; 6]));
    let append =
        Update::Append { dir: root, name: "new".into(), caps: vec![dir], masks: vec![Rights(0xff); 3] };
    assert_eq!(l.call(4, Request::Update(append.clone())), Ok(Reply::Done));
    assert_eq!(l.call(5, Request::Update(append)), Err(Status::Exists));
    let walk = Request::Query(Query::Lookup { dir: root, path: "new".into() });
    assert_eq!(l.call(6, walk.clone()), Ok(Reply::Lookup(Lookup::Found(vec![dir]))));
    assert_eq!(l.r.durable_position(), Some(l.r.state().applied));
    // Whole-pool restart: the disk has everything that was acknowledged.
    let before = l.r.state().clone();
    let mut disk = l.disk;
    let recovered = recover(&mut disk, 1, 1, |_| {}).unwrap().unwrap();
    assert_eq!(
        (recovered.state.dirs.clone(), recovered.state.applied),
        (before.dirs.clone(), before.applied)
    );
    let mut l = Loop::new(recovered.state, disk);
    l.r.on_group(l.now, GroupInput::Joined { member_id: 0, members: vec![0] });
    l.run();
    assert_eq!(l.call(7, walk), Ok(Reply::Lookup(Lookup::Found(vec![dir]))));
}

#[test]
fn an_oversized_update_is_refused_before_it_is_sent() {
    let (state, [root, _]) = initial_state();
    let mut l = Loop::new(state, Disk::default());
    l.r.on_group(l.now, GroupInput::Joined { member_id: 0, members: vec![0] });
    l.run();
    let entries = (0..32)
        .map(|i| directory_server::InstallEntry {
            dir: root,
            name: format!("{i:0>200}"),
            caps: vec![root; 8],
            masks: vec![Rights(0xff); 3],
            expect: None,
        })
        .collect();
    assert_eq!(l.call(1, Request::Update(Update::Install { entries })), Err(Status::ArgBad));
}

#[test]
fn a_replica_that_leaves_the_group_answers_what_it_holds() {
    let (state, [root, _]) = initial_state();
    let mut l = Loop::new(state, Disk::default());
    l.r.on_group(l.now, GroupInput::Joined { member_id: 0, members: vec![0] });
    l.run();
    // An update sent but never delivered: its outcome is unknown.
    let u = Update::Delete { dir: root, name: "sub".into() };
    l.r.on_request(l.now, 1, Request::Update(u));
    let sent = std::iter::from_fn(|| l.r.poll_output()).filter(|o| matches!(o, Output::Group(_))).count();
    assert_eq!(sent, 1);
    l.r.on_group(l.now, GroupInput::Gone);
    l.run();
    assert_eq!(l.replies, vec![(1, Err(directory_server::OUTCOME_UNKNOWN))]);
    assert!(l.r.is_gone());
    assert_eq!(l.call(2, Request::Query(Query::List { dir: root })), Err(NOT_SERVING));
}

/// One of two replicas driven by hand: its outputs are collected, not carried out.
struct Member {
    r: Replica<u32>,
    disk: Disk,
}

impl Member {
    fn new(index: u8, state: &State) -> Member {
        let cfg = ReplicaConfig { replicas: 2, index, ..ReplicaConfig::default() };
        Member {
            r: Replica::new(cfg, Start::Create(state.clone()), None, [index; 32]),
            disk: Disk::default(),
        }
    }

    fn outputs(&mut self) -> Vec<Output<u32>> {
        std::iter::from_fn(|| self.r.poll_output()).collect()
    }

    /// Runs its storage operations, finishing at `now`; what else it put out.
    fn store_at(&mut self, now: u64) -> Vec<Output<u32>> {
        let mut others = Vec::new();
        let mut pending = self.outputs();
        while !pending.is_empty() {
            for out in pending {
                match out {
                    Output::Store { id, op } => {
                        let result = op.run(&mut self.disk);
                        self.r.on_store_done(now, id, result);
                    }
                    other => others.push(other),
                }
            }
            pending = self.outputs();
        }
        others
    }
}

fn group_sends(outputs: &[Output<u32>]) -> Vec<Vec<u8>> {
    outputs.iter().filter_map(|o| if let Output::Group(p) = o { Some(p.clone()) } else { None }).collect()
}

#[test]
fn a_replica_times_the_parts_of_its_own_updates() {
    let (state, [root, _]) = initial_state();
    let mut members = [Member::new(0, &state), Member::new(1, &state)];
    for (id, m) in members.iter_mut().enumerate() {
        m.r.on_group(1, GroupInput::Joined { member_id: id as u32, members: vec![0, 1] });
        m.store_at(1); // the first checkpoint
    }
    // Each renews its lease through the group: each counts the other as a lease holder.
    let mut renews = Vec::new();
    for (id, m) in members.iter_mut().enumerate() {
        m.r.on_tick(10);
        renews.extend(group_sends(&m.store_at(10)).into_iter().map(|p| (id as u32, p)));
    }
    for m in &mut members {
        for (sender, payload) in &renews {
            m.r.on_group(20, GroupInput::Message { sender: *sender, payload: payload.clone() });
        }
        m.store_at(20);
    }
    assert!(members.iter().all(|m| m.r.has_lease()));
    // Replica 0 takes an update at 1000; the order delivers it everywhere at 1200.
    let append =
        Update::Append { dir: root, name: "new".into(), caps: vec![root], masks: vec![Rights(0xff); 3] };
    members[0].r.on_request(1000, 7, Request::Update(append));
    let sent = group_sends(&members[0].outputs());
    assert_eq!(sent.len(), 1);
    for m in &mut members {
        m.r.on_group(1200, GroupInput::Message { sender: 0, payload: sent[0].clone() });
    }
    // Replica 0's log write ends at 1500: applied, but replica 1 has not confirmed.
    let early = members[0].store_at(1500);
    assert!(!early.iter().any(|o| matches!(o, Output::Reply { .. })), "answered before the peer applied");
    // Replica 1's ends at 1800; its confirmation reaches replica 0 at 2000.
    let confirmations: Vec<Vec<u8>> = members[1]
        .store_at(1800)
        .into_iter()
        .filter_map(|o| if let Output::Peer { bytes, .. } = o { Some(bytes) } else { None })
        .collect();
    assert!(!confirmations.is_empty());
    members[0].r.on_peer(2000, &confirmations[0]);
    let answers = members[0].outputs();
    assert!(answers.contains(&Output::Reply { handle: 7, result: Ok(Reply::Done) }), "{answers:?}");
    let timings = members[0].r.update_timings();
    assert_eq!(
        timings,
        directory_server::UpdateTimings { count: 1, ordering_us: 200, logging_us: 300, confirming_us: 500 }
    );
    assert_eq!(members[1].r.update_timings().count, 0, "replica 1 answered no update of its own");
}

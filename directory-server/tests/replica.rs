//! One replica driven by hand, as a board program would drive it: its group sends
//! come back as deliveries, its storage operations run on a disk, its replies are
//! collected. Shows the calling pattern and checks the single-replica paths.

mod common;

use amoeba::{Check, Rights, Status};
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
    let recovered = recover(&mut disk, 1).unwrap().unwrap();
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

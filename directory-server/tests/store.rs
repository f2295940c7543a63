//! Storage: anchors survive torn writes, garbage is refused, the persister's
//! checkpoints and logs load back to the same state, and recovery loads the best
//! anchor, retrying reads that fail for a while, and never settles for an older one.

mod common;

use amoeba_abi::{Capability, Check, Port, Rights};
use common::sim::{Disk, ReadFaults, Rng, initial_state};
use directory_server::persist::{PersistConfig, Persister};
use directory_server::store::{
    self, Anchor, Reading, RecoverError, RecoveryError, Retry, decode_checkpoint, encode_checkpoint, load,
    read_anchor,
};
use directory_server::{AnchorSlot, State, Store, StoreDone, StoreOp, Update};
use proptest::prelude::*;

fn anchor(replica: u8, write_seq: u64, end: u64) -> Anchor {
    Anchor {
        replica,
        write_seq,
        epoch: 3,
        base: 1,
        end,
        checkpoint: Capability::owner(Port([1; 6]), 7, Check([2; 6])),
        logs: vec![Capability::owner(Port([1; 6]), 8, Check([3; 6]))],
        tail: vec![9; 20],
        garbage: vec![Capability::owner(Port([1; 6]), 6, Check([4; 6]))],
    }
}

#[test]
fn a_torn_anchor_write_leaves_the_previous_half() {
    let mut disk = Disk::default();
    let old = anchor(1, 6, 40);
    let new = anchor(1, 7, 50);
    disk.write_anchor(old.slot(), &old.encode()).unwrap();
    assert_eq!(read_anchor(&mut disk, 1).unwrap(), Some(old.clone()));
    // Every prefix of the new anchor, over what was in its half before, is refused.
    let bytes = new.encode();
    for cut in 0..bytes.len() {
        disk.anchors.insert(new.slot(), bytes[..cut].to_vec());
        assert_eq!(read_anchor(&mut disk, 1).unwrap(), Some(old.clone()), "torn at {cut}");
    }
    disk.write_anchor(new.slot(), &bytes).unwrap();
    assert_eq!(read_anchor(&mut disk, 1).unwrap(), Some(new));
    // Another replica's anchor is not ours.
    assert_eq!(read_anchor(&mut disk, 0).unwrap(), None);
}

#[test]
fn an_anchor_in_the_wrong_half_or_of_another_replica_is_ignored() {
    let mut disk = Disk::default();
    let a = anchor(2, 5, 10);
    disk.anchors.insert(AnchorSlot { replica: 2, half: 0 }, a.encode()); // belongs in half 1
    disk.anchors.insert(AnchorSlot { replica: 1, half: 1 }, a.encode()); // replica 2's
    assert_eq!(read_anchor(&mut disk, 2).unwrap(), None);
    assert_eq!(read_anchor(&mut disk, 1).unwrap(), None);
}

proptest! {
    #[test]
    fn garbage_anchors_and_files_are_refused(bytes in prop::collection::vec(any::<u8>(), 0..400), flip in any::<prop::sample::Index>()) {
        prop_assert!(Anchor::decode(&bytes).is_err());
        prop_assert!(decode_checkpoint(&bytes).is_err());
        prop_assert!(store::decode_log(&bytes).is_err());
        let good = anchor(0, 1, 2).encode();
        let mut bad = good.clone();
        let i = flip.index(bad.len());
        bad[i] ^= 0x10;
        prop_assert!(Anchor::decode(&bad).is_err());
    }
}

/// Carry out a persister's operations at once on `disk`.
fn drive(p: &mut Persister, disk: &mut Disk, state: &State) {
    for _ in 0..100 {
        p.pump(0, state);
        let Some((id, op)) = p.poll_op() else { return };
        let result = op.run(disk);
        p.done(0, id, result);
    }
    panic!("persister does not finish");
}

fn append(dir: Capability, k: u32) -> Update {
    let cap = Capability::owner(Port([5; 6]), k, Check([k as u8; 6]));
    Update::Append { dir, name: format!("n{k}"), caps: vec![cap], masks: vec![Rights(0xff); 3] }
}

#[test]
fn checkpoints_logs_and_tail_load_back() {
    for (anchor_len, max_logs) in [(200, 1), (512, 3), (1024, 16)] {
        let cfg = PersistConfig { anchor_len, max_log_files: max_logs, retry_us: 1 };
        let mut disk = Disk::default();
        let (mut state, [root, _]) = initial_state();
        let mut p = Persister::new(cfg, 0, None);
        drive(&mut p, &mut disk, &state);
        assert_eq!(p.durable_end(), Some(state.applied));
        for k in 0..60 {
            // Batches of 1..=4 records, as group commit makes them.
            for j in 0..(k % 4 + 1) {
                let u = append(root, k * 10 + j);
                p.log(state.applied + 1, &u);
                state.apply(&u).unwrap();
            }
            drive(&mut p, &mut disk, &state);
            assert_eq!(p.durable_end(), Some(state.applied));
            let a = read_anchor(&mut disk, 0).unwrap().expect("anchor");
            assert_eq!(load(&mut disk, &a).unwrap(), state);
            assert!(a.encode().len() <= anchor_len, "anchor of {} bytes", a.encode().len());
        }
        // Old checkpoints and logs are destroyed: only what the anchor names is left.
        let a = read_anchor(&mut disk, 0).unwrap().unwrap();
        assert_eq!(disk.files.len(), 1 + a.logs.len(), "leaked files ({anchor_len}, {max_logs})");
    }
}

#[test]
fn a_failed_store_operation_is_retried() {
    let mut disk = Disk::default();
    let (state, _) = initial_state();
    let mut p = Persister::new(PersistConfig::default(), 0, None);
    p.pump(0, &state);
    let (id, op) = p.poll_op().unwrap();
    p.done(10, id, Err(directory_server::StoreError::Failed));
    assert_eq!(p.durable_end(), None);
    assert_eq!(p.next_deadline(), Some(10 + PersistConfig::default().retry_us));
    p.pump(20, &state);
    assert!(p.poll_op().is_none(), "not before the retry time");
    p.pump(10 + PersistConfig::default().retry_us, &state);
    let (id2, op2) = p.poll_op().unwrap();
    assert_eq!(op2, op);
    let r = op2.run(&mut disk);
    p.done(0, id2, r);
    drive(&mut p, &mut disk, &state);
    assert_eq!(p.durable_end(), Some(state.applied));
    let _ = StoreDone::Done;
}

/// Recovery with up to `attempts` tries of each read and no pause.
fn recover(disk: &mut Disk, attempts: u32) -> Result<Option<store::Recovered>, RecoverError> {
    store::recover(disk, 3, attempts, |_| {})
}

/// Three replicas' storage: replica 1 gets furthest (10 updates), replica 2 to
/// `second` updates, replica 0 stays behind; the states at the start and at the end.
fn three_anchors(disk: &mut Disk, second: u32) -> (State, State) {
    let (mut state, [root, _]) = initial_state();
    let mut replicas: Vec<Persister> =
        (0..3).map(|i| Persister::new(PersistConfig::default(), i, None)).collect();
    for p in replicas.iter_mut() {
        drive(p, disk, &state);
    }
    let mid = state.clone();
    for k in 0..10 {
        let u = append(root, k);
        replicas[1].log(state.applied + 1, &u);
        if k < second {
            replicas[2].log(state.applied + 1, &u);
        }
        state.apply(&u).unwrap();
    }
    drive(&mut replicas[1], disk, &state);
    if second == 10 {
        drive(&mut replicas[2], disk, &state);
    }
    (mid, state)
}

#[test]
fn recovery_takes_the_best_anchor_and_starts_a_new_epoch() {
    let mut disk = Disk::default();
    let (mid, state) = three_anchors(&mut disk, 5);
    let r = recover(&mut disk, 1).unwrap().unwrap();
    assert_eq!(r.from, 1);
    assert_eq!(
        (r.state.dirs.clone(), r.state.applied, r.state.epoch),
        (state.dirs.clone(), state.applied, 1)
    );
    // A newer epoch beats a longer log of an older one.
    let mut newer = mid.clone();
    newer.epoch = 5;
    let mut p = Persister::new(PersistConfig::default(), 0, read_anchor(&mut disk, 0).unwrap());
    drive(&mut p, &mut disk, &newer);
    assert_eq!(recover(&mut disk, 1).unwrap().unwrap().from, 0);
    // Nothing stored at all: a new service.
    assert!(recover(&mut Disk::default(), 1).unwrap().is_none());
}

#[test]
fn recovery_never_settles_for_an_older_anchor_than_the_best() {
    let mut disk = Disk::default();
    let (_, state) = three_anchors(&mut disk, 5);
    // Replica 1's checkpoint is gone: replicas 0 and 2 hold less, so recovery stops.
    let best = read_anchor(&mut disk, 1).unwrap().unwrap();
    disk.destroy_file(&best.checkpoint).unwrap();
    match recover(&mut disk, 5) {
        Err(RecoverError::Best { rank, failures }) => {
            assert_eq!(rank, (0, state.applied));
            assert_eq!(failures, vec![(1, RecoveryError::Store(directory_server::StoreError::NotFound))]);
        }
        other => panic!("recovered from less than the best: {other:?}"),
    }
    let text = recover(&mut disk, 5).unwrap_err().to_string();
    assert!(text.contains("refusing to start from an older one") && text.contains("replica 1"), "{text}");
    // An anchor that cannot be read at all might be the best: recovery stops.
    disk.read_faults = Some(ReadFaults { rng: Rng(1), chance: 1.0, budget: u32::MAX, injected: 0 });
    assert!(matches!(recover(&mut disk, 3), Err(RecoverError::Anchor { replica: 0, .. })));
}

#[test]
fn an_anchor_of_the_same_rank_stands_in_for_the_best() {
    let mut disk = Disk::default();
    let (_, state) = three_anchors(&mut disk, 10);
    let first = read_anchor(&mut disk, 1).unwrap().unwrap();
    let second = read_anchor(&mut disk, 2).unwrap().unwrap();
    assert_eq!(first.rank(), second.rank());
    assert_ne!(first.checkpoint, second.checkpoint);
    // Whichever of the two comes first, losing its checkpoint loses nothing.
    for lost in [first.checkpoint, second.checkpoint] {
        let kept = disk.files.get(&lost.object).cloned().unwrap();
        disk.destroy_file(&lost).unwrap();
        let r = recover(&mut disk, 3).unwrap().unwrap();
        assert_eq!(r.state.applied, state.applied);
        assert!(r.skipped.len() <= 1 && r.skipped.iter().all(|(replica, _)| *replica != r.from));
        disk.files.insert(lost.object, kept);
    }
}

#[test]
fn reads_that_fail_for_a_while_are_tried_again() {
    let mut disk = Disk::default();
    let (_, state) = three_anchors(&mut disk, 5);
    // Every read fails, four times in all: with five attempts each, recovery gets
    // through and loads the best anchor; with one it stops, and never loads less.
    disk.read_faults = Some(ReadFaults { rng: Rng(7), chance: 1.0, budget: 4, injected: 0 });
    let mut retries: Vec<Retry> = Vec::new();
    let r = store::recover(&mut disk, 3, 5, |retry| retries.push(retry)).unwrap().unwrap();
    assert_eq!((r.from, r.state.applied), (1, state.applied));
    assert_eq!(retries.len(), 4);
    assert_eq!(retries[0].reading, Reading::Anchor(0));
    assert_eq!((retries[3].failed, retries[3].attempts), (4, 5));
    // Failures while loading the state: the best anchor's state is read again.
    let mut failing_loads = 0;
    for seed in 0..200 {
        disk.read_faults = Some(ReadFaults { rng: Rng(seed), chance: 0.5, budget: 4, injected: 0 });
        let mut loads = 0;
        let r = store::recover(&mut disk, 3, 5, |retry| {
            loads += u32::from(matches!(retry.reading, Reading::State(_)))
        });
        let r = r.unwrap().unwrap();
        assert_eq!((r.from, r.state.applied), (1, state.applied), "seed {seed}");
        failing_loads += u32::from(loads > 0);
        disk.read_faults = Some(ReadFaults { rng: Rng(seed), chance: 0.5, budget: 4, injected: 0 });
        match recover(&mut disk, 1) {
            Ok(Some(r)) => assert_eq!(r.from, 1, "seed {seed}: an older anchor without retries"),
            Err(_) => {}
            Ok(None) => panic!("seed {seed}: nothing found"),
        }
    }
    assert!(failing_loads > 20, "loads failed in only {failing_loads} runs");
}

#[test]
fn checkpoint_files_round_trip() {
    let (state, _) = initial_state();
    assert_eq!(decode_checkpoint(&encode_checkpoint(&state)), Ok(state));
    let _ = StoreOp::DestroyFile(Capability::NULL);
}

//! The replica's writer of its own anchor, checkpoints and log, sans-IO: it is told
//! which records to keep, hands out [`StoreOp`]s one job at a time and learns their
//! outcomes. Records queue up while a job is in flight and go out together in the
//! next one (group commit), so the cost per update falls as the load rises.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;

use amoeba_abi::Capability;

use crate::ops::Update;
use crate::state::State;
use crate::store::{
    ANCHOR_FIXED_LEN, Anchor, StoreDone, StoreError, StoreOp, encode_checkpoint, encode_log, write_record,
};

/// How a replica lays out its storage.
#[derive(Clone, Debug)]
pub struct PersistConfig {
    /// Bytes the program keeps for one anchor half: at least [`ANCHOR_FIXED_LEN`] +
    /// 16 × (`max_log_files` + [`PersistConfig::max_garbage`]); the rest holds the tail.
    pub anchor_len: usize,
    /// Log files after a checkpoint before the next checkpoint.
    pub max_log_files: usize,
    /// Wait before retrying a failed store operation (µs).
    pub retry_us: u64,
}

impl Default for PersistConfig {
    fn default() -> Self {
        PersistConfig { anchor_len: 1024, max_log_files: 8, retry_us: 50_000 }
    }
}

impl PersistConfig {
    /// Most files an anchor lists for destruction: what one checkpoint retires,
    /// plus what the checkpoint before it had not finished destroying when a crash
    /// came. Beyond that (crash after crash) the oldest are left to the file
    /// server's ageing.
    pub fn max_garbage(&self) -> usize {
        2 * (self.max_log_files + 1)
    }

    /// The smallest `anchor_len` that holds every log and garbage capability.
    pub fn min_anchor_len(&self) -> usize {
        ANCHOR_FIXED_LEN + 16 * (self.max_log_files + self.max_garbage())
    }

    /// Room for records inside the anchor.
    pub fn tail_capacity(&self) -> usize {
        self.anchor_len.saturating_sub(ANCHOR_FIXED_LEN + 16 * (self.max_log_files + self.max_garbage()))
    }
}

#[derive(Debug)]
enum Stage {
    /// Creating the checkpoint file of the state at `pos`.
    PutCheckpoint { pos: u64, epoch: u32 },
    /// Creating a log file holding the old tail and the batch up to `end`.
    PutLog { end: u64 },
    /// Writing the anchor; then the files of its garbage list may go.
    WriteAnchor { anchor: Anchor },
}

#[derive(Debug)]
struct Job {
    id: u64,
    op: StoreOp,
    stage: Stage,
    /// When a failed operation is to be tried again.
    retry_at: Option<u64>,
}

/// Writes one replica's storage.
#[derive(Debug)]
pub struct Persister {
    /// Sizes and limits.
    cfg: PersistConfig,
    /// Whose storage this is (its anchor slot).
    replica: u8,
    /// The last anchor on disk: written in this life, or left by a previous one
    /// (whose files go once our first checkpoint is durable).
    current: Option<Anchor>,
    /// The next anchor write's number (a newer anchor has a higher one).
    next_write_seq: u64,
    /// Everything up to here is durable (only writes of this life count).
    durable_end: Option<u64>,
    /// Records not yet written, by position.
    queue: VecDeque<(u64, Vec<u8>)>,
    /// A checkpoint was asked for and is not written yet.
    want_checkpoint: bool,
    /// The storage work in flight, if any (one at a time).
    job: Option<Job>,
    /// Destroys in flight: id → file.
    destroying: BTreeMap<u64, Capability>,
    /// Files destroyed but still on the anchor's garbage list (a few at most).
    destroyed: Vec<Capability>,
    /// Storage operations for the caller to carry out: (id, operation).
    out: VecDeque<(u64, StoreOp)>,
    /// The next operation's id.
    next_id: u64,
}

impl Persister {
    /// A writer for `replica`, whose anchor on disk (from a previous life) is `previous`.
    pub fn new(cfg: PersistConfig, replica: u8, previous: Option<Anchor>) -> Persister {
        let next_write_seq = previous.as_ref().map_or(0, |a| a.write_seq + 1);
        Persister {
            cfg,
            replica,
            current: previous,
            next_write_seq,
            durable_end: None,
            queue: VecDeque::new(),
            want_checkpoint: false,
            job: None,
            destroying: BTreeMap::new(),
            destroyed: Vec::new(),
            out: VecDeque::new(),
            next_id: 1,
        }
    }

    /// Everything up to this position is on disk (`None` before the first checkpoint).
    pub fn durable_end(&self) -> Option<u64> {
        self.durable_end
    }

    /// Records waiting to be written.
    pub fn backlog(&self) -> usize {
        self.queue.len()
    }

    /// Nothing queued, nothing being written or destroyed.
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.job.is_none() && !self.want_checkpoint && self.destroying.is_empty()
    }

    /// Write a checkpoint of the state as soon as possible.
    pub fn request_checkpoint(&mut self) {
        self.want_checkpoint = true;
    }

    /// Keep the update applied at `pos`.
    pub fn log(&mut self, pos: u64, update: &Update) {
        let mut bytes = Vec::new();
        write_record(&mut bytes, pos, update);
        self.queue.push_back((pos, bytes));
    }

    /// The next storage operation to carry out, with its id for [`Persister::done`].
    pub fn poll_op(&mut self) -> Option<(u64, StoreOp)> {
        self.out.pop_front()
    }

    /// When [`Persister::pump`] should run again for a retry.
    pub fn next_deadline(&self) -> Option<u64> {
        self.job.as_ref().and_then(|j| j.retry_at)
    }

    fn issue(&mut self, op: StoreOp, stage: Stage) {
        let id = self.next_id;
        self.next_id += 1;
        self.out.push_back((id, op.clone()));
        self.job = Some(Job { id, op, stage, retry_at: None });
    }

    /// Start the next job if none is running (or retry a failed one that is due);
    /// `state` is the replica's current state, for checkpoints.
    pub fn pump(&mut self, now: u64, state: &State) {
        if let Some(job) = &mut self.job {
            if job.retry_at.is_some_and(|t| now >= t) {
                job.retry_at = None;
                job.id = self.next_id;
                self.next_id += 1;
                self.out.push_back((job.id, job.op.clone()));
            }
            return;
        }
        let covered = self.durable_end.is_none_or(|d| state.applied >= d);
        let logs_full = self.current.as_ref().is_some_and(|a| a.logs.len() >= self.cfg.max_log_files);
        // A checkpoint waits for the last one's garbage to go, so lists stay short.
        let settled = self.destroying.is_empty();
        if (self.want_checkpoint || self.durable_end.is_none() || logs_full) && covered && settled {
            self.start_checkpoint(state);
        } else if self.durable_end.is_some() && !self.queue.is_empty() {
            // With every log slot taken, only the tail may grow until the checkpoint.
            self.start_append(!logs_full);
        }
    }

    fn start_checkpoint(&mut self, state: &State) {
        self.want_checkpoint = false;
        let stage = Stage::PutCheckpoint { pos: state.applied, epoch: state.epoch };
        self.issue(StoreOp::PutFile(encode_checkpoint(state)), stage);
    }

    fn start_append(&mut self, may_add_file: bool) {
        let Some(current) = &self.current else { return };
        let end = self.queue.back().map_or(current.end, |r| r.0);
        let mut batch: Vec<u8> = current.tail.clone();
        self.queue.iter().for_each(|(_, b)| batch.extend_from_slice(b));
        if batch.len() <= self.cfg.tail_capacity() {
            let anchor = self.next_anchor(|a| {
                a.tail = batch;
                a.end = end;
            });
            self.issue(StoreOp::WriteAnchor(anchor.slot(), anchor.encode()), Stage::WriteAnchor { anchor });
        } else if may_add_file {
            self.issue(StoreOp::PutFile(encode_log(&batch)), Stage::PutLog { end });
        }
    }

    /// The current anchor, changed by `f`, with the next write sequence number and
    /// without the garbage known to be gone.
    fn next_anchor(&self, f: impl FnOnce(&mut Anchor)) -> Anchor {
        let mut a = self.current.clone().expect("an anchor exists once a checkpoint is durable");
        a.write_seq = self.next_write_seq;
        a.garbage.retain(|c| !self.destroyed.contains(c));
        f(&mut a);
        a
    }

    /// The outcome of operation `id`.
    pub fn done(&mut self, now: u64, id: u64, result: Result<StoreDone, StoreError>) {
        if let Some(cap) = self.destroying.remove(&id) {
            // Gone (or already gone); a failure leaves it listed for the next checkpoint.
            if matches!(result, Ok(_) | Err(StoreError::NotFound)) {
                self.destroyed.push(cap);
            }
            return;
        }
        let Some(job) = self.job.take_if(|j| j.id == id && j.retry_at.is_none()) else {
            return; // a destroy, or a superseded attempt
        };
        let Job { op, stage, .. } = job;
        match (stage, result) {
            (Stage::PutCheckpoint { pos, epoch }, Ok(StoreDone::File(cap))) => {
                self.checkpoint_written(pos, epoch, cap)
            }
            (Stage::PutLog { end }, Ok(StoreDone::File(cap))) => self.log_written(end, cap),
            (Stage::WriteAnchor { anchor }, Ok(StoreDone::Done)) => self.anchor_written(anchor),
            // Failed (or answered with the wrong kind): try the same operation again.
            (stage, _) => self.job = Some(Job { id, op, stage, retry_at: Some(now + self.cfg.retry_us) }),
        }
    }

    fn checkpoint_written(&mut self, pos: u64, epoch: u32, cap: Capability) {
        // The old anchor's files, and whatever it still listed as garbage.
        let mut garbage: Vec<Capability> = Vec::new();
        if let Some(old) = &self.current {
            garbage.extend(old.garbage.iter().filter(|c| !self.destroyed.contains(c)));
            garbage.push(old.checkpoint);
            garbage.extend_from_slice(&old.logs);
        }
        let keep = self.cfg.max_garbage();
        if garbage.len() > keep {
            garbage.drain(..garbage.len() - keep);
        }
        let anchor = Anchor {
            replica: self.replica,
            write_seq: self.next_write_seq,
            epoch,
            base: pos,
            end: pos,
            checkpoint: cap,
            logs: Vec::new(),
            tail: Vec::new(),
            garbage,
        };
        self.issue(StoreOp::WriteAnchor(anchor.slot(), anchor.encode()), Stage::WriteAnchor { anchor });
    }

    fn log_written(&mut self, end: u64, cap: Capability) {
        let anchor = self.next_anchor(|a| {
            a.logs.push(cap);
            a.tail.clear();
            a.end = end;
        });
        self.issue(StoreOp::WriteAnchor(anchor.slot(), anchor.encode()), Stage::WriteAnchor { anchor });
    }

    fn anchor_written(&mut self, anchor: Anchor) {
        self.next_write_seq = anchor.write_seq + 1;
        self.durable_end = Some(anchor.end);
        while self.queue.front().is_some_and(|r| r.0 <= anchor.end) {
            self.queue.pop_front();
        }
        if anchor.logs.len() >= self.cfg.max_log_files {
            self.want_checkpoint = true;
        }
        // What this anchor no longer lists need not be remembered as destroyed.
        self.destroyed.retain(|c| anchor.garbage.contains(c));
        let pending: Vec<Capability> = anchor
            .garbage
            .iter()
            .filter(|c| !self.destroyed.contains(c) && !self.destroying.values().any(|d| d == *c))
            .copied()
            .collect();
        self.current = Some(anchor);
        for cap in pending {
            let id = self.next_id;
            self.next_id += 1;
            self.destroying.insert(id, cap);
            self.out.push_back((id, StoreOp::DestroyFile(cap)));
        }
    }
}

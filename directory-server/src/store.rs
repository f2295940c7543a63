//! What the directory service keeps on disk, and how a whole-pool restart finds it
//! again.
//!
//! Bullet files are immutable and nameless, so each replica keeps an **anchor**: a
//! small record in a fixed place (the program stores it in a few blocks of a disk
//! object), in two alternating halves. Each write goes to the half after the newest
//! one and carries a write sequence number and a checksum, so a write torn by a
//! crash leaves the other half — the previous anchor — intact and valid.
//!
//! An anchor names a **checkpoint** file (the whole [`State`] at position `base`),
//! up to `max_log_files` **log** files of update records after it, and a **tail** of
//! the most recent records kept inside the anchor itself, so that the common case —
//! a small batch of updates — costs one anchor write and no Bullet file at all.
//! Files are destroyed only once an anchor that no longer names them is durable.
//!
//! Every replica writes only its own anchor (replica index 0..n). After a whole-pool
//! restart the replica that creates the group reads every anchor and loads the one
//! with the highest (epoch, end position): all replicas apply one order, so the
//! longest log extends every other, and so holds every acknowledged update.
//! Recovery starts a new epoch, so a stale anchor of an older lineage never wins.
//!
//! Recovery never settles for less than the best anchor: an anchor it cannot read
//! might be the best one, and a shorter history loses acknowledged updates for
//! good. So a read that fails for a while ([`StoreError::Failed`]: the file server
//! busy or restarting, a disk error) is tried again, a bounded number of times
//! with a pause the caller chooses; another anchor of the same rank holds the same
//! history and may stand in for the best one; anything else stops recovery with a
//! [`RecoverError`] that says which replica's anchor could not be read.

use alloc::vec::Vec;
use core::fmt;

use amoeba_abi::Capability;
use sha2::{Digest, Sha256};

use crate::codec::{DecodeError, Reader, Writer};
use crate::ops::Update;
use crate::state::State;

/// Which anchor half: replica `replica`'s half `half` (0 or 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AnchorSlot {
    /// Replica index (0..number of replicas).
    pub replica: u8,
    /// 0 or 1.
    pub half: u8,
}

/// A storage operation failed (the program's store reports only that).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreError {
    /// The file does not exist (destroyed, or never committed).
    NotFound,
    /// Anything else: the server did not answer, the disk failed, ...
    Failed,
}

/// What the program provides: Bullet files (create with the safety flag, so a
/// returned capability names a file on disk; read whole; destroy) and the anchor
/// halves (read; write-and-flush, one at a time).
pub trait Store {
    /// Create an immutable file; returns once it is on disk.
    fn put_file(&mut self, bytes: &[u8]) -> Result<Capability, StoreError>;
    /// Read a whole file.
    fn get_file(&mut self, cap: &Capability) -> Result<Vec<u8>, StoreError>;
    /// Destroy a file.
    fn destroy_file(&mut self, cap: &Capability) -> Result<(), StoreError>;
    /// Read an anchor half; `None` if it was never written.
    fn read_anchor(&mut self, slot: AnchorSlot) -> Result<Option<Vec<u8>>, StoreError>;
    /// Write an anchor half and flush it to disk.
    fn write_anchor(&mut self, slot: AnchorSlot, bytes: &[u8]) -> Result<(), StoreError>;
}

/// A storage action the replica asks the program to carry out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreOp {
    /// [`Store::put_file`].
    PutFile(Vec<u8>),
    /// [`Store::destroy_file`] (the replica ignores the outcome).
    DestroyFile(Capability),
    /// [`Store::write_anchor`].
    WriteAnchor(AnchorSlot, Vec<u8>),
}

/// The outcome of a [`StoreOp`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreDone {
    /// A file was created.
    File(Capability),
    /// Done.
    Done,
}

impl StoreOp {
    /// Carry the operation out on a blocking store.
    pub fn run<S: Store + ?Sized>(&self, store: &mut S) -> Result<StoreDone, StoreError> {
        match self {
            StoreOp::PutFile(b) => store.put_file(b).map(StoreDone::File),
            StoreOp::DestroyFile(c) => store.destroy_file(c).map(|_| StoreDone::Done),
            StoreOp::WriteAnchor(slot, b) => store.write_anchor(*slot, b).map(|_| StoreDone::Done),
        }
    }
}

const ANCHOR_MAGIC: &[u8; 4] = b"DIRA";
const CHECKPOINT_MAGIC: &[u8; 4] = b"DIRC";
const LOG_MAGIC: &[u8; 4] = b"DIRL";
const CHECKSUM_LEN: usize = 8;
/// Bytes of an anchor besides its log and garbage capabilities and its tail.
pub const ANCHOR_FIXED_LEN: usize = 4 + 1 + 1 + 8 + 4 + 8 + 8 + 16 + 1 + 1 + 2 + CHECKSUM_LEN;

fn checksum(bytes: &[u8]) -> [u8; CHECKSUM_LEN] {
    let digest = Sha256::digest(bytes);
    let mut out = [0u8; CHECKSUM_LEN];
    out.copy_from_slice(&digest[..CHECKSUM_LEN]);
    out
}

/// `bytes` followed by their checksum.
fn sealed(mut bytes: Vec<u8>) -> Vec<u8> {
    let sum = checksum(&bytes);
    bytes.extend_from_slice(&sum);
    bytes
}

/// The bytes before a valid checksum.
fn unseal(bytes: &[u8]) -> Result<&[u8], DecodeError> {
    if bytes.len() < CHECKSUM_LEN {
        return Err(DecodeError::Truncated);
    }
    let (body, sum) = bytes.split_at(bytes.len() - CHECKSUM_LEN);
    if checksum(body) != sum { Err(DecodeError::Invalid) } else { Ok(body) }
}

fn expect_magic(r: &mut Reader<'_>, magic: &[u8; 4]) -> Result<(), DecodeError> {
    if r.take(4)? != magic {
        return Err(DecodeError::Tag);
    }
    if r.u8()? != crate::codec::FORMAT_VERSION {
        return Err(DecodeError::Version);
    }
    Ok(())
}

/// One replica's record of where its state is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Anchor {
    /// Whose anchor.
    pub replica: u8,
    /// Incremented on every write; the half written is `write_seq % 2`.
    pub write_seq: u64,
    /// The state's epoch (see [`State::epoch`]).
    pub epoch: u32,
    /// Position of the checkpoint.
    pub base: u64,
    /// Position after the last record (logs and tail).
    pub end: u64,
    /// The checkpoint file.
    pub checkpoint: Capability,
    /// Log files after the checkpoint, oldest first.
    pub logs: Vec<Capability>,
    /// Encoded records after the last log file.
    pub tail: Vec<u8>,
    /// Files no longer needed whose destruction is not yet confirmed: a replica
    /// that restarts from this anchor destroys them.
    pub garbage: Vec<Capability>,
}

impl Anchor {
    /// The half this anchor is written to.
    pub fn slot(&self) -> AnchorSlot {
        AnchorSlot { replica: self.replica, half: (self.write_seq % 2) as u8 }
    }

    /// Encoded length.
    pub fn len(&self) -> usize {
        ANCHOR_FIXED_LEN + 16 * (self.logs.len() + self.garbage.len()) + self.tail.len()
    }

    /// Never: an anchor always has its fixed part.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// (epoch, end): what recovery maximises.
    pub fn rank(&self) -> (u32, u64) {
        (self.epoch, self.end)
    }

    /// The sealed encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.raw(ANCHOR_MAGIC);
        w.u8(crate::codec::FORMAT_VERSION);
        w.u8(self.replica);
        w.u64(self.write_seq);
        w.u32(self.epoch);
        w.u64(self.base);
        w.u64(self.end);
        w.cap(&self.checkpoint);
        w.u8(self.logs.len() as u8);
        self.logs.iter().for_each(|c| w.cap(c));
        w.u8(self.garbage.len() as u8);
        self.garbage.iter().for_each(|c| w.cap(c));
        w.u16(self.tail.len() as u16);
        w.raw(&self.tail);
        sealed(w.into_bytes())
    }

    /// Decode and check an anchor half.
    pub fn decode(bytes: &[u8]) -> Result<Anchor, DecodeError> {
        let mut r = Reader::new(unseal(bytes)?);
        expect_magic(&mut r, ANCHOR_MAGIC)?;
        let replica = r.u8()?;
        let (write_seq, epoch, base, end) = (r.u64()?, r.u32()?, r.u64()?, r.u64()?);
        let checkpoint = r.cap()?;
        let n = r.u8()? as usize;
        let logs = (0..n).map(|_| r.cap()).collect::<Result<Vec<_>, _>>()?;
        let g = r.u8()? as usize;
        let garbage = (0..g).map(|_| r.cap()).collect::<Result<Vec<_>, _>>()?;
        let t = r.u16()? as usize;
        let tail = r.take(t)?.to_vec();
        r.finish()?;
        if end < base {
            return Err(DecodeError::Invalid);
        }
        Ok(Anchor { replica, write_seq, epoch, base, end, checkpoint, logs, tail, garbage })
    }
}

/// Append one update record (its position and the update) to `out`.
pub fn write_record(out: &mut Vec<u8>, pos: u64, update: &Update) {
    let mut w = Writer::from_vec(core::mem::take(out));
    w.u64(pos);
    update.write(&mut w);
    *out = w.into_bytes();
}

/// Decode a run of records.
pub fn read_records(bytes: &[u8]) -> Result<Vec<(u64, Update)>, DecodeError> {
    let mut r = Reader::new(bytes);
    let mut out = Vec::new();
    while r.remaining() > 0 {
        out.push((r.u64()?, Update::read(&mut r)?));
    }
    Ok(out)
}

/// A checkpoint file's bytes.
pub fn encode_checkpoint(state: &State) -> Vec<u8> {
    let mut w = Writer::default();
    w.raw(CHECKPOINT_MAGIC);
    w.u8(crate::codec::FORMAT_VERSION);
    w.raw(&state.encode());
    sealed(w.into_bytes())
}

/// Decode a checkpoint file.
pub fn decode_checkpoint(bytes: &[u8]) -> Result<State, DecodeError> {
    let mut r = Reader::new(unseal(bytes)?);
    expect_magic(&mut r, CHECKPOINT_MAGIC)?;
    State::decode(r.rest())
}

/// A log file's bytes: the encoded records.
pub fn encode_log(records: &[u8]) -> Vec<u8> {
    let mut w = Writer::default();
    w.raw(LOG_MAGIC);
    w.u8(crate::codec::FORMAT_VERSION);
    w.raw(records);
    sealed(w.into_bytes())
}

/// The records of a log file.
pub fn decode_log(bytes: &[u8]) -> Result<Vec<(u64, Update)>, DecodeError> {
    let mut r = Reader::new(unseal(bytes)?);
    expect_magic(&mut r, LOG_MAGIC)?;
    read_records(r.rest())
}

/// Why a stored state could not be loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecoveryError {
    /// The store failed.
    Store(StoreError),
    /// A file or record did not decode.
    Corrupt(DecodeError),
    /// Records are missing or out of order.
    Gap,
}

impl fmt::Display for RecoveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecoveryError::Store(e) => write!(f, "store: {e:?}"),
            RecoveryError::Corrupt(e) => write!(f, "corrupt: {e}"),
            RecoveryError::Gap => f.write_str("records missing"),
        }
    }
}

impl From<StoreError> for RecoveryError {
    fn from(e: StoreError) -> Self {
        RecoveryError::Store(e)
    }
}

impl From<DecodeError> for RecoveryError {
    fn from(e: DecodeError) -> Self {
        RecoveryError::Corrupt(e)
    }
}

/// The newest valid half of `replica`'s anchor, if any.
pub fn read_anchor<S: Store + ?Sized>(store: &mut S, replica: u8) -> Result<Option<Anchor>, StoreError> {
    let mut best: Option<Anchor> = None;
    for half in 0..2 {
        let Some(bytes) = store.read_anchor(AnchorSlot { replica, half })? else { continue };
        let Ok(a) = Anchor::decode(&bytes) else { continue };
        if a.replica == replica
            && a.slot().half == half
            && best.as_ref().is_none_or(|b| a.write_seq > b.write_seq)
        {
            best = Some(a);
        }
    }
    Ok(best)
}

/// The state an anchor describes: its checkpoint, then every record in order.
pub fn load<S: Store + ?Sized>(store: &mut S, anchor: &Anchor) -> Result<State, RecoveryError> {
    let mut state = decode_checkpoint(&store.get_file(&anchor.checkpoint)?)?;
    if state.applied != anchor.base || state.epoch != anchor.epoch {
        return Err(RecoveryError::Gap);
    }
    let mut replay = |records: Vec<(u64, Update)>| {
        for (pos, update) in records {
            if pos != state.applied + 1 {
                return Err(RecoveryError::Gap);
            }
            // The outcome was decided when the update was first applied.
            let _ = state.apply(&update);
        }
        Ok(())
    };
    for log in &anchor.logs {
        replay(decode_log(&store.get_file(log)?)?)?;
    }
    replay(read_records(&anchor.tail)?)?;
    if state.applied != anchor.end {
        return Err(RecoveryError::Gap);
    }
    Ok(state)
}

/// What [`recover`] found.
#[derive(Clone, Debug)]
pub struct Recovered {
    /// The state with the highest (epoch, position), its epoch already advanced:
    /// the caller starts a new lineage with it.
    pub state: State,
    /// Whose anchor it came from.
    pub from: u8,
    /// Anchors of the same rank that could not be loaded before this one was
    /// (they hold the same history, so nothing is lost).
    pub skipped: Vec<(u8, RecoveryError)>,
}

/// Why recovery stopped rather than start from less than the best stored state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecoverError {
    /// Replica `replica`'s anchor could not be read, so its rank is unknown.
    Anchor {
        /// Whose anchor.
        replica: u8,
        /// The last failure.
        error: StoreError,
    },
    /// No anchor of the best rank (epoch, end position) could be loaded; every
    /// other anchor holds a shorter history.
    Best {
        /// The best rank.
        rank: (u32, u64),
        /// Each anchor of that rank, and why it did not load.
        failures: Vec<(u8, RecoveryError)>,
    },
}

impl fmt::Display for RecoverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecoverError::Anchor { replica, error } => {
                write!(f, "replica {replica}'s anchor cannot be read ({error:?})")
            }
            RecoverError::Best { rank: (epoch, end), failures } => {
                write!(f, "the newest stored state (epoch {epoch}, position {end}) cannot be loaded:")?;
                for (replica, error) in failures {
                    write!(f, " replica {replica}'s anchor: {error};")?;
                }
                f.write_str(" refusing to start from an older one, which would lose acknowledged updates")
            }
        }
    }
}

/// What recovery is reading when a read fails and it tries again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Reading {
    /// Replica `.0`'s anchor halves.
    Anchor(u8),
    /// The state replica `.0`'s anchor names (its checkpoint and log files).
    State(u8),
}

/// One failed read that will be tried again, for the caller to report and to
/// pause on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retry {
    /// What failed.
    pub reading: Reading,
    /// How many attempts failed so far (1 after the first).
    pub failed: u32,
    /// Of how many at most.
    pub attempts: u32,
    /// Why.
    pub error: RecoveryError,
}

/// Does a failure of this kind go away when tried again?
fn transient(error: &RecoveryError) -> bool {
    matches!(error, RecoveryError::Store(StoreError::Failed))
}

/// Runs `read` until it succeeds, fails for good, or fails transiently `attempts`
/// times; `pause` hears of each transient failure that is tried again.
pub fn with_retries<T>(
    reading: Reading,
    attempts: u32,
    pause: &mut dyn FnMut(Retry),
    mut read: impl FnMut() -> Result<T, RecoveryError>,
) -> Result<T, RecoveryError> {
    let mut failed = 0;
    loop {
        match read() {
            Err(error) if transient(&error) && failed + 1 < attempts.max(1) => {
                failed += 1;
                pause(Retry { reading, failed, attempts, error });
            }
            other => return other,
        }
    }
}

/// Whole-pool restart: read every replica's anchor and load the best state.
/// `Ok(None)` when nothing was ever stored (a new service). Each read that fails
/// transiently is tried up to `attempts` times, with `pause` between; recovery
/// stops with an error rather than load an anchor older than the best (see the
/// module's documentation).
pub fn recover<S: Store + ?Sized>(
    store: &mut S,
    replicas: u8,
    attempts: u32,
    mut pause: impl FnMut(Retry),
) -> Result<Option<Recovered>, RecoverError> {
    let mut anchors = Vec::new();
    for replica in 0..replicas {
        let anchor = with_retries(Reading::Anchor(replica), attempts, &mut pause, || {
            read_anchor(store, replica).map_err(RecoveryError::Store)
        });
        match anchor {
            Ok(Some(a)) => anchors.push(a),
            Ok(None) => {}
            Err(RecoveryError::Store(error)) => return Err(RecoverError::Anchor { replica, error }),
            Err(_) => return Err(RecoverError::Anchor { replica, error: StoreError::Failed }),
        }
    }
    anchors.sort_by_key(|a| core::cmp::Reverse(a.rank()));
    let Some(rank) = anchors.first().map(Anchor::rank) else { return Ok(None) };
    let mut skipped = Vec::new();
    for a in anchors.iter().take_while(|a| a.rank() == rank) {
        match with_retries(Reading::State(a.replica), attempts, &mut pause, || load(store, a)) {
            Ok(mut state) => {
                state.epoch += 1;
                return Ok(Some(Recovered { state, from: a.replica, skipped }));
            }
            Err(e) => skipped.push((a.replica, e)),
        }
    }
    Err(RecoverError::Best { rank, failures: skipped })
}

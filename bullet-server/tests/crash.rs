//! Crash simulation: a random workload (creates of many sizes, safe and unsafe
//! commits, edits, destroys, syncs, ages, creates that need compaction, and files
//! written in chunks straight to disk: reserved, written chunk by chunk — sometimes
//! a chunk again — and committed) runs on a simulated disk that crashes at a random
//! operation — losing any subset of the unflushed writes and tearing the write in
//! flight — then the store is mounted again (sometimes crashing during mount too,
//! sometimes with one superblock copy damaged besides) and checked against what the
//! client was told:
//!
//! * every file whose safe commit (or a later sync) was acknowledged reads back
//!   byte for byte;
//! * every other file is either gone or intact — nothing half-written is served; a
//!   file still being written in chunks is gone; an unknown file may only be the one
//!   whose create the crash cut, with its content;
//! * the free space is exactly the data area less the files (the store's own tiling
//!   check and an explicit count: a cut chunked file's run is free again), and both
//!   superblock copies and the inode table on disk match memory.
//!
//! Each seed runs two workload-crash-mount cycles. `BULLET_SEEDS=n` runs n seeds
//! (default 10,000), `BULLET_SEED=s` replays one and prints its story.

use amoeba_abi::{Capability, Rng, Status};
use amoeba_ipc::interfaces::{BS_COMMIT, BS_SAFETY};
use bullet_server::sim::{SimDisk, SplitMix64};
use bullet_server::{Config, Faults, MountError, Store};

const DEFAULT_SEEDS: u64 = 10_000;
const CYCLES: usize = 2;
/// The largest file of the simulation (the disks are small).
const MAX_FILE: usize = 256 << 10;

/// What the client may expect of a file it holds a capability for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    /// Uncommitted: gone after a crash.
    Volatile,
    /// Reserved and being written in chunks (`written` bytes so far): gone after a
    /// crash.
    Writing,
    /// Committed, durability not promised: gone or intact after a crash.
    Maybe,
    /// Safely committed or synced: intact after any crash.
    Durable,
    /// Destroyed, removal not yet synced: gone or intact after a crash.
    Destroyed,
    /// Gone for good: its capability must be refused.
    Gone,
}

struct Known {
    cap: Capability,
    content: Vec<u8>,
    fate: Fate,
    /// Bytes written so far of a file being written in chunks.
    written: usize,
}

/// The client's view, and how the run went (for the summary).
#[derive(Default)]
struct Model {
    files: Vec<Known>,
    /// Content of a new file whose create or edit the crash cut: it may exist.
    in_flight: Option<Vec<u8>>,
    trace: bool,
    /// Files written in chunks and committed, so far.
    chunked_commits: u64,
    /// Crashes that cut a file being written in chunks.
    crashes_while_writing: u64,
}

impl Model {
    fn note(&mut self, what: impl FnOnce() -> String) {
        if self.trace {
            println!("  {}", what());
        }
    }

    fn live(&self, pick: impl Fn(Fate) -> bool) -> Vec<usize> {
        (0..self.files.len()).filter(|&i| pick(self.files[i].fate)).collect()
    }
}

/// Parameters of one seed's store.
struct Setup {
    block_size: usize,
    blocks: u64,
    /// Blocks per transfer: small limits cut large writes into several, any of which
    /// the crash may hit.
    transfer_blocks: usize,
    config: Config,
}

fn setup(rng: &mut SplitMix64) -> Setup {
    let block_size = if rng.chance_ratio(1, 8) { 4096 } else { 512 };
    let bytes = (32 + rng.below(224)) << 10;
    let config = Config {
        inode_count: 4 + rng.below(44) as u32,
        cache_bytes: [0, 4 << 10, 32 << 10, 1 << 20][rng.below(4) as usize],
        uncommitted_bytes: 2 * MAX_FILE,
        max_file_size: MAX_FILE as u32,
        uncommitted_life: 1 + rng.below(3) as u8,
    };
    let transfer_blocks = [1, 3, 16, 4096][rng.below(4) as usize];
    Setup { block_size, blocks: bytes / block_size as u64, transfer_blocks, config }
}

fn file_size(rng: &mut SplitMix64, bs: usize) -> usize {
    match rng.below(8) {
        0 => 0,
        1 => [1, bs - 1, bs, bs + 1][rng.below(4) as usize],
        2..=5 => 1 + rng.below(4 * bs as u64) as usize,
        _ => 1 + rng.below(32 << 10) as usize,
    }
}

fn content(rng: &mut SplitMix64, len: usize) -> Vec<u8> {
    let mut v = vec![0; len];
    rng.fill(&mut v);
    v
}

fn commit_flags(rng: &mut SplitMix64) -> u32 {
    [0, BS_COMMIT, BS_COMMIT | BS_SAFETY][rng.below(3) as usize]
}

fn fate_after_commit(flags: u32) -> Fate {
    match flags {
        0 => Fate::Volatile,
        BS_COMMIT => Fate::Maybe,
        _ => Fate::Durable,
    }
}

/// The result of one workload step: the store said `Ok`/an expected error, or it hit
/// the crash (the workload stops there).
enum Step {
    Done,
    Crashed,
}

/// Handle a status the store returned: `SysErr` means the disk crashed (anything
/// else would be a bug); other errors are legitimate refusals.
fn outcome<T>(store: &Store<SimDisk>, r: &Result<T, Status>, allowed: &[Status]) -> Result<Step, String> {
    match r {
        Ok(_) => Ok(Step::Done),
        Err(Status::SysErr) if store.device().is_crashed() => Ok(Step::Crashed),
        Err(s) if allowed.contains(s) => Ok(Step::Done),
        Err(s) => Err(format!("unexpected status {s}")),
    }
}

const CREATE_REFUSALS: &[Status] = &[Status::NoSpace, Status::NoMem, Status::Overflow];

fn op_create(
    store: &mut Store<SimDisk>,
    m: &mut Model,
    rng: &mut SplitMix64,
    len: usize,
) -> Result<Step, String> {
    let data = content(rng, len);
    let flags = commit_flags(rng);
    let sup = store.super_capability();
    let r = store.create(&sup, &data, flags);
    m.note(|| format!("create {len} bytes flags {flags}: {r:?}"));
    let step = outcome(store, &r, CREATE_REFUSALS)?;
    match (r, &step) {
        (Ok(cap), _) => {
            m.files.push(Known { cap, content: data, fate: fate_after_commit(flags), written: 0 })
        }
        (Err(_), Step::Crashed) if flags != 0 => m.in_flight = Some(data),
        _ => {}
    }
    Ok(step)
}

/// Reserve a file of `len` bytes to be written in chunks.
fn op_reserve(
    store: &mut Store<SimDisk>,
    m: &mut Model,
    rng: &mut SplitMix64,
    len: usize,
) -> Result<Step, String> {
    let data = content(rng, len);
    let sup = store.super_capability();
    let r = store.reserve(&sup, len as u64);
    m.note(|| format!("reserve {len} bytes: {r:?}"));
    let step = outcome(store, &r, &[Status::NoSpace, Status::Overflow])?;
    if let Ok(cap) = r {
        m.files.push(Known { cap, content: data, fate: Fate::Writing, written: 0 });
    }
    Ok(step)
}

/// The next chunk of a file being written (sometimes an earlier one again, as a
/// retried request would), in whole blocks unless it ends the file.
fn op_write_chunk(
    store: &mut Store<SimDisk>,
    m: &mut Model,
    rng: &mut SplitMix64,
    bs: usize,
) -> Result<Step, String> {
    let open = m.live(|f| f == Fate::Writing);
    if open.is_empty() {
        let len = file_size(rng, bs) * (1 + rng.below(4) as usize);
        return op_reserve(store, m, rng, len.min(MAX_FILE));
    }
    let k = open[rng.below(open.len() as u64) as usize];
    let (cap, len, written) = (m.files[k].cap, m.files[k].content.len(), m.files[k].written);
    let whole = written == len;
    let at = if written > 0 && (whole || rng.chance_ratio(1, 6)) {
        // A chunk written before, again.
        rng.below(((written - 1) / bs) as u64 + 1) as usize * bs
    } else {
        written
    };
    let end = (at + bs * (1 + rng.below(24) as usize)).min(len);
    let r = store.write(&cap, at as u64, &m.files[k].content[at..end]);
    m.note(|| format!("write {cap} {at}..{end}: {r:?}"));
    let step = outcome(store, &r, &[Status::CapBad])?;
    let f = &mut m.files[k];
    match r {
        Ok(()) => f.written = f.written.max(end),
        Err(Status::CapBad) => f.fate = Fate::Gone, // aged away meanwhile
        Err(_) => {}
    }
    Ok(step)
}

/// Commit a file written in chunks (refused while not all of it is written).
fn op_commit_written(
    store: &mut Store<SimDisk>,
    m: &mut Model,
    rng: &mut SplitMix64,
    bs: usize,
) -> Result<Step, String> {
    let open = m.live(|f| f == Fate::Writing);
    let Some(&k) = open.get(rng.below(open.len().max(1) as u64) as usize) else {
        return op_write_chunk(store, m, rng, bs);
    };
    let flags = [BS_COMMIT, BS_COMMIT | BS_SAFETY][rng.below(2) as usize];
    let (cap, whole) = (m.files[k].cap, m.files[k].written == m.files[k].content.len());
    let r = store.commit(&cap, flags);
    m.note(|| format!("commit {cap} flags {flags}: {r:?}"));
    let step = outcome(store, &r, &[Status::CapBad, Status::ArgBad])?;
    let f = &mut m.files[k];
    match (&r, &step) {
        (Err(Status::ArgBad), _) if !whole => {}
        (Err(Status::ArgBad), _) => return Err(format!("commit of the whole file {cap} refused")),
        (Ok(()), _) if !whole => return Err(format!("commit of {cap} accepted before it was whole")),
        (Err(Status::CapBad), _) => f.fate = Fate::Gone,
        (Ok(()), _) => {
            f.fate = fate_after_commit(flags);
            m.chunked_commits += 1;
        }
        // Committed in memory, its inode maybe on disk.
        (_, Step::Crashed) => f.fate = Fate::Maybe,
        _ => {}
    }
    Ok(step)
}

fn op_create_any(
    store: &mut Store<SimDisk>,
    m: &mut Model,
    rng: &mut SplitMix64,
    bs: usize,
) -> Result<Step, String> {
    let len = file_size(rng, bs);
    op_create(store, m, rng, len)
}

/// A create that fits the free space in total but no hole (when there is such a size).
fn op_create_needing_compaction(
    store: &mut Store<SimDisk>,
    m: &mut Model,
    rng: &mut SplitMix64,
    bs: usize,
) -> Result<Step, String> {
    let st = store.stats();
    let (hole, free) = (st.largest_hole as usize, (st.free_blocks + st.waiting_blocks) as usize);
    let blocks = if free > hole + 1 {
        hole + 1 + rng.below((free - hole) as u64) as usize
    } else {
        // No fragmentation yet: fill most of the hole, so destroys will make some.
        hole / 2 + rng.below(hole as u64 / 2 + 1) as usize
    };
    let len = (blocks * bs).saturating_sub(rng.below(bs as u64) as usize).min(MAX_FILE);
    op_create(store, m, rng, len)
}

fn op_append(
    store: &mut Store<SimDisk>,
    m: &mut Model,
    rng: &mut SplitMix64,
    bs: usize,
) -> Result<Step, String> {
    let open = m.live(|f| f == Fate::Volatile);
    if open.is_empty() {
        return op_create_any(store, m, rng, bs);
    }
    let k = open[rng.below(open.len() as u64) as usize];
    let len = file_size(rng, bs) / 2;
    let data = content(rng, len);
    let flags = commit_flags(rng);
    let (cap, at) = (m.files[k].cap, m.files[k].content.len());
    let r = store.modify(&cap, at as u64, &data, flags);
    m.note(|| format!("append {} bytes to {cap} flags {flags}: {r:?}", data.len()));
    let step = outcome(store, &r, &[Status::NoSpace, Status::NoMem, Status::Overflow, Status::CapBad])?;
    let f = &mut m.files[k];
    match (&r, &step) {
        // Aged away meanwhile.
        (Err(Status::CapBad), _) => f.fate = Fate::Gone,
        // Too big or no memory: nothing changed.
        (Err(Status::NoMem | Status::Overflow), _) => {}
        // Changed in place; committed unless the commit failed (no space, crash).
        _ => {
            f.content.extend_from_slice(&data);
            f.fate = match (&r, &step) {
                (Ok(_), _) => fate_after_commit(flags),
                (_, Step::Crashed) => Fate::Maybe,
                _ => Fate::Volatile,
            };
        }
    }
    Ok(step)
}

/// Modify, insert or delete on a committed file: a new file.
fn op_edit(
    store: &mut Store<SimDisk>,
    m: &mut Model,
    rng: &mut SplitMix64,
    bs: usize,
) -> Result<Step, String> {
    let committed = m.live(|f| matches!(f, Fate::Maybe | Fate::Durable));
    if committed.is_empty() {
        return op_create_any(store, m, rng, bs);
    }
    let k = committed[rng.below(committed.len() as u64) as usize];
    let (cap, old) = (m.files[k].cap, m.files[k].content.clone());
    let at = rng.below(old.len() as u64 + 1) as usize;
    let len = rng.below(2 * bs as u64) as usize;
    let data = content(rng, len);
    let flags = commit_flags(rng);
    let (r, new) = match rng.below(3) {
        0 => {
            let mut new = old.clone();
            new.resize(new.len().max(at + data.len()), 0);
            new[at..at + data.len()].copy_from_slice(&data);
            (store.modify(&cap, at as u64, &data, flags), new)
        }
        1 => {
            let new = [&old[..at], &data[..], &old[at..]].concat();
            (store.insert(&cap, at as u64, &data, flags), new)
        }
        _ => {
            let len = rng.below((old.len() - at) as u64 + 1) as usize;
            let new = [&old[..at], &old[at + len..]].concat();
            (store.delete(&cap, at as u64, len as u64, flags), new)
        }
    };
    m.note(|| format!("edit {cap} at {at} flags {flags}: {r:?}"));
    let step = outcome(store, &r, CREATE_REFUSALS)?;
    match (r, &step) {
        (Ok(new_cap), _) => {
            if new_cap.object == cap.object {
                return Err("an edit of a committed file changed it in place".into());
            }
            m.files.push(Known { cap: new_cap, content: new, fate: fate_after_commit(flags), written: 0 });
        }
        (Err(_), Step::Crashed) if flags != 0 => m.in_flight = Some(new),
        _ => {}
    }
    Ok(step)
}

fn op_destroy(store: &mut Store<SimDisk>, m: &mut Model, rng: &mut SplitMix64) -> Result<Step, String> {
    let live = m.live(|f| matches!(f, Fate::Volatile | Fate::Writing | Fate::Maybe | Fate::Durable));
    let Some(&k) = live.get(rng.below(live.len().max(1) as u64) as usize) else { return Ok(Step::Done) };
    let cap = m.files[k].cap;
    let r = store.destroy(&cap);
    m.note(|| format!("destroy {cap}: {r:?}"));
    let step = outcome(store, &r, &[Status::CapBad])?;
    let f = &mut m.files[k];
    f.fate = match (r, f.fate) {
        (Err(_), _) | (Ok(()), Fate::Volatile | Fate::Writing) => Fate::Gone,
        (Ok(()), _) => Fate::Destroyed,
    };
    Ok(step)
}

fn op_sync(store: &mut Store<SimDisk>, m: &mut Model) -> Result<Step, String> {
    let sup = store.super_capability();
    let r = store.sync(&sup);
    m.note(|| format!("sync: {r:?}"));
    let step = outcome(store, &r, &[])?;
    if r.is_ok() {
        for f in &mut m.files {
            f.fate = match f.fate {
                Fate::Maybe => Fate::Durable,
                Fate::Destroyed => Fate::Gone,
                other => other,
            };
        }
    }
    Ok(step)
}

fn op_age(store: &mut Store<SimDisk>, m: &mut Model) -> Result<Step, String> {
    let sup = store.super_capability();
    let r = store.age(&sup);
    m.note(|| format!("age: {r:?}"));
    // Which uncommitted files went is the store's business; ask it.
    for f in &mut m.files {
        if matches!(f.fate, Fate::Volatile | Fate::Writing) && store.size(&f.cap) == Err(Status::CapBad) {
            f.fate = Fate::Gone;
        }
    }
    outcome(store, &r, &[])
}

fn op_read(store: &mut Store<SimDisk>, m: &mut Model, rng: &mut SplitMix64) -> Result<Step, String> {
    let readable = m.live(|f| matches!(f, Fate::Maybe | Fate::Durable));
    let Some(&k) = readable.get(rng.below(readable.len().max(1) as u64) as usize) else {
        return Ok(Step::Done);
    };
    let f = &m.files[k];
    let at = rng.below(f.content.len() as u64 + 1) as usize;
    let len = rng.below(f.content.len() as u64 + 2) as usize;
    let got =
        store.read(&f.cap, at as u64, len).map(|d| d == &f.content[at..(at + len).min(f.content.len())]);
    match got {
        Ok(true) => Ok(Step::Done),
        Ok(_) => Err(format!("read of {} at {at} returned other bytes", f.cap)),
        Err(Status::SysErr) if store.device().is_crashed() => Ok(Step::Crashed),
        Err(s) => Err(format!("read of {} failed: {s}", f.cap)),
    }
}

/// Run random operations until `ops` are done or one hits the crash.
fn workload(
    store: &mut Store<SimDisk>,
    m: &mut Model,
    rng: &mut SplitMix64,
    bs: usize,
    ops: usize,
) -> Result<(), String> {
    let crash_op = rng.below(ops as u64 + 1) as usize;
    for i in 0..ops {
        if i == crash_op {
            let reach = [1, 4, 16, 64, 512][rng.below(5) as usize];
            store.device_mut().crash_after(rng.below(reach));
        }
        let step = match rng.below(100) {
            0..=24 => op_create_any(store, m, rng, bs)?,
            25..=33 => op_create_needing_compaction(store, m, rng, bs)?,
            34..=42 => op_append(store, m, rng, bs)?,
            43..=54 => op_edit(store, m, rng, bs)?,
            55..=64 => op_destroy(store, m, rng)?,
            65..=71 => op_sync(store, m)?,
            72..=74 => op_age(store, m)?,
            75..=79 => op_read(store, m, rng)?,
            80..=91 => op_write_chunk(store, m, rng, bs)?,
            _ => op_commit_written(store, m, rng, bs)?,
        };
        store.check_consistency().map_err(|e| format!("after op {i}: {e}"))?;
        if let Step::Crashed = step {
            m.note(|| format!("crashed in op {i}"));
            m.crashes_while_writing += !m.live(|f| f == Fate::Writing).is_empty() as u64;
            break;
        }
    }
    Ok(())
}

fn store_rng(rng: &mut SplitMix64) -> Rng {
    let mut seed = [0u8; 32];
    rng.fill(&mut seed);
    Rng::from_seed(seed)
}

/// Cut the power and mount again; a quarter of the time the crash hits the mount
/// itself (which may be finishing an interrupted move or repairing a superblock),
/// and then it is cut and mounted once more. An eighth of the time one superblock
/// copy is damaged besides (zeroed or garbage), as a bad sector would be.
fn crash_and_mount(
    store: Store<SimDisk>,
    setup: &Setup,
    rng: &mut SplitMix64,
    m: &mut Model,
) -> Result<Store<SimDisk>, String> {
    let geometry = store.geometry();
    let mut disk = store.into_device();
    // One bad sector per cycle: a second would take both copies.
    let mut damage = rng.chance_ratio(1, 8);
    loop {
        disk.restart(rng);
        if std::mem::take(&mut damage) {
            let block = if rng.chance_ratio(1, 2) { 0 } else { geometry.block_count - 1 };
            let mut bad = vec![0; geometry.block_size];
            if rng.chance_ratio(1, 2) {
                rng.fill(&mut bad);
            }
            m.note(|| format!("superblock copy at block {block} damaged"));
            disk.damage(block, &bad);
        }
        let crash_in_mount = rng.chance_ratio(1, 4);
        if crash_in_mount {
            disk.crash_after(rng.below(64));
        }
        match Store::mount(disk, setup.config, store_rng(rng)) {
            Ok(mut s) if !s.device().is_crashed() => {
                // Disarm a crash point the mount did not reach.
                s.device_mut().crash_after(u64::MAX / 2);
                return Ok(s);
            }
            Ok(_) => return Err("mount succeeded on a crashed disk".into()),
            Err(f) if matches!(f.error, MountError::Disk(_)) && f.device.is_crashed() => {
                m.note(|| "crashed during mount".into());
                disk = f.device;
            }
            Err(f) => return Err(format!("mount failed: {}", f.error)),
        }
    }
}

/// After a crash and mount: check every promise, then make the model match the disk.
fn verify(store: &mut Store<SimDisk>, m: &mut Model) -> Result<(), String> {
    store.check_consistency().map_err(|e| e.to_string())?;
    store.check_disk().map_err(|e| e.to_string())?;
    for f in &mut m.files {
        let found = match store.size(&f.cap) {
            Err(Status::CapBad) => None,
            Ok(size) => {
                Some(store.read(&f.cap, 0, size as usize).map_err(|e| format!("read {}: {e}", f.cap))?)
            }
            Err(e) => return Err(format!("size of {}: {e}", f.cap)),
        };
        match (f.fate, found) {
            (Fate::Durable, None) => return Err(format!("acknowledged file {} lost", f.cap)),
            (Fate::Volatile | Fate::Writing | Fate::Gone, Some(_)) => {
                return Err(format!("{:?} file {} exists after the crash", f.fate, f.cap));
            }
            (_, Some(data)) if data != f.content.as_slice() => {
                return Err(format!(
                    "{:?} file {} has other content after the crash ({} bytes, {} expected)",
                    f.fate,
                    f.cap,
                    data.len(),
                    f.content.len()
                ));
            }
            (_, found) => f.fate = if found.is_some() { Fate::Durable } else { Fate::Gone },
        }
    }
    let in_flight = m.in_flight.take();
    let mut unknown = 0;
    let mut used_blocks = 0;
    let bs = store.geometry().block_size as u64;
    for info in store.files() {
        used_blocks += info.size.div_ceil(bs);
        if !info.committed {
            return Err(format!("uncommitted file {} after mount", info.capability));
        }
        if m.files.iter().any(|f| f.cap == info.capability) {
            continue;
        }
        unknown += 1;
        let data = store.read(&info.capability, 0, info.size as usize).map_err(|e| e.to_string())?.to_vec();
        if unknown > 1 || in_flight.as_ref() != Some(&data) {
            return Err(format!(
                "file {} of {} bytes that no acknowledged or cut create made",
                info.capability, info.size
            ));
        }
        m.files.push(Known { cap: info.capability, content: data, fate: Fate::Durable, written: 0 });
    }
    let st = store.stats();
    if st.free_blocks != st.data_blocks - used_blocks || st.waiting_blocks != 0 {
        return Err(format!(
            "free space {} (+{} waiting) but {} data blocks less {} used",
            st.free_blocks, st.waiting_blocks, st.data_blocks, used_blocks
        ));
    }
    Ok(())
}

/// What one seed exercised, for the summary.
#[derive(Default, Debug, Clone, Copy)]
struct Tally {
    crashes_in_op: u64,
    compactions: u64,
    /// Files written in chunks and committed.
    chunked_commits: u64,
    /// Crashes in an operation while a file was being written in chunks.
    crashes_while_writing: u64,
    /// Mounts that rewrote a damaged superblock copy.
    superblock_repairs: u64,
    /// Mounts that finished a move a crash cut.
    moves_finished_by_mount: u64,
    files_checked: u64,
}

fn run_seed(seed: u64, faults: Faults, trace: bool) -> Result<Tally, String> {
    let mut rng = SplitMix64::new(seed);
    let setup = setup(&mut rng);
    let disk = SimDisk::new(setup.block_size, setup.blocks)
        .with_max_transfer(setup.transfer_blocks * setup.block_size);
    let mut store = Store::format(disk, setup.config, store_rng(&mut rng)).map_err(|f| f.to_string())?;
    store.inject_faults(faults);
    let mut m = Model { trace, ..Model::default() };
    let mut tally = Tally::default();
    for cycle in 0..CYCLES {
        let ops = 6 + rng.below(20) as usize;
        let result = workload(&mut store, &mut m, &mut rng, setup.block_size, ops);
        tally.compactions += store.stats().counters.compactions;
        tally.crashes_in_op += store.device().is_crashed() as u64;
        result.map_err(|e| format!("cycle {cycle}: {e}"))?;
        store =
            crash_and_mount(store, &setup, &mut rng, &mut m).map_err(|e| format!("cycle {cycle}: {e}"))?;
        store.inject_faults(faults);
        tally.moves_finished_by_mount += (store.stats().counters.blocks_moved > 0) as u64;
        tally.superblock_repairs += (store.stats().counters.superblocks_rewritten > 0) as u64;
        verify(&mut store, &mut m).map_err(|e| format!("cycle {cycle} after the crash: {e}"))?;
        tally.files_checked += m.files.len() as u64;
    }
    tally.chunked_commits = m.chunked_commits;
    tally.crashes_while_writing = m.crashes_while_writing;
    Ok(tally)
}

fn replay_hint(seed: u64) -> String {
    format!(
        "replay: BULLET_SEED={seed} cargo test -p bullet-server --test crash -- --nocapture crash_at_random_points"
    )
}

#[test]
fn crash_at_random_points() {
    if let Ok(s) = std::env::var("BULLET_SEED") {
        let seed: u64 = s.parse().expect("BULLET_SEED must be a number");
        match run_seed(seed, Faults::default(), true) {
            Ok(t) => println!("seed {seed}: ok {t:?}"),
            Err(e) => panic!("seed {seed} failed: {e}"),
        }
        return;
    }
    let n = std::env::var("BULLET_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(DEFAULT_SEEDS);
    let started = std::time::Instant::now();
    let mut total = Tally::default();
    for seed in 0..n {
        let result = std::panic::catch_unwind(|| run_seed(seed, Faults::default(), false));
        match result {
            Ok(Ok(t)) => {
                total.crashes_in_op += t.crashes_in_op;
                total.compactions += t.compactions;
                total.moves_finished_by_mount += t.moves_finished_by_mount;
                total.chunked_commits += t.chunked_commits;
                total.crashes_while_writing += t.crashes_while_writing;
                total.superblock_repairs += t.superblock_repairs;
                total.files_checked += t.files_checked;
            }
            Ok(Err(e)) => panic!("seed {seed} failed: {e}\n  {}", replay_hint(seed)),
            Err(_) => panic!("seed {seed} panicked (see above)\n  {}", replay_hint(seed)),
        }
    }
    println!("{n} seeds in {:.1?}: {total:?}", started.elapsed());
    assert!(n < 100 || total.crashes_in_op > n / 4, "too few crashes hit an operation: {total:?}");
    assert!(n < 100 || total.compactions > n / 10, "too few compactions: {total:?}");
    assert!(n < 100 || total.chunked_commits > n / 5, "too few chunked files committed: {total:?}");
    assert!(n < 100 || total.crashes_while_writing > n / 10, "too few crashes cut a chunked file: {total:?}");
    assert!(n < 100 || total.superblock_repairs > n / 10, "too few superblock repairs: {total:?}");
}

/// The checks must catch a store that breaks the rules: each deliberate defect is
/// found within a few hundred seeds.
#[test]
fn crash_checks_catch_injected_defects() {
    let defects = [
        ("no flush between data and inode", Faults { skip_data_barrier: true, ..Faults::default() }),
        ("inode written over its durable slot", Faults { single_slot: true, ..Faults::default() }),
        ("destroyed blocks reused too early", Faults { early_reuse: true, ..Faults::default() }),
    ];
    for (what, faults) in defects {
        let caught = (0..2_000).find(|&seed| {
            let r = std::panic::catch_unwind(|| run_seed(seed, faults, false));
            !matches!(r, Ok(Ok(_)))
        });
        println!("{what}: caught by seed {caught:?}");
        assert!(caught.is_some(), "{what}: not caught in 2000 seeds");
    }
}

/// Formatting over an old store, cut at any operation: mounting then finds the old
/// store intact (cut before its superblock went), no store, or the new empty one.
#[test]
fn a_cut_format_leaves_the_old_store_no_store_or_the_new_one() {
    let config = Config { inode_count: 16, ..Config::default() };
    let mut outcomes = [0; 3];
    for crash_at in 0..6 {
        for seed in 0..20 {
            let mut rng = SplitMix64::new(seed);
            let mut old = Store::format(SimDisk::new(512, 256), config, store_rng(&mut rng)).unwrap();
            let sup = old.super_capability();
            let file = old.create(&sup, b"old", BS_COMMIT | BS_SAFETY).unwrap();
            let mut disk = old.into_device();
            disk.crash_after(crash_at);
            let mut disk = match Store::format(disk, config, store_rng(&mut rng)) {
                Ok(s) => s.into_device(),
                Err(f) => f.device,
            };
            disk.restart(&mut rng);
            let context = format!("crash at op {crash_at}, seed {seed}");
            match Store::mount(disk, config, store_rng(&mut rng)) {
                Ok(mut s) if s.put_port() == sup.port => {
                    assert_eq!(s.read(&file, 0, 10).unwrap(), b"old", "{context}");
                    outcomes[0] += 1;
                }
                Ok(mut s) => {
                    assert_eq!(s.stats().files, 0, "{context}");
                    s.check_disk().unwrap();
                    outcomes[2] += 1;
                }
                Err(f) => {
                    assert_eq!(f.error, MountError::NotFormatted, "{context}");
                    outcomes[1] += 1;
                }
            }
        }
    }
    assert!(outcomes.iter().all(|&n| n > 0), "old / none / new: {outcomes:?}");
}

#[test]
fn seeds_replay_identically() {
    let a = run_seed(17, Faults::default(), false).map(|t| format!("{t:?}"));
    let b = run_seed(17, Faults::default(), false).map(|t| format!("{t:?}"));
    assert_eq!(a, b);
}

//! Segments filled from another board's object (`segment_create_from`): the
//! nucleus reads the file itself, a piece at a time, with the read operation
//! of files, and answers the request once the segment is full. Program texts
//! read this way stay in a small cache, so the next process of the same
//! program needs no network at all (the run server's cache bonus).

#![forbid(unsafe_code)]

use super::actions::Action;
use crate::memory::segments::{Place, SegmentId};
use crate::process::Core;
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use amoeba_abi::{Capability, Header, Status};
use amoeba_ipc::interfaces::process::{MAX_CACHED_TEXTS, SegmentSource, text_id};
use amoeba_ipc::interfaces::{BS_IO_MAX, bullet, process_server};
use flip::{ReqId, TransId};

/// Bytes of program texts kept (in the kernel heap).
const TEXT_CACHE_BYTES: usize = 4 << 20;
/// Texts larger than this are not kept.
const TEXT_CACHE_ITEM: usize = 1 << 20;
/// Most loads in progress at once; a request beyond it is refused with
/// `NoSpace` (each load holds a read's reply, and maybe the text it keeps).
pub const MAX_ACTIVE_LOADS: usize = 32;

/// Writes `data` at `offset` of segment `id`.
pub fn fill(core: &mut Core, id: SegmentId, offset: usize, data: &[u8]) -> Result<(), Status> {
    core.segments.bytes_mut(Place { segment: id, offset }, data.len())?.copy_from_slice(data);
    Ok(())
}

/// A segment being filled from a file.
pub struct Load {
    req: ReqId,
    segment: SegmentId,
    capability: Capability,
    source: SegmentSource,
    /// Bytes read so far.
    done: u64,
    /// What has been read, kept if the text is small enough to cache.
    kept: Option<Vec<u8>>,
    trans: Option<TransId>,
}

impl Load {
    /// A load answering `req` with `capability` (segment `segment`) once full.
    pub fn new(req: ReqId, segment: SegmentId, capability: Capability, source: SegmentSource) -> Self {
        let kept = (source.length as usize <= TEXT_CACHE_ITEM).then(Vec::new);
        Load { req, segment, capability, source, done: 0, kept, trans: None }
    }

    /// The next piece's read request.
    fn next_read(&self) -> Result<(Header, Vec<u8>), Status> {
        let size = (self.source.length - self.done).min(BS_IO_MAX as u64) as u32;
        bullet::read::request(&self.source.source, self.source.offset + self.done, size)
    }
}

/// Loads in progress, and the text cache.
#[derive(Default)]
pub struct Loads {
    active: Vec<(u64, Load)>,
    next: u64,
    /// Most recently used last: (the source it came from, its bytes).
    texts: VecDeque<(SegmentSource, Vec<u8>)>,
}

impl Loads {
    /// Fills segment `id` from the cache if it holds `source`'s bytes (then
    /// the outcome of the fill), `None` if it does not.
    pub fn fill_from_cache(
        &mut self,
        core: &mut Core,
        id: SegmentId,
        source: &SegmentSource,
    ) -> Option<Result<(), Status>> {
        let index = self.texts.iter().position(|(s, _)| same_text(s, source))?;
        let entry = self.texts.remove(index)?;
        let filled = fill(core, id, 0, &entry.1);
        self.texts.push_back(entry);
        Some(filled)
    }

    /// Loads in progress.
    pub fn active_count(&self) -> usize {
        self.active.len()
    }

    /// The identities of the cached texts, most recently used first.
    pub fn text_ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = Vec::new();
        for (source, _) in self.texts.iter().rev() {
            let id = text_id(&source.source);
            if !ids.contains(&id) && ids.len() < MAX_CACHED_TEXTS {
                ids.push(id);
            }
        }
        ids
    }

    /// Whether another load may start now.
    pub fn has_room(&self) -> bool {
        self.active.len() < MAX_ACTIVE_LOADS
    }

    /// Starts `load`: its first read goes out as an action.
    pub fn start(&mut self, load: Load, core: &mut Core, actions: &mut VecDeque<Action>) {
        self.next += 1;
        let tag = self.next;
        self.active.push((tag, load));
        self.send_next(tag, core, actions);
    }

    /// The read of load `tag` is transaction `trans`.
    pub fn started(&mut self, tag: u64, trans: TransId) {
        if let Some((_, load)) = self.active.iter_mut().find(|(t, _)| *t == tag) {
            load.trans = Some(trans);
        }
    }

    fn send_next(&mut self, tag: u64, core: &mut Core, actions: &mut VecDeque<Action>) {
        let Some(index) = self.active.iter().position(|(t, _)| *t == tag) else { return };
        // The reply (up to a read's worth) comes into the heap.
        if let Err(status) = crate::heap::admit(BS_IO_MAX) {
            self.fail(index, status, core, actions);
            return;
        }
        match self.active[index].1.next_read() {
            Ok((header, buf)) => actions.push_back(Action::Read { load: tag, header, buf }),
            Err(status) => self.fail(index, status, core, actions),
        }
    }

    /// Load `index` failed: its segment goes, its request gets `status`.
    fn fail(&mut self, index: usize, status: Status, core: &mut Core, actions: &mut VecDeque<Action>) {
        let (_, load) = self.active.remove(index);
        core.segments.destroy(load.segment);
        reply(actions, load.req, Err(status));
    }

    /// A read came back: the piece goes into the segment; the next is asked
    /// for, or the request answered.
    pub fn done(
        &mut self,
        core: &mut Core,
        trans: TransId,
        result: Result<(Header, Vec<u8>), Status>,
        actions: &mut VecDeque<Action>,
    ) {
        let Some(index) = self.active.iter().position(|(_, l)| l.trans == Some(trans)) else { return };
        let tag = self.active[index].0;
        let piece = result.and_then(|(header, buf)| match header.status() {
            Status::Ok => Ok(buf),
            error => Err(error),
        });
        let outcome = piece.and_then(|piece| {
            let load = &mut self.active[index].1;
            fill(core, load.segment, load.done as usize, &piece)?;
            load.done += piece.len() as u64;
            // The text is kept for the cache only while the heap has room.
            let keep = load.kept.as_mut().is_some_and(|kept| {
                crate::heap::can_spend(piece.len()) && kept.try_reserve(piece.len()).is_ok()
            });
            match &mut load.kept {
                Some(kept) if keep => kept.extend_from_slice(&piece),
                _ => load.kept = None,
            }
            // A file shorter than asked for ends the load: the rest stays zero.
            Ok(piece.is_empty() || load.done >= load.source.length)
        });
        match outcome {
            Ok(false) => self.send_next(tag, core, actions),
            Ok(true) => {
                let (_, load) = self.active.remove(index);
                if let Some(kept) = load.kept {
                    self.keep(load.source.clone(), kept);
                }
                reply(actions, load.req, process_server::segment_create_from::reply(load.capability));
            }
            Err(status) => self.fail(index, status, core, actions),
        }
    }

    fn keep(&mut self, source: SegmentSource, bytes: Vec<u8>) {
        self.texts.retain(|(s, _)| !same_text(s, &source));
        self.texts.push_back((source, bytes));
        while self.texts.iter().map(|(_, b)| b.len()).sum::<usize>() > TEXT_CACHE_BYTES {
            self.texts.pop_front();
        }
    }
}

/// Whether two sources name the same bytes: the same file (port, object and
/// check: files are immutable, and a new file under a reused object number
/// has another check) and the same range.
fn same_text(a: &SegmentSource, b: &SegmentSource) -> bool {
    a.source == b.source && a.offset == b.offset && a.length == b.length
}

fn reply(actions: &mut VecDeque<Action>, req: ReqId, reply: Result<(Header, Vec<u8>), Status>) {
    let (header, buf) = reply.unwrap_or_else(amoeba_ipc::interface::status_reply);
    actions.push_back(Action::Reply { req, header, buf });
}

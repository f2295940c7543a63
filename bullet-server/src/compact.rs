//! Compaction: when a new file fits the free space in total but no single hole, slide
//! files down towards the start of the data area until a large enough hole opens.
//!
//! A move must never overwrite blocks the durable inode still names. So a file moving
//! down by `d` blocks goes in steps of at most `d` blocks: copy the next piece into
//! blocks that are durably free, flush, write the inode saying "the first `split`
//! blocks are at the new place, the rest still at the old", flush; the piece's old
//! blocks are then durably free and the next step may overwrite them. A crash leaves
//! either the previous or the next inode version, each naming intact data; mount
//! finishes an interrupted move the same way.
//!
//! Files being written straight to disk (reserved runs) do not move: their chunks
//! go to disk as they come, so compaction slides the committed files down around
//! them.

use alloc::vec::Vec;

use amoeba_abi::Status;

use crate::device::{BlockDevice, read_run, write_run};
use crate::layout::Placement;
use crate::store::{File, Store, disk_status};

impl<D: BlockDevice> Store<D> {
    /// Slide files down until a hole of `blocks` blocks exists (the caller made sure
    /// compaction can make one: `largest_run_after_compaction`).
    pub(crate) fn compact_for(&mut self, blocks: u64) -> Result<(), Status> {
        // From a fully durable state: no freed blocks waiting, so the data area is
        // exactly the committed files, the reserved runs and the free list.
        self.write_inode_blocks()?;
        self.counters.compactions += 1;
        // (first block, inode of a committed file to move or None for a reserved
        // run that stays, blocks), in block order.
        let mut order: Vec<(u64, Option<u32>, u64)> = self
            .files
            .iter()
            .enumerate()
            .filter_map(|(n, f)| match f {
                Some(File::Committed { place, .. }) if place.blocks > 0 => {
                    Some((place.head, Some(n as u32), place.blocks))
                }
                _ => None,
            })
            .collect();
        order.extend(self.reserved_runs().into_iter().map(|(start, len)| (start, None, len)));
        order.sort_unstable();
        let mut cursor = self.geo.data_start;
        for (head, inode, len) in order {
            if head - cursor >= blocks {
                break;
            }
            match inode {
                Some(inode) if head > cursor => self.move_down(inode, cursor)?,
                _ => cursor = cursor.max(head),
            }
            cursor += len;
        }
        Ok(())
    }

    /// Move the (single-run) file of `inode` down to start at `dest`.
    fn move_down(&mut self, inode: u32, dest: u64) -> Result<(), Status> {
        let Some(File::Committed { place, .. }) = &mut self.files[inode as usize] else {
            return Err(Status::SysErr);
        };
        // Nothing moved yet: all of the file is in the "tail" at its old place.
        *place = Placement { head: dest, split: 0, tail: place.head, blocks: place.blocks };
        self.continue_move(inode)
    }

    /// Carry on moving the file of `inode` until it is one run at its head.
    pub(crate) fn continue_move(&mut self, inode: u32) -> Result<(), Status> {
        loop {
            let Some(File::Committed { place, .. }) = &self.files[inode as usize] else {
                return Err(Status::SysErr);
            };
            let p = *place;
            if p.is_single() {
                return Ok(());
            }
            let dest = p.head + p.split;
            let step = (p.blocks - p.split).min(p.tail - dest);
            let next = if step == 0 {
                // The pieces already touch: the file is one run.
                Placement::single(p.head, p.blocks)
            } else {
                self.copy_piece(p.tail, dest, step)?;
                let moved = Placement { split: p.split + step, tail: p.tail + step, ..p };
                if moved.split == moved.blocks { Placement::single(p.head, p.blocks) } else { moved }
            };
            if let Some(File::Committed { place, .. }) = &mut self.files[inode as usize] {
                *place = next;
            }
            self.give_up(inode, [(p.tail, step)].into_iter().filter(|r| r.1 > 0));
            self.counters.blocks_moved += step;
            self.write_inode_blocks()?;
        }
    }

    /// Copy `len` blocks from `from` to the free blocks at `to` (taking them off the
    /// free list), in transfers as large as the device allows.
    fn copy_piece(&mut self, from: u64, to: u64, len: u64) -> Result<(), Status> {
        if !self.free.take(to, len) {
            return Err(Status::SysErr);
        }
        let bs = self.geo.block_size;
        let chunk_blocks = (self.dev.max_transfer() / bs).max(1) as u64;
        let mut buf = match self.buffer(chunk_blocks.min(len) as usize * bs) {
            Ok(buf) => buf,
            Err(status) => {
                let released = self.free.release(to, len);
                debug_assert!(released);
                return Err(status);
            }
        };
        let mut done = 0;
        while done < len {
            let n = chunk_blocks.min(len - done);
            let part = &mut buf[..n as usize * bs];
            let copied = read_run(&mut self.dev, from + done, part)
                .and_then(|_| write_run(&mut self.dev, to + done, part));
            if let Err(e) = copied {
                // The inode does not name these blocks yet: free again at once.
                let released = self.free.release(to, len);
                debug_assert!(released);
                return Err(disk_status(e));
            }
            done += n;
        }
        Ok(())
    }
}

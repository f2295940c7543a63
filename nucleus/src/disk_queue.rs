//! The disk service's queue, apart from the device (so that it is tested
//! on the host): operations wait in arrival order and the device gets one
//! at a time. A flush the device finishes also answers every flush waiting
//! in the queue. On a disk shared by several writers (the directory's
//! replicas each write and flush their log on board 0's disk) flushes then
//! cost one device flush per round of writers, not one per writer.
//!
//! Why a waiting flush is covered: a flush promises that every write its
//! caller saw completed before asking is durable. The device does one
//! operation at a time, so every write completed before a waiting flush was
//! asked completed before the device's flush started (either before the
//! flush was asked, or — asked while the device flushed — when no write
//! could complete). Writes still queued when the waiting flush was asked
//! were concurrent with it: no caller saw them complete, so no promise
//! covers them. A caller with one request at a time (every RPC client
//! thread, every kernel thread) cannot tell the difference.

#![forbid(unsafe_code)]

use alloc::collections::VecDeque;
use alloc::vec::Vec;

/// What the queue needs to know of an operation.
pub trait Operation {
    /// Whether it is a flush (made durable by any later device flush).
    fn is_flush(&self) -> bool;
}

/// Operations waiting for the device, oldest first.
#[derive(Debug)]
pub struct DiskQueue<T> {
    waiting: VecDeque<T>,
}

impl<T> Default for DiskQueue<T> {
    fn default() -> Self {
        Self { waiting: VecDeque::new() }
    }
}

impl<T: Operation> DiskQueue<T> {
    /// Operations waiting.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// `op` waits behind those already waiting.
    pub fn push(&mut self, op: T) {
        self.waiting.push_back(op);
    }

    /// The next operation for the idle device: the oldest.
    pub fn take_next(&mut self) -> Option<T> {
        self.waiting.pop_front()
    }

    /// The device finished a flush: the flushes waiting now, taken out of
    /// the queue in their order. That flush covers them all (see the module
    /// notes); they get its result.
    pub fn take_covered_flushes(&mut self) -> Vec<T> {
        let mut covered = Vec::new();
        let mut kept = VecDeque::with_capacity(self.waiting.len());
        for op in self.waiting.drain(..) {
            if op.is_flush() {
                covered.push(op);
            } else {
                kept.push_back(op);
            }
        }
        self.waiting = kept;
        covered
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Op {
        Write(u32),
        Flush,
        Read,
    }

    /// A queued operation: whose, and what.
    #[derive(Debug)]
    struct Queued {
        client: usize,
        op: Op,
        /// For a flush: the writes its client had seen completed when it asked.
        promised: BTreeSet<u32>,
    }

    impl Operation for Queued {
        fn is_flush(&self) -> bool {
            self.op == Op::Flush
        }
    }

    #[test]
    fn a_finished_flush_answers_the_waiting_flushes_and_nothing_else() {
        let mut queue = DiskQueue::default();
        let flush = |client| Queued { client, op: Op::Flush, promised: BTreeSet::new() };
        queue.push(flush(1));
        queue.push(Queued { client: 2, op: Op::Write(7), promised: BTreeSet::new() });
        queue.push(flush(3));
        let covered = queue.take_covered_flushes();
        assert_eq!(covered.iter().map(|q| q.client).collect::<Vec<_>>(), [1, 3]);
        assert_eq!(queue.len(), 1);
        assert_eq!(queue.take_next().map(|q| q.op), Some(Op::Write(7)));
        assert!(queue.is_empty());
        assert!(queue.take_covered_flushes().is_empty());
    }

    /// One step of the world: a client asks (if it has nothing pending), or
    /// the device finishes what it does.
    #[derive(Clone, Debug)]
    enum Step {
        Ask(usize, Op),
        DeviceDone,
    }

    fn step(clients: usize) -> impl Strategy<Value = Step> {
        let op = prop_oneof![(0u32..1000).prop_map(Op::Write), Just(Op::Flush), Just(Op::Read)];
        prop_oneof![(0..clients, op).prop_map(|(c, op)| Step::Ask(c, op)), Just(Step::DeviceDone)]
    }

    const CLIENTS: usize = 4;

    /// Clients with one request at a time and a device with one operation
    /// at a time around the queue.
    #[derive(Default)]
    struct World {
        queue: DiskQueue<Queued>,
        device: Option<Queued>,
        pending: [bool; CLIENTS],
        /// The writes each client has seen completed.
        seen: [BTreeSet<u32>; CLIENTS],
        /// Writes completed on the device, durable or not.
        written: BTreeSet<u32>,
        durable: BTreeSet<u32>,
        writes: u32,
    }

    impl World {
        fn ask(&mut self, client: usize, op: Op) {
            if self.pending[client] {
                return;
            }
            let op = match op {
                Op::Write(_) => {
                    self.writes += 1;
                    Op::Write(self.writes)
                }
                other => other,
            };
            self.pending[client] = true;
            self.queue.push(Queued { client, op, promised: self.seen[client].clone() });
            if self.device.is_none() {
                self.device = self.queue.take_next();
            }
        }

        fn answer(&mut self, done: &Queued) -> Result<(), TestCaseError> {
            if done.op == Op::Flush {
                let missing: Vec<_> = done.promised.difference(&self.durable).collect();
                prop_assert!(
                    missing.is_empty(),
                    "client {}'s flush answered before {missing:?} was durable",
                    done.client
                );
            }
            if let Op::Write(w) = done.op {
                self.seen[done.client].insert(w);
            }
            self.pending[done.client] = false;
            Ok(())
        }

        fn device_done(&mut self) -> Result<(), TestCaseError> {
            let Some(done) = self.device.take() else { return Ok(()) };
            match done.op {
                Op::Write(w) => {
                    self.written.insert(w);
                }
                // What was written when the flush started: nothing is
                // written while it runs.
                Op::Flush => self.durable.extend(self.written.iter().copied()),
                Op::Read => {}
            }
            self.answer(&done)?;
            if done.op == Op::Flush {
                for covered in self.queue.take_covered_flushes() {
                    self.answer(&covered)?;
                }
            }
            self.device = self.queue.take_next();
            Ok(())
        }
    }

    proptest! {
        /// Every answered flush finds durable every write its client had
        /// seen completed before asking, and every request is answered once
        /// the clients stop asking.
        #[test]
        fn every_answered_flush_keeps_its_promise(steps in proptest::collection::vec(step(CLIENTS), 0..200)) {
            let mut world = World::default();
            for step in steps {
                match step {
                    Step::Ask(client, op) => world.ask(client, op),
                    Step::DeviceDone => world.device_done()?,
                }
            }
            while world.device.is_some() {
                world.device_done()?;
            }
            prop_assert!(world.queue.is_empty());
            prop_assert!(world.pending.iter().all(|p| !p), "unanswered: {:?}", world.pending);
        }
    }
}

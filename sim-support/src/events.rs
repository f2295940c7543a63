//! The simulations' timed event queue: events come out earliest first, and
//! events due at the same instant in the order they were put in, so that a
//! seed replays exactly.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

/// Events of type `E`, each due at a simulated instant (µs).
pub struct EventQueue<E> {
    heap: BinaryHeap<Reverse<Entry<E>>>,
    pushed: u64,
}

struct Entry<E> {
    at: u64,
    /// How many events were pushed before this one: the tie-break.
    order: u64,
    event: E,
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.order) == (other.at, other.order)
    }
}
impl<E> Eq for Entry<E> {}
impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<E> Ord for Entry<E> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.order).cmp(&(other.at, other.order))
    }
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        EventQueue { heap: BinaryHeap::new(), pushed: 0 }
    }
}

impl<E> EventQueue<E> {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Puts `event` in, due at `at`.
    pub fn push(&mut self, at: u64, event: E) {
        self.pushed += 1;
        self.heap.push(Reverse(Entry { at, order: self.pushed, event }));
    }

    /// When the earliest event is due.
    pub fn next_at(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse(entry)| entry.at)
    }

    /// The earliest event, if it is due at or before `now`.
    pub fn pop_due(&mut self, now: u64) -> Option<E> {
        if self.next_at()? > now {
            return None;
        }
        self.heap.pop().map(|Reverse(entry)| entry.event)
    }

    /// The earliest event and when it is due.
    pub fn pop(&mut self) -> Option<(u64, E)> {
        self.heap.pop().map(|Reverse(entry)| (entry.at, entry.event))
    }

    /// Keeps only the events `keep` accepts (their order stays).
    pub fn retain(&mut self, mut keep: impl FnMut(&E) -> bool) {
        self.heap.retain(|Reverse(entry)| keep(&entry.event));
    }

    /// How many events are waiting.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether none is waiting.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Every waiting event, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &E> {
        self.heap.iter().map(|Reverse(entry)| &entry.event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_first_and_ties_in_the_order_put_in() {
        let mut queue = EventQueue::new();
        queue.push(20, "late");
        queue.push(10, "first at 10");
        queue.push(10, "second at 10");
        queue.push(15, "middle");
        assert_eq!(queue.next_at(), Some(10));
        assert_eq!(queue.pop_due(9), None);
        assert_eq!(queue.pop_due(10), Some("first at 10"));
        assert_eq!(queue.pop_due(10), Some("second at 10"));
        queue.retain(|e| *e != "middle");
        assert_eq!(queue.len(), 1);
        assert_eq!(queue.pop(), Some((20, "late")));
        assert!(queue.is_empty() && queue.pop().is_none());
    }
}

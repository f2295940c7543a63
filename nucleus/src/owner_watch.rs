//! Owners of processes, checked by their board (Amoeba's `pro_setowner`): a
//! process tied to an owner — the terminal of the user's session that started
//! it — lives only as long as the owner answers. The process server asks each
//! owner now and then whether it still exists (one check in flight per
//! process); a process whose owner says it is gone ends at once, and one whose
//! owner has answered nothing for the silence limit ends then. So a program
//! outlives neither a killed `ax` nor a host cut off from the pool.
//!
//! The board checks rather than the owner renewing a lease, because then the
//! rule needs nothing from the owner's side but to answer a standard request,
//! and a program cannot escape it. This is the sans-IO core: it says which
//! checks to send and which processes to end; the process server sends the
//! checks as transactions and ends the processes. One watch per process, so
//! its state is bounded by the board's processes.

#![forbid(unsafe_code)]

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

/// What an owner's answer to a check says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// It answered: it exists.
    Alive,
    /// It answered that it no longer exists (an unknown object).
    Gone,
    /// No answer (the transaction failed): silence, judged by time.
    Unreachable,
}

/// What to do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step<O> {
    /// Ask `owner` whether it exists; tell [`OwnerWatch::started`] the
    /// transaction's id with `tag`.
    Check { pid: u32, tag: u64, owner: O },
    /// End process `pid`: its owner is gone or silent.
    End { pid: u32 },
}

/// Where one process's check stands.
#[derive(Clone, Copy, Debug)]
enum Check {
    /// The next check goes out at this time.
    Idle { next: u64 },
    /// Check `tag` is out, as transaction `trans` once started.
    Out { tag: u64, trans: Option<u64> },
}

#[derive(Clone, Copy, Debug)]
struct Watch<O> {
    owner: O,
    /// When the owner last answered (or the watch began).
    last_answer: u64,
    check: Check,
}

/// The owned processes of a board and their checks.
#[derive(Debug)]
pub struct OwnerWatch<O> {
    watches: BTreeMap<u32, Watch<O>>,
    next_tag: u64,
    /// Time between an answer and the next check (µs).
    period: u64,
    /// Silence after which a process ends (µs).
    silence: u64,
}

impl<O: Copy> OwnerWatch<O> {
    /// Checks every `period` µs; silence for `silence` µs ends a process.
    pub fn new(period: u64, silence: u64) -> Self {
        OwnerWatch { watches: BTreeMap::new(), next_tag: 0, period, silence }
    }

    /// Ties process `pid` to `owner` from `now` (`None`: unties it). The
    /// first check goes out at once.
    pub fn set(&mut self, pid: u32, owner: Option<O>, now: u64) {
        match owner {
            Some(owner) => {
                self.watches.insert(pid, Watch { owner, last_answer: now, check: Check::Idle { next: now } });
            }
            None => {
                self.watches.remove(&pid);
            }
        }
    }

    /// Process `pid` ended: nothing to watch.
    pub fn forget(&mut self, pid: u32) {
        self.watches.remove(&pid);
    }

    /// Whether process `pid` has an owner.
    pub fn is_owned(&self, pid: u32) -> bool {
        self.watches.contains_key(&pid)
    }

    /// Processes with an owner.
    pub fn len(&self) -> usize {
        self.watches.len()
    }

    /// Whether no process has an owner.
    pub fn is_empty(&self) -> bool {
        self.watches.is_empty()
    }

    /// The steps due at `now`: checks to send, processes to end (their
    /// watches go; [`OwnerWatch::forget`] is then harmless).
    pub fn due(&mut self, now: u64) -> Vec<Step<O>> {
        let mut steps = Vec::new();
        let mut ended = Vec::new();
        for (&pid, watch) in &mut self.watches {
            if now.saturating_sub(watch.last_answer) >= self.silence {
                ended.push(pid);
                steps.push(Step::End { pid });
                continue;
            }
            if let Check::Idle { next } = watch.check
                && now >= next
            {
                self.next_tag += 1;
                watch.check = Check::Out { tag: self.next_tag, trans: None };
                steps.push(Step::Check { pid, tag: self.next_tag, owner: watch.owner });
            }
        }
        for pid in ended {
            self.watches.remove(&pid);
        }
        steps
    }

    /// Check `tag` went out as transaction `trans`.
    pub fn started(&mut self, tag: u64, trans: u64) {
        for watch in self.watches.values_mut() {
            if let Check::Out { tag: out, trans: slot } = &mut watch.check
                && *out == tag
            {
                *slot = Some(trans);
            }
        }
    }

    /// Check `tag` could not go out at all (no memory for it): tried again
    /// after a period, as if unanswered.
    pub fn not_sent(&mut self, tag: u64, now: u64) {
        let period = self.period;
        for watch in self.watches.values_mut() {
            if matches!(watch.check, Check::Out { tag: out, .. } if out == tag) {
                watch.check = Check::Idle { next: now + period };
            }
        }
    }

    /// Whether transaction `trans` is one of the checks (else it is someone
    /// else's, or a check whose process has gone).
    pub fn is_check(&self, trans: u64) -> bool {
        self.watches.values().any(|w| matches!(w.check, Check::Out { trans: Some(t), .. } if t == trans))
    }

    /// Transaction `trans` (a check) ended with `verdict` at `now`; the
    /// process to end, if its owner is gone.
    pub fn answered(&mut self, trans: u64, verdict: Verdict, now: u64) -> Option<u32> {
        let (&pid, watch) = self
            .watches
            .iter_mut()
            .find(|(_, w)| matches!(w.check, Check::Out { trans: Some(t), .. } if t == trans))?;
        match verdict {
            Verdict::Gone => {
                self.watches.remove(&pid);
                return Some(pid);
            }
            Verdict::Alive => watch.last_answer = now,
            Verdict::Unreachable => {}
        }
        watch.check = Check::Idle { next: now + self.period };
        None
    }

    /// When [`OwnerWatch::due`] next has something to do.
    pub fn next_deadline(&self) -> Option<u64> {
        self.watches
            .values()
            .map(|watch| {
                let silent_until = watch.last_answer.saturating_add(self.silence);
                match watch.check {
                    Check::Idle { next } => next.min(silent_until),
                    Check::Out { .. } => silent_until,
                }
            })
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PERIOD: u64 = 1_000;
    const SILENCE: u64 = 5_000;

    fn checks(steps: &[Step<char>]) -> Vec<(u32, u64)> {
        steps
            .iter()
            .filter_map(|s| match s {
                Step::Check { pid, tag, .. } => Some((*pid, *tag)),
                Step::End { .. } => None,
            })
            .collect()
    }

    #[test]
    fn an_owner_that_answers_keeps_its_process() {
        let mut watch = OwnerWatch::new(PERIOD, SILENCE);
        watch.set(7, Some('t'), 0);
        let mut now = 0;
        for round in 0..20u64 {
            let steps = watch.due(now);
            let [(7, tag)] = checks(&steps)[..] else { panic!("round {round}: {steps:?}") };
            watch.started(tag, 100 + round);
            assert!(watch.is_check(100 + round));
            now += 300;
            assert_eq!(watch.answered(100 + round, Verdict::Alive, now), None);
            assert_eq!(watch.next_deadline(), Some(now + PERIOD));
            assert!(watch.due(now + PERIOD - 1).is_empty(), "no check before its period");
            now += PERIOD;
        }
        assert!(watch.is_owned(7));
    }

    #[test]
    fn a_silent_owner_ends_its_process_after_the_silence_and_no_later() {
        let mut watch = OwnerWatch::new(PERIOD, SILENCE);
        watch.set(3, Some('t'), 10);
        let [(3, tag)] = checks(&watch.due(10))[..] else { panic!() };
        watch.started(tag, 1);
        // The transaction keeps trying; the process ends on time anyway.
        assert_eq!(watch.next_deadline(), Some(10 + SILENCE));
        assert!(watch.due(10 + SILENCE - 1).is_empty());
        assert_eq!(watch.due(10 + SILENCE), alloc::vec![Step::End { pid: 3 }]);
        assert!(!watch.is_owned(3) && watch.next_deadline().is_none());
        // Its late failure changes nothing.
        assert_eq!(watch.answered(1, Verdict::Unreachable, 20_000), None);
    }

    #[test]
    fn failed_checks_are_tried_again_until_the_silence_runs_out() {
        let mut watch = OwnerWatch::new(PERIOD, SILENCE);
        watch.set(4, Some('t'), 0);
        let mut now = 0;
        let mut trans = 0;
        while watch.is_owned(4) {
            for step in watch.due(now) {
                match step {
                    Step::Check { tag, .. } => {
                        trans += 1;
                        watch.started(tag, trans);
                        assert_eq!(watch.answered(trans, Verdict::Unreachable, now + 200), None);
                    }
                    Step::End { pid } => {
                        assert_eq!(pid, 4);
                        assert!((SILENCE..SILENCE + PERIOD).contains(&now), "ended at {now}");
                    }
                }
            }
            now += 100;
        }
        assert!(trans >= 3, "it kept asking: {trans} checks");
    }

    #[test]
    fn an_owner_that_is_gone_ends_its_process_at_once() {
        let mut watch = OwnerWatch::new(PERIOD, SILENCE);
        watch.set(5, Some('a'), 0);
        watch.set(6, Some('b'), 0);
        let steps = watch.due(0);
        assert_eq!(checks(&steps), alloc::vec![(5, 1), (6, 2)]);
        assert!(steps.contains(&Step::Check { pid: 6, tag: 2, owner: 'b' }));
        watch.started(1, 11);
        watch.started(2, 12);
        assert_eq!(watch.answered(12, Verdict::Gone, 50), Some(6));
        assert!(watch.is_owned(5) && !watch.is_owned(6));
        assert_eq!(watch.len(), 1);
    }

    #[test]
    fn untied_and_ended_processes_are_forgotten() {
        let mut watch = OwnerWatch::new(PERIOD, SILENCE);
        watch.set(1, Some('x'), 0);
        watch.set(2, Some('y'), 0);
        watch.set(1, None, 0);
        watch.forget(2);
        assert!(watch.is_empty());
        assert!(watch.due(SILENCE * 2).is_empty());
        assert_eq!(watch.next_deadline(), None);
    }

    #[test]
    fn a_check_that_could_not_go_out_is_tried_after_a_period() {
        let mut watch = OwnerWatch::new(PERIOD, SILENCE);
        watch.set(9, Some('z'), 0);
        let [(9, tag)] = checks(&watch.due(0))[..] else { panic!() };
        watch.not_sent(tag, 0);
        assert!(watch.due(PERIOD - 1).is_empty());
        assert_eq!(checks(&watch.due(PERIOD)), alloc::vec![(9, 2)]);
    }
}

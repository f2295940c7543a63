//! The bookkeeping of signals, apart from the threads and trap frames it
//! serves: which signals a thread has pending, and what delivering them
//! comes to under the process's dispositions. Pure, so that the host tests
//! it; `signal.rs` raises, interrupts waits and enters handlers.

#![forbid(unsafe_code)]

use crate::call_types::Disposition;
use amoeba_abi::Status;
use amoeba_abi::syscall::{EXIT_SIGNAL_BASE, SIGNALS};

/// Whether `signal` names a signal (1..SIGNALS; 0 is none).
pub fn is_signal(signal: u32) -> bool {
    signal != 0 && signal < SIGNALS
}

/// Signals raised in a thread and not yet delivered (bit n = signal n). A
/// signal raised again before delivery is still one signal.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PendingSignals(u32);

impl PendingSignals {
    /// Marks `signal` pending; signal 0 and numbers from `SIGNALS` up are
    /// no signals.
    pub fn raise(&mut self, signal: u32) -> Result<(), Status> {
        if !is_signal(signal) {
            return Err(Status::ArgBad);
        }
        self.0 |= 1 << signal;
        Ok(())
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn contains(self, signal: u32) -> bool {
        signal < SIGNALS && self.0 & (1 << signal) != 0
    }

    /// Takes the lowest-numbered pending signal off.
    fn take_lowest(&mut self) -> Option<u32> {
        if self.0 == 0 {
            return None;
        }
        let signal = self.0.trailing_zeros();
        self.0 &= !(1 << signal);
        Some(signal)
    }
}

/// What delivering a thread's pending signals comes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Nothing to do: none pending (or all ignored), or a handler runs.
    Nothing,
    /// The process ends with this status (a signal left at its default).
    Exit(i32),
    /// The thread enters `handler` for `signal`.
    Catch { signal: u32, handler: u64 },
}

/// Takes pending signals, lowest first, until one does something: an
/// ignored one is dropped (as is any once the process is gone: `disposition`
/// says `None`), one left at its default ends the process, a caught one
/// enters its handler and leaves the rest pending. While a handler runs
/// (`in_handler`) nothing is delivered: the rest waits for its return.
pub fn deliver(
    pending: &mut PendingSignals,
    in_handler: bool,
    disposition: impl Fn(u32) -> Option<Disposition>,
) -> Delivery {
    if in_handler {
        return Delivery::Nothing;
    }
    while let Some(signal) = pending.take_lowest() {
        match disposition(signal) {
            Some(Disposition::Ignore) | None => continue,
            Some(Disposition::Default) => return Delivery::Exit(EXIT_SIGNAL_BASE - signal as i32),
            Some(Disposition::Catch(handler)) => return Delivery::Catch { signal, handler },
        }
    }
    Delivery::Nothing
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    fn pending(signals: &[u32]) -> PendingSignals {
        let mut set = PendingSignals::default();
        for &signal in signals {
            set.raise(signal).unwrap();
        }
        set
    }

    #[test]
    fn only_real_signals_can_be_raised() {
        let mut set = PendingSignals::default();
        assert_eq!(set.raise(0), Err(Status::ArgBad));
        assert_eq!(set.raise(SIGNALS), Err(Status::ArgBad));
        assert_eq!(set.raise(u32::MAX), Err(Status::ArgBad));
        assert!(set.is_empty());
        assert_eq!(set.raise(1), Ok(()));
        assert_eq!(set.raise(SIGNALS - 1), Ok(()));
        assert!(set.contains(1) && set.contains(SIGNALS - 1) && !set.contains(2));
    }

    #[test]
    fn a_signal_raised_twice_is_delivered_once() {
        let mut set = pending(&[5, 5]);
        let catch = |_| Some(Disposition::Catch(0x40));
        assert_eq!(deliver(&mut set, false, catch), Delivery::Catch { signal: 5, handler: 0x40 });
        assert_eq!(deliver(&mut set, false, catch), Delivery::Nothing);
    }

    #[test]
    fn the_lowest_signal_goes_first_and_the_rest_stay_pending() {
        let mut set = pending(&[9, 3, 17]);
        let catch = |signal: u32| Some(Disposition::Catch(u64::from(signal) * 0x100));
        assert_eq!(deliver(&mut set, false, catch), Delivery::Catch { signal: 3, handler: 0x300 });
        assert_eq!(set, pending(&[9, 17]));
        assert_eq!(deliver(&mut set, false, catch), Delivery::Catch { signal: 9, handler: 0x900 });
        assert_eq!(deliver(&mut set, false, catch), Delivery::Catch { signal: 17, handler: 0x1100 });
        assert!(set.is_empty());
    }

    #[test]
    fn nothing_is_delivered_while_a_handler_runs() {
        let mut set = pending(&[2]);
        assert_eq!(deliver(&mut set, true, |_| Some(Disposition::Default)), Delivery::Nothing);
        assert_eq!(set, pending(&[2]), "the signal waits for the handler's return");
        assert_eq!(
            deliver(&mut set, false, |_| Some(Disposition::Default)),
            Delivery::Exit(EXIT_SIGNAL_BASE - 2)
        );
    }

    #[test]
    fn ignored_signals_are_dropped_on_the_way_to_one_that_acts() {
        let mut set = pending(&[1, 4, 6]);
        let dispositions = |signal| match signal {
            1 | 4 => Some(Disposition::Ignore),
            _ => Some(Disposition::Default),
        };
        assert_eq!(deliver(&mut set, false, dispositions), Delivery::Exit(EXIT_SIGNAL_BASE - 6));
        assert!(set.is_empty());
    }

    #[test]
    fn a_default_signal_ends_the_process_and_leaves_higher_ones() {
        let mut set = pending(&[2, 15]);
        assert_eq!(deliver(&mut set, false, |_| Some(Disposition::Default)), Delivery::Exit(-66));
        assert_eq!(set, pending(&[15]));
    }

    #[test]
    fn signals_of_a_process_that_is_gone_are_dropped() {
        let mut set = pending(&[7, 8]);
        assert_eq!(deliver(&mut set, false, |_| None), Delivery::Nothing);
        assert!(set.is_empty());
    }

    proptest! {
        /// Whatever is raised, in whatever order, a catching process sees each
        /// distinct signal once, in ascending order.
        #[test]
        fn caught_signals_come_once_each_in_ascending_order(raised in proptest::collection::vec(1..SIGNALS, 0..64)) {
            let mut set = pending(&raised);
            let mut seen = Vec::new();
            while let Delivery::Catch { signal, .. } = deliver(&mut set, false, |s| Some(Disposition::Catch(u64::from(s)))) {
                seen.push(signal);
            }
            let mut expected = raised.clone();
            expected.sort_unstable();
            expected.dedup();
            prop_assert_eq!(seen, expected);
            prop_assert!(set.is_empty());
        }

        /// Under any dispositions, a delivery acts on the lowest signal that
        /// is not ignored, and drops exactly the ignored ones below it.
        #[test]
        fn delivery_acts_on_the_lowest_signal_not_ignored(
            raised in proptest::collection::vec(1..SIGNALS, 1..16),
            ignored in any::<u32>(),
        ) {
            let mut set = pending(&raised);
            let before = set;
            let is_ignored = |signal: u32| ignored & (1 << signal) != 0;
            let dispositions = |signal| Some(if is_ignored(signal) { Disposition::Ignore } else { Disposition::Default });
            let acting = (1..SIGNALS).find(|&s| before.contains(s) && !is_ignored(s));
            match (deliver(&mut set, false, dispositions), acting) {
                (Delivery::Exit(status), Some(signal)) => {
                    prop_assert_eq!(status, EXIT_SIGNAL_BASE - signal as i32);
                    for s in 1..SIGNALS {
                        prop_assert_eq!(set.contains(s), before.contains(s) && s > signal);
                    }
                }
                (Delivery::Nothing, None) => prop_assert!(set.is_empty()),
                (delivery, acting) => prop_assert!(false, "{:?} with {:?} acting", delivery, acting),
            }
        }
    }
}

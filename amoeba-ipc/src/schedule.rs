//! Polls spread evenly over their period. A server that polls many peers
//! from a thread per peer (the run server its processors, the boot service
//! its boards and services) would otherwise wake all those threads together
//! once per period: started together they poll together, and a board that
//! gets the host's processor late wakes every sleeper whose time passed at
//! once, which pulls threads that had drifted apart back into step. On a
//! crowded host such a burst keeps dozens of threads runnable while the
//! board works through them, which its load figure rightly shows. Each
//! poller here has a fixed slot in the period instead, and one that is late
//! takes its next slot rather than polling at once.

/// The first time strictly after `after_us` at which poller `index` of
/// `count` polls, when each polls once every `period_us` and poller `i` has
/// the slot `i × period / count` past each multiple of the period (`index`
/// is taken modulo `count`). A zero period or count polls at once.
pub fn next_slot_us(period_us: u64, index: usize, count: usize, after_us: u64) -> u64 {
    if period_us == 0 || count == 0 {
        return after_us.saturating_add(1);
    }
    let index = (index % count) as u128;
    let offset = (u128::from(period_us) * index / count as u128) as u64;
    let slot = after_us - after_us % period_us + offset;
    if slot > after_us { slot } else { slot.saturating_add(period_us) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn four_pollers_share_a_second() {
        let slots: Vec<u64> = (0..4).map(|i| next_slot_us(1_000_000, i, 4, 10_000_000)).collect();
        assert_eq!(slots, [11_000_000, 10_250_000, 10_500_000, 10_750_000]);
        // Late past its slot: the next one, not at once.
        assert_eq!(next_slot_us(1_000_000, 1, 4, 10_250_001), 11_250_000);
        assert_eq!(next_slot_us(1_000_000, 1, 4, 10_249_999), 10_250_000);
    }

    #[test]
    fn nothing_to_spread_polls_at_once() {
        assert_eq!(next_slot_us(0, 3, 4, 500), 501);
        assert_eq!(next_slot_us(1_000, 3, 0, 500), 501);
    }

    proptest! {
        /// The slot is after `after`, at most a period later, on the
        /// poller's own phase; and two pollers' slots are at least a
        /// `period / count` apart (less one for rounding).
        #[test]
        fn slots_are_spread_and_within_a_period(
            period in 1u64..10_000_000,
            count in 1usize..64,
            a in 0usize..64,
            b in 0usize..64,
            after in 0u64..(1 << 50),
        ) {
            let slot = next_slot_us(period, a, count, after);
            prop_assert!(slot > after && slot - after <= period);
            let phase = (u128::from(period) * (a % count) as u128 / count as u128) as u64;
            prop_assert_eq!(slot % period, phase);
            if a % count != b % count {
                let other = next_slot_us(period, b, count, after);
                let apart = slot.abs_diff(other) % period;
                let apart = apart.min(period - apart);
                prop_assert!(apart + 1 >= period / count as u64, "{slot} {other}");
            }
        }
    }
}

//! Amoeba's suitability rule as one pure function over integers, so every
//! placement is exact and replayable.

use crate::info::UNIT;

/// What the caller wants placed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Program {
    /// Bytes of contiguous memory the program needs (its largest segment): a
    /// host whose largest free run is smaller is never chosen.
    pub memory: u64,
    /// Identifier of the program's text, for the cached-text bonus.
    pub text: Option<u64>,
}

/// How the pool directory rates one processor, in thousandths ([`UNIT`] = 1.0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Weights {
    /// The owner's preference for this processor.
    pub preference_milli: u32,
    /// Its speed relative to a reference board.
    pub speed_milli: u32,
}

impl Default for Weights {
    fn default() -> Weights {
        Weights { preference_milli: UNIT, speed_milli: UNIT }
    }
}

/// The knobs of the rule, in thousandths and bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Free memory above this counts no more: memory matters only when scarce.
    pub memory_cap: u64,
    /// Factor for a host that already holds the program's text (1100 = +10 %):
    /// enough to lift a host out of a tie (beyond the 5 % band), not enough to
    /// outweigh one more busy thread on a host that runs a few (3 against 4
    /// threads is 25 %), so a burst of one program still spreads evenly.
    pub cached_text_bonus_milli: u32,
    /// Hosts scoring within this share of the best are equally good (50 = 5 %).
    pub tie_band_milli: u32,
}

impl Default for Rule {
    fn default() -> Rule {
        Rule { memory_cap: 32 << 20, cached_text_bonus_milli: 1100, tie_band_milli: 50 }
    }
}

/// What the run server expects of a host right now: its last report plus the
/// placements made since that the report does not show yet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Estimate {
    /// Demand on the processor in thousandths of a busy thread.
    pub load_milli: u64,
    /// Bytes free for segments.
    pub free_bytes: u64,
    /// The largest contiguous free run.
    pub largest_free: u64,
    /// Whether the host holds the program's text.
    pub text_cached: bool,
}

/// preference × speed ÷ (load + 1) × min(free memory, cap) × (bonus if the text
/// is cached), scaled by [`UNIT`] for each factor given in thousandths. Exact
/// for weights up to 10⁶ and caps up to 1 TiB; beyond, it saturates.
pub fn suitability(weights: Weights, estimate: &Estimate, rule: &Rule) -> u128 {
    let bonus = if estimate.text_cached { rule.cached_text_bonus_milli } else { UNIT };
    let memory = estimate.free_bytes.min(rule.memory_cap);
    let numerator =
        [u128::from(weights.speed_milli), u128::from(memory), u128::from(bonus), u128::from(UNIT)]
            .into_iter()
            .fold(u128::from(weights.preference_milli), u128::saturating_mul);
    numerator / (u128::from(estimate.load_milli) + u128::from(UNIT))
}

/// The lowest score still within the tie band below `best`.
pub fn band_floor(best: u128, rule: &Rule) -> u128 {
    let band = u128::from(rule.tie_band_milli.min(UNIT));
    let unit = u128::from(UNIT);
    // best × band ÷ UNIT, split so it cannot overflow.
    best - (best / unit * band + best % unit * band / unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idle() -> Estimate {
        Estimate { load_milli: 0, free_bytes: 64 << 20, largest_free: 64 << 20, text_cached: false }
    }

    #[test]
    fn one_busy_thread_halves_the_score() {
        let rule = Rule::default();
        let free = suitability(Weights::default(), &idle(), &rule);
        let busy = suitability(Weights::default(), &Estimate { load_milli: 1000, ..idle() }, &rule);
        assert_eq!(busy * 2, free);
    }

    #[test]
    fn memory_above_the_cap_counts_no_more() {
        let rule = Rule::default();
        let capped = suitability(Weights::default(), &idle(), &rule);
        let huge = suitability(Weights::default(), &Estimate { free_bytes: 1 << 40, ..idle() }, &rule);
        let scarce =
            suitability(Weights::default(), &Estimate { free_bytes: rule.memory_cap / 2, ..idle() }, &rule);
        assert_eq!(capped, huge);
        assert_eq!(scarce * 2, capped);
    }

    #[test]
    fn preference_speed_and_cache_multiply() {
        let rule = Rule::default();
        let base = suitability(Weights::default(), &idle(), &rule);
        let fast = Weights { preference_milli: 2000, speed_milli: 1500 };
        assert_eq!(suitability(fast, &idle(), &rule), base * 3);
        let cached = suitability(Weights::default(), &Estimate { text_cached: true, ..idle() }, &rule);
        assert_eq!(cached * 10, base * 11);
    }

    #[test]
    fn band_floor_is_five_percent_below() {
        let rule = Rule::default();
        assert_eq!(band_floor(1000, &rule), 950);
        assert_eq!(
            band_floor(u128::MAX, &rule),
            u128::MAX - (u128::MAX / 1000 * 50 + u128::MAX % 1000 * 50 / 1000)
        );
        assert_eq!(band_floor(0, &rule), 0);
    }
}

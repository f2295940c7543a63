//! How busy the processor was over about the last second, and how many user
//! threads competed for it: from samples of the idle time and of the
//! runnable threads integrated over time (the run server's load figures).

#![forbid(unsafe_code)]

use alloc::collections::VecDeque;
use amoeba_ipc::interfaces::process::LOAD_UNIT;

/// How far back the figures look.
pub const LOAD_WINDOW_US: u64 = 1_000_000;

/// One reading of the counters.
#[derive(Clone, Copy)]
struct Sample {
    at: u64,
    idle_us: u64,
    runnable_us: u64,
}

/// Samples taken at each report, the oldest about a second back.
#[derive(Default)]
pub struct LoadMeter {
    samples: VecDeque<Sample>,
}

/// The load over the window: (busy share, average runnable threads), both in
/// thousandths, and the window's length.
pub struct Load {
    pub busy_milli: u32,
    pub runnable_milli: u64,
    pub window_us: u64,
}

impl LoadMeter {
    /// The load since the newest sample at least a second old (or the oldest),
    /// given the counters now.
    pub fn load(&mut self, now: u64, idle_us: u64, runnable_us: u64) -> Load {
        self.samples.push_back(Sample { at: now, idle_us, runnable_us });
        while self.samples.len() > 2 && self.samples[1].at + LOAD_WINDOW_US <= now {
            self.samples.pop_front();
        }
        let then = self.samples[0];
        let elapsed = now.saturating_sub(then.at);
        if elapsed == 0 {
            return Load { busy_milli: 0, runnable_milli: 0, window_us: 0 };
        }
        let unit = u64::from(LOAD_UNIT);
        let idle = idle_us.saturating_sub(then.idle_us).min(elapsed);
        let runnable = runnable_us.saturating_sub(then.runnable_us);
        Load {
            busy_milli: (unit - idle * unit / elapsed) as u32,
            runnable_milli: runnable * unit / elapsed,
            window_us: elapsed,
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;

    const UNIT: u64 = LOAD_UNIT as u64;

    #[test]
    fn the_first_reading_has_no_window() {
        let load = LoadMeter::default().load(5_000, 1_000, 2_000);
        assert_eq!((load.busy_milli, load.runnable_milli, load.window_us), (0, 0, 0));
    }

    #[test]
    fn busy_share_and_runnable_threads_over_the_window() {
        let mut meter = LoadMeter::default();
        meter.load(0, 0, 0);
        // Half a second, a quarter of it idle, three threads runnable on average.
        let load = meter.load(500_000, 125_000, 1_500_000);
        assert_eq!(load.window_us, 500_000);
        assert_eq!(load.busy_milli, 750);
        assert_eq!(load.runnable_milli, 3 * UNIT);
    }

    #[test]
    fn the_window_slides_to_the_newest_sample_a_second_old() {
        let mut meter = LoadMeter::default();
        meter.load(0, 0, 0);
        meter.load(400_000, 400_000, 0); // idle all along so far
        meter.load(900_000, 900_000, 0);
        // Busy from 0.9 s on: the window starts at the newest sample at least
        // a second old (0.4 s), not at boot.
        let load = meter.load(1_400_000, 900_000, 500_000);
        assert_eq!(load.window_us, 1_000_000);
        assert_eq!(load.busy_milli, 500);
        assert_eq!(load.runnable_milli, 500);
        let load = meter.load(2_400_000, 900_000, 1_500_000);
        assert_eq!(load.window_us, 1_000_000);
        assert_eq!(load.busy_milli, UNIT as u32, "busy all of the last second");
        assert_eq!(load.runnable_milli, UNIT);
    }

    #[test]
    fn counters_out_of_step_give_figures_in_range() {
        let mut meter = LoadMeter::default();
        meter.load(1_000, 500, 10_000);
        // More idle time than time passed, and a runnable counter gone back.
        let load = meter.load(2_000, 5_000, 0);
        assert_eq!(load.busy_milli, 0);
        assert_eq!(load.runnable_milli, 0);
    }

    proptest! {
        /// For readings taken at increasing times of counters that never run
        /// ahead of the clock, the busy share stays within one unit, the
        /// window covers at least a second once a second has passed and is
        /// not longer than a second plus the gap between two readings, and
        /// the meter keeps only the samples of the last second and one
        /// before it.
        #[test]
        fn figures_stay_in_range(steps in proptest::collection::vec((1u64..400_000, 0u64..=1000, 0u64..4000), 1..80)) {
            let mut meter = LoadMeter::default();
            let (mut now, mut idle, mut runnable) = (0u64, 0u64, 0u64);
            meter.load(now, idle, runnable);
            let mut readings = std::vec![now];
            let mut largest_gap = 0;
            for (gap, idle_milli, runnable_milli) in steps {
                now += gap;
                idle += gap * idle_milli / UNIT;
                runnable += gap * runnable_milli / UNIT;
                largest_gap = largest_gap.max(gap);
                let load = meter.load(now, idle, runnable);
                readings.push(now);
                prop_assert!(u64::from(load.busy_milli) <= UNIT);
                prop_assert!(load.runnable_milli <= 4 * UNIT);
                prop_assert!(load.window_us <= LOAD_WINDOW_US + largest_gap);
                if now >= LOAD_WINDOW_US {
                    prop_assert!(load.window_us >= LOAD_WINDOW_US);
                }
                let recent = readings.iter().filter(|&&at| at + LOAD_WINDOW_US > now).count();
                prop_assert!(meter.samples.len() <= (1 + recent).max(2));
            }
        }
    }
}

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

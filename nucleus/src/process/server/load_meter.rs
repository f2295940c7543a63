//! How busy the processor was over about the last second, from samples of
//! its idle time (the run server's load figure).

#![forbid(unsafe_code)]

use alloc::collections::VecDeque;
use amoeba::interfaces::process::LOAD_UNIT;

/// How far back the busy share looks.
const LOAD_WINDOW_US: u64 = 1_000_000;

/// Samples of the idle time, to tell how busy the processor was over about
/// the last second.
#[derive(Default)]
pub struct LoadMeter {
    /// (µs since boot, µs idle since boot), oldest first.
    samples: VecDeque<(u64, u64)>,
}

impl LoadMeter {
    /// The busy share in thousandths since the newest sample at least a
    /// second old (or the oldest one), given the idle time now.
    pub fn busy_milli(&mut self, now: u64, idle: u64) -> u32 {
        self.samples.push_back((now, idle));
        while self.samples.len() > 2 && self.samples[1].0 + LOAD_WINDOW_US <= now {
            self.samples.pop_front();
        }
        let (then, idle_then) = self.samples[0];
        let elapsed = now.saturating_sub(then);
        if elapsed == 0 {
            return 0;
        }
        let idle = idle.saturating_sub(idle_then).min(elapsed);
        (u64::from(LOAD_UNIT) - idle * u64::from(LOAD_UNIT) / elapsed) as u32
    }
}

//! Measurements for `just bench`: figures are taken side by side in one run
//! and reported as ratios, since absolute times on shared machines are noisy.
//! One module per section: [`rpc`], [`group`], [`system`] (processes, Bullet,
//! the whole system), [`directory`], [`instructions`] (guest instruction counts);
//! [`plots`] draws the curves and bars, [`host_cpu`]
//! reads the host CPU the boards use.

pub mod directory;
pub mod group;
pub mod host_cpu;
pub mod instructions;
pub mod plots;
pub mod rpc;
pub mod system;

pub use host_station::echo::EchoResponder;

use anyhow::{Result, bail};
use host_station::host_port::HostPort;
use std::time::Duration;

/// Median and 99th percentile of a set of samples.
#[derive(Clone, Copy, Debug)]
pub struct Summary {
    pub count: usize,
    pub median: Duration,
    pub p99: Duration,
}

impl Summary {
    pub fn of(samples: &mut [Duration]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
        Some(Self { count: samples.len(), median: at(0.5), p99: at(0.99) })
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "median {:>8.1} us  p99 {:>8.1} us  ({} round trips)",
            self.median.as_secs_f64() * 1e6,
            self.p99.as_secs_f64() * 1e6,
            self.count
        )
    }
}

/// The number after the word `key` in a result line a benchmark program
/// printed, e.g. `median-us` in `rpc-bench null median-us 75 p99-us 144`.
pub fn value_after(line: &str, key: &str) -> Option<f64> {
    let mut words = line.split_whitespace();
    words.find(|w| *w == key)?;
    words.next()?.parse().ok()
}

/// Round trips from `client` to `target`, `rounds` of them, each with a
/// fresh id; fails if any goes unanswered.
pub fn echo_round_trips(
    client: &HostPort,
    target: pool_control::Mac,
    rounds: usize,
    first_id: u32,
) -> Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let id = first_id.wrapping_add(i as u32);
        match client.echo(target, id, b"bench", Duration::from_secs(2))? {
            Some(rtt) => samples.push(rtt),
            None => bail!("echo {id} to {target} was not answered"),
        }
    }
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_found_after_their_key() {
        let line = "rpc-bench null median-us 75 p99-us 144.5";
        assert_eq!(value_after(line, "median-us"), Some(75.0));
        assert_eq!(value_after(line, "p99-us"), Some(144.5));
        assert_eq!(value_after(line, "min-us"), None);
        assert_eq!(value_after("rpc-bench null median-us", "median-us"), None);
    }

    #[test]
    fn summary_picks_median_and_p99() {
        let mut samples: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        let summary = Summary::of(&mut samples).unwrap();
        assert_eq!(summary.median, Duration::from_micros(51));
        assert_eq!(summary.p99, Duration::from_micros(99));
        assert!(Summary::of(&mut []).is_none());
    }
}

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

use amoeba_client::exec::Exec;
use amoeba_ipc::interfaces::starter::{Timing, Value};
use anyhow::{Context, Result, bail};
use host_station::bootstrap_server::Expected;
use host_station::host_port::HostPort;
use qemu_pool::pool::Pool;
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

impl From<Timing> for Summary {
    fn from(timing: Timing) -> Self {
        Summary {
            count: timing.count as usize,
            median: Duration::from_micros(timing.median_us),
            p99: Duration::from_micros(timing.p99_us),
        }
    }
}

/// Runs the bench program `exec` on board `board` with an object of the
/// host's bootstrap server as its `BOOTSTRAP`, and waits up to `timeout` for
/// it to exit 0; that object, holding the figures it reported.
pub(crate) fn run_reporting(pool: &Pool, board: usize, exec: &Exec, timeout: Duration) -> Result<Expected> {
    let (started, reported) = pool_system::start_expecting(pool, board, exec)?;
    match pool.wait_process(&started, timeout) {
        Some(0) => Ok(reported),
        status => bail!(
            "{} on board {board} ended with {status:?}:\n{}",
            exec.name,
            pool.boards()[board].console_tail(10)
        ),
    }
}

/// Every timing a bench program reported, by kind, in its order.
pub(crate) fn timings(reported: &Expected) -> Vec<(String, Summary)> {
    reported.timings().into_iter().map(|(kind, timing)| (kind, Summary::from(timing))).collect()
}

/// The unsigned figure `name` a bench program reported.
pub(crate) fn unsigned(reported: &Expected, name: &str) -> Result<u64> {
    match reported.figure(name) {
        Some(Value::Unsigned(value)) => Ok(value),
        other => Err(anyhow::anyhow!("{name} reported as {other:?}")).context("a bench program's figures"),
    }
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
    fn a_timing_is_a_summary_in_micros() {
        let summary = Summary::from(Timing { count: 40, median_us: 75, p99_us: 144 });
        assert_eq!(summary.count, 40);
        assert_eq!(summary.median, Duration::from_micros(75));
        assert_eq!(summary.p99, Duration::from_micros(144));
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

//! The host's CPU accounting next to benchmark figures: how many host cores
//! the pool's QEMU processes used over an interval (their user + system
//! time from `/proc/<pid>/stat`), and how busy the whole host was (from
//! `/proc/stat`). On a host of two shared cores this tells whether a figure
//! measured the pool or the lack of CPU for it.

use std::time::Instant;

/// CPU time readings at one moment.
#[derive(Clone, Debug)]
pub struct CpuReading {
    at: Instant,
    /// User + system clock ticks of each watched process (absent: gone).
    processes: Vec<Option<u64>>,
    /// Busy and total clock ticks of the whole host, summed over its CPUs.
    host: Option<(u64, u64)>,
}

/// CPU use between two readings, in cores (1.0: one core all the time).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CpuUse {
    /// The watched processes together.
    pub processes: f64,
    /// Everything on the host.
    pub host: Option<f64>,
    /// The host's cores.
    pub cores: usize,
}

impl std::fmt::Display for CpuUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "boards {:.2} cores", self.processes)?;
        if let Some(host) = self.host {
            write!(f, ", host {:.2} of {} cores busy", host, self.cores)?;
        }
        Ok(())
    }
}

/// Clock ticks per second of `/proc` times (USER_HZ: 100 on Linux).
fn ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// User + system ticks of one process, from the text of its `stat` file:
/// fields 14 and 15, counted after the command name's closing parenthesis
/// (the name may hold spaces).
pub fn process_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // After the name, field 3 (state) is index 0, so field n is index n - 3.
    let user: u64 = fields.get(14 - 3)?.parse().ok()?;
    let system: u64 = fields.get(15 - 3)?.parse().ok()?;
    Some(user + system)
}

/// Busy and total ticks from the `cpu` line of `/proc/stat` (idle and
/// iowait count as not busy).
pub fn host_ticks(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let values: Vec<u64> = line.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    let total: u64 = values.iter().take(8).sum(); // guest times are already in user
    let idle = values.get(3)? + values.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

impl CpuReading {
    /// Reads the CPU time of `pids` and of the host now.
    pub fn take(pids: &[u32]) -> Self {
        let processes = pids
            .iter()
            .map(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().and_then(|s| process_ticks(&s))
            })
            .collect();
        let host = std::fs::read_to_string("/proc/stat").ok().and_then(|s| host_ticks(&s));
        Self { at: Instant::now(), processes, host }
    }

    /// What was used from `self` until `later` (readings of the same pids).
    pub fn until(&self, later: &CpuReading) -> CpuUse {
        let seconds = later.at.duration_since(self.at).as_secs_f64().max(1e-9);
        let used: u64 = self
            .processes
            .iter()
            .zip(&later.processes)
            .filter_map(|(a, b)| Some(b.as_ref()?.saturating_sub(*a.as_ref()?)))
            .sum();
        let host = match (self.host, later.host) {
            (Some((busy_a, total_a)), Some((busy_b, total_b))) if total_b > total_a => {
                let cores = std::thread::available_parallelism().map_or(1, usize::from) as f64;
                Some((busy_b - busy_a) as f64 / (total_b - total_a) as f64 * cores)
            }
            _ => None,
        };
        CpuUse {
            processes: used as f64 / ticks_per_second() / seconds,
            host,
            cores: std::thread::available_parallelism().map_or(1, usize::from),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_times_are_found_after_a_name_with_spaces() {
        let stat = "4242 (qemu system) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 3 0 99 0 0";
        assert_eq!(process_ticks(stat), Some(325));
        assert_eq!(process_ticks("4242 (short) S 1"), None);
        assert_eq!(process_ticks("no parenthesis"), None);
    }

    #[test]
    fn host_busy_leaves_out_idle_and_iowait() {
        let stat = "cpu  100 5 50 800 40 3 2 0 0 0\ncpu0 50 2 25 400 20 1 1 0 0 0\n";
        assert_eq!(host_ticks(stat), Some((160, 1000)));
        assert_eq!(host_ticks("intr 1 2 3\n"), None);
    }

    #[test]
    fn this_process_uses_some_cpu_while_it_spins() {
        let me = [std::process::id()];
        let before = CpuReading::take(&me);
        let start = Instant::now();
        let mut x = 0u64;
        while start.elapsed().as_millis() < 300 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let used = before.until(&CpuReading::take(&me));
        assert!(used.processes > 0.3, "spinning for 300 ms used {used}");
        assert!(used.processes < 1.5, "one thread cannot use {used}");
    }
}

//! What a process server's info call reports about its board: the
//! `amoeba_ipc::interfaces::process::HostInfo` the process server declares (it travels in
//! the interface's typed reply), with the fixed-point unit the scoring uses.

pub use amoeba_ipc::interfaces::process::{HostInfo, LOAD_UNIT as UNIT, MAX_CACHED_TEXTS};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_is_the_larger_of_runnable_threads_and_busy_share() {
        let hogs = HostInfo { runnable_milli: 2000, cpu_load_milli: 1000, ..HostInfo::default() };
        assert_eq!(hogs.load_milli(), 2000);
        let blocked = HostInfo { runnable_milli: 0, cpu_load_milli: 400, ..HostInfo::default() };
        assert_eq!(blocked.load_milli(), 400);
    }

    #[test]
    fn contradictory_reports_are_recognised() {
        let good = HostInfo {
            free_bytes: 10,
            largest_free: 10,
            cpu_load_milli: UNIT,
            uptime_us: 1,
            ..HostInfo::default()
        };
        assert!(good.is_consistent());
        assert!(!HostInfo { cpu_load_milli: UNIT + 1, ..good.clone() }.is_consistent());
        assert!(!HostInfo { largest_free: 11, ..good.clone() }.is_consistent());
        let texts = (0..=MAX_CACHED_TEXTS as u64).collect();
        assert!(!HostInfo { cached_texts: texts, ..good }.is_consistent());
    }

    /// A board as it answers with a few processes running.
    fn board() -> HostInfo {
        HostInfo {
            runnable_milli: 2 * UNIT,
            cpu_load_milli: UNIT,
            free_bytes: 200 << 20,
            largest_free: 150 << 20,
            processes: 5,
            processes_created: 40,
            uptime_us: 90_000_000,
            cached_texts: vec![1, 2],
            kernel_heap_free: 40 << 20,
        }
    }

    #[test]
    fn reports_beyond_what_a_board_can_have_are_impossible() {
        assert!(board().is_consistent());
        // The biggest board the nucleus maps: 1 GiB, heap and segments together.
        let full = HostInfo { free_bytes: 1 << 30, largest_free: 1 << 30, kernel_heap_free: 0, ..board() };
        assert!(full.is_consistent());
        assert!(!HostInfo { kernel_heap_free: 1, ..full.clone() }.is_consistent());
        assert!(!HostInfo { free_bytes: (1 << 30) + 1, ..full }.is_consistent());
        assert!(!HostInfo { free_bytes: u64::MAX, largest_free: 0, ..board() }.is_consistent());
        assert!(!HostInfo { kernel_heap_free: u64::MAX, ..board() }.is_consistent());
        // Runnable threads: at most as many as 48 MiB of 32 KiB kernel stacks.
        assert!(HostInfo { runnable_milli: 1536 * UNIT, ..board() }.is_consistent());
        assert!(!HostInfo { runnable_milli: 1536 * UNIT + 1, ..board() }.is_consistent());
        assert!(!HostInfo { runnable_milli: u32::MAX, ..board() }.is_consistent());
        // More processes alive than ever created.
        assert!(!HostInfo { processes: 41, ..board() }.is_consistent());
        // It answered, so it has been up a while; not for more than ten years.
        assert!(!HostInfo { uptime_us: 0, ..board() }.is_consistent());
        assert!(HostInfo { uptime_us: 9 * 365 * 24 * 3600 * 1_000_000, ..board() }.is_consistent());
        assert!(!HostInfo { uptime_us: 11 * 365 * 24 * 3600 * 1_000_000, ..board() }.is_consistent());
        assert!(!HostInfo { uptime_us: u64::MAX, ..board() }.is_consistent());
    }
}

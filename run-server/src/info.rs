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
        let good = HostInfo { free_bytes: 10, largest_free: 10, cpu_load_milli: UNIT, ..HostInfo::default() };
        assert!(good.is_consistent());
        assert!(!HostInfo { cpu_load_milli: UNIT + 1, ..good.clone() }.is_consistent());
        assert!(!HostInfo { largest_free: 11, ..good.clone() }.is_consistent());
        let texts = (0..=MAX_CACHED_TEXTS as u64).collect();
        assert!(!HostInfo { cached_texts: texts, ..good }.is_consistent());
    }
}

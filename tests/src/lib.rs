//! Harness for pool tests: boots a pool once per scenario in its own
//! temporary run directory, shows every board's console when the scenario
//! fails, and always kills its boards (dropping the pool kills them, and
//! QEMU dies with the test process even if it is killed outright).

use qemu_pool::BoardSpec;
use qemu_pool::Pool;
use qemu_pool::PoolConfig;
use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::time::Duration;

/// The nucleus the tests boot; `just test` builds it first.
pub fn nucleus() -> PathBuf {
    let path = qemu_pool::default_nucleus();
    assert!(
        path.is_file(),
        "the nucleus is not built at {}; run the tests with `just test`, or build it first with \
         `cargo build --release -p nucleus --target aarch64-unknown-none`",
        path.display()
    );
    path
}

/// A pool under test.
pub struct TestPool {
    pool: Option<Pool>,
    // Kept until the pool is gone: it holds the sockets and consoles.
    _run_dir: tempfile::TempDir,
}

/// A short run directory: UNIX socket paths are limited to 107 bytes.
fn run_dir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("pool-").tempdir_in("/tmp").expect("creating a temporary run directory")
}

/// A configuration of `count` ordinary boards in a fresh run directory.
pub fn config(count: u16) -> (PoolConfig, tempfile::TempDir) {
    let dir = run_dir();
    let mut config = PoolConfig::new(dir.path(), nucleus(), count);
    config.ready_timeout = Duration::from_secs(60);
    (config, dir)
}

/// Boots `count` boards and waits until all are ready.
pub fn boot(count: u16) -> TestPool {
    let (config, dir) = config(count);
    boot_with(config, dir)
}

/// Boots a pool from `config` and waits until all boards are ready.
pub fn boot_with(config: PoolConfig, dir: tempfile::TempDir) -> TestPool {
    match Pool::boot(config) {
        Ok(pool) => TestPool { pool: Some(pool), _run_dir: dir },
        Err(error) => panic!("the pool did not boot: {error:#}"),
    }
}

/// Starts a pool without waiting for readiness (for boards that are meant to fail).
pub fn start_with(config: PoolConfig, dir: tempfile::TempDir) -> TestPool {
    match Pool::start(config) {
        Ok(pool) => TestPool { pool: Some(pool), _run_dir: dir },
        Err(error) => panic!("the pool did not start: {error:#}"),
    }
}

/// One board spec with extra bootargs (a test mode).
pub fn board_with_args(id: u16, extra_bootargs: &str) -> BoardSpec {
    BoardSpec { extra_bootargs: extra_bootargs.into(), ..BoardSpec::new(id, "test") }
}

impl TestPool {
    /// PIDs of the QEMUs this pool runs.
    pub fn qemu_pids(&self) -> Vec<u32> {
        self.boards().iter().filter_map(|b| b.pid()).collect()
    }

    /// Stops the pool now.
    pub fn shut_down(&mut self) {
        if let Some(pool) = self.pool.take() {
            pool.shutdown();
        }
    }
}

impl Deref for TestPool {
    type Target = Pool;
    fn deref(&self) -> &Pool {
        self.pool.as_ref().expect("the pool is running")
    }
}

impl DerefMut for TestPool {
    fn deref_mut(&mut self) -> &mut Pool {
        self.pool.as_mut().expect("the pool is running")
    }
}

impl Drop for TestPool {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Some(pool) = &self.pool
        {
            eprintln!("\n=== the scenario failed; board consoles ===\n{}", pool.consoles(40));
        }
        self.shut_down();
    }
}

/// Whether a process with this PID still exists.
pub fn process_exists(pid: u32) -> bool {
    // SAFETY: signal 0 only checks for existence and permission.
    unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
}

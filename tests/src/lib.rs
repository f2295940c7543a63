//! Harness for pool tests: boots a pool once per scenario in its own
//! temporary run directory, shows every board's console when the scenario
//! fails, and always kills its boards (dropping the pool kills them, and
//! QEMU dies with the test process even if it is killed outright).
//! Programs a test wants to hear from are started with an object of the
//! host's bootstrap server ([`TestPool::start_told`]): they announce that they
//! serve and report their results there, typed, so no test reads a
//! capability or a result from a console.

pub mod up;

use amoeba_abi::Capability;
use amoeba_client::exec::Exec;
use amoeba_ipc::interfaces::starter::{Announcement, Figure, Value};
use host_station::bootstrap_server::Expected;
use qemu_pool::BoardSpec;
use qemu_pool::Pool;
use qemu_pool::PoolConfig;
use qemu_pool::exec::Started;
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

/// A program started with an object of the host's bootstrap server: its
/// process and what it tells.
pub struct Told {
    /// Its process.
    pub started: Started,
    /// Its bootstrap object.
    pub told: Expected,
}

/// How long a program has to announce or report what a test waits for.
pub const TELL_TIMEOUT: Duration = Duration::from_secs(30);

impl Told {
    /// The capability it announced it serves through (waits up to [`TELL_TIMEOUT`]).
    pub fn serving(&self) -> Capability {
        self.announced(|a| match a {
            Announcement::Serving(capability) => Some(*capability),
            _ => None,
        })
    }

    /// The capability of the group it announced it made (waits up to [`TELL_TIMEOUT`]).
    pub fn group(&self) -> Capability {
        self.announced(|a| match a {
            Announcement::Group(capability) => Some(*capability),
            _ => None,
        })
    }

    fn announced(&self, wanted: impl Fn(&Announcement) -> Option<Capability>) -> Capability {
        let found = self.told.wait(TELL_TIMEOUT, |announcements, _| announcements.iter().find_map(&wanted));
        found.unwrap_or_else(|| {
            panic!(
                "process {} announced nothing like that: {:?}",
                self.started.pid,
                self.told.announcements()
            )
        })
    }

    /// The latest value it reported as `name`, if any.
    pub fn figure(&self, name: &str) -> Option<Value> {
        self.told.figure(name)
    }

    /// Every value it reported as `name`, oldest first.
    pub fn figures(&self, name: &str) -> Vec<Value> {
        let figures = self.told.figures();
        figures.into_iter().filter(|f| f.name == name).map(|f: Figure| f.value).collect()
    }

    /// Waits up to `timeout` until it has reported `name` at least `times` times.
    pub fn wait_reports(&self, name: &str, times: usize, timeout: Duration) -> bool {
        self.told
            .wait(timeout, |_, figures| {
                (figures.iter().filter(|f| f.name == name).count() >= times).then_some(())
            })
            .is_some()
    }

    /// The unsigned value it reported as `name`; panics (saying what it did
    /// report) if there is none.
    pub fn unsigned(&self, name: &str) -> u64 {
        match self.figure(name) {
            Some(Value::Unsigned(value)) => value,
            other => panic!(
                "process {} reported {name:?} as {other:?}: {:?}",
                self.started.pid,
                self.told.figures()
            ),
        }
    }

    /// The flag it reported as `name`; panics if there is none.
    pub fn flag(&self, name: &str) -> bool {
        match self.figure(name) {
            Some(Value::Flag(value)) => value,
            other => panic!(
                "process {} reported {name:?} as {other:?}: {:?}",
                self.started.pid,
                self.told.figures()
            ),
        }
    }
}

impl TestPool {
    /// Starts `exec` on board `board` with an object of the host's bootstrap
    /// server as its `BOOTSTRAP`.
    pub fn start_told(&self, board: usize, exec: &Exec) -> Told {
        let (started, told) =
            pool_system::start_expecting(self, board, exec).unwrap_or_else(|e| panic!("{e:#}"));
        Told { started, told }
    }

    /// Starts `program` on board `board` with the numeric `argument` (and a
    /// bootstrap object).
    pub fn run_told(&self, board: usize, program: &str, argument: u64) -> Told {
        self.start_told(board, &Exec::new(program, &[program]).with_argument(argument))
    }

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

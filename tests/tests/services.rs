//! The boot service, as a user meets it: `boot up` brings the system up with
//! the boot service watching it, and then, in one pool, the Bullet server is
//! killed (`boot kill`), its whole board is killed with SIGKILL and booted
//! again (`boot restart-board 0`), a directory replica is killed, and the run
//! server is killed. After each, within 5 s of the kill, `ls`, `get` of a file
//! stored before and `ax hello` work again; at the end every file stored and
//! every name entered before any kill is there, byte for byte. A stunned
//! server is slow, not dead: it is not restarted, and answers once resumed.

use amoeba_ipc::interfaces::boot::{ServiceReport, ServiceState};
use amoeba_ipc::interfaces::process::ProcessState;
use amoeba_ipc::interfaces::{boot_service, process_server};
use pool_tests::up::{Up, text};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use workstation::Workstation;

/// The budget from a kill to a working `ls`, `get` and `ax hello`.
const BUDGET: Duration = Duration::from_secs(5);
/// How long a step may take at most before the test gives up on it (beyond
/// the budget, to measure how far over it went).
const GIVE_UP: Duration = Duration::from_secs(60);

/// What these scenarios ask of the boot service of a running system.
trait Services {
    /// What the boot service reports, by RPC.
    fn services(&self) -> Vec<ServiceReport>;
    fn service(&self, name: &str) -> ServiceReport;
    /// Waits until the boot service sees every service up.
    fn wait_all_up(&self, why: &str) -> Duration;
    /// Waits until the boot service has started `name` more than `before`
    /// times, then until every service is up again.
    fn wait_restarted(&self, name: &str, before: u32);
    /// The process id of the live `program` on board `board`.
    fn pid(&self, board: u16, program: &str) -> u32;
}

impl Services for Up {
    fn services(&self) -> Vec<ServiceReport> {
        let mut ws = Workstation::connect(self.run_dir()).unwrap();
        let boot = ws.capability("boot").expect("up saves the boot service's capability");
        boot_service::Client::new(ws.rpc()).services(&boot).unwrap_or_else(|s| panic!("services: {s}"))
    }

    fn service(&self, name: &str) -> ServiceReport {
        self.services().into_iter().find(|s| s.name == name).unwrap_or_else(|| panic!("no service {name}"))
    }

    fn wait_all_up(&self, why: &str) -> Duration {
        let start = Instant::now();
        loop {
            let reports = self.services();
            if reports.iter().all(|r| r.state == ServiceState::Up) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < GIVE_UP,
                "{why}: not every service came up:\n{}",
                self.ok(&["services"])
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn wait_restarted(&self, name: &str, before: u32) {
        let start = Instant::now();
        while self.service(name).restarts <= before {
            assert!(start.elapsed() < GIVE_UP, "{name} was not restarted:\n{}", self.ok(&["services"]));
            std::thread::sleep(Duration::from_millis(100));
        }
        self.wait_all_up(&format!("after {name} was restarted"));
    }

    fn pid(&self, board: u16, program: &str) -> u32 {
        let mut ws = Workstation::connect(self.run_dir()).unwrap();
        let host = ws.host_capability(board).unwrap();
        let list = process_server::Client::new(ws.rpc()).processes(&host).unwrap();
        let live: Vec<u32> = list
            .iter()
            .filter(|p| p.name == program && !matches!(p.state, ProcessState::Exited(_)))
            .map(|p| p.pid)
            .collect();
        assert_eq!(live.len(), 1, "{program} on board {board}: {list:?}");
        live[0]
    }
}

/// `length` bytes that differ from file to file (a small linear congruential generator).
fn contents(seed: u64, length: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..length)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 33) as u8
        })
        .collect()
}

/// The files stored so far: (path, contents).
struct Stored {
    files: Vec<(String, Vec<u8>)>,
    local: PathBuf,
}

impl Stored {
    /// Stores a new file at `path`.
    fn put(&mut self, up: &Up, path: &str, length: usize) {
        let bytes = contents(self.files.len() as u64 + 1, length);
        std::fs::write(&self.local, &bytes).unwrap();
        up.ok(&["put", self.local.to_str().unwrap(), path]);
        self.files.push((String::from(path), bytes));
    }

    /// Every file read back byte for byte, and every name in its directory's listing.
    fn check_all(&self, up: &Up) {
        for (path, bytes) in &self.files {
            let back = up.command(&["get", path]);
            assert!(back.status.success(), "get {path}: {}", text(&back));
            assert!(back.stdout == *bytes, "{path} came back different ({} bytes)", back.stdout.len());
            let (dir, name) = path.rsplit_once('/').unwrap();
            let listing = up.ok(&["ls", if dir.is_empty() { "/" } else { dir }]);
            assert!(
                listing.lines().any(|l| l.split_whitespace().next() == Some(name)),
                "{name} not in {listing}"
            );
        }
    }
}

/// Retries `attempt` until it works; when it first did, from `since`.
fn until_it_works(what: &str, since: Instant, mut attempt: impl FnMut() -> Result<(), String>) -> Duration {
    loop {
        let why = match attempt() {
            Ok(()) => return since.elapsed(),
            Err(why) => why,
        };
        assert!(since.elapsed() < GIVE_UP, "{what} still fails {GIVE_UP:?} after the kill: {why}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// After a kill at `killed`: a working `ls`, `get` of a file stored before,
/// and `ax hello`, all within the budget; the times each first worked.
fn works_again(up: &Up, stored: &Stored, killed: Instant, what: &str) {
    let (old_path, old_bytes) = &stored.files[0];
    let ls = until_it_works("ls", killed, || {
        let output = up.command(&["ls", "/"]);
        let listing = text(&output);
        (output.status.success() && listing.contains("bin")).then_some(()).ok_or(listing)
    });
    let get = until_it_works("get", killed, || {
        let output = up.command(&["get", old_path]);
        (output.status.success() && output.stdout == *old_bytes).then_some(()).ok_or_else(|| text(&output))
    });
    let ax = until_it_works("ax hello", killed, || {
        let output = up.command(&["ax", "hello", "again"]);
        let ok = output.status.code() == Some(7)
            && String::from_utf8_lossy(&output.stdout).contains("hello: again");
        ok.then_some(()).ok_or_else(|| text(&output))
    });
    println!("{what}: ls worked after {ls:.2?}, get after {get:.2?}, ax hello after {ax:.2?}");
    let slowest = ls.max(get).max(ax);
    assert!(
        slowest <= BUDGET,
        "{what}: the system worked again only {slowest:.2?} after the kill (ls {ls:.2?}, get {get:.2?}, ax \
         {ax:.2?}); the boot service saw:\n{}",
        up.ok(&["services"])
    );
}

#[test]
fn killed_services_come_back_within_seconds_and_nothing_stored_is_lost() {
    let up = Up::start(4);
    let table = up.ok(&["services"]);
    for name in ["bullet", "directory 0", "directory 1", "directory 2", "run"] {
        assert!(table.lines().any(|l| l.starts_with(name) && l.contains(" up ")), "{name} not up:\n{table}");
    }
    let scratch = tempfile::tempdir().unwrap();
    let mut stored = Stored { files: Vec::new(), local: scratch.path().join("file") };
    up.ok(&["mkdir", "/keep"]);
    stored.put(&up, "/keep/first", 100_000);
    stored.put(&up, "/second", 3_000);

    // Slow is not dead: a stunned Bullet server is suspect, never restarted.
    let bullet_pid = up.pid(0, "bullet-server");
    up.ok(&["stun", "bullet-server"]);
    std::thread::sleep(Duration::from_secs(6));
    let bullet = up.service("bullet");
    assert_eq!(bullet.state, ServiceState::Suspect, "{bullet:?}");
    assert_eq!(bullet.restarts, 0, "a stunned server was restarted: {bullet:?}");
    assert_eq!(up.pid(0, "bullet-server"), bullet_pid);
    up.ok(&["resume", "bullet-server"]);
    up.wait_all_up("after the resume");
    assert_eq!(up.service("bullet").restarts, 0);
    assert_eq!(up.pid(0, "bullet-server"), bullet_pid, "the resumed server is the same process");

    // The Bullet server killed.
    let killed = Instant::now();
    up.ok(&["kill", "bullet-server"]);
    works_again(&up, &stored, killed, "Bullet server killed");
    up.wait_restarted("bullet", 0);
    assert_eq!(up.service("bullet").restarts, 1);
    stored.put(&up, "/keep/after-bullet", 50_000);

    // Its whole board killed with SIGKILL and booted again: Bullet and directory
    // replica 0 went with it; replicas 1 and 2 hold dead disk capabilities.
    let killed = Instant::now();
    up.ok(&["restart-board", "0"]);
    works_again(&up, &stored, killed, "board 0 killed and booted again");
    up.wait_restarted("directory 2", 0);
    println!("every service up (the stale replicas replaced) {:.2?} after board 0's kill", killed.elapsed());
    for name in ["directory 0", "directory 1", "directory 2"] {
        assert!(up.service(name).restarts >= 1, "{name} was not restarted: {:?}", up.service(name));
    }
    stored.put(&up, "/after-board", 20_000);

    // A directory replica killed.
    let replica = up.pid(1, "directory-server");
    let before = up.service("directory 1").restarts;
    let killed = Instant::now();
    up.ok(&["kill", &format!("board1/{replica}")]);
    works_again(&up, &stored, killed, "directory replica 1 killed");
    up.wait_restarted("directory 1", before);
    assert_eq!(up.service("directory 1").restarts, before + 1);
    stored.put(&up, "/keep/after-replica", 10_000);

    // The run server killed.
    let killed = Instant::now();
    up.ok(&["kill", "run-server"]);
    works_again(&up, &stored, killed, "run server killed");
    up.wait_restarted("run", 0);
    assert_eq!(up.service("run").restarts, 1);

    // Nothing stored before any kill is lost; updates still work.
    stored.put(&up, "/keep/last", 1_000);
    stored.check_all(&up);
    let table = up.ok(&["services"]);
    println!("{table}");
    assert!(table.contains("latest starts:"), "{table}");
}

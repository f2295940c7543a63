//! The workstation session as a user meets it, like `ssh`: `boot up` brings a
//! system up, and `boot ax` from other processes runs programs that the
//! session owns. Ctrl-C interrupts the program and `ax` exits 130; a killed
//! `ax` (SIGKILL) or a stopped one (a host cut off) takes its program with it
//! within seconds, and `ps` shows a program stuck on output as blocked; input
//! piped into `ax` reaches the program, with its end; a detached program
//! never waits for its output, which a log keeps; 64 `ax` at once from 64
//! host processes each get their own output and status; `./pool ax hello`
//! prints hello's lines and nothing else. One `up` per group of scenarios.

use amoeba_ipc::interfaces::process::ProcessState;
use amoeba_ipc::interfaces::process_server;
use pool_tests::up::{Up, text};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The groups boot a pool each; one at a time is kinder to a small machine.
static ONE_POOL_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// What these scenarios ask of a running system.
trait Sessions {
    /// The live processes running `name` on any board: (board, pid, CPU µs).
    fn running(&self, name: &str) -> Vec<(u16, u32, u64)>;
    /// Waits up to `timeout` until no process runs `name`; how long it took.
    fn until_gone(&self, name: &str, timeout: Duration) -> Option<Duration>;
}

impl Sessions for Up {
    fn running(&self, name: &str) -> Vec<(u16, u32, u64)> {
        let mut workstation = workstation::Workstation::connect(self.run_dir()).unwrap();
        let mut found = Vec::new();
        for (board, host) in workstation.boards() {
            let list = process_server::Client::new(workstation.rpc()).processes(&host).unwrap_or_default();
            found.extend(
                list.into_iter()
                    .filter(|p| p.name == name && !matches!(p.state, ProcessState::Exited(_)))
                    .map(|p| (board, p.pid, p.cpu_us)),
            );
        }
        found
    }

    fn until_gone(&self, name: &str, timeout: Duration) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if self.running(name).is_empty() {
                return Some(start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        None
    }
}

/// A running `ax` whose output lines arrive on a channel.
struct Ax {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Ax {
    fn start(up: &Up, argv: &[&str]) -> Ax {
        let mut args = vec!["ax"];
        args.extend_from_slice(argv);
        let mut child = up.boot(&args).stdin(Stdio::null()).stdout(Stdio::piped()).spawn().unwrap();
        let (sender, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Ax { child, lines, seen: Vec::new() }
    }

    /// Waits until a line contains `needle`.
    fn wait_for(&mut self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.seen.iter().any(|l| l.contains(needle)) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => panic!("no {needle:?} from ax within {timeout:?}; it printed {:?}", self.seen),
            }
        }
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on a child this test started and has not reaped.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, signal) }, 0);
    }

    /// Waits up to `timeout` for `ax` to end: its exit status.
    fn wait(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Ax {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_session_owns_its_program_its_input_and_its_end() {
    let _one = ONE_POOL_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let up = Up::start(4);

    // Ctrl-C: the ticker ends at once and ax exits 130, like a shell.
    let mut ax = Ax::start(&up, &["ticker"]);
    ax.wait_for("tick 3", Duration::from_secs(60));
    assert_eq!(up.running("ticker").len(), 1, "the ticker runs");
    let interrupted = Instant::now();
    ax.signal(libc::SIGINT);
    assert_eq!(ax.wait(Duration::from_secs(10)), Some(130), "ax after Ctrl-C");
    assert!(up.running("ticker").is_empty(), "the ticker still runs after Ctrl-C");
    let stopped = interrupted.elapsed();
    assert!(stopped <= Duration::from_secs(2), "the ticker took {stopped:?} to stop");

    // SIGKILL of ax: nobody says a word, and the ticker's board ends it once
    // its terminal is gone.
    let mut ax = Ax::start(&up, &["ticker"]);
    ax.wait_for("tick 2", Duration::from_secs(60));
    assert_eq!(up.running("ticker").len(), 1);
    ax.signal(libc::SIGKILL);
    let gone = up.until_gone("ticker", Duration::from_secs(10));
    assert!(gone.is_some(), "the ticker outlived its killed ax by 10 s");

    // A host that stops answering (ax stopped, its socket still there): the
    // ticker blocks on its output, `ps` says so, and its board ends it.
    let mut ax = Ax::start(&up, &["ticker"]);
    ax.wait_for("tick 2", Duration::from_secs(60));
    ax.signal(libc::SIGSTOP);
    std::thread::sleep(Duration::from_millis(1500));
    let ps = text(&up.command(&["ps"]));
    let row = ps.lines().find(|l| l.contains("ticker")).unwrap_or_else(|| panic!("no ticker in:\n{ps}"));
    assert!(row.contains("blocked"), "a ticker whose terminal does not take its output:\n{ps}");
    let gone = up.until_gone("ticker", Duration::from_secs(10));
    ax.signal(libc::SIGKILL);
    assert!(gone.is_some(), "the ticker outlived its silent terminal by 10 s");

    // Standard input, to its end: `echo hi | ax upper` prints HI.
    let mut upper = up.boot(&["ax", "upper"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    upper.stdin.take().unwrap().write_all(b"hi\nfrom the host\n").unwrap(); // then closed: end of input
    let output = upper.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0), "upper: {}", text(&output));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "HI\nFROM THE HOST\n");
    // No input at all is an end of input too.
    let empty = up.command(&["ax", "upper"]);
    assert_eq!(empty.status.code(), Some(0), "{}", text(&empty));
    assert_eq!(String::from_utf8_lossy(&empty.stdout), "");

    // `./pool ax hello`: hello's own lines and status, nothing else.
    let pool = qemu_pool::workspace_root().join("pool");
    let output = Command::new(&pool)
        .args(["ax", "--run-dir"])
        .arg(up.run_dir())
        .arg("hello")
        .current_dir(qemu_pool::workspace_root())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(7), "./pool ax hello: {}", text(&output));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "hello from the pool\n");
    assert_eq!(String::from_utf8_lossy(&output.stderr), "", "./pool ax hello said more");

    // `get` of a directory says what it is.
    let get = up.command(&["get", "/bin"]);
    assert!(!get.status.success() && text(&get).contains("/bin is a directory"), "{}", text(&get));
}

#[test]
fn detached_programs_never_wait_and_many_users_work_at_once() {
    let _one = ONE_POOL_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let up = Up::start(4);

    // A detached hog keeps working: its CPU time grows, its output is logged.
    let detached = up.command(&["ax", "--detach", "hog"]);
    assert!(detached.status.success(), "{}", text(&detached));
    let [(_, _, before)] = up.running("hog")[..] else { panic!("one hog: {:?}", up.running("hog")) };
    std::thread::sleep(Duration::from_secs(4));
    let [(board, pid, after)] = up.running("hog")[..] else { panic!("one hog: {:?}", up.running("hog")) };
    assert!(after >= before + 1_500_000, "the detached hog got {} µs of CPU in 4 s", after - before);
    let log = up.command(&["log", "hog"]);
    assert!(log.status.success(), "{}", text(&log));
    let progress =
        String::from_utf8_lossy(&log.stdout).lines().filter(|l| l.starts_with("hog 0 progress")).count();
    assert!(progress >= 10, "its log has {progress} lines:\n{}", text(&log));
    let by_pid = up.command(&["log", &format!("board{board}/{pid}")]);
    assert!(String::from_utf8_lossy(&by_pid.stdout).contains("hog 0 progress"), "{}", text(&by_pid));
    let ps = text(&up.command(&["ps"]));
    let row = ps.lines().find(|l| l.contains("hog")).unwrap_or_else(|| panic!("no hog in:\n{ps}"));
    assert!(row.contains("running"), "{ps}");

    // `top --once` shows every board with its load.
    let top = text(&up.command(&["top", "--once"]));
    for board in 0..4 {
        assert!(top.contains(&format!("board{board}  load")), "{top}");
    }
    assert!(top.contains("hog"), "{top}");

    // Several hogs: `kill` asks which, `kill --all` ends them all.
    for _ in 0..2 {
        let detached = up.command(&["ax", "--detach", "hog"]);
        assert!(detached.status.success(), "{}", text(&detached));
    }
    let which = up.command(&["kill", "hog"]);
    assert!(!which.status.success() && text(&which).contains("--all"), "{}", text(&which));
    let all = up.command(&["kill", "--all", "hog"]);
    assert!(all.status.success() && text(&all).contains("killed 3"), "{}", text(&all));
    assert!(up.running("hog").is_empty(), "hogs left: {:?}", up.running("hog"));

    // 64 users at once, each a host process of its own, each its own output.
    let clients: Vec<(usize, Child)> = (0..64)
        .map(|i| {
            let word = format!("client{i}");
            let child = up
                .boot(&["ax", "hello", &word])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            (i, child)
        })
        .collect();
    let mut failures = Vec::new();
    for (i, child) in clients {
        let output = child.wait_with_output().unwrap();
        let expected = format!("hello from the pool\nhello: client{i}\n");
        if output.status.code() != Some(7) || String::from_utf8_lossy(&output.stdout) != expected {
            failures.push(format!("client {i}: status {:?}: {}", output.status.code(), text(&output)));
        }
    }
    assert!(failures.is_empty(), "{} of 64 failed:\n{}", failures.len(), failures.join("\n"));
}

/// `hosts` as the user reads it: (board name, alive, load) per row.
fn hosts_rows(up: &Up) -> Vec<(String, bool, f64)> {
    let output = up.command(&["hosts"]);
    assert!(output.status.success(), "hosts: {}", text(&output));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut columns = line.split_whitespace();
            let name = columns.next()?.to_string();
            let alive = columns.next()? == "yes";
            let load = columns.next()?.parse().ok()?;
            Some((name, alive, load))
        })
        .collect()
}

/// A burst as a user makes it: 64 `ax --detach hog` typed one after the other
/// on a pool of 32 boards. The run server spreads them (every board gets one
/// to three), and once the boards have reported, `hosts` shows each board's
/// load near its number of hogs.
#[test]
fn sixty_four_detached_hogs_spread_over_thirty_two_boards_and_show_in_hosts() {
    let _one = ONE_POOL_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let begun = Instant::now();
    let up = Up::start(32);
    println!("32 boards and the system up in {:.1?}", begun.elapsed());
    // Every board counted alive before the burst (on a crowded host the run
    // server's polls of 32 boards may run late for a moment).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rows = hosts_rows(&up);
        if rows.iter().filter(|(_, alive, _)| *alive).count() == 32 {
            break;
        }
        assert!(Instant::now() < deadline, "not every board is alive: {rows:?}");
        std::thread::sleep(Duration::from_millis(500));
    }

    let burst = Instant::now();
    for _ in 0..64 {
        let detached = up.command(&["ax", "--detach", "hog"]);
        assert!(detached.status.success(), "{}", text(&detached));
    }
    println!("64 detached hogs started in {:.1?}", burst.elapsed());
    let mut per_board = std::collections::BTreeMap::<String, u32>::new();
    for (board, _, _) in up.running("hog") {
        *per_board.entry(format!("board{board}")).or_default() += 1;
    }
    assert_eq!(per_board.values().sum::<u32>(), 64, "{per_board:?}");
    assert_eq!(per_board.len(), 32, "64 hogs on {} of 32 boards: {per_board:?}", per_board.len());
    assert!(per_board.values().all(|n| (1..=3).contains(n)), "64 hogs on 32 boards: {per_board:?}");

    // Near: the median of several `hosts` samples taken over a few seconds
    // (one sample may catch a board in a burst of its servers' work) is no
    // more than half a thread above its hogs, and no less than 70 % of them.
    // A detached hog waits for the log server at each progress line (five a
    // second); with 32 busy boards on a small host, that wait is a good part
    // of its time. Boards that also serve count their servers' threads too,
    // and may be up to one and a half threads above their hogs: a directory
    // replica (boards 0–2, with Bullet on 0) answers `hosts` and the run
    // server's look-ups; the run server (board 31) and the boot service
    // (board 30) poll the boards (within budgets of polls and checks per
    // second), and a thread waiting while QEMU itself waits for the host's
    // cores counts as load. Three runs read those boards 0.4–0.95 above
    // their hogs; the half thread more is room for a busier host. (Whether
    // the run server counts a board alive flaps on such a host and is not
    // checked here.)
    let replicas: Vec<String> =
        pool_system::directory::replica_boards(32).iter().map(|board| format!("board{board}")).collect();
    let hogs_on = |name: &str| f64::from(per_board.get(name).copied().unwrap_or(0));
    let boot_board = format!("board{}", pool_system::boot_service_board(32));
    let serving = |name: &str| name == "board31" || name == boot_board || replicas.iter().any(|r| r == name);
    let above = |name: &str| if serving(name) { 1.5 } else { 0.5 };
    let least = |name: &str| (hogs_on(name) - 0.5).min(hogs_on(name) * 0.7);
    // First every board shows its hogs running (reports come every second or so).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rows = hosts_rows(&up);
        if rows.len() == 32 && rows.iter().all(|(name, _, load)| *load >= least(name)) {
            break;
        }
        assert!(Instant::now() < deadline, "hosts does not show the hogs {per_board:?} as load: {rows:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
    // Then nine samples over about five seconds; each board's median counts.
    let mut samples = std::collections::BTreeMap::<String, Vec<f64>>::new();
    for _ in 0..9 {
        for (name, _, load) in hosts_rows(&up) {
            samples.entry(name).or_default().push(load);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let medians: Vec<(String, f64)> = samples
        .iter()
        .map(|(name, loads)| {
            let mut sorted = loads.clone();
            sorted.sort_by(f64::total_cmp);
            (name.clone(), sorted[sorted.len() / 2])
        })
        .collect();
    println!("hogs per board {per_board:?}");
    println!("(board, median load) over nine samples: {medians:?}");
    println!("every sample: {samples:?}");
    assert_eq!(medians.len(), 32, "{samples:?}");
    let far: Vec<&(String, f64)> = medians
        .iter()
        .filter(|(name, load)| *load < least(name) || *load > hogs_on(name) + above(name))
        .collect();
    assert!(far.is_empty(), "medians far from the hogs {per_board:?}: {far:?}; samples {samples:?}");
    let all = up.command(&["kill", "--all", "hog"]);
    assert!(all.status.success() && text(&all).contains("killed 64"), "{}", text(&all));
}

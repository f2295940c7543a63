//! The commands people type, as they type them: `boot up` brings the whole
//! system up in a run directory, and `boot ax`, `ps`, `hosts`, `kill` work
//! on it from other processes, with the programs' output in their own
//! standard output and the programs' exit status as theirs.

use pool_tests::up::{Up, text};
use std::process::Output;

#[test]
fn ax_runs_a_program_where_the_run_server_puts_it_with_its_output_and_status_here() {
    let up = Up::start(4);
    assert!(up.output_lines().iter().any(|l| l.contains("Bullet server on board 0")), "{}", up.output());
    let hello = up.command(&["ax", "hello", "world", "again"]);
    assert_eq!(hello.status.code(), Some(7), "{}", text(&hello));
    let out = String::from_utf8_lossy(&hello.stdout);
    assert!(out.contains("hello from the pool") && out.contains("hello: world again"), "{out}");

    let on_two = up.command(&["ax", "--on", "2", "show-env", "x"]);
    assert_eq!(on_two.status.code(), Some(42), "{}", text(&on_two));
    assert!(String::from_utf8_lossy(&on_two.stdout).contains("show-env: argv x"));

    let missing = up.command(&["ax", "no-such-program"]);
    assert!(!missing.status.success());
    assert!(text(&missing).contains("no such program"), "{}", text(&missing));

    // ps shows the servers; hosts shows every processor alive.
    let ps = text(&up.command(&["ps"]));
    assert!(ps.contains("bullet-server") && ps.contains("run-server"), "{ps}");
    let hosts = text(&up.command(&["hosts"]));
    assert_eq!(hosts.lines().filter(|l| l.starts_with("board") && l.contains(" yes ")).count(), 4, "{hosts}");

    // A detached program shows in ps and ends by name.
    let detached = up.command(&["ax", "--detach", "ticker"]);
    assert!(detached.status.success(), "{}", text(&detached));
    assert!(text(&up.command(&["ps"])).contains("ticker"));
    let kill = up.command(&["kill", "ticker"]);
    assert!(kill.status.success(), "{}", text(&kill));
    assert!(!text(&up.command(&["ps"])).contains("ticker"), "the ticker still runs");
    let again = up.command(&["kill", "ticker"]);
    assert!(text(&again).contains("no process runs ticker"), "{}", text(&again));
}

#[test]
fn files_and_directories_by_path_survive_a_second_up_on_the_same_disk() {
    let up = Up::start(3);
    let ls_bin = text(&up.command(&["ls", "/bin"]));
    for program in qemu_pool::default_programs().iter().map(|(name, _)| name) {
        assert!(
            ls_bin.lines().any(|l| l.split_whitespace().next() == Some(program)),
            "{program} not in:\n{ls_bin}"
        );
    }
    let local = up.run_dir().join("notes.txt");
    std::fs::write(&local, b"notes kept across runs\n").unwrap();
    let ok = |output: Output| {
        assert!(output.status.success(), "{}", text(&output));
        text(&output)
    };
    ok(up.command(&["mkdir", "/home"]));
    ok(up.command(&["put", local.to_str().unwrap(), "/home/notes"]));
    assert_eq!(ok(up.command(&["get", "/home/notes"])), "notes kept across runs\n");
    assert!(ok(up.command(&["info", "/home/notes"])).contains("23 bytes"));
    ok(up.command(&["chmod", "/home/notes", "ff:02:00"]));
    assert!(ok(up.command(&["ls", "/home"])).contains("notes                    ff:02:00"));
    let not_empty = up.command(&["rm", "/home"]);
    assert!(text(&not_empty).contains("directory not empty"), "{}", text(&not_empty));
    let missing = up.command(&["get", "/home/nothing"]);
    assert!(!missing.status.success() && text(&missing).contains("no such path: /home/nothing"));

    // Refused by rights: through a mask without the modify right, /home is read-only.
    ok(up.command(&["chmod", "/home", "06:06:06"]));
    let refused = up.command(&["put", local.to_str().unwrap(), "/home/other"]);
    assert!(text(&refused).contains("not allowed by this capability"), "{}", text(&refused));
    let refused = up.command(&["mkdir", "/home/sub"]);
    assert!(text(&refused).contains("not allowed by this capability"), "{}", text(&refused));
    assert_eq!(ok(up.command(&["get", "/home/notes"])), "notes kept across runs\n", "reads still work");
    ok(up.command(&["chmod", "/home", "ff:06:06"]));
    ok(up.command(&["put", local.to_str().unwrap(), "/home/scratch"]));
    ok(up.command(&["rm", "/home/scratch"]));
    assert!(!ok(up.command(&["ls", "/home"])).contains("scratch"));

    // The whole pool stops; a second `up` on the same disk has the same tree.
    let run_dir = up.stop();
    let again = Up::with_args(&["3"]).in_run_dir(run_dir).start();
    let get = again.command(&["get", "/home/notes"]);
    assert_eq!(text(&get), "notes kept across runs\n");
    let hello = again.command(&["ax", "hello", "again"]);
    assert_eq!(hello.status.code(), Some(7), "{}", text(&hello));
}

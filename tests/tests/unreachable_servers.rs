//! Errors say what failed: when a server cannot be reached, the workstation's
//! commands name it (the file server, the directory service, or the processor)
//! instead of lumping them together or blaming the processor for a file server
//! that is gone. The servers are started one by one here (no boot service), so
//! nothing brings back what the test stops.

use amoeba_abi::Capability;
use boot::exec::Control;
use boot::system::directory::{DirectoryService, replica_boards};
use boot::system::{self, ANCHOR_BLOCKS};
use boot::workstation::{self, AxOptions, Workstation};
use pool_tests::{TestPool, boot_with, config};
use std::time::Instant;

/// Boards: the disk, the Bullet server and a replica on 0, replicas on 1 and 2,
/// the run server on 1, board 3 a processor to lose.
const BOARDS: u16 = 4;
/// Size of board 0's disk.
const DISK_MIB: u64 = 64;
/// The run server's board.
const RUN_BOARD: usize = 1;
/// The processor that dies.
const LOST_BOARD: u16 = 3;

fn hello() -> Vec<String> {
    vec![String::from("hello"), String::from("there")]
}

/// What a failed command said.
fn said<T: std::fmt::Debug, E: std::fmt::Display>(result: Result<T, E>) -> String {
    match result {
        Ok(value) => panic!("the command worked: {value:?}"),
        Err(error) => format!("{error:#}"),
    }
}

#[test]
fn errors_name_the_file_server_the_directory_or_the_processor_that_is_gone() {
    let disk = tempfile::tempdir().unwrap();
    let (config, dir) = config(BOARDS);
    let mut pool: TestPool =
        boot_with(config.with_disk(disk.path().join("disk.img"), DISK_MIB << 20, true).unwrap(), dir);
    let (bullet_process, bullet) =
        system::start_bullet_in(&pool, 0, ANCHOR_BLOCKS, 0, &[]).unwrap_or_else(|e| panic!("{e:#}"));
    let service = DirectoryService::start(&pool, bullet, &replica_boards(BOARDS as usize))
        .unwrap_or_else(|e| panic!("{e:#}"));
    system::install_programs(&pool, &bullet, &service.root).unwrap_or_else(|e| panic!("{e:#}"));
    let run = system::start_run_server(&pool, RUN_BOARD).unwrap_or_else(|e| panic!("{e:#}"));
    system::wait_for_processors(&pool, &run, BOARDS as usize).unwrap_or_else(|e| panic!("{e:#}"));
    let capabilities: Vec<(String, Capability)> = (0..BOARDS as usize)
        .map(|b| (format!("board{b}"), pool.host_capability(b)))
        .chain([("bullet".into(), bullet), ("root".into(), service.root), ("run".into(), run)])
        .collect();
    workstation::save_capabilities(pool.run_dir(), &capabilities).unwrap();
    let mut ws = Workstation::connect(pool.run_dir()).unwrap();
    ws.put(b"kept", "/notes").unwrap();
    assert_eq!(ws.ax(&hello(), &AxOptions::default()).unwrap(), Some(7));

    // A processor that is gone.
    pool.kill_board(LOST_BOARD).unwrap();
    let on_lost = AxOptions { on: Some(LOST_BOARD), detach: false };
    let started = Instant::now();
    let text = said(ws.ax(&hello(), &on_lost));
    println!("ax --on {LOST_BOARD} hello, board {LOST_BOARD} gone ({:.1?}): {text}", started.elapsed());
    assert!(text.contains("the processor chosen for hello stopped answering"), "{text}");

    // The file server gone: files and programs say so; names still work.
    pool.control(&bullet_process.capability, Control::Destroy).unwrap();
    let started = Instant::now();
    let text = said(ws.get("/notes"));
    println!("get, the file server gone ({:.1?}): {text}", started.elapsed());
    assert!(text.contains("/notes: the file server is not reachable"), "{text}");
    let text = said(ws.put(b"more", "/more"));
    assert!(text.contains("/more: the file server is not reachable"), "{text}");
    let text = said(ws.ax(&hello(), &AxOptions::default()));
    println!("ax hello, the file server gone: {text}");
    assert!(text.contains("the file server holding hello's file is not reachable"), "{text}");
    assert!(ws.ls("/").unwrap().contains("notes"), "the names are all there");

    // The directory service gone too.
    for replica in &service.replicas {
        pool.control(&replica.process.capability, Control::Destroy).unwrap();
    }
    let text = said(ws.ls("/"));
    println!("ls, the directory gone: {text}");
    assert!(text.contains("the directory service is not reachable"), "{text}");
    let text = said(ws.get("/notes"));
    assert!(text.contains("/notes: the directory service is not reachable"), "{text}");
}

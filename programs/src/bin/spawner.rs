//! `spawner`: a program that starts another program on another board, the
//! way any client does, through that board's process server. Its capability
//! environment holds `TARGET` (the other board's host capability) and
//! `PROGRAM` (a readable file with the program: a boot program of some board);
//! its arguments are `spawner MODE ARGS...`, MODE `bytes` (read the file here
//! and fill the segments remotely) or `file` (the target board reads the file
//! itself). The child gets ARGS as its argv, `FROM=spawner` in its
//! environment, and this process's STDOUT; spawner prints
//! `spawner: child exited with N` and exits 0 if that worked.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use amoeba_abi::{Capability, Status};
use amoeba_client::exec::{Exec, Program, ProgramImage};
use amoeba_ipc::interfaces::{bullet, process_server};
use amoeba_rt::env;
use amoeba_rt::println;
use amoeba_rt::rpc::Nucleus;

amoeba_rt::entry!(args main);

/// Reads a whole file (a boot program, a Bullet file) into memory.
fn read_file(file: &Capability) -> Result<Vec<u8>, Status> {
    let mut files = bullet::Client::new(Nucleus);
    let mut bytes = Vec::new();
    loop {
        let piece = files.read(file, bytes.len() as u64, 1 << 20)?;
        if piece.is_empty() {
            return Ok(bytes);
        }
        bytes.extend_from_slice(&piece);
    }
}

fn run(argv: &[String]) -> Result<i32, String> {
    let (Some(target), Some(file)) = (env::capability("TARGET"), env::capability("PROGRAM")) else {
        return Err(String::from("needs TARGET and PROGRAM capabilities"));
    };
    let mode = argv.get(1).map(String::as_str).unwrap_or("bytes");
    let child_argv: Vec<&str> = argv.iter().skip(2).map(String::as_str).collect();
    let name = child_argv.first().copied().unwrap_or("child");
    let mut exec = Exec::new(name, &child_argv);
    exec.startup.environment.push(String::from("FROM=spawner"));
    if let Some(stdout) = env::capability("STDOUT") {
        exec = exec.with_capability("STDOUT", stdout);
    }
    let bytes;
    let program = match mode {
        "file" => Program::File(file),
        _ => {
            bytes = read_file(&file).map_err(|s| alloc::format!("reading the program: {s}"))?;
            ProgramImage::parse(&bytes).map_err(|s| alloc::format!("not a program: {s}"))?;
            Program::Bytes(&bytes)
        }
    };
    let child = amoeba_client::exec::exec(&mut Nucleus, &target, program, &exec)
        .map_err(|e| alloc::format!("{e}"))?;
    process_server::Client::new(Nucleus).wait(&child).map_err(|s| alloc::format!("waiting: {s}"))
}

fn main(argv: &[String]) -> i32 {
    match run(argv) {
        Ok(status) => {
            println!("spawner: child exited with {status}");
            0
        }
        Err(why) => {
            println!("spawner: {why}");
            1
        }
    }
}

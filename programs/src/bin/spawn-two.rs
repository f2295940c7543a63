//! `spawn-two`: a program that starts two children on the processors the run
//! server picks (the shell-less spawn of a board): its capability environment
//! holds `RUN` (the run server) and `PROGRAM` (the child's program file); the
//! children get `show-env one` and `show-env two` as argv. Prints
//! `spawn-two: child N on HOST exited with S` for each, reports each to its
//! starter (`child N host`, `child N status`), and exits 0 if both statuses
//! came back.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use amoeba_client::exec::{Exec, exec_placed};
use amoeba_ipc::interfaces::process_server;
use amoeba_ipc::interfaces::starter::Value;
use amoeba_rt::env;
use amoeba_rt::rpc::Nucleus;
use amoeba_rt::{println, starter};

amoeba_rt::entry!(main);

fn main(_: u64) -> i32 {
    let (Some(run), Some(program)) = (env::capability("RUN"), env::capability("PROGRAM")) else {
        println!("spawn-two: needs RUN and PROGRAM capabilities");
        return 1;
    };
    let mut children = alloc::vec::Vec::new();
    for word in ["one", "two"] {
        match exec_placed(&mut Nucleus, &run, &program, &Exec::new("show-env", &["show-env", word])) {
            Ok((host, child)) => children.push((word, host, child)),
            Err(error) => {
                println!("spawn-two: child {word}: {error}");
                return 1;
            }
        }
    }
    for (word, host, child) in children {
        match process_server::Client::new(Nucleus).wait(&child) {
            Ok(status) => {
                println!("spawn-two: child {word} on {host} exited with {status}");
                let _ = starter::report(&alloc::format!("child {word} host"), Value::Text(host));
                let _ = starter::report(&alloc::format!("child {word} status"), Value::Signed(status.into()));
            }
            Err(status) => {
                println!("spawn-two: waiting for child {word}: {status}");
                return 1;
            }
        }
    }
    0
}

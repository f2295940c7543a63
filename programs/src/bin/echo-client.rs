//! `echo-client`: calls the echo service at the put-port given as the
//! argument ten times, checks every reply, prints
//! `echo-client: <n> of 10 answered`, reports n to its starter (`answered`)
//! and exits 0 only if all were.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

use amoeba_abi::{Capability, Port};
use amoeba_ipc::interfaces::echo;
use amoeba_ipc::interfaces::starter::Value;
use amoeba_rt::rpc::Nucleus;
use amoeba_rt::{println, starter};

amoeba_rt::entry!(main);

fn main(argument: u64) -> i32 {
    let service = Capability::for_port(Port::from_u64(argument));
    let mut answered = 0;
    for round in 0..10u8 {
        let message = [b'e', b'c', b'h', b'o', b' ', b'0' + round];
        match echo::Client::new(Nucleus).echo(&service, &message) {
            Ok((_, reply)) if reply == message => answered += 1,
            Ok((_, reply)) => println!("echo-client: wrong reply {reply:?}"),
            Err(status) => println!("echo-client: trans failed: {status}"),
        }
    }
    println!("echo-client: {answered} of 10 answered");
    let _ = starter::report("answered", Value::Unsigned(answered));
    if answered == 10 { 0 } else { 1 }
}

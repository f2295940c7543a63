//! `impostor`: knows only a service's put-port P (the argument) and tries to
//! serve it by passing P to get_request as if it were the get-port. The
//! nucleus registers F(P) instead, so no request for P may ever arrive. It
//! announces to its starter that it waits, and reports `got a request` (yes)
//! if one came.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

use amoeba_abi::{Capability, GetPort, Header, Port, Status};
use amoeba_ipc::interfaces::starter::{Announcement, Value};
use amoeba_rt::println;
use amoeba_rt::starter;
use amoeba_rt::sys::{get_request, put_reply};

amoeba_rt::entry!(main);

fn main(argument: u64) -> i32 {
    let pretend = GetPort(Port::from_u64(argument));
    println!("impostor: waiting for requests to {}", Port::from_u64(argument));
    let _ = starter::announce(&Announcement::Serving(Capability::for_port(Port::from_u64(argument))));
    let mut buf = [0u8; 256];
    match get_request(&pretend, &mut buf) {
        Ok(_) => {
            println!("impostor: got a request");
            let _ = starter::report("got a request", Value::Flag(true));
            let _ = put_reply(&Header::reply(Status::Ok), b"impostor");
            1
        }
        Err(status) => {
            println!("impostor: get_request failed: {status}");
            2
        }
    }
}

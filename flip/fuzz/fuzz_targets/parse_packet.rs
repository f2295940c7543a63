#![no_main]
//! Fuzz the FLIP frame/packet parser and the endpoint's handling of whatever parses.

use amoeba_abi::{GetPort, Port};
use flip::wire::{Frame, Packet};
use flip::{Config, Endpoint, Mac};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Parser: never panics; whatever parses re-encodes to the same bytes.
    if let Ok(p) = Packet::parse(data) {
        assert_eq!(p.encode(), data);
    }
    if let Ok(f) = Frame::parse(data) {
        assert_eq!(f.encode(), data);
    }
    // Endpoint: a frame sequence split on a marker, fed to a server and a client.
    let mut server = Endpoint::new(Mac([2, 0, 0, 0, 0, 2]), 1, Config::default());
    server.register_server(&GetPort(Port([1; 6])));
    let mut client = Endpoint::new(Mac([2, 0, 0, 0, 0, 1]), 1, Config::default());
    let mut now = 0u64;
    for chunk in data.split(|&b| b == 0xA5) {
        now += 50_000;
        server.handle_frame(now, chunk);
        client.handle_frame(now, chunk);
        server.handle_timeout(now);
        client.handle_timeout(now);
        while server.poll_transmit().is_some() {}
        while client.poll_transmit().is_some() {}
        while let Some(ev) = server.poll_event() {
            if let flip::Event::RequestArrived { req, .. } = ev {
                let _ = server.put_reply(now, req, &amoeba_abi::Header::default(), &[1, 2, 3]);
            }
        }
        while client.poll_event().is_some() {}
    }
});

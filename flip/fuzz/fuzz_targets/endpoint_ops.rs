#![no_main]
//! Structure-aware fuzzing of the endpoint: forged but well-formed packets mixed with
//! real traffic between a client and a server. Oracle: no panic (cargo fuzz builds
//! with debug assertions, so arithmetic overflow in the accounting counts too).

use amoeba_abi::{GetPort, Header, Port, Status};
use arbitrary::{Result, Unstructured};
use flip::wire::{FlipHeader, Frame, Packet, PacketType, encode_ranges};
use flip::{Addr, Config, Endpoint, Event, Mac};
use libfuzzer_sys::fuzz_target;

const CLIENT: Mac = Mac([2, 0, 0, 0, 0, 1]);
const SERVER: Mac = Mac([2, 0, 0, 0, 0, 2]);

fn forged(u: &mut Unstructured<'_>, port: Port, server_inc: u32) -> Result<Vec<u8>> {
    let ptype = *u.choose(&[
        PacketType::Locate,
        PacketType::HereIs,
        PacketType::Unidata,
        PacketType::NotHere,
        PacketType::Ack,
        PacketType::Enquiry,
    ])?;
    let mut flags = u.arbitrary::<u8>()? & ptype.allowed_flags();
    if ptype == PacketType::Unidata && flags & flip::wire::F_REPLY == 0 {
        flags &= !flip::wire::F_ABORT;
    }
    let dst = *u.choose(&[Addr::port(port), Addr::node(SERVER), Addr::node(CLIENT)])?;
    let src = *u.choose(&[Addr::node(CLIENT), Addr::node(SERVER), Addr::port(port)])?;
    let dst_inc = if u.arbitrary()? { server_inc } else { u.int_in_range(0..=3)? };
    let src_inc = u.int_in_range(1..=3)?;
    let msg_id = u.int_in_range(0..=6)?;
    let (payload, total_len, frag_off) = match ptype {
        PacketType::Unidata => {
            let len = u.int_in_range(1..=200usize)?;
            let mut p = vec![0u8; len];
            u.fill_buffer(&mut p)?;
            let off: u32 = u.int_in_range(0..=300)?;
            let extra: u32 = u.int_in_range(0..=300)?;
            (p, off + len as u32 + extra, off)
        }
        PacketType::Ack | PacketType::Enquiry => {
            let n = u.int_in_range(0..=4usize)?;
            let mut r = Vec::new();
            for _ in 0..n {
                r.push((u.int_in_range(0..=1000u32)?, u.int_in_range(1..=1000u32)?));
            }
            let p = encode_ranges(&r);
            let n = p.len() as u32;
            (p, n, 0)
        }
        // A LOCATE's nonce, a HERE_IS's (forged) proof.
        PacketType::Locate | PacketType::HereIs => {
            let len = if ptype == PacketType::Locate {
                flip::wire::LOCATE_NONCE_LEN
            } else {
                flip::wire::HERE_IS_PROOF_LEN
            };
            let mut p = vec![0u8; len];
            u.fill_buffer(&mut p)?;
            (p, len as u32, 0)
        }
        _ => (Vec::new(), 0, 0),
    };
    let header = FlipHeader {
        ptype,
        flags,
        hops: 1,
        dst,
        src,
        dst_inc,
        src_inc,
        msg_id,
        total_len,
        frag_off,
    };
    let (to, from) = if u.arbitrary()? { (SERVER, CLIENT) } else { (CLIENT, SERVER) };
    Ok(Frame {
        dst: to,
        src: from,
        packet: Packet {
            header,
            payload: &payload,
        },
    }
    .encode())
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let cfg = Config {
        max_buf: 4096,
        max_reassembly_bytes: 16384,
        ..Config::default()
    };
    let get = GetPort(Port([7; 6]));
    let mut server = Endpoint::new(SERVER, 2, cfg.clone());
    let port = server.register_server(&get);
    let mut client = Endpoint::new(CLIENT, 1, cfg);
    let mut now = 0u64;
    let mut reqs = Vec::new();
    for _ in 0..u.int_in_range(0..=64)? {
        match u.int_in_range(0..=7)? {
            0 => {
                let f = forged(u, port, server.incarnation())?;
                server.handle_frame(now, &f);
                client.handle_frame(now, &f);
            }
            1 => now += u.int_in_range(0..=300_000)?,
            2 => {
                let len = u.int_in_range(0..=3000usize)?;
                let h = Header { port, ..Header::default() };
                client.start_trans(now, &h, &vec![1; len]);
            }
            3 => {
                // Deliver some of the client's frames (maybe twice).
                while let Some(t) = client.poll_transmit() {
                    match u.int_in_range(0..=3)? {
                        0 => {}
                        1 => {
                            server.handle_frame(now, &t.frame);
                            server.handle_frame(now, &t.frame);
                        }
                        _ => server.handle_frame(now, &t.frame),
                    }
                }
            }
            4 => {
                while let Some(t) = server.poll_transmit() {
                    if u.ratio(3, 4)? {
                        client.handle_frame(now, &t.frame);
                    }
                }
            }
            5 => {
                if let Some(r) = reqs.pop() {
                    let size = u.int_in_range(0..=5000usize)?;
                    let _ = if u.ratio(1, 8)? {
                        server.abort_request(now, r, Status::RpcAborted)
                    } else {
                        server.put_reply(now, r, &Header::default(), &vec![2; size])
                    };
                }
            }
            6 => {
                if u.arbitrary()? {
                    server.unregister_server(&get);
                } else {
                    server.register_server(&get);
                }
            }
            _ => {
                server.handle_timeout(now);
                client.handle_timeout(now);
            }
        }
        while let Some(ev) = server.poll_event() {
            if let Event::RequestArrived { req, .. } = ev {
                reqs.push(req);
            }
        }
        while client.poll_event().is_some() {}
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let _ = run(&mut u);
});

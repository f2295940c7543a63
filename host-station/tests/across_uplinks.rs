//! Two parts of one pool, each with its own switch, joined by VXLAN over the
//! loopback: stations reach each other across the uplinks, a partition cuts
//! them, and datagrams from strangers or other segments are dropped.

use host_station::echo::EchoResponder;
use host_station::host_port::HostPort;
use pool_control::Mac;
use std::time::{Duration, Instant};
use vswitch::faults::FaultConfig;
use vswitch::{Switch, UplinkStats, VxlanConfig, uplink, vxlan};

const WAIT: Duration = Duration::from_secs(2);

/// Two switches, parts of one pool, joined by VXLAN over the loopback
/// (127.0.0.1 and 127.0.0.2 on a port the kernel had free).
fn two_parts() -> (Switch, Switch) {
    let port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let setting = |local: &str, remote: &str| -> VxlanConfig {
        format!("local={local},remote={remote},vni=42,port={port}").parse().unwrap()
    };
    let a = Switch::for_part(FaultConfig::default(), 1, 0);
    let b = Switch::for_part(FaultConfig::default(), 1, 4);
    for (switch, config) in [(&a, setting("127.0.0.1", "127.0.0.2")), (&b, setting("127.0.0.2", "127.0.0.1"))]
    {
        let socket = uplink::bind(&config).unwrap();
        switch.attach_vxlan("vx0", config, socket).unwrap();
    }
    (a, b)
}

#[test]
fn stations_of_two_parts_reach_each_other_across_the_uplinks() {
    let (a, b) = two_parts();
    let here = HostPort::from_stream(a.connect_host().unwrap()).unwrap();
    let there = HostPort::from_stream(b.connect_host().unwrap()).unwrap();
    assert_ne!(here.mac(), there.mac(), "host stations of two parts never share a MAC");
    let responder = EchoResponder::start(there);
    let rtt = here.echo(responder.mac(), 3, b"across", WAIT).unwrap();
    assert!(rtt.is_some(), "the echo across the uplinks was not answered");
    // A sender counts a datagram after the kernel took it: the answer may be faster.
    let deadline = Instant::now() + WAIT;
    loop {
        let (up_a, up_b) = (a.handle().uplink_stats().unwrap(), b.handle().uplink_stats().unwrap());
        let counted = |up: &UplinkStats| up.datagrams_out >= 1 && up.datagrams_in >= 1;
        if counted(&up_a) && counted(&up_b) {
            assert_eq!(up_b.learned, 1, "part B knows where part A's station is: {up_b}");
            break;
        }
        assert!(Instant::now() < deadline, "{up_a}\n{up_b}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_partition_of_the_uplink_cuts_the_parts_until_healed() {
    let (a, b) = two_parts();
    let here = HostPort::from_stream(a.connect_host().unwrap()).unwrap();
    let responder = EchoResponder::start(HostPort::from_stream(b.connect_host().unwrap()).unwrap());
    a.handle().apply_faults("partition=h0,h1/vx0").unwrap();
    assert!(here.echo(responder.mac(), 4, b"cut", Duration::from_millis(300)).unwrap().is_none());
    assert!(a.handle().stats().dropped_partition >= 1);
    a.handle().apply_faults("heal").unwrap();
    assert!(here.echo(responder.mac(), 5, b"mended", WAIT).unwrap().is_some());
}

#[test]
fn datagrams_from_strangers_and_other_segments_are_counted_and_dropped() {
    let (a, _b) = two_parts();
    let config = a.handle().uplink_stats().unwrap().config.unwrap();
    let mut frame = Vec::new();
    frame.extend_from_slice(&[0xff; 6]);
    frame.extend_from_slice(&Mac::for_board(9).0);
    frame.extend_from_slice(&[0x88, 0xb5, 0, 0]);
    let mut wrong_vni = Vec::new();
    vxlan::encapsulate(43, &frame, &mut wrong_vni).unwrap();
    let mut right = Vec::new();
    vxlan::encapsulate(42, &frame, &mut right).unwrap();
    // 127.0.0.3 is no configured remote; 127.0.0.2 is, but not for VNI 43.
    let stranger = std::net::UdpSocket::bind("127.0.0.3:0").unwrap();
    stranger.send_to(&right, config.local_endpoint()).unwrap();
    let remote = std::net::UdpSocket::bind("127.0.0.2:0").unwrap();
    remote.send_to(&wrong_vni, config.local_endpoint()).unwrap();
    remote.send_to(&right[..10], config.local_endpoint()).unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let stats = a.handle().uplink_stats().unwrap();
        let counted = (stats.refused_unknown_remote, stats.refused_wrong_vni, stats.refused_malformed);
        if counted == (1, 1, 1) {
            assert_eq!(stats.datagrams_in, 0);
            break;
        }
        assert!(Instant::now() < deadline, "{stats}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

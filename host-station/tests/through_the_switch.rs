//! Host stations talking through a real switch (its threads, its queues, its
//! delayed frames).

use host_station::echo::EchoResponder;
use host_station::host_port::HostPort;
use std::time::Duration;
use vswitch::Switch;
use vswitch::faults::FaultConfig;

const WAIT: Duration = Duration::from_secs(2);

#[test]
fn host_ports_reach_each_other_through_the_threads() {
    let switch = Switch::new(FaultConfig::default(), 1);
    let a = HostPort::from_stream(switch.connect_host().unwrap()).unwrap();
    let b = HostPort::from_stream(switch.connect_host().unwrap()).unwrap();
    let responder = EchoResponder::start(b);
    let rtt = a.echo(responder.mac(), 1, b"hi", WAIT).unwrap();
    assert!(rtt.is_some(), "the echo through the switch was not answered");
    assert!(switch.handle().stats().copies_delivered >= 2);
}

#[test]
fn delayed_frames_arrive_late_but_arrive() {
    let switch = Switch::new(FaultConfig::default(), 1);
    switch.handle().apply_faults("delay=150ms").unwrap();
    let a = HostPort::from_stream(switch.connect_host().unwrap()).unwrap();
    let b = HostPort::from_stream(switch.connect_host().unwrap()).unwrap();
    let responder = EchoResponder::start(b);
    let rtt = a.echo(responder.mac(), 2, b"slow", WAIT).unwrap().expect("answered");
    assert!(rtt >= Duration::from_millis(300), "two delayed hops took only {rtt:?}");
}

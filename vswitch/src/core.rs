//! The switch's forwarding decisions, without any I/O. The switch is the
//! pool's F-box (Amoeba's name for the interface that lets no station take
//! another's traffic): every port has one MAC, fixed when it attaches (a
//! board's is the one its QEMU was given; a host station gets one from the
//! switch), and the switch
//! - drops every frame whose source is not its port's MAC (counted as
//!   spoofed),
//! - forwards unicast only to the port that owns the destination, and drops
//!   unicast to a MAC no port owns (never flooded: the switch knows every
//!   MAC, so no station sees unicast meant for another),
//! - floods broadcast and multicast to every other port,
//!
//! and applies the configured faults to every copy.

use super::faults::FaultConfig;
use pool_control::Mac;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::time::Duration;

pub type PortId = usize;

/// One copy of a frame to put out on a port, after `delay`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub port: PortId,
    pub frame: Vec<u8>,
    pub delay: Duration,
}

/// Counters since the switch started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SwitchStats {
    pub frames_in: u64,
    pub copies_delivered: u64,
    pub dropped_loss: u64,
    pub dropped_partition: u64,
    pub dropped_malformed: u64,
    pub dropped_queue_full: u64,
    /// Frames whose source MAC was not their port's.
    pub dropped_spoofed: u64,
    /// Unicast frames to a MAC no port has.
    pub dropped_unknown_destination: u64,
    pub duplicated: u64,
    pub reordered: u64,
}

impl std::fmt::Display for SwitchStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} frames in, {} copies delivered; dropped: {} spoofed source, {} unknown destination, \
             {} loss, {} partition, {} malformed, {} queue full; {} duplicated, {} reordered",
            self.frames_in,
            self.copies_delivered,
            self.dropped_spoofed,
            self.dropped_unknown_destination,
            self.dropped_loss,
            self.dropped_partition,
            self.dropped_malformed,
            self.dropped_queue_full,
            self.duplicated,
            self.reordered
        )
    }
}

/// How long a reordered frame is held back, at most.
const REORDER_HOLD: Duration = Duration::from_millis(10);

/// What the switch knows of a port.
#[derive(Clone, Debug)]
struct PortInfo {
    /// `b<id>` for board `id`, `h<k>` for the k-th host station.
    name: String,
    /// The only source it may send from, and where unicast to it goes.
    mac: Mac,
}

/// A host station's attachment: its port, its MAC and a number no other
/// attachment of this switch has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostAttachment {
    pub port: PortId,
    pub mac: Mac,
    pub attachment: u64,
}

pub struct SwitchCore {
    ports: HashMap<PortId, PortInfo>,
    /// Who owns each MAC.
    owners: HashMap<Mac, PortId>,
    next_port: PortId,
    /// The next host station's index (its name and MAC follow from it).
    next_host: u64,
    /// The last attachment number given out (they only grow).
    last_attachment: u64,
    faults: FaultConfig,
    rng: SmallRng,
    pub stats: SwitchStats,
}

impl SwitchCore {
    /// A switch with no ports; host attachments are numbered from above
    /// `first_attachment` (the wall clock in µs, so that they grow across
    /// runs too: a station that reattaches with a MAC used before is newer).
    pub fn new(faults: FaultConfig, seed: u64, first_attachment: u64) -> Self {
        Self {
            ports: HashMap::new(),
            owners: HashMap::new(),
            next_port: 0,
            next_host: 0,
            last_attachment: first_attachment,
            faults,
            rng: SmallRng::seed_from_u64(seed),
            stats: SwitchStats::default(),
        }
    }

    fn add_port(&mut self, name: String, mac: Mac) -> PortId {
        let id = self.next_port;
        self.next_port += 1;
        self.ports.insert(id, PortInfo { name, mac });
        // A board whose QEMU started again takes its MAC over from the
        // connection of the old one, which may not have closed yet.
        if let Some(old) = self.owners.insert(mac, id) {
            self.ports.remove(&old);
        }
        id
    }

    /// A board's port, with the MAC its QEMU was given.
    pub fn add_board_port(&mut self, name: &str, mac: Mac) -> PortId {
        self.add_port(name.to_string(), mac)
    }

    /// A host station's port, with a MAC no port has and a new attachment
    /// number.
    pub fn add_host_port(&mut self) -> HostAttachment {
        let (name, mac) = loop {
            let index = self.next_host;
            self.next_host += 1;
            let mac = Mac::for_host(index as u16);
            if !self.owners.contains_key(&mac) {
                break (format!("h{index}"), mac);
            }
        };
        self.last_attachment += 1;
        let port = self.add_port(name, mac);
        HostAttachment { port, mac, attachment: self.last_attachment }
    }

    pub fn remove_port(&mut self, port: PortId) {
        if let Some(info) = self.ports.remove(&port)
            && self.owners.get(&info.mac) == Some(&port)
        {
            self.owners.remove(&info.mac);
        }
    }

    pub fn port_name(&self, port: PortId) -> Option<&str> {
        self.ports.get(&port).map(|info| info.name.as_str())
    }

    pub fn faults(&self) -> &FaultConfig {
        &self.faults
    }

    pub fn set_faults(&mut self, faults: FaultConfig) {
        self.faults = faults;
    }

    /// Decides where the frame that arrived on `from` goes.
    pub fn handle(&mut self, from: PortId, frame: &[u8]) -> Vec<Delivery> {
        self.stats.frames_in += 1;
        let Ok(parsed) = pool_control::Frame::parse(frame) else {
            self.stats.dropped_malformed += 1;
            return Vec::new();
        };
        let Some(sender) = self.ports.get(&from) else {
            return Vec::new();
        };
        if parsed.source != sender.mac {
            self.stats.dropped_spoofed += 1;
            return Vec::new();
        }
        let from_name = sender.name.clone();
        let targets: Vec<PortId> = if parsed.destination.is_multicast() {
            let mut all: Vec<PortId> = self.ports.keys().copied().filter(|&p| p != from).collect();
            all.sort_unstable();
            all
        } else {
            match self.owners.get(&parsed.destination) {
                Some(&port) if port != from => vec![port],
                Some(_) => Vec::new(),
                None => {
                    self.stats.dropped_unknown_destination += 1;
                    Vec::new()
                }
            }
        };
        let mut deliveries = Vec::new();
        for port in targets {
            let Some(to_name) = self.ports.get(&port).map(|info| info.name.clone()) else { continue };
            if let Some(partition) = &self.faults.partition
                && partition.separates(&from_name, &to_name)
            {
                self.stats.dropped_partition += 1;
                continue;
            }
            if self.chance(self.faults.loss_percent) {
                self.stats.dropped_loss += 1;
                continue;
            }
            let copies = if self.chance(self.faults.duplicate_percent) {
                self.stats.duplicated += 1;
                2
            } else {
                1
            };
            for _ in 0..copies {
                let delay = self.delay();
                deliveries.push(Delivery { port, frame: frame.to_vec(), delay });
                self.stats.copies_delivered += 1;
            }
        }
        deliveries
    }

    fn chance(&mut self, percent: f64) -> bool {
        percent > 0.0 && self.rng.random::<f64>() * 100.0 < percent
    }

    fn delay(&mut self) -> Duration {
        let mut delay = self.faults.delay;
        if !self.faults.jitter.is_zero() {
            delay += self.faults.jitter.mul_f64(self.rng.random::<f64>());
        }
        if self.chance(self.faults.reorder_percent) {
            self.stats.reordered += 1;
            delay += Duration::from_micros(1000) + REORDER_HOLD.mul_f64(self.rng.random::<f64>());
        }
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pool_control::{BROADCAST, Message, encode_frame};

    fn frame(destination: Mac, source: Mac) -> Vec<u8> {
        let mut buf = [0u8; 64];
        let len = encode_frame(&mut buf, destination, source, &Message::Discover).unwrap();
        buf[..len].to_vec()
    }

    fn ports(deliveries: &[Delivery]) -> Vec<PortId> {
        deliveries.iter().map(|d| d.port).collect()
    }

    /// Boards 0 and 1 and one host station (whose MAC the switch chose).
    fn three_port_switch(faults: FaultConfig) -> (SwitchCore, [PortId; 3], Mac) {
        let mut switch = SwitchCore::new(faults, 7, 1000);
        let a = switch.add_board_port("b0", Mac::for_board(0));
        let b = switch.add_board_port("b1", Mac::for_board(1));
        let host = switch.add_host_port();
        (switch, [a, b, host.port], host.mac)
    }

    #[test]
    fn unicast_goes_to_the_owner_of_the_destination_only() {
        let (mut switch, [a, b, h], host) = three_port_switch(FaultConfig::default());
        let (mac_a, mac_b) = (Mac::for_board(0), Mac::for_board(1));
        // Known from the start: no flooding, even before b has sent anything.
        assert_eq!(ports(&switch.handle(a, &frame(mac_b, mac_a))), vec![b]);
        assert_eq!(ports(&switch.handle(b, &frame(host, mac_b))), vec![h]);
        assert_eq!(ports(&switch.handle(h, &frame(mac_a, host))), vec![a]);
        // A MAC nobody has: dropped, not flooded.
        assert!(switch.handle(a, &frame(Mac::for_board(9), mac_a)).is_empty());
        assert_eq!(switch.stats.dropped_unknown_destination, 1);
    }

    #[test]
    fn a_station_sending_from_another_mac_is_dropped_and_learns_nothing() {
        let (mut switch, [a, b, h], host) = three_port_switch(FaultConfig::default());
        // The host port claims to be board 1, as a thief would.
        assert!(switch.handle(h, &frame(BROADCAST, Mac::for_board(1))).is_empty());
        assert!(switch.handle(h, &frame(Mac::for_board(0), Mac::for_board(1))).is_empty());
        assert_eq!(switch.stats.dropped_spoofed, 2);
        // Frames for board 1 still go to board 1 alone.
        assert_eq!(ports(&switch.handle(a, &frame(Mac::for_board(1), Mac::for_board(0)))), vec![b]);
        assert_eq!(ports(&switch.handle(h, &frame(Mac::for_board(1), host))), vec![b]);
    }

    #[test]
    fn host_stations_get_distinct_macs_and_growing_attachments() {
        let mut switch = SwitchCore::new(FaultConfig::default(), 7, 1000);
        let first = switch.add_host_port();
        let second = switch.add_host_port();
        assert_ne!(first.mac, second.mac);
        assert!(second.attachment > first.attachment && first.attachment > 1000);
        switch.remove_port(first.port);
        let third = switch.add_host_port();
        assert!(third.attachment > second.attachment);
        assert_eq!(switch.port_name(third.port), Some("h2"));
    }

    #[test]
    fn a_board_that_reconnects_takes_its_mac_over() {
        let (mut switch, [a, old, _], _) = three_port_switch(FaultConfig::default());
        let new = switch.add_board_port("b1", Mac::for_board(1));
        assert_eq!(ports(&switch.handle(a, &frame(Mac::for_board(1), Mac::for_board(0)))), vec![new]);
        // The old connection going away later changes nothing.
        switch.remove_port(old);
        assert_eq!(ports(&switch.handle(a, &frame(Mac::for_board(1), Mac::for_board(0)))), vec![new]);
    }

    #[test]
    fn broadcast_reaches_every_other_port() {
        let (mut switch, [a, b, h], host) = three_port_switch(FaultConfig::default());
        assert_eq!(ports(&switch.handle(h, &frame(BROADCAST, host))), vec![a, b]);
        assert_eq!(switch.stats.copies_delivered, 2);
    }

    #[test]
    fn removed_ports_are_forgotten() {
        let (mut switch, [a, b, _], _) = three_port_switch(FaultConfig::default());
        switch.remove_port(b);
        assert!(switch.handle(a, &frame(Mac::for_board(1), Mac::for_board(0))).is_empty());
        assert_eq!(switch.stats.dropped_unknown_destination, 1);
    }

    #[test]
    fn runt_frames_are_dropped_and_counted() {
        let (mut switch, [a, ..], _) = three_port_switch(FaultConfig::default());
        assert!(switch.handle(a, &[1, 2, 3]).is_empty());
        assert_eq!(switch.stats.dropped_malformed, 1);
    }

    #[test]
    fn loss_drops_about_the_configured_share() {
        let faults = FaultConfig { loss_percent: 50.0, ..Default::default() };
        let (mut switch, [a, _, _], _) = three_port_switch(faults);
        let mut delivered = 0;
        for _ in 0..10_000 {
            delivered += switch.handle(a, &frame(Mac::for_board(1), Mac::for_board(0))).len();
        }
        assert!((4_500..5_500).contains(&delivered), "{delivered} of 10000 delivered");
    }

    #[test]
    fn duplication_and_reordering_show_up() {
        let faults = FaultConfig { duplicate_percent: 20.0, reorder_percent: 20.0, ..Default::default() };
        let (mut switch, [a, _, _], _) = three_port_switch(faults);
        let mut copies = 0;
        let mut held_back = 0;
        for _ in 0..1_000 {
            let out = switch.handle(a, &frame(Mac::for_board(1), Mac::for_board(0)));
            copies += out.len();
            held_back += out.iter().filter(|d| !d.delay.is_zero()).count();
        }
        assert!((1_150..1_250).contains(&copies), "{copies} copies of 1000 frames");
        assert!((150..350).contains(&held_back), "{held_back} copies held back");
    }

    #[test]
    fn partition_cuts_both_ways_until_healed() {
        let mut faults = FaultConfig::default();
        faults.apply("partition=b0,h0/b1").unwrap();
        let (mut switch, [a, b, h], host) = three_port_switch(faults);
        assert_eq!(ports(&switch.handle(h, &frame(BROADCAST, host))), vec![a]);
        assert!(switch.handle(b, &frame(BROADCAST, Mac::for_board(1))).is_empty());
        assert_eq!(switch.stats.dropped_partition, 3);
        let mut healed = switch.faults().clone();
        healed.apply("heal").unwrap();
        switch.set_faults(healed);
        assert_eq!(ports(&switch.handle(b, &frame(BROADCAST, Mac::for_board(1)))), vec![a, h]);
    }
}

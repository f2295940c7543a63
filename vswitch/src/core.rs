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
//!
//! A part of a pool that spans hosts has one more port, the **uplink** (a
//! VXLAN segment, see `vxlan`): the MACs behind it are the other parts'. It
//! owns every MAC that is not local, so unicast for one goes out on it; it
//! may send from any unicast MAC that is not local (a remote station may not
//! claim a local one); what comes in on it never goes back out on it; and
//! the faults apply to it like to any port. Local MACs are the ports', the
//! local boards' even while they reboot (a remote station cannot take one
//! over meanwhile), and this part's range of host station MACs.

use super::faults::FaultConfig;
use pool_control::Mac;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::{HashMap, HashSet};
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
    /// `b<id>` for board `id`, `h<k>` for the k-th host station, `vx0` for
    /// the uplink.
    name: String,
    /// The only source it may send from, and where unicast to it goes; none
    /// for the uplink, which speaks for every MAC that is not local.
    mac: Option<Mac>,
}

/// The source of the switch's own frames to a station (`PortAssigned`): a
/// locally administered address no port has.
pub const SWITCH_MAC: Mac = Mac([0x02, 0, 0, 0, 0, 0]);

/// The MAC of host station `index` of the part of the pool whose first board
/// is `first_board`: locally administered and unicast like the boards'
/// (`52:54:00:a0:…`), but `52:55:…`, with the part in the middle, so that
/// no two parts of a pool that spans hosts give one out twice.
pub const fn host_station_mac(first_board: u16, index: u16) -> Mac {
    Mac([0x52, 0x55, (first_board >> 8) as u8, first_board as u8, (index >> 8) as u8, index as u8])
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
    /// Who owns each local MAC.
    owners: HashMap<Mac, PortId>,
    /// The local boards' MACs, whether or not their QEMU is connected.
    reserved: HashSet<Mac>,
    /// The port to the other parts of the pool, if this is one part of several.
    uplink: Option<PortId>,
    /// The first board of this part of the pool: host stations' MACs follow
    /// from it.
    part: u16,
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
            reserved: HashSet::new(),
            uplink: None,
            part: 0,
            next_port: 0,
            next_host: 0,
            last_attachment: first_attachment,
            faults,
            rng: SmallRng::seed_from_u64(seed),
            stats: SwitchStats::default(),
        }
    }

    /// Host stations get the MACs of the part of the pool whose first board
    /// is `first_board` (see [`host_station_mac`]).
    pub fn set_part(&mut self, first_board: u16) {
        self.part = first_board;
    }

    fn add_port(&mut self, name: String, mac: Mac) -> PortId {
        let id = self.next_port;
        self.next_port += 1;
        self.ports.insert(id, PortInfo { name, mac: Some(mac) });
        // A board whose QEMU started again takes its MAC over from the
        // connection of the old one, which may not have closed yet.
        if let Some(old) = self.owners.insert(mac, id) {
            self.ports.remove(&old);
        }
        id
    }

    /// The uplink to the other parts of the pool, named `name` (for faults
    /// and partitions). One switch has one uplink: a second replaces the first.
    pub fn add_uplink_port(&mut self, name: &str) -> PortId {
        let id = self.next_port;
        self.next_port += 1;
        self.ports.insert(id, PortInfo { name: name.to_string(), mac: None });
        if let Some(old) = self.uplink.replace(id) {
            self.ports.remove(&old);
        }
        id
    }

    /// `mac` is a local board's even while no port has it (the board is
    /// booting or rebooting): it never goes to the uplink, and no remote
    /// station may take it over meanwhile.
    pub fn reserve_mac(&mut self, mac: Mac) {
        self.reserved.insert(mac);
    }

    /// Whether `mac` is this part's: the switch's own, a local port's, a
    /// local board's, or in this part's range of host station MACs.
    fn is_local(&self, mac: Mac) -> bool {
        let station_range = host_station_mac(self.part, 0);
        mac == SWITCH_MAC
            || self.owners.contains_key(&mac)
            || self.reserved.contains(&mac)
            || mac.0[..4] == station_range.0[..4]
    }

    /// A board's port, with the MAC its QEMU was given.
    pub fn add_board_port(&mut self, name: &str, mac: Mac) -> PortId {
        self.add_port(name.to_string(), mac)
    }

    /// A host station's port, with a MAC no port has and a new attachment
    /// number; `None` when every host MAC of this part is taken.
    pub fn add_host_port(&mut self) -> Option<HostAttachment> {
        let mut tries = 0u32;
        let (name, mac) = loop {
            let index = self.next_host;
            self.next_host += 1;
            let mac = host_station_mac(self.part, index as u16);
            if !self.owners.contains_key(&mac) {
                break (format!("h{index}"), mac);
            }
            tries += 1;
            if tries > u32::from(u16::MAX) {
                return None;
            }
        };
        self.last_attachment += 1;
        let port = self.add_port(name, mac);
        Some(HostAttachment { port, mac, attachment: self.last_attachment })
    }

    pub fn remove_port(&mut self, port: PortId) {
        let Some(info) = self.ports.remove(&port) else { return };
        match info.mac {
            Some(mac) if self.owners.get(&mac) == Some(&port) => {
                self.owners.remove(&mac);
            }
            Some(_) => {}
            None if self.uplink == Some(port) => self.uplink = None,
            None => {}
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
        let allowed = match sender.mac {
            Some(mac) => parsed.source == mac,
            // The other parts' stations: any unicast MAC that is not ours.
            None => !parsed.source.is_multicast() && !self.is_local(parsed.source),
        };
        if !allowed {
            self.stats.dropped_spoofed += 1;
            return Vec::new();
        }
        let from_uplink = sender.mac.is_none();
        let from_name = sender.name.clone();
        let targets: Vec<PortId> = if parsed.destination.is_multicast() {
            let mut all: Vec<PortId> = self.ports.keys().copied().filter(|&p| p != from).collect();
            all.sort_unstable();
            all
        } else {
            match (self.owners.get(&parsed.destination), self.uplink) {
                (Some(&port), _) if port != from => vec![port],
                (Some(_), _) => Vec::new(),
                // Not local: behind the uplink, unless it came from there.
                (None, Some(uplink)) if !from_uplink && !self.is_local(parsed.destination) => vec![uplink],
                (None, _) => {
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
        let host = switch.add_host_port().unwrap();
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
        let first = switch.add_host_port().unwrap();
        let second = switch.add_host_port().unwrap();
        assert_ne!(first.mac, second.mac);
        assert!(second.attachment > first.attachment && first.attachment > 1000);
        switch.remove_port(first.port);
        let third = switch.add_host_port().unwrap();
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

    /// Boards 0 and 1, one host station and an uplink `vx0`.
    fn part_with_uplink(faults: FaultConfig) -> (SwitchCore, [PortId; 4], Mac) {
        let (mut switch, [a, b, h], host) = three_port_switch(faults);
        let uplink = switch.add_uplink_port("vx0");
        (switch, [a, b, h, uplink], host)
    }

    #[test]
    fn the_uplink_owns_every_mac_that_is_not_local() {
        let (mut switch, [a, b, h, up], host) = part_with_uplink(FaultConfig::default());
        let remote_board = Mac::for_board(5);
        assert_eq!(ports(&switch.handle(a, &frame(remote_board, Mac::for_board(0)))), vec![up]);
        assert_eq!(ports(&switch.handle(h, &frame(remote_board, host))), vec![up]);
        // From the other side: to its owner here, and never back out.
        assert_eq!(ports(&switch.handle(up, &frame(Mac::for_board(1), remote_board))), vec![b]);
        assert_eq!(ports(&switch.handle(up, &frame(host, remote_board))), vec![h]);
        assert!(switch.handle(up, &frame(Mac::for_board(6), remote_board)).is_empty());
        assert_eq!(switch.stats.dropped_unknown_destination, 1);
    }

    #[test]
    fn broadcasts_cross_the_uplink_once_and_never_come_back_out() {
        let (mut switch, [a, b, h, up], host) = part_with_uplink(FaultConfig::default());
        assert_eq!(ports(&switch.handle(h, &frame(BROADCAST, host))), vec![a, b, up]);
        assert_eq!(ports(&switch.handle(up, &frame(BROADCAST, Mac::for_board(5)))), vec![a, b, h]);
    }

    #[test]
    fn a_remote_station_may_not_claim_a_local_mac() {
        let (mut switch, [a, _, _, up], host) = part_with_uplink(FaultConfig::default());
        for claimed in [Mac::for_board(0), host, SWITCH_MAC, BROADCAST] {
            assert!(switch.handle(up, &frame(Mac::for_board(1), claimed)).is_empty(), "{claimed}");
        }
        assert_eq!(switch.stats.dropped_spoofed, 4);
        // And a local station may not claim a remote one.
        assert!(switch.handle(a, &frame(BROADCAST, Mac::for_board(5))).is_empty());
        assert_eq!(switch.stats.dropped_spoofed, 5);
    }

    #[test]
    fn a_local_board_that_is_down_is_neither_sought_nor_claimable_across_the_uplink() {
        let (mut switch, [a, _, h, up], host) = part_with_uplink(FaultConfig::default());
        let rebooting = Mac::for_board(2);
        switch.reserve_mac(rebooting);
        // Board 2 has no port now: its frames are dropped here, not sent away.
        assert!(switch.handle(a, &frame(rebooting, Mac::for_board(0))).is_empty());
        assert_eq!(switch.stats.dropped_unknown_destination, 1);
        // A remote station may not speak as board 2, nor as a host station
        // of this part that has not attached yet.
        assert!(switch.handle(up, &frame(Mac::for_board(0), rebooting)).is_empty());
        let unattached = host_station_mac(0, 77);
        assert!(switch.handle(up, &frame(host, unattached)).is_empty());
        assert_eq!(switch.stats.dropped_spoofed, 2);
        assert!(switch.handle(h, &frame(unattached, host)).is_empty(), "nor is it sought away");
        // Its board attaches: frames reach it.
        let port = switch.add_board_port("b2", rebooting);
        assert_eq!(ports(&switch.handle(a, &frame(rebooting, Mac::for_board(0)))), vec![port]);
    }

    #[test]
    fn faults_and_partitions_apply_to_the_uplink() {
        let mut faults = FaultConfig::default();
        faults.apply("partition=b0,b1,h0/vx0").unwrap();
        let (mut switch, [a, _, _, up], _) = part_with_uplink(faults);
        assert!(switch.handle(a, &frame(Mac::for_board(5), Mac::for_board(0))).is_empty());
        assert!(switch.handle(up, &frame(Mac::for_board(0), Mac::for_board(5))).is_empty());
        assert_eq!(switch.stats.dropped_partition, 2);
        let mut lossy = FaultConfig::default();
        lossy.apply("loss=100").unwrap();
        switch.set_faults(lossy);
        assert!(switch.handle(up, &frame(Mac::for_board(0), Mac::for_board(5))).is_empty());
        assert_eq!(switch.stats.dropped_loss, 1);
    }

    #[test]
    fn a_removed_uplink_takes_no_more_frames() {
        let (mut switch, [a, _, _, up], _) = part_with_uplink(FaultConfig::default());
        switch.remove_port(up);
        assert!(switch.handle(a, &frame(Mac::for_board(5), Mac::for_board(0))).is_empty());
        assert_eq!(switch.stats.dropped_unknown_destination, 1);
    }

    #[test]
    fn host_stations_of_different_parts_never_share_a_mac() {
        let mut first = SwitchCore::new(FaultConfig::default(), 7, 1000);
        let mut second = SwitchCore::new(FaultConfig::default(), 7, 1000);
        second.set_part(4);
        let ours: Vec<Mac> = (0..100).map(|_| first.add_host_port().unwrap().mac).collect();
        let theirs: Vec<Mac> = (0..100).map(|_| second.add_host_port().unwrap().mac).collect();
        assert!(ours.iter().all(|mac| !theirs.contains(mac)));
        assert!(ours.iter().chain(&theirs).all(|mac| !mac.is_multicast() && *mac != SWITCH_MAC));
        assert!((0..=u16::MAX).all(|id| !ours.contains(&Mac::for_board(id))), "nor a board's");
    }
}

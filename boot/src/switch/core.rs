//! The switch's forwarding decisions, without any I/O: learn source MACs,
//! forward unicast to the learned port, flood broadcast, multicast and
//! unknown unicast, and apply the configured faults to every copy.

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
    pub duplicated: u64,
    pub reordered: u64,
}

/// How long a reordered frame is held back, at most.
const REORDER_HOLD: Duration = Duration::from_millis(10);

pub struct SwitchCore {
    ports: HashMap<PortId, String>,
    next_port: PortId,
    learned: HashMap<Mac, PortId>,
    faults: FaultConfig,
    rng: SmallRng,
    pub stats: SwitchStats,
}

impl SwitchCore {
    pub fn new(faults: FaultConfig, seed: u64) -> Self {
        Self {
            ports: HashMap::new(),
            next_port: 0,
            learned: HashMap::new(),
            faults,
            rng: SmallRng::seed_from_u64(seed),
            stats: SwitchStats::default(),
        }
    }

    pub fn add_port(&mut self, name: &str) -> PortId {
        let id = self.next_port;
        self.next_port += 1;
        self.ports.insert(id, name.to_string());
        id
    }

    pub fn remove_port(&mut self, port: PortId) {
        self.ports.remove(&port);
        self.learned.retain(|_, learned_port| *learned_port != port);
    }

    pub fn port_name(&self, port: PortId) -> Option<&str> {
        self.ports.get(&port).map(String::as_str)
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
        let Some(from_name) = self.ports.get(&from).cloned() else {
            return Vec::new();
        };
        if !parsed.source.is_multicast() {
            self.learned.insert(parsed.source, from);
        }
        let targets: Vec<PortId> = match self.learned.get(&parsed.destination) {
            Some(&port) if !parsed.destination.is_multicast() => {
                if port == from {
                    Vec::new()
                } else {
                    vec![port]
                }
            }
            _ => {
                let mut all: Vec<PortId> = self.ports.keys().copied().filter(|&p| p != from).collect();
                all.sort_unstable();
                all
            }
        };
        let mut deliveries = Vec::new();
        for port in targets {
            let to_name = &self.ports[&port];
            if let Some(partition) = &self.faults.partition
                && partition.separates(&from_name, to_name)
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

    fn three_port_switch(faults: FaultConfig) -> (SwitchCore, [PortId; 3]) {
        let mut switch = SwitchCore::new(faults, 7);
        let ids = [switch.add_port("b0"), switch.add_port("b1"), switch.add_port("h0")];
        (switch, ids)
    }

    #[test]
    fn floods_unknown_then_forwards_learned_unicast() {
        let (mut switch, [a, b, h]) = three_port_switch(FaultConfig::default());
        let mac_a = Mac::for_board(0);
        let mac_b = Mac::for_board(1);
        // b is unknown: flooded to everyone but the sender.
        assert_eq!(ports(&switch.handle(a, &frame(mac_b, mac_a))), vec![b, h]);
        // b answers a, whom the switch has learned: unicast.
        assert_eq!(ports(&switch.handle(b, &frame(mac_a, mac_b))), vec![a]);
        // Now b is learned too.
        assert_eq!(ports(&switch.handle(h, &frame(mac_b, Mac::for_host(0)))), vec![b]);
    }

    #[test]
    fn broadcast_reaches_every_other_port() {
        let (mut switch, [a, b, h]) = three_port_switch(FaultConfig::default());
        assert_eq!(ports(&switch.handle(h, &frame(BROADCAST, Mac::for_host(0)))), vec![a, b]);
        assert_eq!(switch.stats.copies_delivered, 2);
    }

    #[test]
    fn removed_ports_are_forgotten() {
        let (mut switch, [a, b, h]) = three_port_switch(FaultConfig::default());
        switch.handle(b, &frame(BROADCAST, Mac::for_board(1)));
        switch.remove_port(b);
        assert_eq!(ports(&switch.handle(a, &frame(Mac::for_board(1), Mac::for_board(0)))), vec![h]);
    }

    #[test]
    fn runt_frames_are_dropped_and_counted() {
        let (mut switch, [a, ..]) = three_port_switch(FaultConfig::default());
        assert!(switch.handle(a, &[1, 2, 3]).is_empty());
        assert_eq!(switch.stats.dropped_malformed, 1);
    }

    #[test]
    fn loss_drops_about_the_configured_share() {
        let faults = FaultConfig { loss_percent: 50.0, ..Default::default() };
        let (mut switch, [a, b, _]) = three_port_switch(faults);
        switch.handle(b, &frame(BROADCAST, Mac::for_board(1)));
        let mut delivered = 0;
        for _ in 0..10_000 {
            delivered += switch.handle(a, &frame(Mac::for_board(1), Mac::for_board(0))).len();
        }
        assert!((4_500..5_500).contains(&delivered), "{delivered} of 10000 delivered");
    }

    #[test]
    fn duplication_and_reordering_show_up() {
        let faults = FaultConfig { duplicate_percent: 20.0, reorder_percent: 20.0, ..Default::default() };
        let (mut switch, [a, b, _]) = three_port_switch(faults);
        switch.handle(b, &frame(BROADCAST, Mac::for_board(1)));
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
        let (mut switch, [a, b, h]) = three_port_switch(faults);
        assert_eq!(ports(&switch.handle(h, &frame(BROADCAST, Mac::for_host(0)))), vec![a]);
        assert!(switch.handle(b, &frame(BROADCAST, Mac::for_board(1))).is_empty());
        assert_eq!(switch.stats.dropped_partition, 3);
        let mut healed = switch.faults().clone();
        healed.apply("heal").unwrap();
        switch.set_faults(healed);
        assert_eq!(ports(&switch.handle(b, &frame(BROADCAST, Mac::for_board(1)))), vec![a, h]);
    }
}

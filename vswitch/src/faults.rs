//! Faults the switch injects: loss, duplication, reordering, delay and
//! partitions between sets of ports. Set at start and changeable while the
//! pool runs.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

/// Port names are `b<board id>` for boards, `h<index>` for host ports and
/// `vx<index>` for the uplink to the other parts of a pool across hosts.
pub type PortName = String;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct FaultConfig {
    /// Chance in percent that a forwarded copy of a frame is dropped.
    pub loss_percent: f64,
    /// Chance in percent that a forwarded copy is delivered twice.
    pub duplicate_percent: f64,
    /// Chance in percent that a copy is held back so later frames overtake it.
    pub reorder_percent: f64,
    /// Added one-way delay for every frame.
    pub delay: Duration,
    /// Uniform random extra delay, up to this much.
    pub jitter: Duration,
    pub partition: Option<Partition>,
}

/// Sets of ports that cannot reach each other. Ports named in no set form
/// one more set together.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Partition {
    pub sides: Vec<BTreeSet<PortName>>,
}

impl Partition {
    fn side_of(&self, port: &str) -> Option<usize> {
        self.sides.iter().position(|side| side.contains(port))
    }

    /// Whether frames between `a` and `b` are cut.
    pub fn separates(&self, a: &str, b: &str) -> bool {
        self.side_of(a) != self.side_of(b)
    }
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sides: Vec<String> =
            self.sides.iter().map(|side| side.iter().cloned().collect::<Vec<_>>().join(",")).collect();
        write!(f, "{}", sides.join("/"))
    }
}

impl fmt::Display for FaultConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "loss={} dup={} reorder={} delay={}ms jitter={}ms",
            self.loss_percent,
            self.duplicate_percent,
            self.reorder_percent,
            self.delay.as_millis(),
            self.jitter.as_millis()
        )?;
        if let Some(partition) = &self.partition {
            write!(f, " partition={partition}")?;
        }
        Ok(())
    }
}

impl FaultConfig {
    pub fn is_clean(&self) -> bool {
        *self == FaultConfig::default()
    }

    /// Applies a textual change such as `loss=50 dup=5 reorder=10 delay=2ms
    /// jitter=1ms partition=b0,b1,h0/b2,b3`, `heal` (no partition) or `clear`
    /// (no faults at all). Unnamed settings keep their values.
    /// A spec with any error changes nothing.
    pub fn apply(&mut self, spec: &str) -> Result<(), String> {
        let mut next = self.clone();
        next.apply_words(spec)?;
        *self = next;
        Ok(())
    }

    fn apply_words(&mut self, spec: &str) -> Result<(), String> {
        for word in spec.split_whitespace() {
            match word {
                "heal" => {
                    self.partition = None;
                    continue;
                }
                "clear" => {
                    *self = FaultConfig::default();
                    continue;
                }
                _ => {}
            }
            let (key, value) =
                word.split_once('=').ok_or_else(|| format!("expected key=value, got \"{word}\""))?;
            match key {
                "loss" => self.loss_percent = parse_percent(value)?,
                "dup" | "duplicate" => self.duplicate_percent = parse_percent(value)?,
                "reorder" => self.reorder_percent = parse_percent(value)?,
                "delay" => self.delay = parse_millis(value)?,
                "jitter" => self.jitter = parse_millis(value)?,
                "partition" => self.partition = Some(parse_partition(value)?),
                other => return Err(format!("unknown fault \"{other}\"")),
            }
        }
        Ok(())
    }
}

fn parse_percent(value: &str) -> Result<f64, String> {
    let percent: f64 = value.parse().map_err(|_| format!("\"{value}\" is not a number"))?;
    if !(0.0..=100.0).contains(&percent) {
        return Err(format!("{percent} is not a percentage between 0 and 100"));
    }
    Ok(percent)
}

fn parse_millis(value: &str) -> Result<Duration, String> {
    let number = value.strip_suffix("ms").unwrap_or(value);
    let millis: u64 = number.parse().map_err(|_| format!("\"{value}\" is not a number of milliseconds"))?;
    Ok(Duration::from_millis(millis))
}

pub fn parse_partition(value: &str) -> Result<Partition, String> {
    let mut sides = Vec::new();
    for side in value.split('/') {
        let ports: BTreeSet<PortName> =
            side.split(',').map(str::trim).filter(|p| !p.is_empty()).map(String::from).collect();
        if ports.is_empty() {
            return Err(format!("partition \"{value}\" has an empty side"));
        }
        for port in &ports {
            let number = ["vx", "b", "h"].iter().find_map(|prefix| port.strip_prefix(prefix));
            let valid = number.is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
            if !valid {
                return Err(format!("\"{port}\" is not a port name (b<board>, h<host port> or vx<uplink>)"));
            }
        }
        sides.push(ports);
    }
    Ok(Partition { sides })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_heal() {
        let mut faults = FaultConfig::default();
        faults.apply("loss=50 dup=5 reorder=10 delay=2ms jitter=1 partition=b0,b1,h0/b2").unwrap();
        assert_eq!(faults.loss_percent, 50.0);
        assert_eq!(faults.duplicate_percent, 5.0);
        assert_eq!(faults.reorder_percent, 10.0);
        assert_eq!(faults.delay, Duration::from_millis(2));
        assert_eq!(faults.jitter, Duration::from_millis(1));
        let partition = faults.partition.clone().unwrap();
        assert!(partition.separates("b0", "b2"));
        assert!(!partition.separates("b0", "h0"));
        // Unnamed ports share the implicit last side.
        assert!(partition.separates("b0", "b3"));
        assert!(!partition.separates("b3", "h1"));
        faults.apply("heal").unwrap();
        assert_eq!(faults.partition, None);
        faults.apply("partition=b0,h0/vx0").unwrap();
        assert!(faults.partition.as_ref().unwrap().separates("b0", "vx0"));
        faults.apply("heal").unwrap();
        assert_eq!(faults.loss_percent, 50.0);
        faults.apply("clear").unwrap();
        assert!(faults.is_clean());
    }

    #[test]
    fn bad_specs_are_refused_without_change() {
        let mut faults = FaultConfig::default();
        assert!(faults.apply("loss=150").is_err());
        assert!(faults.apply("loss").is_err());
        assert!(faults.apply("speed=3").is_err());
        assert!(faults.apply("partition=b0//b1").is_err());
        assert!(faults.apply("partition=x1/b2").is_err());
        assert!(faults.apply("partition=vx/b2").is_err());
        assert!(faults.apply("partition=vxa/b2").is_err());
        assert!(faults.apply("loss=10 speed=3").is_err());
        assert!(faults.is_clean());
    }
}

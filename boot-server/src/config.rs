//! The boot service's configuration, as `up` stores it in the directory
//! (`/system/boot`, a Bullet file): the boards it may use and, for each
//! service, the program, where it runs, what it starts with and how it is
//! checked. A typed format (`postcard`) behind a magic and a version, so a
//! file of another kind or version is refused, never half read.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use amoeba_abi::{Capability, Check, GetPort, Rights, Rng};
use serde::{Deserialize, Serialize};

/// The first bytes of a configuration file (the last one is the version).
pub const MAGIC: [u8; 8] = *b"AMBOOTC\x01";
/// Largest configuration file read.
pub const MAX_CONFIG_BYTES: usize = 64 * 1024;
/// Most services one boot service keeps.
pub const MAX_SERVICES: usize = 32;
/// Most boards one boot service uses.
pub const MAX_BOARDS: usize = 64;

/// Everything the boot service needs to know.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootConfig {
    /// The boards services may run on.
    pub boards: Vec<Board>,
    /// The services, in the order they are (re)started when several wait.
    pub services: Vec<ServiceConfig>,
}

/// A board and the capability for its process server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Board {
    /// Its id (`board<id>`).
    pub id: u16,
    /// Its host capability: create (processes, boot programs), info (its
    /// process list and uptime), control (a process by id), disk (ranges of its
    /// disks, for services that need them).
    pub host: Capability,
}

/// One service to keep up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceConfig {
    /// Its name (`bullet`, `directory 0`, `run`).
    pub name: String,
    /// The program of the boards' boot bundle it runs (also its process's name).
    pub program: String,
    /// The boards it may run on, preferred first; one board pins it there.
    pub boards: Vec<u16>,
    /// Its heap.
    pub heap_bytes: u64,
    /// Its arguments, program name first.
    pub argv: Vec<String>,
    /// Its environment strings (`NAME=value`).
    pub environment: Vec<String>,
    /// Its capability environment.
    pub capabilities: Vec<NamedCapability>,
    /// How to tell that it answers.
    pub check: ServiceCheck,
    /// Services that must be up before it is started (again).
    pub after: Vec<String>,
    /// Services of one set (the replicas of one service) are started one at a
    /// time, and a member is replaced only while every other member is up.
    pub set: Option<String>,
}

/// A capability of a service's environment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedCapability {
    /// Its name in the environment (`DISK`, `BULLET`, `ANCHOR0`, ...).
    pub name: String,
    /// Where it comes from.
    pub source: CapabilitySource,
}

/// Where a capability of a service's environment comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CapabilitySource {
    /// This one, as it is (it outlives any board: a service's port comes from
    /// its stored identity).
    Given(Capability),
    /// Blocks `first .. first + count` (count 0: to the end) of disk 0 of board
    /// `board`, restricted to `rights`. Asked of the board at each start: a
    /// board's disk capabilities die with its incarnation.
    Disk {
        /// The board with the disk.
        board: u16,
        /// First block.
        first: u64,
        /// Blocks (0: all of the rest).
        count: u32,
        /// Rights the service gets.
        rights: Rights,
    },
}

/// How a service is checked: a request the service answers itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServiceCheck {
    /// `STD_INFO` on this capability.
    Info(Capability),
    /// A listing of `directory` read at one directory replica, through the
    /// replica's own capability: it answers only once the replica serves.
    DirectoryReplica {
        /// The replica's own capability.
        replica: Capability,
        /// A small directory to list.
        directory: Capability,
    },
}

impl ServiceCheck {
    /// The capability the check is sent to.
    pub fn capability(&self) -> Capability {
        match self {
            ServiceCheck::Info(capability) => *capability,
            ServiceCheck::DirectoryReplica { replica, .. } => *replica,
        }
    }
}

impl ServiceConfig {
    /// The boards whose disk capabilities it holds.
    pub fn disk_boards(&self) -> impl Iterator<Item = u16> + '_ {
        self.capabilities.iter().filter_map(|c| match c.source {
            CapabilitySource::Disk { board, .. } => Some(board),
            CapabilitySource::Given(_) => None,
        })
    }
}

/// Why a configuration is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// Not a boot configuration (or another version of one).
    NotAConfiguration,
    /// Longer than [`MAX_CONFIG_BYTES`].
    TooLarge(usize),
    /// It does not decode.
    Malformed,
    /// It decodes but does not make sense: why.
    Invalid(String),
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ConfigError::NotAConfiguration => f.write_str("not a boot configuration (or another version)"),
            ConfigError::TooLarge(bytes) => {
                write!(f, "the configuration is {bytes} bytes, more than {MAX_CONFIG_BYTES}")
            }
            ConfigError::Malformed => f.write_str("the configuration does not decode"),
            ConfigError::Invalid(why) => write!(f, "the configuration makes no sense: {why}"),
        }
    }
}

impl BootConfig {
    /// The file's bytes.
    pub fn encode(&self) -> Result<Vec<u8>, ConfigError> {
        let body = postcard::to_allocvec(self).map_err(|_| ConfigError::Malformed)?;
        let mut bytes = Vec::new();
        bytes.try_reserve_exact(MAGIC.len() + body.len()).map_err(|_| ConfigError::TooLarge(body.len()))?;
        bytes.extend_from_slice(&MAGIC);
        bytes.extend_from_slice(&body);
        if bytes.len() > MAX_CONFIG_BYTES {
            return Err(ConfigError::TooLarge(bytes.len()));
        }
        Ok(bytes)
    }

    /// A configuration from a file's bytes, checked ([`BootConfig::validate`]).
    pub fn decode(bytes: &[u8]) -> Result<BootConfig, ConfigError> {
        if bytes.len() > MAX_CONFIG_BYTES {
            return Err(ConfigError::TooLarge(bytes.len()));
        }
        let body = bytes.strip_prefix(&MAGIC[..]).ok_or(ConfigError::NotAConfiguration)?;
        let config: BootConfig = match postcard::take_from_bytes(body) {
            Ok((config, [])) => config,
            _ => return Err(ConfigError::Malformed),
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks that the configuration makes sense: within the limits, names
    /// unique, every board and every service it names known, each service
    /// with at least one board.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |why: String| Err(ConfigError::Invalid(why));
        if self.services.len() > MAX_SERVICES || self.boards.len() > MAX_BOARDS {
            return invalid(format!(
                "{} services on {} boards (at most {MAX_SERVICES} on {MAX_BOARDS})",
                self.services.len(),
                self.boards.len()
            ));
        }
        for (i, board) in self.boards.iter().enumerate() {
            if self.boards[..i].iter().any(|b| b.id == board.id) {
                return invalid(format!("board {} is listed twice", board.id));
            }
        }
        for (i, service) in self.services.iter().enumerate() {
            let name = &service.name;
            if self.services[..i].iter().any(|s| s.name == *name) {
                return invalid(format!("two services are called {name:?}"));
            }
            if service.boards.is_empty() {
                return invalid(format!("{name} has no board to run on"));
            }
            let boards = service.boards.iter().copied().chain(service.disk_boards());
            for board in boards {
                if !self.boards.iter().any(|b| b.id == board) {
                    return invalid(format!("{name} names board {board}, which is not configured"));
                }
            }
            for after in &service.after {
                if after == name || !self.services.iter().any(|s| s.name == *after) {
                    return invalid(format!("{name} waits for {after:?}, which is not another service"));
                }
            }
            if service.program.is_empty() || service.argv.is_empty() {
                return invalid(format!("{name} has no program or no argv"));
            }
        }
        if let Some(name) = self.waits_in_a_circle() {
            return invalid(format!("{name} waits, through others, for itself"));
        }
        Ok(())
    }

    /// A service whose `after` chain leads back to it.
    fn waits_in_a_circle(&self) -> Option<&str> {
        let index = |name: &String| self.services.iter().position(|s| s.name == *name);
        self.services.iter().enumerate().find_map(|(start, service)| {
            // Depth-first over the `after` edges, at most one visit per service.
            let mut seen = alloc::vec![false; self.services.len()];
            let mut stack: Vec<usize> = service.after.iter().filter_map(index).collect();
            while let Some(next) = stack.pop() {
                if next == start {
                    return Some(service.name.as_str());
                }
                if !core::mem::replace(&mut seen[next], true) {
                    stack.extend(self.services[next].after.iter().filter_map(index));
                }
            }
            None
        })
    }

    /// The host capability of board `id`.
    pub fn board(&self, id: u16) -> Option<&Board> {
        self.boards.iter().find(|b| b.id == id)
    }
}

/// The boot service's own identity from its seed (`SEED`, 64 hex digits),
/// the same wherever and whenever it runs: its get-port and the random check
/// of its capability.
pub fn identity(seed: [u8; 32]) -> (GetPort, Check) {
    let mut rng = Rng::from_seed(seed);
    let get = GetPort::random(&mut rng);
    (get, rng.check())
}

/// The boot service's capability (owner) for `seed`.
pub fn capability(seed: [u8; 32]) -> Capability {
    let (get, check) = identity(seed);
    Capability::owner(get.put_port(), 0, check)
}

/// A seed from 64 hex digits.
pub fn parse_seed(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let mut seed = [0u8; 32];
    for (byte, pair) in seed.iter_mut().zip(hex.chunks_exact(2)) {
        let text = core::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(text, 16).ok()?;
    }
    Some(seed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use amoeba_abi::Port;

    fn cap(n: u8) -> Capability {
        Capability::owner(Port([n; 6]), 0, Check([n; 6]))
    }

    fn service(name: &str, boards: Vec<u16>) -> ServiceConfig {
        ServiceConfig {
            name: String::from(name),
            program: String::from("prog"),
            boards,
            heap_bytes: 1 << 20,
            argv: vec![String::from("prog")],
            environment: vec![String::from("A=1")],
            capabilities: vec![NamedCapability {
                name: String::from("DISK"),
                source: CapabilitySource::Disk { board: 0, first: 64, count: 0, rights: Rights::ALL },
            }],
            check: ServiceCheck::Info(cap(3)),
            after: Vec::new(),
            set: None,
        }
    }

    fn config() -> BootConfig {
        BootConfig {
            boards: vec![Board { id: 0, host: cap(1) }, Board { id: 1, host: cap(2) }],
            services: vec![service("a", vec![0]), service("b", vec![1, 0])],
        }
    }

    #[test]
    fn round_trips_and_refuses_other_files() {
        let config = config();
        let bytes = config.encode().unwrap();
        assert_eq!(BootConfig::decode(&bytes), Ok(config));
        assert_eq!(BootConfig::decode(b"hello"), Err(ConfigError::NotAConfiguration));
        let mut other_version = bytes.clone();
        other_version[7] = 2;
        assert_eq!(BootConfig::decode(&other_version), Err(ConfigError::NotAConfiguration));
        assert_eq!(BootConfig::decode(&bytes[..bytes.len() - 1]), Err(ConfigError::Malformed));
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert_eq!(BootConfig::decode(&trailing), Err(ConfigError::Malformed));
        let huge = vec![0u8; MAX_CONFIG_BYTES + 1];
        assert_eq!(BootConfig::decode(&huge), Err(ConfigError::TooLarge(MAX_CONFIG_BYTES + 1)));
    }

    #[test]
    fn nonsense_is_refused_with_the_reason() {
        let mut unknown_board = config();
        unknown_board.services[0].boards = vec![7];
        let mut duplicate = config();
        duplicate.services[1].name = String::from("a");
        let mut waits_for_nobody = config();
        waits_for_nobody.services[0].after = vec![String::from("z")];
        let mut waits_for_itself = config();
        waits_for_itself.services[0].after = vec![String::from("a")];
        let mut circle = config();
        circle.services[0].after = vec![String::from("b")];
        circle.services[1].after = vec![String::from("a")];
        let mut nowhere = config();
        nowhere.services[0].boards.clear();
        let mut disk_elsewhere = config();
        disk_elsewhere.services[0].capabilities[0].source =
            CapabilitySource::Disk { board: 9, first: 0, count: 1, rights: Rights::ALL };
        for bad in
            [unknown_board, duplicate, waits_for_nobody, waits_for_itself, circle, nowhere, disk_elsewhere]
        {
            let bytes = bad.encode().unwrap();
            assert!(matches!(BootConfig::decode(&bytes), Err(ConfigError::Invalid(_))), "{bad:?}");
        }
    }

    #[test]
    fn the_identity_follows_from_the_seed_alone() {
        let hex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        let seed = parse_seed(hex).unwrap();
        assert_eq!(seed[1], 0x11);
        assert_eq!(capability(seed), capability(seed));
        let (get, check) = identity(seed);
        assert_eq!(capability(seed), Capability::owner(get.put_port(), 0, check));
        let mut other = seed;
        other[31] ^= 1;
        assert_ne!(capability(seed), capability(other));
        assert_eq!(parse_seed("0011"), None);
        assert_eq!(parse_seed(&hex.replace('a', "g")), None);
    }
}

//! VXLAN (RFC 7348) for the switch's uplink, without any I/O: the `--vxlan`
//! setting, the encapsulation of a pool frame into the payload of a UDP
//! datagram and back, and which remote endpoints a frame goes to.
//!
//! The pool's Ethernet spans hosts the way the Linux kernel's `vxlan` device
//! carries one: an 8-byte header (flags with only the I bit, the 24-bit VNI)
//! before the whole frame, UDP port 4789 by default, no padding and no FCS.
//! So a Linux bridge with `vxlan` ports (or Open vSwitch) can sit between two
//! parts of the pool, or two parts can talk to each other directly.
//!
//! A datagram is taken only from a configured remote's address (any source
//! port: Linux picks one per flow) and with the configured VNI. Unicast goes
//! to the remote a source MAC was last seen behind, else to every remote (as
//! the kernel does before it has learned); broadcast and multicast go to
//! every remote.

use pnet_packet::vxlan::{MutableVxlanPacket, VxlanPacket};
use pool_control::Mac;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

/// The IANA port for VXLAN, which the Linux kernel uses by default too.
pub const DEFAULT_PORT: u16 = 4789;
/// The VXLAN header's length.
pub const HEADER_LEN: usize = 8;
/// The I flag: the VNI is valid (the only flag RFC 7348 defines).
const FLAG_VNI_VALID: u8 = 0x08;
/// Largest VNI (24 bits).
pub const MAX_VNI: u32 = (1 << 24) - 1;
/// Most remote endpoints one uplink sends to.
pub const MAX_REMOTES: usize = 64;
/// Most MACs the uplink remembers the remote of; past that, unicast to a MAC
/// it has not seen yet goes to every remote.
pub const MAX_LEARNED: usize = 4096;
/// Shortest inner frame: an Ethernet header.
const MIN_FRAME: usize = pool_control::ETHERNET_HEADER_LEN;

/// What `--vxlan local=ADDR,remote=ADDR[,remote=…],vni=N[,port=P]` says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VxlanConfig {
    /// This host's address on the underlay (the UDP socket binds to it).
    pub local: IpAddr,
    /// The other parts' (or a Linux bridge's) addresses.
    pub remotes: Vec<IpAddr>,
    /// The segment's VXLAN network identifier.
    pub vni: u32,
    /// The UDP port, local and remote (as the kernel's `dstport`).
    pub port: u16,
}

impl VxlanConfig {
    /// Where the uplink's socket binds.
    pub fn local_endpoint(&self) -> SocketAddr {
        SocketAddr::new(self.local, self.port)
    }

    /// Where datagrams to `remote` go.
    pub fn remote_endpoint(&self, remote: IpAddr) -> SocketAddr {
        SocketAddr::new(remote, self.port)
    }
}

impl std::fmt::Display for VxlanConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "local={}", self.local)?;
        for remote in &self.remotes {
            write!(f, ",remote={remote}")?;
        }
        write!(f, ",vni={},port={}", self.vni, self.port)
    }
}

impl std::str::FromStr for VxlanConfig {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (mut local, mut vni, mut port) = (None, None, DEFAULT_PORT);
        let mut remotes: Vec<IpAddr> = Vec::new();
        for item in text.split(',').map(str::trim).filter(|item| !item.is_empty()) {
            let (key, value) =
                item.split_once('=').ok_or_else(|| format!("expected key=value, got \"{item}\""))?;
            let address = || value.parse::<IpAddr>().map_err(|_| format!("\"{value}\" is not an IP address"));
            match key {
                "local" => local = Some(address()?),
                "remote" => {
                    let remote = address()?;
                    if remotes.contains(&remote) {
                        return Err(format!("remote {remote} is named twice"));
                    }
                    if remotes.len() == MAX_REMOTES {
                        return Err(format!("more than {MAX_REMOTES} remotes"));
                    }
                    remotes.push(remote);
                }
                "vni" => {
                    let number: u32 =
                        value.parse().map_err(|_| format!("vni \"{value}\" is not a number"))?;
                    if number > MAX_VNI {
                        return Err(format!("vni {number} does not fit 24 bits (at most {MAX_VNI})"));
                    }
                    vni = Some(number);
                }
                "port" => {
                    port = value.parse().map_err(|_| format!("port \"{value}\" is not a UDP port"))?;
                    if port == 0 {
                        return Err(String::from("port 0 is not a UDP port"));
                    }
                }
                other => return Err(format!("unknown VXLAN setting \"{other}\" (local, remote, vni, port)")),
            }
        }
        let local = local.ok_or("no local=ADDR (this host's address on the underlay)")?;
        let vni = vni.ok_or("no vni=N (the segment's VXLAN network identifier)")?;
        if remotes.is_empty() {
            return Err(String::from("no remote=ADDR (another part's address)"));
        }
        if let Some(remote) = remotes.iter().find(|r| r.is_ipv4() != local.is_ipv4()) {
            return Err(format!("remote {remote} and local {local} are of different IP versions"));
        }
        if remotes.contains(&local) {
            return Err(format!("local {local} is named as a remote too"));
        }
        Ok(Self { local, remotes, vni, port })
    }
}

/// Why a datagram was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// From an address that is no configured remote.
    UnknownRemote,
    /// Shorter than a header and an Ethernet header, longer than a pool
    /// frame, or without the I flag.
    Malformed,
    /// For another segment.
    WrongVni,
}

/// Writes `frame` encapsulated for `vni` into `out` (cleared first), as the
/// Linux kernel's `vxlan` device does: flags 0x08, reserved bytes zero.
/// Fails only when `out` cannot grow.
pub fn encapsulate(
    vni: u32,
    frame: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), std::collections::TryReserveError> {
    out.clear();
    out.try_reserve(HEADER_LEN + frame.len())?;
    out.resize(HEADER_LEN, 0);
    out.extend_from_slice(frame);
    // The buffer holds a whole header, so the view always exists.
    if let Some(mut header) = MutableVxlanPacket::new(out) {
        header.set_flags(FLAG_VNI_VALID);
        header.set_reserved1(0);
        header.set_vni(vni & MAX_VNI);
        header.set_reserved2(0);
    }
    Ok(())
}

/// The frame inside `datagram`, if it is one for `vni`. Reserved bits are
/// ignored, as RFC 7348 says.
pub fn decapsulate(vni: u32, datagram: &[u8]) -> Result<&[u8], Refused> {
    if datagram.len() < HEADER_LEN + MIN_FRAME || datagram.len() > HEADER_LEN + pool_control::MAX_FRAME_LEN {
        return Err(Refused::Malformed);
    }
    let header = VxlanPacket::new(datagram).ok_or(Refused::Malformed)?;
    if header.get_flags() & FLAG_VNI_VALID == 0 {
        return Err(Refused::Malformed);
    }
    if header.get_vni() != vni {
        return Err(Refused::WrongVni);
    }
    Ok(&datagram[HEADER_LEN..])
}

/// The uplink's view of the remote side: the configuration and where each
/// remote MAC was last seen.
pub struct VxlanPeers {
    config: VxlanConfig,
    learned: HashMap<Mac, IpAddr>,
}

impl VxlanPeers {
    pub fn new(config: VxlanConfig) -> Self {
        Self { config, learned: HashMap::new() }
    }

    pub fn config(&self) -> &VxlanConfig {
        &self.config
    }

    /// The frame in a datagram from `from`, if it comes from a configured
    /// remote for our VNI; its source MAC is then known to be behind that
    /// remote.
    pub fn receive<'a>(&mut self, from: SocketAddr, datagram: &'a [u8]) -> Result<&'a [u8], Refused> {
        let remote = canonical(from.ip());
        if !self.config.remotes.contains(&remote) {
            return Err(Refused::UnknownRemote);
        }
        let frame = decapsulate(self.config.vni, datagram)?;
        let mut source = [0u8; 6];
        source.copy_from_slice(&frame[6..12]);
        let source = Mac(source);
        if !source.is_multicast() && (self.learned.len() < MAX_LEARNED || self.learned.contains_key(&source))
        {
            self.learned.insert(source, remote);
        }
        Ok(frame)
    }

    /// The endpoints `frame` goes to: the remote its destination was seen
    /// behind, or every remote.
    pub fn destinations(&self, frame: &[u8]) -> Vec<SocketAddr> {
        if frame.len() >= 6 {
            let mut destination = [0u8; 6];
            destination.copy_from_slice(&frame[..6]);
            let destination = Mac(destination);
            if !destination.is_multicast()
                && let Some(&remote) = self.learned.get(&destination)
            {
                return vec![self.config.remote_endpoint(remote)];
            }
        }
        self.config.remotes.iter().map(|&remote| self.config.remote_endpoint(remote)).collect()
    }

    /// How many MACs are known to be behind a remote.
    pub fn learned(&self) -> usize {
        self.learned.len()
    }
}

/// An address as configured: an IPv4 address received on an IPv6 socket
/// (`::ffff:a.b.c.d`) is the IPv4 address.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A datagram the Linux kernel's `vxlan` device (id 42, dstport 4789)
    /// sent, as a UDP socket received it: a Neighbour Solicitation broadcast
    /// by the bridge it was a port of (captured with
    /// `ip link add vxa type vxlan id 42 local … remote … dstport 4789`).
    const FROM_LINUX: &str = "0800000000002a003333ff7911f34ee4697911f386dd6000000000203aff0000000000000000\
                              0000000000000000ff0200000000000000000001ff7911f38700a8150000000000fe8000000000\
                              00004ce469fffe7911f30e01de3e66a2a76a";

    fn hex(text: &str) -> Vec<u8> {
        let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
        digits
            .chunks(2)
            .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
            .collect()
    }

    fn config(text: &str) -> VxlanConfig {
        text.parse().unwrap()
    }

    #[test]
    fn encapsulation_is_byte_for_byte_what_linux_sends() {
        let datagram = hex(FROM_LINUX);
        let inner = &datagram[HEADER_LEN..];
        let mut ours = Vec::new();
        encapsulate(42, inner, &mut ours).unwrap();
        assert_eq!(ours, datagram, "the same frame, encapsulated by us and by the kernel");
        assert_eq!(decapsulate(42, &datagram).unwrap(), inner);
    }

    #[test]
    fn the_header_carries_the_whole_24_bit_vni() {
        let frame = [0xffu8; 14];
        let mut out = Vec::new();
        encapsulate(0x12_3456, &frame, &mut out).unwrap();
        assert_eq!(&out[..HEADER_LEN], &[0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0]);
        assert_eq!(decapsulate(0x12_3456, &out).unwrap(), &frame);
    }

    #[test]
    fn other_segments_and_broken_headers_are_refused() {
        let datagram = hex(FROM_LINUX);
        assert_eq!(decapsulate(43, &datagram), Err(Refused::WrongVni));
        let mut no_flag = datagram.clone();
        no_flag[0] = 0;
        assert_eq!(decapsulate(42, &no_flag), Err(Refused::Malformed));
        assert_eq!(decapsulate(42, &datagram[..HEADER_LEN + 13]), Err(Refused::Malformed));
        let mut jumbo = vec![0u8; HEADER_LEN + pool_control::MAX_FRAME_LEN + 1];
        jumbo[0] = 0x08;
        jumbo[6] = 42;
        assert_eq!(decapsulate(42, &jumbo), Err(Refused::Malformed));
        // Reserved bits are ignored on receipt (RFC 7348, section 5).
        let mut reserved = datagram.clone();
        reserved[1] = 0xff;
        reserved[7] = 0xff;
        assert!(decapsulate(42, &reserved).is_ok());
    }

    #[test]
    fn settings_parse_with_defaults_and_bad_ones_say_why() {
        let parsed = config("local=192.0.2.1,remote=192.0.2.2,remote=192.0.2.3,vni=42");
        assert_eq!(parsed.port, DEFAULT_PORT);
        assert_eq!(parsed.remotes.len(), 2);
        assert_eq!(parsed.to_string().parse::<VxlanConfig>().unwrap(), parsed, "Display round-trips");
        assert_eq!(config("local=::1,remote=::2,vni=7,port=8472").port, 8472);
        for (bad, why) in [
            ("remote=192.0.2.2,vni=42", "no local"),
            ("local=192.0.2.1,vni=42", "no remote"),
            ("local=192.0.2.1,remote=192.0.2.2", "no vni"),
            ("local=192.0.2.1,remote=192.0.2.2,vni=16777216", "24 bits"),
            ("local=192.0.2.1,remote=192.0.2.2,vni=1,port=0", "port 0"),
            ("local=192.0.2.1,remote=host-b,vni=1", "not an IP address"),
            ("local=192.0.2.1,remote=::2,vni=1", "different IP versions"),
            ("local=192.0.2.1,remote=192.0.2.1,vni=1", "as a remote too"),
            ("local=192.0.2.1,remote=192.0.2.2,remote=192.0.2.2,vni=1", "twice"),
            ("local=192.0.2.1,remote=192.0.2.2,vni=1,ttl=3", "unknown VXLAN setting"),
            ("local", "key=value"),
        ] {
            let error = bad.parse::<VxlanConfig>().unwrap_err();
            assert!(error.contains(why), "{bad}: {error}");
        }
    }

    #[test]
    fn only_configured_remotes_are_heard_and_what_they_send_from_is_learned() {
        let mut peers = VxlanPeers::new(config("local=192.0.2.1,remote=192.0.2.2,remote=192.0.2.3,vni=42"));
        let datagram = hex(FROM_LINUX);
        let stranger: SocketAddr = "192.0.2.9:4789".parse().unwrap();
        assert_eq!(peers.receive(stranger, &datagram), Err(Refused::UnknownRemote));
        // Linux sends from a port of its choosing; the address is what counts,
        // also as an IPv4-mapped address on a dual-stack socket.
        let b: SocketAddr = "[::ffff:192.0.2.3]:60481".parse().unwrap();
        assert!(peers.receive(b, &datagram).is_ok());
        let source = Mac([0x4e, 0xe4, 0x69, 0x79, 0x11, 0xf3]);
        let mut reply = Vec::new();
        reply.extend_from_slice(&source.0);
        reply.extend_from_slice(&Mac::for_board(0).0);
        reply.extend_from_slice(&[0x88, 0xb5]);
        assert_eq!(peers.destinations(&reply), vec!["192.0.2.3:4789".parse::<SocketAddr>().unwrap()]);
        // Unknown unicast and broadcast go to every remote.
        reply[..6].copy_from_slice(&Mac::for_board(9).0);
        assert_eq!(peers.destinations(&reply).len(), 2);
        reply[..6].copy_from_slice(&[0xff; 6]);
        assert_eq!(peers.destinations(&reply).len(), 2);
        assert_eq!(peers.learned(), 1);
    }

    #[test]
    fn learning_is_bounded() {
        let mut peers = VxlanPeers::new(config("local=192.0.2.1,remote=192.0.2.2,vni=1"));
        let from: SocketAddr = "192.0.2.2:1".parse().unwrap();
        let mut datagram = vec![0x08, 0, 0, 0, 0, 0, 1, 0];
        datagram.extend_from_slice(&[0xff; 6]);
        datagram.extend_from_slice(&[0x52, 0, 0, 0, 0, 0]);
        datagram.extend_from_slice(&[0x88, 0xb5]);
        for i in 0..(MAX_LEARNED as u32 + 100) {
            datagram[HEADER_LEN + 8..HEADER_LEN + 12].copy_from_slice(&i.to_be_bytes());
            assert!(peers.receive(from, &datagram).is_ok(), "frames are taken when the table is full");
        }
        assert_eq!(peers.learned(), MAX_LEARNED);
    }
}

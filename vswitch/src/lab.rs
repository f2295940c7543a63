//! Two hosts on one machine, for the multi-host pool test and the bench: two
//! network namespaces (one per part of the pool) joined through a third that
//! holds a Linux bridge with two kernel `vxlan` devices, so that the parts
//! talk only through the kernel's VXLAN and bridge:
//!
//! - part A's namespace: `va0`, 192.0.2.1, one end of a veth pair;
//! - part B's namespace: `vb0`, 198.51.100.1, one end of another;
//! - the bridge's namespace: their other ends, `va1` 192.0.2.2 and `vb1`
//!   198.51.100.2; `vxa` (VNI 42, remote 192.0.2.1 through `va1`) and `vxb`
//!   (VNI 43, remote 198.51.100.1 through `vb1`), both ports of bridge `br0`.
//!
//! Each part's switch binds its uplink to its own address and names the
//! bridge's end of its veth pair as its remote.
//!
//! Linux refuses two `vxlan` devices with one VNI and one UDP port in one
//! namespace, so each leg has its own VNI (A uses 42, B 43) and the bridge
//! joins the two into one Ethernet segment. The addresses are documentation
//! ranges (RFC 5737) and exist only inside these namespaces.
//!
//! It needs root (`ip netns`), and says so when the kernel refuses.
//! Dropping a [`Lab`] deletes its namespaces, and with them every device in
//! them; namespaces a lab of a process that has died left behind are deleted
//! when the next lab is made.

use super::vxlan::{DEFAULT_PORT, VxlanConfig};
use anyhow::{Context, Result, bail};
use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::process::Command;

/// What every lab's namespace names start with (then the pid, then the role).
const PREFIX: &str = "amoeba-vx-";
/// Underlay MTU: a whole pool frame (1514 bytes) with the 50 bytes of
/// VXLAN, UDP, IP and Ethernet around it.
const UNDERLAY_MTU: u32 = 1600;
/// The vxlan devices' MTU: a pool frame's payload.
const OVERLAY_MTU: u32 = 1500;

/// One part's side of the lab.
#[derive(Clone, Debug)]
pub struct LabPart {
    /// The network namespace the part runs in (`ip netns exec NAME ...`).
    pub namespace: String,
    /// What its `--vxlan` says.
    pub vxlan: VxlanConfig,
}

/// The namespaces; deleted when dropped.
pub struct Lab {
    pub parts: [LabPart; 2],
    namespaces: Vec<String>,
}

/// One part's link to the bridge.
struct Leg {
    /// The part's address and the bridge's, on their veth pair.
    part: [u8; 4],
    bridge: [u8; 4],
    vni: u32,
    /// The veth pair's ends: in the part's namespace, in the bridge's.
    part_link: &'static str,
    bridge_link: &'static str,
    /// The bridge's vxlan device for this leg.
    device: &'static str,
}

const LEGS: [Leg; 2] = [
    Leg {
        part: [192, 0, 2, 1],
        bridge: [192, 0, 2, 2],
        vni: 42,
        part_link: "va0",
        bridge_link: "va1",
        device: "vxa",
    },
    Leg {
        part: [198, 51, 100, 1],
        bridge: [198, 51, 100, 2],
        vni: 43,
        part_link: "vb0",
        bridge_link: "vb1",
        device: "vxb",
    },
];

/// Runs `ip ARGS`; its error output in the error.
fn ip(args: &[&str]) -> Result<()> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .context("running `ip` (install iproute2: apt-get install iproute2)")?;
    if !output.status.success() {
        bail!("`ip {}` failed: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(())
}

/// Deletes the namespaces of labs whose process is gone.
fn delete_abandoned() {
    let Ok(output) = Command::new("ip").args(["netns", "list"]).output() else { return };
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else { continue };
        let Some(pid) = name.strip_prefix(PREFIX).and_then(|rest| rest.split('-').next()) else { continue };
        if !std::path::Path::new("/proc").join(pid).exists() {
            let _ = ip(&["netns", "delete", name]);
        }
    }
}

impl Lab {
    /// Makes the namespaces, links and devices; an error that says what the
    /// kernel refused.
    pub fn create() -> Result<Lab> {
        delete_abandoned();
        let id = std::process::id();
        // Labs of one process (a test and a bench in one run) get names of their own.
        static SERIAL: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let serial = SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = |role: &str| format!("{PREFIX}{id}-{serial}{role}");
        let (a, b, bridge) = (name("a"), name("b"), name("br"));
        let mut lab = Lab { parts: [part(&a, 0), part(&b, 1)], namespaces: Vec::new() };
        for namespace in [&a, &b, &bridge] {
            ip(&["netns", "add", namespace]).context(
                "cannot make a network namespace: the multi-host pool needs root and `ip netns` \
                 (iproute2)",
            )?;
            lab.namespaces.push(namespace.clone());
            ip(&["-n", namespace, "link", "set", "lo", "up"])?;
        }
        let mtu = UNDERLAY_MTU.to_string();
        let overlay_mtu = OVERLAY_MTU.to_string();
        ip(&["-n", &bridge, "link", "add", "br0", "type", "bridge"])
            .context("the kernel refused a bridge device")?;
        for (index, leg) in LEGS.iter().enumerate() {
            let namespace = &lab.parts[index].namespace;
            let (ours, theirs) =
                (Ipv4Addr::from(leg.part).to_string(), Ipv4Addr::from(leg.bridge).to_string());
            let (our_link, their_link) = (leg.part_link, leg.bridge_link);
            ip(&[
                "-n", namespace, "link", "add", our_link, "type", "veth", "peer", "name", their_link,
                "netns", &bridge,
            ])
            .context("the kernel refused a veth pair")?;
            ip(&["-n", namespace, "link", "set", our_link, "mtu", &mtu, "up"])?;
            ip(&["-n", namespace, "addr", "add", &format!("{ours}/24"), "dev", our_link])?;
            ip(&["-n", &bridge, "link", "set", their_link, "mtu", &mtu, "up"])?;
            ip(&["-n", &bridge, "addr", "add", &format!("{theirs}/24"), "dev", their_link])?;
            let (vni, port) = (leg.vni.to_string(), DEFAULT_PORT.to_string());
            ip(&[
                "-n", &bridge, "link", "add", leg.device, "type", "vxlan", "id", &vni, "local", &theirs,
                "remote", &ours, "dstport", &port, "dev", their_link,
            ])
            .context("the kernel refused a vxlan device")?;
            ip(&["-n", &bridge, "link", "set", leg.device, "mtu", &overlay_mtu, "master", "br0", "up"])?;
        }
        ip(&["-n", &bridge, "link", "set", "br0", "up"])?;
        Ok(lab)
    }
}

fn part(namespace: &str, index: usize) -> LabPart {
    let leg = &LEGS[index];
    let vxlan = VxlanConfig {
        local: IpAddr::V4(Ipv4Addr::from(leg.part)),
        remotes: vec![IpAddr::V4(Ipv4Addr::from(leg.bridge))],
        vni: leg.vni,
        port: DEFAULT_PORT,
    };
    LabPart { namespace: namespace.to_string(), vxlan }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for namespace in self.namespaces.iter().rev() {
            if let Err(error) = ip(&["netns", "delete", namespace]) {
                eprintln!("lab: {error:#}");
            }
        }
    }
}

/// Binds the uplink socket of `config` inside the network namespace
/// `namespace` (a name `ip netns` knows), from a thread that enters it and
/// ends; the socket stays in that namespace.
pub fn bind_in_namespace(namespace: &str, config: &VxlanConfig) -> Result<UdpSocket> {
    use std::os::fd::AsRawFd;
    let path = std::path::Path::new("/run/netns").join(namespace);
    let handle = std::fs::File::open(&path)
        .with_context(|| format!("opening network namespace {} (is it made?)", path.display()))?;
    let config = config.clone();
    std::thread::spawn(move || {
        // SAFETY: setns only changes this thread's network namespace to the
        // one `handle` (an open namespace file) refers to; it touches no memory.
        if unsafe { libc::setns(handle.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(anyhow::anyhow!(
                "entering network namespace {}: {}",
                path.display(),
                std::io::Error::last_os_error()
            ));
        }
        super::uplink::bind(&config)
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the thread binding in namespace {namespace} panicked"))?
}

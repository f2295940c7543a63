//! The switch's VXLAN uplink on a UDP socket: the thin I/O around `vxlan`
//! (formats, which remote) and `core` (where a frame goes). One thread
//! receives datagrams, checks them and switches their frames like any port's;
//! one thread takes the frames the core sends to the uplink, encapsulates
//! them and sends them to their remotes. Counters, not log lines, say what
//! was refused.

use super::vxlan::{self, Refused, VxlanConfig, VxlanPeers};
use super::{PORT_QUEUE, Shared};
use anyhow::{Context, Result};
use std::io::ErrorKind;
use std::net::UdpSocket;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// How often the receiving thread looks whether the switch is stopping.
const STOP_POLL: Duration = Duration::from_millis(200);
/// Largest datagram read (the UDP maximum); longer frames than a pool frame
/// inside it are refused by `vxlan::decapsulate`.
const DATAGRAM_BUFFER: usize = 65_536;

/// What the uplink has done since it started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UplinkStats {
    /// The port's name (`vx0`) and its setting.
    pub name: String,
    pub config: Option<VxlanConfig>,
    pub datagrams_in: u64,
    pub datagrams_out: u64,
    pub refused_unknown_remote: u64,
    pub refused_wrong_vni: u64,
    pub refused_malformed: u64,
    /// Datagrams the kernel would not send (no route, buffer full, ...).
    pub send_errors: u64,
    /// MACs known to be behind a remote.
    pub learned: usize,
}

impl std::fmt::Display for UplinkStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let config = self.config.as_ref().map_or_else(String::new, |c| format!(" (vxlan {c})"));
        write!(
            f,
            "uplink {}{config}: {} datagrams in, {} out, {} remote MACs; refused: {} from unknown remotes, \
             {} wrong VNI, {} malformed; {} send errors",
            self.name,
            self.datagrams_in,
            self.datagrams_out,
            self.learned,
            self.refused_unknown_remote,
            self.refused_wrong_vni,
            self.refused_malformed,
            self.send_errors
        )
    }
}

/// Binds the uplink's UDP socket to `config`'s local address and port, with
/// the likely causes in the error.
pub fn bind(config: &VxlanConfig) -> Result<UdpSocket> {
    let endpoint = config.local_endpoint();
    UdpSocket::bind(endpoint).map_err(|error| {
        let hint = match error.kind() {
            ErrorKind::AddrNotAvailable => {
                format!("{} is not an address of this host (see `ip addr`)", config.local)
            }
            ErrorKind::AddrInUse => format!(
                "UDP port {} is taken on {} (another pool, or a kernel vxlan device with this dstport); \
                 choose another with port=",
                config.port, config.local
            ),
            _ => String::from("check the local address and port"),
        };
        anyhow::anyhow!("cannot open the VXLAN endpoint {endpoint}: {error}; {hint}")
    })
}

/// Makes `socket` the uplink port `name` of the switch in `shared`.
pub(super) fn attach(shared: &Arc<Shared>, name: &str, config: VxlanConfig, socket: UdpSocket) -> Result<()> {
    socket.set_read_timeout(Some(STOP_POLL)).context("setting the VXLAN socket's timeout")?;
    let port = shared.core.lock().unwrap_or_else(|p| p.into_inner()).add_uplink_port(name);
    *shared.uplink.lock().unwrap_or_else(|p| p.into_inner()) =
        Some(UplinkStats { name: name.to_string(), config: Some(config.clone()), ..Default::default() });
    let peers = Arc::new(Mutex::new(VxlanPeers::new(config.clone())));
    let (sender, receiver) = mpsc::sync_channel::<Vec<u8>>(PORT_QUEUE);
    shared.writers.lock().unwrap_or_else(|p| p.into_inner()).insert(port, sender);

    let (tx_shared, tx_peers, tx_socket) = (shared.clone(), peers.clone(), socket.try_clone()?);
    thread::Builder::new().name(format!("switch-tx-{name}")).spawn(move || {
        let mut datagram = Vec::new();
        for frame in receiver {
            let destinations = tx_peers.lock().unwrap_or_else(|p| p.into_inner()).destinations(&frame);
            if vxlan::encapsulate(config.vni, &frame, &mut datagram).is_err() {
                count(&tx_shared, |stats| stats.send_errors += 1);
                continue;
            }
            for destination in destinations {
                let sent = tx_socket.send_to(&datagram, destination).is_ok();
                count(
                    &tx_shared,
                    |stats| if sent { stats.datagrams_out += 1 } else { stats.send_errors += 1 },
                );
            }
        }
    })?;

    let shared = shared.clone();
    thread::Builder::new().name(format!("switch-rx-{name}")).spawn(move || {
        let mut buffer = vec![0u8; DATAGRAM_BUFFER];
        while !shared.stopping.load(Ordering::Acquire) {
            let (len, from) = match socket.recv_from(&mut buffer) {
                Ok(received) => received,
                Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
                Err(error) if error.kind() == ErrorKind::Interrupted => continue,
                // An ICMP error for an earlier send (a remote not listening yet).
                Err(error) if error.kind() == ErrorKind::ConnectionRefused => continue,
                Err(_) => break,
            };
            let mut peers = peers.lock().unwrap_or_else(|p| p.into_inner());
            let taken = peers.receive(from, &buffer[..len]);
            let learned = peers.learned();
            drop(peers);
            count(&shared, |stats| {
                stats.learned = learned;
                match taken {
                    Ok(_) => stats.datagrams_in += 1,
                    Err(Refused::UnknownRemote) => stats.refused_unknown_remote += 1,
                    Err(Refused::WrongVni) => stats.refused_wrong_vni += 1,
                    Err(Refused::Malformed) => stats.refused_malformed += 1,
                }
            });
            if let Ok(frame) = taken {
                super::forward(&shared, port, frame);
            }
        }
        shared.core.lock().unwrap_or_else(|p| p.into_inner()).remove_port(port);
        shared.writers.lock().unwrap_or_else(|p| p.into_inner()).remove(&port);
    })?;
    Ok(())
}

fn count(shared: &Shared, update: impl FnOnce(&mut UplinkStats)) {
    if let Some(stats) = shared.uplink.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
        update(stats);
    }
}

//! The virtual Ethernet switch. Every board's `virtio-net-device` connects
//! with `-netdev stream` to its own UNIX socket; host programs connect to
//! one shared host socket and each connection becomes one more port, whose
//! MAC the switch chooses and tells the station in a first `PortAssigned`
//! frame (see `core` for the F-box rules).
//!
//! A part of a pool that spans hosts also has an uplink: a VXLAN segment
//! (`vxlan`, `uplink`) to the other parts, byte-compatible with the Linux
//! kernel's `vxlan` device.
//!
//! Threads: one acceptor per listening socket, one reader and one writer per
//! connected port (the uplink's on its UDP socket), and one timer thread for
//! delayed (faulted) frames. A slow port never stalls the others: its bounded
//! queue overflows and the frame is dropped, as on a real switch.

pub mod core;
pub mod faults;
pub mod framing;
pub mod lab;
pub mod uplink;
pub mod vxlan;

pub use self::core::SWITCH_MAC;
use self::core::{Delivery, PortId, SwitchCore, SwitchStats};
use anyhow::{Context, Result, bail};
use faults::FaultConfig;
use pool_control::{MAX_FRAME_LEN, Mac, Message, encode_frame};
use std::collections::{BinaryHeap, HashMap};
use std::io::BufReader;
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};
pub use uplink::UplinkStats;
pub use vxlan::VxlanConfig;

/// Frames queued for one port before the switch starts dropping.
const PORT_QUEUE: usize = 1024;

/// Longest UNIX socket path the kernel accepts (sun_path less the NUL).
pub const MAX_SOCKET_PATH: usize = 107;

struct Shared {
    core: Mutex<SwitchCore>,
    /// The uplink's counters, if the switch has one.
    uplink: Mutex<Option<UplinkStats>>,
    writers: Mutex<HashMap<PortId, SyncSender<Vec<u8>>>>,
    streams: Mutex<Vec<UnixStream>>,
    delayed: Mutex<BinaryHeap<Delayed>>,
    delayed_ready: Condvar,
    stopping: AtomicBool,
}

struct Delayed {
    due: Instant,
    delivery: Delivery,
}

impl PartialEq for Delayed {
    fn eq(&self, other: &Self) -> bool {
        self.due == other.due
    }
}
impl Eq for Delayed {}
impl PartialOrd for Delayed {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Delayed {
    /// Earliest first in the max-heap.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.due.cmp(&self.due)
    }
}

/// A running switch; dropping it stops every thread and removes its sockets.
pub struct Switch {
    shared: Arc<Shared>,
    listeners: Vec<PathBuf>,
}

/// A cheap handle to inspect and steer a running switch.
#[derive(Clone)]
pub struct SwitchHandle {
    shared: Arc<Shared>,
}

impl SwitchHandle {
    pub fn faults(&self) -> FaultConfig {
        self.shared.core.lock().unwrap().faults().clone()
    }

    pub fn set_faults(&self, faults: FaultConfig) {
        self.shared.core.lock().unwrap().set_faults(faults);
    }

    /// Applies a textual fault change (see [`FaultConfig::apply`]).
    pub fn apply_faults(&self, spec: &str) -> Result<FaultConfig, String> {
        let mut core = self.shared.core.lock().unwrap();
        let mut faults = core.faults().clone();
        faults.apply(spec)?;
        core.set_faults(faults.clone());
        Ok(faults)
    }

    pub fn stats(&self) -> SwitchStats {
        self.shared.core.lock().unwrap().stats.clone()
    }

    /// The uplink's counters, if this switch has one.
    pub fn uplink_stats(&self) -> Option<UplinkStats> {
        self.shared.uplink.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

fn check_socket_path(path: &Path) -> Result<()> {
    let len = path.as_os_str().len();
    if len > MAX_SOCKET_PATH {
        bail!(
            "socket path {} is {len} bytes, longer than the {MAX_SOCKET_PATH} a UNIX socket allows; \
             use a shorter run directory (--run-dir)",
            path.display()
        );
    }
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            bail!(
                "socket path {} is taken: another pool (or program) is listening on it; \
                 stop it (`just down`) or choose another run directory",
                path.display()
            );
        }
        std::fs::remove_file(path).with_context(|| format!("removing stale socket {}", path.display()))?;
    }
    Ok(())
}

impl Switch {
    /// Creates a switch with no ports yet.
    pub fn new(faults: FaultConfig, seed: u64) -> Self {
        Self::for_part(faults, seed, 0)
    }

    /// Creates a switch with no ports yet for the part of a pool whose first
    /// board is `first_board` (host stations' MACs follow from it, so that the
    /// parts of a pool across hosts never give one out twice).
    pub fn for_part(faults: FaultConfig, seed: u64, first_board: u16) -> Self {
        // Attachments count up from the start in Unix seconds: they grow
        // across runs of the pool too (unless more than one per second were
        // made), and fit FLIP's 32-bit incarnations until 2106.
        let now_s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let mut core = SwitchCore::new(faults, seed, now_s);
        core.set_part(first_board);
        let shared = Arc::new(Shared {
            core: Mutex::new(core),
            uplink: Mutex::new(None),
            writers: Mutex::new(HashMap::new()),
            streams: Mutex::new(Vec::new()),
            delayed: Mutex::new(BinaryHeap::new()),
            delayed_ready: Condvar::new(),
            stopping: AtomicBool::new(false),
        });
        let timer_shared = shared.clone();
        thread::Builder::new()
            .name("switch-delay".into())
            .spawn(move || run_delay_timer(&timer_shared))
            .expect("spawning a thread");
        Self { shared, listeners: Vec::new() }
    }

    pub fn handle(&self) -> SwitchHandle {
        SwitchHandle { shared: self.shared.clone() }
    }

    /// Listens on `path` for one board's QEMU, whose NIC has `mac`; every
    /// (re)connection becomes port `name`, which may send from `mac` only.
    /// Returns once the socket exists, so QEMU can be started.
    pub fn listen_board(&mut self, path: &Path, name: &str, mac: Mac) -> Result<()> {
        self.shared.core.lock().unwrap_or_else(|p| p.into_inner()).reserve_mac(mac);
        let name = name.to_string();
        self.listen(path, move |shared, stream| attach_board(shared, stream, &name, mac))
    }

    /// Listens on `path` for host stations; connection k becomes port `h<k>`
    /// with a MAC of the switch's choice.
    pub fn listen_hosts(&mut self, path: &Path) -> Result<()> {
        self.listen(path, attach_host)
    }

    fn listen(
        &mut self,
        path: &Path,
        attach: impl Fn(&Arc<Shared>, UnixStream) -> Result<()> + Send + 'static,
    ) -> Result<()> {
        check_socket_path(path)?;
        let listener =
            UnixListener::bind(path).with_context(|| format!("listening on {}", path.display()))?;
        self.listeners.push(path.to_path_buf());
        let shared = self.shared.clone();
        thread::Builder::new().name("switch-accept".into()).spawn(move || {
            for stream in listener.incoming() {
                if shared.stopping.load(Ordering::Acquire) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                if let Err(error) = attach(&shared, stream) {
                    eprintln!("switch: cannot attach a port: {error}");
                }
            }
        })?;
        Ok(())
    }

    /// Joins the VXLAN segment of `config` through `socket` (see
    /// [`uplink::bind`]) as the uplink port `name` (`vx0`): frames for MACs
    /// that are not local, and broadcasts, go to the remotes; frames from them
    /// are switched here.
    pub fn attach_vxlan(&self, name: &str, config: VxlanConfig, socket: std::net::UdpSocket) -> Result<()> {
        uplink::attach(&self.shared, name, config, socket)
    }

    /// Connects one in-process port directly (for host clients in the same
    /// program); returns the other end of the connection.
    pub fn connect_host(&self) -> Result<UnixStream> {
        let (ours, theirs) = UnixStream::pair()?;
        attach_host(&self.shared, ours)?;
        Ok(theirs)
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::Release);
        self.shared.delayed_ready.notify_all();
        for path in &self.listeners {
            // Wake the acceptor so it sees `stopping`.
            let _ = UnixStream::connect(path);
            let _ = std::fs::remove_file(path);
        }
        for stream in self.shared.streams.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
        self.shared.writers.lock().unwrap().clear();
    }
}

/// A board's QEMU connected: its port may send from `mac` only.
fn attach_board(shared: &Arc<Shared>, stream: UnixStream, name: &str, mac: Mac) -> Result<()> {
    let port = shared.core.lock().unwrap().add_board_port(name, mac);
    attach_port(shared, stream, port, name, None)
}

/// A host station connected: it gets a MAC and an attachment number, told in
/// its first frame.
fn attach_host(shared: &Arc<Shared>, stream: UnixStream) -> Result<()> {
    let (attachment, name) = {
        let mut core = shared.core.lock().unwrap();
        let attachment = core.add_host_port().context("every host station MAC of this switch is taken")?;
        let name = core.port_name(attachment.port).unwrap_or("h?").to_string();
        (attachment, name)
    };
    let mut greeting = [0u8; MAX_FRAME_LEN];
    let assigned = Message::PortAssigned { mac: attachment.mac, attachment: attachment.attachment };
    let len = encode_frame(&mut greeting, attachment.mac, SWITCH_MAC, &assigned)
        .map_err(|_| anyhow::anyhow!("the port assignment does not fit a frame"))?;
    attach_port(shared, stream, attachment.port, &name, Some(greeting[..len].to_vec()))
}

/// Starts the threads of `port` on `stream`; `greeting` goes out first.
fn attach_port(
    shared: &Arc<Shared>,
    stream: UnixStream,
    port: PortId,
    name: &str,
    greeting: Option<Vec<u8>>,
) -> Result<()> {
    let (sender, receiver) = mpsc::sync_channel::<Vec<u8>>(PORT_QUEUE);
    if let Some(greeting) = greeting {
        sender.try_send(greeting).map_err(|_| anyhow::anyhow!("a new port's queue is full"))?;
    }
    shared.writers.lock().unwrap().insert(port, sender);
    shared.streams.lock().unwrap().push(stream.try_clone()?);

    let mut writer = stream.try_clone()?;
    thread::Builder::new().name(format!("switch-tx-{name}")).spawn(move || {
        for frame in receiver {
            if framing::write_frame(&mut writer, &frame).is_err() {
                break;
            }
        }
    })?;

    let shared = shared.clone();
    thread::Builder::new().name(format!("switch-rx-{name}")).spawn(move || {
        let mut reader = BufReader::new(stream);
        while let Ok(Some(frame)) = framing::read_frame(&mut reader) {
            if shared.stopping.load(Ordering::Acquire) {
                break;
            }
            forward(&shared, port, &frame);
        }
        shared.core.lock().unwrap().remove_port(port);
        shared.writers.lock().unwrap().remove(&port);
    })?;
    Ok(())
}

/// Switches `frame`, which arrived on `port`: every copy out now or, if the
/// faults delay it, later.
fn forward(shared: &Shared, port: PortId, frame: &[u8]) {
    let deliveries = shared.core.lock().unwrap_or_else(|p| p.into_inner()).handle(port, frame);
    for delivery in deliveries {
        if delivery.delay.is_zero() {
            send_now(shared, delivery);
        } else {
            let due = Instant::now() + delivery.delay;
            shared.delayed.lock().unwrap_or_else(|p| p.into_inner()).push(Delayed { due, delivery });
            shared.delayed_ready.notify_one();
        }
    }
}

fn send_now(shared: &Shared, delivery: Delivery) {
    let writers = shared.writers.lock().unwrap();
    let Some(writer) = writers.get(&delivery.port) else {
        return;
    };
    if let Err(TrySendError::Full(_)) = writer.try_send(delivery.frame) {
        drop(writers);
        shared.core.lock().unwrap().stats.dropped_queue_full += 1;
    }
}

fn run_delay_timer(shared: &Shared) {
    let mut queue = shared.delayed.lock().unwrap();
    while !shared.stopping.load(Ordering::Acquire) {
        let now = Instant::now();
        match queue.peek() {
            Some(next) if next.due <= now => {
                let Delayed { delivery, .. } = queue.pop().expect("peeked");
                drop(queue);
                send_now(shared, delivery);
                queue = shared.delayed.lock().unwrap();
            }
            Some(next) => {
                let wait = next.due - now;
                queue = shared.delayed_ready.wait_timeout(queue, wait).unwrap().0;
            }
            None => {
                queue = shared.delayed_ready.wait_timeout(queue, Duration::from_millis(200)).unwrap().0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_path_in_use_is_refused_and_a_stale_one_replaced() {
        let dir = tempfile::tempdir_in("/tmp").unwrap();
        let path = dir.path().join("b0.sock");
        let mut first = Switch::new(FaultConfig::default(), 1);
        first.listen_board(&path, "b0", Mac::for_board(0)).unwrap();
        let mut second = Switch::new(FaultConfig::default(), 1);
        let error = second.listen_board(&path, "b0", Mac::for_board(0)).unwrap_err().to_string();
        assert!(error.contains("is taken"), "{error}");
        drop(first);
        // A leftover socket file nobody listens on is replaced.
        let _stale = std::os::unix::net::UnixListener::bind(dir.path().join("b1.sock")).map(drop);
        second.listen_board(&dir.path().join("b1.sock"), "b1", Mac::for_board(1)).unwrap();
    }

    #[test]
    fn overlong_socket_paths_are_refused_clearly() {
        let long = PathBuf::from(format!("/tmp/{}/b0.sock", "x".repeat(120)));
        let error =
            Switch::new(FaultConfig::default(), 1).listen_board(&long, "b0", Mac::for_board(0)).unwrap_err();
        assert!(error.to_string().contains("longer than"), "{error}");
    }
}

//! The host as an RPC server on the pool: a thread with its own switch port and
//! `flip` endpoint that serves one get-port with a handler (a generated `dispatch`,
//! usually), like a server process on a board. The TTY server is one.

use crate::host_port::HostPort;
use crate::rpc_client::pool_config;
use amoeba_abi::{GetPort, Header, Port};
use flip::{Endpoint, Event};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What answers each request.
pub type Handler = Box<dyn FnMut(&Header, &[u8]) -> (Header, Vec<u8>) + Send>;

/// A running host-side server; stops when dropped.
pub struct RpcServer {
    port: Port,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RpcServer {
    /// Serves put-port F(`get`) on `host_port` with `handler`, in a thread.
    pub fn start(host_port: HostPort, get: GetPort, handler: Handler) -> RpcServer {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let port = get.put_port();
        let thread = std::thread::Builder::new()
            .name("host-rpc-server".into())
            .spawn(move || serve(host_port, get, handler, &stopped))
            .expect("spawning the host RPC server thread");
        RpcServer { port, stop, thread: Some(thread) }
    }

    /// The put-port it serves.
    pub fn port(&self) -> Port {
        self.port
    }
}

impl Drop for RpcServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(host_port: HostPort, get: GetPort, mut handler: Handler, stop: &AtomicBool) {
    let incarnation = host_port.flip_incarnation();
    let mut endpoint = Endpoint::new(flip::Mac(host_port.mac().0), incarnation, pool_config());
    endpoint.register_server(&get);
    let epoch = Instant::now();
    let now = || epoch.elapsed().as_micros() as u64;
    while !stop.load(Ordering::Relaxed) {
        while let Some(event) = endpoint.poll_event() {
            if let Event::RequestArrived { req, header, buf, .. } = event {
                let (reply, data) = handler(&header, &buf);
                let _ = endpoint.put_reply(now(), req, &reply, &data);
            }
        }
        // After the replies: a reply must not wait for the next frame or timeout.
        while let Some(transmit) = endpoint.poll_transmit() {
            if host_port.send_frame(&transmit.frame).is_err() {
                return; // the pool is gone
            }
        }
        let wait = endpoint
            .next_deadline()
            .map_or(Duration::from_millis(50), |deadline| {
                Duration::from_micros(deadline.saturating_sub(now()))
            })
            .clamp(Duration::from_micros(100), Duration::from_millis(50));
        if let Some(frame) = host_port.recv_timeout(wait) {
            endpoint.handle_frame(now(), &frame);
        }
        endpoint.handle_timeout(now());
    }
}

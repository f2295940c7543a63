//! A host station that answers echo requests, as a board does: the baseline
//! that measures the switch and the host side alone (benchmarks, tests).

use crate::host_port::HostPort;
use pool_control::{Frame, Message};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// A host port that answers echo requests, as a board does: the baseline
/// that measures the switch and the host side alone.
pub struct EchoResponder {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    mac: pool_control::Mac,
}

impl EchoResponder {
    pub fn start(port: HostPort) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let mac = port.mac();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                let Some(frame) = port.recv_timeout(Duration::from_millis(50)) else {
                    continue;
                };
                let Ok(parsed) = Frame::parse(&frame) else {
                    continue;
                };
                if let Ok(Message::EchoRequest { id, payload }) = parsed.message() {
                    let _ = port.send(parsed.source, &Message::EchoReply { id, payload });
                }
            }
        });
        Self { stop, thread: Some(thread), mac }
    }

    pub fn mac(&self) -> pool_control::Mac {
        self.mac
    }
}

impl Drop for EchoResponder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

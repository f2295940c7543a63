//! The host on the wire: one port of the switch, through which the host
//! program speaks to the boards like any other station on the Ethernet.

use anyhow::{Context, Result};
use pool_control::{BROADCAST, BoardCounters, Frame, MAX_FRAME_LEN, Mac, Message, encode_frame};
use std::io::BufReader;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};
use vswitch::framing;

/// What a board says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BoardReport {
    pub board_id: u16,
    pub incarnation: u32,
    pub role: String,
    /// Time since boot, counted by the board's timer interrupts.
    pub uptime: Duration,
}

/// One reading of a board's clock, bracketed by the host's clock.
#[derive(Clone, Copy, Debug)]
pub struct ClockReading {
    /// When the host sent the query.
    pub sent: Instant,
    /// When the host had the reply.
    pub received: Instant,
    /// The board's microseconds since boot, read somewhere in between.
    pub board_micros: u64,
}

fn next_request_id() -> u32 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

pub struct HostPort {
    /// The MAC the switch gave this station (it drops frames from any other).
    mac: Mac,
    /// The switch's number for this attachment: no other attachment to the
    /// same switch has it, and it grows with every one.
    attachment: u64,
    writer: Mutex<UnixStream>,
    frames: Receiver<Vec<u8>>,
    backlog: Mutex<std::collections::VecDeque<Vec<u8>>>,
}

fn parse_message(frame: &[u8]) -> Option<(Mac, Message<'_>)> {
    let parsed = Frame::parse(frame).ok()?;
    Some((parsed.source, parsed.message().ok()?))
}

/// How long a new station waits for the switch to say which MAC it has.
const ASSIGNMENT_TIMEOUT: Duration = Duration::from_secs(10);

impl HostPort {
    /// Connects to a running switch's host socket.
    pub fn connect(path: &Path) -> Result<Self> {
        let stream = UnixStream::connect(path)
            .with_context(|| format!("connecting to the switch at {}", path.display()))?;
        Self::from_stream(stream)
    }

    /// Wraps an already connected stream (see `Switch::connect_host`): waits
    /// for the switch's first frame, which says the station's MAC.
    pub fn from_stream(stream: UnixStream) -> Result<Self> {
        let (sender, frames) = mpsc::channel();
        let mut reader = BufReader::new(stream.try_clone()?);
        thread::Builder::new().name("host-port-rx".into()).spawn(move || {
            while let Ok(Some(frame)) = framing::read_frame(&mut reader) {
                if sender.send(frame).is_err() {
                    break;
                }
            }
        })?;
        let deadline = Instant::now() + ASSIGNMENT_TIMEOUT;
        let (mac, attachment) = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let frame = frames
                .recv_timeout(left)
                .map_err(|_| anyhow::anyhow!("the switch did not give this station a MAC"))?;
            if let Some((_, Message::PortAssigned { mac, attachment })) = parse_message(&frame) {
                break (mac, attachment);
            }
        };
        Ok(Self { mac, attachment, writer: Mutex::new(stream), frames, backlog: Mutex::default() })
    }

    pub fn mac(&self) -> Mac {
        self.mac
    }

    /// The switch's number for this attachment (unique per switch, growing).
    pub fn attachment(&self) -> u64 {
        self.attachment
    }

    /// The attachment as FLIP's 32-bit incarnation (attachments count up
    /// from the switch's start in Unix seconds, so they fit until 2106).
    pub fn flip_incarnation(&self) -> u32 {
        u32::try_from(self.attachment).unwrap_or(u32::MAX).max(1)
    }

    pub fn send_frame(&self, frame: &[u8]) -> Result<()> {
        framing::write_frame(&mut *self.writer.lock().unwrap(), frame).context("sending to the switch")
    }

    pub fn send(&self, destination: Mac, message: &Message<'_>) -> Result<()> {
        let mut buf = [0u8; MAX_FRAME_LEN];
        let len = encode_frame(&mut buf, destination, self.mac, message)
            .map_err(|_| anyhow::anyhow!("message does not fit one frame"))?;
        self.send_frame(&buf[..len])
    }

    /// The next frame the switch delivered to this port, whatever its
    /// destination (to check what a station can see).
    pub fn recv_any_timeout(&self, timeout: Duration) -> Option<Vec<u8>> {
        self.frames.recv_timeout(timeout).ok()
    }

    /// The next frame addressed to this port (or broadcast), if one comes in time.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.frames.recv_timeout(left) {
                Ok(frame) => {
                    let for_us = Frame::parse(&frame)
                        .is_ok_and(|f| f.destination == self.mac || f.destination.is_multicast());
                    if for_us {
                        return Some(frame);
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// Waits for the first pool control message `pick` accepts.
    pub fn wait_for<T>(
        &self,
        timeout: Duration,
        mut pick: impl FnMut(Mac, &Message<'_>) -> Option<T>,
    ) -> Option<T> {
        // Messages another caller may still want (an exit notice that came
        // while waiting for a different one) wait in the backlog.
        let mut picked = None;
        self.backlog.lock().unwrap().retain(|frame| {
            if picked.is_some() {
                return true;
            }
            let Some((source, message)) = parse_message(frame) else { return false };
            picked = pick(source, &message);
            picked.is_none()
        });
        if picked.is_some() {
            return picked;
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let frame = self.recv_timeout(left)?;
            let Some((source, message)) = parse_message(&frame) else { continue };
            if let Some(value) = pick(source, &message) {
                return Some(value);
            }
            // A reply nobody waits for is stale.
        }
    }

    /// One frame echo round trip to `target`; the round-trip time if answered.
    pub fn echo(&self, target: Mac, id: u32, payload: &[u8], timeout: Duration) -> Result<Option<Duration>> {
        let start = Instant::now();
        self.send(target, &Message::EchoRequest { id, payload })?;
        Ok(self.wait_for(timeout, |source, message| match message {
            Message::EchoReply { id: reply_id, payload: reply }
                if source == target && *reply_id == id && *reply == payload =>
            {
                Some(start.elapsed())
            }
            _ => None,
        }))
    }

    /// Asks one board for its status (a unicast `Discover`).
    pub fn board_status(&self, target: Mac, timeout: Duration) -> Result<Option<BoardReport>> {
        self.send(target, &Message::Discover)?;
        Ok(self.wait_for(timeout, |source, message| match message {
            Message::Ready(status) if source == target => Some(BoardReport {
                board_id: status.board_id,
                incarnation: status.incarnation,
                role: status.role.to_string(),
                uptime: Duration::from_millis(status.uptime_ms as u64),
            }),
            _ => None,
        }))
    }

    /// Reads board `target`'s clock (the one user programs see as
    /// `amoeba_rt::time::now_us`); `None` if it did not answer in time.
    pub fn board_clock(&self, target: Mac, timeout: Duration) -> Result<Option<ClockReading>> {
        let id = next_request_id();
        let sent = Instant::now();
        self.send(target, &Message::TimeQuery { id })?;
        Ok(self.wait_for(timeout, |source, message| match message {
            Message::TimeReply { id: reply_id, micros } if source == target && *reply_id == id => {
                Some(ClockReading { sent, received: Instant::now(), board_micros: *micros })
            }
            _ => None,
        }))
    }

    /// Reads board `target`'s work counters (instructions, its driver's
    /// frames); `None` if it did not answer in time.
    pub fn board_counters(&self, target: Mac, timeout: Duration) -> Result<Option<BoardCounters>> {
        let id = next_request_id();
        self.send(target, &Message::CounterQuery { id })?;
        Ok(self.wait_for(timeout, |source, message| match message {
            Message::Counters { id: reply_id, counters } if source == target && *reply_id == id => {
                Some(*counters)
            }
            _ => None,
        }))
    }

    /// Broadcasts an echo request; returns who answered within `timeout`.
    pub fn broadcast_echo(&self, id: u32, timeout: Duration) -> Result<Vec<Mac>> {
        self.send(BROADCAST, &Message::EchoRequest { id, payload: b"broadcast" })?;
        let mut answered = Vec::new();
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let source = self.wait_for(left, |source, message| match message {
                Message::EchoReply { id: reply_id, .. } if *reply_id == id => Some(source),
                _ => None,
            });
            match source {
                Some(mac) if !answered.contains(&mac) => answered.push(mac),
                Some(_) => {}
                None => break,
            }
        }
        answered.sort();
        Ok(answered)
    }

    /// Asks board `via` to echo board `target`; whether the result came back.
    pub fn peer_echo(&self, via: Mac, target: Mac, id: u32, timeout: Duration) -> Result<bool> {
        Ok(self.peer_echo_round_trip(via, target, id, timeout)?.is_some())
    }

    /// Asks board `via` to echo board `target`; the round trip `via` timed
    /// between the two boards, if the result came back within `timeout`.
    pub fn peer_echo_round_trip(
        &self,
        via: Mac,
        target: Mac,
        id: u32,
        timeout: Duration,
    ) -> Result<Option<Duration>> {
        self.send(via, &Message::PeerEcho { id, target })?;
        Ok(self.wait_for(timeout, |source, message| match message {
            Message::PeerEchoResult { id: result_id, target: result_target, round_trip_us }
                if source == via && *result_id == id && *result_target == target =>
            {
                Some(Duration::from_micros(u64::from(*round_trip_us)))
            }
            _ => None,
        }))
    }
}

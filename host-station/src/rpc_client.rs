//! The host as an RPC client on the pool: the same `flip` endpoint the
//! nucleus runs, driven here by one host port of the switch, like an Amoeba
//! workstation with a FLIP driver.

use crate::host_port::HostPort;
use amoeba_abi::{Capability, Header, Status};
use amoeba_ipc::interface::Transport;
use amoeba_ipc::interfaces::standard;
use anyhow::Result;
use flip::{Config, Endpoint, Event, TransId};
use std::time::{Duration, Instant};

/// FLIP settings for the pool: the switch may lose a third of all frames
/// (fault injection), so a transaction keeps retrying for about 10 s before
/// it declares its server dead.
pub fn pool_config() -> Config {
    Config::for_lossy_network()
}

pub struct RpcClient {
    port: HostPort,
    endpoint: Endpoint,
    epoch: Instant,
    /// When calls through [`Transport`] give up (`None`: never).
    pub deadline: Option<Instant>,
}

impl RpcClient {
    /// A client on its own host port. Its incarnation is the switch's number
    /// for the port's attachment, which no other attachment has and which
    /// grows with each (the MAC may be one an earlier station had).
    pub fn new(port: HostPort) -> Self {
        let incarnation = port.flip_incarnation();
        let endpoint = Endpoint::new(flip::Mac(port.mac().0), incarnation, pool_config());
        Self { port, endpoint, epoch: Instant::now(), deadline: None }
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    fn flush(&mut self) -> Result<()> {
        while let Some(transmit) = self.endpoint.poll_transmit() {
            self.port.send_frame(&transmit.frame)?;
        }
        Ok(())
    }

    /// One transaction: the reply header and buffer, or the RPC status
    /// (`RpcNotFound`, `RpcFailure`, `ServerRestarted`, ...).
    pub fn trans(&mut self, header: &Header, buf: &[u8]) -> Result<Result<(Header, Vec<u8>), Status>> {
        self.trans_until(header, buf, None)
    }

    /// Like [`RpcClient::trans`], but gives up at `deadline` (`RpcAborted`).
    pub fn trans_until(
        &mut self,
        header: &Header,
        buf: &[u8],
        deadline: Option<Instant>,
    ) -> Result<Result<(Header, Vec<u8>), Status>> {
        let now = self.now();
        let id = self.endpoint.start_trans(now, header, buf);
        loop {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                self.endpoint.abort_trans(id);
                return Ok(Err(Status::RpcAborted));
            }
            self.flush()?;
            while let Some(event) = self.endpoint.poll_event() {
                if let Event::TransDone { id: done, result } = event
                    && done == id
                {
                    return Ok(result);
                }
            }
            let wait = match self.endpoint.next_deadline() {
                Some(deadline) => Duration::from_micros(deadline.saturating_sub(self.now())),
                None => Duration::from_millis(100),
            };
            if let Some(frame) = self.port.recv_timeout(wait.max(Duration::from_micros(100))) {
                let now = self.now();
                self.endpoint.handle_frame(now, &frame);
            }
            let now = self.now();
            self.endpoint.handle_timeout(now);
        }
    }

    /// Gives up on a transaction (for callers with their own time limit).
    pub fn abort(&mut self, id: TransId) {
        self.endpoint.abort_trans(id);
    }

    /// STD_INFO on any capability: the object's description.
    /// The endpoint's counters (locates, retransmissions, refused HERE_IS answers).
    pub fn stats(&self) -> flip::Stats {
        self.endpoint.stats()
    }

    pub fn std_info(&mut self, capability: &Capability) -> Result<String, Status> {
        standard::Client::new(self).info(capability)
    }
}

/// Client stubs of declared interfaces run over the host's endpoint. Losing the
/// switch (the pool is gone) is a transport failure like a dead server.
impl Transport for RpcClient {
    fn trans(
        &mut self,
        request: &Header,
        buf: &[u8],
        _reply_limit: usize,
    ) -> Result<(Header, Vec<u8>), Status> {
        let deadline = self.deadline;
        self.trans_until(request, buf, deadline).unwrap_or_else(|error| {
            eprintln!("rpc: {error:#}");
            Err(Status::RpcFailure)
        })
    }
}

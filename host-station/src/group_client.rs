//! The host as a member of a group: the same `sequencer` state machine the
//! nucleus runs for its processes, driven here by one host port.

use crate::host_port::HostPort;
use anyhow::{Result, bail};
use sequencer::ethernet;
use sequencer::{Config, Event, GroupMember, Message};
use std::time::{Duration, Instant};

pub struct GroupClient {
    port: HostPort,
    member: GroupMember,
    epoch: Instant,
    me: u64,
}

impl GroupClient {
    /// Creates a group on the put-port of `get_port`, the host its first
    /// member and sequencer, with a fresh random secret; others join with
    /// [`GroupClient::capability`] (or a restriction of it).
    pub fn create(host_port: HostPort, get_port: amoeba_abi::GetPort, config: Config) -> Result<Self> {
        let me = ethernet::member_address(host_port.mac().0, 1);
        let secret = amoeba_abi::Check(rand::random());
        let port = get_port.put_port().to_u64();
        let member = GroupMember::create_group(config, port, secret, me, 0);
        Ok(Self { port: host_port, member, epoch: Instant::now(), me })
    }

    /// Joins the group `capability` names; returns once admitted.
    pub fn join(host_port: HostPort, capability: &amoeba_abi::Capability, timeout: Duration) -> Result<Self> {
        let me = ethernet::member_address(host_port.mac().0, 1);
        let epoch = Instant::now();
        let member = GroupMember::join_group_with_nonce(Config::default(), capability, me, 0, rand::random());
        let mut client = Self { port: host_port, member, epoch, me };
        let deadline = Instant::now() + timeout;
        loop {
            client.step(Duration::from_millis(5))?;
            if client.member.is_member() {
                return Ok(client);
            }
            if client.member.is_gone() {
                bail!("group {} refused the capability", capability.port);
            }
            if Instant::now() > deadline {
                bail!("could not join group {} within {timeout:?}", capability.port);
            }
        }
    }

    /// The group's owner capability.
    pub fn capability(&self) -> amoeba_abi::Capability {
        self.member.owner_capability()
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    /// Moves frames and time for at most `wait`.
    fn step(&mut self, wait: Duration) -> Result<()> {
        while let Some(transmit) = self.member.poll_transmit() {
            let frame = ethernet::encode_frame(self.port.mac().0, self.me, transmit.dest, &transmit.bytes);
            self.port.send_frame(&frame)?;
        }
        let wait = match self.member.next_deadline() {
            Some(deadline) => Duration::from_micros(deadline.saturating_sub(self.now())).min(wait),
            None => wait,
        };
        if let Some(frame) = self.port.recv_timeout(wait.max(Duration::from_micros(200)))
            && let Some((to, from, packet)) = ethernet::parse_frame(&frame)
            && (to == 0 || to == self.me)
        {
            let now = self.now();
            let _ = self.member.handle_packet(now, from, packet);
        }
        let now = self.now();
        self.member.handle_timeout(now);
        Ok(())
    }

    /// Waits until the view holds `count` members, keeping every message
    /// that arrives meanwhile for `receive`.
    pub fn wait_for_members(&mut self, count: usize, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while self.view().1 < count {
            if Instant::now() > deadline {
                bail!("the group has {} members, not {count}", self.view().1);
            }
            self.step(Duration::from_millis(5))?;
        }
        Ok(())
    }

    /// This member's id and the number of members in its view.
    pub fn view(&self) -> (u32, usize) {
        let info = self.member.get_info();
        (info.member_id, info.members.len())
    }

    /// This member's address (its station's MAC and a handle).
    pub fn address(&self) -> u64 {
        self.me
    }

    /// The members of its view, as (member id, address).
    pub fn members(&self) -> Vec<(u32, u64)> {
        self.member.get_info().members
    }

    /// Packets dropped because their tag did not verify (see
    /// [`GroupMember::rejected_packets`]).
    pub fn rejected_packets(&self) -> u64 {
        self.member.rejected_packets()
    }

    /// Sends this member, as sequencer, refused for want of the send right
    /// (see [`GroupMember::refused_sends`]).
    pub fn refused_sends(&self) -> u64 {
        self.member.refused_sends()
    }

    /// Sends a message into the group's order.
    pub fn send(&mut self, message: &[u8]) -> Result<()> {
        loop {
            let now = self.now();
            match self.member.send_to_group(now, message) {
                Ok(_) => return Ok(()),
                Err(sequencer::SendError::WouldBlock) => self.step(Duration::from_millis(5))?,
                Err(error) => bail!("group send failed: {error:?}"),
            }
        }
    }

    /// The next message of the order, waiting at most `timeout`.
    pub fn receive(&mut self, timeout: Duration) -> Result<Option<Message>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((message, _)) = self.member.receive() {
                return Ok(Some(message));
            }
            while let Some(event) = self.member.poll_event() {
                if let Event::Error(error) = event {
                    eprintln!("host group member: {error:?}");
                }
            }
            if Instant::now() > deadline {
                return Ok(None);
            }
            self.step(Duration::from_millis(5))?;
        }
    }

    /// Leaves the group, giving the protocol a moment to finish.
    pub fn leave(mut self) -> Result<()> {
        let now = self.now();
        let _ = self.member.leave_group(now);
        let deadline = Instant::now() + Duration::from_secs(2);
        while !self.member.is_gone() && Instant::now() < deadline {
            self.step(Duration::from_millis(5))?;
        }
        Ok(())
    }
}

//! Receiving the order: storing entries, membership at receive time,
//! delivery, gap repair and answering retransmission requests.

use super::*;

impl GroupMember {
    /// Stores an entry in the history (any state but joining).
    pub(super) fn on_entry(&mut self, seq: u64, entry: Entry) {
        if seq < self.next_deliver || self.history.contains_key(&seq) {
            return;
        }
        if self.history.len() as u64 > 4 * self.cfg.history_size as u64 + 64
            && seq > self.recv_upto + 4 * self.cfg.history_size as u64
        {
            // Far beyond what we can use; drop it rather than grow without bound.
            return;
        }
        if entry.sender == self.my_id
            && let Some(m) = self.send_queue.front_mut()
            && m.msg_id == entry.msg_id
        {
            m.stamped = Some(seq);
        }
        self.history.insert(seq, entry);
        self.known_next = self.known_next.max(seq + 1);
        self.advance_recv();
    }

    pub(super) fn advance_recv(&mut self) {
        let before = self.recv_upto;
        while let Some(e) = self.history.get(&self.recv_upto) {
            if self.recv_upto >= self.members_base {
                let e = e.clone();
                self.apply_members(self.recv_upto, &e);
            }
            self.recv_upto += 1;
        }
        if self.recv_upto > before {
            self.gap_attempts = 0;
        }
    }

    /// Applies a membership change to the protocol view (at receive time).
    pub(super) fn apply_members(&mut self, seq: u64, e: &Entry) {
        let now = self.now;
        if !matches!(e.body, EntryBody::App(_)) {
            self.prev_members = self.members.clone();
        }
        match &e.body {
            EntryBody::App(_) => {}
            EntryBody::Join { addr } => {
                self.members.insert(e.sender, *addr);
                self.last_change = seq;
                if let Some(s) = &mut self.seqr {
                    s.acks.insert(e.sender, seq);
                    s.joined.insert(e.sender, seq);
                    // A fresh member numbers its messages from 1 (ids of
                    // departed members may be reused after a reset).
                    s.last_id.insert(e.sender, 0);
                    s.departing.remove(&e.sender);
                    s.last_heard.insert(e.sender, now);
                    s.next_member_id = s.next_member_id.max(e.sender.saturating_add(1));
                }
            }
            EntryBody::Leave { .. } => {
                self.members.remove(&e.sender);
                self.last_change = seq;
                if let Some(s) = &mut self.seqr {
                    if let Some(a) = s.acks.remove(&e.sender) {
                        s.departing.insert(e.sender, (seq, a));
                    }
                    s.joined.remove(&e.sender);
                    s.last_heard.remove(&e.sender);
                }
            }
            EntryBody::Remove { member } => {
                self.members.remove(member);
                self.last_change = seq;
                if let Some(s) = &mut self.seqr {
                    if let Some(a) = s.acks.remove(member) {
                        s.departing.insert(*member, (seq, a));
                    }
                    s.joined.remove(member);
                    s.last_heard.remove(member);
                }
            }
            EntryBody::Reset { .. } => {
                self.last_change = seq;
            }
        }
    }

    /// Accept/stable/next information from the sequencer.
    pub(super) fn on_seq_info(&mut self, next: u64, accepted: u64, stable: u64, flags: u8) {
        if self.state != State::Active {
            return;
        }
        self.known_next = self.known_next.max(next);
        // Never accept beyond what the sequencer has stamped in this incarnation.
        self.accepted = self.accepted.max(accepted.min(self.known_next));
        self.stable = self.stable.max(stable.min(self.recv_upto));
        if flags & (FLAG_NEED_ACK | FLAG_SYNC) != 0 {
            self.send_ack();
        }
    }

    /// Delivery, acks, trimming after new input.
    pub(super) fn after_input(&mut self) {
        if self.state != State::Active {
            return;
        }
        if self.seqr.is_none()
            && self.recv_upto >= self.last_ack_sent + (self.cfg.history_size as u64 / 4).max(1)
        {
            self.send_ack();
        }
        self.deliver();
        self.trim();
        self.pump_send();
    }

    pub(super) fn trim(&mut self) {
        let low = self.stable.min(self.next_deliver);
        while let Some((&s, _)) = self.history.first_key_value() {
            if s >= low {
                break;
            }
            self.history.remove(&s);
        }
    }

    pub(super) fn deliver(&mut self) {
        while self.state == State::Active && self.next_deliver < self.accepted {
            let s = self.next_deliver;
            let Some(e) = self.history.get(&s).cloned() else {
                break;
            };
            self.next_deliver += 1;
            self.deliver_entry(s, e);
        }
    }

    pub(super) fn deliver_entry(&mut self, seq: u64, e: Entry) {
        match e.body {
            EntryBody::App(payload) => {
                let last = self.delivered_last_id.entry(e.sender).or_insert(0);
                *last = (*last).max(e.msg_id);
                self.events.push_back(Event::Delivered { seq, sender: e.sender, payload });
                if e.sender == self.my_id && self.send_queue.front().is_some_and(|m| m.msg_id == e.msg_id) {
                    self.send_queue.pop_front();
                }
            }
            EntryBody::Join { addr } => {
                self.view.insert(e.sender, addr);
                self.delivered_last_id.insert(e.sender, 0);
                if e.sender != self.my_id {
                    self.events.push_back(Event::MemberJoined { seq, member: e.sender, addr });
                }
            }
            EntryBody::Leave { successor } => {
                let addr = self.view.remove(&e.sender).unwrap_or(0);
                self.delivered_last_id.remove(&e.sender);
                self.events.push_back(Event::MemberLeft {
                    seq,
                    member: e.sender,
                    addr,
                    reason: LeaveReason::Left,
                });
                if e.sender == self.my_id {
                    self.events.push_back(Event::Left);
                    self.send_queue.clear();
                    if self.seqr.is_some() {
                        self.state = State::Retiring { since: self.now, leave_seq: seq };
                    } else {
                        self.state = State::Gone;
                    }
                    return;
                }
                if e.sender == self.seq_id && successor != NO_MEMBER {
                    self.sequencer_handoff(seq, successor);
                }
            }
            EntryBody::Remove { member } => {
                let addr = self.view.remove(&member).unwrap_or(0);
                self.delivered_last_id.remove(&member);
                self.events.push_back(Event::MemberLeft { seq, member, addr, reason: LeaveReason::Failed });
                if member == self.my_id {
                    self.expel();
                }
            }
            EntryBody::Reset { new_inc, removed } => {
                for (id, _) in &removed {
                    self.view.remove(id);
                    self.delivered_last_id.remove(id);
                }
                self.events.push_back(Event::GroupReset { seq, incarnation: new_inc, removed });
            }
        }
    }

    pub(super) fn sequencer_handoff(&mut self, leave_seq: u64, successor: u32) {
        let Some(&addr) = self.members.get(&successor).or(self.view.get(&successor)) else {
            return;
        };
        // Let the old sequencer know we are past its leave, so it can go.
        self.send_ack();
        self.seq_id = successor;
        self.seq_addr = addr;
        self.last_from_seq = self.now;
        self.events.push_back(Event::SequencerChanged { member: successor, addr });
        if successor == self.my_id {
            let now = self.now;
            let members: Vec<u32> = self.members.keys().copied().collect();
            let next_member_id = self.max_known_id().saturating_add(1);
            let mut s = SeqState {
                next_seq: leave_seq + 1,
                acks: BTreeMap::new(),
                joined: BTreeMap::new(),
                departing: BTreeMap::new(),
                last_heard: BTreeMap::new(),
                last_id: self.delivered_last_id.clone(),
                welcomes: BTreeMap::new(),
                next_member_id,
                last_bcast: now,
                last_sync_req: None,
                last_sync_bcast: now,
                leaving: false,
                blocked_dead_since: None,
                next_dead_check: 0,
            };
            for id in members {
                if id != self.my_id {
                    s.acks.insert(id, self.stable.min(leave_seq));
                    s.joined.insert(id, 0);
                    s.last_heard.insert(id, now);
                }
            }
            self.history.retain(|&k, _| k <= leave_seq);
            self.known_next = leave_seq + 1;
            self.recv_upto = self.recv_upto.min(leave_seq + 1);
            self.accepted = leave_seq + 1;
            self.seqr = Some(s);
            self.bcast_status(FLAG_SYNC);
        } else {
            self.send_ack();
            // Resend our message to the new sequencer promptly.
            if let Some(m) = self.send_queue.front_mut()
                && m.stamped.is_none()
            {
                m.last_tx = None;
            }
        }
    }

    pub(super) fn max_known_id(&self) -> u32 {
        let mut m = 0;
        for id in self.members.keys().chain(self.view.keys()) {
            m = m.max(*id);
        }
        for e in self.history.values() {
            if let EntryBody::Join { .. } = e.body {
                m = m.max(e.sender);
            }
        }
        m
    }

    pub(super) fn gap_repair(&mut self) {
        if self.recv_upto >= self.known_next {
            return;
        }
        let now = self.now;
        if self.last_gap_req.is_some_and(|t| now < t + self.cfg.retransmit_us) {
            return;
        }
        self.last_gap_req = Some(now);
        let from = self.recv_upto;
        let to = self.known_next.min(from + RETRANS_BATCH);
        self.gap_attempts += 1;
        if self.seqr.is_some() {
            // A new sequencer missing entries asks everyone.
            self.bcast(Body::Retrans { from, to, any: true });
        } else if self.gap_attempts.is_multiple_of(3) {
            self.bcast(Body::Retrans { from, to, any: true });
        } else {
            let a = self.seq_addr;
            self.send_to(a, Body::Retrans { from, to, any: false });
        }
    }

    pub(super) fn serve_retrans(&mut self, to_addr: u64, from: u64, to: u64) {
        let end = to.min(from.saturating_add(RETRANS_BATCH));
        let is_seq = self.seqr.is_some();
        let (accepted, stable) = (self.accepted, self.stable);
        let mut s = from;
        while s < end {
            if let Some(e) = self.history.get(&s).cloned() {
                let body = if is_seq {
                    Body::Data {
                        seq: s,
                        accepted,
                        stable,
                        flags: FLAG_RETRANS | self.need_ack_flag(),
                        entry: e,
                    }
                } else {
                    // Non-sequencers only pass on the entry, not accept info.
                    Body::Data { seq: s, accepted: 0, stable: 0, flags: FLAG_RETRANS, entry: e }
                };
                self.send_to(to_addr, body);
            }
            s += 1;
        }
    }

    pub(super) fn need_ack_flag(&self) -> u8 {
        if self.effective_r() > 0 { FLAG_NEED_ACK } else { 0 }
    }
}

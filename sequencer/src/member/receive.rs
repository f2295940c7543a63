//! Receiving the order: storing entries, membership at receive time,
//! delivery, gap repair and answering retransmission requests.

use super::*;

impl GroupMember {
    /// One item of a data packet: an entry, or a BB accept whose payload we
    /// may already hold (or will, when its sender's broadcast comes).
    pub(super) fn on_item(&mut self, seq: u64, item: Item) {
        let (sender, msg_id, digest) = match item {
            Item::Entry(e) => return self.on_entry(seq, e),
            Item::Bb { sender, msg_id, digest } => (sender, msg_id, digest),
        };
        if !self.within_window(seq) {
            return;
        }
        self.delivery.known_end = self.delivery.known_end.max(seq + 1);
        let named =
            |(s, m, p): &(u32, u32, Vec<u8>)| *s == sender && *m == msg_id && auth::digest(p) == digest;
        if let Some(i) = self.delivery.bb_pending.iter().position(named)
            && let Some((_, _, payload)) = self.delivery.bb_pending.remove(i)
        {
            self.on_entry(seq, Entry { sender, msg_id, body: EntryBody::App(payload) });
        } else if seq >= self.delivery.received_upto && !self.delivery.history.contains_key(&seq) {
            if self.delivery.bb_awaiting.len() >= BB_PENDING_MAX {
                self.delivery.bb_awaiting.pop_first();
            }
            self.delivery.bb_awaiting.insert(seq, (sender, msg_id, digest));
        }
    }

    /// How far past what we hold in order an entry may be and still be
    /// kept: twice the history (a sequencer stamps at most one history
    /// ahead of what every member holds), plus one retransmission batch.
    pub(super) fn window_end(&self) -> u64 {
        self.delivery.received_upto.saturating_add(2 * self.cfg.history_size as u64 + RETRANS_BATCH)
    }

    /// Whether an entry at `seq` is within what we keep (see `window_end`).
    pub(super) fn within_window(&self, seq: u64) -> bool {
        seq < self.window_end()
    }

    /// A BB payload from its sender: its entry if the accept came first,
    /// otherwise kept for the accept.
    pub(super) fn on_bb_payload(&mut self, sender: u32, msg_id: u32, payload: Vec<u8>) {
        let digest = auth::digest(&payload);
        if let Some((&seq, _)) =
            self.delivery.bb_awaiting.iter().find(|(_, id)| **id == (sender, msg_id, digest))
        {
            self.on_entry(seq, Entry { sender, msg_id, body: EntryBody::App(payload) });
            return;
        }
        if self.delivery.bb_pending.iter().any(|(s, m, _)| *s == sender && *m == msg_id) {
            return;
        }
        if self.delivery.bb_pending.len() >= BB_PENDING_MAX {
            self.delivery.bb_pending.pop_front();
        }
        self.delivery.bb_pending.push_back((sender, msg_id, payload));
    }

    /// Stores an entry in the history (any state but joining).
    pub(super) fn on_entry(&mut self, seq: u64, entry: Entry) {
        if seq < self.delivery.next_deliver
            || self.delivery.history.contains_key(&seq)
            || !self.within_window(seq)
        {
            // Beyond the window: far more than we can use; we fetch it once
            // we are closer rather than grow without bound.
            return;
        }
        self.delivery.bb_awaiting.remove(&seq);
        if entry.sender == self.membership.my_id
            && let Some(m) = self.send_queue.front_mut()
            && m.msg_id == entry.msg_id
        {
            m.stamped = Some(seq);
        }
        self.delivery.history.insert(seq, entry);
        self.delivery.known_end = self.delivery.known_end.max(seq + 1);
        self.advance_recv();
    }

    pub(super) fn advance_recv(&mut self) {
        let before = self.delivery.received_upto;
        while let Some(e) = self.delivery.history.get(&self.delivery.received_upto) {
            if self.delivery.received_upto >= self.membership.members_base {
                let e = e.clone();
                self.apply_members(self.delivery.received_upto, &e);
            }
            self.delivery.received_upto += 1;
        }
        if self.delivery.received_upto > before {
            self.delivery.gap_attempts = 0;
        }
    }

    /// Drops BB payloads and accepts of a member that left (or of an id
    /// given anew): its entries, if still needed, come by retransmission.
    fn forget_bb_of(&mut self, id: u32) {
        self.delivery.bb_pending.retain(|(sender, _, _)| *sender != id);
        self.delivery.bb_awaiting.retain(|_, (sender, _, _)| *sender != id);
    }

    /// Applies a membership change to the protocol view (at receive time).
    pub(super) fn apply_members(&mut self, seq: u64, e: &Entry) {
        let now = self.now;
        if !matches!(e.body, EntryBody::App(_)) {
            self.membership.prev_members = self.membership.members.clone();
        }
        match &e.body {
            EntryBody::App(_) => {}
            EntryBody::Join { addr, rights } => {
                self.membership.members.insert(e.sender, *addr);
                self.membership.member_rights.insert(e.sender, Rights(*rights));
                self.membership.max_id_seen = self.membership.max_id_seen.max(e.sender);
                self.forget_bb_of(e.sender);
                self.membership.last_change = seq;
                if let Some(s) = &mut self.sequencer {
                    s.acks.insert(e.sender, seq);
                    s.joined.insert(e.sender, seq);
                    s.stable_seen.remove(&e.sender);
                    // A fresh member numbers its messages from 1 (ids of
                    // departed members may be reused after a reset).
                    s.last_id.insert(e.sender, 0);
                    s.departing.remove(&e.sender);
                    s.last_heard.insert(e.sender, now);
                    s.next_member_id = s.next_member_id.max(e.sender.saturating_add(1));
                }
            }
            EntryBody::Leave { .. } => {
                self.forget_bb_of(e.sender);
                let addr = self.membership.members.remove(&e.sender);
                self.membership.last_change = seq;
                if let Some(s) = &mut self.sequencer {
                    if let (Some(addr), Some(&ack)) = (addr, s.acks.get(&e.sender)) {
                        s.leavers.insert(e.sender, Leaver { addr, seq, ack, since: now });
                    }
                    s.depart(e.sender, seq);
                }
            }
            EntryBody::Remove { member } => {
                self.forget_bb_of(*member);
                self.membership.members.remove(member);
                self.membership.last_change = seq;
                if let Some(s) = &mut self.sequencer {
                    s.depart(*member, seq);
                }
            }
            EntryBody::Reset { .. } => {
                self.membership.last_change = seq;
            }
        }
    }

    /// Accept/stable/next information from the sequencer.
    pub(super) fn on_seq_info(&mut self, next: u64, accepted: u64, stable: u64, flags: u8) {
        if self.state != State::Active {
            return;
        }
        self.delivery.known_end = self.delivery.known_end.max(next.min(self.window_end()));
        // Never accept beyond what the sequencer has stamped in this incarnation.
        self.delivery.accepted = self.delivery.accepted.max(accepted.min(self.delivery.known_end));
        self.delivery.stable = self.delivery.stable.max(stable.min(self.delivery.received_upto));
        if flags & (FLAG_NEED_ACK | FLAG_SYNC) != 0 {
            self.send_ack(0);
        }
    }

    /// Delivery, acks, trimming after new input.
    pub(super) fn after_input(&mut self) {
        if self.state != State::Active {
            return;
        }
        if self.sequencer.is_none()
            && self.delivery.received_upto
                >= self.delivery.last_ack_sent + (self.cfg.history_size as u64 / 4).max(1)
        {
            self.send_ack(0);
        }
        self.deliver();
        self.trim();
        self.pump_send();
    }

    pub(super) fn trim(&mut self) {
        let low = self.delivery.stable.min(self.delivery.next_deliver);
        while let Some((&s, _)) = self.delivery.history.first_key_value() {
            if s >= low {
                break;
            }
            self.delivery.history.remove(&s);
        }
    }

    pub(super) fn deliver(&mut self) {
        while self.state == State::Active && self.delivery.next_deliver < self.delivery.accepted {
            let s = self.delivery.next_deliver;
            let Some(e) = self.delivery.history.get(&s).cloned() else {
                break;
            };
            self.delivery.next_deliver += 1;
            self.deliver_entry(s, e);
        }
    }

    pub(super) fn deliver_entry(&mut self, seq: u64, e: Entry) {
        match e.body {
            EntryBody::App(payload) => {
                let last = self.delivery.delivered_last_id.entry(e.sender).or_insert(0);
                *last = (*last).max(e.msg_id);
                self.events.push_back(Event::Delivered { seq, sender: e.sender, payload });
                if e.sender == self.membership.my_id
                    && self.send_queue.front().is_some_and(|m| m.msg_id == e.msg_id)
                {
                    self.send_queue.pop_front();
                }
            }
            EntryBody::Join { addr, .. } => {
                self.membership.view.insert(e.sender, addr);
                self.delivery.delivered_last_id.insert(e.sender, 0);
                if e.sender != self.membership.my_id {
                    self.events.push_back(Event::MemberJoined { seq, member: e.sender, addr });
                }
            }
            EntryBody::Leave { successor } => {
                let addr = self.membership.view.remove(&e.sender).unwrap_or(0);
                self.delivery.delivered_last_id.remove(&e.sender);
                self.events.push_back(Event::MemberLeft {
                    seq,
                    member: e.sender,
                    addr,
                    reason: LeaveReason::Left,
                });
                if e.sender == self.membership.my_id {
                    // Tell the sequencer we have it all, so that it can let go.
                    self.send_ack(0);
                    self.events.push_back(Event::Left);
                    self.send_queue.clear();
                    if self.sequencer.is_some() {
                        self.state = State::Retiring { since: self.now, leave_seq: seq };
                    } else {
                        self.go();
                    }
                    return;
                }
                if e.sender == self.membership.sequencer_id && successor != NO_MEMBER {
                    self.sequencer_handoff(seq, successor);
                }
            }
            EntryBody::Remove { member } => {
                let addr = self.membership.view.remove(&member).unwrap_or(0);
                self.delivery.delivered_last_id.remove(&member);
                self.events.push_back(Event::MemberLeft { seq, member, addr, reason: LeaveReason::Failed });
                if member == self.membership.my_id {
                    self.expel();
                }
            }
            EntryBody::Reset { new_inc, removed } => {
                for (id, _) in &removed {
                    self.membership.view.remove(id);
                    self.delivery.delivered_last_id.remove(id);
                }
                self.events.push_back(Event::GroupReset { seq, incarnation: new_inc, removed });
            }
        }
    }

    pub(super) fn sequencer_handoff(&mut self, leave_seq: u64, successor: u32) {
        let Some(&addr) = self.membership.members.get(&successor).or(self.membership.view.get(&successor))
        else {
            return;
        };
        // Let the old sequencer know we are past its leave, so it can go.
        self.send_ack(0);
        self.membership.sequencer_id = successor;
        self.membership.sequencer_addr = addr;
        self.timers.last_heard_sequencer = self.now;
        self.events.push_back(Event::SequencerChanged { member: successor, addr });
        if successor == self.membership.my_id {
            let held = self.delivery.stable.min(leave_seq);
            let others: Vec<(u32, u64)> = self
                .membership
                .members
                .keys()
                .filter(|&&id| id != self.membership.my_id)
                .map(|&id| (id, held))
                .collect();
            let next_member_id = self.max_known_id().saturating_add(1);
            let mut s = SequencerRole::new(leave_seq + 1, self.now, next_member_id, &others);
            s.last_id = self.delivery.delivered_last_id.clone();
            self.delivery.history.retain(|&k, _| k <= leave_seq);
            self.delivery.known_end = leave_seq + 1;
            self.delivery.received_upto = self.delivery.received_upto.min(leave_seq + 1);
            self.delivery.accepted = leave_seq + 1;
            self.sequencer = Some(s);
            self.bcast_status(FLAG_SYNC);
        } else {
            self.send_ack(0);
            // Resend our message to the new sequencer promptly.
            if let Some(m) = self.send_queue.front_mut()
                && m.stamped.is_none()
            {
                m.last_tx = None;
            }
        }
    }

    /// The highest member id this member knows was ever given out (ids are
    /// never reused within the order, so stale traffic of a departed member
    /// cannot pass for a new one's).
    pub(super) fn max_known_id(&self) -> u32 {
        let mut m = self.membership.max_id_seen;
        for id in self.membership.members.keys().chain(self.membership.view.keys()) {
            m = m.max(*id);
        }
        for e in self.delivery.history.values() {
            if let EntryBody::Join { .. } = e.body {
                m = m.max(e.sender);
            }
        }
        m
    }

    pub(super) fn gap_repair(&mut self) {
        if self.delivery.received_upto >= self.delivery.known_end {
            return;
        }
        let now = self.now;
        if self.delivery.last_gap_request.is_some_and(|t| now < t + self.cfg.retransmit_us) {
            return;
        }
        self.delivery.last_gap_request = Some(now);
        let from = self.delivery.received_upto;
        let to = self.delivery.known_end.min(from + RETRANS_BATCH);
        self.delivery.gap_attempts += 1;
        if self.sequencer.is_some() {
            // A new sequencer missing entries asks everyone.
            self.bcast(Body::Retrans { from, to, any: true });
        } else if self.delivery.gap_attempts.is_multiple_of(3) {
            self.bcast(Body::Retrans { from, to, any: true });
        } else {
            let a = self.membership.sequencer_addr;
            self.send_to(a, Body::Retrans { from, to, any: false });
        }
    }

    /// Answers a retransmission request with the entries we hold, runs of
    /// consecutive ones packed together.
    pub(super) fn serve_retrans(&mut self, to_addr: u64, from: u64, to: u64) {
        let end = to.min(from.saturating_add(RETRANS_BATCH));
        let limit = (self.cfg.max_batch_bytes as usize).saturating_sub(DATA_OVERHEAD);
        let mut run: Option<(u64, Vec<Item>, usize)> = None;
        for seq in from..end {
            let Some(e) = self.delivery.history.get(&seq) else {
                if let Some((first, items, _)) = run.take() {
                    self.send_retrans_run(to_addr, first, items);
                }
                continue;
            };
            let item = Item::Entry(e.clone());
            let len = item.encoded_len();
            match &mut run {
                Some((first, items, bytes))
                    if *bytes + len <= limit && *first + items.len() as u64 == seq =>
                {
                    items.push(item);
                    *bytes += len;
                }
                _ => {
                    if let Some((first, items, _)) = run.replace((seq, alloc::vec![item], len)) {
                        self.send_retrans_run(to_addr, first, items);
                    }
                }
            }
        }
        if let Some((first, items, _)) = run {
            self.send_retrans_run(to_addr, first, items);
        }
    }

    fn send_retrans_run(&mut self, to_addr: u64, seq: u64, items: Vec<Item>) {
        let body = if self.sequencer.is_some() {
            let flags = FLAG_RETRANS | self.need_ack_flag();
            Body::Data { seq, accepted: self.delivery.accepted, stable: self.delivery.stable, flags, items }
        } else {
            // Non-sequencers only pass on entries, not accept information.
            Body::Data { seq, accepted: 0, stable: 0, flags: FLAG_RETRANS, items }
        };
        self.send_to(to_addr, body);
    }

    pub(super) fn need_ack_flag(&self) -> u8 {
        if self.effective_r() > 0 { FLAG_NEED_ACK } else { 0 }
    }
}

//! The sequencer's side: stamping, acceptance under resilience r,
//! stability and history trimming, joins, and removing silent members.

use super::*;

impl GroupMember {
    pub(super) fn on_ack(&mut self, from: u64, src: u32, ack: u64, stable: u64, flags: u8) {
        if self.membership.members.get(&src) != Some(&from) {
            if self.state == State::Active && self.sequencer.is_some() {
                self.send_to(from, Body::NotMember { member: src });
            }
            return;
        }
        let now = self.now;
        let Some(s) = &mut self.sequencer else { return };
        let next = s.next_seq;
        if let Some(a) = s.acks.get_mut(&src) {
            *a = (*a).max(ack.min(next));
            let seen = s.stable_seen.entry(src).or_insert(0);
            *seen = (*seen).max(stable.min(next));
        }
        s.last_heard.insert(src, now);
        if flags & FLAG_SYNC != 0
            && let Some(body) = self.status(0)
        {
            // A member that has not heard from us for a while asks.
            self.send_to(from, body);
        }
        if self.state == State::Active {
            self.seq_progress();
        }
    }

    /// A member's `Send` or `BbData` reached the sequencer from address
    /// `from`, saying it holds every entry below `ack`.
    pub(super) fn on_send(&mut self, from: u64, ack: u64, submission: Submission) {
        let src = submission.src;
        if self.membership.members.get(&src) != Some(&from) {
            self.send_to(from, Body::NotMember { member: src });
            return;
        }
        let now = self.now;
        if let Some(s) = &mut self.sequencer {
            let next = s.next_seq;
            if let Some(a) = s.acks.get_mut(&src) {
                *a = (*a).max(ack.min(next));
            }
            s.last_heard.insert(src, now);
        }
        if submission.payload.len() > self.cfg.max_message_size as usize {
            return;
        }
        if !submission.leave
            && !self.membership.member_rights.get(&src).is_some_and(|r| r.contains(RIGHT_SEND))
        {
            // Its capability does not let it send: whatever its own
            // library did, nothing of it goes into the order.
            self.refused_sends = self.refused_sends.saturating_add(1);
            return;
        }
        self.seq_submit(submission);
        self.seq_progress();
    }

    /// The sequencer considers sequencing (src, msg_id). What cannot be
    /// stamped yet waits at the sequencer and goes as soon as it can.
    pub(super) fn seq_submit(&mut self, submission: Submission) {
        let Submission { src, msg_id, leave, payload, bb } = submission;
        let Some(s) = &self.sequencer else { return };
        let last = s.last_id.get(&src).copied().unwrap_or(0);
        if msg_id <= last {
            // Retransmission of something already sequenced: resend it to the sender.
            if src != self.membership.my_id
                && let Some((&seq, e)) =
                    self.delivery.history.iter().rev().find(|(_, e)| e.sender == src && e.msg_id == msg_id)
            {
                let body = Body::Data {
                    seq,
                    accepted: self.delivery.accepted,
                    stable: self.delivery.stable,
                    flags: FLAG_RETRANS | self.need_ack_flag(),
                    items: alloc::vec![Item::Entry(e.clone())],
                };
                let addr = self.membership.members.get(&src).copied().unwrap_or(0);
                self.send_to(addr, body);
            }
            return;
        }
        if s.leaving {
            return;
        }
        if self.history_full() || (leave && !self.change_allowed()) {
            self.wait_for_room(Submission { src, msg_id, leave, payload, bb });
            self.request_sync();
            return;
        }
        let body = if leave {
            let successor = if src == self.membership.my_id { self.pick_successor() } else { NO_MEMBER };
            EntryBody::Leave { successor }
        } else {
            EntryBody::App(payload)
        };
        let bb = bb && matches!(&body, EntryBody::App(p) if p.len() > self.cfg.bb_threshold as usize);
        if let Some(s) = &mut self.sequencer {
            s.last_id.insert(src, msg_id);
            if leave && src == self.membership.my_id {
                s.leaving = true;
            }
        }
        self.stamp(Entry { sender: src, msg_id, body }, bb);
    }

    pub(super) fn pick_successor(&self) -> u32 {
        let Some(s) = &self.sequencer else {
            return NO_MEMBER;
        };
        let now = self.now;
        let mut best: Option<(u64, u32)> = None;
        for (&id, &ack) in &s.acks {
            if id == self.membership.my_id {
                continue;
            }
            let alive = s.last_heard.get(&id).is_some_and(|&t| now < t + self.cfg.member_timeout_us / 2);
            if !alive {
                continue;
            }
            if best.is_none_or(|(a, i)| ack > a || (ack == a && id < i)) {
                best = Some((ack, id));
            }
        }
        best.map_or(NO_MEMBER, |(_, id)| id)
    }

    /// Keeps a submission that cannot be stamped yet (once).
    fn wait_for_room(&mut self, w: Submission) {
        let Some(s) = &mut self.sequencer else { return };
        if s.waiting.len() < WAITING_MAX && !s.waiting.iter().any(|x| x.src == w.src && x.msg_id == w.msg_id)
        {
            s.waiting.push_back(w);
        }
    }

    /// Stamps what waited for room in the history or for the previous
    /// membership change to settle, in the order it came.
    fn drain_waiting(&mut self) {
        let Some(s) = &mut self.sequencer else { return };
        if s.waiting.is_empty() || self.state != State::Active {
            return;
        }
        for w in core::mem::take(&mut s.waiting) {
            self.seq_submit(w);
        }
    }

    /// May the sequencer stamp a membership change now? Every member must
    /// hold the last change and know that every member holds it (it saw a
    /// stable mark past it and told us so). Then views in the group differ
    /// by at most one change, and a member that has not yet reported the
    /// last change stable knows that no later change exists: a reset may
    /// count its majority on the membership before that change (see
    /// `quorum_views`), so a crash while a change is unsettled cannot stall
    /// the group.
    pub(super) fn change_allowed(&self) -> bool {
        let Some(s) = &self.sequencer else { return false };
        let settled = |id: &u32| s.stable_seen.get(id).is_some_and(|&st| st > self.membership.last_change);
        s.acks
            .iter()
            .all(|(id, &a)| *id == self.membership.my_id || (a > self.membership.last_change && settled(id)))
    }

    pub(super) fn request_sync(&mut self) {
        let now = self.now;
        let Some(s) = &mut self.sequencer else { return };
        if s.last_sync_req.is_some_and(|t| now < t + self.cfg.retransmit_us) {
            return;
        }
        s.last_sync_req = Some(now);
        self.bcast_status(FLAG_SYNC);
    }

    /// Gives the next sequence number to `entry`; it goes out with the next
    /// batch (a BB message by name only).
    pub(super) fn stamp(&mut self, entry: Entry, bb: bool) -> u64 {
        let now = self.now;
        let Some(s) = &mut self.sequencer else { return 0 };
        let seq = s.next_seq;
        s.next_seq += 1;
        s.last_bcast = now;
        self.delivery.history.insert(seq, entry.clone());
        self.delivery.known_end = seq + 1;
        self.advance_recv();
        if entry.sender == self.membership.my_id
            && let Some(m) = self.send_queue.front_mut()
            && m.msg_id == entry.msg_id
            && !matches!(entry.body, EntryBody::Join { .. } | EntryBody::Remove { .. })
        {
            m.stamped = Some(seq);
        }
        self.recompute_accepted();
        let item = match &entry.body {
            EntryBody::App(payload) if bb => {
                Item::Bb { sender: entry.sender, msg_id: entry.msg_id, digest: auth::digest(payload) }
            }
            _ => Item::Entry(entry),
        };
        self.queue_item(seq, item);
        seq
    }

    /// Adds a stamped item to the batch that goes out at the next poll
    /// (or before any other packet), starting a new one when it is full.
    fn queue_item(&mut self, seq: u64, item: Item) {
        let len = item.encoded_len();
        let limit = (self.cfg.max_batch_bytes as usize).saturating_sub(DATA_OVERHEAD);
        if let Some(b) = &mut self.batch
            && b.seq + b.items.len() as u64 == seq
            && b.bytes + len <= limit
        {
            b.items.push(item);
            b.bytes += len;
            return;
        }
        self.flush_batch();
        self.batch = Some(Batch { seq, items: alloc::vec![item], bytes: len });
    }

    pub(super) fn recompute_accepted(&mut self) {
        let r = self.cfg.resilience as usize;
        let me = self.membership.my_id;
        let Some(s) = &self.sequencer else { return };
        let next = s.next_seq;
        let mut acc = self.delivery.accepted;
        while acc < next {
            // Members that joined before entry `acc` can hold it; r is capped
            // by how many there are.
            let mut eligible = 0;
            let mut holders = 0;
            for (id, a) in &s.acks {
                if *id == me || s.joined.get(id).is_some_and(|&j| j >= acc) {
                    continue;
                }
                eligible += 1;
                if *a > acc {
                    holders += 1;
                }
            }
            if holders < r.min(eligible) {
                break;
            }
            acc += 1;
        }
        let stable = s
            .acks
            .values()
            .chain(s.departing.values().filter(|(at, _)| *at >= acc).map(|(_, a)| a))
            .chain(s.leavers.values().map(|l| &l.ack))
            .copied()
            .min()
            .unwrap_or(next)
            .min(next);
        self.delivery.accepted = acc;
        self.delivery.stable = self.delivery.stable.max(stable);
        if let Some(s) = &mut self.sequencer {
            s.departing.retain(|_, (at, _)| *at >= acc);
        }
    }

    /// After acks or stamps: accept, deliver, trim, welcome, announce.
    pub(super) fn seq_progress(&mut self) {
        self.seq_settle();
        self.pump_send();
    }

    pub(super) fn seq_settle(&mut self) {
        let before = self.delivery.accepted;
        self.recompute_accepted();
        self.deliver();
        self.drain_waiting();
        self.deliver();
        if self.delivery.accepted > before && self.effective_r() > 0 && self.batch.is_none() {
            // A pending batch carries the accept mark; otherwise announce it.
            self.bcast_status(0);
        }
        self.trim();
        self.send_welcomes(None);
    }

    /// Sends welcomes whose join entry is accepted: once when it becomes
    /// accepted, and again whenever the joiner repeats its request.
    pub(super) fn send_welcomes(&mut self, only: Option<u32>) {
        let accepted = self.delivery.accepted;
        let Some(s) = &mut self.sequencer else { return };
        let acks = &s.acks;
        // Forget welcomes the joiner evidently received (it acknowledged).
        s.welcomes.retain(|id, w| acks.get(id).is_some_and(|&a| a <= w.join_seq));
        let mut list = Vec::new();
        for (id, w) in s.welcomes.iter_mut() {
            if w.join_seq < accepted && (only == Some(*id) || (only.is_none() && !w.sent)) {
                w.sent = true;
                list.push((*id, w.clone()));
            }
        }
        for (id, w) in list {
            let pad = auth::welcome_pad(&w.key, w.nonce, w.addr);
            let mut secret = self.secret.0;
            secret.iter_mut().zip(pad).for_each(|(b, p)| *b ^= p);
            let body = Body::Welcome {
                nonce: w.nonce,
                member_id: id,
                join_seq: w.join_seq,
                sequencer: self.membership.my_id,
                accepted: self.delivery.accepted,
                stable: self.delivery.stable,
                params: self.cfg.params(),
                members: w.members,
                secret,
            };
            self.send_sealed(&w.key, w.addr, body);
        }
    }

    /// A joiner whose proof verified: stamp its join (with its rights).
    pub(super) fn on_join_req(&mut self, from: u64, rights: Rights, nonce: u64, key: Key) {
        if self.sequencer.as_ref().is_some_and(|s| s.leaving) {
            return;
        }
        if self.membership.members.len() >= self.cfg.max_members as usize {
            self.send_sealed(&key, from, Body::JoinDenied { nonce });
            return;
        }
        if !self.change_allowed() || self.history_full() {
            // The joiner asks again; meanwhile get the members to answer.
            self.request_sync();
            return;
        }
        let Some(s) = &mut self.sequencer else { return };
        let id = s.next_member_id;
        s.next_member_id += 1;
        let join = EntryBody::Join { addr: from, rights: rights.0 };
        let seq = self.stamp(Entry { sender: id, msg_id: 0, body: join }, false);
        let Some(s) = &mut self.sequencer else { return };
        let members = self
            .membership
            .members
            .iter()
            .map(|(&i, &a)| WelcomeMember {
                id: i,
                addr: a,
                last_msg_id: s.last_id.get(&i).copied().unwrap_or(0),
                rights: self.membership.member_rights.get(&i).map_or(0, |r| r.0),
            })
            .collect();
        s.welcomes.insert(id, PendingWelcome { join_seq: seq, addr: from, members, sent: false, key, nonce });
        self.seq_progress();
    }

    pub(super) fn seq_timers(&mut self) {
        let now = self.now;
        let c = self.cfg.clone();
        if !self.handle_dead_members() {
            return;
        }
        let Some(s) = &self.sequencer else { return };
        if now >= s.last_bcast + c.heartbeat_us {
            self.bcast_status(FLAG_SYNC);
        }
        self.probe_quiet_members();
        self.forget_silent_leavers();
        if self.history_full() {
            self.request_sync();
        }
        self.pump_send();
    }

    /// Removes one member that has been silent for the member timeout, if
    /// a change may be stamped now. A sequencer that no longer hears enough
    /// members, or whose dead members stay blocked for a member timeout,
    /// resets the group instead (and returns false).
    fn handle_dead_members(&mut self) -> bool {
        let (now, timeout) = (self.now, self.cfg.member_timeout_us);
        let Some(s) = &self.sequencer else { return false };
        let dead: Vec<u32> = s
            .last_heard
            .iter()
            .filter(|&(&id, &t)| id != self.membership.my_id && now >= t + timeout)
            .map(|(&id, _)| id)
            .collect();
        if dead.is_empty() {
            if let Some(s) = &mut self.sequencer {
                s.blocked_dead_since = None;
            }
            return true;
        }
        let leaving = s.leaving;
        if self.membership.members.len() - dead.len() < quorum(&self.cfg, self.membership.members.len()) {
            // We no longer hear from enough members to speak for the group
            // (we may be on the small side of a partition): stop sequencing
            // and let a reset sort it out.
            self.enter_reset();
            return false;
        }
        // A leaving sequencer removes nobody; a member whose leave waits
        // goes by its leave.
        let removable = dead.iter().copied().find(|&id| !self.leave_waiting(id));
        if let Some(id) = removable.filter(|_| !leaving && self.change_allowed() && !self.history_full()) {
            self.stamp(
                Entry { sender: self.membership.my_id, msg_id: 0, body: EntryBody::Remove { member: id } },
                false,
            );
            if let Some(s) = &mut self.sequencer {
                s.blocked_dead_since = None;
            }
        } else if self.removal_blocked_too_long() {
            // Dead members block each other's removal (one that died before
            // settling the last change blocks the next), or our own leave:
            // a reset removes them all at once.
            self.enter_reset();
            return false;
        }
        self.seq_progress();
        true
    }

    /// Notes that removing dead members is blocked; whether it has been for
    /// a member timeout.
    fn removal_blocked_too_long(&mut self) -> bool {
        self.request_sync();
        let (now, c) = (self.now, &self.cfg);
        let Some(s) = &mut self.sequencer else { return false };
        s.next_dead_check = now + c.retransmit_us;
        let since = *s.blocked_dead_since.get_or_insert(now);
        if now < since + c.member_timeout_us {
            return false;
        }
        s.blocked_dead_since = None;
        true
    }

    /// Serves a member that left and may still lack entries up to its
    /// leave: its retransmitted leave gets the entry again, its requests
    /// for entries are answered, and its acks let it go. Whether `from`
    /// was such a member.
    pub(super) fn serve_leaver(&mut self, from: u64, src: u32, body: &Body) -> bool {
        let Some(s) = &mut self.sequencer else { return false };
        let Some(l) = s.leavers.get_mut(&src).filter(|l| l.addr == from) else {
            return false;
        };
        let leave_seq = l.seq;
        match body {
            Body::Ack { ack, .. } => {
                l.ack = l.ack.max(*ack);
                if l.ack > leave_seq {
                    s.leavers.remove(&src);
                    self.seq_progress();
                }
            }
            Body::Retrans { from: a, to, .. } => self.serve_retrans(from, *a, (*to).min(leave_seq + 1)),
            Body::Send { .. } => self.serve_retrans(from, leave_seq, leave_seq + 1),
            _ => {}
        }
        true
    }

    /// Lets go of leavers that did not confirm within a member timeout.
    fn forget_silent_leavers(&mut self) {
        let (now, timeout) = (self.now, self.cfg.member_timeout_us);
        let Some(s) = &mut self.sequencer else { return };
        let before = s.leavers.len();
        s.leavers.retain(|_, l| now < l.since + timeout);
        if s.leavers.len() < before {
            self.seq_progress();
        }
    }

    /// Whether member `id` asked to leave and its leave waits to be stamped.
    fn leave_waiting(&self, id: u32) -> bool {
        self.sequencer.as_ref().is_some_and(|s| s.waiting.iter().any(|w| w.src == id && w.leave))
    }

    /// When member `id`, heard from at `heard`, is next due a probe.
    fn probe_due(&self, s: &SequencerRole, id: u32, heard: u64) -> u64 {
        let quiet = heard + self.cfg.probe_after(self.cfg.member_timeout_us);
        quiet.max(s.last_probe.get(&id).map_or(0, |t| t + self.cfg.retransmit_us))
    }

    /// Members that only listen speak when asked, and the heartbeat that
    /// asks everyone is held back while data flows and can be lost: a
    /// member quiet for a while is asked on its own, once per
    /// retransmission interval, until it answers or times out.
    fn probe_quiet_members(&mut self) {
        let now = self.now;
        let Some(s) = &self.sequencer else { return };
        let due: Vec<(u32, u64)> = s
            .last_heard
            .iter()
            .filter(|&(&id, &t)| id != self.membership.my_id && now >= self.probe_due(s, id, t))
            .filter_map(|(&id, _)| self.membership.members.get(&id).map(|&addr| (id, addr)))
            .collect();
        let Some(status) = self.status(FLAG_SYNC) else { return };
        for (id, addr) in due {
            self.send_to(addr, status.clone());
            if let Some(s) = &mut self.sequencer {
                s.last_probe.insert(id, now);
            }
        }
    }

    /// When the next quiet member is due a probe.
    pub(super) fn next_member_probe(&self) -> Option<u64> {
        let s = self.sequencer.as_ref()?;
        s.last_heard
            .iter()
            .filter(|&(&id, _)| id != self.membership.my_id)
            .map(|(&id, &t)| self.probe_due(s, id, t))
            .min()
    }
}

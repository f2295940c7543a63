//! The sequencer's side: stamping, acceptance under resilience r,
//! stability and history trimming, joins, and removing silent members.

use super::*;

impl GroupMember {
    pub(super) fn on_ack(&mut self, from: u64, src: u32, ack: u64) {
        if self.members.get(&src) != Some(&from) {
            if self.state == State::Active && self.seqr.is_some() {
                self.send_to(from, Body::NotMember);
            }
            return;
        }
        let now = self.now;
        let Some(s) = &mut self.seqr else { return };
        let next = s.next_seq;
        if let Some(a) = s.acks.get_mut(&src) {
            *a = (*a).max(ack.min(next));
        }
        s.last_heard.insert(src, now);
        if self.state == State::Active {
            self.seq_progress();
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_send(
        &mut self,
        from: u64,
        src: u32,
        msg_id: u32,
        ack: u64,
        leave: bool,
        payload: Vec<u8>,
        bb: bool,
    ) {
        if self.members.get(&src) != Some(&from) {
            self.send_to(from, Body::NotMember);
            return;
        }
        let now = self.now;
        if let Some(s) = &mut self.seqr {
            let next = s.next_seq;
            if let Some(a) = s.acks.get_mut(&src) {
                *a = (*a).max(ack.min(next));
            }
            s.last_heard.insert(src, now);
        }
        if payload.len() > self.cfg.max_message_size as usize {
            return;
        }
        self.seq_submit(src, msg_id, leave, payload, bb);
        self.seq_progress();
    }

    /// The sequencer considers sequencing (src, msg_id).
    pub(super) fn seq_submit(&mut self, src: u32, msg_id: u32, leave: bool, payload: Vec<u8>, bb: bool) {
        let Some(s) = &self.seqr else { return };
        let last = s.last_id.get(&src).copied().unwrap_or(0);
        if msg_id <= last {
            // Retransmission of something already sequenced: resend it to the sender.
            if src != self.my_id
                && let Some((&seq, e)) =
                    self.history.iter().rev().find(|(_, e)| e.sender == src && e.msg_id == msg_id)
            {
                let body = Body::Data {
                    seq,
                    accepted: self.accepted,
                    stable: self.stable,
                    flags: FLAG_RETRANS | self.need_ack_flag(),
                    entry: e.clone(),
                };
                let addr = self.members.get(&src).copied().unwrap_or(0);
                self.send_to(addr, body);
            }
            return;
        }
        if s.leaving {
            return;
        }
        if self.history_full() {
            self.request_sync();
            return;
        }
        let body = if leave {
            if !self.change_allowed() {
                return;
            }
            let successor = if src == self.my_id { self.pick_successor() } else { NO_MEMBER };
            EntryBody::Leave { successor }
        } else {
            EntryBody::App(payload)
        };
        let bb = bb && matches!(&body, EntryBody::App(p) if p.len() > self.cfg.bb_threshold as usize);
        if let Some(s) = &mut self.seqr {
            s.last_id.insert(src, msg_id);
            if leave && src == self.my_id {
                s.leaving = true;
            }
        }
        self.stamp(Entry { sender: src, msg_id, body }, bb);
    }

    pub(super) fn pick_successor(&self) -> u32 {
        let Some(s) = &self.seqr else {
            return NO_MEMBER;
        };
        let now = self.now;
        let mut best: Option<(u64, u32)> = None;
        for (&id, &ack) in &s.acks {
            if id == self.my_id {
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

    /// May the sequencer stamp a membership change now? Only one change may be
    /// unacknowledged at a time, so members' views differ by at most one step.
    pub(super) fn change_allowed(&self) -> bool {
        let Some(s) = &self.seqr else { return false };
        s.acks.iter().all(|(&id, &a)| id == self.my_id || a > self.last_change)
    }

    pub(super) fn request_sync(&mut self) {
        let now = self.now;
        let Some(s) = &mut self.seqr else { return };
        if s.last_sync_req.is_some_and(|t| now < t + self.cfg.retransmit_us) {
            return;
        }
        s.last_sync_req = Some(now);
        self.bcast_status(FLAG_SYNC);
    }

    /// Gives the next sequence number to `entry` and broadcasts it.
    pub(super) fn stamp(&mut self, entry: Entry, bb: bool) -> u64 {
        let Some(s) = &mut self.seqr else { return 0 };
        let seq = s.next_seq;
        s.next_seq += 1;
        self.history.insert(seq, entry.clone());
        self.known_next = seq + 1;
        self.advance_recv();
        if entry.sender == self.my_id
            && let Some(m) = self.send_queue.front_mut()
            && m.msg_id == entry.msg_id
            && !matches!(entry.body, EntryBody::Join { .. } | EntryBody::Remove { .. })
        {
            m.stamped = Some(seq);
        }
        self.recompute_accepted();
        let flags = self.need_ack_flag();
        let body = if bb {
            Body::BbAccept {
                seq,
                accepted: self.accepted,
                stable: self.stable,
                flags,
                sender: entry.sender,
                msg_id: entry.msg_id,
            }
        } else {
            Body::Data { seq, accepted: self.accepted, stable: self.stable, flags, entry }
        };
        self.bcast(body);
        seq
    }

    pub(super) fn recompute_accepted(&mut self) {
        let r = self.cfg.resilience as usize;
        let me = self.my_id;
        let Some(s) = &self.seqr else { return };
        let next = s.next_seq;
        let mut acc = self.accepted;
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
            .copied()
            .min()
            .unwrap_or(next)
            .min(next);
        self.accepted = acc;
        self.stable = self.stable.max(stable);
        if let Some(s) = &mut self.seqr {
            s.departing.retain(|_, (at, _)| *at >= acc);
        }
    }

    /// After acks or stamps: accept, deliver, trim, welcome, announce.
    pub(super) fn seq_progress(&mut self) {
        self.seq_settle();
        self.pump_send();
    }

    pub(super) fn seq_settle(&mut self) {
        let before = self.accepted;
        self.recompute_accepted();
        if self.accepted > before && self.effective_r() > 0 {
            self.bcast_status(0);
        }
        self.deliver();
        self.trim();
        self.send_welcomes(None);
    }

    /// Sends welcomes whose join entry is accepted: once when it becomes
    /// accepted, and again whenever the joiner repeats its request.
    pub(super) fn send_welcomes(&mut self, only: Option<u32>) {
        let accepted = self.accepted;
        let Some(s) = &mut self.seqr else { return };
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
            let body = Body::Welcome {
                member_id: id,
                join_seq: w.join_seq,
                sequencer: self.my_id,
                accepted: self.accepted,
                stable: self.stable,
                params: self.cfg.params(),
                members: w.members,
                secret: self.secret.0,
            };
            self.send_to(w.addr, body);
        }
    }

    pub(super) fn on_join_req(&mut self, from: u64) {
        if let Some((&id, _)) = self.members.iter().find(|(_, a)| **a == from) {
            self.send_welcomes(Some(id));
            return;
        }
        if self.seqr.as_ref().is_some_and(|s| s.leaving) {
            return;
        }
        if self.members.len() >= self.cfg.max_members as usize {
            self.send_to(from, Body::JoinDenied);
            return;
        }
        if !self.change_allowed() || self.history_full() {
            return;
        }
        let Some(s) = &mut self.seqr else { return };
        let id = s.next_member_id;
        s.next_member_id += 1;
        let seq = self.stamp(Entry { sender: id, msg_id: 0, body: EntryBody::Join { addr: from } }, false);
        let Some(s) = &mut self.seqr else { return };
        let members = self
            .members
            .iter()
            .map(|(&i, &a)| WelcomeMember {
                id: i,
                addr: a,
                last_msg_id: s.last_id.get(&i).copied().unwrap_or(0),
            })
            .collect();
        s.welcomes.insert(id, PendingWelcome { join_seq: seq, addr: from, members, sent: false });
        self.seq_progress();
    }

    pub(super) fn seq_timers(&mut self) {
        let now = self.now;
        let c = self.cfg.clone();
        let Some(s) = &self.seqr else { return };
        // Dead members.
        let dead: Vec<u32> = s
            .last_heard
            .iter()
            .filter(|(id, t)| **id != self.my_id && now >= **t + c.member_timeout_us)
            .map(|(id, _)| *id)
            .collect();
        let leaving = s.leaving;
        if !dead.is_empty() {
            let alive = self.members.len() - dead.len();
            if alive < quorum(&c, self.members.len()) {
                // We no longer hear from enough members to speak for the
                // group (we may be on the small side of a partition): stop
                // sequencing and let a reset sort it out.
                self.enter_reset();
                return;
            }
        }
        if !dead.is_empty() && leaving {
            if let Some(s) = &mut self.seqr {
                s.next_dead_check = now + c.retransmit_us;
            }
        } else if !dead.is_empty() {
            let mut removed = false;
            for id in &dead {
                if self.change_allowed() && !self.history_full() {
                    self.stamp(
                        Entry { sender: self.my_id, msg_id: 0, body: EntryBody::Remove { member: *id } },
                        false,
                    );
                    removed = true;
                    break;
                }
            }
            if let Some(s) = &mut self.seqr {
                if removed {
                    s.blocked_dead_since = None;
                } else {
                    s.next_dead_check = now + c.retransmit_us;
                    let since = *s.blocked_dead_since.get_or_insert(now);
                    if now >= since + c.member_timeout_us {
                        // Several dead members block each other's removal:
                        // a reset removes them all at once.
                        s.blocked_dead_since = None;
                        self.enter_reset();
                        return;
                    }
                }
            }
            self.seq_progress();
        } else if let Some(s) = &mut self.seqr {
            s.blocked_dead_since = None;
        }
        let Some(s) = &self.seqr else { return };
        // Members that only listen speak when asked. Data broadcasts hold
        // the heartbeat back, so while data flows, ask them anyway once one
        // has been quiet for half the member timeout (at the heartbeat's
        // pace), or it would soon count as dead.
        let quiet_due =
            now >= s.last_sync_bcast + c.heartbeat_us && self.listener_sync_due().is_some_and(|t| now >= t);
        if now >= s.last_bcast + c.heartbeat_us || quiet_due {
            self.bcast_status(FLAG_SYNC);
        }
        if self.history_full() {
            self.request_sync();
        }
        self.pump_send();
    }

    /// When the member heard from longest ago has been quiet for half the
    /// member timeout (and should be asked to answer).
    pub(super) fn listener_sync_due(&self) -> Option<u64> {
        let s = self.seqr.as_ref()?;
        let oldest = s.last_heard.iter().filter(|(id, _)| **id != self.my_id).map(|(_, t)| *t).min()?;
        Some(oldest + self.cfg.member_timeout_us / 2)
    }
}

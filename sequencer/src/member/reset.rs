//! Reset: a single-decree Paxos among the members of the incarnation
//! that elects a new sequencer, agrees on where the order is cut and on
//! the new membership, and installs it.

use super::*;

impl GroupMember {
    pub(super) fn round_timeout(&self) -> u64 {
        (self.cfg.retransmit_us * 25).max(self.cfg.heartbeat_us * 4)
    }

    pub(super) fn settle(&self) -> u64 {
        self.cfg.retransmit_us * 2
    }

    /// An active member stops normal work for a reset (a sequencer stops
    /// sequencing, remembering what it had accepted).
    fn stop_for_reset(&mut self) {
        if self.state == State::Active {
            self.flush_batch();
            self.state = State::Resetting;
            if let Some(s) = self.sequencer.take() {
                self.round.accepted_as_sequencer = Some(self.delivery.accepted);
                // What every member told us it knows to be stable: whether
                // our last change had settled (see `quorum_views`).
                let told = s.acks.keys().map(|id| s.stable_seen.get(id).copied().unwrap_or(0)).min();
                self.membership.stable_reported = told.unwrap_or(s.next_seq);
            }
            self.block();
        }
    }

    /// A member that gave up on its sequencer but hears it at work again
    /// goes back to work, unless it may count in someone else's round: it
    /// must have promised no one else's ballot (or been released), accepted
    /// no proposal, and not have been the sequencer. A round of its own is
    /// withdrawn, releasing those who promised it.
    pub(super) fn maybe_abort_reset(&mut self) {
        let Some(r) = &self.round.reset else { return };
        let own_round = match &r.phase {
            Phase::Waiting { .. } | Phase::Follower { .. } => None,
            Phase::Preparing { ballot, .. } | Phase::Fetching { ballot, .. } => Some(*ballot),
            Phase::Accepting { .. } => return,
        };
        let promised_free =
            self.round.promised == Ballot::default() || Some(self.round.promised) == own_round;
        if self.state != State::Resetting
            || !promised_free
            || self.round.accepted_view.is_some()
            || self.round.accepted_as_sequencer.is_some()
        {
            return;
        }
        if let Some(ballot) = own_round {
            self.bcast(Body::Nack { ballot });
        }
        self.round.promised = Ballot::default();
        self.round.reset = None;
        self.state = State::Active;
        self.timers.last_heard_sequencer = self.now;
        self.unblock();
        self.send_ack(0);
        self.pump_send();
    }

    pub(super) fn enter_reset(&mut self) {
        let now = self.now;
        self.stop_for_reset();
        if self.state != State::Resetting {
            return;
        }
        let mut candidates = BTreeMap::new();
        candidates.insert(self.membership.my_id, self.delivery.received_upto);
        let mut failed_rounds = 0;
        if let Some(r) = &self.round.reset {
            for (k, v) in &r.candidates {
                candidates.insert(*k, *v);
            }
            failed_rounds = r.failed_rounds;
            if matches!(r.phase, Phase::Preparing { .. } | Phase::Fetching { .. } | Phase::Accepting { .. }) {
                failed_rounds += 1;
            }
        }
        let abstain = self.round.reset.as_ref().is_some_and(|r| r.abstain);
        let until = now + self.settle() * (1 + 4 * failed_rounds.min(8) as u64);
        self.round.reset = Some(ResetState {
            failed_rounds,
            abstain,
            phase: Phase::Waiting { until, ranked: false },
            candidates,
        });
        let b = Body::ResetStatus { recv_upto: self.candidacy() };
        self.bcast(b);
    }

    pub(super) fn become_follower(&mut self) {
        let now = self.now;
        self.stop_for_reset();
        match &mut self.round.reset {
            Some(r) => r.phase = Phase::Follower { since: now },
            None => {
                let mut candidates = BTreeMap::new();
                candidates.insert(self.membership.my_id, self.delivery.received_upto);
                self.round.reset = Some(ResetState {
                    failed_rounds: 0,
                    abstain: false,
                    phase: Phase::Follower { since: now },
                    candidates,
                })
            }
        }
    }

    pub(super) fn on_reset_status(&mut self, from: u64, src: u32, recv_upto: u64) {
        if !self.membership.members.contains_key(&src) && !self.may_coordinate(src, from) {
            return;
        }
        if src == self.membership.sequencer_id && self.sequencer.is_none() && self.state == State::Active {
            // Our sequencer stepped down: join its reset now rather than
            // after the sequencer timeout.
            self.enter_reset();
        }
        if self.is_sequencer()
            && self.rate_ok(from)
            && let Some(body) = self.status(0)
        {
            // A member gave up on us too early: show it we are here.
            self.send_to(from, body);
        }
        let max = self.cfg.max_members as usize * 2;
        let Some(r) = &mut self.round.reset else { return };
        if !r.candidates.contains_key(&src) && r.candidates.len() >= max {
            // Bounded: members only, and few of them.
            return;
        }
        let new = r.candidates.insert(src, recv_upto).is_none();
        if new && self.state == State::Resetting {
            let b = Body::ResetStatus { recv_upto: self.candidacy() };
            self.send_to(from, b);
        }
    }

    pub(super) fn my_rank(&self) -> usize {
        let Some(r) = &self.round.reset else { return 0 };
        let mine = (core::cmp::Reverse(self.delivery.received_upto), self.membership.my_id);
        // Members our last change took out will not head the group.
        let departed = |id: &u32| {
            self.membership.prev_members.contains_key(id) && !self.membership.members.contains_key(id)
        };
        r.candidates
            .iter()
            .filter(|(id, up)| {
                **id != self.membership.my_id && !departed(id) && (core::cmp::Reverse(**up), **id) < mine
            })
            .count()
    }

    pub(super) fn reset_timers(&mut self) {
        let now = self.now;
        let rt = self.round_timeout();
        let retrans = self.cfg.retransmit_us;
        let settle = self.settle();
        let Some(r) = &self.round.reset else { return };
        match &r.phase {
            Phase::Waiting { until, ranked } => {
                if now < *until {
                    return;
                }
                if !self.may_head_group() {
                    self.become_follower();
                    return;
                }
                if !*ranked {
                    let rank = self.my_rank() as u64;
                    if rank > 0 {
                        let entered = *until;
                        if let Some(r) = &mut self.round.reset {
                            r.phase =
                                Phase::Waiting { until: entered + settle * (1 + 3 * rank), ranked: true };
                        }
                        if now < entered + settle * (1 + 3 * rank) {
                            return;
                        }
                    }
                }
                self.start_prepare();
            }
            Phase::Follower { since } => {
                if now >= since + rt {
                    self.enter_reset();
                }
            }
            Phase::Preparing { started, last_tx, .. }
            | Phase::Fetching { started, last_tx, .. }
            | Phase::Accepting { started, last_tx, .. } => {
                if now >= started + rt {
                    self.enter_reset();
                    return;
                }
                if now >= last_tx + retrans {
                    self.reset_retransmit();
                }
                self.reset_progress();
            }
        }
    }

    pub(super) fn start_prepare(&mut self) {
        let now = self.now;
        let round = self.round.highest_round.max(self.round.promised.round) + 1;
        self.round.highest_round = round;
        let ballot = Ballot { round, id: self.membership.my_id };
        self.round.promised = ballot;
        let mut promises = BTreeMap::new();
        promises.insert(self.membership.my_id, self.own_promise());
        let quorum_members = self.quorum_views();
        if let Some(r) = &mut self.round.reset {
            r.phase = Phase::Preparing { ballot, quorum_members, promises, started: now, last_tx: now };
        }
        self.bcast(Body::Prepare { ballot });
        self.reset_progress();
    }

    /// The memberships our majority may come from. Our view; the one before
    /// our last membership change while that change is not settled (we have
    /// not reported it stable, or as the sequencer were not told by all that
    /// it is): then no later change can exist (see `change_allowed`); and
    /// the one after a change we hold past a gap in what we received (we
    /// cannot have acknowledged it, so it is the last change there is). The
    /// group's views differ by at most one change.
    fn quorum_views(&self) -> Quorum {
        let mut views = alloc::vec![self.membership.members.clone()];
        if self.membership.prev_members != self.membership.members
            && self.membership.stable_reported <= self.membership.last_change
        {
            views.push(self.membership.prev_members.clone());
        }
        if let Some(next) = self.view_after_held_change() {
            views.push(next);
        }
        Quorum { views }
    }

    /// Membership after the first change among the entries we hold past a
    /// gap, unless that change takes us out.
    fn view_after_held_change(&self) -> Option<BTreeMap<u32, u64>> {
        let (_, e) = self
            .delivery
            .history
            .range(self.delivery.received_upto..)
            .find(|(_, e)| !matches!(e.body, EntryBody::App(_)))?;
        let mut m = self.membership.members.clone();
        match &e.body {
            EntryBody::Join { addr, .. } => {
                m.insert(e.sender, *addr);
            }
            EntryBody::Leave { .. } => {
                m.remove(&e.sender);
            }
            EntryBody::Remove { member } => {
                m.remove(member);
            }
            EntryBody::App(_) | EntryBody::Reset { .. } => return None,
        }
        m.contains_key(&self.membership.my_id).then_some(m)
    }

    pub(super) fn own_promise(&self) -> PromiseInfo {
        PromiseInfo {
            addr: self.me,
            seq_accepted: self.round.accepted_as_sequencer,
            delivered: self.delivery.next_deliver,
            joined: self.membership.joined_at,
            recv_upto: self.delivery.received_upto,
            held: self.held_ranges(),
            accepted: self.round.accepted_view.clone(),
        }
    }

    pub(super) fn held_ranges(&self) -> Vec<(u64, u64)> {
        let mut v: Vec<(u64, u64)> = Vec::new();
        for &s in self.delivery.history.keys() {
            match v.last_mut() {
                Some((_, b)) if *b == s => *b = s + 1,
                _ => {
                    if v.len() >= 1000 {
                        break;
                    }
                    v.push((s, s + 1));
                }
            }
        }
        v
    }

    pub(super) fn reset_retransmit(&mut self) {
        let now = self.now;
        let Some(r) = &mut self.round.reset else { return };
        let mut sends: Vec<(u64, Body)> = Vec::new();
        let mut bcast: Option<Body> = None;
        match &mut r.phase {
            Phase::Preparing { ballot, last_tx, quorum_members, promises, .. } => {
                *last_tx = now;
                bcast = Some(Body::Prepare { ballot: *ballot });
                for p in promises.values().filter(|p| !quorum_members.contains_addr(p.addr)) {
                    if p.joined >= self.delivery.received_upto
                        && !self.delivery.history.contains_key(&p.joined)
                    {
                        sends.push((p.addr, Body::Retrans { from: p.joined, to: p.joined + 1, any: true }));
                    }
                }
            }
            Phase::Fetching { promises, base, last_tx, .. } => {
                *last_tx = now;
                let min_d = promises.values().map(|p| p.delivered).min().unwrap_or(0);
                let mut s = min_d;
                let mut asked = 0;
                while s < *base && asked < 4 * RETRANS_BATCH {
                    if !self.delivery.history.contains_key(&s) {
                        // Ask a holder other than us, rotating by time.
                        let holders: Vec<u64> = promises
                            .values()
                            .filter(|p| p.addr != self.me && ranges_contain(&p.held, s))
                            .map(|p| p.addr)
                            .collect();
                        if !holders.is_empty() {
                            let h = holders[(now / 7 + s) as usize % holders.len()];
                            sends.push((h, Body::Retrans { from: s, to: s + 1, any: true }));
                        }
                        asked += 1;
                    }
                    s += 1;
                }
            }
            Phase::Accepting { ballot, view, last_tx, .. } => {
                *last_tx = now;
                bcast = Some(Body::Accept { ballot: *ballot, view: view.clone() });
            }
            _ => {}
        }
        if let Some(b) = bcast {
            self.bcast(b);
        }
        for (a, b) in sends {
            self.send_to(a, b);
        }
    }

    /// Whether `src` at `from` is a member in our view or the one before it.
    /// Whether we can head the next incarnation: not if our leave or removal
    /// is in what we hold, nor once a round of ours found us outside the
    /// cut. Then we only follow.
    fn may_head_group(&self) -> bool {
        self.membership.members.contains_key(&self.membership.my_id)
            && self.round.reset.as_ref().is_none_or(|r| !r.abstain)
    }

    /// What we tell others to rank us by as a coordinator (nothing, if we
    /// cannot head the group).
    fn candidacy(&self) -> u64 {
        if self.may_head_group() { self.delivery.received_upto } else { 0 }
    }

    /// Whether `src` may coordinate a reset we take part in: a member we
    /// know, or one newer than any we know (it joined in an entry we have
    /// not received; a departed member's id is never newer).
    fn may_coordinate(&self, src: u32, from: u64) -> bool {
        self.known_member(src, from)
            || src > self.max_known_id()
            || self.delivery.history.range(self.delivery.received_upto..).any(|(_, e)| {
                e.sender == src && matches!(e.body, EntryBody::Join { addr, .. } if addr == from)
            })
    }

    /// Whether `src` at `from` may pass on entries it holds: a member we
    /// know, or one that joined in an entry we lack.
    pub(super) fn may_relay(&self, src: u32, from: u64) -> bool {
        self.may_coordinate(src, from)
    }

    pub(super) fn known_member(&self, src: u32, from: u64) -> bool {
        self.membership.members.get(&src) == Some(&from)
            || self.membership.prev_members.get(&src) == Some(&from)
    }

    /// An active member that hears its sequencer does not join resets,
    /// unless the sequencer itself asks (it stepped down).
    pub(super) fn healthy(&self, asking: u32) -> bool {
        self.state == State::Active
            && asking != self.membership.sequencer_id
            && (self.sequencer.is_some()
                || self.now < self.timers.last_heard_sequencer + self.cfg.sequencer_timeout_us / 2)
    }

    pub(super) fn on_prepare(&mut self, from: u64, src: u32, ballot: Ballot) {
        if !matches!(self.state, State::Active | State::Resetting) || self.healthy(src) {
            return;
        }
        if !self.may_coordinate(src, from) || ballot.id != src {
            return;
        }
        self.round.highest_round = self.round.highest_round.max(ballot.round);
        if ballot > self.round.promised {
            self.round.promised = ballot;
            self.become_follower();
        } else if ballot < self.round.promised {
            let b = Body::Nack { ballot: self.round.promised };
            self.send_to(from, b);
            return;
        }
        let p = self.own_promise();
        self.send_to(
            from,
            Body::Promise {
                ballot,
                delivered: p.delivered,
                joined: p.joined,
                recv_upto: p.recv_upto,
                held: p.held,
                accepted: p.accepted,
                seq_accepted: p.seq_accepted,
            },
        );
    }

    pub(super) fn on_promise(&mut self, src: u32, ballot: Ballot, info: PromiseInfo) {
        if !self.may_coordinate(src, info.addr) {
            return;
        }
        let Some(r) = &mut self.round.reset else { return };
        if !r.candidates.contains_key(&src) && r.candidates.len() >= self.cfg.max_members as usize * 2 {
            return;
        }
        r.candidates.insert(src, info.recv_upto);
        let Phase::Preparing { ballot: b, quorum_members, promises, .. } = &mut r.phase else { return };
        if *b != ballot {
            return;
        }
        // A promiser we do not count yet joined in an entry we lack: it
        // holds that entry, and with it we learn the view that counts it.
        let unknown_join = (!quorum_members.contains(src, info.addr)).then_some((info.addr, info.joined));
        promises.insert(src, info);
        if let Some((addr, joined)) = unknown_join {
            self.fetch_join_entry(addr, joined);
        }
        self.reset_progress();
    }

    /// Asks a promiser we did not know for its join entry.
    fn fetch_join_entry(&mut self, addr: u64, joined: u64) {
        if joined >= self.delivery.received_upto && !self.delivery.history.contains_key(&joined) {
            self.send_to(addr, Body::Retrans { from: joined, to: joined + 1, any: true });
        }
    }

    pub(super) fn on_nack(&mut self, from: u64, src: u32, ballot: Ballot) {
        if !self.may_coordinate(src, from) {
            return;
        }
        self.round.highest_round = self.round.highest_round.max(ballot.round);
        if ballot.id == src && ballot == self.round.promised && ballot.id != self.membership.my_id {
            // Its coordinator withdrew the round we promised: we are free
            // again, and go back to work if our sequencer is alive.
            self.round.promised = Ballot::default();
            if self.now < self.timers.last_heard_sequencer + self.cfg.sequencer_timeout_us / 2 {
                self.maybe_abort_reset();
            }
            return;
        }
        let Some(r) = &self.round.reset else { return };
        let mine = match &r.phase {
            Phase::Preparing { ballot, .. }
            | Phase::Fetching { ballot, .. }
            | Phase::Accepting { ballot, .. } => *ballot,
            _ => return,
        };
        if ballot > mine {
            // Someone else coordinates a higher round; wait for it.
            self.become_follower();
        }
    }

    pub(super) fn on_accept(&mut self, from: u64, src: u32, ballot: Ballot, view: View) {
        if !matches!(self.state, State::Active | State::Resetting) || self.healthy(src) {
            return;
        }
        if !self.may_coordinate(src, from) || ballot.id != src || view.old_inc != self.membership.incarnation
        {
            return;
        }
        self.round.highest_round = self.round.highest_round.max(ballot.round);
        if ballot < self.round.promised {
            let b = Body::Nack { ballot: self.round.promised };
            self.send_to(from, b);
            return;
        }
        if ballot > self.round.promised || self.state == State::Active {
            self.round.promised = ballot;
            self.become_follower();
        }
        if let Some(r) = &mut self.round.reset
            && let Phase::Follower { since } = &mut r.phase
        {
            *since = self.now;
        }
        self.round.accepted_view = Some((ballot, view));
        self.send_to(from, Body::Accepted { ballot });
    }

    pub(super) fn on_accepted(&mut self, from: u64, src: u32, ballot: Ballot) {
        let Some(r) = &mut self.round.reset else { return };
        // A vote counts for the member at its own address only.
        if let Phase::Accepting { ballot: b, accepted_by, quorum_members, .. } = &mut r.phase
            && *b == ballot
            && quorum_members.contains(src, from)
        {
            accepted_by.insert(src);
            self.reset_progress();
        }
    }

    /// Moves the coordinator's phases forward when it can.
    pub(super) fn reset_progress(&mut self) {
        let Some(r) = &self.round.reset else { return };
        match &r.phase {
            Phase::Preparing { .. } => self.progress_preparing(),
            Phase::Fetching { .. } => self.progress_fetching(),
            Phase::Accepting { quorum_members, view, accepted_by, .. } => {
                if !quorum_members.satisfied(&self.cfg, accepted_by) {
                    return;
                }
                let view = view.clone();
                self.bcast(Body::Decided { view: view.clone() });
                self.on_decided(view);
            }
            _ => {}
        }
    }

    /// Phase 1: once a quorum (and everyone who answers in time) promised,
    /// adopt a view accepted earlier or choose where to cut the order.
    fn progress_preparing(&mut self) {
        let Some(ResetState {
            phase: Phase::Preparing { ballot, quorum_members, promises, started, .. },
            candidates,
            ..
        }) = &self.round.reset
        else {
            return;
        };
        // What we learned meanwhile (entries fetched from promisers) may
        // show a view that counts more of them.
        let mut quorum_members = quorum_members.clone();
        quorum_members.add(self.quorum_views());
        let ids: BTreeSet<u32> = promises.keys().copied().collect();
        let ok = quorum_members.satisfied(&self.cfg, &ids);
        let all = quorum_members.all_in(&ids);
        // Members we heard from in this reset are alive: give their promises
        // time to come through loss (or they are left out of the group);
        // silent ones are likely dead and get a short window.
        let live_missing = quorum_members
            .views
            .iter()
            .flat_map(|v| v.keys())
            .any(|k| !ids.contains(k) && candidates.contains_key(k));
        let patience = if live_missing { self.round_timeout() / 2 } else { self.cfg.retransmit_us * 3 };
        if !ok || (!all && self.now < started + patience) {
            return;
        }
        let (ballot, quorum_members, promises, started) =
            (*ballot, quorum_members.clone(), promises.clone(), *started);
        // Adopt the highest accepted view, if any (Paxos rule).
        if let Some((_, v)) = promises.values().filter_map(|p| p.accepted.clone()).max_by_key(|(b, _)| *b) {
            self.start_accepting(ballot, quorum_members, v, started);
            return;
        }
        let base = cut_point(&promises);
        if let Some(r) = &mut self.round.reset {
            r.phase = Phase::Fetching { ballot, quorum_members, promises, base, started, last_tx: 0 };
        }
        self.reset_progress();
    }

    /// Fetch what we lack below the cut, then propose the view.
    fn progress_fetching(&mut self) {
        let Some(ResetState {
            phase: Phase::Fetching { ballot, quorum_members, promises, base, started, .. },
            ..
        }) = &self.round.reset
        else {
            return;
        };
        let min_d = promises.values().map(|p| p.delivered).min().unwrap_or(0);
        let base = *base;
        let mut missing =
            (min_d.max(self.delivery.next_deliver)..base).filter(|s| !self.delivery.history.contains_key(s));
        let (ballot, quorum_members, promises, started) =
            (*ballot, quorum_members.clone(), promises.clone(), *started);
        let view = match missing.next() {
            // Others delivered entries and dropped them once all but us held
            // them (we were cut off): we cannot head the group.
            Some(s) if !promises.values().any(|p| ranges_contain(&p.held, s)) => None,
            Some(_) => {
                if self.now >= self.reset_last_tx() + self.cfg.retransmit_us {
                    self.reset_retransmit();
                }
                return;
            }
            None => self.build_view(&promises, min_d, base),
        };
        let Some(view) = view else {
            // We are not in the group at the cut (our leave or removal is
            // in the order, or we joined past entries nobody has any more):
            // let someone else coordinate.
            if let Some(r) = &mut self.round.reset {
                r.abstain = true;
            }
            self.become_follower();
            return;
        };
        self.start_accepting(ballot, quorum_members, view, started);
    }

    pub(super) fn reset_last_tx(&self) -> u64 {
        match self.round.reset.as_ref().map(|r| &r.phase) {
            Some(
                Phase::Preparing { last_tx, .. }
                | Phase::Fetching { last_tx, .. }
                | Phase::Accepting { last_tx, .. },
            ) => *last_tx,
            _ => 0,
        }
    }

    pub(super) fn start_accepting(
        &mut self,
        ballot: Ballot,
        quorum_members: Quorum,
        view: View,
        started: u64,
    ) {
        let now = self.now;
        self.round.accepted_view = Some((ballot, view.clone()));
        let mut accepted_by = BTreeSet::new();
        accepted_by.insert(self.membership.my_id);
        if let Some(r) = &mut self.round.reset {
            r.phase = Phase::Accepting {
                ballot,
                quorum_members,
                view: view.clone(),
                accepted_by,
                started,
                last_tx: now,
            };
        }
        self.bcast(Body::Accept { ballot, view });
        self.reset_progress();
    }

    /// The coordinator's proposal, from the promises and the entries it
    /// holds. Members that delivered past the cut (joiners whose join comes
    /// after entries nobody holds any more) cannot stay.
    pub(super) fn build_view(
        &self,
        promises: &BTreeMap<u32, PromiseInfo>,
        min_d: u64,
        base: u64,
    ) -> Option<View> {
        if self.delivery.next_deliver > base {
            return None;
        }
        // Membership at `base`: our delivered view plus the entries up to base.
        let mut m = self.membership.view.clone();
        let mut rights = self.membership.member_rights.clone();
        for s in self.delivery.next_deliver..base {
            let e = self.delivery.history.get(&s)?;
            match &e.body {
                EntryBody::Join { addr, rights: r } => {
                    m.insert(e.sender, *addr);
                    rights.insert(e.sender, Rights(*r));
                }
                EntryBody::Leave { .. } => {
                    m.remove(&e.sender);
                }
                EntryBody::Remove { member } => {
                    m.remove(member);
                }
                EntryBody::Reset { removed, .. } => {
                    for (id, _) in removed {
                        m.remove(id);
                    }
                }
                EntryBody::App(_) => {}
            }
        }
        if !m.contains_key(&self.membership.my_id) {
            return None;
        }
        let max_d = promises.values().map(|p| p.delivered).filter(|&d| d <= base).max().unwrap_or(0);
        let mut members = Vec::new();
        let mut removed = Vec::new();
        for (&id, &addr) in &m {
            match promises.get(&id) {
                Some(p) if p.addr == addr && p.delivered <= base => members.push(ViewMember {
                    id,
                    addr,
                    ack: p.recv_upto.min(base),
                    rights: rights.get(&id).map_or(0, |r| r.0),
                }),
                _ => removed.push((id, addr)),
            }
        }
        Some(View {
            old_inc: self.membership.incarnation,
            new_inc: self.membership.incarnation.wrapping_add(1),
            sequencer: self.membership.my_id,
            min_d,
            floor: max_d.min(base),
            base,
            members,
            removed,
        })
    }

    pub(super) fn on_decided(&mut self, v: View) {
        if !matches!(self.state, State::Active | State::Resetting) {
            return;
        }
        if v.old_inc != self.membership.incarnation {
            if newer(v.old_inc, self.membership.incarnation) {
                // A newer incarnation we took no part in: we are out.
                self.expel();
            }
            return;
        }
        if !v.members.iter().any(|m| m.id == self.membership.my_id && m.addr == self.me)
            || self.delivery.next_deliver > v.base
        {
            // Left out, or we delivered past the cut (we went back to work
            // after promising): the new incarnation is not ours.
            self.expel();
            return;
        }
        self.install(v);
    }

    pub(super) fn install(&mut self, v: View) {
        let now = self.now;
        self.membership.incarnation = v.new_inc;
        self.membership.members = v.members.iter().map(|m| (m.id, m.addr)).collect();
        self.membership.member_rights = v.members.iter().map(|m| (m.id, Rights(m.rights))).collect();
        self.membership.prev_members = self.membership.members.clone();
        self.round.accepted_as_sequencer = None;
        self.membership.members_base = v.base;
        self.delivery.history.retain(|&k, _| k < v.base);
        self.delivery.received_upto = self.delivery.received_upto.min(v.base);
        self.advance_recv();
        self.delivery.known_end = v.base + 1;
        self.delivery.accepted = self.delivery.accepted.max(v.floor).min(v.base);
        self.delivery.stable = self.delivery.stable.min(v.base);
        self.membership.last_change = v.base;
        self.membership.stable_reported = 0;
        self.delivery.bb_pending.clear();
        self.delivery.bb_awaiting.clear();
        self.timers.last_sequencer_probe = None;
        if let Some(m) = self.send_queue.front_mut() {
            if m.stamped.is_some_and(|s| s >= v.base) {
                m.stamped = None;
            }
            m.last_tx = None;
            m.tries = 0;
        }
        self.round.promised = Ballot::default();
        self.round.accepted_view = None;
        self.round.reset = None;
        self.state = State::Active;
        self.timers.last_heard_sequencer = now;
        self.delivery.last_gap_request = None;
        let old_seq = self.membership.sequencer_id;
        self.membership.sequencer_id = v.sequencer;
        self.membership.sequencer_addr = self.membership.members.get(&v.sequencer).copied().unwrap_or(0);
        if old_seq != v.sequencer {
            self.events.push_back(Event::SequencerChanged {
                member: v.sequencer,
                addr: self.membership.sequencer_addr,
            });
        }
        self.unblock();
        let is_seq = v.sequencer == self.membership.my_id;
        self.round.last_decided = Some(v.clone());
        if is_seq {
            self.start_incarnation(&v);
        } else {
            self.sequencer = None;
            self.send_ack(0);
            self.gap_repair();
        }
        self.pump_send();
    }

    /// As the new sequencer: take over from what the view says each member
    /// holds, and stamp the reset entry that opens the incarnation.
    fn start_incarnation(&mut self, v: &View) {
        let acks: Vec<(u32, u64)> =
            v.members.iter().filter(|m| m.id != self.membership.my_id).map(|m| (m.id, m.ack)).collect();
        let mut last_id = self.delivery.delivered_last_id.clone();
        for e in self.delivery.history.values() {
            if matches!(e.body, EntryBody::App(_) | EntryBody::Leave { .. }) {
                let l = last_id.entry(e.sender).or_insert(0);
                *l = (*l).max(e.msg_id);
            }
        }
        let next_member_id = self.max_known_id().saturating_add(1);
        let mut s = SequencerRole::new(v.base, self.now, next_member_id, &acks);
        s.last_id = last_id;
        self.sequencer = Some(s);
        let reset = EntryBody::Reset { new_inc: v.new_inc, removed: v.removed.clone() };
        self.stamp(Entry { sender: self.membership.my_id, msg_id: 0, body: reset }, false);
        self.seq_progress();
        self.bcast_status(FLAG_SYNC);
    }
}

/// Where a reset cuts the order: from the lowest point anyone still needs,
/// everything is kept without a gap that some promiser holds or delivered
/// itself (a member delivered everything from its join up to its
/// delivery point). A member that joined after a gap delivered past it:
/// what it missed is lost and it cannot stay. If the old sequencer
/// promised, what it had not accepted was delivered nowhere and may be
/// dropped.
fn cut_point(promises: &BTreeMap<u32, PromiseInfo>) -> u64 {
    let min_d = promises.values().map(|p| p.delivered).min().unwrap_or(0);
    let mut reach = min_d;
    loop {
        let covering = promises
            .values()
            .flat_map(|p| p.held.iter().copied().chain(core::iter::once((p.joined, p.delivered))))
            .filter(|&(a, b)| a <= reach && reach < b)
            .map(|(_, b)| b)
            .max();
        match covering {
            Some(end) => reach = end,
            None => break,
        }
    }
    let max_d = promises.values().map(|p| p.delivered).filter(|&d| d <= reach).max().unwrap_or(min_d);
    let mut base = reach;
    if let Some(a) = promises.values().filter_map(|p| p.seq_accepted).max() {
        base = base.min(a.max(max_d));
    }
    base.max(max_d)
}

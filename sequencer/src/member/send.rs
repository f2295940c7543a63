//! A member's own messages: one in flight, retransmitted until stamped.
//!
//! A message up to `bb_threshold` bytes goes to the sequencer alone (PB); a
//! longer one is broadcast by its sender and the sequencer only names it in
//! the order (BB). Retransmissions back off exponentially (bounded by
//! `MAX_BACKOFF_SHIFT`) and go to the sequencer alone: the members that
//! missed a BB payload fetch its entry like any other gap.

use super::*;

impl GroupMember {
    /// How long to wait for `m` to be stamped before sending it again.
    pub(super) fn send_interval(&self, m: &OutMsg) -> u64 {
        self.cfg.retransmit_us << m.tries.saturating_sub(1).min(MAX_BACKOFF_SHIFT)
    }

    /// Whether a message is long enough for the BB method.
    fn is_bb(&self, leave: bool, payload: &[u8]) -> bool {
        !leave && payload.len() > self.cfg.bb_threshold as usize
    }

    /// Sends the message at the head of the queue if it is due.
    pub(super) fn pump_send(&mut self) {
        if self.state != State::Active {
            return;
        }
        let Some(m) = self.send_queue.front() else {
            return;
        };
        if m.stamped.is_some() {
            return;
        }
        if self.sequencer.is_some() {
            self.pump_own_as_sequencer();
            return;
        }
        if m.last_tx.is_some_and(|t| self.now < t + self.send_interval(m)) {
            return;
        }
        let (msg_id, leave, payload, first) = (m.msg_id, m.leave, m.payload.clone(), m.tries == 0);
        if let Some(m) = self.send_queue.front_mut() {
            m.last_tx = Some(self.now);
            m.tries += 1;
        }
        let ack = self.delivery.received_upto;
        self.delivery.last_ack_sent = ack;
        let to = self.membership.sequencer_addr;
        if !self.is_bb(leave, &payload) {
            self.send_to(to, Body::Send { msg_id, ack, leave, payload });
        } else if first {
            let me = self.membership.my_id;
            self.keep_own_bb_payload(me, msg_id, &payload);
            self.bcast(Body::BbData { msg_id, ack, payload });
        } else {
            self.send_to(to, Body::BbData { msg_id, ack, payload });
        }
    }

    /// Keeps our own BB payload for when its accept comes back.
    fn keep_own_bb_payload(&mut self, me: u32, msg_id: u32, payload: &[u8]) {
        if !self.delivery.bb_pending.iter().any(|(s, m, _)| *s == me && *m == msg_id) {
            if self.delivery.bb_pending.len() >= BB_PENDING_MAX {
                self.delivery.bb_pending.pop_front();
            }
            self.delivery.bb_pending.push_back((me, msg_id, payload.to_vec()));
        }
    }

    /// The sequencer stamps its own messages directly; a long one is
    /// broadcast first and named in the order like anyone else's BB message.
    fn pump_own_as_sequencer(&mut self) {
        while self.state == State::Active && self.sequencer.is_some() {
            let Some(m) = self.send_queue.front() else {
                break;
            };
            if m.stamped.is_some() {
                break;
            }
            let (msg_id, leave, payload, first) = (m.msg_id, m.leave, m.payload.clone(), m.tries == 0);
            let bb = self.is_bb(leave, &payload);
            if let Some(m) = self.send_queue.front_mut() {
                m.tries += 1;
            }
            if bb && first {
                let ack = self.delivery.received_upto;
                self.bcast(Body::BbData { msg_id, ack, payload: payload.clone() });
            }
            let me = self.membership.my_id;
            self.seq_submit(Submission { src: me, msg_id, leave, payload, bb });
            if let Some(m) = self.send_queue.front_mut()
                && m.msg_id == msg_id
                && m.stamped.is_none()
            {
                // Not possible now (history full, change pending): it waits
                // at the sequencer and goes on progress.
                m.last_tx = Some(self.now);
                break;
            }
            self.seq_settle();
        }
    }
}

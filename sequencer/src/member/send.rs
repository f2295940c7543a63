//! A member's own messages: one in flight, retransmitted until stamped.

use super::*;

impl GroupMember {
    pub(super) fn pump_send(&mut self) {
        if self.state != State::Active {
            return;
        }
        let now = self.now;
        let retrans = self.cfg.retransmit_us;
        let bb_threshold = self.cfg.bb_threshold as usize;
        let Some(m) = self.send_queue.front() else {
            return;
        };
        if m.stamped.is_some() {
            return;
        }
        if self.seqr.is_some() {
            // The sequencer stamps its own messages directly.
            while self.state == State::Active && self.seqr.is_some() {
                let Some(m) = self.send_queue.front() else {
                    break;
                };
                if m.stamped.is_some() {
                    break;
                }
                let (msg_id, leave, payload) = (m.msg_id, m.leave, m.payload.clone());
                let me = self.my_id;
                self.seq_submit(me, msg_id, leave, payload, false);
                if let Some(m) = self.send_queue.front_mut()
                    && m.msg_id == msg_id
                    && m.stamped.is_none()
                {
                    // Not possible now (history full, change pending): retry
                    // on progress or after the retransmission interval.
                    m.last_tx = Some(self.now);
                    break;
                }
                self.seq_settle();
            }
            return;
        }
        if m.last_tx.is_some_and(|t| now < t + retrans) {
            return;
        }
        let (msg_id, leave, payload) = (m.msg_id, m.leave, m.payload.clone());
        if let Some(m) = self.send_queue.front_mut() {
            m.last_tx = Some(now);
        }
        let ack = self.recv_upto;
        self.last_ack_sent = ack;
        if !leave && payload.len() > bb_threshold {
            let me = self.my_id;
            if !self.bb_pending.iter().any(|(s, m, _)| *s == me && *m == msg_id) {
                if self.bb_pending.len() >= BB_PENDING_MAX {
                    self.bb_pending.pop_front();
                }
                self.bb_pending.push_back((me, msg_id, payload.clone()));
            }
            self.bcast(Body::BbData { msg_id, ack, payload });
        } else {
            let a = self.seq_addr;
            self.send_to(a, Body::Send { msg_id, ack, leave, payload });
        }
    }
}

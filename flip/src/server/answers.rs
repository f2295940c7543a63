//! What answering LOCATEs may cost a server. Each HERE_IS carries a signature
//! (see the `locate` module), and anyone may broadcast LOCATEs with fresh nonces, so
//! without a bound a flood would keep the server signing. Here: a per-port and a
//! per-station budget of signatures per window, and a small cache of proofs already
//! made, so that the copies of one LOCATE (a client's retries carry the same nonce)
//! are answered again without signing again.

use alloc::collections::{BTreeMap, VecDeque};

use amoeba_abi::Port;

use crate::config::Config;
use crate::wire::{HERE_IS_PROOF_LEN, LOCATE_NONCE_LEN, Mac};

/// Proofs remembered for answering copies of a LOCATE again.
const PROOFS_KEPT: usize = 64;
/// Most stations counted in one window; a station beyond them gets no new proof
/// until the next window (the per-port budget bounds the cost anyway).
const STATIONS_COUNTED: usize = 1024;

/// A proof made for one LOCATE: its port, nonce and the epoch it signed.
struct Made {
    port: Port,
    nonce: [u8; LOCATE_NONCE_LEN],
    epoch: u64,
    proof: [u8; HERE_IS_PROOF_LEN],
}

/// The budgets of the current window and the proofs made lately.
#[derive(Default)]
pub(super) struct AnswerBudget {
    /// Start of the current window.
    window_start: u64,
    /// Signatures made in this window, per port.
    per_port: BTreeMap<Port, u32>,
    /// Signatures made in this window, per asking station.
    per_station: BTreeMap<Mac, u32>,
    /// The latest proofs, oldest first.
    made: VecDeque<Made>,
}

impl AnswerBudget {
    /// The proof already made for this LOCATE, if it is still kept.
    pub fn made(
        &self,
        port: Port,
        nonce: &[u8; LOCATE_NONCE_LEN],
        epoch: u64,
    ) -> Option<[u8; HERE_IS_PROOF_LEN]> {
        self.made.iter().find(|m| m.port == port && m.nonce == *nonce && m.epoch == epoch).map(|m| m.proof)
    }

    /// Whether a new signature for `port`, asked by `station`, fits this window's
    /// budgets; if so it is counted.
    pub fn allow(&mut self, now: u64, port: Port, station: Mac, cfg: &Config) -> bool {
        if now >= self.window_start.saturating_add(cfg.here_is_window) {
            self.window_start = now;
            self.per_port.clear();
            self.per_station.clear();
        }
        let by_port = self.per_port.get(&port).copied().unwrap_or(0);
        let by_station = self.per_station.get(&station).copied();
        let station_known = by_station.is_some() || self.per_station.len() < STATIONS_COUNTED;
        if by_port >= cfg.here_is_per_port
            || by_station.unwrap_or(0) >= cfg.here_is_per_station
            || !station_known
        {
            return false;
        }
        self.per_port.insert(port, by_port + 1);
        self.per_station.insert(station, by_station.unwrap_or(0) + 1);
        true
    }

    /// Keep a proof just made, for copies of its LOCATE.
    pub fn keep(
        &mut self,
        port: Port,
        nonce: [u8; LOCATE_NONCE_LEN],
        epoch: u64,
        proof: [u8; HERE_IS_PROOF_LEN],
    ) {
        if self.made.len() >= PROOFS_KEPT {
            self.made.pop_front();
        } else if self.made.try_reserve(1).is_err() {
            return;
        }
        self.made.push_back(Made { port, nonce, epoch, proof });
    }
}

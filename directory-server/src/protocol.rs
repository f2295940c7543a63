//! What replicas say to each other: the messages they put in the group's total
//! order, and the one they send point to point (confirmations of what they have
//! applied). Both use the crate's versioned encoding.

use alloc::vec::Vec;

use crate::codec::{DecodeError, Reader, Writer};
use crate::ops::Update;

/// One message between replicas.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Envelope {
    /// An update a replica took from a client (ordered); `req` is that replica's
    /// own number for it.
    Update {
        /// The sender's request number.
        req: u64,
        /// The update.
        update: Update,
    },
    /// Lease renewal (ordered): when its sender processes it, it has applied
    /// everything before it, and may read locally until `lease` after sending it.
    /// It also confirms `applied` reliably (point-to-point confirmations may be lost).
    Renew {
        /// The sender's number for this renewal.
        nonce: u64,
        /// The sender had applied this far when it sent the renewal.
        applied: u64,
    },
    /// Read barrier (ordered): reads waiting for it are answered once it is processed.
    Barrier {
        /// The sender's number for this barrier.
        nonce: u64,
    },
    /// A catching-up replica asks `target` for the state as of this point in the order.
    StateRequest {
        /// The requester's number for this request.
        nonce: u64,
        /// The member asked to answer.
        target: u32,
    },
    /// One piece of a state snapshot for member `to` (ordered after its request).
    Chunk {
        /// The requester.
        to: u32,
        /// The request's number.
        nonce: u64,
        /// Index of this piece.
        index: u32,
        /// Number of pieces.
        total: u32,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// Member `from` has applied every update up to position `pos` (point to point,
    /// or through the group: it is correct either way).
    Applied {
        /// The member.
        from: u32,
        /// Its position.
        pos: u64,
    },
}

const UPDATE: u8 = 1;
const RENEW: u8 = 2;
const BARRIER: u8 = 3;
const STATE_REQUEST: u8 = 4;
const CHUNK: u8 = 5;
const APPLIED: u8 = 6;
/// Bytes of a chunk message besides its data.
pub const CHUNK_OVERHEAD: usize = 2 + 4 + 8 + 4 + 4 + 4;

impl Envelope {
    /// The versioned encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w;
        match self {
            Envelope::Update { req, update } => {
                w = Writer::tagged(UPDATE);
                w.u64(*req);
                update.write(&mut w);
            }
            Envelope::Renew { nonce, applied } => {
                w = Writer::tagged(RENEW);
                w.u64(*nonce);
                w.u64(*applied);
            }
            Envelope::Barrier { nonce } => {
                w = Writer::tagged(BARRIER);
                w.u64(*nonce);
            }
            Envelope::StateRequest { nonce, target } => {
                w = Writer::tagged(STATE_REQUEST);
                w.u64(*nonce);
                w.u32(*target);
            }
            Envelope::Chunk { to, nonce, index, total, bytes } => {
                w = Writer::tagged(CHUNK);
                w.u32(*to);
                w.u64(*nonce);
                w.u32(*index);
                w.u32(*total);
                w.bytes(bytes);
            }
            Envelope::Applied { from, pos } => {
                w = Writer::tagged(APPLIED);
                w.u32(*from);
                w.u64(*pos);
            }
        }
        w.into_bytes()
    }

    /// Decode [`Envelope::encode`]'s output.
    pub fn decode(bytes: &[u8]) -> Result<Envelope, DecodeError> {
        let (mut r, tag) = Reader::tagged(bytes)?;
        let env = match tag {
            UPDATE => Envelope::Update { req: r.u64()?, update: Update::read(&mut r)? },
            RENEW => Envelope::Renew { nonce: r.u64()?, applied: r.u64()? },
            BARRIER => Envelope::Barrier { nonce: r.u64()? },
            STATE_REQUEST => Envelope::StateRequest { nonce: r.u64()?, target: r.u32()? },
            CHUNK => {
                let (to, nonce, index, total) = (r.u32()?, r.u64()?, r.u32()?, r.u32()?);
                if index >= total {
                    return Err(DecodeError::Invalid);
                }
                Envelope::Chunk { to, nonce, index, total, bytes: r.bytes()?.to_vec() }
            }
            APPLIED => Envelope::Applied { from: r.u32()?, pos: r.u64()? },
            _ => return Err(DecodeError::Tag),
        };
        r.finish()?;
        Ok(env)
    }
}

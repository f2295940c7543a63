//! The replica's [`Store`] reached by RPC: files on a Bullet server (created
//! with the safety flag, so a returned capability names a file on disk) and the
//! anchor halves in the replicas' slots of the disk area (see [`crate::layout`]),
//! each slot a disk object of its own. The program on a board runs it over the
//! nucleus's `trans`; host tests run it over a loopback transport.

use alloc::vec::Vec;

use amoeba_abi::{Capability, Status};
use amoeba_client::files;
use amoeba_ipc::interface::Transport;
use amoeba_ipc::interfaces::{disk, standard};

use crate::layout::{HALF_BLOCKS, anchor_len, decode_half, encode_half};
use crate::store::{AnchorSlot, Store, StoreError};

/// Files on a Bullet server and anchors on disk objects, through `transport`.
pub struct RpcStore<T: Transport> {
    transport: T,
    bullet: Capability,
    /// Replica `i`'s slot (two halves), or `None` where this replica has none.
    slots: Vec<Option<Capability>>,
    block_size: usize,
}

fn store_error(status: Status) -> StoreError {
    match status {
        Status::CapBad | Status::NotFound => StoreError::NotFound,
        _ => StoreError::Failed,
    }
}

impl<T: Transport> RpcStore<T> {
    /// A store on the Bullet server `bullet` with these anchor slots (indexed by
    /// replica); asks the first slot's disk object for the block size.
    pub fn open(
        mut transport: T,
        bullet: Capability,
        slots: Vec<Option<Capability>>,
    ) -> Result<Self, Status> {
        let first = slots.iter().flatten().next().ok_or(Status::ArgBad)?;
        let geometry = disk::Client::new(&mut transport).geometry(first)?;
        let block_size = geometry.block_size as usize;
        if block_size == 0 || geometry.block_count < 2 * HALF_BLOCKS {
            return Err(Status::ArgBad);
        }
        Ok(RpcStore { transport, bullet, slots, block_size })
    }

    /// The longest anchor a half holds.
    pub fn anchor_len(&self) -> usize {
        anchor_len(self.block_size)
    }

    fn slot(&self, replica: u8) -> Result<Capability, StoreError> {
        self.slots.get(replica as usize).copied().flatten().ok_or(StoreError::NotFound)
    }
}

impl<T: Transport> Store for RpcStore<T> {
    fn put_file(&mut self, bytes: &[u8]) -> Result<Capability, StoreError> {
        files::put(&mut self.transport, &self.bullet, bytes, |_| {}).map_err(|_| StoreError::Failed)
    }

    fn get_file(&mut self, cap: &Capability) -> Result<Vec<u8>, StoreError> {
        files::get(&mut self.transport, cap, |_| {}).map_err(store_error)
    }

    fn destroy_file(&mut self, cap: &Capability) -> Result<(), StoreError> {
        standard::Client::new(&mut self.transport).destroy(cap).map_err(store_error)
    }

    fn read_anchor(&mut self, slot: AnchorSlot) -> Result<Option<Vec<u8>>, StoreError> {
        let disk = self.slot(slot.replica)?;
        let first = slot.half as u64 * HALF_BLOCKS;
        let half = disk::Client::new(&mut self.transport)
            .read(&disk, first, HALF_BLOCKS as u32)
            .map_err(|_| StoreError::Failed)?;
        Ok(decode_half(&half).map(<[u8]>::to_vec))
    }

    fn write_anchor(&mut self, slot: AnchorSlot, bytes: &[u8]) -> Result<(), StoreError> {
        if bytes.len() > self.anchor_len() {
            return Err(StoreError::Failed);
        }
        let disk = self.slot(slot.replica)?;
        let first = slot.half as u64 * HALF_BLOCKS;
        let mut blocks = disk::Client::new(&mut self.transport);
        blocks.write(&disk, first, &encode_half(bytes, self.block_size)).map_err(|_| StoreError::Failed)?;
        blocks.flush(&disk).map_err(|_| StoreError::Failed)
    }
}

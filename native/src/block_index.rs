//! Which cached blocks can be read whole from which slot, as the block cache (in TS) publishes
//! them: the FUSE session answers reads of these blocks itself, on its own thread, without a JS
//! round trip. The block cache decides what is cached and when a slot is reused; it revokes a
//! block here before it reuses its slot. Reads copy out while holding the read lock, so a revoke
//! waits for copies in progress and a reused slot is never read as another block.

use crate::slot_store::SlotStore;
use crate::slots::Slots;
use napi_derive::napi;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

pub struct Index {
    slots: Arc<Slots>,
    block_size: u64,
    readable: RwLock<HashMap<u32, u32>>,
}

impl Index {
    pub fn new(slots: Arc<Slots>) -> Index {
        let block_size = u64::from(slots.header.block_size);
        Index { slots, block_size, readable: RwLock::default() }
    }

    pub fn publish(&self, block: u32, slot: u32) {
        self.readable.write().unwrap_or_else(|e| e.into_inner()).insert(block, slot);
    }

    pub fn revoke(&self, block: u32) {
        self.readable.write().unwrap_or_else(|e| e.into_inner()).remove(&block);
    }

    pub fn clear(&self) {
        self.readable.write().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// How many blocks are published.
    pub fn published(&self) -> usize {
        self.readable.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// `length` bytes at byte `offset` of the disk, if every block they touch is published; with
    /// the first and last block read, for the cache's bookkeeping.
    pub fn read(&self, offset: u64, length: usize) -> Option<(Vec<u8>, u32, u32)> {
        if length == 0 {
            return None;
        }
        let bs = self.block_size;
        let first = offset / bs;
        let last = (offset + length as u64 - 1) / bs;
        let (first, last) = (u32::try_from(first).ok()?, u32::try_from(last).ok()?);
        let readable = self.readable.read().unwrap_or_else(|e| e.into_inner());
        if !(first..=last).all(|b| readable.contains_key(&b)) {
            return None;
        }
        let mut out = vec![0u8; length];
        let mut done = 0usize;
        for block in first..=last {
            let start = if block == first { (offset % bs) as usize } else { 0 };
            let n = (bs as usize - start).min(length - done);
            self.slots.read_part(readable[&block], start, &mut out[done..done + n]);
            done += n;
        }
        Some((out, first, last))
    }
}

/// The index for one block cache's slots; handed to the FUSE session at mount.
#[napi]
pub struct BlockIndex {
    pub(crate) inner: Arc<Index>,
}

#[napi]
impl BlockIndex {
    #[napi(constructor)]
    pub fn new(slots: &SlotStore) -> BlockIndex {
        BlockIndex { inner: Arc::new(Index::new(slots.shared())) }
    }

    /// The block's whole, current data is in this slot, and stays there until revoked.
    #[napi]
    pub fn publish(&self, block: u32, slot: u32) {
        self.inner.publish(block, slot)
    }

    /// Before the block's slot is reused or holds anything but the block's whole data.
    #[napi]
    pub fn revoke(&self, block: u32) {
        self.inner.revoke(block)
    }

    #[napi]
    pub fn clear(&self) {
        self.inner.clear()
    }

    #[napi(getter)]
    pub fn size(&self) -> u32 {
        self.inner.published() as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(block_size: u32, slots: u32) -> Arc<Slots> {
        let s = Slots::anonymous(block_size, slots).unwrap();
        for slot in 0..slots {
            s.write_data(slot, &vec![slot as u8 + 1; block_size as usize]);
        }
        Arc::new(s)
    }

    #[test]
    fn reads_across_published_blocks_only() {
        let index = Index::new(filled(4096, 4));
        index.publish(10, 2);
        index.publish(11, 0);
        let (data, first, last) = index.read(10 * 4096 + 4000, 200).unwrap();
        assert_eq!((first, last), (10, 11));
        assert!(data[..96].iter().all(|&b| b == 3));
        assert!(data[96..].iter().all(|&b| b == 1));
        assert!(index.read(11 * 4096, 4097).is_none(), "block 12 is not published");
        index.revoke(11);
        assert!(index.read(11 * 4096, 10).is_none());
        assert!(index.read(10 * 4096, 4096).is_some());
        assert!(index.read(0, 0).is_none());
        index.clear();
        assert_eq!(index.published(), 0);
    }
}

//! Kernel requests waiting on JS: each reply object is parked under an id until JS answers it.
//! A reply dropped unanswered (the table cleared when the session ends) answers EIO itself.

use fuser::{Errno, FileAttr, ReplyAttr, ReplyData, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyWrite};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Duration;

pub enum Pending {
    /// A read of the backed file: answered with bytes.
    Data(ReplyData),
    /// A write: answered with the byte count.
    Write(ReplyWrite),
    /// flush, fsync, fallocate, unlink of the stats file: answered with success or an errno.
    Empty(ReplyEmpty),
    /// getattr of the stats file: answered with a rendering, whose length is the size shown.
    StatsAttr(ReplyAttr, FileAttr),
    /// lookup of the stats file: the same, with the entry's time to live.
    StatsEntry(ReplyEntry, FileAttr, Duration),
    /// open of the stats file: answered with the snapshot this descriptor reads.
    StatsOpen(ReplyOpen, u64),
}

#[derive(Default)]
pub struct PendingTable {
    next: AtomicU32,
    waiting: Mutex<HashMap<u32, Pending>>,
}

impl PendingTable {
    pub fn park(&self, pending: Pending) -> u32 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.waiting.lock().unwrap_or_else(|e| e.into_inner()).insert(id, pending);
        id
    }

    pub fn take(&self, id: u32) -> Option<Pending> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner()).remove(&id)
    }

    pub fn len(&self) -> usize {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Answers every waiting request with EIO (their replies' drop does it).
    pub fn fail_all(&self) {
        let drained: Vec<Pending> = self.waiting.lock().unwrap_or_else(|e| e.into_inner()).drain().map(|(_, p)| p).collect();
        drop(drained);
    }
}

/// A negative errno from JS, as fuser's type; anything out of range is EIO.
pub fn errno(result: i32) -> Errno {
    let code = result.checked_neg().filter(|c| *c > 0).unwrap_or(libc::EIO);
    Errno::from_i32(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_takes_negative_codes_and_falls_back_to_eio() {
        assert_eq!(errno(-libc::ENOSPC), Errno::from_i32(libc::ENOSPC));
        assert_eq!(errno(0), Errno::from_i32(libc::EIO));
        assert_eq!(errno(i32::MIN), Errno::from_i32(libc::EIO));
    }
}

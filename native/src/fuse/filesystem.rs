//! The file system the kernel sees: a root directory holding the backed file and the stats file.
//! Metadata, opens, the stats file's reads and every refusal are answered here, on the FUSE
//! thread, and so are reads and writes of blocks the block map lets us serve; the other reads and
//! writes, flushes and discards of the backed file go to JS as events, and JS answers them
//! through the pending table.

use super::pending::{Pending, PendingTable};
use super::settings::Settings;
use crate::block_map::Map;
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags, KernelConfig, LockOwner, OpenAccMode,
    OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow,
    WriteFlags,
};
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

pub const ROOT_INODE: u64 = 1;
pub const FILE_INODE: u64 = 2;
pub const STATS_INODE: u64 = 3;

/// What JS is asked to do. `offset`/`length` are bytes of the backed file.
#[derive(Debug)]
pub enum Event {
    Read {
        id: u32,
        offset: u64,
        length: u32,
    },
    Write {
        id: u32,
        offset: u64,
        data: Vec<u8>,
    },
    /// A writer's close or an fsync: answer once everything written is stored.
    Flush {
        id: u32,
    },
    /// The range now reads as zeros (discard, or an explicit zeroing).
    Zero {
        id: u32,
        offset: u64,
        length: u64,
    },
    /// Render the stats file (for a getattr or an open).
    Stats {
        id: u32,
    },
    /// The stats file was removed: reset the counters.
    ResetStats {
        id: u32,
    },
    /// Reads or writes were answered through the block map: JS takes their log (Shared::take_hits,
    /// and the map's own log of the blocks written).
    Hits,
}

pub type Emit = Box<dyn Fn(Event) -> bool + Send + Sync>;

thread_local! {
    /// Each FUSE thread's buffer for the reads it answers from the block map, kept between reads.
    static READ_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

const FALLOC_FL_KEEP_SIZE: i32 = 0x01;
const FALLOC_FL_PUNCH_HOLE: i32 = 0x02;
const FALLOC_FL_ZERO_RANGE: i32 = 0x10;

/// State the FUSE threads and the JS thread share.
pub struct Shared {
    pub pending: PendingTable,
    /// The stats snapshot each open descriptor of the stats file reads.
    snapshots: Mutex<HashMap<u64, Arc<Vec<u8>>>>,
    /// Descriptors of the backed file open for writing: only their close waits for a flush.
    writers: Mutex<HashSet<u64>>,
    next_fh: AtomicU64,
    hits: Mutex<HitLog>,
}

/// Reads and writes answered through the block map since JS last took them.
#[derive(Default)]
pub struct HitLog {
    /// The blocks read, in order (one entry for several reads inside one block).
    pub blocks: Vec<u32>,
    /// Each read's size in bytes and the seconds it took to answer, interleaved.
    pub reads: Vec<f64>,
    /// The same for each write (the blocks written are in the map's log).
    pub writes: Vec<f64>,
    /// JS was told there are some and has not taken them yet.
    told: bool,
}

impl Shared {
    pub fn new() -> Self {
        Shared {
            pending: PendingTable::default(),
            snapshots: Mutex::default(),
            writers: Mutex::default(),
            next_fh: AtomicU64::new(1),
            hits: Mutex::default(),
        }
    }

    pub fn keep_snapshot(&self, fh: u64, text: Vec<u8>) {
        self.snapshots.lock().unwrap_or_else(|e| e.into_inner()).insert(fh, Arc::new(text));
    }

    /// Records a read answered from the map; true when JS must be told (it has not been since it last took them).
    fn note_hit(&self, first: u32, last: u32, bytes: usize, seconds: f64) -> bool {
        let mut hits = self.hits.lock().unwrap_or_else(|e| e.into_inner());
        // Several requests inside one block are one read of it, for read-ahead and the LRU.
        if hits.blocks.last() != Some(&last) || first != last {
            hits.blocks.extend(first..=last);
        }
        hits.reads.extend([bytes as f64, seconds]);
        !std::mem::replace(&mut hits.told, true)
    }

    /// Records a write made through the map (after the map logged its blocks); true when JS must be told.
    fn note_write(&self, bytes: usize, seconds: f64) -> bool {
        let mut hits = self.hits.lock().unwrap_or_else(|e| e.into_inner());
        hits.writes.extend([bytes as f64, seconds]);
        !std::mem::replace(&mut hits.told, true)
    }

    /// The reads and writes answered through the map since the last call. JS takes this before
    /// the map's log of blocks written: a write logged after this call tells JS again.
    pub fn take_hits(&self) -> HitLog {
        std::mem::take(&mut *self.hits.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn snapshot(&self, fh: u64) -> Option<Arc<Vec<u8>>> {
        self.snapshots.lock().unwrap_or_else(|e| e.into_inner()).get(&fh).cloned()
    }
}

impl Default for Shared {
    fn default() -> Self {
        Self::new()
    }
}

pub struct BackedFs {
    settings: Settings,
    shared: Arc<Shared>,
    emit: Emit,
    mount_time: SystemTime,
    /// The block cache's map: reads of blocks it holds whole and writes it takes are answered here.
    map: Option<Arc<Map>>,
}

impl BackedFs {
    pub fn new(settings: Settings, shared: Arc<Shared>, emit: Emit, map: Option<Arc<Map>>) -> Self {
        BackedFs { settings, shared, emit, mount_time: SystemTime::now(), map }
    }

    fn attr(&self, ino: u64, size: u64) -> FileAttr {
        let s = &self.settings;
        let (kind, perm, nlink) = match ino {
            ROOT_INODE => (FileType::Directory, 0o755, 2),
            FILE_INODE => (FileType::RegularFile, s.file_mode, 1),
            _ => (FileType::RegularFile, s.file_mode & 0o444, 1),
        };
        FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: self.mount_time,
            mtime: if ino == STATS_INODE { SystemTime::now() } else { self.mount_time },
            ctime: self.mount_time,
            crtime: self.mount_time,
            kind,
            perm: perm as u16,
            nlink,
            uid: s.uid,
            gid: s.gid,
            rdev: 0,
            blksize: s.block_size,
            flags: 0,
        }
    }

    fn file_attr(&self) -> FileAttr {
        self.attr(FILE_INODE, self.settings.file_size)
    }

    /// Hands an event to JS; if JS is gone the request is answered EIO (its reply is dropped).
    fn send(&self, pending: Pending, event: impl FnOnce(u32) -> Event) {
        let id = self.shared.pending.park(pending);
        if !(self.emit)(event(id)) {
            drop(self.shared.pending.take(id));
        }
    }

    fn inode_of(&self, name: &OsStr) -> Option<u64> {
        let name = name.to_str()?;
        if name == self.settings.filename {
            Some(FILE_INODE)
        } else if name == self.settings.stats_filename {
            Some(STATS_INODE)
        } else {
            None
        }
    }
}

/// Ask JS to zero a range, or refuse. The modes the kernel sends: PUNCH_HOLE|KEEP_SIZE from
/// discard and fstrim, ZERO_RANGE[|KEEP_SIZE] from mkfs and a loop device's write-zeroes.
pub fn fallocate_action(mode: i32, offset: u64, length: u64, file_size: u64) -> Result<Option<(u64, u64)>, Errno> {
    if mode & !(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE) != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    if length == 0 {
        return Err(Errno::EINVAL);
    }
    if offset.checked_add(length).is_none_or(|end| end > file_size) {
        return Err(Errno::ENOSPC);
    }
    if mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE) == 0 {
        // Plain allocation: every byte of the file already exists.
        return Ok(None);
    }
    Ok(Some((offset, length)))
}

/// Where a write may go: the errno for one past the end of the fixed-size file.
pub fn write_limit(offset: u64, length: u64, file_size: u64) -> Result<(), Errno> {
    if offset >= file_size && length > 0 {
        return Err(Errno::EFBIG);
    }
    if offset + length > file_size {
        return Err(Errno::ENOSPC);
    }
    Ok(())
}

impl Filesystem for BackedFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        let s = &self.settings;
        if let Err(nearest) = config.set_max_write(s.max_write) {
            let _ = config.set_max_write(nearest);
        }
        if let Some(readahead) = s.max_readahead {
            if let Err(nearest) = config.set_max_readahead(readahead) {
                let _ = config.set_max_readahead(nearest);
            }
        }
        if let Some(background) = s.max_background {
            let _ = config.set_max_background(background);
        }
        if let Some(threshold) = s.congestion_threshold {
            let _ = config.set_congestion_threshold(threshold);
        }
        // Async direct I/O, as libfuse 3 asks by default: a direct write (a loop device with
        // --direct-io=on) is sent as parallel requests, and an AIO one returns before they end.
        let read = if s.async_read { InitFlags::FUSE_ASYNC_READ } else { InitFlags::empty() };
        let wanted = read | InitFlags::FUSE_ASYNC_DIO;
        let _ = config.add_capabilities(wanted & config.capabilities());
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match (parent.0, self.inode_of(name)) {
            (ROOT_INODE, Some(FILE_INODE)) => {
                reply.entry_with_ttls(&self.settings.attr_ttl, &self.settings.entry_ttl, &self.file_attr(), Generation(0))
            }
            // The stats file's size changes: the kernel must ask for it each time.
            (ROOT_INODE, Some(STATS_INODE)) => {
                self.send(Pending::StatsEntry(reply, self.attr(STATS_INODE, 0), self.settings.entry_ttl), |id| Event::Stats { id })
            }
            _ => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        // fstat of an open stats file: the size of what that descriptor reads, so a reader that
        // reads as many bytes as fstat says gets the whole snapshot.
        if let Some(text) = fh.filter(|_| ino.0 == STATS_INODE).and_then(|fh| self.shared.snapshot(fh.0)) {
            return reply.attr(&Duration::ZERO, &self.attr(STATS_INODE, text.len() as u64));
        }
        match ino.0 {
            ROOT_INODE => reply.attr(&self.settings.attr_ttl, &self.attr(ROOT_INODE, 4096)),
            FILE_INODE => reply.attr(&self.settings.attr_ttl, &self.file_attr()),
            STATS_INODE => self.send(Pending::StatsAttr(reply, self.attr(STATS_INODE, 0)), |id| Event::Stats { id }),
            _ => reply.error(Errno::ENOENT),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        // The mode and owner are the mount's (-o/--fileMode); as upstream, a truncate succeeds
        // and changes nothing (the size is fixed), so dd and cp can restore an image over the file.
        if mode.is_some() || uid.is_some() || gid.is_some() {
            return reply.error(Errno::EPERM);
        }
        match ino.0 {
            ROOT_INODE => reply.attr(&self.settings.attr_ttl, &self.attr(ROOT_INODE, 4096)),
            FILE_INODE => reply.attr(&self.settings.attr_ttl, &self.file_attr()),
            STATS_INODE => reply.attr(&Duration::ZERO, &self.attr(STATS_INODE, 0)),
            _ => reply.error(Errno::ENOENT),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match (parent.0, self.inode_of(name)) {
            // Upstream's convention: removing the stats file resets the counters.
            (ROOT_INODE, Some(STATS_INODE)) => self.send(Pending::Empty(reply), |id| Event::ResetStats { id }),
            (ROOT_INODE, Some(FILE_INODE)) => reply.error(Errno::EPERM),
            _ => reply.error(Errno::ENOENT),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let fh = self.shared.next_fh.fetch_add(1, Ordering::Relaxed);
        let writing = flags.acc_mode() != OpenAccMode::O_RDONLY;
        match ino.0 {
            FILE_INODE => {
                if writing && self.settings.read_only {
                    return reply.error(Errno::EROFS);
                }
                if writing {
                    self.shared.writers.lock().unwrap_or_else(|e| e.into_inner()).insert(fh);
                }
                let mut open_flags = FopenFlags::empty();
                if self.settings.direct_io {
                    open_flags |= FopenFlags::FOPEN_DIRECT_IO;
                } else if self.settings.keep_cache {
                    open_flags |= FopenFlags::FOPEN_KEEP_CACHE;
                }
                reply.opened(FileHandle(fh), open_flags)
            }
            STATS_INODE if writing => reply.error(Errno::EACCES),
            STATS_INODE => self.send(Pending::StatsOpen(reply, fh), |id| Event::Stats { id }),
            ROOT_INODE => reply.error(Errno::EISDIR),
            _ => reply.error(Errno::ENOENT),
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.shared.snapshots.lock().unwrap_or_else(|e| e.into_inner()).remove(&fh.0);
        self.shared.writers.lock().unwrap_or_else(|e| e.into_inner()).remove(&fh.0);
        reply.ok()
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match ino.0 {
            FILE_INODE => {
                let file_size = self.settings.file_size;
                if offset >= file_size || size == 0 {
                    return reply.data(&[]);
                }
                let length = (file_size - offset).min(u64::from(size)) as u32;
                let started = std::time::Instant::now();
                let mut reply = Some(reply);
                let answered = self.map.as_ref().and_then(|map| {
                    READ_BUFFER.with_borrow_mut(|buf| {
                        let blocks = map.read_into(offset, length as usize, buf)?;
                        reply.take()?.data(buf);
                        Some(blocks)
                    })
                });
                let Some((first, last)) = answered else {
                    if let Some(reply) = reply {
                        self.send(Pending::Data(reply), |id| Event::Read { id, offset, length });
                    }
                    return;
                };
                // JS learns of the read afterwards (read-ahead, LRU, counters); the reader does not wait.
                if self.shared.note_hit(first, last, length as usize, started.elapsed().as_secs_f64()) {
                    (self.emit)(Event::Hits);
                }
            }
            STATS_INODE => {
                let Some(text) = self.shared.snapshot(fh.0) else { return reply.error(Errno::EBADF) };
                let start = (offset as usize).min(text.len());
                let end = start.saturating_add(size as usize).min(text.len());
                reply.data(&text[start..end])
            }
            _ => reply.error(Errno::EISDIR),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        if ino.0 != FILE_INODE {
            return reply.error(Errno::EACCES);
        }
        if self.settings.read_only {
            return reply.error(Errno::EROFS);
        }
        if let Err(e) = write_limit(offset, data.len() as u64, self.settings.file_size) {
            return reply.error(e);
        }
        if data.is_empty() {
            return reply.written(0);
        }
        let started = std::time::Instant::now();
        let mut reply = Some(reply);
        let length = data.len() as u32;
        let ack = || {
            if let Some(reply) = reply.take() {
                reply.written(length)
            }
        };
        if self.map.as_ref().is_some_and(|map| map.write_acked(offset, data, ack).is_some()) {
            // The map logged the blocks; JS marks them dirty and schedules their uploads afterwards.
            if self.shared.note_write(data.len(), started.elapsed().as_secs_f64()) {
                (self.emit)(Event::Hits);
            }
            return;
        }
        let Some(reply) = reply else { return };
        let data = data.to_vec();
        self.send(Pending::Write(reply), |id| Event::Write { id, offset, data })
    }

    fn flush(&self, _req: &Request, ino: INodeNo, fh: FileHandle, _lock: LockOwner, reply: ReplyEmpty) {
        let writer = self.shared.writers.lock().unwrap_or_else(|e| e.into_inner()).contains(&fh.0);
        if ino.0 != FILE_INODE || self.settings.read_only || !writer {
            return reply.ok();
        }
        self.send(Pending::Empty(reply), |id| Event::Flush { id })
    }

    fn fsync(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        if ino.0 != FILE_INODE || self.settings.read_only {
            return reply.ok();
        }
        self.send(Pending::Empty(reply), |id| Event::Flush { id })
    }

    fn fallocate(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, length: u64, mode: i32, reply: ReplyEmpty) {
        if ino.0 != FILE_INODE {
            return reply.error(Errno::EOPNOTSUPP);
        }
        if self.settings.read_only {
            return reply.error(Errno::EROFS);
        }
        match fallocate_action(mode, offset, length, self.settings.file_size) {
            Err(e) => reply.error(e),
            Ok(None) => reply.ok(),
            Ok(Some((offset, length))) => self.send(Pending::Empty(reply), |id| Event::Zero { id, offset, length }),
        }
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        if ino.0 != ROOT_INODE {
            return reply.error(Errno::ENOTDIR);
        }
        let entries = [
            (ROOT_INODE, FileType::Directory, "."),
            (ROOT_INODE, FileType::Directory, ".."),
            (FILE_INODE, FileType::RegularFile, self.settings.filename.as_str()),
            (STATS_INODE, FileType::RegularFile, self.settings.stats_filename.as_str()),
        ];
        for (i, (ino, kind, name)) in entries.iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(*ino), (i + 1) as u64, *kind, name) {
                break;
            }
        }
        reply.ok()
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let s = &self.settings;
        // The loop device takes its discard granularity from this block size.
        reply.statfs(s.file_size / u64::from(s.block_size), 0, 0, 3, 0, s.block_size, 255, s.block_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallocate_zeroes_for_punch_hole_and_zero_range_only() {
        let size = 1 << 20;
        assert_eq!(fallocate_action(0x3, 4096, 8192, size), Ok(Some((4096, 8192))));
        assert_eq!(fallocate_action(0x10, 0, 4096, size), Ok(Some((0, 4096))));
        assert_eq!(fallocate_action(0x11, 0, 4096, size), Ok(Some((0, 4096))));
        assert_eq!(fallocate_action(0x0, 0, 4096, size), Ok(None));
        assert_eq!(fallocate_action(0x1, 0, 4096, size), Ok(None));
        // collapse, insert, unshare: the file's size and layout are fixed
        assert_eq!(fallocate_action(0x8, 0, 4096, size), Err(Errno::EOPNOTSUPP));
        assert_eq!(fallocate_action(0x20, 0, 4096, size), Err(Errno::EOPNOTSUPP));
        assert_eq!(fallocate_action(0x3, size - 10, 11, size), Err(Errno::ENOSPC));
        assert_eq!(fallocate_action(0x3, u64::MAX, 2, size), Err(Errno::ENOSPC));
        assert_eq!(fallocate_action(0x3, 0, 0, size), Err(Errno::EINVAL));
    }

    #[test]
    fn writes_stop_at_the_end_of_the_file() {
        assert_eq!(write_limit(0, 4096, 4096), Ok(()));
        assert_eq!(write_limit(1, 4096, 4096), Err(Errno::ENOSPC));
        assert_eq!(write_limit(4096, 1, 4096), Err(Errno::EFBIG));
    }
}

//! The block cache's slots: fixed-size block slots behind a header and one directory entry per
//! slot, in upstream's cache-file format (see cache_format.rs), over a Backing: the mapped cache
//! file (--blockCacheFile) or anonymous memory.
//!
//! Crash ordering (kept by the caller through sync_data/sync_entry, as upstream keeps it): a
//! slot's data reaches the file before its entry claims it, and an entry is cleared before its
//! slot is reused.

use crate::cache_format::{Entry, Format, Header, ENTRY_SIZE, HEADER_PROBE};
use crate::slot_backing::{Anonymous, Backing, MappedFile};
use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// Allocates the file's blocks up front. A mapped file whose blocks the disk cannot supply kills
/// the process with SIGBUS at the first write into the hole; this fails instead, with ENOSPC.
fn reserve(file: &File, len: u64) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::io::AsRawFd;
        let len = libc::off_t::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: a plain syscall on a descriptor `file` owns for the duration of the call.
        let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
    }
    #[cfg(not(unix))]
    let _ = (file, len);
    Ok(())
}

pub struct Slots {
    backing: Box<dyn Backing>,
    /// Geometry and format from the header; the mount token lives in `token` as it changes.
    pub header: Header,
    token: AtomicU32,
    file_backed: bool,
    /// --blockCacheFileAdvise: drop a slot's pages from memory after reading or syncing it.
    advise: AtomicBool,
}

impl Slots {
    fn over(backing: Box<dyn Backing>, header: Header, file_backed: bool) -> Slots {
        let token = AtomicU32::new(header.mount_token);
        Slots { backing, header, token, file_backed, advise: AtomicBool::new(false) }
    }

    pub fn anonymous(block_size: u32, num_slots: u32) -> io::Result<Slots> {
        let header = Header::new(block_size, num_slots, 0);
        let slots = Slots::over(Box::new(Anonymous::new(header.full_len())?), header, false);
        slots.backing.write_at(0, &slots.header.encode());
        Ok(slots)
    }

    /// Creates a new cache file (any existing content is replaced), every slot reserved.
    pub fn create_file(path: &Path, block_size: u32, num_slots: u32, mount_token: u32) -> io::Result<Slots> {
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(path)?;
        let header = Header::new(block_size, num_slots, mount_token);
        let len = header.full_len() as u64;
        file.set_len(len)?;
        if let Err(e) = reserve(&file, len) {
            drop(file);
            let _ = std::fs::remove_file(path); // nothing of value was in it: it was just truncated
            return Err(e);
        }
        let slots = Slots::over(Box::new(MappedFile::new(file)?), header, true);
        slots.backing.write_at(0, &slots.header.encode());
        slots.backing.sync(0, slots.header.header_size())?;
        Ok(slots)
    }

    /// Opens an existing cache file as its header describes it. A file in the current format is
    /// grown to its full length first (upstream's grows as slots are used); one in an older
    /// format is mapped as it is, to be read and converted, never written.
    pub fn open_file(path: &Path) -> Result<Slots, String> {
        let file = OpenOptions::new().read(true).write(true).open(path).map_err(|e| e.to_string())?;
        let (header, _) = read_checked(&file)?;
        if header.format == Format::Current {
            let want = header.full_len() as u64;
            if file.metadata().map_err(|e| e.to_string())?.len() < want {
                file.set_len(want).map_err(|e| e.to_string())?;
            }
            reserve(&file, want).map_err(|e| e.to_string())?;
        }
        let backing = MappedFile::new(file).map_err(|e| e.to_string())?;
        Ok(Slots::over(Box::new(backing), header, true))
    }

    /// Whether entries and the token may be written (only in the current format).
    pub fn writable(&self) -> bool {
        self.header.format == Format::Current
    }

    pub fn set_advise(&self, on: bool) {
        self.advise.store(on, Ordering::Relaxed);
        // A fault's read-around would pull in neighbouring slots, some just dropped: off while dropping.
        self.backing.set_random_access(on);
    }

    fn data_range(&self, slot: u32) -> (usize, usize) {
        assert!(slot < self.header.num_slots, "slot {slot} out of range");
        (self.header.slot_offset(slot), self.header.block_size as usize)
    }

    fn entry_offset(&self, slot: u32) -> usize {
        assert!(slot < self.header.num_slots, "slot {slot} out of range");
        self.header.entry_offset(slot)
    }

    fn dropped_after_use(&self, slot: u32) {
        if self.file_backed && self.advise.load(Ordering::Relaxed) {
            let (offset, size) = self.data_range(slot);
            self.backing.drop_cached(offset, size);
        }
    }

    /// Maps in the memory of `count` slots from `first` ahead of use, without changing a byte,
    /// so copying a block into a fresh slot costs no page faults. Only for anonymous memory.
    pub fn prefault(&self, first: u32, count: u32) {
        if self.file_backed || count == 0 {
            return;
        }
        let end = first.saturating_add(count).min(self.header.num_slots);
        if first >= end {
            return;
        }
        let (start, size) = self.data_range(first);
        self.backing.prefault(start, (end - first) as usize * size);
    }

    pub fn write_data(&self, slot: u32, data: &[u8]) {
        let (offset, size) = self.data_range(slot);
        assert_eq!(data.len(), size, "block data must be exactly one block");
        self.backing.write_at(offset, data);
    }

    /// Copies part of a block into a slot (offset and length within the block).
    pub fn write_part(&self, slot: u32, offset: usize, data: &[u8]) {
        let (start, size) = self.data_range(slot);
        assert!(offset.checked_add(data.len()).is_some_and(|end| end <= size), "part outside the block");
        self.backing.write_at(start + offset, data);
    }

    /// Copies part of a block out of a slot.
    pub fn read_part(&self, slot: u32, offset: usize, target: &mut [u8]) {
        let (start, size) = self.data_range(slot);
        assert!(offset.checked_add(target.len()).is_some_and(|end| end <= size), "part outside the block");
        self.backing.read_at(start + offset, target);
        self.dropped_after_use(slot);
    }

    pub fn read_data(&self, slot: u32, target: &mut [u8]) {
        let (offset, size) = self.data_range(slot);
        assert_eq!(target.len(), size, "target must be exactly one block");
        self.backing.read_at(offset, target);
        self.dropped_after_use(slot);
    }

    /// Records a block in a slot: clean with its stored object's ETag, or dirty (no ETag).
    pub fn set_entry(&self, slot: u32, block: u32, dirty: bool, etag: &[u8; 16]) {
        assert!(self.writable(), "entries are written only in the current format");
        self.backing.write_at(self.entry_offset(slot), &Header::encode_entry(block, dirty, etag));
    }

    pub fn clear_entry(&self, slot: u32) {
        assert!(self.writable(), "entries are written only in the current format");
        self.backing.write_at(self.entry_offset(slot), &[0u8; ENTRY_SIZE]);
    }

    pub fn entry(&self, slot: u32) -> Option<Entry> {
        let mut e = vec![0u8; self.header.format.entry_size()];
        self.backing.read_at(self.entry_offset(slot), &mut e);
        self.header.decode_entry(slot, &e)
    }

    pub fn entries(&self) -> Vec<Entry> {
        (0..self.header.num_slots).filter_map(|s| self.entry(s)).collect()
    }

    pub fn mount_token(&self) -> u32 {
        self.token.load(Ordering::SeqCst)
    }

    pub fn set_mount_token(&self, token: u32) -> io::Result<()> {
        assert!(self.writable(), "the token is written only in the current format");
        self.token.store(token, Ordering::SeqCst);
        let header = Header { mount_token: token, ..self.header.clone() };
        self.backing.write_at(0, &header.encode());
        self.sync(0, self.header.header_size())
    }

    /// Data of a slot durable in the file (no-op in memory).
    pub fn sync_data(&self, slot: u32) -> io::Result<()> {
        let (offset, size) = self.data_range(slot);
        self.sync(offset, size)?;
        // Written back now, so the pages can really go.
        self.dropped_after_use(slot);
        Ok(())
    }

    pub fn sync_entry(&self, slot: u32) -> io::Result<()> {
        self.sync(self.entry_offset(slot), ENTRY_SIZE)
    }

    fn sync(&self, offset: usize, len: usize) -> io::Result<()> {
        if self.file_backed {
            self.backing.sync(offset, len)
        } else {
            Ok(())
        }
    }
}

/// The header and used entries of an open file, checked against the file's length: the
/// directory must be whole, and so must every used slot's data.
fn read_checked(file: &File) -> Result<(Header, Vec<Entry>), String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = file;
    let have = f.metadata().map_err(|e| e.to_string())?.len();
    let mut probe = vec![0u8; HEADER_PROBE.min(have as usize)];
    f.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
    f.read_exact(&mut probe).map_err(|e| e.to_string())?;
    let header = Header::decode(&probe)?;
    let table_end = header.directory_end() as u64;
    if have < table_end {
        return Err(format!("truncated: {have} bytes, its directory needs {table_end}"));
    }
    let mut table = vec![0u8; header.directory_end() - header.entry_offset(0)];
    f.seek(SeekFrom::Start(header.entry_offset(0) as u64)).map_err(|e| e.to_string())?;
    f.read_exact(&mut table).map_err(|e| e.to_string())?;
    let entries = header.decode_entries(&table);
    if let Some(last) = entries.iter().map(|e| e.slot).max() {
        let need = header.slot_offset(last + 1) as u64;
        if have < need {
            return Err(format!("truncated: {have} bytes, its used slots need {need}"));
        }
    }
    Ok((header, entries))
}

/// Reads a cache file without mapping or changing it: its header and used entries (the block
/// data is not read, so this stays cheap for large files).
pub fn inspect(path: &Path) -> Result<(Header, Vec<Entry>), String> {
    read_checked(&File::open(path).map_err(|e| e.to_string())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_path(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("s3b-slots-{}-{name}", std::process::id()))
    }

    #[test]
    fn prefault_keeps_contents_and_ignores_out_of_range() {
        let s = Slots::anonymous(4096, 8).unwrap();
        let data = vec![9u8; 4096];
        s.write_data(3, &data);
        s.prefault(0, 8);
        s.prefault(6, 100);
        s.prefault(8, 1);
        let mut out = vec![0u8; 4096];
        s.read_data(3, &mut out);
        assert_eq!(out, data);
        s.read_data(4, &mut out);
        assert_eq!(out, vec![0u8; 4096]);
    }

    #[test]
    fn anonymous_slots_round_trip() {
        let s = Slots::anonymous(4096, 8).unwrap();
        let data = vec![7u8; 4096];
        s.write_data(3, &data);
        s.set_entry(3, 42, false, &[1; 16]);
        let mut out = vec![0u8; 4096];
        s.read_data(3, &mut out);
        assert_eq!(out, data);
        assert_eq!(s.entries(), vec![Entry { slot: 3, block: 42, dirty: false, etag: [1; 16] }]);
        s.set_entry(3, 42, true, &[1; 16]);
        assert_eq!(s.entries(), vec![Entry { slot: 3, block: 42, dirty: true, etag: [0; 16] }]);
        s.clear_entry(3);
        assert!(s.entries().is_empty());
    }

    #[test]
    fn file_survives_reopen_and_advice_keeps_contents() {
        let path = temp_path("reopen");
        {
            let s = Slots::create_file(&path, 512, 4, 0xabc).unwrap();
            s.set_advise(true);
            s.write_data(1, &[9u8; 512]);
            s.sync_data(1).unwrap(); // dropped from memory after the sync
            s.set_entry(1, 7, false, &[2; 16]);
            s.sync_entry(1).unwrap();
            s.set_mount_token(0x1234).unwrap();
            let mut out = vec![0u8; 512];
            s.read_data(1, &mut out);
            assert_eq!(out, vec![9u8; 512]);
        }
        let s = Slots::open_file(&path).unwrap();
        assert_eq!((s.header.block_size, s.header.num_slots, s.mount_token()), (512, 4, 0x1234));
        let (header, entries) = inspect(&path).unwrap();
        assert_eq!((header.num_slots, header.mount_token, entries.len()), (4, 0x1234, 1));
        let mut out = vec![0u8; 512];
        s.read_data(1, &mut out);
        assert_eq!(out, vec![9u8; 512]);
        assert_eq!(s.entries(), vec![Entry { slot: 1, block: 7, dirty: false, etag: [2; 16] }]);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn upstreams_short_file_is_grown_and_keeps_its_dirty_blocks() {
        let path = temp_path("upstream");
        std::fs::write(&path, include_bytes!("../testdata/upstream-dirty.cache")).unwrap();
        let s = Slots::open_file(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), s.header.full_len() as u64);
        assert_eq!(s.entries().iter().map(|e| (e.slot, e.block, e.dirty)).collect::<Vec<_>>(), vec![(0, 1, true), (1, 2, true)]);
        let mut out = vec![0u8; 1024];
        s.read_data(0, &mut out);
        assert_eq!(out, vec![b'A'; 1024]);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn foreign_or_damaged_files_are_refused() {
        let path = temp_path("foreign");
        std::fs::write(&path, vec![0x55u8; 8192]).unwrap();
        assert!(Slots::open_file(&path).err().unwrap().contains("not an s3backer cache file"));
        std::fs::write(&path, [0u8; 10]).unwrap();
        assert!(Slots::open_file(&path).err().unwrap().contains("too short"));
        // A directory cut short, and a used slot past the end of the file.
        let s = Slots::create_file(&path, 4096, 200, 1).unwrap();
        s.set_entry(150, 3, true, &[0; 16]);
        drop(s);
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(8192 + 4096 * 100).unwrap();
        assert!(inspect(&path).err().unwrap().contains("used slots need"));
        f.set_len(2000).unwrap();
        assert!(Slots::open_file(&path).err().unwrap().contains("directory needs"));
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn parts_land_inside_the_block() {
        let s = Slots::anonymous(512, 2).unwrap();
        s.write_part(1, 500, &[7u8; 12]);
        let mut part = vec![0u8; 13];
        s.read_part(1, 499, &mut part);
        assert_eq!(part, [0, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7]);
        let mut out = vec![0u8; 512];
        s.read_data(1, &mut out);
        assert_eq!(&out[500..], &[7u8; 12]);
        assert!(out[..500].iter().all(|&b| b == 0));
    }

    #[test]
    #[should_panic(expected = "part outside the block")]
    fn parts_cannot_spill_into_the_next_slot() {
        let s = Slots::anonymous(512, 2).unwrap();
        s.write_part(0, 500, &[7u8; 13]);
    }

    #[test]
    #[should_panic(expected = "out of range")]
    fn slot_bounds_are_checked() {
        let s = Slots::anonymous(512, 2).unwrap();
        s.write_data(2, &[0u8; 512]);
    }
}

//! The block cache's slots: fixed-size block slots behind a header and one directory entry per
//! slot, in upstream's cache-file format (see cache_format.rs), over a Backing: the mapped cache
//! file (--blockCacheFile) or anonymous memory.
//!
//! Crash ordering, as upstream's: a slot's data reaches the file before its entry claims it, and
//! an entry is cleared (in the file) before its slot takes other data. Callers order their calls
//! through sync_data/sync_entry; with a file, the `Durability` ledger here refuses any call that
//! would break the order (a write into a slot whose entry may still claim it, an entry over data
//! not yet in the file), so no caller can get it wrong silently. crash_harness.rs checks that
//! what the ledger lets through survives a power cut.

use crate::cache_format::{Entry, Format, Header, ENTRY_SIZE, HEADER_PROBE};
use crate::slot_backing::{Anonymous, Backing, MappedFile};
use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};

/// One slot of a cache file as written (in memory) and as last made durable: generations count
/// the changes, and a sync records the generation it covered (it only ever raises it).
#[derive(Clone, Copy, Default)]
struct Durability {
    /// The entry (in memory) claims the slot: it is not all zeros.
    claimed: bool,
    entry_gen: u64,
    entry_synced: u64,
    data_gen: u64,
    data_synced: u64,
    /// The checksum (digest::dirty_checksum) of the data at a generation, taken by the sync that made it durable: a dirty
    /// entry's checksum, computed on the sync's thread rather than the caller's.
    digest: Option<(u64, [u8; 16])>,
}

impl Durability {
    fn entry_free_in_file(&self) -> bool {
        !self.claimed && self.entry_synced == self.entry_gen
    }

    fn data_in_file(&self) -> bool {
        self.data_synced == self.data_gen
    }
}

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
    /// Per slot, what the file holds durably (file-backed only: memory has no order to keep).
    ledger: Option<Mutex<Vec<Durability>>>,
    /// Tests only (`unordered`): the ledger records but refuses nothing, and dirty entries get no
    /// checksum, as before the ledger: the crash harness replays the orders that had holes.
    unordered: AtomicBool,
}

impl Slots {
    /// `claimed`: the slots whose entries are set in the file, which is durable as it is.
    fn over(backing: Box<dyn Backing>, header: Header, file_backed: bool, claimed: &[Entry]) -> Slots {
        let token = AtomicU32::new(header.mount_token);
        let ledger = file_backed.then(|| {
            let mut slots = vec![Durability::default(); header.num_slots as usize];
            for e in claimed {
                slots[e.slot as usize].claimed = true;
            }
            Mutex::new(slots)
        });
        Slots { backing, header, token, file_backed, advise: AtomicBool::new(false), ledger, unordered: AtomicBool::new(false) }
    }

    /// See `unordered` above: only the crash harness's regression tests switch it on.
    #[cfg(test)]
    pub(crate) fn set_unordered(&self) {
        self.unordered.store(true, Ordering::Relaxed);
    }

    fn refuses(&self) -> bool {
        !self.unordered.load(Ordering::Relaxed)
    }

    /// A new cache file over any backing (the crash harness's recording one): header written and synced.
    pub(crate) fn create_over(backing: Box<dyn Backing>, block_size: u32, num_slots: u32, mount_token: u32) -> io::Result<Slots> {
        let slots = Slots::over(backing, Header::new(block_size, num_slots, mount_token), true, &[]);
        slots.backing.write_at(0, &slots.header.encode());
        slots.backing.sync(0, slots.header.header_size())?;
        Ok(slots)
    }

    /// An existing file's bytes over any backing (the crash harness opens its images so).
    #[cfg(test)]
    pub(crate) fn open_over(backing: Box<dyn Backing>, len: usize) -> Result<Slots, String> {
        let mut probe = vec![0u8; HEADER_PROBE.min(len)];
        backing.read_at(0, &mut probe);
        let header = Header::decode(&probe)?;
        if len < header.full_len() {
            return Err(format!("image of {len} bytes, its slots need {}", header.full_len()));
        }
        let mut table = vec![0u8; header.directory_end() - header.entry_offset(0)];
        backing.read_at(header.entry_offset(0), &mut table);
        let entries = header.decode_entries(&table);
        Ok(Slots::over(backing, header, true, &entries))
    }

    fn ledger(&self) -> Option<MutexGuard<'_, Vec<Durability>>> {
        self.ledger.as_ref().map(|l| l.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    pub fn anonymous(block_size: u32, num_slots: u32) -> io::Result<Slots> {
        let header = Header::new(block_size, num_slots, 0);
        let slots = Slots::over(Box::new(Anonymous::new(header.full_len())?), header, false, &[]);
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
        Slots::create_over(Box::new(MappedFile::new(file)?), block_size, num_slots, mount_token)
    }

    /// Opens an existing cache file as its header describes it. A file in the current format is
    /// grown to its full length first (upstream's grows as slots are used); one in an older
    /// format is mapped as it is, to be read and converted, never written.
    pub fn open_file(path: &Path) -> Result<Slots, String> {
        let file = OpenOptions::new().read(true).write(true).open(path).map_err(|e| e.to_string())?;
        let (header, entries) = read_checked(&file)?;
        if header.format == Format::Current {
            let want = header.full_len() as u64;
            if file.metadata().map_err(|e| e.to_string())?.len() < want {
                file.set_len(want).map_err(|e| e.to_string())?;
            }
            reserve(&file, want).map_err(|e| e.to_string())?;
        }
        // What a killed process left in the page cache goes to the disk now: the ledger takes
        // the file as durable, and a power cut later must not bring back an older state of it.
        file.sync_data().map_err(|e| e.to_string())?;
        let backing = MappedFile::new(file).map_err(|e| e.to_string())?;
        Ok(Slots::over(Box::new(backing), header, true, &entries))
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

    /// Frees the memory of every slot's data (anonymous memory only: a file keeps its bytes).
    /// Their contents read as zeros afterwards: only for when nothing will read them again.
    pub fn discard(&self) {
        if self.file_backed {
            return;
        }
        let (start, size) = self.data_range(0);
        self.backing.discard(start, self.header.num_slots as usize * size);
    }

    /// Where every slot's data lies, one after another, for writing into directly (a fetch's
    /// socket reads): anonymous memory only. The caller writes only into slots it owns (claimed,
    /// not yet published) and keeps the mapping alive (an `Arc<Slots>`) while it holds the address.
    pub fn data_region(&self) -> Option<(*mut u8, usize)> {
        if self.file_backed {
            return None;
        }
        let len = self.header.num_slots as usize * self.header.block_size as usize;
        self.backing.shared_range(self.header.slot_offset(0), len).map(|p| (p, len))
    }

    /// Copies data into a slot. With a file, refused unless the slot's entry is free in the file
    /// (cleared and synced): otherwise a power cut could pair the entry with these bytes.
    fn write_ordered(&self, slot: u32, at: usize, data: &[u8]) -> Result<(), String> {
        let Some(mut ledger) = self.ledger() else {
            self.backing.write_at(at, data);
            return Ok(());
        };
        let d = &mut ledger[slot as usize];
        if !d.entry_free_in_file() && self.refuses() {
            return Err(format!("cache file: slot {slot} may still be claimed by its entry in the file (clear and sync the entry first)"));
        }
        // Copied under the lock, the generation raised after: a sync that sees it sees the bytes.
        self.backing.write_at(at, data);
        d.data_gen += 1;
        Ok(())
    }

    pub fn write_data(&self, slot: u32, data: &[u8]) -> Result<(), String> {
        let (offset, size) = self.data_range(slot);
        assert_eq!(data.len(), size, "block data must be exactly one block");
        self.write_ordered(slot, offset, data)
    }

    /// Copies part of a block into a slot (offset and length within the block).
    pub fn write_part(&self, slot: u32, offset: usize, data: &[u8]) -> Result<(), String> {
        let (start, size) = self.data_range(slot);
        assert!(offset.checked_add(data.len()).is_some_and(|end| end <= size), "part outside the block");
        self.write_ordered(slot, start + offset, data)
    }

    /// Copies one slot's data into another (anonymous slots: no write order to keep).
    pub fn copy_data(&self, from: u32, to: u32) {
        let (from_at, size) = self.data_range(from);
        let (to_at, _) = self.data_range(to);
        assert!(!self.file_backed, "slots of a cache file are not copied in place");
        let mut block = vec![0u8; size];
        self.backing.read_at(from_at, &mut block);
        self.backing.write_at(to_at, &block);
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

    /// Records a block in a slot: clean with its stored object's ETag, or dirty (`etag` unused:
    /// a file's dirty entry gets a checksum of the slot's data). With a file,
    /// refused while the slot's data is not in the file yet.
    pub fn set_entry(&self, slot: u32, block: u32, dirty: bool, etag: &[u8; 16]) -> Result<(), String> {
        assert!(self.writable(), "entries are written only in the current format");
        let at = self.entry_offset(slot);
        let Some(mut ledger) = self.ledger() else {
            self.backing.write_at(at, &Header::encode_entry(block, dirty, if dirty { &[0; 16] } else { etag }));
            return Ok(());
        };
        let d = &mut ledger[slot as usize];
        if !d.data_in_file() && self.refuses() {
            return Err(format!("cache file: slot {slot}'s data is not in the file yet (sync it before its entry claims it)"));
        }
        let field = if !dirty {
            *etag
        } else if !self.refuses() {
            [0; 16]
        } else if let Some((_, sum)) = d.digest.filter(|&(gen, _)| gen == d.data_gen) {
            sum
        } else {
            // No sync took it: the data cannot change meanwhile (writes need this lock).
            let mut data = vec![0u8; self.header.block_size as usize];
            self.backing.read_at(self.header.slot_offset(slot), &mut data);
            crate::digest::dirty_checksum(&data)
        };
        self.backing.write_at(at, &Header::encode_entry(block, dirty, &field));
        d.claimed = true;
        d.entry_gen += 1;
        Ok(())
    }

    pub fn clear_entry(&self, slot: u32) {
        assert!(self.writable(), "entries are written only in the current format");
        let at = self.entry_offset(slot);
        let Some(mut ledger) = self.ledger() else {
            self.backing.write_at(at, &[0u8; ENTRY_SIZE]);
            return;
        };
        // A free entry is all zeros already: nothing to write, nor to sync afterwards.
        let d = &mut ledger[slot as usize];
        if d.claimed {
            self.backing.write_at(at, &[0u8; ENTRY_SIZE]);
            d.claimed = false;
            d.entry_gen += 1;
        }
    }

    /// The checksum a dirty entry carries (None: not dirty, or written by upstream, which has none).
    pub fn dirty_checksum(&self, slot: u32) -> Option<[u8; 16]> {
        let mut e = vec![0u8; self.header.format.entry_size()];
        self.backing.read_at(self.entry_offset(slot), &mut e);
        self.header.dirty_checksum(&e)
    }

    /// Whether a dirty slot's data still gives its entry's checksum (true when it has none to check).
    pub fn dirty_data_matches(&self, slot: u32) -> bool {
        let Some(sum) = self.dirty_checksum(slot) else { return true };
        let mut data = vec![0u8; self.header.block_size as usize];
        self.backing.read_at(self.header.slot_offset(slot), &mut data);
        crate::digest::dirty_checksum(&data) == sum
    }

    /// Makes every entry durable at once (one sync of the directory).
    pub fn sync_directory(&self) -> io::Result<()> {
        let Some(gens) = self.ledger().map(|l| l.iter().map(|d| d.entry_gen).collect::<Vec<_>>()) else { return Ok(()) };
        let start = self.header.entry_offset(0);
        self.backing.sync(start, self.header.directory_end() - start)?;
        let mut l = self.ledger().expect("file-backed");
        for (d, gen) in l.iter_mut().zip(gens) {
            d.entry_synced = d.entry_synced.max(gen);
        }
        Ok(())
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

    /// Everything written so far durable at once: one sync of the whole file.
    pub fn sync_everything(&self) -> io::Result<()> {
        let Some(gens) = self.ledger().map(|l| l.iter().map(|d| (d.entry_gen, d.data_gen)).collect::<Vec<_>>()) else { return Ok(()) };
        self.backing.sync(0, self.header.full_len())?;
        let mut l = self.ledger().expect("file-backed");
        for (d, (entry, data)) in l.iter_mut().zip(gens) {
            d.entry_synced = d.entry_synced.max(entry);
            d.data_synced = d.data_synced.max(data);
        }
        Ok(())
    }

    /// Data of a slot durable in the file (no-op in memory, and when it is already). With
    /// `digest`, its checksum is taken here too, for the dirty entry that is to claim it.
    pub fn sync_data(&self, slot: u32, digest: bool) -> io::Result<()> {
        let (offset, size) = self.data_range(slot);
        let (gen, copy) = {
            let Some(l) = self.ledger() else { return Ok(()) };
            let d = l[slot as usize];
            let has_digest = d.digest.is_some_and(|(gen, _)| gen == d.data_gen);
            if d.data_in_file() && (has_digest || !digest) {
                return Ok(());
            }
            // A copy under the lock: the digest is of exactly this generation's bytes.
            let copy = digest.then(|| {
                let mut data = vec![0u8; size];
                self.backing.read_at(offset, &mut data);
                data
            });
            (d.data_gen, copy)
        };
        self.backing.sync(offset, size)?;
        let sum = copy.map(|data| crate::digest::dirty_checksum(&data));
        {
            let mut l = self.ledger().expect("file-backed");
            let d = &mut l[slot as usize];
            d.data_synced = d.data_synced.max(gen);
            if let Some(sum) = sum {
                d.digest = Some((gen, sum));
            }
        }
        // Written back now, so the pages can really go.
        self.dropped_after_use(slot);
        Ok(())
    }

    /// The slot's entry durable in the file (no-op in memory, and when it is already).
    pub fn sync_entry(&self, slot: u32) -> io::Result<()> {
        let at = self.entry_offset(slot);
        let gen = {
            let Some(l) = self.ledger() else { return Ok(()) };
            let d = l[slot as usize];
            if d.entry_synced == d.entry_gen {
                return Ok(());
            }
            d.entry_gen
        };
        self.backing.sync(at, ENTRY_SIZE)?;
        let mut l = self.ledger().expect("file-backed");
        l[slot as usize].entry_synced = l[slot as usize].entry_synced.max(gen);
        Ok(())
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
        s.write_data(3, &data).unwrap();
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
    fn discard_frees_anonymous_data_but_keeps_entries_and_files() {
        let s = Slots::anonymous(4096, 8).unwrap();
        let data = vec![5u8; 4096];
        s.write_data(7, &data).unwrap();
        s.set_entry(7, 42, false, &[1; 16]).unwrap();
        s.discard();
        let mut out = vec![1u8; 4096];
        s.read_data(7, &mut out);
        #[cfg(target_os = "linux")]
        assert_eq!(out, vec![0u8; 4096], "the data's pages were given back");
        assert_eq!(s.entry(7).map(|e| e.block), Some(42), "the entries are not data");

        let path = temp_path("discard");
        let f = Slots::create_file(&path, 4096, 4, 1).unwrap();
        f.write_data(2, &data).unwrap();
        f.discard();
        f.read_data(2, &mut out);
        assert_eq!(out, data, "a file keeps its bytes");
        drop(f);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn anonymous_slots_round_trip() {
        let s = Slots::anonymous(4096, 8).unwrap();
        let data = vec![7u8; 4096];
        s.write_data(3, &data).unwrap();
        s.set_entry(3, 42, false, &[1; 16]).unwrap();
        let mut out = vec![0u8; 4096];
        s.read_data(3, &mut out);
        assert_eq!(out, data);
        assert_eq!(s.entries(), vec![Entry { slot: 3, block: 42, dirty: false, etag: [1; 16] }]);
        s.set_entry(3, 42, true, &[1; 16]).unwrap();
        assert_eq!(s.entries(), vec![Entry { slot: 3, block: 42, dirty: true, etag: [0; 16] }]);
        s.clear_entry(3);
        assert!(s.entries().is_empty());
    }

    #[test]
    fn data_region_is_every_slot_in_order_and_only_in_memory() {
        let s = Slots::anonymous(512, 4).unwrap();
        let (ptr, len) = s.data_region().expect("anonymous slots have a region");
        assert_eq!(len, 4 * 512);
        // SAFETY: the region is len bytes of the mapping, which `s` keeps alive here.
        unsafe { std::ptr::write_bytes(ptr.add(2 * 512), 5, 512) };
        let mut out = vec![0u8; 512];
        s.read_data(2, &mut out);
        assert_eq!(out, vec![5u8; 512]);
        s.read_data(1, &mut out);
        assert_eq!(out, vec![0u8; 512]);
        let path = temp_path("region");
        let f = Slots::create_file(&path, 512, 4, 1).unwrap();
        assert!(f.data_region().is_none(), "a cache file's bytes land only in the ledger's order");
        drop(f);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn file_survives_reopen_and_advice_keeps_contents() {
        let path = temp_path("reopen");
        {
            let s = Slots::create_file(&path, 512, 4, 0xabc).unwrap();
            s.set_advise(true);
            s.write_data(1, &[9u8; 512]).unwrap();
            s.sync_data(1, false).unwrap(); // dropped from memory after the sync
            s.set_entry(1, 7, false, &[2; 16]).unwrap();
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
        s.set_entry(150, 3, true, &[0; 16]).unwrap();
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
        s.write_part(1, 500, &[7u8; 12]).unwrap();
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
        s.write_part(0, 500, &[7u8; 13]).unwrap();
    }

    #[test]
    #[should_panic(expected = "out of range")]
    fn slot_bounds_are_checked() {
        let s = Slots::anonymous(512, 2).unwrap();
        s.write_data(2, &[0u8; 512]).unwrap();
    }
}

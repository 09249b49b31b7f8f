//! The block cache's slots: fixed-size block slots behind a header and one entry per slot, in a
//! memory mapping of the cache file (--blockCacheFile) or of anonymous memory. The few unsafe
//! spots (raw copies into the shared mapping) are wrapped by bounds-checked methods here.
//!
//! File layout (little-endian):
//!   0..4096      header: magic, version, block size, slot count, mount token, checksum
//!   4096..       one 32-byte entry per slot: block number, flags (bit 0 used, bit 1 dirty), 16-byte ETag
//!   page-aligned data: one block per slot
//! Crash ordering (kept by the caller through sync_data/sync_entry): a slot's data reaches the
//! file before its entry claims it, and an entry is cleared before its slot is reused.

use memmap2::{MmapOptions, MmapRaw};
use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

pub const MAGIC: u32 = 0x5333_4243; // "S3BC"
pub const VERSION: u32 = 1;
pub const HEADER_LEN: usize = 4096;
pub const ENTRY_LEN: usize = 32;
const PAGE: usize = 4096;
const FLAG_USED: u32 = 1;
const FLAG_DIRTY: u32 = 2;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub magic: u32,
    pub version: u32,
    pub block_size: u32,
    pub num_slots: u32,
    pub mount_token: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub slot: u32,
    pub block: u32,
    pub dirty: bool,
    pub etag: [u8; 16],
}

pub fn data_offset(num_slots: usize) -> usize {
    (HEADER_LEN + num_slots * ENTRY_LEN).div_ceil(PAGE) * PAGE
}

pub fn file_len(block_size: usize, num_slots: usize) -> usize {
    data_offset(num_slots) + block_size * num_slots
}

fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, &b| (h ^ b as u32).wrapping_mul(0x0100_0193))
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

impl Header {
    fn encode(&self) -> [u8; 24] {
        let mut out = [0u8; 24];
        for (i, v) in [self.magic, self.version, self.block_size, self.num_slots, self.mount_token].iter().enumerate() {
            out[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
        }
        let sum = fnv1a(&out[..20]);
        out[20..24].copy_from_slice(&sum.to_le_bytes());
        out
    }

    /// Decodes and checks a header; the error says what is wrong, for a clear refusal.
    pub fn decode(bytes: &[u8]) -> Result<Header, String> {
        if bytes.len() < 24 {
            return Err("too short to hold a header".into());
        }
        let h = Header {
            magic: u32_at(bytes, 0),
            version: u32_at(bytes, 4),
            block_size: u32_at(bytes, 8),
            num_slots: u32_at(bytes, 12),
            mount_token: u32_at(bytes, 16),
        };
        if h.magic != MAGIC {
            return Err(format!("not an s3backer cache file (magic {:#010x})", h.magic));
        }
        if h.version != VERSION {
            return Err(format!("cache file version {} is not supported (expected {VERSION})", h.version));
        }
        if u32_at(bytes, 20) != fnv1a(&bytes[..20]) {
            return Err("damaged header (checksum mismatch)".into());
        }
        if h.block_size == 0 || h.num_slots == 0 {
            return Err("damaged header (zero block size or slot count)".into());
        }
        Ok(h)
    }
}

/// A mapping with bounds-checked copies in and out; the only place that touches raw memory.
struct Region {
    map: MmapRaw,
}

impl Region {
    fn len(&self) -> usize {
        self.map.len()
    }

    fn copy_in(&self, offset: usize, data: &[u8]) {
        assert!(offset.checked_add(data.len()).is_some_and(|end| end <= self.len()), "copy_in out of bounds");
        // SAFETY: the range is inside the mapping (checked above), and the mapping lives as long as self.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.map.as_mut_ptr().add(offset), data.len()) }
    }

    fn copy_out(&self, offset: usize, target: &mut [u8]) {
        assert!(offset.checked_add(target.len()).is_some_and(|end| end <= self.len()), "copy_out out of bounds");
        // SAFETY: as in copy_in; target is a distinct Rust slice, so the ranges cannot overlap.
        unsafe { std::ptr::copy_nonoverlapping(self.map.as_ptr().add(offset), target.as_mut_ptr(), target.len()) }
    }

    fn flush(&self, offset: usize, len: usize) -> io::Result<()> {
        self.map.flush_range(offset, len)
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
    region: Region,
    /// Geometry from the header; the mount token lives in `token` as it changes.
    pub header: Header,
    token: AtomicU32,
    file_backed: bool,
}

impl Slots {
    pub fn anonymous(block_size: u32, num_slots: u32) -> io::Result<Slots> {
        let len = file_len(block_size as usize, num_slots as usize);
        let map = MmapOptions::new().len(len).map_anon()?;
        let slots = Slots {
            region: Region { map: MmapRaw::from(map) },
            header: Header { magic: MAGIC, version: VERSION, block_size, num_slots, mount_token: 0 },
            token: AtomicU32::new(0),
            file_backed: false,
        };
        slots.region.copy_in(0, &slots.header.encode());
        Ok(slots)
    }

    /// Creates a new cache file (any existing content is replaced).
    pub fn create_file(path: &Path, block_size: u32, num_slots: u32, mount_token: u32) -> io::Result<Slots> {
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(path)?;
        let len = file_len(block_size as usize, num_slots as usize) as u64;
        file.set_len(len)?;
        if let Err(e) = reserve(&file, len) {
            drop(file);
            let _ = std::fs::remove_file(path); // nothing of value was in it: it was just truncated
            return Err(e);
        }
        let slots = Slots {
            region: Region { map: MmapRaw::map_raw(&file)? },
            header: Header { magic: MAGIC, version: VERSION, block_size, num_slots, mount_token },
            token: AtomicU32::new(mount_token),
            file_backed: true,
        };
        slots.region.copy_in(0, &slots.header.encode());
        slots.region.flush(0, HEADER_LEN)?;
        Ok(slots)
    }

    /// Opens an existing cache file as it is; the header decides the geometry.
    pub fn open_file(path: &Path) -> Result<Slots, String> {
        let file = OpenOptions::new().read(true).write(true).open(path).map_err(|e| e.to_string())?;
        let header = read_header(&file)?;
        let want = file_len(header.block_size as usize, header.num_slots as usize) as u64;
        let have = file.metadata().map_err(|e| e.to_string())?.len();
        if have < want {
            return Err(format!("truncated: {have} bytes, the header needs {want}"));
        }
        reserve(&file, want).map_err(|e| e.to_string())?;
        let map = MmapRaw::map_raw(&file).map_err(|e| e.to_string())?;
        let token = AtomicU32::new(header.mount_token);
        Ok(Slots { region: Region { map }, header, token, file_backed: true })
    }

    fn entry_offset(&self, slot: u32) -> usize {
        assert!(slot < self.header.num_slots, "slot {slot} out of range");
        HEADER_LEN + slot as usize * ENTRY_LEN
    }

    fn data_range(&self, slot: u32) -> (usize, usize) {
        assert!(slot < self.header.num_slots, "slot {slot} out of range");
        let size = self.header.block_size as usize;
        (data_offset(self.header.num_slots as usize) + slot as usize * size, size)
    }

    /// Maps in the memory of `count` slots from `first` ahead of use, without changing a byte
    /// (MADV_POPULATE_WRITE), so copying a block into a fresh slot costs no page faults. Only for
    /// anonymous memory; a no-op for cache files and where the kernel lacks it (before 5.14).
    pub fn prefault(&self, first: u32, count: u32) {
        if self.file_backed || count == 0 {
            return;
        }
        let end = first.saturating_add(count).min(self.header.num_slots);
        if first >= end {
            return;
        }
        let (start, size) = self.data_range(first);
        #[cfg(target_os = "linux")]
        let _ = self.region.map.advise_range(memmap2::Advice::PopulateWrite, start, (end - first) as usize * size);
        #[cfg(not(target_os = "linux"))]
        let _ = (start, size);
    }

    pub fn write_data(&self, slot: u32, data: &[u8]) {
        let (offset, size) = self.data_range(slot);
        assert_eq!(data.len(), size, "block data must be exactly one block");
        self.region.copy_in(offset, data);
    }

    /// Copies part of a block into a slot (offset and length within the block).
    pub fn write_part(&self, slot: u32, offset: usize, data: &[u8]) {
        let (start, size) = self.data_range(slot);
        assert!(offset.checked_add(data.len()).is_some_and(|end| end <= size), "part outside the block");
        self.region.copy_in(start + offset, data);
    }

    /// Copies part of a block out of a slot.
    pub fn read_part(&self, slot: u32, offset: usize, target: &mut [u8]) {
        let (start, size) = self.data_range(slot);
        assert!(offset.checked_add(target.len()).is_some_and(|end| end <= size), "part outside the block");
        self.region.copy_out(start + offset, target);
    }

    pub fn read_data(&self, slot: u32, target: &mut [u8]) {
        let (offset, size) = self.data_range(slot);
        assert_eq!(target.len(), size, "target must be exactly one block");
        self.region.copy_out(offset, target);
    }

    pub fn set_entry(&self, slot: u32, block: u32, dirty: bool, etag: &[u8; 16]) {
        let mut e = [0u8; ENTRY_LEN];
        e[0..4].copy_from_slice(&block.to_le_bytes());
        e[4..8].copy_from_slice(&(FLAG_USED | if dirty { FLAG_DIRTY } else { 0 }).to_le_bytes());
        e[8..24].copy_from_slice(etag);
        self.region.copy_in(self.entry_offset(slot), &e);
    }

    pub fn clear_entry(&self, slot: u32) {
        self.region.copy_in(self.entry_offset(slot), &[0u8; ENTRY_LEN]);
    }

    pub fn entry(&self, slot: u32) -> Option<Entry> {
        let mut e = [0u8; ENTRY_LEN];
        self.region.copy_out(self.entry_offset(slot), &mut e);
        let flags = u32_at(&e, 4);
        (flags & FLAG_USED != 0).then(|| Entry {
            slot,
            block: u32_at(&e, 0),
            dirty: flags & FLAG_DIRTY != 0,
            etag: e[8..24].try_into().expect("16 bytes"),
        })
    }

    pub fn entries(&self) -> Vec<Entry> {
        (0..self.header.num_slots).filter_map(|s| self.entry(s)).collect()
    }

    pub fn mount_token(&self) -> u32 {
        self.token.load(Ordering::SeqCst)
    }

    pub fn set_mount_token(&self, token: u32) -> io::Result<()> {
        self.token.store(token, Ordering::SeqCst);
        let header = Header { mount_token: token, ..self.header.clone() };
        self.region.copy_in(0, &header.encode());
        self.sync(0, HEADER_LEN)
    }

    /// Data of a slot durable in the file (no-op in memory).
    pub fn sync_data(&self, slot: u32) -> io::Result<()> {
        let (offset, size) = self.data_range(slot);
        self.sync(offset, size)
    }

    pub fn sync_entry(&self, slot: u32) -> io::Result<()> {
        self.sync(self.entry_offset(slot), ENTRY_LEN)
    }

    fn sync(&self, offset: usize, len: usize) -> io::Result<()> {
        if self.file_backed {
            self.region.flush(offset, len)
        } else {
            Ok(())
        }
    }
}

/// Reads a cache file without mapping or changing it: its header and used entries (the block
/// data is not read, so this stays cheap for large files).
pub fn inspect(path: &Path) -> Result<(Header, Vec<Entry>), String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = File::open(path).map_err(|e| e.to_string())?;
    let header = read_header(&file)?;
    let have = file.metadata().map_err(|e| e.to_string())?.len();
    let want = file_len(header.block_size as usize, header.num_slots as usize) as u64;
    if have < want {
        return Err(format!("truncated: {have} bytes, the header needs {want}"));
    }
    let mut table = vec![0u8; header.num_slots as usize * ENTRY_LEN];
    file.seek(SeekFrom::Start(HEADER_LEN as u64)).map_err(|e| e.to_string())?;
    file.read_exact(&mut table).map_err(|e| e.to_string())?;
    let entries = table
        .chunks_exact(ENTRY_LEN)
        .enumerate()
        .filter(|(_, e)| u32_at(e, 4) & FLAG_USED != 0)
        .map(|(slot, e)| Entry {
            slot: slot as u32,
            block: u32_at(e, 0),
            dirty: u32_at(e, 4) & FLAG_DIRTY != 0,
            etag: e[8..24].try_into().expect("16 bytes"),
        })
        .collect();
    Ok((header, entries))
}

pub fn read_header(file: &File) -> Result<Header, String> {
    use std::io::Read;
    let mut buf = [0u8; 24];
    let mut f = file;
    f.read_exact(&mut buf).map_err(|_| "too short to hold a header".to_string())?;
    Header::decode(&buf)
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
        s.set_entry(3, 42, true, &[1; 16]);
        let mut out = vec![0u8; 4096];
        s.read_data(3, &mut out);
        assert_eq!(out, data);
        assert_eq!(s.entries(), vec![Entry { slot: 3, block: 42, dirty: true, etag: [1; 16] }]);
        s.clear_entry(3);
        assert!(s.entries().is_empty());
    }

    #[test]
    fn file_survives_reopen() {
        let path = temp_path("reopen");
        {
            let s = Slots::create_file(&path, 512, 4, 0xabc).unwrap();
            s.write_data(1, &[9u8; 512]);
            s.sync_data(1).unwrap();
            s.set_entry(1, 7, false, &[2; 16]);
            s.sync_entry(1).unwrap();
            s.set_mount_token(0x1234).unwrap();
        }
        let s = Slots::open_file(&path).unwrap();
        assert_eq!(s.header.block_size, 512);
        assert_eq!(s.header.num_slots, 4);
        assert_eq!(s.mount_token(), 0x1234);
        let (header, entries) = inspect(&path).unwrap();
        assert_eq!((header.num_slots, header.mount_token), (4, 0x1234));
        assert_eq!(entries.len(), 1);
        let mut out = vec![0u8; 512];
        s.read_data(1, &mut out);
        assert_eq!(out, vec![9u8; 512]);
        assert_eq!(s.entries(), vec![Entry { slot: 1, block: 7, dirty: false, etag: [2; 16] }]);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn foreign_or_damaged_files_are_refused() {
        let path = temp_path("foreign");
        std::fs::write(&path, vec![0x55u8; 8192]).unwrap();
        assert!(Slots::open_file(&path).err().unwrap().contains("not an s3backer cache file"));
        Slots::create_file(&path, 4096, 2, 1).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[8] ^= 1; // block size bit flipped
        std::fs::write(&path, &bytes).unwrap();
        assert!(Slots::open_file(&path).err().unwrap().contains("checksum"));
        std::fs::write(&path, &bytes[..10]).unwrap();
        assert!(Slots::open_file(&path).err().unwrap().contains("too short"));
        Slots::create_file(&path, 4096, 2, 1).unwrap();
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(5000).unwrap();
        assert!(Slots::open_file(&path).err().unwrap().contains("truncated"));
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
    fn layout_is_page_aligned() {
        assert_eq!(data_offset(1), 8192);
        assert_eq!(data_offset(128), 8192);
        assert_eq!(data_offset(129), 12288);
        assert_eq!(file_len(4096, 2), 8192 + 8192);
    }

    #[test]
    #[should_panic(expected = "out of range")]
    fn slot_bounds_are_checked() {
        let s = Slots::anonymous(512, 2).unwrap();
        s.write_data(2, &[0u8; 512]);
    }
}

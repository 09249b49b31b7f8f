//! The cache file's on-disk format: upstream s3backer's (its dcache.c), so a file survives a
//! switch between the two programs in either direction. Pure encoding and decoding, no I/O.
//!
//! Layout, native-endian and packed, as upstream's structs are:
//!   header (64 bytes): signature 0xe496f17b, header_size (64), sizeof(u_int) (4),
//!     sizeof(s3b_block_t) (4), block_size, data_align (the page size), flags (bit 0: this
//!     format), max_blocks (the slot count), mount_token (int32), 7 spare words (zero)
//!   directory: one 24-byte entry per slot: block number (u32), ETag (16 bytes), flags (u32,
//!     bit 0: dirty). An all-zero entry is a free slot. Upstream leaves a dirty entry's ETag
//!     field zero and never reads it; ours puts a checksum of the slot's data there (XXH3-128:
//!     digest::dirty_checksum), so a torn or stale dirty slot is found at recovery instead of uploaded.
//!   data: from ROUNDUP(64 + 24 * slots, data_align), slot k at data + k * block_size.
//! Read too, to be converted: upstream's old format (32-byte header without token and spare,
//! 20-byte entries without flags, no dirty blocks) and the one earlier versions of ours wrote
//! ("S3BC": 4096-byte little-endian header with a checksum, 32-byte entries with a used flag).

pub const SIGNATURE: u32 = 0xe496_f17b;
pub const HEADER_SIZE: usize = 64;
pub const ENTRY_SIZE: usize = 24;
const OLD_HEADER_SIZE: usize = 32;
const OLD_ENTRY_SIZE: usize = 20;
/// Upstream requires data_align == getpagesize(); 4096 on every platform ours is built for.
pub const DATA_ALIGN: usize = 4096;
const HDRFLG_NEW_FORMAT: u32 = 1;
const ENTFLG_DIRTY: u32 = 1;

const LEGACY_MAGIC: u32 = 0x5333_4243; // "S3BC", little-endian
const LEGACY_VERSION: u32 = 1;
const LEGACY_HEADER_SIZE: usize = 4096;
const LEGACY_ENTRY_SIZE: usize = 32;
const LEGACY_USED: u32 = 1;
const LEGACY_DIRTY: u32 = 2;

/// Enough of the file's start to decode any of the three headers.
pub const HEADER_PROBE: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Upstream's current format: what ours writes.
    Current,
    /// Upstream's format before mount tokens and dirty blocks.
    UpstreamOld,
    /// Earlier versions of ours ("S3BC").
    Legacy,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Current => "dcache",
            Format::UpstreamOld => "dcache-old",
            Format::Legacy => "s3bc",
        }
    }

    fn header_size(self) -> usize {
        match self {
            Format::Current => HEADER_SIZE,
            Format::UpstreamOld => OLD_HEADER_SIZE,
            Format::Legacy => LEGACY_HEADER_SIZE,
        }
    }

    pub fn entry_size(self) -> usize {
        match self {
            Format::Current => ENTRY_SIZE,
            Format::UpstreamOld => OLD_ENTRY_SIZE,
            Format::Legacy => LEGACY_ENTRY_SIZE,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub format: Format,
    pub block_size: u32,
    pub num_slots: u32,
    /// Upstream's int32; the tokens both programs make are positive (0 = not mounted).
    pub mount_token: u32,
    /// The header's flags word (0 for our legacy format, which had none).
    pub flags: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub slot: u32,
    pub block: u32,
    pub dirty: bool,
    /// The ETag of the block's stored object; all zeros for an absent block and for dirty ones.
    pub etag: [u8; 16],
}

fn u32_ne(bytes: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn u32_le(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, &b| (h ^ b as u32).wrapping_mul(0x0100_0193))
}

impl Header {
    pub fn new(block_size: u32, num_slots: u32, mount_token: u32) -> Header {
        Header { format: Format::Current, block_size, num_slots, mount_token, flags: HDRFLG_NEW_FORMAT }
    }

    pub fn header_size(&self) -> usize {
        self.format.header_size()
    }

    pub fn entry_offset(&self, slot: u32) -> usize {
        self.header_size() + slot as usize * self.format.entry_size()
    }

    /// End of the directory: upstream's minimum file length.
    pub fn directory_end(&self) -> usize {
        self.entry_offset(self.num_slots)
    }

    pub fn data_offset(&self) -> usize {
        self.directory_end().div_ceil(DATA_ALIGN) * DATA_ALIGN
    }

    pub fn slot_offset(&self, slot: u32) -> usize {
        self.data_offset() + slot as usize * self.block_size as usize
    }

    /// The file's length with every slot present.
    pub fn full_len(&self) -> usize {
        self.slot_offset(self.num_slots)
    }

    /// The current format's 64 bytes (only that format is ever written).
    pub fn encode(&self) -> [u8; HEADER_SIZE] {
        assert_eq!(self.format, Format::Current, "only the current format is written");
        let mut out = [0u8; HEADER_SIZE];
        let words =
            [SIGNATURE, HEADER_SIZE as u32, 4, 4, self.block_size, DATA_ALIGN as u32, HDRFLG_NEW_FORMAT, self.num_slots, self.mount_token];
        for (i, w) in words.iter().enumerate() {
            out[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
        }
        out
    }

    /// Decodes and checks a header from the file's first bytes (up to HEADER_PROBE); the error
    /// says what is wrong, for a clear refusal.
    pub fn decode(bytes: &[u8]) -> Result<Header, String> {
        if bytes.len() >= 24 && u32_le(bytes, 0) == LEGACY_MAGIC {
            return Self::decode_legacy(bytes);
        }
        if bytes.len() < OLD_HEADER_SIZE {
            return Err("too short to hold a header".into());
        }
        let signature = u32_ne(bytes, 0);
        if signature != SIGNATURE {
            return Err(format!("not an s3backer cache file (signature {signature:#010x})"));
        }
        let (header_size, flags) = (u32_ne(bytes, 4) as usize, u32_ne(bytes, 24));
        let format = match header_size {
            HEADER_SIZE if flags & HDRFLG_NEW_FORMAT != 0 => Format::Current,
            OLD_HEADER_SIZE if flags & HDRFLG_NEW_FORMAT == 0 => Format::UpstreamOld,
            _ => return Err(format!("damaged header (header size {header_size} with flags {flags:#x})")),
        };
        if bytes.len() < header_size {
            return Err("too short to hold a header".into());
        }
        if flags & !HDRFLG_NEW_FORMAT != 0 {
            return Err(format!("unrecognized header flags {flags:#x}"));
        }
        let (uint, blk) = (u32_ne(bytes, 8), u32_ne(bytes, 12));
        if uint != 4 || blk != 4 {
            return Err(format!("made where sizeof(u_int) is {uint} and sizeof(s3b_block_t) is {blk} (here both are 4)"));
        }
        let data_align = u32_ne(bytes, 20);
        if data_align as usize != DATA_ALIGN {
            return Err(format!("made with data alignment {data_align} (page size), here it is {DATA_ALIGN}"));
        }
        let h = Header {
            format,
            block_size: u32_ne(bytes, 16),
            num_slots: u32_ne(bytes, 28),
            mount_token: if format == Format::Current { u32_ne(bytes, 32) } else { 0 },
            flags,
        };
        h.check_geometry()?;
        Ok(h)
    }

    fn decode_legacy(bytes: &[u8]) -> Result<Header, String> {
        let version = u32_le(bytes, 4);
        if version != LEGACY_VERSION {
            return Err(format!("cache file version {version} is not supported (expected {LEGACY_VERSION})"));
        }
        if u32_le(bytes, 20) != fnv1a(&bytes[..20]) {
            return Err("damaged header (checksum mismatch)".into());
        }
        let h = Header {
            format: Format::Legacy,
            block_size: u32_le(bytes, 8),
            num_slots: u32_le(bytes, 12),
            mount_token: u32_le(bytes, 16),
            flags: 0,
        };
        h.check_geometry()?;
        Ok(h)
    }

    fn check_geometry(&self) -> Result<(), String> {
        if self.block_size == 0 || self.num_slots == 0 {
            return Err("damaged header (zero block size or slot count)".into());
        }
        Ok(())
    }

    /// The bytes of an entry in the current format; a free slot's are all zero. `field` is a
    /// clean entry's ETag, or a dirty one's checksum (zeros: none, as upstream writes it).
    pub fn encode_entry(block: u32, dirty: bool, field: &[u8; 16]) -> [u8; ENTRY_SIZE] {
        let mut e = [0u8; ENTRY_SIZE];
        e[0..4].copy_from_slice(&block.to_ne_bytes());
        e[4..20].copy_from_slice(field);
        e[20..24].copy_from_slice(&(if dirty { ENTFLG_DIRTY } else { 0 }).to_ne_bytes());
        e
    }

    /// A dirty entry's checksum (of its slot's data when the entry was written); None
    /// for clean and free entries, old formats, and dirty entries upstream wrote (all zeros).
    pub fn dirty_checksum(&self, e: &[u8]) -> Option<[u8; 16]> {
        if self.format != Format::Current || u32_ne(e, 20) & ENTFLG_DIRTY == 0 {
            return None;
        }
        let field: [u8; 16] = e[4..20].try_into().expect("16 bytes");
        (field != [0; 16]).then_some(field)
    }

    /// Decodes one directory entry of this header's format; None for a free slot.
    pub fn decode_entry(&self, slot: u32, e: &[u8]) -> Option<Entry> {
        let etag_at = |at: usize| -> [u8; 16] { e[at..at + 16].try_into().expect("16 bytes") };
        match self.format {
            Format::Current | Format::UpstreamOld => {
                if e.iter().all(|&b| b == 0) {
                    return None;
                }
                let dirty = self.format == Format::Current && u32_ne(e, 20) & ENTFLG_DIRTY != 0;
                let etag = if dirty { [0; 16] } else { etag_at(4) };
                Some(Entry { slot, block: u32_ne(e, 0), dirty, etag })
            }
            Format::Legacy => {
                let flags = u32_le(e, 4);
                (flags & LEGACY_USED != 0).then(|| Entry { slot, block: u32_le(e, 0), dirty: flags & LEGACY_DIRTY != 0, etag: etag_at(8) })
            }
        }
    }

    /// Every used entry of a directory read whole (`table` starts at entry 0).
    pub fn decode_entries(&self, table: &[u8]) -> Vec<Entry> {
        table
            .chunks_exact(self.format.entry_size())
            .take(self.num_slots as usize)
            .enumerate()
            .filter_map(|(slot, e)| self.decode_entry(slot as u32, e))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Words in native order, as upstream's packed structs lay them out.
    fn words(ws: &[u32]) -> Vec<u8> {
        ws.iter().flat_map(|w| w.to_ne_bytes()).collect()
    }

    /// Built by hand from dcache.c's struct file_header and struct dir_entry.
    fn golden_current() -> Vec<u8> {
        let mut file = words(&[0xe496_f17b, 64, 4, 4, 1024, 4096, 1, 3, 0x1234_5678, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(file.len(), 64);
        // slot 0: block 7, clean, ETag 00 01 .. 0f, flags 0
        file.extend(words(&[7]));
        file.extend(0u8..16);
        file.extend(words(&[0]));
        // slot 1: free (all zeros)
        file.extend([0u8; 24]);
        // slot 2: block 0x20, dirty: no ETag, flags 1
        file.extend(words(&[0x20]));
        file.extend([0u8; 16]);
        file.extend(words(&[1]));
        file
    }

    #[test]
    fn header_encoding_matches_upstreams_struct() {
        let golden = golden_current();
        let h = Header::new(1024, 3, 0x1234_5678);
        assert_eq!(&h.encode()[..], &golden[..64]);
        assert_eq!(Header::decode(&golden[..64]).unwrap(), h);
        assert_eq!(h.entry_offset(0), 64);
        assert_eq!(h.directory_end(), 64 + 3 * 24);
        assert_eq!(h.data_offset(), 4096);
        assert_eq!(h.slot_offset(2), 4096 + 2048);
        // 170 entries end at 64 + 4080 = 4144: the data starts on the next page.
        assert_eq!(Header::new(1024, 170, 0).data_offset(), 8192);
        assert_eq!(Header::new(1024, 168, 0).data_offset(), 4096);
    }

    #[test]
    fn entry_encoding_matches_upstreams_struct() {
        let golden = golden_current();
        let h = Header::decode(&golden).unwrap();
        let mut etag = [0u8; 16];
        etag.iter_mut().enumerate().for_each(|(i, b)| *b = i as u8);
        assert_eq!(&Header::encode_entry(7, false, &etag)[..], &golden[64..88]);
        assert_eq!(&Header::encode_entry(0x20, true, &[0; 16])[..], &golden[112..136], "upstream's dirty entry: no checksum");
        assert_eq!(h.dirty_checksum(&golden[112..136]), None);
        assert_eq!(h.dirty_checksum(&golden[64..88]), None, "clean entries have no checksum");
        // Ours: the checksum in the ETag field, which decoding (as upstream's) leaves out.
        let ours = Header::encode_entry(0x20, true, &etag);
        assert_eq!(h.dirty_checksum(&ours), Some(etag));
        assert_eq!(h.decode_entry(2, &ours), Some(Entry { slot: 2, block: 0x20, dirty: true, etag: [0; 16] }));
        assert_eq!(
            h.decode_entries(&golden[64..]),
            vec![Entry { slot: 0, block: 7, dirty: false, etag }, Entry { slot: 2, block: 0x20, dirty: true, etag: [0; 16] }]
        );
        // Block 0, clean and absent, is all zeros: a free slot, as upstream reads it too.
        assert_eq!(h.decode_entry(0, &Header::encode_entry(0, false, &[0; 16])), None);
        assert!(h.decode_entry(0, &Header::encode_entry(0, true, &[0; 16])).is_some());
    }

    #[test]
    fn upstreams_old_format_is_read() {
        // struct ofile_header (no token, no spare) and struct odir_entry (no flags).
        let mut file = words(&[0xe496_f17b, 32, 4, 4, 4096, 4096, 0, 2]);
        file.extend(words(&[5]));
        file.extend([0xabu8; 16]);
        file.extend([0u8; 20]);
        let h = Header::decode(&file).unwrap();
        assert_eq!((h.format, h.block_size, h.num_slots, h.mount_token), (Format::UpstreamOld, 4096, 2, 0));
        assert_eq!((h.entry_offset(1), h.data_offset()), (52, 4096));
        assert_eq!(h.decode_entries(&file[32..]), vec![Entry { slot: 0, block: 5, dirty: false, etag: [0xab; 16] }]);
    }

    #[test]
    fn ours_earlier_format_is_read() {
        let mut head = vec![0u8; 24];
        for (i, w) in [LEGACY_MAGIC, 1, 512, 4, 0xabc].iter().enumerate() {
            head[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
        }
        let sum = fnv1a(&head[..20]);
        head[20..24].copy_from_slice(&sum.to_le_bytes());
        let h = Header::decode(&head).unwrap();
        assert_eq!((h.format, h.block_size, h.num_slots, h.mount_token), (Format::Legacy, 512, 4, 0xabc));
        assert_eq!((h.entry_offset(0), h.data_offset()), (4096, 8192));
        let mut e = [0u8; 32];
        e[0..4].copy_from_slice(&9u32.to_le_bytes());
        e[4..8].copy_from_slice(&3u32.to_le_bytes());
        assert_eq!(h.decode_entry(1, &e), Some(Entry { slot: 1, block: 9, dirty: true, etag: [0; 16] }));
        head[8] ^= 1;
        assert!(Header::decode(&head).unwrap_err().contains("checksum"));
    }

    #[test]
    fn foreign_or_damaged_headers_are_refused() {
        assert!(Header::decode(&[0x55; 64]).unwrap_err().contains("not an s3backer cache file"));
        assert!(Header::decode(&[0; 10]).unwrap_err().contains("too short"));
        let mut h = Header::new(4096, 2, 0).encode().to_vec();
        h[24] = 3; // an unknown flag
        assert!(Header::decode(&h).unwrap_err().contains("flags"));
        let mut h = Header::new(4096, 2, 0).encode().to_vec();
        h[20..24].copy_from_slice(&16384u32.to_ne_bytes());
        assert!(Header::decode(&h).unwrap_err().contains("alignment"));
        let mut h = Header::new(4096, 2, 0).encode().to_vec();
        h[28..32].copy_from_slice(&0u32.to_ne_bytes());
        assert!(Header::decode(&h).unwrap_err().contains("zero block size or slot count"));
    }

    /// A file that upstream's newest build (2.1.6-12-g76bab14) wrote: `--test --blockSize=1k
    /// --size=16k --blockCacheSize=4 --blockCacheWriteDelay=600000`, two blocks written, then
    /// SIGKILLed, so they are still dirty (see testdata/README).
    #[test]
    fn a_file_written_by_upstream_decodes() {
        let file = include_bytes!("../testdata/upstream-dirty.cache");
        let h = Header::decode(file).unwrap();
        assert_eq!((h.format, h.block_size, h.num_slots), (Format::Current, 1024, 4));
        assert_ne!(h.mount_token, 0, "a killed mount leaves its token");
        let entries = h.decode_entries(&file[h.entry_offset(0)..h.directory_end()]);
        let dirty: Vec<u32> = entries.iter().filter(|e| e.dirty).map(|e| e.block).collect();
        assert_eq!(dirty, vec![1, 2]);
        let slot = entries.iter().find(|e| e.block == 2).unwrap().slot;
        let at = h.slot_offset(slot);
        assert!(file[at..at + 1024].iter().all(|&b| b == b'B'), "the dirty block's data is in its slot");
        assert_eq!(Header::new(1024, 4, h.mount_token).encode()[..], file[..64], "ours writes the same header");
    }
}

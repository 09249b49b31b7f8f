//! The cache file's recovery policy, kept with the file rather than with its caller: at mount,
//! which entries are taken over and which are let go (and why), and the rewrite into a file of
//! another size. The crash harness (crash_harness.rs) runs exactly these over every crash state
//! it builds. Only the checks that need the store stay with the caller: whether a clean slot's
//! data, encoded as this disk stores blocks, gives its entry's ETag, and whether S3 still has it.

use crate::cache_format::{Entry, Format};
use crate::slots::Slots;
use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

pub struct Options {
    /// Blocks of the disk: an entry for a block past its end is dropped.
    pub num_blocks: u32,
    /// Slots the cache may use (the file may have more, before a resize).
    pub usable_slots: u32,
    /// --blockCacheRecoverDirtyBlocks, for the mount that wrote them.
    pub recover_dirty: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Dirty, and its data is what the slot held when its entry was written (or cannot be told:
    /// an entry of upstream's has no checksum): to be uploaded.
    Dirty,
    /// Clean: the caller checks it (or trusts it, with --blockCacheNoVerify).
    Clean,
    /// Dirty, not to be recovered: cleared, counted.
    Discarded,
    /// Dirty, but its data does not give the entry's checksum (torn, or never all written before
    /// the power went): cleared with a warning, never uploaded as the block.
    Torn,
    /// A block past the disk, a slot past the cache, or a block already taken: cleared.
    Dropped,
}

impl Fate {
    pub fn name(self) -> &'static str {
        match self {
            Fate::Dirty => "dirty",
            Fate::Clean => "clean",
            Fate::Discarded => "discarded",
            Fate::Torn => "torn",
            Fate::Dropped => "dropped",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub entry: Entry,
    pub fate: Fate,
}

/// Decides each entry's fate, clears those let go and makes the clearing durable before
/// returning: a discarded dirty entry must not come back after a later power cut, when the
/// file's token may match the new mount's flag and it would be uploaded over newer data.
pub fn recover(slots: &Slots, opts: &Options) -> io::Result<Vec<Decision>> {
    let mut entries = slots.entries();
    // Dirty first (the sort is stable): a block somehow present twice keeps its unsaved data.
    entries.sort_by_key(|e| !e.dirty);
    let mut taken = HashSet::new();
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        let fate = if entry.block >= opts.num_blocks || entry.slot >= opts.usable_slots || taken.contains(&entry.block) {
            Fate::Dropped
        } else if entry.dirty && !opts.recover_dirty {
            Fate::Discarded
        } else if entry.dirty && !slots.dirty_data_matches(entry.slot) {
            Fate::Torn
        } else {
            taken.insert(entry.block);
            if entry.dirty {
                Fate::Dirty
            } else {
                Fate::Clean
            }
        };
        out.push(Decision { entry, fate });
    }
    if slots.writable() {
        let mut cleared = false;
        for d in out.iter().filter(|d| !matches!(d.fate, Fate::Dirty | Fate::Clean)) {
            slots.clear_entry(d.entry.slot);
            cleared = true;
        }
        if cleared {
            slots.sync_directory()?;
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rewritten {
    /// Entries in the old file, and how many of them were dirty.
    pub found: u32,
    pub dirty: u32,
    /// Entries copied (dirty first, as many as fit).
    pub kept: u32,
    /// Dirty entries whose data does not give their checksum: never copied.
    pub torn: u32,
}

/// Copies `from`'s entries into the empty `to`, dirty first, as many as fit; with
/// `keep_all_dirty` (they are to be recovered) refused if not every intact dirty one fits, as
/// they would be lost (upstream drops whatever does not fit). Nothing is visible at the file's
/// name until every byte is in the new file (see `rewrite_file`), so the copy needs no order of
/// its own: all data, one sync, all entries, one sync.
pub fn copy_entries(from: &Slots, to: &Slots, keep_all_dirty: bool) -> Result<Rewritten, String> {
    let block_size = from.header.block_size as usize;
    if to.header.block_size as usize != block_size {
        return Err(format!("cannot copy blocks of {block_size} bytes into slots of {}", to.header.block_size));
    }
    let mut entries = from.entries();
    entries.sort_by_key(|e| !e.dirty);
    let mut r = Rewritten { found: entries.len() as u32, dirty: entries.iter().filter(|e| e.dirty).count() as u32, ..Rewritten::default() };
    let intact = entries.iter().filter(|e| e.dirty && from.dirty_data_matches(e.slot)).count() as u32;
    r.torn = r.dirty - intact;
    if keep_all_dirty && intact > to.header.num_slots {
        return Err(format!(
            "it holds {intact} dirty blocks not yet uploaded, more than the {} slots asked for: mount once with at least {intact} to upload them",
            to.header.num_slots
        ));
    }
    // Our earlier format recorded the MD5 of a block's data, so an absent block had the MD5 of
    // zeros; upstream's records the stored object's ETag, all zeros for an absent block.
    let zero_md5 = crate::digest::md5(&vec![0u8; block_size]);
    let mut keep: Vec<(Entry, [u8; 16])> = Vec::new();
    let mut data = vec![0u8; block_size];
    for e in entries {
        if keep.len() as u32 == to.header.num_slots {
            break;
        }
        if e.dirty && !from.dirty_data_matches(e.slot) {
            continue;
        }
        let etag = if from.header.format == Format::Legacy && e.etag == zero_md5 { [0; 16] } else { e.etag };
        from.read_data(e.slot, &mut data);
        to.write_data(keep.len() as u32, &data)?;
        keep.push((e, etag));
    }
    to.sync_everything().map_err(|e| e.to_string())?;
    for (slot, (e, etag)) in keep.iter().enumerate() {
        to.set_entry(slot as u32, e.block, e.dirty, etag)?;
    }
    to.sync_everything().map_err(|e| e.to_string())?;
    r.kept = keep.len() as u32;
    Ok(r)
}

/// `FILE.new`: upstream's name for the same step.
fn temp_name(path: &Path) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(".new");
    PathBuf::from(name)
}

/// Renames, then syncs the directory: until then a power cut may bring the old name back, and
/// with it the old file's entries after the new one has been used (stale dirty blocks uploaded).
pub fn rename_durably(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::rename(from, to)?;
    let dir = match to.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

/// Rewrites the cache file at `path` with `num_slots` slots (a changed --blockCacheSize, or a file
/// in an older format): into `FILE.new`, every byte synced, then renamed over it durably. See
/// `copy_entries` for `keep_all_dirty`; the file is left as it was when the rewrite fails.
pub fn rewrite_file(path: &Path, num_slots: u32, keep_all_dirty: bool) -> Result<Rewritten, String> {
    let from = Slots::open_file(path)?;
    let temp = temp_name(path);
    let _ = std::fs::remove_file(&temp); // a rewrite a crash cut short: never used
    let to = Slots::create_file(&temp, from.header.block_size, num_slots, from.mount_token())
        .map_err(|e| format!("cannot create {}: {e}", temp.display()))?;
    let r = copy_entries(&from, &to, keep_all_dirty);
    drop(to);
    let r = match r {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_file(&temp);
            return Err(e);
        }
    };
    rename_durably(&temp, path).map_err(|e| format!("cannot rename {} to {}: {e}", temp.display(), path.display()))?;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_path(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("s3b-recovery-{}-{name}", std::process::id()))
    }

    fn filled(slots: &Slots, slot: u32, block: u32, byte: u8, dirty: bool) {
        let data = vec![byte; slots.header.block_size as usize];
        slots.write_data(slot, &data).unwrap();
        slots.sync_data(slot, dirty).unwrap();
        slots.set_entry(slot, block, dirty, &crate::digest::md5(&data)).unwrap();
        slots.sync_entry(slot).unwrap();
    }

    #[test]
    fn fates_follow_the_policy_and_what_is_let_go_is_cleared_in_the_file() {
        let path = temp_path("fates");
        let s = Slots::create_file(&path, 1024, 8, 7).unwrap();
        filled(&s, 0, 3, 1, false); // clean
        filled(&s, 1, 4, 2, true); // dirty, intact
        filled(&s, 2, 5, 3, true); // dirty, then torn below
        filled(&s, 3, 99, 4, false); // a block past the disk
        filled(&s, 4, 3, 5, true); // block 3 again, dirty: it wins over the clean copy
        filled(&s, 7, 6, 6, false); // a slot past the cache
        let at = s.header.slot_offset(2) + 100;
        drop(s);
        // Slot 2's bytes changed under its dirty entry (as a torn write would leave them).
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[at] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        let s = Slots::open_file(&path).unwrap();
        let opts = Options { num_blocks: 50, usable_slots: 7, recover_dirty: true };
        let fates: Vec<(u32, Fate)> = recover(&s, &opts).unwrap().into_iter().map(|d| (d.entry.slot, d.fate)).collect();
        assert_eq!(
            fates,
            vec![(1, Fate::Dirty), (2, Fate::Torn), (4, Fate::Dirty), (0, Fate::Dropped), (3, Fate::Dropped), (7, Fate::Dropped)]
        );
        drop(s);
        let (_, left) = crate::slots::inspect(&path).unwrap();
        assert_eq!(left.iter().map(|e| e.slot).collect::<Vec<_>>(), vec![1, 4], "the let-go entries are cleared in the file");
        // Without recovery, dirty entries are discarded (and the clean one could stay, had it a slot).
        let s = Slots::open_file(&path).unwrap();
        let fates: Vec<Fate> = recover(&s, &Options { recover_dirty: false, ..opts }).unwrap().into_iter().map(|d| d.fate).collect();
        assert_eq!(fates, vec![Fate::Discarded, Fate::Discarded]);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_rewrite_keeps_dirty_first_leaves_torn_ones_refuses_to_lose_dirty_ones_and_replaces_the_file() {
        let path = temp_path("rewrite");
        let s = Slots::create_file(&path, 1024, 6, 0x55).unwrap();
        filled(&s, 0, 10, 1, false);
        filled(&s, 1, 11, 2, true);
        filled(&s, 2, 12, 3, true);
        filled(&s, 3, 13, 4, true);
        drop(s);
        let mut bytes = std::fs::read(&path).unwrap();
        let h = crate::cache_format::Header::new(1024, 6, 0x55);
        bytes[h.slot_offset(3)] ^= 1; // slot 3's dirty data torn
        std::fs::write(&path, bytes).unwrap();
        // Two intact dirty blocks do not fit in one slot: refused, the file left as it was.
        let err = rewrite_file(&path, 1, true).unwrap_err();
        assert!(err.contains("holds 2 dirty blocks"), "{err}");
        assert_eq!(crate::slots::inspect(&path).unwrap().1.len(), 4);
        let r = rewrite_file(&path, 2, true).unwrap();
        assert_eq!(r, Rewritten { found: 4, dirty: 3, kept: 2, torn: 1 });
        assert!(!temp_name(&path).exists());
        let s = Slots::open_file(&path).unwrap();
        assert_eq!((s.header.num_slots, s.mount_token()), (2, 0x55));
        let got: Vec<(u32, u32, bool)> = s.entries().iter().map(|e| (e.slot, e.block, e.dirty)).collect();
        assert_eq!(got, vec![(0, 11, true), (1, 12, true)]);
        assert!(s.dirty_data_matches(1) && s.dirty_checksum(1).is_some(), "the copy carries its checksum");
        let mut out = vec![0u8; 1024];
        s.read_data(1, &mut out);
        assert_eq!(out, vec![3u8; 1024]);
        drop(s);
        // Without recovery to come, what does not fit goes (dirty first still).
        let r = rewrite_file(&path, 1, false).unwrap();
        assert_eq!((r.kept, r.dirty), (1, 2));
        std::fs::remove_file(&path).unwrap();
    }
}

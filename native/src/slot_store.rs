//! The slots exported to Node: a class over the mapping, copies into and out of JS buffers done
//! here, and the msyncs that order a cache file's writes run on the libuv pool. One Buffer may
//! point into the mapping: the view of anonymous slots a fetch lands its body in (dataView).

use crate::cache_format::{self as slots_format, Format};
use crate::cache_recovery;
use crate::slots::{self, Slots};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[napi(object)]
pub struct SlotEntry {
    pub slot: u32,
    pub block: u32,
    pub dirty: bool,
    /// The stored object's ETag, 32 lowercase hex digits: all zeros for an absent (all-zero)
    /// block, and for dirty blocks, which carry none.
    pub etag: String,
}

/// An entry found at mount, with what recovery decided for it (cache_recovery.rs).
#[napi(object)]
pub struct RecoveredEntry {
    pub slot: u32,
    pub block: u32,
    pub dirty: bool,
    /// As SlotEntry's.
    pub etag: String,
    /// "dirty" (to upload), "clean" (to verify or trust), or let go and already cleared in the
    /// file: "discarded" (dirty, not recovered), "torn" (dirty, its data does not give its
    /// checksum), "dropped" (out of range, or the block twice).
    pub fate: String,
}

#[napi(object)]
pub struct CacheFileRewrite {
    pub found: u32,
    pub dirty: u32,
    pub kept: u32,
    /// Dirty entries whose data did not give their checksum: left out.
    pub torn: u32,
}

#[napi(object)]
pub struct CacheHeader {
    /// "dcache" (upstream's format, which ours writes), "dcache-old" (upstream's before mount
    /// tokens and dirty blocks) or "s3bc" (earlier versions of ours); only "dcache" is written.
    pub format: String,
    /// The first word: upstream's signature 0xe496f17b (or "S3BC" in the earliest of ours).
    pub magic: u32,
    /// 2 for upstream's current format, 1 for its old one and for ours' "S3BC".
    pub version: u32,
    pub header_size: u32,
    /// Upstream's header flags (bit 0: the current format).
    pub flags: u32,
    pub data_align: u32,
    pub block_size: u32,
    pub num_slots: u32,
    pub mount_token: u32,
    pub entry_size: u32,
    /// Byte offset of slot 0's data; slot k's lies block_size * k further on.
    pub data_offset: i64,
}

#[napi(object)]
pub struct CacheFileContents {
    pub header: CacheHeader,
    pub entries: Vec<SlotEntry>,
}

fn to_js(e: slots_format::Entry) -> SlotEntry {
    SlotEntry { slot: e.slot, block: e.block, dirty: e.dirty, etag: crate::digest::to_hex(&e.etag) }
}

fn header_to_js(h: &slots_format::Header, token: u32) -> CacheHeader {
    let (magic, version) = match h.format {
        Format::Current => (slots_format::SIGNATURE, 2),
        Format::UpstreamOld => (slots_format::SIGNATURE, 1),
        Format::Legacy => (0x5333_4243, 1),
    };
    CacheHeader {
        format: h.format.name().into(),
        magic,
        version,
        header_size: h.header_size() as u32,
        flags: h.flags,
        data_align: slots_format::DATA_ALIGN as u32,
        block_size: h.block_size,
        num_slots: h.num_slots,
        mount_token: token,
        entry_size: h.format.entry_size() as u32,
        data_offset: h.data_offset() as i64,
    }
}

fn io_err(context: &str, e: impl std::fmt::Display) -> Error {
    Error::from_reason(format!("{context}: {e}"))
}

#[napi]
pub struct SlotStore {
    inner: Arc<Slots>,
    /// dataView() was called: one view per store (two external buffers over the same bytes
    /// are refused by some runtimes).
    viewed: AtomicBool,
}

pub enum SyncWhat {
    /// The slot's data, with its checksum taken for a dirty entry when true.
    Data(u32, bool),
    Entry(u32),
}

pub struct PrefaultTask {
    slots: Arc<Slots>,
    first: u32,
    count: u32,
}

impl Task for PrefaultTask {
    type Output = ();
    type JsValue = ();

    fn compute(&mut self) -> Result<()> {
        self.slots.prefault(self.first, self.count);
        Ok(())
    }

    fn resolve(&mut self, _env: Env, _output: ()) -> Result<()> {
        Ok(())
    }
}

pub struct DiscardTask {
    slots: Arc<Slots>,
}

impl Task for DiscardTask {
    type Output = ();
    type JsValue = ();

    fn compute(&mut self) -> Result<()> {
        self.slots.discard();
        Ok(())
    }

    fn resolve(&mut self, _env: Env, _output: ()) -> Result<()> {
        Ok(())
    }
}

pub struct SyncTask {
    slots: Arc<Slots>,
    what: SyncWhat,
}

impl Task for SyncTask {
    type Output = ();
    type JsValue = ();

    fn compute(&mut self) -> Result<()> {
        match self.what {
            SyncWhat::Data(slot, digest) => self.slots.sync_data(slot, digest),
            SyncWhat::Entry(slot) => self.slots.sync_entry(slot),
        }
        .map_err(|e| io_err("cache file sync", e))
    }

    fn resolve(&mut self, _env: Env, _output: ()) -> Result<()> {
        Ok(())
    }
}

impl SlotStore {
    /// The slots themselves, for the block index the FUSE session reads hits through.
    pub(crate) fn shared(&self) -> Arc<Slots> {
        self.inner.clone()
    }
}

#[napi]
impl SlotStore {
    /// Slots in anonymous memory: the same cache code without a cache file.
    #[napi(factory)]
    pub fn anonymous(block_size: u32, num_slots: u32) -> Result<SlotStore> {
        let slots = Slots::anonymous(block_size, num_slots).map_err(|e| io_err("cannot allocate the block cache", e))?;
        Ok(SlotStore { inner: Arc::new(slots), viewed: AtomicBool::new(false) })
    }

    /// A new, empty cache file (replacing whatever was at `path`).
    #[napi(factory)]
    pub fn create_file(path: String, block_size: u32, num_slots: u32, mount_token: u32) -> Result<SlotStore> {
        let slots = Slots::create_file(Path::new(&path), block_size, num_slots, mount_token)
            .map_err(|e| io_err(&format!("cannot create cache file {path}"), e))?;
        Ok(SlotStore { inner: Arc::new(slots), viewed: AtomicBool::new(false) })
    }

    /// An existing cache file, as its header describes it; refuses foreign or damaged files. One
    /// in an older format is only read (header.format says which), to be converted.
    #[napi(factory)]
    pub fn open_file(path: String) -> Result<SlotStore> {
        let slots = Slots::open_file(Path::new(&path)).map_err(|e| io_err(&format!("cache file {path}"), e))?;
        Ok(SlotStore { inner: Arc::new(slots), viewed: AtomicBool::new(false) })
    }

    #[napi(getter)]
    pub fn header(&self) -> CacheHeader {
        header_to_js(&self.inner.header, self.inner.mount_token())
    }

    fn check(&self, slot: u32, len: usize) -> Result<()> {
        if slot >= self.inner.header.num_slots {
            return Err(Error::from_reason(format!("slot {slot} out of range")));
        }
        if len != self.inner.header.block_size as usize {
            return Err(Error::from_reason(format!("{len} bytes given for a block of {}", self.inner.header.block_size)));
        }
        Ok(())
    }

    /// Maps in fresh anonymous slots ahead of use, on the thread pool (contents are not touched).
    #[napi(ts_return_type = "Promise<void>")]
    pub fn prefault(&self, first: u32, count: u32) -> AsyncTask<PrefaultTask> {
        AsyncTask::new(PrefaultTask { slots: self.inner.clone(), first, count })
    }

    /// Frees the memory of anonymous slots on the thread pool, contents and all (a cache file
    /// keeps its bytes): once nothing will read them again, so that the process's exit does not
    /// have to (about 28 ms for 256 MiB of pages here).
    #[napi(ts_return_type = "Promise<void>")]
    pub fn discard(&self) -> AsyncTask<DiscardTask> {
        AsyncTask::new(DiscardTask { slots: self.inner.clone() })
    }

    /// One Buffer over every slot's data, slot n at n * blockSize, for a fetch to land in the
    /// slot it owns without a copy; null for a cache file (its bytes must land in order) or where
    /// the runtime refuses external buffers. The view keeps the memory mapped while it lives.
    /// Called once per store.
    #[napi(ts_return_type = "Buffer | null")]
    pub fn data_view<'env>(&self, env: &'env Env) -> Result<Option<BufferSlice<'env>>> {
        if self.viewed.swap(true, Ordering::Relaxed) {
            return Err(Error::from_reason("dataView() was already called on this store"));
        }
        let Some((ptr, len)) = self.inner.data_region() else { return Ok(None) };
        let keep = self.inner.clone();
        // SAFETY: ptr..ptr+len lies in the anonymous mapping, which `keep` holds until the
        // engine finalizes the buffer; the bytes are plain data, only ever copied (never borrowed)
        // on the Rust side, so JS writing into them breaks no reference.
        let Ok(view) = (unsafe { BufferSlice::from_external(env, ptr, len, keep, |_, keep| drop(keep)) }) else {
            return Ok(None); // the engine refused it: the cache copies instead, as with a file
        };
        // A runtime without external buffers gets a copy: writes to it would land nowhere.
        Ok((view.as_ptr() == ptr.cast_const()).then_some(view))
    }

    /// Copies one block into a slot (the entry is set separately, after the data is synced).
    /// With a file, throws unless the slot's entry is free in the file (cleared, then synced).
    #[napi]
    pub fn write(&self, slot: u32, data: &[u8]) -> Result<()> {
        self.check(slot, data.len())?;
        self.inner.write_data(slot, data).map_err(Error::from_reason)
    }

    /// Copies part of a block into a slot, at `offset` within the block.
    #[napi]
    pub fn write_part(&self, slot: u32, offset: u32, data: &[u8]) -> Result<()> {
        self.check(slot, self.inner.header.block_size as usize)?;
        if offset as usize + data.len() > self.inner.header.block_size as usize {
            return Err(Error::from_reason(format!("{} bytes at {offset} do not fit in a block", data.len())));
        }
        self.inner.write_part(slot, offset as usize, data).map_err(Error::from_reason)
    }

    /// Copies `target.length` bytes at `offset` of a slot's block into `target` (a caller's buffer:
    /// a FUSE read's own, or a block being verified, so nothing is allocated).
    #[napi]
    pub fn read_into(&self, slot: u32, offset: u32, #[napi(ts_arg_type = "Uint8Array")] mut target: BufferSlice) -> Result<()> {
        self.check(slot, self.inner.header.block_size as usize)?;
        if offset as usize + target.len() > self.inner.header.block_size as usize {
            return Err(Error::from_reason(format!("{} bytes at {offset} are not inside a block", target.len())));
        }
        self.inner.read_part(slot, offset as usize, &mut target);
        Ok(())
    }

    /// Copies one block out of a slot into a new Buffer owned by JS.
    #[napi]
    pub fn read(&self, slot: u32) -> Result<Buffer> {
        let mut out = vec![0u8; self.inner.header.block_size as usize];
        self.check(slot, out.len())?;
        self.inner.read_data(slot, &mut out);
        Ok(out.into())
    }

    fn check_writable(&self) -> Result<()> {
        if self.inner.writable() {
            Ok(())
        } else {
            Err(Error::from_reason(format!(
                "a cache file in the {} format is only read (convert it first)",
                self.inner.header.format.name()
            )))
        }
    }

    /// Records a block in a slot: clean with its stored object's ETag (absent: all zeros), or dirty
    /// (the file's entry then carries a checksum of the slot's data). With a file, throws unless the
    /// slot's data is in the file (synced since its last write).
    #[napi]
    pub fn set_entry(&self, slot: u32, block: u32, dirty: bool, etag: Option<&[u8]>) -> Result<()> {
        self.check(slot, self.inner.header.block_size as usize)?;
        self.check_writable()?;
        let mut tag = [0u8; 16];
        if let Some(e) = etag {
            if e.len() != 16 {
                return Err(Error::from_reason("an ETag is 16 bytes"));
            }
            tag.copy_from_slice(e);
        }
        self.inner.set_entry(slot, block, dirty, &tag).map_err(Error::from_reason)
    }

    #[napi]
    pub fn clear_entry(&self, slot: u32) -> Result<()> {
        self.check(slot, self.inner.header.block_size as usize)?;
        self.check_writable()?;
        self.inner.clear_entry(slot);
        Ok(())
    }

    #[napi]
    pub fn entries(&self) -> Vec<SlotEntry> {
        self.inner.entries().into_iter().map(to_js).collect()
    }

    #[napi]
    pub fn set_mount_token(&self, token: u32) -> Result<()> {
        self.check_writable()?;
        self.inner.set_mount_token(token).map_err(|e| io_err("cache file", e))
    }

    /// --blockCacheFileAdvise: after a slot is read (or its data synced), its pages are dropped
    /// from memory (madvise and posix_fadvise DONTNEED). No effect without a file.
    #[napi]
    pub fn set_advise(&self, on: bool) {
        self.inner.set_advise(on);
    }

    /// Resolves once the slot's data is in the file (at once without a file, or when it is
    /// already). `forDirty`: a dirty entry is to claim it, so its checksum is taken here too,
    /// off the JS thread.
    #[napi]
    pub fn sync_data(&self, slot: u32, for_dirty: Option<bool>) -> Result<AsyncTask<SyncTask>> {
        self.check(slot, self.inner.header.block_size as usize)?;
        Ok(AsyncTask::new(SyncTask { slots: self.inner.clone(), what: SyncWhat::Data(slot, for_dirty.unwrap_or(false)) }))
    }

    /// The mount's recovery of the entries the file holds: each one's fate; those let go are
    /// cleared, durably, before this returns.
    #[napi]
    pub fn recover(&self, num_blocks: u32, usable_slots: u32, recover_dirty: bool) -> Result<Vec<RecoveredEntry>> {
        self.check_writable()?;
        let opts = cache_recovery::Options { num_blocks, usable_slots, recover_dirty };
        let decisions = cache_recovery::recover(&self.inner, &opts).map_err(|e| io_err("cache file recovery", e))?;
        Ok(decisions
            .into_iter()
            .map(|d| {
                let e = to_js(d.entry);
                RecoveredEntry { slot: e.slot, block: e.block, dirty: e.dirty, etag: e.etag, fate: d.fate.name().into() }
            })
            .collect())
    }

    /// Resolves once the slot's entry is in the file (at once when it is already).
    #[napi]
    pub fn sync_entry(&self, slot: u32) -> Result<AsyncTask<SyncTask>> {
        self.check(slot, self.inner.header.block_size as usize)?;
        Ok(AsyncTask::new(SyncTask { slots: self.inner.clone(), what: SyncWhat::Entry(slot) }))
    }
}

/// Rewrites the cache file at `path` with `numSlots` slots (resized, or converted from an older
/// format) through `path.new`, synced, then renamed over it durably. With `keepAllDirty` (its
/// dirty blocks are to be recovered) it refuses to leave out any intact dirty block.
#[napi]
pub fn rewrite_cache_file(path: String, num_slots: u32, keep_all_dirty: bool) -> Result<CacheFileRewrite> {
    let r =
        cache_recovery::rewrite_file(Path::new(&path), num_slots, keep_all_dirty).map_err(|e| io_err(&format!("cache file {path}"), e))?;
    Ok(CacheFileRewrite { found: r.found, dirty: r.dirty, kept: r.kept, torn: r.torn })
}

/// Reads a cache file's header and used entries without changing it (for inspection).
#[napi]
pub fn inspect_cache_file(path: String) -> Result<CacheFileContents> {
    let (header, entries) = slots::inspect(Path::new(&path)).map_err(|e| io_err(&format!("cache file {path}"), e))?;
    Ok(CacheFileContents { header: header_to_js(&header, header.mount_token), entries: entries.into_iter().map(to_js).collect() })
}

//! The block cache's map: which block sits in which slot and in what state, beside the slots it
//! describes. The FUSE session reads and writes cached blocks through it on its own thread,
//! without a JS round trip; the block cache (in TS) decides policy over it: what to fetch, upload,
//! read ahead and evict. One lock orders every copy into or out of a slot made here against every
//! change of the map, so a slot is never reused while a copy of it runs.
//!
//! A cell is claimed by JS for a block it fetches or writes (busy: neither readable nor writable
//! here), loading while JS fetches it, published once its slot holds the whole current block, and
//! may be made writable (no cache file, no synchronous writes). An upload copies the slot and
//! marks the cell uploading until JS says how it ended: at most one upload of a block at a time.
//! Without a cache file an upload reads the slot in place instead (pinned): writes here then go
//! to JS, which moves the block to a copy in a fresh slot first (upstream's WRITING2); the
//! upload keeps the old slot until it ends. Writes made here mark the cell dirty, bump its generation
//! and are logged; JS takes the log afterwards. An upload clears the dirty mark only if the
//! generation it copied is still current, and a dirty cell cannot be evicted: a write made here
//! is never lost for JS not having heard of it yet. Writes of whole new blocks take a spare slot
//! JS lent; the count of dirty cells is capped (JS's back-pressure takes over at the cap).
//!
//! The map also keeps the LRU order of the evictable cells (readable, not dirty): reads here and
//! JS's own hits stamp a cell's last use without the write lock (an atomic tick), and the order
//! is brought up to date lazily when JS asks for a victim, so reads stay parallel and a read hit
//! needs JS for nothing but read-ahead and counting.

use crate::slot_store::SlotStore;
use crate::slots::Slots;
use crate::zero::is_zero;
use napi::bindgen_prelude::{BufferSlice, Error, Result, Uint32Array};
use napi_derive::napi;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

#[derive(Debug)]
struct Cell {
    slot: u32,
    /// The slot holds the whole current block.
    readable: bool,
    /// Writes may land here without JS.
    writable: bool,
    /// Differs from what is stored (JS said so, or a write here made it so).
    dirty: bool,
    /// JS is fetching the block into the slot.
    loading: bool,
    /// An upload of the block is under way (of a copy of the slot, or of the slot itself: pinned).
    uploading: bool,
    /// The upload reads the slot itself: nothing may write into it here.
    pinned: bool,
    /// A write here is copying its bytes into the slot, the map unlocked meanwhile: no upload
    /// may begin from the slot, and nothing reads it here, until the copy ends.
    copying: bool,
    /// Bumped by every write made here.
    generation: u32,
    /// The tick of the last use (a read here or a hit in JS); stamped under the read lock.
    used: AtomicU64,
    /// Milliseconds since the map began, at the last use (for the idle timeout).
    used_ms: AtomicU64,
    /// Evicted only after every block not held (JS holds part of a loop bigger than the cache).
    held: bool,
    /// The tick JS demoted the block at (0: never): until it is used again, it goes before every
    /// block not demoted.
    demoted_at: u64,
    /// Its key in the LRU order, while it is evictable.
    listed: Option<LruKey>,
}

impl Cell {
    fn new(slot: u32, readable: bool, writable: bool) -> Cell {
        Cell {
            slot,
            readable,
            writable,
            dirty: false,
            loading: false,
            uploading: false,
            pinned: false,
            copying: false,
            generation: 0,
            used: AtomicU64::new(0),
            used_ms: AtomicU64::new(0),
            held: false,
            demoted_at: 0,
            listed: None,
        }
    }
}

/// LRU keys: a rank, then the last use. Demoted blocks not used since go first, protected and
/// held blocks last.
type LruKey = (u8, u64);
const DEMOTED: u8 = 0;
const PLAIN: u8 = 1;
const KEPT: u8 = 2;

impl Cell {
    fn rank(&self, protected: bool) -> u8 {
        if protected || self.held {
            KEPT
        } else if self.demoted_at != 0 && self.demoted_at == self.used.load(Ordering::Relaxed) {
            DEMOTED
        } else {
            PLAIN
        }
    }
}

#[derive(Default)]
struct State {
    cells: HashMap<u32, Cell>,
    /// Free slots JS lent for whole new blocks written here.
    spares: Vec<u32>,
    /// A write found no spare since JS last asked.
    short_of_spares: bool,
    /// At most this many dirty cells (0: no writes here at all).
    max_dirty: u32,
    dirty: u32,
    /// Cells loading, and uploading.
    loads: u32,
    uploads: u32,
    /// The cache closed: the session reads and writes nothing more here (a detached mount still
    /// open somewhere); the cells keep their states for what JS still finishes.
    closed: bool,
    /// The block of each write made here since JS took them; one entry for several writes of a block in a row.
    written: Vec<u32>,
    /// Evictable cells by (rank, tick): the first is the next victim. A cell used since it was
    /// filed is filed again under its newer tick (and rank) when it comes up.
    lru: BTreeMap<LruKey, u32>,
    /// Blocks below this are evicted only once no other block is left (--blockCacheNumProtected).
    protected_below: u32,
    /// While JS holds blocks: at most this many, and blocks turning evictable are held until then.
    hold_target: u32,
    held: u32,
    /// Ticks of use, counted up by every stamp.
    clock: AtomicU64,
    epoch: Epoch,
}

/// When the map began: last uses are kept as milliseconds since.
struct Epoch(Instant);

impl Default for Epoch {
    fn default() -> Epoch {
        Epoch(Instant::now())
    }
}

impl State {
    /// Records a use of the block now; callable under the read lock.
    fn stamp(&self, block: u32) {
        if let Some(cell) = self.cells.get(&block) {
            cell.used.store(self.clock.fetch_add(1, Ordering::Relaxed) + 1, Ordering::Relaxed);
            cell.used_ms.store(self.now_ms(), Ordering::Relaxed);
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.0.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn set_dirty(&mut self, block: u32, dirty: bool) {
        self.stamp(block);
        if let Some(cell) = self.cells.get_mut(&block) {
            if cell.dirty != dirty {
                cell.dirty = dirty;
                if dirty {
                    self.dirty += 1;
                } else {
                    self.dirty -= 1;
                }
            }
        }
        self.file(block);
    }

    /// Files the cell in the LRU order if it is evictable now, or takes it out if not.
    fn file(&mut self, block: u32) {
        self.place(block, true)
    }

    /// `file`, holding a block that turns evictable if JS holds fewer than it asked (`top_up`).
    fn place(&mut self, block: u32, top_up: bool) {
        let protected = block < self.protected_below;
        let Some(cell) = self.cells.get_mut(&block) else { return };
        let evictable = cell.readable && !cell.dirty;
        match (evictable, cell.listed) {
            (true, None) => {
                if top_up && !cell.held && self.held < self.hold_target {
                    cell.held = true;
                    self.held += 1;
                }
                let key = (cell.rank(protected), cell.used.load(Ordering::Relaxed));
                cell.listed = Some(key);
                self.lru.insert(key, block);
            }
            (false, Some(key)) => {
                cell.listed = None;
                self.lru.remove(&key);
            }
            _ => {}
        }
    }

    /// Files every evictable cell again, under its current rank and last use.
    fn refile(&mut self) {
        let listed: Vec<u32> = self.lru.values().copied().collect();
        self.lru.clear();
        for block in listed {
            if let Some(cell) = self.cells.get_mut(&block) {
                cell.listed = None;
            }
            self.place(block, false);
        }
    }

    fn remove(&mut self, block: u32) -> Option<Cell> {
        let cell = self.cells.remove(&block)?;
        self.dirty -= u32::from(cell.dirty);
        self.loads -= u32::from(cell.loading);
        self.uploads -= u32::from(cell.uploading);
        self.held -= u32::from(cell.held);
        if let Some(key) = cell.listed {
            self.lru.remove(&key);
        }
        Some(cell)
    }

    /// The least recently used evictable cell, taken out of the map: demoted blocks first,
    /// protected and held ones last. With `idle_before`, only one last used before that many
    /// milliseconds.
    fn take_lru(&mut self, idle_before: Option<u64>) -> Option<(u32, u32)> {
        [DEMOTED, PLAIN, KEPT].into_iter().find_map(|rank| self.take_first(rank, idle_before))
    }

    fn take_first(&mut self, rank: u8, idle_before: Option<u64>) -> Option<(u32, u32)> {
        loop {
            let (&key, &block) = self.lru.range((rank, 0)..=(rank, u64::MAX)).next()?;
            let protected = block < self.protected_below;
            let cell = self.cells.get_mut(&block)?;
            let used = cell.used.load(Ordering::Relaxed);
            if used != key.1 {
                // Used since it was filed: file it under its last use (a demoted block is no
                // longer one) and look again. Every key is at most its cell's last use, so a
                // first key that is current is the LRU of its rank.
                let again = (cell.rank(protected), used);
                self.lru.remove(&key);
                self.lru.insert(again, block);
                cell.listed = Some(again);
                continue;
            }
            // Ticks follow time: if the least recently used is not idle, none is.
            if idle_before.is_some_and(|limit| cell.used_ms.load(Ordering::Relaxed) >= limit) {
                return None;
            }
            return self.remove(block).map(|c| (block, c.slot));
        }
    }
}

/// One piece of a request: `len` bytes at `offset` of `block`, at `at` in the request's buffer.
struct Piece {
    block: u32,
    offset: usize,
    len: usize,
    at: usize,
}

/// How long write_state tries before it sleeps (a 1 MiB read's copy, at most, on this hardware).
const WRITE_SPIN: std::time::Duration = std::time::Duration::from_micros(100);

pub struct Map {
    slots: Arc<Slots>,
    block_size: u64,
    state: RwLock<State>,
}

impl Map {
    pub fn new(slots: Arc<Slots>) -> Map {
        let block_size = u64::from(slots.header.block_size);
        Map { slots, block_size, state: RwLock::default() }
    }

    fn read_state(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The session's own writes sleep at once when the map is locked: on a write's busy cores a
    /// spinning FUSE thread took CPU that the thread it waited for needed.
    fn session_write_state(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The JS thread's calls that change the map find it read-locked while the session copies a
    /// read's bytes out of the slots (tens of microseconds): it tries for about that long before
    /// it sleeps, since being woken again on busy cores took longer than the copy itself.
    fn write_state(&self) -> RwLockWriteGuard<'_, State> {
        let started = std::time::Instant::now();
        loop {
            match self.state.try_write() {
                Ok(guard) => return guard,
                Err(std::sync::TryLockError::Poisoned(e)) => return e.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) if started.elapsed() < WRITE_SPIN => std::hint::spin_loop(),
                Err(std::sync::TryLockError::WouldBlock) => return self.state.write().unwrap_or_else(|e| e.into_inner()),
            }
        }
    }

    /// The state locked by `lock` once no cell of `pieces` is being copied into: a read or
    /// write of them waits for that copy, as it waited for the lock when copies held it. The
    /// session's one thread never finds one (its copies end before its next request).
    fn settled<'a, G: std::ops::Deref<Target = State>>(&'a self, pieces: &[Piece], lock: impl Fn(&'a Map) -> G) -> G {
        loop {
            let state = lock(self);
            if !pieces.iter().any(|p| state.cells.get(&p.block).is_some_and(|c| c.copying)) {
                return state;
            }
            drop(state);
            std::thread::yield_now();
        }
    }

    /// The pieces of `length` bytes at byte `offset` of the disk; None past block 2^32.
    fn pieces(&self, offset: u64, length: usize) -> Option<Vec<Piece>> {
        let bs = self.block_size;
        let mut out = Vec::new();
        let mut done = 0usize;
        while done < length {
            let pos = offset + done as u64;
            let block = u32::try_from(pos / bs).ok()?;
            let start = (pos % bs) as usize;
            let len = (bs as usize - start).min(length - done);
            out.push(Piece { block, offset: start, len, at: done });
            done += len;
        }
        Some(out)
    }

    /// Takes the block's cell for JS, busy, in this slot (loading, if JS fetches it now);
    /// false if the block has one already (written here as a new block, and JS has not heard yet).
    pub fn claim(&self, block: u32, slot: u32, loading: bool) -> bool {
        let mut state = self.write_state();
        if state.cells.contains_key(&block) {
            return false;
        }
        let mut cell = Cell::new(slot, false, false);
        cell.loading = loading;
        state.loads += u32::from(loading);
        state.cells.insert(block, cell);
        state.stamp(block);
        true
    }

    /// The block's slot holds all of it, current: readable here, and writable if `writable`.
    pub fn publish(&self, block: u32, writable: bool) {
        let mut state = self.write_state();
        let allowed = state.max_dirty > 0;
        let mut loaded = false;
        if let Some(cell) = state.cells.get_mut(&block) {
            cell.readable = true;
            cell.writable = writable && allowed;
            loaded = std::mem::replace(&mut cell.loading, false);
        }
        state.loads -= u32::from(loaded);
        // Evictable now unless dirty, at the young end of the order.
        state.stamp(block);
        state.file(block);
    }

    /// JS made the block dirty (a write of its own, or a dirty block recovered from a cache file).
    pub fn mark_dirty(&self, block: u32) {
        self.write_state().set_dirty(block, true);
    }

    /// An upload begins: copies the block's slot into `target` and returns the generation
    /// copied; None if the block has no cell or an upload of it is under way.
    pub fn begin_upload(&self, block: u32, target: &mut [u8]) -> Option<u32> {
        let mut state = self.write_state();
        let cell = state.cells.get_mut(&block)?;
        if cell.uploading || cell.copying {
            return None;
        }
        cell.uploading = true;
        self.slots.read_data(cell.slot, target);
        let generation = cell.generation;
        state.uploads += 1;
        Some(generation)
    }

    /// An upload begins that reads the slot in place (anonymous slots: the caller has a view of
    /// them): marks the cell uploading and pinned, and returns the generation and the slot; None
    /// if the block has no cell or an upload of it is under way.
    pub fn begin_upload_in_place(&self, block: u32) -> Option<(u32, u32)> {
        let mut state = self.write_state();
        let cell = state.cells.get_mut(&block)?;
        if cell.uploading || cell.copying {
            return None;
        }
        cell.uploading = true;
        cell.pinned = true;
        let begun = (cell.generation, cell.slot);
        state.uploads += 1;
        Some(begun)
    }

    /// Moves a block whose slot an upload reads in place to a copy of it in `to` (a free slot),
    /// where it can be written again; returns the slot the upload keeps, or None (and copies
    /// nothing) if the block is not pinned (its upload ended meanwhile).
    pub fn move_pinned(&self, block: u32, to: u32) -> Option<u32> {
        let mut state = self.write_state();
        let cell = state.cells.get_mut(&block).filter(|c| c.pinned)?;
        let from = cell.slot;
        self.slots.copy_data(from, to);
        cell.slot = to;
        cell.pinned = false;
        Some(from)
    }

    pub fn is_pinned(&self, block: u32) -> bool {
        self.read_state().cells.get(&block).is_some_and(|c| c.pinned)
    }

    /// The upload ended; clears the mark, returns whether there was one.
    fn clear_upload(state: &mut State, block: u32) -> bool {
        let Some(cell) = state.cells.get_mut(&block) else { return false };
        cell.pinned = false;
        let was = std::mem::replace(&mut cell.uploading, false);
        state.uploads -= u32::from(was);
        was
    }

    /// The upload of the data copied at `generation` succeeded: clean, unless written here
    /// since (then false: it needs another upload). With `keep_writable` false the cell stops
    /// taking writes here in the same step (a cache file's clean entry must keep matching its slot).
    pub fn stored(&self, block: u32, generation: u32, keep_writable: bool) -> bool {
        let mut state = self.write_state();
        Map::clear_upload(&mut state, block);
        let Some(cell) = state.cells.get_mut(&block) else { return true };
        if cell.generation != generation {
            return false;
        }
        cell.writable &= keep_writable;
        state.set_dirty(block, false);
        true
    }

    /// The upload ended without making the block clean (it failed, or JS wrote the block
    /// since): it stays dirty, and may be uploaded again.
    pub fn end_upload(&self, block: u32) {
        Map::clear_upload(&mut self.write_state(), block);
    }

    /// Lets the block go, whatever its state (a trim superseded it, or its fetch failed).
    pub fn remove(&self, block: u32) {
        self.write_state().remove(block);
    }

    pub fn slot_of(&self, block: u32) -> Option<u32> {
        self.read_state().cells.get(&block).map(|c| c.slot)
    }

    pub fn is_dirty(&self, block: u32) -> bool {
        self.read_state().cells.get(&block).is_some_and(|c| c.dirty)
    }

    pub fn is_loading(&self, block: u32) -> bool {
        self.read_state().cells.get(&block).is_some_and(|c| c.loading)
    }

    pub fn is_uploading(&self, block: u32) -> bool {
        self.read_state().cells.get(&block).is_some_and(|c| c.uploading)
    }

    /// The slot holds the whole current block (published, not loading).
    pub fn is_readable(&self, block: u32) -> bool {
        self.read_state().cells.get(&block).is_some_and(|c| c.readable)
    }

    /// Writes here are allowed while fewer than `max_dirty` cells are dirty (0: none at all).
    pub fn allow_writes(&self, max_dirty: u32) {
        let mut state = self.write_state();
        state.max_dirty = max_dirty;
        if max_dirty == 0 {
            for cell in state.cells.values_mut() {
                cell.writable = false;
            }
        }
    }

    pub fn lend(&self, slot: u32) {
        self.write_state().spares.push(slot);
    }

    /// The spare slots not used yet, handed back.
    pub fn reclaim(&self) -> Vec<u32> {
        std::mem::take(&mut self.write_state().spares)
    }

    /// Whether a write found no spare slot since the last call.
    pub fn take_shortage(&self) -> bool {
        std::mem::take(&mut self.write_state().short_of_spares)
    }

    /// The blocks written here since the last call, in order.
    pub fn take_written(&self) -> Vec<u32> {
        std::mem::take(&mut self.write_state().written)
    }

    /// The session reads and writes nothing more through the map.
    pub fn close(&self) {
        self.write_state().closed = true;
    }

    /// A use of the block by JS (a hit it answered): it moves to the young end of the order.
    pub fn touch(&self, block: u32) {
        self.read_state().stamp(block);
    }

    /// The block goes before every block not demoted, until it is used (read, written or stored)
    /// again: JS saw it written and stored as part of a stream, which is rarely read back soon, and should not push out the blocks
    /// used again and again (a filesystem's metadata). Demoted blocks go in the order demoted.
    pub fn demote(&self, block: u32) {
        let mut state = self.write_state();
        state.stamp(block);
        let Some(cell) = state.cells.get_mut(&block) else { return };
        cell.demoted_at = cell.used.load(Ordering::Relaxed);
        if let Some(key) = cell.listed.take() {
            state.lru.remove(&key);
            state.place(block, false);
        }
    }

    /// The least recently used evictable block, taken out of the map, with its slot; None when
    /// every block is busy or dirty. Unprotected blocks go first.
    pub fn take_victim(&self) -> Option<(u32, u32)> {
        self.write_state().take_lru(None)
    }

    /// Every evictable block not used for `idle_ms`, taken out of the map, with its slot.
    pub fn take_idle(&self, idle_ms: u64) -> Vec<(u32, u32)> {
        let mut state = self.write_state();
        let limit = state.now_ms().saturating_sub(idle_ms);
        std::iter::from_fn(|| state.take_lru(Some(limit))).collect()
    }

    /// Blocks below `below` are evicted after every other block (upstream's protected blocks).
    pub fn set_protected(&self, below: u32) {
        let mut state = self.write_state();
        state.protected_below = below;
        state.refile();
    }

    /// Holds every evictable block but the `cycling` most recently used, `target` at most, and
    /// then each block turning evictable until `target` are held: until released, held blocks
    /// are victims only once no other block is left. Returns how many it holds now.
    pub fn hold(&self, cycling: u32, target: u32) -> u32 {
        let mut state = self.write_state();
        let mut by_use: Vec<(u64, u32)> =
            state.lru.values().filter_map(|&b| state.cells.get(&b).map(|c| (c.used.load(Ordering::Relaxed), b))).collect();
        by_use.sort_unstable();
        let hold = by_use.len().saturating_sub(cycling as usize);
        state.hold_target = target;
        for &(_, block) in &by_use[..hold] {
            if state.held >= target {
                break;
            }
            if let Some(cell) = state.cells.get_mut(&block) {
                if !std::mem::replace(&mut cell.held, true) {
                    state.held += 1;
                }
            }
        }
        state.refile();
        state.held
    }

    /// Lets go of every held block: the order is plain LRU again.
    pub fn release_held(&self) {
        let mut state = self.write_state();
        for cell in state.cells.values_mut() {
            cell.held = false;
        }
        state.held = 0;
        state.hold_target = 0;
        state.refile();
    }

    /// How many blocks are held.
    pub fn held(&self) -> u32 {
        self.read_state().held
    }

    /// How many blocks could be evicted now.
    pub fn evictable(&self) -> usize {
        self.read_state().lru.len()
    }

    pub fn len(&self) -> usize {
        self.read_state().cells.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn dirty(&self) -> u32 {
        self.read_state().dirty
    }

    pub fn loads(&self) -> u32 {
        self.read_state().loads
    }

    pub fn uploads(&self) -> u32 {
        self.read_state().uploads
    }

    pub fn spares(&self) -> usize {
        self.read_state().spares.len()
    }

    /// `length` bytes at byte `offset` of the disk into `out` (resized to them), if every block
    /// they touch is readable here; the first and last block read, for the cache's bookkeeping.
    /// The caller keeps `out` for the next read: a fresh megabyte each time costs page faults.
    pub fn read_into(&self, offset: u64, length: usize, out: &mut Vec<u8>) -> Option<(u32, u32)> {
        let pieces = self.pieces(offset, length)?;
        let (first, last) = (pieces.first()?.block, pieces.last()?.block);
        let state = self.settled(&pieces, |m| m.read_state());
        if state.closed {
            return None;
        }
        let slots: Vec<u32> =
            pieces.iter().map(|p| state.cells.get(&p.block).filter(|c| c.readable).map(|c| c.slot)).collect::<Option<_>>()?;
        for p in &pieces {
            state.stamp(p.block);
        }
        // Every byte is overwritten below; only growth zeroes anything.
        out.resize(length, 0);
        for (p, slot) in pieces.iter().zip(slots) {
            self.slots.read_part(slot, p.offset, &mut out[p.at..p.at + p.len]);
        }
        Some((first, last))
    }

    /// As read_into, into a new buffer.
    pub fn read(&self, offset: u64, length: usize) -> Option<(Vec<u8>, u32, u32)> {
        let mut out = Vec::new();
        let (first, last) = self.read_into(offset, length, &mut out)?;
        Some((out, first, last))
    }

    /// Writes `data` at byte `offset` of the disk if every block it touches is writable here,
    /// or is new and covered whole with data that is not all zeros (a spare slot takes it);
    /// all or nothing. Returns the first and last block written.
    pub fn write(&self, offset: u64, data: &[u8]) -> Option<(u32, u32)> {
        self.write_acked(offset, data, || ())
    }

    /// As write, calling `ack` once the write is taken and before its bytes are copied: the
    /// session answers the kernel there, so the writer's next request is prepared while this one
    /// is copied. The copy runs with the map unlocked (the JS thread's calls into the map do not
    /// wait for it): its cells are dirty and their generation bumped first, so none is evicted or
    /// taken for stored meanwhile, and marked copying, so no upload begins from them and no read
    /// here sees them half written. JS hears of the blocks (the written list) once the copy ends.
    /// The session's one thread makes its writes one after another.
    pub fn write_acked(&self, offset: u64, data: &[u8], ack: impl FnOnce()) -> Option<(u32, u32)> {
        let pieces = self.pieces(offset, data.len())?;
        let (first, last) = (pieces.first()?.block, pieces.last()?.block);
        let mut state = self.settled(&pieces, |m| m.session_write_state());
        if state.max_dirty == 0 || state.closed {
            return None;
        }
        let (mut newly_dirty, mut new_blocks) = (0u32, 0usize);
        for p in &pieces {
            match state.cells.get(&p.block) {
                Some(cell) if cell.writable && !cell.pinned => newly_dirty += u32::from(!cell.dirty),
                // Partial pieces of uncached blocks need the rest fetched; zeros go through the zero cache.
                None if p.len as u64 == self.block_size && !is_zero(&data[p.at..p.at + p.len]) => {
                    newly_dirty += 1;
                    new_blocks += 1;
                }
                _ => return None,
            }
        }
        if state.dirty + newly_dirty > state.max_dirty {
            return None;
        }
        if new_blocks > state.spares.len() {
            state.short_of_spares = true;
            return None;
        }
        // Every piece's slot is settled before the ack: after it, the write cannot be refused.
        let mut slots = Vec::with_capacity(pieces.len());
        for p in &pieces {
            let slot = match state.cells.get(&p.block) {
                Some(cell) => cell.slot,
                None => {
                    let slot = state.spares.pop()?;
                    state.cells.insert(p.block, Cell::new(slot, true, true));
                    slot
                }
            };
            slots.push(slot);
        }
        // Only once nothing can be refused: a cell left copying would hold its readers forever.
        for p in &pieces {
            if let Some(cell) = state.cells.get_mut(&p.block) {
                cell.generation = cell.generation.wrapping_add(1);
                cell.copying = true;
            }
            state.set_dirty(p.block, true);
        }
        drop(state);
        ack();
        for (p, slot) in pieces.iter().zip(slots) {
            // Cells are made writable only without a cache file (TS: sessionWrites), where slots
            // have no write order to keep: this cannot be refused.
            let written = self.slots.write_part(slot, p.offset, &data[p.at..p.at + p.len]);
            debug_assert!(written.is_ok(), "{written:?}");
        }
        let mut state = self.session_write_state();
        for p in &pieces {
            if let Some(cell) = state.cells.get_mut(&p.block) {
                cell.copying = false;
            }
            if state.written.last() != Some(&p.block) {
                state.written.push(p.block);
            }
        }
        Some((first, last))
    }
}

/// The map of one block cache's slots; handed to the FUSE session at mount.
#[napi]
pub struct BlockMap {
    pub(crate) inner: Arc<Map>,
}

#[napi]
impl BlockMap {
    #[napi(constructor)]
    pub fn new(slots: &SlotStore) -> BlockMap {
        BlockMap { inner: Arc::new(Map::new(slots.shared())) }
    }

    /// Takes a cell for the block, busy, in this slot, and loading if `loading` (JS fetches it
    /// until it publishes or removes it); false if the session wrote it as a new block meanwhile
    /// (its slot is `slotOf(block)` then).
    #[napi]
    pub fn claim(&self, block: u32, slot: u32, loading: Option<bool>) -> bool {
        self.inner.claim(block, slot, loading.unwrap_or(false))
    }

    /// The block's slot holds all of it, current: the session reads it, and writes it if `writable`.
    #[napi]
    pub fn publish(&self, block: u32, writable: bool) {
        self.inner.publish(block, writable)
    }

    #[napi]
    pub fn mark_dirty(&self, block: u32) {
        self.inner.mark_dirty(block)
    }

    /// An upload begins: copies the block's slot into `target` (one block long) and returns the
    /// generation copied, or null if an upload of the block is under way already.
    #[napi]
    pub fn begin_upload(&self, block: u32, #[napi(ts_arg_type = "Uint8Array")] mut target: BufferSlice) -> Result<Option<u32>> {
        if target.len() as u64 != self.inner.block_size {
            return Err(Error::from_reason(format!("an upload's copy needs a buffer of one block, not {} bytes", target.len())));
        }
        if self.inner.slot_of(block).is_none() {
            return Err(Error::from_reason(format!("block {block} is not in the map")));
        }
        Ok(self.inner.begin_upload(block, &mut target))
    }

    /// An upload begins that reads the block's slot in place (through the slots' dataView):
    /// [generation, slot], or null if an upload of the block is under way already. Until it
    /// ends the session sends writes of the block to JS, which moves it first (movePinned).
    #[napi(ts_return_type = "[number, number] | null")]
    pub fn begin_upload_in_place(&self, block: u32) -> Result<Option<Vec<u32>>> {
        if self.inner.slot_of(block).is_none() {
            return Err(Error::from_reason(format!("block {block} is not in the map")));
        }
        Ok(self.inner.begin_upload_in_place(block).map(|(generation, slot)| vec![generation, slot]))
    }

    /// Copies a block an upload reads in place into the free slot `to`, which becomes its slot;
    /// returns the slot the upload keeps (JS frees it when the upload ends), or null if the
    /// block is not pinned any more (nothing copied: `to` is still free).
    #[napi]
    pub fn move_pinned(&self, block: u32, to: u32) -> Result<Option<u32>> {
        if to >= self.inner.slots.header.num_slots {
            return Err(Error::from_reason(format!("slot {to} out of range")));
        }
        Ok(self.inner.move_pinned(block, to))
    }

    #[napi]
    pub fn is_pinned(&self, block: u32) -> bool {
        self.inner.is_pinned(block)
    }

    /// The upload of `generation` succeeded: true if the block is clean now, false if the session
    /// wrote it since. Without `keepWritable` it stops taking the session's writes.
    #[napi]
    pub fn stored(&self, block: u32, generation: u32, keep_writable: bool) -> bool {
        self.inner.stored(block, generation, keep_writable)
    }

    /// The upload ended without making the block clean (it failed, or JS wrote it since).
    #[napi]
    pub fn end_upload(&self, block: u32) {
        self.inner.end_upload(block)
    }

    /// Writes as the session does (at byte `offset` of the disk): true if the map took the write,
    /// false if it must go through the block cache. For tests of the cache against the session.
    #[napi]
    pub fn write(&self, offset: i64, data: &[u8]) -> bool {
        u64::try_from(offset).is_ok_and(|offset| self.inner.write(offset, data).is_some())
    }

    /// Reads as the session does (at byte `offset` of the disk, stamping the blocks' use): the
    /// bytes, or null if a block they touch is not readable here. For tests of the cache.
    #[napi]
    pub fn read(&self, offset: i64, length: u32) -> Option<napi::bindgen_prelude::Buffer> {
        let offset = u64::try_from(offset).ok()?;
        self.inner.read(offset, length as usize).map(|(data, ..)| data.into())
    }

    #[napi]
    pub fn remove(&self, block: u32) {
        self.inner.remove(block)
    }

    #[napi]
    pub fn slot_of(&self, block: u32) -> Option<u32> {
        self.inner.slot_of(block)
    }

    #[napi]
    pub fn is_dirty(&self, block: u32) -> bool {
        self.inner.is_dirty(block)
    }

    #[napi]
    pub fn is_loading(&self, block: u32) -> bool {
        self.inner.is_loading(block)
    }

    #[napi]
    pub fn is_uploading(&self, block: u32) -> bool {
        self.inner.is_uploading(block)
    }

    /// The slot holds the whole current block: the session (and JS) may read it.
    #[napi]
    pub fn is_readable(&self, block: u32) -> bool {
        self.inner.is_readable(block)
    }

    /// Lets the session write while fewer than `maxDirty` blocks are dirty; 0 turns its writes off.
    #[napi]
    pub fn allow_writes(&self, max_dirty: u32) {
        self.inner.allow_writes(max_dirty)
    }

    /// A free slot for the session's next new block.
    #[napi]
    pub fn lend(&self, slot: u32) {
        self.inner.lend(slot)
    }

    /// The lent slots the session has not used, handed back.
    #[napi]
    pub fn reclaim(&self) -> Uint32Array {
        self.inner.reclaim().into()
    }

    /// Whether a write of the session's found no spare slot since the last call.
    #[napi]
    pub fn take_shortage(&self) -> bool {
        self.inner.take_shortage()
    }

    /// The blocks the session wrote since the last call, in order (their slots: `slotOf`).
    #[napi]
    pub fn take_written(&self) -> Uint32Array {
        self.inner.take_written().into()
    }

    /// The cache closed: the session reads and writes nothing more here.
    #[napi]
    pub fn close(&self) {
        self.inner.close()
    }

    /// A hit JS answered: the block moves to the young end of the LRU order.
    #[napi]
    pub fn touch(&self, block: u32) {
        self.inner.touch(block)
    }

    /// The block, written as part of a stream, is evicted before every block not so demoted
    /// until it is used again.
    #[napi]
    pub fn demote(&self, block: u32) {
        self.inner.demote(block)
    }

    /// Takes the least recently used block that is neither busy nor dirty out of the map:
    /// `[block, slot]`, or null when there is none.
    #[napi]
    pub fn take_victim(&self) -> Option<Uint32Array> {
        self.inner.take_victim().map(|(block, slot)| vec![block, slot].into())
    }

    /// Takes every evictable block unused for `idleMs` out of the map: `[block, slot, block, slot, ...]`.
    #[napi]
    pub fn take_idle(&self, idle_ms: u32) -> Uint32Array {
        self.inner.take_idle(u64::from(idle_ms)).into_iter().flat_map(|(b, s)| [b, s]).collect::<Vec<u32>>().into()
    }

    /// Blocks below `below` are evicted only after all others.
    #[napi]
    pub fn set_protected(&self, below: u32) {
        self.inner.set_protected(below)
    }

    /// Holds every evictable block but the `cycling` most recently used, then each block turning
    /// evictable, up to `target` (held ones are evicted only after all others) until
    /// `releaseHeld`; returns how many it holds.
    #[napi]
    pub fn hold(&self, cycling: u32, target: u32) -> u32 {
        self.inner.hold(cycling, target)
    }

    /// Held blocks are evicted in LRU order with the rest again.
    #[napi]
    pub fn release_held(&self) {
        self.inner.release_held()
    }

    /// Blocks held by `hold`.
    #[napi(getter)]
    pub fn held(&self) -> u32 {
        self.inner.held()
    }

    #[napi(getter)]
    pub fn evictable(&self) -> u32 {
        self.inner.evictable() as u32
    }

    #[napi(getter)]
    pub fn size(&self) -> u32 {
        self.inner.len() as u32
    }

    #[napi(getter)]
    pub fn dirty(&self) -> u32 {
        self.inner.dirty()
    }

    /// Blocks being fetched.
    #[napi(getter)]
    pub fn loading(&self) -> u32 {
        self.inner.loads()
    }

    /// Blocks being uploaded.
    #[napi(getter)]
    pub fn uploading(&self) -> u32 {
        self.inner.uploads()
    }

    #[napi(getter)]
    pub fn spares(&self) -> u32 {
        self.inner.spares() as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BS: usize = 4096;

    fn filled(slots: u32) -> Map {
        let s = Slots::anonymous(BS as u32, slots).unwrap();
        for slot in 0..slots {
            s.write_data(slot, &vec![slot as u8 + 1; BS]).unwrap();
        }
        Map::new(Arc::new(s))
    }

    #[test]
    fn reads_across_readable_blocks_only() {
        let map = filled(4);
        assert!(map.claim(10, 2, false));
        assert!(map.claim(11, 0, false));
        assert!(map.read(10 * 4096, 10).is_none(), "claimed is busy, not readable");
        map.publish(10, false);
        map.publish(11, false);
        let (data, first, last) = map.read(10 * 4096 + 4000, 200).unwrap();
        assert_eq!((first, last), (10, 11));
        assert!(data[..96].iter().all(|&b| b == 3));
        assert!(data[96..].iter().all(|&b| b == 1));
        assert!(map.read(11 * 4096, 4097).is_none(), "block 12 is not cached");
        map.remove(11);
        assert!(map.read(11 * 4096, 10).is_none());
        assert!(map.read(0, 0).is_none());
        assert!(!map.claim(10, 3, false), "block 10 has a cell");
        map.close();
        assert!(map.read(10 * 4096, 10).is_none(), "closed: nothing more for the session");
        assert_eq!(map.slot_of(10), Some(2), "the cells stay for JS");
    }

    #[test]
    fn writes_only_into_writable_cells_and_counts_them_dirty() {
        let map = filled(4);
        map.allow_writes(8);
        assert!(map.claim(5, 1, false));
        map.publish(5, false);
        assert!(map.write(5 * 4096 + 100, &[9; 50]).is_none(), "published read-only");
        map.publish(5, true);
        assert_eq!(map.write(5 * 4096 + 100, &[9; 50]), Some((5, 5)));
        assert!(map.is_dirty(5));
        assert_eq!(map.dirty(), 1);
        let (data, ..) = map.read(5 * 4096 + 90, 70).unwrap();
        assert_eq!(&data[..10], &[2; 10]);
        assert_eq!(&data[10..60], &[9; 50]);
        assert_eq!(&data[60..], &[2; 10]);
        assert_eq!(map.take_victim(), None, "dirty here: JS must keep it");
        assert_eq!(map.take_written(), vec![5]);
        assert!(map.take_written().is_empty());
    }

    /// Block 0 clean in slot 0, published writable, with up to `max_dirty` blocks dirty allowed.
    fn clean_block_0(slots: u32, max_dirty: u32) -> Map {
        let map = filled(slots);
        map.allow_writes(max_dirty);
        map.claim(0, 0, false);
        map.publish(0, true);
        map
    }

    /// Block 0 in slot 0, published writable and written here (its first ten bytes 7).
    fn written_here(slots: u32) -> Map {
        let map = clean_block_0(slots, 8);
        map.write(0, &[7; 10]).unwrap();
        map
    }

    #[test]
    fn while_a_write_copies_the_map_is_open_but_its_block_is_kept_out_of_uploads_and_eviction() {
        // (Reads and writes of the block wait for the copy: a_write_is_acked_once_taken_and_read_only_after_its_copy.)
        // A clean, evictable block 0 in slot 0, and an upload of it begun before the write.
        let map = clean_block_0(4, 8);
        let mut copy = vec![0; BS];
        map.lend(3);
        let mut seen = false;
        let written = map.write_acked(0, &[7; 10], || {
            // The lock is not held here: these would deadlock otherwise.
            seen = true;
            assert!(map.is_dirty(0), "dirty before the copy");
            assert_eq!(map.take_victim(), None, "so never evicted during it");
            assert!(map.begin_upload(0, &mut copy).is_none(), "no upload from a slot being copied into");
            assert!(map.begin_upload_in_place(0).is_none());
            assert!(map.take_written().is_empty(), "JS hears of it once the copy ends");
        });
        assert!(seen);
        assert_eq!(written, Some((0, 0)));
        assert_eq!(map.take_written(), vec![0]);
        let generation = map.begin_upload(0, &mut copy).unwrap();
        assert_eq!(&copy[..10], &[7; 10], "the upload after the copy has all of it");
        assert!(map.stored(0, generation, true));
        // An upload that began before a write is not taken for it.
        let before = map.begin_upload(0, &mut copy).unwrap();
        map.write_acked(0, &[8; 10], || {}).unwrap();
        assert!(!map.stored(0, before, true), "the generation moved before the copy");
        assert!(map.is_dirty(0));
    }

    #[test]
    fn an_upload_of_an_older_generation_leaves_the_block_dirty() {
        let map = written_here(2);
        let mut copy = vec![0; BS];
        let generation = map.begin_upload(0, &mut copy).unwrap();
        assert_eq!(&copy[..10], &[7; 10]);
        assert!(map.is_uploading(0));
        assert!(map.begin_upload(0, &mut copy).is_none(), "one upload of a block at a time");
        map.write(10, &[8; 10]).unwrap();
        assert!(!map.stored(0, generation, true), "written after the copy");
        assert!(map.is_dirty(0));
        assert!(!map.is_uploading(0), "the upload ended either way");
        assert_eq!(map.uploads(), 0);
        let generation = map.begin_upload(0, &mut copy).unwrap();
        map.end_upload(0);
        assert!(map.is_dirty(0) && !map.is_uploading(0), "a failed upload leaves it dirty");
        let generation_again = map.begin_upload(0, &mut copy).unwrap();
        assert_eq!(generation, generation_again);
        assert!(map.stored(0, generation, false));
        assert!(!map.is_dirty(0));
        assert!(map.write(0, &[1; 4]).is_none(), "no longer writable");
        assert_eq!(map.take_victim(), Some((0, 0)));
        assert!(map.stored(0, 99, true), "a block gone from the map has nothing left to store");
    }

    #[test]
    fn an_upload_in_place_pins_the_slot_until_the_block_moves_or_the_upload_ends() {
        let map = written_here(3);
        let (generation, slot) = map.begin_upload_in_place(0).unwrap();
        assert_eq!(slot, 0);
        assert!(map.is_pinned(0) && map.is_uploading(0));
        assert!(map.begin_upload_in_place(0).is_none(), "one upload of a block at a time");
        assert!(map.write(0, &[8; 10]).is_none(), "the session leaves a pinned slot alone");
        assert!(map.read(0, 10).is_some_and(|(d, ..)| d == [7; 10]), "and still reads it");
        assert_eq!(map.move_pinned(0, 2), Some(0), "moved: the upload keeps slot 0");
        assert_eq!(map.slot_of(0), Some(2));
        assert!(!map.is_pinned(0) && map.is_uploading(0));
        assert!(map.read(0, BS).is_some_and(|(d, ..)| d[..10] == [7; 10] && d[10..] == [1; BS - 10]), "the copy is whole");
        map.write(0, &[9; 10]).unwrap();
        let mut old = vec![0; BS];
        map.slots.read_data(0, &mut old);
        assert_eq!(&old[..10], &[7; 10], "the upload's slot kept its version");
        assert!(!map.stored(0, generation, true), "written here since the upload began: still dirty");
        assert!(map.is_dirty(0));
        assert_eq!(map.move_pinned(0, 1), None, "not pinned: nothing moves");
        assert_eq!(map.slot_of(0), Some(2));
        let (_, slot) = map.begin_upload_in_place(0).unwrap();
        assert_eq!(slot, 2);
        map.end_upload(0);
        assert!(!map.is_pinned(0), "a failed upload unpins too");
        assert!(map.write(0, &[5; 10]).is_some());
    }

    #[test]
    fn loading_until_published_and_counted() {
        let map = filled(4);
        assert!(map.claim(3, 1, true));
        assert!(map.is_loading(3) && !map.is_readable(3));
        assert!(!map.claim(3, 2, true), "one cell per block");
        assert_eq!(map.loads(), 1);
        assert_eq!(map.take_victim(), None, "loading is busy");
        map.publish(3, false);
        assert!(!map.is_loading(3) && map.is_readable(3));
        assert_eq!(map.loads(), 0);
        assert!(map.claim(4, 2, true));
        map.remove(4);
        assert_eq!(map.loads(), 0, "a failed load's cell goes, and its count");
    }

    #[test]
    fn new_blocks_take_spares_whole_and_non_zero_only() {
        let map = filled(4);
        map.allow_writes(8);
        let block = vec![5u8; BS];
        assert!(map.write(0, &block).is_none(), "no spare lent");
        assert!(map.take_shortage());
        assert!(!map.take_shortage());
        map.lend(3);
        assert!(map.write(0, &vec![0u8; BS]).is_none(), "zeros go to the zero cache");
        assert!(map.write(0, &block[..100]).is_none(), "part of an uncached block");
        assert!(!map.take_shortage(), "refused for other reasons than spares");
        assert_eq!(map.write(0, &block), Some((0, 0)));
        assert_eq!(map.slot_of(0), Some(3));
        assert!(map.read(0, BS).unwrap().0.iter().all(|&b| b == 5));
        assert!(!map.claim(0, 1, false), "JS must adopt the session's cell");
        assert_eq!(map.spares(), 0);
        map.lend(1);
        map.lend(2);
        assert_eq!(map.reclaim(), vec![1, 2]);
    }

    #[test]
    fn a_request_is_all_or_nothing_and_capped_by_dirty_blocks() {
        let map = clean_block_0(4, 2);
        map.lend(1);
        map.lend(2);
        // Block 0 writable, block 1 new and whole, block 2 only partly covered: refused whole.
        assert!(map.write(0, &vec![4u8; 2 * BS + 1]).is_none());
        assert_eq!(map.len(), 1);
        assert_eq!(map.dirty(), 0);
        assert_eq!(map.write(0, &vec![4u8; 2 * BS]), Some((0, 1)));
        assert_eq!(map.dirty(), 2);
        assert!(map.write(2 * BS as u64, &vec![4u8; BS]).is_none(), "a third dirty block is over the cap");
        assert_eq!(map.write(100, &[1; 10]), Some((0, 0)), "already dirty: no new one");
        assert_eq!(map.take_written(), vec![0, 1, 0]);
        map.allow_writes(0);
        assert!(map.write(100, &[1; 10]).is_none());
    }

    #[test]
    fn a_write_is_acked_once_taken_and_read_only_after_its_copy() {
        let map = Arc::new(filled(4));
        map.allow_writes(4);
        map.claim(0, 0, false);
        map.publish(0, true);
        let mut acks = 0;
        assert!(map.write_acked(0, &vec![0u8; BS + 1], || acks += 1).is_none());
        assert_eq!(acks, 0, "a refused write is not acked");
        let (tx, rx) = std::sync::mpsc::channel();
        let written = map.write_acked(0, &[6; 100], || {
            acks += 1;
            // A read racing the ack must wait for the copy, then see all of it.
            let reader = Arc::clone(&map);
            let tx = tx.clone();
            std::thread::spawn(move || tx.send(reader.read(0, 100).map(|r| r.0)).unwrap());
            std::thread::sleep(std::time::Duration::from_millis(50));
            assert!(rx.try_recv().is_err(), "read while the write was acked but not copied");
        });
        assert_eq!(written, Some((0, 0)));
        assert_eq!(acks, 1);
        let seen = rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap().unwrap();
        assert!(seen.iter().all(|&b| b == 6), "the reader saw the write whole");
        assert!(map.is_dirty(0));
    }

    #[test]
    fn a_second_write_of_a_block_waits_for_the_copy_of_the_first() {
        let map = Arc::new(filled(4));
        map.allow_writes(4);
        map.claim(0, 0, false);
        map.publish(0, true);
        let (tx, rx) = std::sync::mpsc::channel();
        map.write_acked(0, &[6; 100], || {
            let writer = Arc::clone(&map);
            std::thread::spawn(move || tx.send(writer.write(0, &[1; 4])).unwrap());
            std::thread::sleep(std::time::Duration::from_millis(50));
            assert!(rx.try_recv().is_err(), "the second write went ahead of the first's copy");
        })
        .unwrap();
        assert_eq!(rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap(), Some((0, 0)));
        let (data, ..) = map.read(0, 100).unwrap();
        assert_eq!(&data[..4], &[1; 4], "the second write landed last");
        assert!(data[4..].iter().all(|&b| b == 6));
    }

    #[test]
    fn victims_in_lru_order_protected_last_never_busy_or_dirty() {
        let map = filled(8);
        map.set_protected(2);
        for (block, slot) in [(0, 0), (5, 1), (6, 2), (7, 3), (1, 4)] {
            assert!(map.claim(block, slot, false));
            map.publish(block, false);
        }
        assert!(map.claim(9, 5, false), "busy: claimed, never published");
        map.mark_dirty(6);
        assert_eq!(map.evictable(), 4);
        map.touch(5); // JS answered a hit
        map.read(7 * 4096, 10).unwrap(); // the session answered one
        assert_eq!(map.take_victim(), Some((5, 1)), "unprotected first, by last use: 5 (touched), then 7 (read)");
        assert_eq!(map.take_victim(), Some((7, 3)));
        assert_eq!(map.take_victim(), Some((0, 0)), "protected ones only when no other is left");
        assert_eq!(map.take_victim(), Some((1, 4)));
        assert_eq!(map.take_victim(), None, "6 is dirty, 9 busy");
        assert_eq!(map.slot_of(5), None, "a victim leaves the map");
        map.allow_writes(8);
        assert!(map.stored(6, 0, false));
        assert_eq!(map.take_victim(), Some((6, 2)), "clean once stored");
    }

    #[test]
    fn demoted_blocks_go_first_in_the_order_demoted_until_used_again() {
        let map = filled(8);
        map.set_protected(1);
        for block in 0..6 {
            assert!(map.claim(block, block, false));
            map.publish(block, false);
        }
        // Written in a stream and stored: 4 first, then 3, then 5 (demoted, then written again).
        map.demote(4);
        map.demote(3);
        map.allow_writes(8);
        map.demote(5);
        map.mark_dirty(5);
        map.touch(3); // read again: no longer demoted
        assert_eq!(map.take_victim(), Some((4, 4)), "demoted and unused since: before the LRU");
        assert!(map.stored(5, 0, false));
        assert_eq!(map.take_victim(), Some((1, 1)), "then plain LRU: 1, 2, 3 (touched), 5 (written since)");
        assert_eq!(map.take_victim(), Some((2, 2)));
        assert_eq!(map.take_victim(), Some((3, 3)));
        assert_eq!(map.take_victim(), Some((5, 5)));
        map.demote(0);
        assert_eq!(map.take_victim(), Some((0, 0)), "a protected block stays last, demoted or not");
        assert_eq!(map.take_victim(), None);
    }

    #[test]
    fn held_blocks_go_after_the_rest_until_released() {
        let map = filled(8);
        for block in 0..6 {
            assert!(map.claim(block, block, false));
            map.publish(block, false);
        }
        map.touch(0); // in use order: 1, 2, 3, 4, 5, 0
        assert_eq!(map.hold(2, 5), 4, "all but 5 and 0");
        assert_eq!(map.held(), 4);
        assert_eq!(map.take_victim(), Some((5, 5)), "the newest two cycle");
        map.claim(7, 5, false);
        map.publish(7, false);
        map.claim(8, 6, false);
        map.publish(8, false);
        assert_eq!(map.held(), 5, "7 loaded since is held, up to the target; 8 is not");
        assert_eq!(map.take_victim(), Some((0, 0)));
        assert_eq!(map.take_victim(), Some((8, 6)));
        assert_eq!(map.take_victim(), Some((1, 1)), "held ones once no other is left, by last use");
        assert_eq!(map.held(), 4);
        map.mark_dirty(2);
        assert!(map.stored(2, 0, false));
        assert_eq!(map.held(), 4, "dirty and clean again: still held, counted once");
        assert_eq!(map.take_victim(), Some((3, 3)));
        map.release_held();
        assert_eq!(map.held(), 0);
        map.touch(4);
        assert_eq!(map.take_victim(), Some((7, 5)), "released: plain LRU");
        assert_eq!(map.take_victim(), Some((2, 2)));
        assert_eq!(map.take_victim(), Some((4, 4)));
        assert_eq!(map.take_victim(), None);
        map.claim(9, 0, false);
        map.publish(9, false);
        assert_eq!(map.held(), 0, "nothing is held after a release");
    }

    #[test]
    fn idle_blocks_are_the_ones_unused_for_the_timeout() {
        let map = filled(4);
        for (block, slot) in [(1, 0), (2, 1), (3, 2)] {
            map.claim(block, slot, false);
            map.publish(block, false);
        }
        assert!(map.take_idle(60_000).is_empty(), "all used just now");
        std::thread::sleep(std::time::Duration::from_millis(30));
        map.touch(2);
        let mut idle = map.take_idle(20);
        idle.sort();
        assert_eq!(idle, vec![(1, 0), (3, 2)]);
        assert_eq!(map.len(), 1);
    }
}

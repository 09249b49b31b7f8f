//! Crash states of the cache file, enumerated, in the style of SQLite's crash tests and of
//! CrashMonkey/ALICE: the slots run over `Disk`, a backing that records every write and every
//! sync; after each call the harness builds the images a power cut at that moment could leave
//! (each 512-byte sector written since its last sync holds its synced content or any content it
//! has had since: the kernel writes dirty pages back whenever it likes, and a device may persist
//! the sectors of one page write in any order), opens each with the real recovery
//! (cache_recovery::recover) and checks:
//!   1. every block comes back whole as a version that was written to it, never older than S3's;
//!      and a block no write of which is in flight comes back as its last acknowledged write or
//!      newer (a returned write survives; a FUSE fsync returns only once S3 has the blocks);
//!   2. a clean entry's slot gives the entry's ETag unless the entry itself is torn (a sector
//!      boundary through it): so the order alone keeps clean slots right, and the local check
//!      at mount (modelled here as the plain disk's MD5) catches the torn ones;
//!   3. a dirty slot recovered holds exactly a version written to its block; a torn or unflushed
//!      one is discarded (Fate::Torn), never taken as the block.
//!
//! The workload is `Model`, the block cache's cache-file paths (src/layers/blockCache.ts)
//! step by step, one slot call per step, several tasks interleaved by a seeded RNG; the ledger in
//! slots.rs refuses any call order that breaks the rules, so TS cannot order them otherwise
//! than this harness checks. The regression tests at the end replay the orders that had holes.

use crate::cache_format::{Header, ENTRY_SIZE, HEADER_SIZE};
use crate::cache_recovery::{copy_entries, recover, Fate, Options};
use crate::digest::md5;
use crate::slot_backing::Backing;
use crate::slots::Slots;
use std::collections::{BTreeMap, HashMap, HashSet};
// Cells in a BTreeMap: the runs pick from them, and must pick the same way every time.
use std::io;
use std::sync::{Arc, Mutex};

const SECTOR: usize = 512;
/// Images built per crash point: all of them when there are no more, else this many, sampled.
const IMAGES_PER_POINT: usize = 12;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*: deterministic, no dependency.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// The file as memory has it, as the disk has it, and what each unsynced sector may hold.
struct DiskState {
    mem: Vec<u8>,
    durable: Vec<u8>,
    /// Sectors written since their last sync: every content they have had since, oldest first.
    pending: BTreeMap<usize, Vec<Vec<u8>>>,
    /// The directory's place, once the header is written: entries are [start, start + 24 * n).
    directory: Option<(usize, usize)>,
    /// Every value each entry has had (torn ones are the others).
    entry_values: HashMap<usize, HashSet<[u8; ENTRY_SIZE]>>,
}

#[derive(Clone)]
struct Disk(Arc<Mutex<DiskState>>);

impl Disk {
    fn new(len: usize) -> Disk {
        Disk::from_image(vec![0u8; len])
    }

    /// A disk that holds `image`, all of it durable.
    fn from_image(image: Vec<u8>) -> Disk {
        let mut state =
            DiskState { mem: image.clone(), durable: image, pending: BTreeMap::new(), directory: None, entry_values: HashMap::new() };
        state.learn_directory();
        Disk(Arc::new(Mutex::new(state)))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, DiskState> {
        self.0.lock().unwrap()
    }

    fn len(&self) -> usize {
        self.state().mem.len()
    }
}

impl DiskState {
    fn learn_directory(&mut self) {
        if self.directory.is_some() || self.mem.len() < HEADER_SIZE {
            return;
        }
        if let Ok(h) = Header::decode(&self.mem[..HEADER_SIZE]) {
            self.directory = Some((h.entry_offset(0), h.num_slots as usize));
            for slot in 0..h.num_slots as usize {
                self.note_entry(slot);
            }
        }
    }

    fn note_entry(&mut self, slot: usize) {
        let (start, _) = self.directory.expect("directory known");
        let at = start + slot * ENTRY_SIZE;
        let value: [u8; ENTRY_SIZE] = self.mem[at..at + ENTRY_SIZE].try_into().unwrap();
        self.entry_values.entry(slot).or_default().insert(value);
    }

    /// Whether `image`'s entry for `slot` is one the entry really had (else it is torn).
    fn entry_whole(&self, image: &[u8], slot: usize) -> bool {
        let (start, _) = self.directory.expect("directory known");
        let at = start + slot * ENTRY_SIZE;
        let value: [u8; ENTRY_SIZE] = image[at..at + ENTRY_SIZE].try_into().unwrap();
        self.entry_values.get(&slot).is_some_and(|v| v.contains(&value))
    }

    /// The crash images now: every choice when there are few, else `max` sampled (the two
    /// extremes, nothing since the syncs and everything, always among them).
    fn images(&self, rng: &mut Rng, max: usize) -> Vec<Vec<u8>> {
        let sectors: Vec<(&usize, &Vec<Vec<u8>>)> = self.pending.iter().collect();
        let total = sectors.iter().try_fold(1usize, |n, (_, v)| n.checked_mul(v.len() + 1));
        let choices: Vec<Vec<usize>> = match total {
            Some(n) if n <= max => (0..n)
                .map(|mut k| {
                    sectors
                        .iter()
                        .map(|(_, v)| {
                            let c = k % (v.len() + 1);
                            k /= v.len() + 1;
                            c
                        })
                        .collect()
                })
                .collect(),
            _ => {
                let mut out = vec![vec![0; sectors.len()], sectors.iter().map(|(_, v)| v.len()).collect()];
                while out.len() < max {
                    out.push(sectors.iter().map(|(_, v)| rng.below(v.len() + 1)).collect());
                }
                out
            }
        };
        choices
            .into_iter()
            .map(|choice| {
                let mut image = self.durable.clone();
                for ((&sector, versions), c) in sectors.iter().zip(choice) {
                    if c > 0 {
                        let at = sector * SECTOR;
                        image[at..at + versions[c - 1].len()].copy_from_slice(&versions[c - 1]);
                    }
                }
                image
            })
            .collect()
    }
}

impl Backing for Disk {
    fn write_at(&self, offset: usize, data: &[u8]) {
        let mut s = self.state();
        s.mem[offset..offset + data.len()].copy_from_slice(data);
        let end = offset + data.len();
        for sector in offset / SECTOR..end.div_ceil(SECTOR) {
            let range = sector * SECTOR..((sector + 1) * SECTOR).min(s.mem.len());
            let content = s.mem[range].to_vec();
            s.pending.entry(sector).or_default().push(content);
        }
        s.learn_directory();
        if let Some((start, count)) = s.directory {
            let first = offset.saturating_sub(start) / ENTRY_SIZE;
            for slot in first..count {
                let at = start + slot * ENTRY_SIZE;
                if at >= end {
                    break;
                }
                if at + ENTRY_SIZE > offset {
                    s.note_entry(slot);
                }
            }
        }
    }

    fn read_at(&self, offset: usize, target: &mut [u8]) {
        target.copy_from_slice(&self.state().mem[offset..offset + target.len()]);
    }

    /// Durable: exactly the sectors the range touches (msync writes whole pages, but promises
    /// only the range: the harness assumes no more).
    fn sync(&self, offset: usize, len: usize) -> io::Result<()> {
        let mut s = self.state();
        let end = (offset + len).min(s.mem.len());
        for sector in offset / SECTOR..end.div_ceil(SECTOR) {
            let range = sector * SECTOR..((sector + 1) * SECTOR).min(s.mem.len());
            let content = s.mem[range.clone()].to_vec();
            s.durable[range].copy_from_slice(&content);
            s.pending.remove(&sector);
        }
        Ok(())
    }
}

/// What was written, stored and acknowledged, per block: what every crash image is judged by.
#[derive(Clone, Default)]
struct Oracle {
    /// Every version written to each block; version 0 is the absent block (zeros).
    versions: HashMap<u32, Vec<Vec<u8>>>,
    /// The version S3 holds (a put completed), the last acknowledged write, writes in flight.
    s3: HashMap<u32, usize>,
    acked: HashMap<u32, usize>,
    in_flight: HashMap<u32, u32>,
}

impl Oracle {
    fn new_version(&mut self, block: u32, data: Vec<u8>) -> usize {
        let zeros = vec![0u8; data.len()];
        let v = self.versions.entry(block).or_insert_with(|| vec![zeros]);
        v.push(data);
        v.len() - 1
    }

    fn data(&self, block: u32, version: usize, block_size: usize) -> Vec<u8> {
        self.versions.get(&block).map_or_else(|| vec![0u8; block_size], |v| v[version].clone())
    }

    fn s3_version(&self, block: u32) -> usize {
        self.s3.get(&block).copied().unwrap_or(0)
    }
}

fn etag_of(data: &[u8]) -> [u8; 16] {
    if data.iter().all(|&b| b == 0) {
        [0; 16]
    } else {
        md5(data)
    }
}

/// The mount's local check of a clean slot, for a plain disk (blockCache.ts restore, storesAs):
/// the ETag is the MD5 of the data, all zeros for an absent block.
fn clean_slot_matches(data: &[u8], etag: &[u8; 16]) -> bool {
    etag_of(data) == *etag
}

#[derive(Default, Debug, Clone, Copy)]
struct Counts {
    points: usize,
    states: usize,
    /// Dirty blocks recovered, dirty entries found torn, clean slots the local check refetched.
    dirty_recovered: usize,
    torn: usize,
    clean_caught: usize,
}

/// Opens each crash image of `disk` now with the real recovery and checks the three invariants;
/// returns the violations (empty when all hold).
fn check_now(disk: &Disk, oracle: &Oracle, num_blocks: u32, rng: &mut Rng, counts: &mut Counts) -> Vec<String> {
    let (images, state_len) = {
        let s = disk.state();
        (s.images(rng, IMAGES_PER_POINT), s.mem.len())
    };
    counts.points += 1;
    let mut bad = Vec::new();
    for image in images {
        counts.states += 1;
        bad.extend(check_image(disk, &image, state_len, oracle, num_blocks, counts));
    }
    bad
}

fn check_image(disk: &Disk, image: &[u8], len: usize, oracle: &Oracle, num_blocks: u32, counts: &mut Counts) -> Vec<String> {
    let mut bad = Vec::new();
    if image.len() < HEADER_SIZE || Header::decode(&image[..HEADER_SIZE]).is_err() {
        return vec!["the header is not in the file".into()];
    }
    let slots = Slots::open_over(Box::new(Disk::from_image(image.to_vec())), len).expect("a crash image opens");
    let bs = slots.header.block_size as usize;
    let opts = Options { num_blocks, usable_slots: slots.header.num_slots, recover_dirty: true };
    let decisions = recover(&slots, &opts).expect("recovery runs");
    let mut recovered: HashMap<u32, Vec<u8>> = HashMap::new();
    let mut data = vec![0u8; bs];
    for d in decisions {
        let (slot, block) = (d.entry.slot, d.entry.block);
        slots.read_data(slot, &mut data);
        match d.fate {
            Fate::Dirty => {
                counts.dirty_recovered += 1;
                recovered.insert(block, data.clone());
            }
            Fate::Clean => {
                if !clean_slot_matches(&data, &d.entry.etag) {
                    counts.clean_caught += 1;
                    if disk.state().entry_whole(image, slot as usize) {
                        bad.push(format!("clean entry of slot {slot} (block {block}) is whole but its data does not give its ETag"));
                    }
                    continue; // fetched again from S3
                }
                // The conditional GET: S3's object unchanged keeps the slot, else S3's data.
                let s3 = oracle.data(block, oracle.s3_version(block), bs);
                let kept = if etag_of(&s3) == d.entry.etag { data.clone() } else { s3 };
                recovered.insert(block, kept);
            }
            Fate::Torn => counts.torn += 1,
            Fate::Discarded | Fate::Dropped => {}
        }
    }
    for (&block, versions) in &oracle.versions {
        let got = recovered.get(&block).cloned().unwrap_or_else(|| oracle.data(block, oracle.s3_version(block), bs));
        let Some(v) = versions.iter().rposition(|d| *d == got) else {
            bad.push(format!("block {block} comes back with data it never held"));
            continue;
        };
        if v < oracle.s3_version(block) {
            bad.push(format!("block {block} comes back as version {v}, older than S3's {}", oracle.s3_version(block)));
        }
        let acked = oracle.acked.get(&block).copied().unwrap_or(0);
        if oracle.in_flight.get(&block).copied().unwrap_or(0) == 0 && v < acked {
            bad.push(format!("block {block} comes back as version {v}: its acknowledged write {acked} is lost"));
        }
    }
    bad
}

// ---- the workload: blockCache.ts's cache-file paths, one slot call per step ------------------

struct Cell {
    slot: u32,
    /// Unique per claim, as blockCache's Entry objects are (a reload is a new one).
    id: u64,
    /// The version the slot holds, the one S3 holds (storedVersion), writes under way.
    version: usize,
    stored: usize,
    dirty: bool,
    loading: bool,
    uploading: bool,
    pending_writes: u32,
    /// Bumped when a write clears the entry: an older write then leaves the entry alone (only
    /// matters with `serialize` off, when a block's writes overlap).
    persist_gen: u64,
}

enum Task {
    /// writeBlock with a cache file: clear + sync the entry, write, sync the data, set dirty +
    /// sync (unless a newer write cleared it meanwhile), then acknowledged.
    Write { block: u32, data: Vec<u8>, version: usize, gen: u64, step: u8 },
    /// load (a read miss or read-ahead): the evicted entry's clear synced, S3's data written,
    /// then persistClean: data synced, clean entry set (not synced) if nothing changed.
    Load { block: u32, id: u64, version: usize, step: u8 },
    /// uploadNow: the slot copied, the PUT, then clean (entry set, not synced) if unchanged.
    Upload { block: u32, version: usize, step: u8 },
    /// writeBlockPart with a cache file: read the block (a miss loads it), then a whole write.
    Part { block: u32, offset: usize, data: Vec<u8> },
}

struct Model {
    slots: Slots,
    disk: Disk,
    rng: Rng,
    num_blocks: u32,
    bs: usize,
    cells: BTreeMap<u32, Cell>,
    free: Vec<u32>,
    /// Clean, idle blocks, least recently used first.
    lru: Vec<u32>,
    tasks: Vec<Task>,
    oracle: Oracle,
    next_id: u64,
    counts: Counts,
    violations: Vec<String>,
    /// One write of a block at a time (blockCache.ts: `writeLocks` with a cache file).
    serialize: bool,
}

impl Model {
    fn new(seed: u64, block_size: u32, num_slots: u32, num_blocks: u32) -> Model {
        let len = Header::new(block_size, num_slots, 1).full_len();
        let disk = Disk::new(len);
        let slots = Slots::create_over(Box::new(disk.clone()), block_size, num_slots, 1).unwrap();
        let mut m = Model::over(slots, disk, seed, num_blocks);
        m.free = (0..num_slots).rev().collect();
        m
    }

    fn over(slots: Slots, disk: Disk, seed: u64, num_blocks: u32) -> Model {
        let bs = slots.header.block_size as usize;
        Model {
            slots,
            disk,
            rng: Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1),
            num_blocks,
            bs,
            cells: BTreeMap::new(),
            free: Vec::new(),
            lru: Vec::new(),
            tasks: Vec::new(),
            oracle: Oracle::default(),
            next_id: 0,
            counts: Counts::default(),
            violations: Vec::new(),
            serialize: true,
        }
    }

    /// After every call that changed the file or synced it: a power cut here.
    fn crash_point(&mut self) {
        let found = check_now(&self.disk, &self.oracle, self.num_blocks, &mut self.rng, &mut self.counts);
        self.violations.extend(found);
    }

    fn fresh_data(&mut self) -> Vec<u8> {
        // Different in every sector, so a torn block never equals a whole version.
        (0..self.bs).map(|_| self.rng.next() as u8).collect()
    }

    /// takeSlotNow: a free slot, else the least recently used clean block's (evicted: its entry
    /// cleared, not synced; the next user of the slot syncs it before writing).
    fn take_slot(&mut self) -> Option<u32> {
        if let Some(slot) = self.free.pop() {
            return Some(slot);
        }
        let victim = *self.lru.first()?;
        self.lru.remove(0);
        let cell = self.cells.remove(&victim).expect("an LRU block has a cell");
        self.slots.clear_entry(cell.slot);
        self.crash_point();
        Some(cell.slot)
    }

    fn claim(&mut self, block: u32, slot: u32, version: usize, loading: bool) -> u64 {
        self.next_id += 1;
        let stored = self.oracle.s3_version(block);
        let cell =
            Cell { slot, id: self.next_id, version, stored, dirty: false, loading, uploading: false, pending_writes: 0, persist_gen: 0 };
        self.cells.insert(block, cell);
        self.next_id
    }

    fn touch(&mut self, block: u32) {
        self.lru.retain(|&b| b != block);
        let c = &self.cells[&block];
        if !c.dirty && !c.loading && !c.uploading && c.pending_writes == 0 {
            self.lru.push(block);
        }
    }

    // ---- starting tasks (the synchronous part of each TS method) -------------------------

    fn start_write(&mut self, block: u32, data: Vec<u8>) -> bool {
        if self.cells.get(&block).is_some_and(|c| c.loading) {
            return false; // entryForWrite waits out the load
        }
        if self.serialize && self.cells.get(&block).is_some_and(|c| c.pending_writes > 0) {
            return false; // the block's write lock: the one before ends first
        }
        if !self.cells.contains_key(&block) {
            let Some(slot) = self.take_slot() else { return false };
            let v = self.oracle.s3_version(block);
            self.claim(block, slot, v, false);
        }
        let version = self.oracle.new_version(block, data.clone());
        *self.oracle.in_flight.entry(block).or_default() += 1;
        self.lru.retain(|&b| b != block);
        let cell = self.cells.get_mut(&block).unwrap();
        cell.pending_writes += 1;
        cell.dirty = true;
        cell.persist_gen += 1;
        let (gen, slot) = (cell.persist_gen, cell.slot);
        // The old claim goes first, so a crash mid-copy cannot pair the entry with torn data.
        self.slots.clear_entry(slot);
        self.crash_point();
        self.tasks.push(Task::Write { block, data, version, gen, step: 1 });
        true
    }

    fn start_load(&mut self, block: u32) -> bool {
        if self.cells.contains_key(&block) {
            return false;
        }
        let Some(slot) = self.take_slot() else { return false };
        let version = self.oracle.s3_version(block);
        let id = self.claim(block, slot, version, true);
        self.tasks.push(Task::Load { block, id, version, step: 1 });
        true
    }

    fn start_upload(&mut self, block: u32) -> bool {
        let Some(c) = self.cells.get_mut(&block) else { return false };
        if !c.dirty || c.uploading || c.loading {
            return false;
        }
        // map.beginUpload copies the slot as it is now (JS writes whole copies, never half).
        c.uploading = true;
        let version = c.version;
        self.tasks.push(Task::Upload { block, version, step: 1 });
        true
    }

    // ---- one step of a task: one awaited call, then what TS does after it ---------------

    /// One awaited call of `task` and what TS does after it; the task again while not done.
    fn step(&mut self, task: Task) -> Option<Task> {
        let bs = self.bs;
        match task {
            Task::Write { block, data, version, gen, step } => {
                let slot = self.cells[&block].slot;
                match step {
                    1 => {
                        self.slots.sync_entry(slot).unwrap();
                        self.crash_point();
                        Some(Task::Write { block, data, version, gen, step: 2 })
                    }
                    2 => {
                        if let Err(e) = self.slots.write_data(slot, &data) {
                            // Only when a block's writes overlap (`serialize` off): TS would fail it with EIO.
                            self.violations.push(format!("a write of block {block} refused: {e}"));
                            return self.write_done(block, version);
                        }
                        self.cells.get_mut(&block).unwrap().version = version;
                        self.crash_point();
                        Some(Task::Write { block, data: Vec::new(), version, gen, step: 3 })
                    }
                    3 => {
                        self.slots.sync_data(slot, true).unwrap();
                        self.crash_point();
                        // A newer write cleared the entry meanwhile: its claim is that write's to make.
                        if self.cells[&block].persist_gen != gen {
                            return self.write_done(block, version);
                        }
                        self.slots.set_entry(slot, block, true, &[0; 16]).expect("the ledger takes the entry");
                        self.crash_point();
                        Some(Task::Write { block, data, version, gen, step: 4 })
                    }
                    _ => {
                        self.slots.sync_entry(slot).unwrap();
                        self.crash_point();
                        self.write_done(block, version)
                    }
                }
            }
            Task::Load { block, id, version, step } => {
                // Evicted again before its entry was set: nothing more to do.
                let slot = self.cells.get(&block).filter(|c| c.id == id)?.slot;
                match step {
                    1 => {
                        // The evicted entry's clear, durable before the new data lands.
                        self.slots.sync_entry(slot).unwrap();
                        self.crash_point();
                        Some(Task::Load { block, id, version, step: 2 })
                    }
                    2 => {
                        let data = self.oracle.data(block, version, bs);
                        self.slots.write_data(slot, &data).expect("the ledger takes the fill");
                        self.cells.get_mut(&block).unwrap().loading = false;
                        self.touch(block);
                        self.crash_point();
                        Some(Task::Load { block, id, version, step: 3 })
                    }
                    _ => {
                        self.slots.sync_data(slot, false).unwrap();
                        self.crash_point();
                        let c = &self.cells[&block];
                        if c.version == version && c.stored == version && c.pending_writes == 0 {
                            let etag = etag_of(&self.oracle.data(block, version, bs));
                            self.slots.set_entry(slot, block, false, &etag).expect("the ledger takes the entry");
                            self.crash_point();
                        }
                        None
                    }
                }
            }
            Task::Upload { block, version, step: 1 } => Some(Task::Upload { block, version, step: 2 }), // the PUT is on its way
            Task::Upload { block, version, .. } => {
                let s3 = self.oracle.s3.entry(block).or_insert(0);
                *s3 = (*s3).max(version);
                let c = self.cells.get_mut(&block).unwrap();
                c.uploading = false;
                c.stored = version;
                if c.version == version && c.pending_writes == 0 {
                    c.dirty = false;
                    let slot = c.slot;
                    let etag = etag_of(&self.oracle.data(block, version, bs));
                    self.slots.set_entry(slot, block, false, &etag).expect("the ledger takes the clean entry");
                    self.touch(block);
                }
                self.crash_point();
                None
            }
            Task::Part { block, offset, data } => match self.cells.get(&block) {
                Some(c) if !c.loading => {
                    // Read under the block's write lock, then written whole (TS: writeBlockPart).
                    if self.serialize && c.pending_writes > 0 {
                        return Some(Task::Part { block, offset, data });
                    }
                    let mut whole = vec![0u8; bs];
                    self.slots.read_data(c.slot, &mut whole);
                    whole[offset..offset + data.len()].copy_from_slice(&data);
                    assert!(self.start_write(block, whole));
                    None
                }
                Some(_) => Some(Task::Part { block, offset, data }), // the load under way ends first
                None => {
                    self.start_load(block);
                    Some(Task::Part { block, offset, data })
                }
            },
        }
    }

    fn write_done(&mut self, block: u32, version: usize) -> Option<Task> {
        let c = self.cells.get_mut(&block).unwrap();
        c.pending_writes -= 1;
        *self.oracle.in_flight.get_mut(&block).unwrap() -= 1;
        let acked = self.oracle.acked.entry(block).or_insert(0);
        *acked = (*acked).max(version);
        None
    }

    /// Runs one step of a task chosen at random.
    fn advance(&mut self) {
        if self.tasks.is_empty() {
            return;
        }
        let i = self.rng.below(self.tasks.len());
        let task = self.tasks.swap_remove(i);
        if let Some(task) = self.step(task) {
            self.tasks.push(task);
        }
    }

    /// Runs every task to its end; uploads start meanwhile, as pump() would, so writes waiting
    /// for a slot get one.
    fn drain(&mut self) {
        let mut guard = 0;
        while !self.tasks.is_empty() {
            self.advance();
            if self.rng.chance(20) {
                self.upload_random_dirty();
            }
            guard += 1;
            assert!(guard < 100_000, "tasks never finish");
        }
    }

    /// A FUSE fsync: every dirty block uploaded (and made clean), then it returns.
    fn fsync(&mut self) {
        self.drain();
        loop {
            let dirty: Vec<u32> = self.cells.iter().filter(|(_, c)| c.dirty).map(|(&b, _)| b).collect();
            if dirty.is_empty() {
                break;
            }
            for b in dirty {
                self.start_upload(b);
            }
            self.drain();
        }
        for b in self.oracle.versions.keys() {
            assert!(self.oracle.s3_version(*b) >= self.oracle.acked.get(b).copied().unwrap_or(0), "fsync left block {b} out of S3");
        }
    }

    fn random_dirty(&mut self) -> Option<u32> {
        let dirty: Vec<u32> = self.cells.iter().filter(|(_, c)| c.dirty && !c.uploading && !c.loading).map(|(&b, _)| b).collect();
        (!dirty.is_empty()).then(|| dirty[self.rng.below(dirty.len())])
    }

    /// Starts the upload of a dirty block chosen at random, if one is idle.
    fn upload_random_dirty(&mut self) {
        if let Some(b) = self.random_dirty() {
            self.start_upload(b);
        }
    }

    /// Runs `n` steps of tasks chosen at random.
    fn advance_times(&mut self, n: usize) {
        for _ in 0..n {
            self.advance();
        }
    }

    fn finish(&mut self, name: &str) -> Counts {
        self.drain();
        assert!(
            self.violations.is_empty(),
            "{name}: {} violations, first: {:?}",
            self.violations.len(),
            &self.violations[..self.violations.len().min(5)]
        );
        assert!(self.counts.states >= 100, "{name}: only {} crash states", self.counts.states);
        eprintln!("{name}: {:?}", self.counts);
        self.counts
    }
}

// ---- the runs -----------------------------------------------------------------------------

/// 24 slots of 1 KiB: two sectors a block, and slot 18's entry (bytes 496..520) crosses a
/// sector boundary, so entries can tear too.
const BS: u32 = 1024;
const SLOTS: u32 = 24;

#[test]
fn sequential_writes() {
    let mut m = Model::new(1, BS, SLOTS, 64);
    for block in 0..40u32 {
        let data = m.fresh_data();
        while !m.start_write(block, data.clone()) {
            m.advance();
            m.upload_random_dirty();
        }
        // Write-behind: the block before is uploaded once the writer moves on.
        if block > 0 {
            m.start_upload(block - 1);
        }
        let steps = m.rng.below(4);
        m.advance_times(steps);
        if block % 16 == 15 {
            m.fsync();
        }
    }
    m.finish("sequential writes");
}

#[test]
fn random_partial_writes() {
    let mut m = Model::new(2, BS, SLOTS, 48);
    for _ in 0..60 {
        let block = m.rng.below(16) as u32;
        let offset = m.rng.below(BS as usize - 1);
        let len = 1 + m.rng.below(BS as usize - offset);
        let data = m.fresh_data()[..len].to_vec();
        m.tasks.push(Task::Part { block, offset, data });
        let steps = 1 + m.rng.below(5);
        m.advance_times(steps);
        if m.rng.chance(20) {
            m.upload_random_dirty();
        }
    }
    m.finish("random partial writes");
}

#[test]
fn write_back_in_flight() {
    // Few blocks, rewritten while their uploads are under way, and uploads finishing between
    // every step of the writes.
    let mut m = Model::new(3, BS, SLOTS, 16);
    for round in 0..70 {
        let block = m.rng.below(6) as u32;
        let data = m.fresh_data();
        m.start_write(block, data);
        m.upload_random_dirty();
        let steps = m.rng.below(4);
        m.advance_times(steps);
        if round % 25 == 24 {
            m.fsync();
        }
    }
    m.finish("write-back in flight");
}

#[test]
fn eviction_and_slot_reuse() {
    // Twice as many blocks as slots, read and written: clean blocks are evicted and their slots
    // refilled by loads and by new writes.
    let mut m = Model::new(4, BS, SLOTS, 64);
    for _ in 0..120 {
        let block = m.rng.below(48) as u32;
        if m.rng.chance(50) {
            m.start_load(block);
        } else {
            let data = m.fresh_data();
            m.start_write(block, data);
        }
        if m.rng.chance(60) {
            m.upload_random_dirty();
        }
        let steps = m.rng.below(5);
        m.advance_times(steps);
    }
    m.finish("eviction and slot reuse");
}

/// A run cut by a power failure, the image resized (a changed --blockCacheSize) with the real
/// rewrite, recovered, then used on: crash states checked before, during and after.
#[test]
fn resize_after_a_crash() {
    let mut total = 0;
    for (seed, new_slots) in [(5u64, 12u32), (6, 40)] {
        let mut m = Model::new(seed, BS, SLOTS, 64);
        for _ in 0..40 {
            let block = m.rng.below(32) as u32;
            let data = m.fresh_data();
            m.start_write(block, data);
            if m.rng.chance(40) {
                m.upload_random_dirty();
            }
            let steps = m.rng.below(3);
            m.advance_times(steps);
        }
        let counts = m.finish("resize: before the crash");
        total += counts.states;
        // The power goes now: one of the images it could leave (sampled), with what was in flight.
        let images = m.disk.state().images(&mut m.rng, 4);
        let image = images.last().unwrap().clone();
        let oracle = m.oracle.clone();
        let len = image.len();
        let from = Slots::open_over(Box::new(Disk::from_image(image)), len).unwrap();
        let intact = from.entries().iter().filter(|e| e.dirty && from.dirty_data_matches(e.slot)).count() as u32;
        if intact > new_slots {
            // Shrinking below the dirty blocks to recover would lose them: refused.
            let small = Slots::create_over(Box::new(Disk::new(Header::new(BS, new_slots, 1).full_len())), BS, new_slots, 1).unwrap();
            assert!(copy_entries(&from, &small, true).unwrap_err().contains("dirty blocks not yet uploaded"));
        }
        let new_slots = new_slots.max(intact);
        let new_len = Header::new(BS, new_slots, from.mount_token()).full_len();
        let new_disk = Disk::new(new_len);
        let to = Slots::create_over(Box::new(new_disk.clone()), BS, new_slots, from.mount_token()).unwrap();
        let r = copy_entries(&from, &to, true).unwrap();
        assert!(r.kept <= new_slots && r.kept + r.torn <= r.found);
        // The rename makes the new file the cache file: only safe if all of it is durable.
        assert!(new_disk.state().pending.is_empty(), "the rewrite left unsynced sectors before the rename");
        let mut counts = Counts::default();
        let bad = check_now(&new_disk, &oracle, 64, &mut m.rng, &mut counts);
        assert!(bad.is_empty(), "resized image: {bad:?}");
        drop(to);
        // The next mount: recovery over the new file, then writes, uploads and loads on it.
        let image = new_disk.state().mem.clone();
        let disk = Disk::from_image(image);
        let slots = Slots::open_over(Box::new(disk.clone()), new_len).unwrap();
        let decisions = recover(&slots, &Options { num_blocks: 64, usable_slots: new_slots, recover_dirty: true }).unwrap();
        let mut n = Model::over(slots, disk, seed + 100, 64);
        n.oracle = oracle;
        // In flight at the crash: nothing is any more (the acknowledged versions stay).
        n.oracle.in_flight.clear();
        let mut used = HashSet::new();
        for d in decisions.iter().filter(|d| matches!(d.fate, Fate::Dirty | Fate::Clean)) {
            let mut data = vec![0u8; BS as usize];
            n.slots.read_data(d.entry.slot, &mut data);
            if d.fate == Fate::Clean && !clean_slot_matches(&data, &d.entry.etag) {
                n.slots.clear_entry(d.entry.slot); // the mount fetches it again
                continue;
            }
            let version = n.oracle.versions[&d.entry.block].iter().rposition(|v| *v == data).expect("a recovered version");
            // What the new mount has is its acknowledged state now.
            let acked = n.oracle.acked.entry(d.entry.block).or_insert(0);
            *acked = (*acked).max(version);
            n.claim(d.entry.block, d.entry.slot, version, false);
            let c = n.cells.get_mut(&d.entry.block).unwrap();
            c.dirty = d.fate == Fate::Dirty;
            used.insert(d.entry.slot);
            n.touch(d.entry.block);
        }
        // A dirty block recovered but not yet uploaded: S3 may have older; acked follows the slot.
        for (b, v) in n.oracle.acked.clone() {
            if !n.cells.contains_key(&b) && n.oracle.s3_version(b) < v {
                n.oracle.acked.insert(b, n.oracle.s3_version(b)); // lost to the crash before it was durable
            }
        }
        n.free = (0..new_slots).rev().filter(|s| !used.contains(s)).collect();
        n.slots.sync_directory().unwrap();
        for _ in 0..40 {
            let block = n.rng.below(32) as u32;
            if n.rng.chance(30) {
                n.start_load(block);
            } else {
                let data = n.fresh_data();
                n.start_write(block, data);
            }
            if n.rng.chance(50) {
                n.upload_random_dirty();
            }
            let steps = n.rng.below(4);
            n.advance_times(steps);
        }
        total += n.finish("resize: after").states + counts.states;
    }
    assert!(total >= 200);
}

// ---- regressions: the orders that had holes, replayed, and the states they allowed ---------

fn file(block_size: u32, num_slots: u32) -> (Slots, Disk) {
    let disk = Disk::new(Header::new(block_size, num_slots, 1).full_len());
    (Slots::create_over(Box::new(disk.clone()), block_size, num_slots, 1).unwrap(), disk)
}

fn fill(slots: &Slots, slot: u32, data: &[u8]) {
    slots.write_data(slot, data).unwrap();
    slots.sync_data(slot, false).unwrap();
}

/// Every crash state now (up to 4096 of them), checked; the violations.
fn all_states(disk: &Disk, oracle: &Oracle, num_blocks: u32) -> Vec<String> {
    let images = disk.state().images(&mut Rng(7), 4096);
    let len = disk.len();
    let mut counts = Counts::default();
    images.iter().flat_map(|image| check_image(disk, image, len, oracle, num_blocks, &mut counts)).collect()
}

/// Hole: a read miss refilled an evicted slot before the clear of its entry was durable
/// (blockCache.ts load: evicted() cleared the entry, the fetched data went straight in). A power
/// cut could keep the old clean entry over the new block's data: caught by the ETag check at
/// mount, but served as the old block with --blockCacheNoVerify.
#[test]
fn regression_refill_before_the_evicted_entry_is_cleared() {
    let (s, disk) = file(BS, SLOTS);
    let mut oracle = Oracle::default();
    let old = vec![5u8; BS as usize];
    let v = oracle.new_version(5, old.clone());
    oracle.s3.insert(5, v);
    fill(&s, 0, &old);
    s.set_entry(0, 5, false, &etag_of(&old)).unwrap();
    s.sync_entry(0).unwrap();
    // Block 5 evicted for block 9.
    s.clear_entry(0);
    let new = vec![9u8; BS as usize];
    let v9 = oracle.new_version(9, new.clone());
    oracle.s3.insert(9, v9);
    assert!(s.write_data(0, &new).unwrap_err().contains("clear and sync the entry first"), "the ledger refuses the old order");
    s.set_unordered();
    s.write_data(0, &new).unwrap();
    let bad = all_states(&disk, &oracle, 64);
    assert!(bad.iter().any(|b| b.contains("clean entry of slot 0 (block 5) is whole")), "the harness finds the hole: {bad:?}");
    // The order now: the clear synced first.
    let (s, disk) = file(BS, SLOTS);
    fill(&s, 0, &old);
    s.set_entry(0, 5, false, &etag_of(&old)).unwrap();
    s.sync_entry(0).unwrap();
    s.clear_entry(0);
    s.sync_entry(0).unwrap();
    s.write_data(0, &new).unwrap();
    assert_eq!(all_states(&disk, &oracle, 64), Vec::<String>::new());
}

/// Hole: two writes of one block at once (blockCache.ts writeBlock): the first, its data
/// synced, set its dirty entry after the second had cleared it, and the second then wrote its
/// data under that entry. A power cut mid-copy left a dirty entry over a mix of the two
/// versions, uploaded as the block at the next mount.
#[test]
fn regression_an_older_write_reclaims_the_entry_a_newer_one_cleared() {
    let (s, disk) = file(BS, SLOTS);
    let mut oracle = Oracle::default();
    let (d1, d2) = (vec![1u8; BS as usize], vec![2u8; BS as usize]);
    let v1 = oracle.new_version(3, d1.clone());
    let v2 = oracle.new_version(3, d2.clone());
    oracle.in_flight.insert(3, 1); // W2's
    oracle.acked.insert(3, v1);
    // W1: clear, sync, write, sync data. W2: clear, (awaits its sync). W1: set dirty, sync.
    fill(&s, 0, &d1);
    s.clear_entry(0);
    s.set_unordered();
    s.set_entry(0, 3, true, &[0; 16]).unwrap();
    s.sync_entry(0).unwrap();
    // W2's data lands under W1's claim (the ledger refuses this now; the upstream-style entry
    // here has no checksum to catch it either).
    s.write_data(0, &d2).unwrap();
    let _ = v2;
    let bad = all_states(&disk, &oracle, 64);
    assert!(bad.iter().any(|b| b.contains("data it never held")), "the harness finds the hole: {bad:?}");
    // Now: blockCache.ts runs a block's writes one at a time, the ledger refuses W2's write
    // while W1's claim stands, and with the checksum a torn slot is discarded even where an
    // order went wrong.
    let (s, disk) = file(BS, SLOTS);
    fill(&s, 0, &d1);
    s.set_entry(0, 3, true, &[0; 16]).unwrap();
    s.sync_entry(0).unwrap();
    assert!(s.write_data(0, &d2).is_err());
    s.set_unordered(); // the order broken anyway: the checksum still holds
    s.write_data(0, &d2).unwrap();
    let mut checked = oracle.clone();
    checked.acked.insert(3, 0);
    assert_eq!(all_states(&disk, &checked, 64), Vec::<String>::new());
}

/// Hole: a clean fill's entry (blockCache.ts persistClean) set after a write of the same block
/// had cleared the entry and before its data landed: the clean entry then claimed data being
/// overwritten.
#[test]
fn regression_a_clean_fill_claims_a_slot_a_write_is_filling() {
    let (s, disk) = file(BS, SLOTS);
    let mut oracle = Oracle::default();
    let (loaded, written) = (vec![4u8; BS as usize], vec![6u8; BS as usize]);
    let v1 = oracle.new_version(8, loaded.clone());
    oracle.s3.insert(8, v1);
    oracle.new_version(8, written.clone());
    oracle.in_flight.insert(8, 1);
    fill(&s, 0, &loaded); // the load, its data synced
    s.clear_entry(0); // the write's clear (a no-op: nothing claimed yet)
    s.sync_entry(0).unwrap();
    s.set_entry(0, 8, false, &etag_of(&loaded)).unwrap(); // persistClean, too late
    assert!(s.write_data(0, &written).is_err(), "the ledger refuses the write under the clean claim");
    s.set_unordered();
    s.write_data(0, &written).unwrap();
    s.sync_entry(0).unwrap();
    let bad = all_states(&disk, &oracle, 64);
    assert!(bad.iter().any(|b| b.contains("is whole but its data does not give its ETag")), "the harness finds the hole: {bad:?}");
}

/// Hole (upstream's format as upstream writes it): an entry that crosses a sector boundary
/// (slot 18's, bytes 496..520) tears when the power goes as it changes from free to dirty: the
/// block number's sector written, the flag's not, or the reverse, so the slot reads as dirty
/// block 0 (uploaded over block 0 at the next mount). The dirty checksum in the ETag field
/// (which upstream ignores) catches every such tear.
#[test]
fn regression_a_torn_dirty_entry_across_a_sector_boundary() {
    let run = |with_checksum: bool| {
        let (s, disk) = file(BS, SLOTS);
        if !with_checksum {
            s.set_unordered();
        }
        let mut oracle = Oracle::default();
        let data = vec![0xabu8; BS as usize];
        oracle.new_version(0, vec![0x11u8; BS as usize]);
        oracle.s3.insert(0, 1); // block 0 stored, with other data
        let v = oracle.new_version(40, data.clone());
        oracle.in_flight.insert(40, 1);
        fill(&s, 18, &data);
        s.set_entry(18, 40, true, &[0; 16]).unwrap();
        let _ = v;
        all_states(&disk, &oracle, 64)
    };
    let bad = run(false);
    assert!(bad.iter().any(|b| b.contains("block 0 comes back with data it never held")), "the harness finds the hole: {bad:?}");
    assert_eq!(run(true), Vec::<String>::new());
}

/// Not a hole but the limit of upstream's format: a block rewritten in place has no entry
/// between the clear and the new data's claim, so a power cut then brings back S3's version,
/// older than a write that had returned (no fsync had: S3 would have it). The harness's rule 1
/// allows exactly this, and only while a write of the block is in flight.
#[test]
fn a_block_being_rewritten_may_fall_back_to_s3() {
    let (s, disk) = file(BS, SLOTS);
    let mut oracle = Oracle::default();
    let (d1, d2) = (vec![1u8; BS as usize], vec![2u8; BS as usize]);
    let v1 = oracle.new_version(3, d1.clone());
    oracle.new_version(3, d2);
    oracle.acked.insert(3, v1);
    fill(&s, 0, &d1);
    s.set_entry(0, 3, true, &[0; 16]).unwrap();
    s.sync_entry(0).unwrap();
    s.clear_entry(0);
    s.sync_entry(0).unwrap();
    let bad = all_states(&disk, &oracle, 64);
    assert!(bad.iter().any(|b| b.contains("acknowledged write 1 is lost")), "{bad:?}");
    oracle.in_flight.insert(3, 1);
    assert_eq!(all_states(&disk, &oracle, 64), Vec::<String>::new());
}

/// The ledger's own rules, and that it skips syncs of what is durable already.
#[test]
fn the_ledger_refuses_out_of_order_calls_and_skips_needless_syncs() {
    let (s, disk) = file(BS, 4);
    let data = vec![3u8; BS as usize];
    s.write_data(1, &data).unwrap();
    assert!(s.set_entry(1, 7, true, &[0; 16]).unwrap_err().contains("not in the file yet"));
    s.sync_data(1, true).unwrap();
    s.set_entry(1, 7, true, &[0; 16]).unwrap();
    assert_eq!(s.dirty_checksum(1), Some(crate::digest::dirty_checksum(&data)));
    assert!(s.write_data(1, &data).is_err(), "claimed");
    s.clear_entry(1);
    assert!(s.write_data(1, &data).is_err(), "cleared, not yet durable");
    s.sync_entry(1).unwrap();
    assert!(disk.state().pending.is_empty());
    s.sync_entry(1).unwrap(); // nothing to do
    s.clear_entry(1); // free already: nothing written
    assert!(disk.state().pending.is_empty());
    s.write_data(1, &data).unwrap();
    // recover() makes its clearing durable before returning.
    s.sync_data(1, false).unwrap();
    s.set_entry(1, 99, true, &[0; 16]).unwrap();
    recover(&s, &Options { num_blocks: 64, usable_slots: 4, recover_dirty: true }).unwrap();
    assert!(disk.state().pending.is_empty() && s.entries().is_empty(), "a dropped entry is cleared durably");
}

/// Hole: writes of one block overlapping in time (two FUSE writes, or a partial write's
/// read/modify/write beside another). Each ran clear, sync, copy, sync, set, sync on its own,
/// so one's data could land under the entry the other had just set (and a partial write could
/// read the block before another's data landed, losing that write). Now blockCache.ts runs a
/// block's writes one at a time with a cache file; here, overlapping, the ledger refuses them.
#[test]
fn regression_overlapping_writes_of_one_block() {
    let run = |serialize: bool| {
        let mut m = Model::new(9, BS, SLOTS, 16);
        m.serialize = serialize;
        for _ in 0..60 {
            let block = m.rng.below(3) as u32;
            let data = m.fresh_data();
            m.start_write(block, data);
            let steps = m.rng.below(3);
            m.advance_times(steps);
        }
        m.drain();
        std::mem::take(&mut m.violations)
    };
    let bad = run(false);
    assert!(bad.iter().any(|b| b.contains("refused")), "overlapping writes break the order: {bad:?}");
    assert_eq!(run(true), Vec::<String>::new());
}

//! Where the slots' bytes live: the one seam every write and flush of a cache file goes through
//! (a crash-state harness can stand a recording implementation in its place). Two real ones: a
//! shared mapping of the cache file, and anonymous memory. The few unsafe spots are here, each
//! behind a bounds-checked method.

use memmap2::{MmapOptions, MmapRaw};
use std::fs::File;
use std::io;

const PAGE: usize = 4096;

/// Byte storage at offsets: copies in and out, and durability of a range.
pub trait Backing: Send + Sync {
    /// Copies `data` in at `offset` (not yet durable: see `sync`).
    fn write_at(&self, offset: usize, data: &[u8]);
    fn read_at(&self, offset: usize, target: &mut [u8]);
    /// Makes the range durable in the file (a no-op in memory).
    fn sync(&self, offset: usize, len: usize) -> io::Result<()>;
    /// Maps in memory ahead of use, contents untouched (anonymous memory only).
    fn prefault(&self, _offset: usize, _len: usize) {}
    /// Asks the kernel to drop the range from memory (--blockCacheFileAdvise); contents stay.
    fn drop_cached(&self, _offset: usize, _len: usize) {}
    /// Gives the memory of the range back to the system, contents and all (they read as zeros
    /// after): anonymous memory only; a file keeps its bytes.
    fn discard(&self, _offset: usize, _len: usize) {}
    /// Faults read only the pages touched, not their neighbours (while the range is dropped
    /// after each use, read-around would bring a slot back that was just dropped).
    fn set_random_access(&self, _on: bool) {}
    /// The address of a range others may write into directly (a socket's reads), if this backing
    /// allows it: anonymous memory only, since a cache file's bytes must land in the ledger's order.
    fn shared_range(&self, _offset: usize, _len: usize) -> Option<*mut u8> {
        None
    }
}

/// A mapping with bounds-checked copies in and out; the only place that touches raw memory.
struct Region {
    map: MmapRaw,
}

impl Region {
    fn check(&self, offset: usize, len: usize, what: &str) {
        assert!(offset.checked_add(len).is_some_and(|end| end <= self.map.len()), "{what} out of bounds");
    }

    fn copy_in(&self, offset: usize, data: &[u8]) {
        self.check(offset, data.len(), "copy_in");
        // SAFETY: the range is inside the mapping (checked above), and the mapping lives as long as self.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.map.as_mut_ptr().add(offset), data.len()) }
    }

    fn copy_out(&self, offset: usize, target: &mut [u8]) {
        self.check(offset, target.len(), "copy_out");
        // SAFETY: as in copy_in; target is a distinct Rust slice, so the ranges cannot overlap.
        unsafe { std::ptr::copy_nonoverlapping(self.map.as_ptr().add(offset), target.as_mut_ptr(), target.len()) }
    }

    /// The whole pages covering [offset, offset + len), clipped to the mapping.
    fn pages(&self, offset: usize, len: usize) -> (usize, usize) {
        let start = offset / PAGE * PAGE;
        let end = offset.saturating_add(len).min(self.map.len());
        (start, end.saturating_sub(start))
    }

    /// MADV_DONTNEED over those pages (Linux only), which it returns: a shared file mapping lets
    /// them go (the file keeps the bytes, the next access faults them back in), a private
    /// anonymous one frees them (they read as zeros after).
    fn dont_need(&self, offset: usize, len: usize) -> (usize, usize) {
        let (start, len) = self.pages(offset, len);
        #[cfg(target_os = "linux")]
        if len > 0 {
            // SAFETY: the page-aligned range lies inside the mapping (clipped by `pages`), and no
            // reference into it is held: the bytes are only ever copied in and out.
            unsafe {
                libc::madvise(self.map.as_mut_ptr().add(start).cast(), len, libc::MADV_DONTNEED);
            }
        }
        (start, len)
    }
}

/// A cache file, mapped shared: writes are copies into the page cache, msync makes them durable.
pub struct MappedFile {
    region: Region,
    file: File,
}

impl MappedFile {
    pub fn new(file: File) -> io::Result<MappedFile> {
        Ok(MappedFile { region: Region { map: MmapRaw::map_raw(&file)? }, file })
    }
}

impl Backing for MappedFile {
    fn write_at(&self, offset: usize, data: &[u8]) {
        self.region.copy_in(offset, data)
    }

    fn set_random_access(&self, on: bool) {
        let advice = if on { memmap2::Advice::Random } else { memmap2::Advice::Normal };
        let _ = self.region.map.advise(advice);
    }

    fn read_at(&self, offset: usize, target: &mut [u8]) {
        self.region.copy_out(offset, target)
    }

    fn sync(&self, offset: usize, len: usize) -> io::Result<()> {
        self.region.map.flush_range(offset, len)
    }

    /// Unmaps the pages from this process (MADV_DONTNEED), then drops them from the page cache
    /// (POSIX_FADV_DONTNEED): the kernel keeps pages that are still mapped, so fadvise alone
    /// would evict nothing. Pages not yet written back stay until they are.
    fn drop_cached(&self, offset: usize, len: usize) {
        let (start, len) = self.region.dont_need(offset, len);
        #[cfg(target_os = "linux")]
        if len > 0 {
            use std::os::unix::io::AsRawFd;
            // SAFETY: a plain call on the file's own descriptor; it changes no memory.
            unsafe {
                libc::posix_fadvise(self.file.as_raw_fd(), start as libc::off_t, len as libc::off_t, libc::POSIX_FADV_DONTNEED);
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = (start, len);
    }
}

/// Anonymous memory: the block cache without a cache file.
pub struct Anonymous {
    region: Region,
}

impl Anonymous {
    pub fn new(len: usize) -> io::Result<Anonymous> {
        Ok(Anonymous { region: Region { map: MmapRaw::from(MmapOptions::new().len(len).map_anon()?) } })
    }
}

impl Backing for Anonymous {
    fn write_at(&self, offset: usize, data: &[u8]) {
        self.region.copy_in(offset, data)
    }

    fn read_at(&self, offset: usize, target: &mut [u8]) {
        self.region.copy_out(offset, target)
    }

    fn sync(&self, _offset: usize, _len: usize) -> io::Result<()> {
        Ok(())
    }

    fn shared_range(&self, offset: usize, len: usize) -> Option<*mut u8> {
        self.region.check(offset, len, "shared_range");
        // SAFETY: the range is inside the mapping (checked above); only the address is taken.
        Some(unsafe { self.region.map.as_mut_ptr().add(offset) })
    }

    /// The pages are freed now, on the calling thread, rather than by the process's exit; the
    /// mapping stays.
    fn discard(&self, offset: usize, len: usize) {
        self.region.dont_need(offset, len);
    }

    /// MADV_POPULATE_WRITE: copying a block into a fresh slot then costs no page faults (a no-op
    /// where the kernel lacks it, before 5.14).
    fn prefault(&self, offset: usize, len: usize) {
        let (start, len) = self.region.pages(offset, len);
        #[cfg(target_os = "linux")]
        let _ = self.region.map.advise_range(memmap2::Advice::PopulateWrite, start, len);
        #[cfg(not(target_os = "linux"))]
        let _ = (start, len);
    }
}

//! Exclusive advisory locks (flock) on a lock file: the --test directory store takes one around a
//! conditional write, so create-exclusive and compare-and-swap hold between processes. The lock
//! belongs to the open file: it goes when released, dropped, or when the process dies, so a crash
//! never leaves a stale lock behind.

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::path::Path;

use napi::{Error, Result, Status};
use napi_derive::napi;

/// Opens (creating) the lock file and takes its exclusive lock; None while another holder has it.
pub fn try_lock(path: &Path) -> io::Result<Option<File>> {
    let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

/// A held lock; `release()` gives it up (so does the object being collected).
#[napi]
pub struct FileLock {
    file: Option<File>,
}

#[napi]
impl FileLock {
    /// Gives the lock up; later calls do nothing.
    #[napi]
    pub fn release(&mut self) {
        // Closing the file releases its flock.
        self.file = None;
    }
}

/// The exclusive lock of the file at `path` (created if missing), or null while another holds it.
#[napi]
pub fn try_lock_file(path: String) -> Result<Option<FileLock>> {
    try_lock(Path::new(&path))
        .map(|held| held.map(|file| FileLock { file: Some(file) }))
        .map_err(|e| Error::new(Status::GenericFailure, format!("cannot lock {path}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_path(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("s3backer-lock-{}-{name}", std::process::id()))
    }

    #[test]
    fn second_holder_waits_until_the_first_releases() {
        let path = temp_path("excl");
        let first = try_lock(&path).unwrap().expect("free lock taken");
        // A second open file description conflicts even within one process.
        assert!(try_lock(&path).unwrap().is_none());
        drop(first);
        assert!(try_lock(&path).unwrap().is_some());
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_missing_directory_is_an_error() {
        assert!(try_lock(Path::new("/nonexistent-dir-s3backer/x.lock")).is_err());
    }
}

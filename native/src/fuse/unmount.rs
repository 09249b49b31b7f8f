//! Taking the mount down: umount2(2) as root, `fusermount3 -u` (or FUSE 2's `fusermount`)
//! otherwise, as libfuse does; and closing a detached mount's connection.

use std::ffi::CString;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::process::Command;

pub fn unmount(mountpoint: &str, lazy: bool) -> io::Result<()> {
    let path = CString::new(mountpoint).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a mountpoint holds no NUL byte"))?;
    let flags = if lazy { libc::MNT_DETACH } else { 0 };
    // SAFETY: path is a valid NUL-terminated string for the duration of the call.
    if unsafe { libc::umount2(path.as_ptr(), flags) } == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() != Some(libc::EPERM) {
        return Err(err);
    }
    // Not root: the setuid helper unmounts what its user mounted.
    let mut last = err;
    for helper in ["fusermount3", "fusermount"] {
        let mut command = Command::new(helper);
        command.arg("-u");
        if lazy {
            command.arg("-z");
        }
        match command.arg(mountpoint).output() {
            Ok(out) if out.status.success() => return Ok(()),
            Ok(out) => return Err(io::Error::other(String::from_utf8_lossy(&out.stderr).trim().to_string())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => last = io::Error::other(format!("{last} (and no {helper} to ask)")),
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// A mount error with what to do about it where the OS error alone says too little.
pub fn explain_mount_error(err: &io::Error) -> String {
    let device = std::fs::OpenOptions::new().read(true).write(true).open("/dev/fuse");
    match device {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            format!("{err}: there is no /dev/fuse (is the fuse kernel module loaded? modprobe fuse)")
        }
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            format!("{err}: /dev/fuse cannot be opened by this user (run as root, or let this user read and write /dev/fuse)")
        }
        _ => err.to_string(),
    }
}

/// The kernel's id of the FUSE connection mounted here: its superblock's device number.
pub fn connection_of(mountpoint: &str) -> Option<u32> {
    let dev = std::fs::metadata(mountpoint).ok()?.dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    Some((major << 20) | minor)
}

/// Fails every request of a detached mount from now on (upstream's libfuse closes its device on
/// SIGTERM to the same effect); without fusectl mounted, open descriptors keep the session alive.
pub fn abort_connection(connection: u32) {
    let _ = std::fs::write(format!("/sys/fs/fuse/connections/{connection}/abort"), b"1");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_that_is_not_a_mount_point_is_refused() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return; // the helper's refusal then; its wording is not ours
        }
        let err = unmount(std::env::temp_dir().to_str().unwrap(), false).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
    }
}

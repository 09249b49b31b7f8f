//! What the session is told by TypeScript (which owns the configuration and the `-o` parsing):
//! the two files' names and attributes, the kernel's limits, and the mount options.

use fuser::{MountOption, SessionACL};
use napi_derive::napi;
use std::time::Duration;

/// The mount as TypeScript resolved it from the command line.
#[napi(object)]
pub struct FuseSessionOptions {
    pub mountpoint: String,
    pub filename: String,
    pub stats_filename: String,
    /// Permission bits of the backed file (the stats file shows its read bits only).
    pub file_mode: u32,
    pub file_size: i64,
    pub block_size: u32,
    pub uid: u32,
    pub gid: u32,
    pub read_only: bool,
    /// Every read and write of the backed file goes to us (no page cache).
    #[napi(js_name = "directIO")]
    pub direct_io: bool,
    /// Keep the page cache across opens (upstream's kernel_cache): only we change the file.
    pub keep_cache: bool,
    /// Largest write request the kernel may send (fuser negotiates max_pages for it).
    pub max_write: u32,
    pub max_readahead: Option<u32>,
    pub max_background: Option<u32>,
    pub congestion_threshold: Option<u32>,
    pub async_read: bool,
    pub attr_timeout_ms: u32,
    pub entry_timeout_ms: u32,
    /// allow_other (any user, modes enforced by the kernel), allow_root, or neither.
    pub access: String,
    /// The device name the mount table shows.
    pub fsname: String,
    pub subtype: Option<String>,
    /// Kernel mount flags and options: ro, nodev, nosuid, noexec, noatime, sync, dirsync,
    /// dev, suid, exec, atime, async, rw, max_read=N.
    pub mount_options: Vec<String>,
    /// FUSE threads reading requests (each with its own cloned descriptor).
    pub threads: u32,
}

pub struct Settings {
    pub filename: String,
    pub stats_filename: String,
    pub file_mode: u32,
    pub file_size: u64,
    pub block_size: u32,
    pub uid: u32,
    pub gid: u32,
    pub read_only: bool,
    pub direct_io: bool,
    pub keep_cache: bool,
    pub max_write: u32,
    pub max_readahead: Option<u32>,
    pub max_background: Option<u16>,
    pub congestion_threshold: Option<u16>,
    pub async_read: bool,
    pub attr_ttl: Duration,
    pub entry_ttl: Duration,
}

fn to_u16(value: Option<u32>) -> Option<u16> {
    value.map(|v| v.min(u32::from(u16::MAX)) as u16)
}

impl Settings {
    pub fn from_options(o: &FuseSessionOptions) -> Result<Settings, String> {
        if o.block_size == 0 || o.file_size <= 0 {
            return Err(format!("a file of {} bytes in blocks of {} cannot be served", o.file_size, o.block_size));
        }
        Ok(Settings {
            filename: o.filename.clone(),
            stats_filename: o.stats_filename.clone(),
            file_mode: o.file_mode & 0o7777,
            file_size: o.file_size as u64,
            block_size: o.block_size,
            uid: o.uid,
            gid: o.gid,
            read_only: o.read_only,
            direct_io: o.direct_io,
            keep_cache: o.keep_cache,
            max_write: o.max_write.max(4096),
            max_readahead: o.max_readahead,
            max_background: to_u16(o.max_background),
            congestion_threshold: to_u16(o.congestion_threshold),
            async_read: o.async_read,
            attr_ttl: Duration::from_millis(u64::from(o.attr_timeout_ms)),
            entry_ttl: Duration::from_millis(u64::from(o.entry_timeout_ms)),
        })
    }
}

/// fuser's mount configuration for these options.
pub fn session_config(o: &FuseSessionOptions) -> Result<fuser::Config, String> {
    let mut config = fuser::Config::default();
    config.acl = match o.access.as_str() {
        "other" => SessionACL::All,
        "root" => SessionACL::RootAndOwner,
        "owner" => SessionACL::Owner,
        other => return Err(format!("unknown access \"{other}\"")),
    };
    let mut options = vec![MountOption::FSName(o.fsname.clone()), MountOption::DefaultPermissions];
    if let Some(subtype) = &o.subtype {
        // As a kernel option (fuser sends its Subtype only to fusermount): the mount table then
        // shows the type fuse.<subtype>, as upstream's mounts do, however we mounted.
        options.push(MountOption::CUSTOM(format!("subtype={subtype}")));
    }
    if o.read_only {
        options.push(MountOption::RO);
    }
    for item in &o.mount_options {
        options.push(mount_option(item)?);
    }
    config.mount_options = options;
    config.n_threads = Some(o.threads.max(1) as usize);
    config.clone_fd = o.threads > 1;
    Ok(config)
}

fn mount_option(item: &str) -> Result<MountOption, String> {
    Ok(match item {
        "ro" => MountOption::RO,
        "rw" => MountOption::RW,
        "dev" => MountOption::Dev,
        "nodev" => MountOption::NoDev,
        "suid" => MountOption::Suid,
        "nosuid" => MountOption::NoSuid,
        "exec" => MountOption::Exec,
        "noexec" => MountOption::NoExec,
        "atime" => MountOption::Atime,
        "noatime" => MountOption::NoAtime,
        "sync" => MountOption::Sync,
        "async" => MountOption::Async,
        "dirsync" => MountOption::DirSync,
        "auto_unmount" => MountOption::AutoUnmount,
        _ if item.starts_with("max_read=") && item[9..].parse::<u32>().is_ok() => MountOption::CUSTOM(item.to_string()),
        _ => return Err(format!("mount option \"{item}\" is not one the kernel takes")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> FuseSessionOptions {
        FuseSessionOptions {
            mountpoint: "/mnt".into(),
            filename: "file".into(),
            stats_filename: "stats".into(),
            file_mode: 0o100600,
            file_size: 1 << 20,
            block_size: 4096,
            uid: 0,
            gid: 0,
            read_only: false,
            direct_io: false,
            keep_cache: true,
            max_write: 1 << 20,
            max_readahead: None,
            max_background: None,
            congestion_threshold: None,
            async_read: true,
            attr_timeout_ms: 1000,
            entry_timeout_ms: 1000,
            access: "other".into(),
            fsname: "s3backer".into(),
            subtype: None,
            mount_options: vec!["nodev".into(), "max_read=131072".into()],
            threads: 2,
        }
    }

    #[test]
    fn maps_access_and_mount_options() {
        let config = session_config(&options()).unwrap();
        assert_eq!(config.acl, SessionACL::All);
        assert!(config.mount_options.contains(&MountOption::DefaultPermissions));
        assert!(config.mount_options.contains(&MountOption::NoDev));
        assert!(config.mount_options.contains(&MountOption::CUSTOM("max_read=131072".into())));
        assert!(config.clone_fd);
    }

    #[test]
    fn refuses_what_the_kernel_would_not_take() {
        let mut o = options();
        o.mount_options = vec!["big_writes".into()];
        assert!(session_config(&o).unwrap_err().contains("big_writes"));
        o.mount_options = vec![];
        o.access = "everyone".into();
        assert!(session_config(&o).is_err());
    }

    #[test]
    fn keeps_only_permission_bits_of_the_mode() {
        assert_eq!(Settings::from_options(&options()).unwrap().file_mode, 0o600);
    }
}

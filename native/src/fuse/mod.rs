//! The FUSE session, served in Rust on the `fuser` crate (its own mount code: no libfuse). The
//! kernel's requests are read and answered on FUSE threads; what needs the block stack reaches
//! JS as an event through a thread-safe function, and JS answers it with `reply*` by id.

mod filesystem;
mod pending;
mod settings;
mod unmount;

use crate::block_map::BlockMap;
use filesystem::{BackedFs, Event, Shared};
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use pending::{errno, Pending};
use std::sync::Arc;

pub use settings::FuseSessionOptions;

/// One request for JS: `op` is read, write, flush, zero, stats or resetStats (answered by id),
/// or hits (reads and writes answered through the block map: `takeHits()`; no answer).
#[napi(object)]
pub struct FuseRequest {
    pub id: u32,
    pub op: String,
    /// Byte offset into the backed file (read, write, zero).
    pub offset: i64,
    /// Bytes to read or zero.
    pub length: i64,
    /// What a write brings, owned by JS from here on.
    pub data: Option<Buffer>,
}

/// Reads and writes the session answered through the block map, for the cache's bookkeeping and
/// the metrics (the blocks written are in the map's own log: BlockMap.takeWritten).
#[napi(object)]
pub struct Hits {
    /// The blocks read, in order (one entry for several reads inside one block).
    pub blocks: Uint32Array,
    /// Each read's size in bytes and the seconds it took to answer, interleaved.
    pub reads: Float64Array,
    /// The same for each write.
    pub writes: Float64Array,
}

impl From<Event> for FuseRequest {
    fn from(event: Event) -> Self {
        let request = |id: u32, op: &str, offset: u64, length: u64, data: Option<Buffer>| FuseRequest {
            id,
            op: op.to_string(),
            offset: offset as i64,
            length: length as i64,
            data,
        };
        match event {
            Event::Read { id, offset, length } => request(id, "read", offset, u64::from(length), None),
            Event::Write { id, offset, data } => request(id, "write", offset, data.len() as u64, Some(data.into())),
            Event::Flush { id } => request(id, "flush", 0, 0, None),
            Event::Zero { id, offset, length } => request(id, "zero", offset, length, None),
            Event::Stats { id } => request(id, "stats", 0, 0, None),
            Event::ResetStats { id } => request(id, "resetStats", 0, 0, None),
            Event::Hits => request(0, "hits", 0, 0, None),
        }
    }
}

// Weak: they do not hold Node's event loop open. JS keeps it open while it serves the mount and
// lets go once it has stored everything, even if open descriptors keep a detached mount alive.
type RequestFn = ThreadsafeFunction<FuseRequest, (), FuseRequest, Status, false, true>;
type EndFn = ThreadsafeFunction<Option<String>, (), Option<String>, Status, false, true>;

/// A mounted session. `onEnd` is called once when the mount ends, however it ends: our unmount,
/// `umount` or `fusermount3 -u` from outside.
#[napi]
pub struct FuseSession {
    shared: Arc<Shared>,
    mountpoint: String,
    /// The kernel's number for this connection (/sys/fs/fuse/connections/N), if it was found.
    connection: Option<u32>,
}

#[napi]
impl FuseSession {
    /// Mounts and completes the kernel's handshake before returning; a refused mount throws.
    /// With a block map, reads and writes of the blocks it lets the session serve are answered without asking JS.
    #[napi(
        factory,
        ts_args_type = "options: FuseSessionOptions, onRequest: (request: FuseRequest) => void, onEnd: (error: string | null) => void, map?: BlockMap | null"
    )]
    pub fn mount(options: FuseSessionOptions, on_request: RequestFn, on_end: EndFn, map: Option<&BlockMap>) -> Result<FuseSession> {
        let settings = settings::Settings::from_options(&options).map_err(Error::from_reason)?;
        let config = settings::session_config(&options).map_err(Error::from_reason)?;
        let shared = Arc::new(Shared::new());
        let emit = Box::new(move |event: Event| on_request.call(event.into(), ThreadsafeFunctionCallMode::NonBlocking) == Status::Ok);
        let fs = BackedFs::new(settings, shared.clone(), emit, map.map(|m| m.inner.clone()));
        let session = fuser::Session::new(fs, &options.mountpoint, &config).map_err(|e| {
            Error::from_reason(format!("cannot mount FUSE at {}: {}", options.mountpoint, unmount::explain_mount_error(&e)))
        })?;
        let ended = shared.clone();
        std::thread::Builder::new()
            .name("fuse-session".into())
            .spawn(move || {
                let result = session.run();
                // Whatever JS had not answered fails now; the kernel has gone anyway.
                ended.pending.fail_all();
                on_end.call(result.err().map(|e| e.to_string()), ThreadsafeFunctionCallMode::Blocking);
            })
            .map_err(|e| Error::from_reason(format!("starting the FUSE thread: {e}")))?;
        let connection = unmount::connection_of(&options.mountpoint);
        Ok(FuseSession { shared, mountpoint: options.mountpoint, connection })
    }

    /// Answers a request: a byte count for a write, 0 for the others, or a negative errno.
    #[napi]
    pub fn reply(&self, id: u32, result: i32) {
        let Some(pending) = self.shared.pending.take(id) else { return };
        match pending {
            Pending::Write(r) if result >= 0 => r.written(result as u32),
            Pending::Empty(r) if result >= 0 => r.ok(),
            Pending::Write(r) => r.error(errno(result)),
            Pending::Empty(r) => r.error(errno(result)),
            Pending::Data(r) => r.error(errno(result)),
            Pending::StatsAttr(r, _) => r.error(errno(result)),
            Pending::StatsEntry(r, _, _) => r.error(errno(result)),
            Pending::StatsOpen(r, _) => r.error(errno(result)),
        }
    }

    /// Answers a read with these bytes (copied into the reply).
    #[napi]
    pub fn reply_data(&self, id: u32, data: &[u8]) {
        match self.shared.pending.take(id) {
            Some(Pending::Data(r)) => r.data(data),
            Some(other) => drop(other),
            None => {}
        }
    }

    /// Answers a lookup, getattr or open of the stats file with its text.
    #[napi]
    pub fn reply_stats(&self, id: u32, text: &[u8]) {
        match self.shared.pending.take(id) {
            Some(Pending::StatsAttr(r, mut attr)) => {
                attr.size = text.len() as u64;
                r.attr(&std::time::Duration::ZERO, &attr)
            }
            Some(Pending::StatsEntry(r, mut attr, ttl)) => {
                attr.size = text.len() as u64;
                r.entry_with_ttls(&std::time::Duration::ZERO, &ttl, &attr, fuser::Generation(0))
            }
            Some(Pending::StatsOpen(r, fh)) => {
                self.shared.keep_snapshot(fh, text.to_vec());
                // Direct: every read of the stats file sees this snapshot, never a stale page.
                r.opened(fuser::FileHandle(fh), fuser::FopenFlags::FOPEN_DIRECT_IO)
            }
            Some(other) => drop(other),
            None => {}
        }
    }

    /// The reads and writes answered through the block map since the last call.
    #[napi]
    pub fn take_hits(&self) -> Hits {
        let log = self.shared.take_hits();
        Hits { blocks: log.blocks.into(), reads: log.reads.into(), writes: log.writes.into() }
    }

    /// Requests JS has not answered yet.
    #[napi(getter)]
    pub fn waiting(&self) -> u32 {
        self.shared.pending.len() as u32
    }

    /// Unmounts. Fails while the mount is busy unless `lazy`: then it is detached at once and
    /// the connection is closed, so descriptors still open on it fail from then on.
    #[napi]
    pub fn unmount(&self, lazy: bool) -> Result<()> {
        unmount::unmount(&self.mountpoint, lazy).map_err(|e| Error::from_reason(format!("cannot unmount {}: {e}", self.mountpoint)))?;
        if lazy {
            if let Some(connection) = self.connection {
                unmount::abort_connection(connection);
            }
        }
        Ok(())
    }
}

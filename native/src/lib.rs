//! s3backer's native core, exported to Node through napi-rs. Each export is a thin wrapper over a
//! plain Rust function that `cargo test` checks on its own.

#![deny(clippy::all)]

pub mod block_codec;
pub mod block_map;
mod cache_format;
pub mod cache_recovery;
mod codec;
#[cfg(test)]
mod crash_harness;
mod digest;
pub mod file_lock;
pub mod fuse;
mod md5_lanes;
mod slot_backing;
pub mod slot_store;
mod slots;
mod socket;
mod zero;

use napi::bindgen_prelude::Buffer;
use napi_derive::napi;

/// True when the block is all zeros.
#[napi]
pub fn is_zero(data: &[u8]) -> bool {
    zero::is_zero(data)
}

/// MD5 of the data (16 bytes).
#[napi]
pub fn md5(data: &[u8]) -> Buffer {
    digest::md5(data).to_vec().into()
}

/// MD5 of the data as 32 lowercase hex digits.
#[napi]
pub fn md5_hex(data: &[u8]) -> String {
    digest::to_hex(&digest::md5(data))
}

/// Null for an all-zero block, else its MD5: the zero check and Content-MD5 in one pass.
#[napi]
pub fn block_digest(data: &[u8]) -> Option<Buffer> {
    digest::block_digest(data).map(|d| d.to_vec().into())
}

/// blockDigest of several blocks in one task on the pool: blocks of one length are hashed up to
/// sixteen at a time side by side (md5_lanes), which costs about what two alone do.
pub struct DigestsTask {
    /// The callers' buffers, held by reference: they must not change until the task ends.
    blocks: Vec<Buffer>,
}

impl napi::Task for DigestsTask {
    type Output = Vec<Option<[u8; 16]>>;
    type JsValue = Vec<Option<Buffer>>;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        Ok(digest::block_digests(&self.blocks.iter().map(|b| &b[..]).collect::<Vec<_>>()))
    }

    fn resolve(&mut self, _env: napi::Env, output: Self::Output) -> napi::Result<Self::JsValue> {
        Ok(output.into_iter().map(|d| d.map(|d| d.to_vec().into())).collect())
    }
}

/// blockDigest of each block (null for an all-zero one), computed together on the thread pool.
#[napi(ts_return_type = "Promise<Array<Buffer | null>>")]
pub fn block_digests_async(
    #[napi(ts_arg_type = "Array<Uint8Array>")] blocks: Vec<Buffer>,
) -> napi::bindgen_prelude::AsyncTask<DigestsTask> {
    napi::bindgen_prelude::AsyncTask::new(DigestsTask { blocks })
}

/// Sets the IP type of service (IPv6: traffic class) of a connected socket's descriptor.
#[napi]
pub fn set_type_of_service(fd: i32, tos: u8) -> napi::Result<()> {
    socket::set_type_of_service(fd, tos).map_err(|e| napi::Error::from_reason(format!("setting the IP type of service {tos:#04x}: {e}")))
}

//! The codec exported to Node: one call per block each way, run on the libuv pool so several
//! blocks are coded in parallel while the JS thread serves FUSE.

use crate::codec::{self, Cipher, Codec, Compression, Encryption};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::sync::Arc;

#[napi(object)]
pub struct CodecOptions {
    pub block_size: u32,
    /// "deflate" or "zstd"; absent = no compression.
    pub compression: Option<String>,
    pub level: Option<i32>,
    /// e.g. "AES-128-CBC"; absent = no encryption.
    pub cipher: Option<String>,
    pub password: Option<String>,
    /// bucket + "/" + prefix, as upstream salts the key.
    pub salt: Option<String>,
    pub key_length: Option<u32>,
}

#[napi(object)]
pub struct EncodedBlock {
    pub body: Buffer,
    /// Empty when stored as is.
    pub content_encoding: String,
    pub hmac: Option<String>,
    /// MD5 of the body: Content-MD5 of the PUT.
    pub md5: Buffer,
}

#[napi]
pub struct BlockCodec {
    inner: Arc<Codec>,
}

pub struct EncodeTask {
    codec: Arc<Codec>,
    block: u32,
    /// The caller's buffer, held by reference (not copied): it must not change until the task ends.
    data: Buffer,
}

impl Task for EncodeTask {
    type Output = Option<(codec::Encoded, [u8; 16])>;
    type JsValue = Option<EncodedBlock>;

    fn compute(&mut self) -> Result<Self::Output> {
        if crate::zero::is_zero(&self.data) {
            return Ok(None);
        }
        let e = self.codec.encode(self.block, &self.data);
        let md5 = crate::digest::md5(&e.body);
        Ok(Some((e, md5)))
    }

    fn resolve(&mut self, _env: Env, out: Self::Output) -> Result<Self::JsValue> {
        Ok(out.map(|(e, md5)| EncodedBlock {
            body: e.body.into(),
            content_encoding: e.content_encoding,
            hmac: e.hmac,
            md5: md5.to_vec().into(),
        }))
    }
}

pub struct DecodeTask {
    codec: Arc<Codec>,
    block: u32,
    body: Buffer,
    encoding: String,
    hmac: Option<String>,
}

impl Task for DecodeTask {
    type Output = Vec<u8>;
    type JsValue = Buffer;

    fn compute(&mut self) -> Result<Vec<u8>> {
        self.codec
            .decode(self.block, &self.body, &self.encoding, self.hmac.as_deref())
            .map_err(|e| Error::from_reason(format!("block {}: {e}", self.block)))
    }

    fn resolve(&mut self, _env: Env, out: Vec<u8>) -> Result<Buffer> {
        Ok(out.into())
    }
}

#[napi]
impl BlockCodec {
    #[napi(factory)]
    pub fn create(options: CodecOptions) -> Result<BlockCodec> {
        let compression = match options.compression.as_deref() {
            None => None,
            Some("deflate") => Some(Compression::Deflate(options.level.unwrap_or(6).clamp(0, 9) as u32)),
            Some("zstd") => Some(Compression::Zstd(options.level.unwrap_or(3))),
            Some(other) => return Err(Error::from_reason(format!("unknown compression \"{other}\""))),
        };
        let encryption = match options.cipher.as_deref() {
            None => None,
            Some(name) => {
                let cipher = Cipher::parse(name).ok_or_else(|| {
                    Error::from_reason(format!("cipher \"{name}\" is not supported: use AES-128-CBC, AES-192-CBC or AES-256-CBC"))
                })?;
                let password = options.password.as_deref().ok_or_else(|| Error::from_reason("encryption needs a password"))?;
                let key_len = options.key_length.map(|k| k as usize).unwrap_or(cipher.key_len());
                if key_len < cipher.key_len() || key_len > 64 {
                    return Err(Error::from_reason(format!(
                        "key length {key_len} must be {} to 64 for {}",
                        cipher.key_len(),
                        cipher.name()
                    )));
                }
                let (key, ivkey) = codec::derive_keys(password.as_bytes(), options.salt.unwrap_or_default().as_bytes(), key_len);
                Some(Encryption { cipher, key, ivkey })
            }
        };
        Ok(BlockCodec { inner: Arc::new(Codec { block_size: options.block_size as usize, compression, encryption }) })
    }

    /// Null for an all-zero block (never stored); else the body to PUT and its headers.
    #[napi(ts_return_type = "Promise<EncodedBlock | null>")]
    pub fn encode(&self, block: u32, #[napi(ts_arg_type = "Uint8Array")] data: Buffer) -> AsyncTask<EncodeTask> {
        AsyncTask::new(EncodeTask { codec: self.inner.clone(), block, data })
    }

    /// The block's data; rejects on any doubt (HMAC, encoding, length), never returning garbage.
    #[napi(ts_return_type = "Promise<Buffer>")]
    pub fn decode(
        &self,
        block: u32,
        #[napi(ts_arg_type = "Uint8Array")] body: Buffer,
        content_encoding: String,
        hmac: Option<String>,
    ) -> AsyncTask<DecodeTask> {
        AsyncTask::new(DecodeTask { codec: self.inner.clone(), block, body, encoding: content_encoding, hmac })
    }

    #[napi(getter)]
    pub fn encrypted(&self) -> bool {
        self.inner.encryption.is_some()
    }
}

/// Hex key and ivkey for a password and salt (for known-answer tests and diagnostics).
#[napi]
pub fn derive_cipher_keys(password: String, salt: String, key_length: u32) -> Vec<String> {
    let (k, iv) = codec::derive_keys(password.as_bytes(), salt.as_bytes(), key_length as usize);
    vec![crate::digest::to_hex(&k), crate::digest::to_hex(&iv)]
}

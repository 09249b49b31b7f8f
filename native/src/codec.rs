//! The block codec, byte-compatible with upstream s3backer: optional compression (zlib-format
//! deflate, or zstd) then optional encryption (AES-CBC with PKCS#7 padding, a per-block IV, and an
//! HMAC-SHA1 over block number, cipher name and ciphertext), tagged in Content-Encoding.

use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, BlockEncrypt, BlockEncryptMut, KeyInit, KeyIvInit};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use std::io::{Read, Write};

pub const PBKDF2_ROUNDS: u32 = 5000;

// Named as the ciphers are (AES-128-CBC, ...); the shared suffix is the point.
#[allow(clippy::enum_variant_names)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cipher {
    Aes128Cbc,
    Aes192Cbc,
    Aes256Cbc,
}

impl Cipher {
    pub fn parse(name: &str) -> Option<Cipher> {
        match name.to_ascii_uppercase().as_str() {
            "AES-128-CBC" | "AES128" => Some(Cipher::Aes128Cbc),
            "AES-192-CBC" | "AES192" => Some(Cipher::Aes192Cbc),
            "AES-256-CBC" | "AES256" => Some(Cipher::Aes256Cbc),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Cipher::Aes128Cbc => "AES-128-CBC",
            Cipher::Aes192Cbc => "AES-192-CBC",
            Cipher::Aes256Cbc => "AES-256-CBC",
        }
    }

    pub fn key_len(self) -> usize {
        match self {
            Cipher::Aes128Cbc => 16,
            Cipher::Aes192Cbc => 24,
            Cipher::Aes256Cbc => 32,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    Deflate(u32),
    Zstd(i32),
}

pub struct Encryption {
    pub cipher: Cipher,
    pub key: Vec<u8>,
    pub ivkey: Vec<u8>,
}

pub struct Codec {
    pub block_size: usize,
    pub compression: Option<Compression>,
    pub encryption: Option<Encryption>,
}

pub struct Encoded {
    pub body: Vec<u8>,
    /// Empty when the block is stored as is.
    pub content_encoding: String,
    /// Lowercase hex HMAC-SHA1 for encrypted blocks.
    pub hmac: Option<String>,
}

/// key = PBKDF2-HMAC-SHA1(password, bucket/prefix); ivkey = PBKDF2-HMAC-SHA1(key, key).
pub fn derive_keys(password: &[u8], salt: &[u8], key_len: usize) -> (Vec<u8>, Vec<u8>) {
    let mut key = vec![0u8; key_len];
    pbkdf2::pbkdf2_hmac::<Sha1>(password, salt, PBKDF2_ROUNDS, &mut key);
    let mut ivkey = vec![0u8; key_len];
    pbkdf2::pbkdf2_hmac::<Sha1>(&key, &key, PBKDF2_ROUNDS, &mut ivkey);
    (key, ivkey)
}

fn hex8(n: u32) -> [u8; 8] {
    let s = format!("{n:08x}");
    s.as_bytes().try_into().expect("8 hex digits")
}

fn aes_encrypt_block(cipher: Cipher, key: &[u8], block: &mut [u8; 16]) {
    let b = aes::cipher::generic_array::GenericArray::from_mut_slice(block);
    match cipher {
        Cipher::Aes128Cbc => aes::Aes128::new_from_slice(&key[..16]).expect("key").encrypt_block(b),
        Cipher::Aes192Cbc => aes::Aes192::new_from_slice(&key[..24]).expect("key").encrypt_block(b),
        Cipher::Aes256Cbc => aes::Aes256::new_from_slice(&key[..32]).expect("key").encrypt_block(b),
    }
}

/// The IV of block N: "%08x"(N) padded with zeros to 16 bytes, AES-CBC-encrypted with ivkey
/// (and ivkey's first 16 bytes as IV), which for one block is AES(ivkey, buf XOR ivkey[..16]).
pub fn block_iv(cipher: Cipher, ivkey: &[u8], block_num: u32) -> [u8; 16] {
    let mut buf = [0u8; 16];
    buf[..8].copy_from_slice(&hex8(block_num));
    for (b, k) in buf.iter_mut().zip(&ivkey[..16]) {
        *b ^= k;
    }
    aes_encrypt_block(cipher, ivkey, &mut buf);
    buf
}

fn block_hmac(enc: &Encryption, block_num: u32, ciphertext: &[u8]) -> [u8; 20] {
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(&enc.key).expect("any key length");
    mac.update(&hex8(block_num));
    mac.update(enc.cipher.name().as_bytes());
    mac.update(ciphertext);
    mac.finalize().into_bytes().into()
}

fn encrypt(enc: &Encryption, block_num: u32, data: &[u8]) -> Vec<u8> {
    let iv = block_iv(enc.cipher, &enc.ivkey, block_num);
    let k = &enc.key;
    match enc.cipher {
        Cipher::Aes128Cbc => {
            cbc::Encryptor::<aes::Aes128>::new_from_slices(&k[..16], &iv).expect("key").encrypt_padded_vec_mut::<Pkcs7>(data)
        }
        Cipher::Aes192Cbc => {
            cbc::Encryptor::<aes::Aes192>::new_from_slices(&k[..24], &iv).expect("key").encrypt_padded_vec_mut::<Pkcs7>(data)
        }
        Cipher::Aes256Cbc => {
            cbc::Encryptor::<aes::Aes256>::new_from_slices(&k[..32], &iv).expect("key").encrypt_padded_vec_mut::<Pkcs7>(data)
        }
    }
}

fn decrypt(enc: &Encryption, block_num: u32, data: &[u8]) -> Result<Vec<u8>, String> {
    let iv = block_iv(enc.cipher, &enc.ivkey, block_num);
    let k = &enc.key;
    let out = match enc.cipher {
        Cipher::Aes128Cbc => {
            cbc::Decryptor::<aes::Aes128>::new_from_slices(&k[..16], &iv).expect("key").decrypt_padded_vec_mut::<Pkcs7>(data)
        }
        Cipher::Aes192Cbc => {
            cbc::Decryptor::<aes::Aes192>::new_from_slices(&k[..24], &iv).expect("key").decrypt_padded_vec_mut::<Pkcs7>(data)
        }
        Cipher::Aes256Cbc => {
            cbc::Decryptor::<aes::Aes256>::new_from_slices(&k[..32], &iv).expect("key").decrypt_padded_vec_mut::<Pkcs7>(data)
        }
    };
    out.map_err(|_| "bad padding after decryption".to_string())
}

/// Inflates at most `limit` bytes; more means the data is not one of our blocks.
fn inflate_limited<R: Read>(reader: R, limit: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(limit);
    reader.take(limit as u64 + 1).read_to_end(&mut out).map_err(|e| format!("corrupt compressed data: {e}"))?;
    if out.len() > limit {
        return Err(format!("decompresses to more than the block size {limit}"));
    }
    Ok(out)
}

fn to_hex(bytes: &[u8]) -> String {
    crate::digest::to_hex(bytes)
}

impl Codec {
    /// Compresses then encrypts a (non-zero) block, as upstream does even when it grows.
    pub fn encode(&self, block_num: u32, data: &[u8]) -> Encoded {
        let mut layers: Vec<String> = Vec::new();
        let mut body = match self.compression {
            None => data.to_vec(),
            Some(Compression::Deflate(level)) => {
                layers.push("deflate".into());
                let mut z = flate2::write::ZlibEncoder::new(Vec::with_capacity(data.len() / 2), flate2::Compression::new(level));
                z.write_all(data).expect("in-memory write");
                z.finish().expect("in-memory write")
            }
            Some(Compression::Zstd(level)) => {
                layers.push("zstd".into());
                zstd::bulk::compress(data, level).expect("in-memory zstd")
            }
        };
        let mut hmac = None;
        if let Some(enc) = &self.encryption {
            body = encrypt(enc, block_num, &body);
            hmac = Some(to_hex(&block_hmac(enc, block_num, &body)));
            layers.push(format!("encrypt-{}", enc.cipher.name()));
        }
        Encoded { body, content_encoding: layers.join(", "), hmac }
    }

    /// Undoes the layers named in Content-Encoding, last first; any doubt is an error, never data.
    pub fn decode(&self, block_num: u32, body: &[u8], content_encoding: &str, hmac_header: Option<&str>) -> Result<Vec<u8>, String> {
        let layers: Vec<&str> = content_encoding.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
        let encrypted = layers.iter().any(|l| l.to_ascii_lowercase().starts_with("encrypt-"));
        if self.encryption.is_some() && !encrypted {
            return Err("block is not encrypted, but encryption is configured".into());
        }
        let mut data = body.to_vec();
        for layer in layers.iter().rev() {
            let lower = layer.to_ascii_lowercase();
            if let Some(name) = lower.strip_prefix("encrypt-") {
                let enc = self.encryption.as_ref().ok_or("block is encrypted, but no encryption is configured (--encrypt)")?;
                if Cipher::parse(name) != Some(enc.cipher) {
                    return Err(format!("block is encrypted with {name}, configured cipher is {}", enc.cipher.name()));
                }
                let given = hmac_header.map(|h| h.trim().trim_matches('"').to_ascii_lowercase()).ok_or("encrypted block has no HMAC")?;
                // Authenticate before decrypting anything.
                if given != to_hex(&block_hmac(enc, block_num, &data)) {
                    return Err("HMAC mismatch: the block was altered, or the password is wrong".into());
                }
                data = decrypt(enc, block_num, &data)?;
            } else if lower == "deflate" {
                data = inflate_limited(flate2::read::ZlibDecoder::new(&data[..]), self.block_size)?;
            } else if lower == "zstd" {
                data = inflate_limited(zstd::stream::read::Decoder::new(&data[..]).map_err(|e| e.to_string())?, self.block_size)?;
            } else {
                return Err(format!("unknown Content-Encoding \"{layer}\""));
            }
        }
        if data.len() != self.block_size {
            return Err(format!("decodes to {} bytes, expected {}", data.len(), self.block_size));
        }
        Ok(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codec(compression: Option<Compression>, password: Option<&str>) -> Codec {
        let encryption = password.map(|p| {
            let (key, ivkey) = derive_keys(p.as_bytes(), b"mybucket/", 16);
            Encryption { cipher: Cipher::Aes128Cbc, key, ivkey }
        });
        Codec { block_size: 4096, compression, encryption }
    }

    #[test]
    fn key_and_iv_vectors_match_upstream() {
        let (key, ivkey) = derive_keys(b"secret", b"mybucket/", 16);
        assert_eq!(to_hex(&key), "3b601fa6cc45f747a0a6b71800c44a1b");
        assert_eq!(to_hex(&ivkey), "1fae41544d23c71dd58be76991fa4b35");
        assert_eq!(to_hex(&block_iv(Cipher::Aes128Cbc, &ivkey, 0)), "99d3a417c1084355ebfbbf3b77e5f61c");
        assert_eq!(to_hex(&block_iv(Cipher::Aes128Cbc, &ivkey, 1)), "7a3da28260b7b28bf271d99e36fdc864");
    }

    #[test]
    fn every_encoding_round_trips() {
        let data: Vec<u8> = (0..4096u32).map(|i| (i % 7) as u8).collect();
        for (comp, pw, tag) in [
            (Some(Compression::Deflate(6)), None, "deflate"),
            (Some(Compression::Zstd(3)), None, "zstd"),
            (Some(Compression::Deflate(6)), Some("secret"), "deflate, encrypt-AES-128-CBC"),
            (Some(Compression::Zstd(3)), Some("secret"), "zstd, encrypt-AES-128-CBC"),
            (None, Some("secret"), "encrypt-AES-128-CBC"),
        ] {
            let c = codec(comp, pw);
            let e = c.encode(5, &data);
            assert_eq!(e.content_encoding, tag);
            assert_eq!(e.hmac.is_some(), pw.is_some());
            assert_eq!(c.decode(5, &e.body, &e.content_encoding, e.hmac.as_deref()).unwrap(), data, "{tag}");
        }
    }

    #[test]
    fn deflate_is_zlib_format() {
        let e = codec(Some(Compression::Deflate(6)), None).encode(0, &[1u8; 4096]);
        assert_eq!(e.body[0], 0x78, "zlib header");
    }

    #[test]
    fn tampering_wrong_password_and_bad_input_are_errors() {
        let c = codec(Some(Compression::Deflate(6)), Some("secret"));
        let data = vec![3u8; 4096];
        let e = c.encode(9, &data);
        let mut bad = e.body.clone();
        bad[5] ^= 1;
        assert!(c.decode(9, &bad, &e.content_encoding, e.hmac.as_deref()).unwrap_err().contains("HMAC"));
        assert!(c.decode(8, &e.body, &e.content_encoding, e.hmac.as_deref()).is_err(), "wrong block number");
        let other = codec(Some(Compression::Deflate(6)), Some("guess"));
        assert!(other.decode(9, &e.body, &e.content_encoding, e.hmac.as_deref()).unwrap_err().contains("HMAC"));
        assert!(c.decode(9, &e.body, &e.content_encoding, None).unwrap_err().contains("no HMAC"));
        assert!(c.decode(9, &data, "", None).unwrap_err().contains("not encrypted"));
        let plain = codec(None, None);
        assert!(plain.decode(9, &e.body, &e.content_encoding, e.hmac.as_deref()).unwrap_err().contains("no encryption"));
        assert!(plain.decode(9, &data, "gzip", None).unwrap_err().contains("unknown Content-Encoding"));
        assert!(plain.decode(9, &data[..100], "", None).unwrap_err().contains("expected 4096"));
        let big = codec(Some(Compression::Deflate(6)), None).encode(0, &[0u8; 4096]);
        let small = Codec { block_size: 1024, compression: None, encryption: None };
        assert!(small.decode(0, &big.body, "deflate", None).unwrap_err().contains("more than the block size"));
    }
}

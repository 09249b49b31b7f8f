//! MD5 of blocks: the Content-MD5 of every PUT.

use md5::{Digest, Md5};

pub fn md5(data: &[u8]) -> [u8; 16] {
    Md5::digest(data).into()
}

pub fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 15) as usize] as char);
    }
    out
}

/// The write path's one question: None for an all-zero block (deleted, not stored), else its MD5.
pub fn block_digest(data: &[u8]) -> Option<[u8; 16]> {
    if crate::zero::is_zero(data) {
        None
    } else {
        Some(md5(data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1321_vectors() {
        let vectors: [(&[u8], &str); 5] = [
            (b"", "d41d8cd98f00b204e9800998ecf8427e"),
            (b"a", "0cc175b9c0f1b6a831c399e269772661"),
            (b"abc", "900150983cd24fb0d6963f7d28e17f72"),
            (b"message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
            (
                b"12345678901234567890123456789012345678901234567890123456789012345678901234567890",
                "57edf4a22be3c955ac49da2e2107b67a",
            ),
        ];
        for (input, hex) in vectors {
            assert_eq!(to_hex(&md5(input)), hex);
        }
    }

    #[test]
    fn block_digest_skips_zero_blocks() {
        assert_eq!(block_digest(&[0u8; 4096]), None);
        let mut b = vec![0u8; 4096];
        b[4095] = 1;
        assert_eq!(block_digest(&b), Some(md5(&b)));
    }
}

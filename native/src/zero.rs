//! All-zero detection: zero blocks are never stored, so every write asks this.

/// True when every byte is zero. ORs 64-byte chunks together, which the compiler vectorizes,
/// and stops at the first chunk with a set bit.
pub fn is_zero(data: &[u8]) -> bool {
    let chunks = data.chunks_exact(64);
    let rest = chunks.remainder();
    chunks.into_iter().all(|c| c.iter().fold(0u8, |acc, &b| acc | b) == 0) && rest.iter().all(|&b| b == 0)
}

#[cfg(test)]
mod tests {
    use super::is_zero;

    #[test]
    fn empty_is_zero() {
        assert!(is_zero(&[]));
    }

    #[test]
    fn zeros_of_many_sizes() {
        for len in [1, 7, 8, 9, 63, 64, 65, 4095, 4096, 65536 + 3] {
            assert!(is_zero(&vec![0u8; len]), "len {len}");
        }
    }

    #[test]
    fn one_non_zero_byte_anywhere() {
        for len in [1usize, 9, 100, 4096, 65536 + 5] {
            for pos in [0, len / 2, len - 1] {
                let mut v = vec![0u8; len];
                v[pos] = 0x80;
                assert!(!is_zero(&v), "len {len} pos {pos}");
            }
        }
    }

    #[test]
    fn unaligned_slices() {
        let mut v = [0u8; 100];
        v[1] = 1;
        assert!(!is_zero(&v[1..50]));
        assert!(is_zero(&v[2..99]));
    }
}

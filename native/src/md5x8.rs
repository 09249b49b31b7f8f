//! MD5 of up to eight inputs of one length at once: each 32-bit lane of an AVX2 register carries
//! one input's state through the same 64 steps. MD5 is one long dependency chain, so a single
//! input leaves most of a core idle; eight chains side by side keep it busy (blocks uploaded
//! together all have the block size). Without AVX2, or for fewer than three inputs, each input
//! is hashed alone.

use md5::{Digest, Md5};

/// Below this many inputs one pass over eight lanes costs more than hashing each alone.
const MIN_LANES: usize = 3;

/// The MD5 of each input, in order.
pub fn md5_many(inputs: &[&[u8]]) -> Vec<[u8; 16]> {
    let mut out = Vec::with_capacity(inputs.len());
    let mut rest = inputs;
    while !rest.is_empty() {
        let len = rest[0].len();
        let run = rest.iter().take(8).take_while(|i| i.len() == len).count();
        match simd::md5x8(&rest[..run]) {
            Some(digests) => out.extend_from_slice(&digests[..run]),
            None => out.extend(rest[..run].iter().map(|i| -> [u8; 16] { Md5::digest(i).into() })),
        }
        rest = &rest[run..];
    }
    out
}

/// The final one or two chunks of an input of `len` bytes whose last `tail.len()` bytes are `tail`.
fn padded_tail(tail: &[u8], len: usize) -> ([u8; 128], usize) {
    let mut buf = [0u8; 128];
    buf[..tail.len()].copy_from_slice(tail);
    buf[tail.len()] = 0x80;
    let chunks = if tail.len() < 56 { 1 } else { 2 };
    let end = chunks * 64;
    buf[end - 8..end].copy_from_slice(&((len as u64).wrapping_mul(8)).to_le_bytes());
    (buf, chunks)
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use super::{padded_tail, MIN_LANES};
    use std::arch::x86_64::*;

    const K: [u32; 64] = [
        0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501, 0x698098d8, 0x8b44f7af, 0xffff5bb1,
        0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821, 0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453,
        0xd8a1e681, 0xe7d3fbc8, 0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a, 0xfffa3942,
        0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70, 0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05,
        0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665, 0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d,
        0x85845dd1, 0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
    ];

    /// Eight lanes' digests (lanes past `inputs.len()` repeat the first input), or None when this
    /// CPU has no AVX2, there are too few inputs to gain, or their lengths differ.
    pub fn md5x8(inputs: &[&[u8]]) -> Option<[[u8; 16]; 8]> {
        let n = inputs.len();
        if !(MIN_LANES..=8).contains(&n) || !is_x86_feature_detected!("avx2") {
            return None;
        }
        let len = inputs[0].len();
        if inputs.iter().any(|i| i.len() != len) {
            return None;
        }
        let lanes: [&[u8]; 8] = std::array::from_fn(|l| inputs[if l < n { l } else { 0 }]);
        // SAFETY: AVX2 is present (checked above); hash8 reads only inside the slices it is given.
        Some(unsafe { hash8(&lanes, len) })
    }

    #[target_feature(enable = "avx2")]
    unsafe fn hash8(lanes: &[&[u8]; 8], len: usize) -> [[u8; 16]; 8] {
        let mut state = [
            _mm256_set1_epi32(0x67452301),
            _mm256_set1_epi32(0xefcdab89u32 as i32),
            _mm256_set1_epi32(0x98badcfeu32 as i32),
            _mm256_set1_epi32(0x10325476),
        ];
        let whole = len / 64;
        for chunk in 0..whole {
            let at = chunk * 64;
            let ptrs: [*const u8; 8] = std::array::from_fn(|l| lanes[l][at..at + 64].as_ptr());
            compress(&mut state, &ptrs);
        }
        let tails: [([u8; 128], usize); 8] = std::array::from_fn(|l| padded_tail(&lanes[l][whole * 64..], len));
        for chunk in 0..tails[0].1 {
            let ptrs: [*const u8; 8] = std::array::from_fn(|l| tails[l].0[chunk * 64..chunk * 64 + 64].as_ptr());
            compress(&mut state, &ptrs);
        }
        let mut words = [[0u32; 8]; 4];
        for (w, s) in words.iter_mut().zip(state.iter()) {
            _mm256_storeu_si256(w.as_mut_ptr().cast(), *s);
        }
        std::array::from_fn(|l| {
            let mut d = [0u8; 16];
            for (i, w) in words.iter().enumerate() {
                d[i * 4..i * 4 + 4].copy_from_slice(&w[l].to_le_bytes());
            }
            d
        })
    }

    /// Word `j` of each lane's 32 bytes at `ptrs` (plus `offset`), lane `l` in element `l`: a
    /// transpose of the 8x8 matrix of 32-bit words.
    #[target_feature(enable = "avx2")]
    unsafe fn load_transposed(ptrs: &[*const u8; 8], offset: usize) -> [__m256i; 8] {
        let r: [__m256i; 8] = std::array::from_fn(|l| _mm256_loadu_si256(ptrs[l].add(offset).cast()));
        let t0 = _mm256_unpacklo_epi32(r[0], r[1]);
        let t1 = _mm256_unpackhi_epi32(r[0], r[1]);
        let t2 = _mm256_unpacklo_epi32(r[2], r[3]);
        let t3 = _mm256_unpackhi_epi32(r[2], r[3]);
        let t4 = _mm256_unpacklo_epi32(r[4], r[5]);
        let t5 = _mm256_unpackhi_epi32(r[4], r[5]);
        let t6 = _mm256_unpacklo_epi32(r[6], r[7]);
        let t7 = _mm256_unpackhi_epi32(r[6], r[7]);
        let u0 = _mm256_unpacklo_epi64(t0, t2);
        let u1 = _mm256_unpackhi_epi64(t0, t2);
        let u2 = _mm256_unpacklo_epi64(t1, t3);
        let u3 = _mm256_unpackhi_epi64(t1, t3);
        let u4 = _mm256_unpacklo_epi64(t4, t6);
        let u5 = _mm256_unpackhi_epi64(t4, t6);
        let u6 = _mm256_unpacklo_epi64(t5, t7);
        let u7 = _mm256_unpackhi_epi64(t5, t7);
        [
            _mm256_permute2x128_si256::<0x20>(u0, u4),
            _mm256_permute2x128_si256::<0x20>(u1, u5),
            _mm256_permute2x128_si256::<0x20>(u2, u6),
            _mm256_permute2x128_si256::<0x20>(u3, u7),
            _mm256_permute2x128_si256::<0x31>(u0, u4),
            _mm256_permute2x128_si256::<0x31>(u1, u5),
            _mm256_permute2x128_si256::<0x31>(u2, u6),
            _mm256_permute2x128_si256::<0x31>(u3, u7),
        ]
    }

    /// One 64-byte chunk of each lane, read at `ptrs` (each valid for 64 bytes).
    #[rustfmt::skip]
    #[target_feature(enable = "avx2")]
    unsafe fn compress(state: &mut [__m256i; 4], ptrs: &[*const u8; 8]) {
        let lo = load_transposed(ptrs, 0);
        let hi = load_transposed(ptrs, 32);
        let m: [__m256i; 16] = std::array::from_fn(|j| if j < 8 { lo[j] } else { hi[j - 8] });
        let [mut a, mut b, mut c, mut d] = *state;
        let ones = _mm256_set1_epi32(-1);
        macro_rules! step {
            ($f:expr, $i:expr, $g:expr, $s:literal) => {{
                let sum = _mm256_add_epi32(_mm256_add_epi32(a, $f), _mm256_add_epi32(_mm256_set1_epi32(K[$i] as i32), m[$g]));
                let rotated = _mm256_or_si256(_mm256_slli_epi32::<$s>(sum), _mm256_srli_epi32::<{ 32 - $s }>(sum));
                a = d;
                d = c;
                c = b;
                b = _mm256_add_epi32(b, rotated);
            }};
        }
        // Round 1: F = D ^ (B & (C ^ D)); round 2: G = C ^ (D & (B ^ C)); round 3: H = B ^ C ^ D;
        // round 4: I = C ^ (B | !D).
        macro_rules! r1 {
            ($i:expr, $s:literal) => {
                step!(_mm256_xor_si256(d, _mm256_and_si256(b, _mm256_xor_si256(c, d))), $i, $i, $s)
            };
        }
        macro_rules! r2 {
            ($i:expr, $s:literal) => {
                step!(_mm256_xor_si256(c, _mm256_and_si256(d, _mm256_xor_si256(b, c))), $i, (5 * $i + 1) % 16, $s)
            };
        }
        macro_rules! r3 {
            ($i:expr, $s:literal) => {
                step!(_mm256_xor_si256(_mm256_xor_si256(b, c), d), $i, (3 * $i + 5) % 16, $s)
            };
        }
        macro_rules! r4 {
            ($i:expr, $s:literal) => {
                step!(_mm256_xor_si256(c, _mm256_or_si256(b, _mm256_xor_si256(d, ones))), $i, (7 * $i) % 16, $s)
            };
        }
        r1!(0, 7); r1!(1, 12); r1!(2, 17); r1!(3, 22); r1!(4, 7); r1!(5, 12); r1!(6, 17); r1!(7, 22);
        r1!(8, 7); r1!(9, 12); r1!(10, 17); r1!(11, 22); r1!(12, 7); r1!(13, 12); r1!(14, 17); r1!(15, 22);
        r2!(16, 5); r2!(17, 9); r2!(18, 14); r2!(19, 20); r2!(20, 5); r2!(21, 9); r2!(22, 14); r2!(23, 20);
        r2!(24, 5); r2!(25, 9); r2!(26, 14); r2!(27, 20); r2!(28, 5); r2!(29, 9); r2!(30, 14); r2!(31, 20);
        r3!(32, 4); r3!(33, 11); r3!(34, 16); r3!(35, 23); r3!(36, 4); r3!(37, 11); r3!(38, 16); r3!(39, 23);
        r3!(40, 4); r3!(41, 11); r3!(42, 16); r3!(43, 23); r3!(44, 4); r3!(45, 11); r3!(46, 16); r3!(47, 23);
        r4!(48, 6); r4!(49, 10); r4!(50, 15); r4!(51, 21); r4!(52, 6); r4!(53, 10); r4!(54, 15); r4!(55, 21);
        r4!(56, 6); r4!(57, 10); r4!(58, 15); r4!(59, 21); r4!(60, 6); r4!(61, 10); r4!(62, 15); r4!(63, 21);
        state[0] = _mm256_add_epi32(state[0], a);
        state[1] = _mm256_add_epi32(state[1], b);
        state[2] = _mm256_add_epi32(state[2], c);
        state[3] = _mm256_add_epi32(state[3], d);
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod simd {
    /// No vector path on this architecture: every input is hashed alone.
    pub fn md5x8(_inputs: &[&[u8]]) -> Option<[[u8; 16]; 8]> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(len: usize, seed: u32) -> Vec<u8> {
        let mut x = seed.wrapping_mul(2654435761).wrapping_add(1);
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect()
    }

    #[test]
    fn every_lane_count_and_tail_length_matches_md5() {
        for len in [0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 1000, 4096, 262_144] {
            for lanes in 1..=9 {
                let inputs: Vec<Vec<u8>> = (0..lanes).map(|l| bytes(len, (len * 31 + l) as u32)).collect();
                let refs: Vec<&[u8]> = inputs.iter().map(Vec::as_slice).collect();
                let want: Vec<[u8; 16]> = refs.iter().map(|i| Md5::digest(i).into()).collect();
                assert_eq!(md5_many(&refs), want, "{lanes} inputs of {len} bytes");
            }
        }
    }

    #[test]
    fn mixed_lengths_are_grouped_in_order() {
        let inputs: Vec<Vec<u8>> = [64, 64, 64, 10, 64, 64, 64, 64, 3].iter().enumerate().map(|(i, &n)| bytes(n, i as u32)).collect();
        let refs: Vec<&[u8]> = inputs.iter().map(Vec::as_slice).collect();
        let want: Vec<[u8; 16]> = refs.iter().map(|i| Md5::digest(i).into()).collect();
        assert_eq!(md5_many(&refs), want);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_vector_path_runs_where_avx2_is() {
        let inputs: Vec<Vec<u8>> = (0..8).map(|l| bytes(4096, l)).collect();
        let refs: Vec<&[u8]> = inputs.iter().map(Vec::as_slice).collect();
        let got = simd::md5x8(&refs);
        assert_eq!(got.is_some(), is_x86_feature_detected!("avx2"));
        if let Some(d) = got {
            for (l, i) in refs.iter().enumerate() {
                assert_eq!(d[l], <[u8; 16]>::from(Md5::digest(i)));
            }
        }
    }
}

//! MD5 of up to sixteen inputs of one length at once. Each 32-bit lane of an AVX2 register carries
//! one input's state through the same 64 steps, eight inputs to a register. MD5 is one long
//! dependency chain, and eight lanes in one register still share one chain, whose length sets the
//! speed: so nine to sixteen inputs go as two registers' chains side by side, which the core runs
//! in about the time of one (2.4x the bytes per second of one chain here). Where AVX-512VL is,
//! each step's round function is one instruction (`vpternlogd`) and its rotation another
//! (`vprold`). Without AVX2, or for fewer than three inputs, each input is hashed alone.

use md5::{Digest, Md5};

/// Below this many inputs one pass over eight lanes costs more than hashing each alone.
const MIN_LANES: usize = 3;

/// Inputs hashed in one pass at most: two chains of eight lanes.
pub const MAX_LANES: usize = 16;

/// The MD5 of each input, in order.
pub fn md5_many(inputs: &[&[u8]]) -> Vec<[u8; 16]> {
    let kernel = simd::kernel();
    let mut out = Vec::with_capacity(inputs.len());
    let mut rest = inputs;
    while !rest.is_empty() {
        let len = rest[0].len();
        let run = rest.iter().take(MAX_LANES).take_while(|i| i.len() == len).count();
        match kernel.and_then(|k| simd::md5_lanes(k, &rest[..run])) {
            Some(digests) => out.extend(digests),
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
    use super::{padded_tail, MAX_LANES, MIN_LANES};
    use std::arch::x86_64::*;

    const K: [u32; 64] = [
        0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501, 0x698098d8, 0x8b44f7af, 0xffff5bb1,
        0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821, 0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453,
        0xd8a1e681, 0xe7d3fbc8, 0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a, 0xfffa3942,
        0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70, 0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05,
        0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665, 0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d,
        0x85845dd1, 0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
    ];

    /// The instructions the 64 steps are made of.
    #[derive(Clone, Copy, Debug, PartialEq)]
    pub enum Kernel {
        Avx2,
        Avx512,
    }

    /// The best kernel this CPU runs, if any.
    pub fn kernel() -> Option<Kernel> {
        if runs(Kernel::Avx512) {
            Some(Kernel::Avx512)
        } else if runs(Kernel::Avx2) {
            Some(Kernel::Avx2)
        } else {
            None
        }
    }

    fn runs(kernel: Kernel) -> bool {
        match kernel {
            Kernel::Avx2 => is_x86_feature_detected!("avx2"),
            Kernel::Avx512 => is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vl"),
        }
    }

    /// The inputs' digests, or None when this CPU does not run `kernel`, there are too few or too
    /// many inputs, or their lengths differ.
    pub fn md5_lanes(kernel: Kernel, inputs: &[&[u8]]) -> Option<Vec<[u8; 16]>> {
        let n = inputs.len();
        if !(MIN_LANES..=MAX_LANES).contains(&n) || !runs(kernel) {
            return None;
        }
        let len = inputs[0].len();
        if inputs.iter().any(|i| i.len() != len) {
            return None;
        }
        // Lanes past the inputs repeat the first one; their digests are dropped.
        let lane = |l: usize| inputs[if l < n { l } else { 0 }];
        // SAFETY: the kernel's features are present (checked above; AVX-512F implies AVX2); the
        // kernels read only inside the slices they are given.
        let mut digests: Vec<[u8; 16]> = unsafe {
            match (kernel, n <= 8) {
                (Kernel::Avx2, true) => digests_of(hash_avx2::<1>(&[std::array::from_fn(lane)], len)),
                (Kernel::Avx2, false) => digests_of(hash_avx2::<2>(&groups(lane), len)),
                (Kernel::Avx512, true) => digests_of(hash_avx512::<1>(&[std::array::from_fn(lane)], len)),
                (Kernel::Avx512, false) => digests_of(hash_avx512::<2>(&groups(lane), len)),
            }
        };
        digests.truncate(n);
        Some(digests)
    }

    fn groups<'a>(lane: impl Fn(usize) -> &'a [u8]) -> [[&'a [u8]; 8]; 2] {
        std::array::from_fn(|g| std::array::from_fn(|l| lane(g * 8 + l)))
    }

    /// Each lane's digest from the chains' final states, group by group.
    fn digests_of<const G: usize>(states: [[[u32; 8]; 4]; G]) -> Vec<[u8; 16]> {
        let mut out = Vec::with_capacity(G * 8);
        for words in states {
            out.extend((0..8).map(|l| {
                let mut d = [0u8; 16];
                for (i, w) in words.iter().enumerate() {
                    d[i * 4..i * 4 + 4].copy_from_slice(&w[l].to_le_bytes());
                }
                d
            }));
        }
        out
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

    /// The 16 message words of one 64-byte chunk of each lane, read at `ptrs` (each valid for 64
    /// bytes), lane `l` in element `l`.
    #[target_feature(enable = "avx2")]
    unsafe fn message(ptrs: &[*const u8; 8]) -> [__m256i; 16] {
        let lo = load_transposed(ptrs, 0);
        let hi = load_transposed(ptrs, 32);
        std::array::from_fn(|j| if j < 8 { lo[j] } else { hi[j - 8] })
    }

    /// Message word of step `i`: round 1 takes them in order, round 2 from 1 by 5, round 3 from 5
    /// by 3, round 4 from 0 by 7.
    const fn word(i: usize) -> usize {
        match i / 16 {
            0 => i,
            1 => (5 * i + 1) % 16,
            2 => (3 * i + 5) % 16,
            _ => (7 * i) % 16,
        }
    }

    /// Step `i`'s rotation.
    const fn shift(i: usize) -> u32 {
        const S: [[u32; 4]; 4] = [[7, 12, 17, 22], [5, 9, 14, 20], [4, 11, 16, 23], [6, 10, 15, 21]];
        S[i / 16][i % 4]
    }

    // AVX2: F = D ^ (B & (C ^ D)), G = C ^ (D & (B ^ C)), H = B ^ C ^ D, I = C ^ (B | !D); the
    // rotation two shifts and an or.
    macro_rules! round_avx2 {
        (0, $b:expr, $c:expr, $d:expr) => {
            _mm256_xor_si256($d, _mm256_and_si256($b, _mm256_xor_si256($c, $d)))
        };
        (1, $b:expr, $c:expr, $d:expr) => {
            _mm256_xor_si256($c, _mm256_and_si256($d, _mm256_xor_si256($b, $c)))
        };
        (2, $b:expr, $c:expr, $d:expr) => {
            _mm256_xor_si256(_mm256_xor_si256($b, $c), $d)
        };
        (3, $b:expr, $c:expr, $d:expr) => {
            _mm256_xor_si256($c, _mm256_or_si256($b, _mm256_xor_si256($d, _mm256_set1_epi32(-1))))
        };
    }
    macro_rules! rotate_avx2 {
        ($x:expr, $s:expr) => {{
            let x = $x;
            _mm256_or_si256(_mm256_slli_epi32::<{ $s as i32 }>(x), _mm256_srli_epi32::<{ 32 - $s as i32 }>(x))
        }};
    }
    // AVX-512VL: each round function one vpternlogd, its truth table the immediate, bit
    // (B << 2 | C << 1 | D): F = B ? C : D, G = D ? B : C, H = B ^ C ^ D, I = C ^ (B | !D).
    macro_rules! round_avx512 {
        (0, $b:expr, $c:expr, $d:expr) => {
            _mm256_ternarylogic_epi32::<0xCA>($b, $c, $d)
        };
        (1, $b:expr, $c:expr, $d:expr) => {
            _mm256_ternarylogic_epi32::<0xE4>($b, $c, $d)
        };
        (2, $b:expr, $c:expr, $d:expr) => {
            _mm256_ternarylogic_epi32::<0x96>($b, $c, $d)
        };
        (3, $b:expr, $c:expr, $d:expr) => {
            _mm256_ternarylogic_epi32::<0x39>($b, $c, $d)
        };
    }
    macro_rules! rotate_avx512 {
        ($x:expr, $s:expr) => {
            _mm256_rol_epi32::<{ $s as i32 }>($x)
        };
    }

    /// Step `i` (of round `r`, `i / 16`) of every chain in `x` (G chains of A, B, C, D, whose roles turn by one each step).
    /// a + K + m is off the chain: only the round function waits for the step before.
    macro_rules! step {
        ($round:ident, $rotate:ident, $x:ident, $m:ident, $r:tt, $i:literal) => {{
            const A: usize = (4 - $i % 4) % 4;
            for g in 0..$x.len() {
                let (b, c, d) = ($x[g][(A + 1) % 4], $x[g][(A + 2) % 4], $x[g][(A + 3) % 4]);
                let early = _mm256_add_epi32($x[g][A], _mm256_add_epi32(_mm256_set1_epi32(K[$i] as i32), $m[g][word($i)]));
                let sum = _mm256_add_epi32(early, $round!($r, b, c, d));
                $x[g][A] = _mm256_add_epi32(b, $rotate!(sum, shift($i)));
            }
        }};
    }

    /// A kernel: G groups of eight lanes of `len` bytes each (G independent chains), their final
    /// states, word by word.
    macro_rules! kernel {
        ($name:ident, $features:literal, $round:ident, $rotate:ident) => {
            #[target_feature(enable = $features)]
            unsafe fn $name<const G: usize>(lanes: &[[&[u8]; 8]; G], len: usize) -> [[[u32; 8]; 4]; G] {
                #[rustfmt::skip]
                #[inline(always)]
                unsafe fn chunk<const G: usize>(state: &mut [[__m256i; 4]; G], ptrs: &[[*const u8; 8]; G]) {
                    let m: [[__m256i; 16]; G] = std::array::from_fn(|g| message(&ptrs[g]));
                    let mut x = *state;
                    step!($round, $rotate, x, m, 0, 0); step!($round, $rotate, x, m, 0, 1); step!($round, $rotate, x, m, 0, 2); step!($round, $rotate, x, m, 0, 3);
                    step!($round, $rotate, x, m, 0, 4); step!($round, $rotate, x, m, 0, 5); step!($round, $rotate, x, m, 0, 6); step!($round, $rotate, x, m, 0, 7);
                    step!($round, $rotate, x, m, 0, 8); step!($round, $rotate, x, m, 0, 9); step!($round, $rotate, x, m, 0, 10); step!($round, $rotate, x, m, 0, 11);
                    step!($round, $rotate, x, m, 0, 12); step!($round, $rotate, x, m, 0, 13); step!($round, $rotate, x, m, 0, 14); step!($round, $rotate, x, m, 0, 15);
                    step!($round, $rotate, x, m, 1, 16); step!($round, $rotate, x, m, 1, 17); step!($round, $rotate, x, m, 1, 18); step!($round, $rotate, x, m, 1, 19);
                    step!($round, $rotate, x, m, 1, 20); step!($round, $rotate, x, m, 1, 21); step!($round, $rotate, x, m, 1, 22); step!($round, $rotate, x, m, 1, 23);
                    step!($round, $rotate, x, m, 1, 24); step!($round, $rotate, x, m, 1, 25); step!($round, $rotate, x, m, 1, 26); step!($round, $rotate, x, m, 1, 27);
                    step!($round, $rotate, x, m, 1, 28); step!($round, $rotate, x, m, 1, 29); step!($round, $rotate, x, m, 1, 30); step!($round, $rotate, x, m, 1, 31);
                    step!($round, $rotate, x, m, 2, 32); step!($round, $rotate, x, m, 2, 33); step!($round, $rotate, x, m, 2, 34); step!($round, $rotate, x, m, 2, 35);
                    step!($round, $rotate, x, m, 2, 36); step!($round, $rotate, x, m, 2, 37); step!($round, $rotate, x, m, 2, 38); step!($round, $rotate, x, m, 2, 39);
                    step!($round, $rotate, x, m, 2, 40); step!($round, $rotate, x, m, 2, 41); step!($round, $rotate, x, m, 2, 42); step!($round, $rotate, x, m, 2, 43);
                    step!($round, $rotate, x, m, 2, 44); step!($round, $rotate, x, m, 2, 45); step!($round, $rotate, x, m, 2, 46); step!($round, $rotate, x, m, 2, 47);
                    step!($round, $rotate, x, m, 3, 48); step!($round, $rotate, x, m, 3, 49); step!($round, $rotate, x, m, 3, 50); step!($round, $rotate, x, m, 3, 51);
                    step!($round, $rotate, x, m, 3, 52); step!($round, $rotate, x, m, 3, 53); step!($round, $rotate, x, m, 3, 54); step!($round, $rotate, x, m, 3, 55);
                    step!($round, $rotate, x, m, 3, 56); step!($round, $rotate, x, m, 3, 57); step!($round, $rotate, x, m, 3, 58); step!($round, $rotate, x, m, 3, 59);
                    step!($round, $rotate, x, m, 3, 60); step!($round, $rotate, x, m, 3, 61); step!($round, $rotate, x, m, 3, 62); step!($round, $rotate, x, m, 3, 63);
                    for (s, v) in state.iter_mut().zip(x) {
                        for (s, v) in s.iter_mut().zip(v) {
                            *s = _mm256_add_epi32(*s, v);
                        }
                    }
                }
                let init = [0x67452301u32, 0xefcdab89, 0x98badcfe, 0x10325476].map(|w| _mm256_set1_epi32(w as i32));
                let mut state = [init; G];
                let whole = len / 64;
                for at in (0..whole).map(|c| c * 64) {
                    chunk(&mut state, &std::array::from_fn(|g| std::array::from_fn(|l| lanes[g][l][at..at + 64].as_ptr())));
                }
                let tails: [[([u8; 128], usize); 8]; G] =
                    std::array::from_fn(|g| std::array::from_fn(|l| padded_tail(&lanes[g][l][whole * 64..], len)));
                for at in (0..tails[0][0].1).map(|c| c * 64) {
                    chunk(&mut state, &std::array::from_fn(|g| std::array::from_fn(|l| tails[g][l].0[at..at + 64].as_ptr())));
                }
                state.map(|words| {
                    words.map(|w| {
                        let mut lanes = [0u32; 8];
                        _mm256_storeu_si256(lanes.as_mut_ptr().cast(), w);
                        lanes
                    })
                })
            }
        };
    }

    kernel!(hash_avx2, "avx2", round_avx2, rotate_avx2);
    kernel!(hash_avx512, "avx512f,avx512vl", round_avx512, rotate_avx512);
}

#[cfg(not(target_arch = "x86_64"))]
mod simd {
    /// No vector path on this architecture: every input is hashed alone.
    #[derive(Clone, Copy)]
    pub enum Kernel {}

    pub fn kernel() -> Option<Kernel> {
        None
    }

    pub fn md5_lanes(kernel: Kernel, _inputs: &[&[u8]]) -> Option<Vec<[u8; 16]>> {
        match kernel {}
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
            for lanes in 1..=MAX_LANES + 3 {
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

    /// Each kernel this CPU runs, with one chain and two, not only the one md5_many picks: the
    /// AVX2 one too where AVX-512 is.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn every_kernel_this_cpu_runs_matches_md5() {
        use simd::Kernel;
        let kernels: &[Kernel] = match simd::kernel() {
            Some(Kernel::Avx512) => &[Kernel::Avx2, Kernel::Avx512],
            Some(Kernel::Avx2) => &[Kernel::Avx2],
            None => &[],
        };
        assert_eq!(kernels.is_empty(), !is_x86_feature_detected!("avx2"));
        for &kernel in kernels {
            for len in [0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 1000, 262_144] {
                for lanes in MIN_LANES..=MAX_LANES {
                    let inputs: Vec<Vec<u8>> = (0..lanes).map(|l| bytes(len, (len * 17 + l) as u32)).collect();
                    let refs: Vec<&[u8]> = inputs.iter().map(Vec::as_slice).collect();
                    let got = simd::md5_lanes(kernel, &refs).expect("the kernel runs here");
                    assert_eq!(got.len(), lanes);
                    for (l, i) in refs.iter().enumerate() {
                        assert_eq!(got[l], <[u8; 16]>::from(Md5::digest(i)), "{kernel:?}, lane {l} of {lanes}, {len} bytes");
                    }
                }
            }
        }
    }

    /// Bytes per second of each kernel and lane count: `cargo test --release -p s3backer-core
    /// kernel_speed -- --ignored --nocapture`.
    #[cfg(target_arch = "x86_64")]
    #[test]
    #[ignore]
    fn kernel_speed() {
        use simd::Kernel;
        let inputs: Vec<Vec<u8>> = (0..MAX_LANES).map(|l| bytes(262_144, l as u32)).collect();
        for kernel in [Kernel::Avx2, Kernel::Avx512] {
            for lanes in [8, 16] {
                let refs: Vec<&[u8]> = inputs[..lanes].iter().map(Vec::as_slice).collect();
                let Some(_) = simd::md5_lanes(kernel, &refs) else { continue };
                let rounds = 100;
                let t = std::time::Instant::now();
                for _ in 0..rounds {
                    std::hint::black_box(simd::md5_lanes(kernel, std::hint::black_box(&refs)));
                }
                let mib = (rounds * lanes * 262_144) as f64 / 1048576.0;
                println!("{kernel:?}, {lanes} lanes: {:.0} MiB/s", mib / t.elapsed().as_secs_f64());
            }
        }
    }
}

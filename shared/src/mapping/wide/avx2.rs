//! The kernels. One 256-bit register holds the four `a` lanes (ymm0), one the four `b`
//! lanes (ymm1), one `K0` in every lane (ymm2); each 32-byte vector `v` of words `4q..4q+4`
//! does `a += v ^ K0; b += a`, exactly `Checksum::add4`. The four-vector loops fold into
//! four independent sets of lanes and combine them after (`fold4!`, `combine!`): the same
//! lanes, without one chain of adds through every vector.

use std::arch::asm;

use crate::checksum::K0;

/// Loads the lanes (ymm0 = a, ymm1 = b) from `[{lanes}]` and `K0` into every lane of ymm2;
/// starts the four-vector loop's four sets of lanes (below): set 0's `a` (ymm7) at the
/// lanes' `a`, every other register of the sets (ymm8..ymm14) at zero.
macro_rules! prologue {
    () => {
        concat!(
            "vmovdqu ymm0, ymmword ptr [{lanes}]\n",
            "vmovdqu ymm1, ymmword ptr [{lanes} + 32]\n",
            "vmovq xmm2, {k}\n",
            "vpbroadcastq ymm2, xmm2\n",
            "vmovdqa ymm7, ymm0\n",
            "vpxor xmm8, xmm8, xmm8\n",
            "vpxor xmm9, xmm9, xmm9\n",
            "vpxor xmm10, xmm10, xmm10\n",
            "vpxor xmm11, xmm11, xmm11\n",
            "vpxor xmm12, xmm12, xmm12\n",
            "vpxor xmm13, xmm13, xmm13\n",
            "vpxor xmm14, xmm14, xmm14\n",
        )
    };
}

/// Folds ymm3 (four consecutive words, already XORed with `K0`) into the lanes.
macro_rules! fold1 {
    () => {
        concat!("vpaddq ymm0, ymm0, ymm3\n", "vpaddq ymm1, ymm1, ymm0\n")
    };
}

/// Folds ymm3..ymm6 (16 consecutive words, already XORed with `K0`) into the four sets:
/// vector `j` of the step into set `j` (`a` in ymm7 + j, `b` in ymm11 + j), each set the
/// same two adds as [`fold1!`]. Why four sets: with one, every vector waits for the
/// previous one's two adds, and on a core whose vector add takes two cycles (AMD Zen 5)
/// that chain, not the loads, set the pace: 2 cycles per vector, a copy-out at 2.3×
/// memcpy. [`combine!`] turns the sets back into the lanes.
macro_rules! fold4 {
    () => {
        concat!(
            "vpaddq ymm7, ymm7, ymm3\n",
            "vpaddq ymm11, ymm11, ymm7\n",
            "vpaddq ymm8, ymm8, ymm4\n",
            "vpaddq ymm12, ymm12, ymm8\n",
            "vpaddq ymm9, ymm9, ymm5\n",
            "vpaddq ymm13, ymm13, ymm9\n",
            "vpaddq ymm10, ymm10, ymm6\n",
            "vpaddq ymm14, ymm14, ymm10\n",
        )
    };
}

/// Turns the four sets back into the lanes (ymm0 = a, ymm1 = b), clobbering ymm3, ymm4.
///
/// The lanes at the start were (A, B); set `j` folded vectors `4i + j` of the `n = 4m`
/// the loop did, set 0 starting from (A, 0) and the others from zero. One set alone, as
/// [`fold1!`] does, ends at `a = A + Σ x_q`, `b = B + n·A + Σ (n − q)·x_q` (vector `q`'s
/// weight in `b` is the number of folds from it on). Set `j` gives vector `4i + j`
/// the weight `m − i` in its `b_j`, and `4(m − i) − j = n − q`; set 0's `b_0` holds
/// `m·A`. So `a = Σ a_j` and `b = B + Σ (4·b_j − j·a_j)`: the same lanes, bit for bit
/// (all of it wrapping, so linear).
macro_rules! combine {
    () => {
        concat!(
            "vpaddq ymm0, ymm7, ymm8\n",
            "vpaddq ymm3, ymm9, ymm10\n",
            "vpaddq ymm0, ymm0, ymm3\n",
            // ymm4 = a1 + 2·a2 + 3·a3
            "vpaddq ymm4, ymm8, ymm3\n",
            "vpaddq ymm4, ymm4, ymm3\n",
            "vpaddq ymm4, ymm4, ymm10\n",
            "vpaddq ymm11, ymm11, ymm12\n",
            "vpaddq ymm13, ymm13, ymm14\n",
            "vpaddq ymm11, ymm11, ymm13\n",
            "vpsllq ymm11, ymm11, 2\n",
            "vpaddq ymm1, ymm1, ymm11\n",
            "vpsubq ymm1, ymm1, ymm4\n",
        )
    };
}

/// Two prefetches (`$op`) of the lines [`PREFETCH_AHEAD`](super::PREFETCH_AHEAD) bytes
/// past `$reg`: one four-vector step's two lines, sixteen lines early.
macro_rules! ahead {
    ($op:literal, $reg:literal) => {
        concat!($op, " byte ptr [", $reg, " + 1024]\n", $op, " byte ptr [", $reg, " + 1088]\n")
    };
}

const _: () = assert!(super::PREFETCH_AHEAD == 1024, "`ahead!` spells the distance out");

/// Two `prefetcht1` of the lines [`PREFETCH_FAR`](super::PREFETCH_FAR) bytes past `$reg`
/// (into L2): the same four-vector step's two lines, sixty-four lines early.
macro_rules! far {
    ($reg:literal) => {
        concat!("prefetcht1 byte ptr [", $reg, " + 4096]\n", "prefetcht1 byte ptr [", $reg, " + 4160]\n")
    };
}

const _: () = assert!(super::PREFETCH_FAR == 4096, "`far!` spells the distance out");

/// Stores the lanes back to `[{lanes}]`; clears the upper halves (every vector register
/// is declared clobbered).
macro_rules! epilogue {
    () => {
        concat!(
            "vmovdqu ymmword ptr [{lanes}], ymm0\n",
            "vmovdqu ymmword ptr [{lanes} + 32], ymm1\n",
            "vzeroupper\n",
        )
    };
}

/// One kernel: the prologue; `four` (four vectors into the four sets, then the pointers
/// advanced) while at least four of the rcx vectors are left; the sets combined into the
/// lanes; then `one` (one vector) for the rest; the epilogue. The operands every kernel has
/// come first, the explicit registers `regs` last.
macro_rules! kernel {
    ($lanes:expr, four: [$($four:expr),* $(,)?], one: [$($one:expr),* $(,)?], $($regs:tt)*) => {
        asm!(
            prologue!(),
            "cmp rcx, 4",
            "jb 3f",
            "2:",
            $($four,)*
            "sub rcx, 4",
            "cmp rcx, 4",
            "jae 2b",
            "3:",
            combine!(),
            "test rcx, rcx",
            "jz 5f",
            "4:",
            $($one,)*
            "dec rcx",
            "jnz 4b",
            "5:",
            epilogue!(),
            lanes = in(reg) $lanes,
            k = in(reg) K0,
            $($regs)*
            clobber_abi("C"),
            options(nostack),
        )
    };
}

/// The copy kernel with `$store` (`vmovdqu`, or `vmovntdq` for streaming stores) as its
/// store instruction: `quads` 32-byte vectors from `$src` to `$dst`, each folded into
/// `$lanes`.
macro_rules! copy_kernel {
    ($store:literal, $src:expr, $dst:expr, $quads:expr, $lanes:expr) => {
        copy_kernel!($store, [], $src, $dst, $quads, $lanes)
    };
    ($store:literal, [$($ahead:expr),*], $src:expr, $dst:expr, $quads:expr, $lanes:expr) => {
        kernel!(
            $lanes,
            four: [
                $($ahead,)*
                "vmovdqu ymm3, ymmword ptr [rsi]",
                "vmovdqu ymm4, ymmword ptr [rsi + 32]",
                "vmovdqu ymm5, ymmword ptr [rsi + 64]",
                "vmovdqu ymm6, ymmword ptr [rsi + 96]",
                concat!($store, " ymmword ptr [rdi], ymm3"),
                concat!($store, " ymmword ptr [rdi + 32], ymm4"),
                concat!($store, " ymmword ptr [rdi + 64], ymm5"),
                concat!($store, " ymmword ptr [rdi + 96], ymm6"),
                "vpxor ymm3, ymm3, ymm2",
                "vpxor ymm4, ymm4, ymm2",
                "vpxor ymm5, ymm5, ymm2",
                "vpxor ymm6, ymm6, ymm2",
                fold4!(),
                "add rsi, 128",
                "add rdi, 128",
            ],
            one: [
                "vmovdqu ymm3, ymmword ptr [rsi]",
                concat!($store, " ymmword ptr [rdi], ymm3"),
                "vpxor ymm3, ymm3, ymm2",
                fold1!(),
                "add rsi, 32",
                "add rdi, 32",
            ],
            inout("rsi") $src => _,
            inout("rdi") $dst => _,
            inout("rcx") $quads => _,
        )
    };
}

/// The sum kernel, with the `$ahead` lines (prefetches) first in each four-vector step.
macro_rules! sum_kernel {
    ([$($ahead:expr),*], $src:expr, $quads:expr, $lanes:expr) => {
        kernel!(
            $lanes,
            four: [
                $($ahead,)*
                "vpxor ymm3, ymm2, ymmword ptr [rsi]",
                "vpxor ymm4, ymm2, ymmword ptr [rsi + 32]",
                "vpxor ymm5, ymm2, ymmword ptr [rsi + 64]",
                "vpxor ymm6, ymm2, ymmword ptr [rsi + 96]",
                fold4!(),
                "add rsi, 128",
            ],
            one: [
                "vpxor ymm3, ymm2, ymmword ptr [rsi]",
                fold1!(),
                "add rsi, 32",
            ],
            inout("rsi") $src => _,
            inout("rcx") $quads => _,
        )
    };
}

/// Copies `quads` 32-byte vectors from `src` to `dst`, folding each into `lanes`.
///
/// # Safety
/// AVX2 must be present; `src` must be valid for `32 * quads` reads and `dst` for as many
/// writes, not overlapping; shared memory among them is accessed only as argued in `wide`'s
/// module docs (8-aligned).
#[target_feature(enable = "avx2")]
pub(super) unsafe fn copy_sum(src: *const u8, dst: *mut u8, quads: usize, lanes: &mut [[u64; 4]; 2]) {
    // SAFETY: the caller's contract: AVX2 present, `src`/`dst` valid for `32 * quads`
    // bytes each; `lanes` is 64 valid bytes. The block touches no other memory, keeps the
    // stack untouched, and clobbers only the registers declared (all vector registers,
    // via the C ABI, so `vzeroupper` cannot destroy a live value of the compiler's).
    unsafe { copy_kernel!("vmovdqu", src, dst, quads, lanes.as_mut_ptr()) };
}

/// [`copy_sum`] with a `prefetchw` of the destination lines [`PREFETCH_AHEAD`] bytes
/// ahead of the stores (for a copy into a slot).
///
/// # Safety
/// As [`copy_sum`], and the CPU must have `prefetchw`.
///
/// [`PREFETCH_AHEAD`]: super::PREFETCH_AHEAD
#[target_feature(enable = "avx2")]
pub(super) unsafe fn store_sum_ahead(src: *const u8, dst: *mut u8, quads: usize, lanes: &mut [[u64; 4]; 2]) {
    // SAFETY: as `copy_sum`'s. The prefetches are hints: they access no memory in the
    // abstract machine and never fault, also past the end of `dst`.
    unsafe { copy_kernel!("vmovdqu", [ahead!("prefetchw", "rdi")], src, dst, quads, lanes.as_mut_ptr()) };
}

/// [`copy_sum`] with a `prefetcht0` of the source lines [`PREFETCH_AHEAD`] bytes ahead of
/// the loads and a `prefetcht1` of those [`PREFETCH_FAR`] ahead (for a copy out of a slot).
///
/// # Safety
/// As [`copy_sum`].
///
/// [`PREFETCH_AHEAD`]: super::PREFETCH_AHEAD
/// [`PREFETCH_FAR`]: super::PREFETCH_FAR
#[target_feature(enable = "avx2")]
pub(super) unsafe fn load_sum_ahead(src: *const u8, dst: *mut u8, quads: usize, lanes: &mut [[u64; 4]; 2]) {
    // SAFETY: as `copy_sum`'s; the prefetches are hints (as in `store_sum_ahead`).
    unsafe {
        copy_kernel!(
            "vmovdqu",
            [ahead!("prefetcht0", "rsi"), far!("rsi")],
            src,
            dst,
            quads,
            lanes.as_mut_ptr()
        )
    };
}

/// [`copy_sum`] with streaming (non-temporal) stores, fenced on both sides: every store
/// before the call is globally visible before the first streamed one, every streamed
/// one before any store after the call (`wide`'s module docs, "Streaming stores").
///
/// # Safety
/// As [`copy_sum`], and `dst` must be 32-aligned.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn copy_sum_streaming(
    src: *const u8,
    dst: *mut u8,
    quads: usize,
    lanes: &mut [[u64; 4]; 2],
) {
    // SAFETY: `sfence` touches no memory and no register; the caller's contract covers
    // the kernel (as `copy_sum`'s, `dst` 32-aligned for `vmovntdq`).
    unsafe {
        asm!("sfence", options(nostack, preserves_flags));
        copy_kernel!("vmovntdq", src, dst, quads, lanes.as_mut_ptr());
        asm!("sfence", options(nostack, preserves_flags));
    }
}

/// Copies `words` 8-byte words from `src` to `dst` with one `rep movsq`, fenced on both
/// sides as [`copy_sum_streaming`] is (`wide`'s module docs, "String stores"). No checksum:
/// the caller folds the private source.
///
/// # Safety
/// `src` must be valid for `8 * words` reads and `dst` for as many writes, not overlapping,
/// `dst` 8-aligned; shared memory among them is accessed only as argued in `wide`'s module
/// docs.
pub(super) unsafe fn copy_string(src: *const u8, dst: *mut u8, words: usize) {
    // SAFETY: the caller's contract: `rep movsq` reads `8 * words` bytes from `src` and
    // writes as many to `dst`, ascending (Rust clears the direction flag on entry to an asm
    // block), and touches nothing else; `rcx`, `rsi` and `rdi` are declared clobbered.
    // `sfence` touches no memory and no register. No `nomem`: the compiler keeps the block in
    // program order with every other memory access.
    unsafe {
        asm!(
            "sfence",
            "rep movsq",
            "sfence",
            inout("rcx") words => _,
            inout("rsi") src => _,
            inout("rdi") dst => _,
            options(nostack, preserves_flags),
        );
    }
}

/// Loads each of `quads` 32-byte vectors from `src` once, folds it into `lanes` and hands
/// it to `f` as four words (`f(&mut state, q, words)`), in order; gives `state` back.
/// Compiled with AVX2 so that `f`, inlined here, works on the vector in registers.
///
/// # Safety
/// AVX2 must be present; `src` must be valid for `32 * quads` reads (shared memory
/// 8-aligned, read as argued in `wide`'s module docs).
#[target_feature(enable = "avx2")]
#[inline]
pub(super) unsafe fn quads<S, F: FnMut(&mut S, usize, [u64; 4])>(
    src: *const u8,
    quads: usize,
    lanes: &mut [[u64; 4]; 2],
    mut state: S,
    f: &mut F,
) -> S {
    use std::arch::x86_64::{
        __m256i, _mm256_add_epi64, _mm256_loadu_si256, _mm256_set1_epi64x, _mm256_setzero_si256,
        _mm256_slli_epi64, _mm256_storeu_si256, _mm256_sub_epi64, _mm256_xor_si256,
    };
    // SAFETY: `lanes` is two arrays of four words, 32 bytes each (unaligned loads and
    // stores).
    let (mut a, mut b) = unsafe {
        (_mm256_loadu_si256(lanes[0].as_ptr().cast()), _mm256_loadu_si256(lanes[1].as_ptr().cast()))
    };
    let k = _mm256_set1_epi64x(K0 as i64);
    // SAFETY: a 256-bit vector and four u64s have the same size, and every bit pattern is
    // a valid u64 (x86-64 is little-endian: lane i is word i).
    let words = |v: __m256i| unsafe { std::mem::transmute::<__m256i, [u64; 4]>(v) };
    // The four-vector groups fold into four sets of lanes, vector j of a group into set
    // j, combined after the groups as the asm kernels' `combine!` does (its docs give
    // the arithmetic): no chain of adds through every vector.
    let zero = _mm256_setzero_si256();
    let (mut sa, mut sb) = ([a, zero, zero, zero], [zero; 4]);
    // Four vectors per asm block: the compiler must bring memory up to date before each
    // block (it reads memory), which for a `state` it keeps in memory is one store per
    // block rather than per vector.
    let groups = quads / 4;
    let ahead = super::prefetch_enabled();
    for g in 0..groups {
        if ahead {
            // SAFETY: hints, [`PREFETCH_AHEAD`](super::PREFETCH_AHEAD) and
            // [`PREFETCH_FAR`](super::PREFETCH_FAR) bytes on: no memory is accessed in
            // the abstract machine, and a prefetch never faults (also past the end of
            // the range).
            unsafe {
                asm!(
                    ahead!("prefetcht0", "{p}"),
                    far!("{p}"),
                    p = in(reg) src.add(128 * g),
                    options(nostack, preserves_flags, readonly),
                );
            }
        }
        let (v0, v1, v2, v3): (__m256i, __m256i, __m256i, __m256i);
        // SAFETY: `src + 128g .. + 128` is in bounds (the caller's contract) and
        // 8-aligned; the vector loads are the Relaxed loads of their words claimed in
        // `wide`'s module docs. `readonly`, not `pure`: the compiler keeps the block, once,
        // in the loop, and never moves it across a store or a fence (the seqlock's partners).
        unsafe {
            asm!(
                "vmovdqu {v0}, ymmword ptr [{p}]",
                "vmovdqu {v1}, ymmword ptr [{p} + 32]",
                "vmovdqu {v2}, ymmword ptr [{p} + 64]",
                "vmovdqu {v3}, ymmword ptr [{p} + 96]",
                p = in(reg) src.add(128 * g),
                v0 = out(ymm_reg) v0,
                v1 = out(ymm_reg) v1,
                v2 = out(ymm_reg) v2,
                v3 = out(ymm_reg) v3,
                options(nostack, preserves_flags, readonly),
            );
        }
        for (j, v) in [v0, v1, v2, v3].into_iter().enumerate() {
            sa[j] = _mm256_add_epi64(sa[j], _mm256_xor_si256(v, k));
            sb[j] = _mm256_add_epi64(sb[j], sa[j]);
            f(&mut state, 4 * g + j, words(v));
        }
    }
    let add = _mm256_add_epi64;
    a = add(add(sa[0], sa[1]), add(sa[2], sa[3]));
    let weighted = add(add(sa[1], add(sa[2], sa[2])), add(sa[3], add(sa[3], sa[3])));
    let b_sum = _mm256_slli_epi64::<2>(add(add(sb[0], sb[1]), add(sb[2], sb[3])));
    b = _mm256_sub_epi64(add(b, b_sum), weighted);
    for q in 4 * groups..quads {
        let v: __m256i;
        // SAFETY: as above, for the one vector at `src + 32q`.
        unsafe {
            asm!(
                "vmovdqu {v}, ymmword ptr [{p}]",
                p = in(reg) src.add(32 * q),
                v = out(ymm_reg) v,
                options(nostack, preserves_flags, readonly),
            );
        }
        a = _mm256_add_epi64(a, _mm256_xor_si256(v, k));
        b = _mm256_add_epi64(b, a);
        f(&mut state, q, words(v));
    }
    // SAFETY: as for the loads above.
    unsafe {
        _mm256_storeu_si256(lanes[0].as_mut_ptr().cast(), a);
        _mm256_storeu_si256(lanes[1].as_mut_ptr().cast(), b);
    }
    state
}

/// Folds `quads` 32-byte vectors from `src` into `lanes`.
///
/// # Safety
/// AVX2 must be present; `src` must be valid for `32 * quads` reads (shared memory
/// 8-aligned, read as argued in `wide`'s module docs).
#[target_feature(enable = "avx2")]
pub(super) unsafe fn sum(src: *const u8, quads: usize, lanes: &mut [[u64; 4]; 2]) {
    // SAFETY: the caller's contract: AVX2 present, `src` valid for `32 * quads` bytes;
    // `lanes` is 64 valid bytes; no other memory, no stack; every vector register is
    // declared clobbered (C ABI), so `vzeroupper` is harmless.
    unsafe { sum_kernel!([], src, quads, lanes.as_mut_ptr()) };
}

/// [`sum`] with a `prefetcht0` of the lines [`PREFETCH_AHEAD`] bytes ahead of the loads
/// and a `prefetcht1` of those [`PREFETCH_FAR`] ahead.
///
/// # Safety
/// As [`sum`].
///
/// [`PREFETCH_AHEAD`]: super::PREFETCH_AHEAD
/// [`PREFETCH_FAR`]: super::PREFETCH_FAR
#[target_feature(enable = "avx2")]
pub(super) unsafe fn sum_ahead(src: *const u8, quads: usize, lanes: &mut [[u64; 4]; 2]) {
    // SAFETY: as `sum`'s; the prefetches are hints (as in `store_sum_ahead`).
    unsafe { sum_kernel!([ahead!("prefetcht0", "rsi"), far!("rsi")], src, quads, lanes.as_mut_ptr()) };
}

//! The loading kernels at 512 bits, for CPUs with AVX-512 F (`wide::wide512`): the same
//! copies and sums as `avx2.rs`, bit for bit, with one 64-byte vector where that file uses
//! two 32-byte ones. Why: the checksum's fold is three vector operations per vector
//! (`vpxorq`, two `vpaddq`), so at 256 bits it costs six per line, at 512 bits three; and a
//! loop step that reads 256 bytes issues half the loads. On an AMD Zen 5 core (in-process
//! ring bench, four rounds alternated with `EPOCHFUSE_NO_AVX512`) the worst copy-out read
//! from 64 KiB went from 1.64–1.90× `memcpy` to 1.48–1.58×, and a validation pass at
//! 256 KiB from 0.99–1.04× to 0.85–0.92× (`docs/benchmarks.md`, 2026-12-04).
//!
//! One 512-bit register holds the four `a` lanes twice: its low half for the even 32-byte
//! vectors of a step, its high half for the odd ones (word `8p + i` of the step goes to
//! half `i / 4`, lane `i % 4`, and lane `i % 4` is its checksum lane). The eight-vector
//! steps fold into four such registers (`fold!`), so eight independent sets of lanes, and
//! [`combine!`] turns them back into the four lanes; what is left after the last whole
//! step (fewer than eight 32-byte vectors) goes through the 256-bit one-vector loop of
//! `avx2.rs`'s kernels.

use std::arch::asm;

use crate::checksum::K0;

/// Loads the lanes (ymm0 = a, ymm1 = b; the VEX loads clear the registers' upper halves)
/// from `[{lanes}]` and `K0` into every lane of zmm2; starts the four registers of sets
/// (below): zmm7's low half at the lanes' `a`, every other lane of zmm7..zmm14 at zero.
macro_rules! prologue {
    () => {
        concat!(
            "vmovdqu ymm0, ymmword ptr [{lanes}]\n",
            "vmovdqu ymm1, ymmword ptr [{lanes} + 32]\n",
            "vmovq xmm2, {k}\n",
            "vpbroadcastq zmm2, xmm2\n",
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

/// XORs zmm3..zmm6 (32 consecutive words) with `K0` and folds register `j` into set `j`
/// (`a` in zmm7 + j, `b` in zmm11 + j): `a += v; b += a`, per lane.
macro_rules! fold {
    () => {
        concat!(
            "vpxorq zmm3, zmm3, zmm2\n",
            "vpxorq zmm4, zmm4, zmm2\n",
            "vpxorq zmm5, zmm5, zmm2\n",
            "vpxorq zmm6, zmm6, zmm2\n",
            "vpaddq zmm7, zmm7, zmm3\n",
            "vpaddq zmm11, zmm11, zmm7\n",
            "vpaddq zmm8, zmm8, zmm4\n",
            "vpaddq zmm12, zmm12, zmm8\n",
            "vpaddq zmm9, zmm9, zmm5\n",
            "vpaddq zmm13, zmm13, zmm9\n",
            "vpaddq zmm10, zmm10, zmm6\n",
            "vpaddq zmm14, zmm14, zmm10\n",
        )
    };
}

/// Turns the four registers of sets back into the lanes (ymm0 = a, ymm1 = b), clobbering
/// zmm3..zmm6.
///
/// The lanes at the start were (A, B). Number the eight sets `v = 2j + h` (register `j`,
/// half `h`): set `v` folded the 32-byte vectors `8i + v` of the `n = 8m` the loop did,
/// set 0 starting from (A, 0) and the others from zero. As in `avx2.rs`'s `combine!`, set
/// `v` gives vector `8i + v` the weight `m − i` in its `b_v`, and `8(m − i) − v = n − q`,
/// so `a = Σ a_v` and `b = B + Σ (8·b_v − v·a_v)`. Per register, `Σ_h v·a_v` is
/// `2j·a_j` in both halves plus `a_j`'s high half: hence `b = B + halves(8·Σ b_j −
/// 2·Σ j·a_j) − high(Σ a_j)`, where `halves` adds the two halves. All of it wrapping, so
/// linear: the same lanes, bit for bit.
macro_rules! combine {
    () => {
        concat!(
            // zmm3 = Σ a_j
            "vpaddq zmm3, zmm7, zmm8\n",
            "vpaddq zmm4, zmm9, zmm10\n",
            "vpaddq zmm3, zmm3, zmm4\n",
            // zmm4 = a_1 + 2·a_2 + 3·a_3
            "vpaddq zmm4, zmm8, zmm9\n",
            "vpaddq zmm4, zmm4, zmm9\n",
            "vpaddq zmm5, zmm10, zmm10\n",
            "vpaddq zmm5, zmm5, zmm10\n",
            "vpaddq zmm4, zmm4, zmm5\n",
            // zmm5 = 8·Σ b_j − 2·zmm4
            "vpaddq zmm5, zmm11, zmm12\n",
            "vpaddq zmm6, zmm13, zmm14\n",
            "vpaddq zmm5, zmm5, zmm6\n",
            "vpsllq zmm5, zmm5, 3\n",
            "vpsllq zmm4, zmm4, 1\n",
            "vpsubq zmm5, zmm5, zmm4\n",
            // the halves: a = low + high of zmm3; b += low + high of zmm5 − high of zmm3
            "vextracti64x4 ymm6, zmm3, 1\n",
            "vextracti64x4 ymm4, zmm5, 1\n",
            "vpaddq ymm0, ymm3, ymm6\n",
            "vpaddq ymm5, ymm5, ymm4\n",
            "vpsubq ymm5, ymm5, ymm6\n",
            "vpaddq ymm1, ymm1, ymm5\n",
        )
    };
}

/// Loads one eight-vector step (256 bytes at rsi) into zmm3..zmm6.
macro_rules! load4 {
    () => {
        concat!(
            "vmovdqu64 zmm3, zmmword ptr [rsi]\n",
            "vmovdqu64 zmm4, zmmword ptr [rsi + 64]\n",
            "vmovdqu64 zmm5, zmmword ptr [rsi + 128]\n",
            "vmovdqu64 zmm6, zmmword ptr [rsi + 192]\n",
        )
    };
}

/// Folds ymm3 (four consecutive words) into the lanes, as `avx2.rs`'s `fold1!`.
macro_rules! fold1 {
    () => {
        concat!("vpxor ymm3, ymm3, ymm2\n", "vpaddq ymm0, ymm0, ymm3\n", "vpaddq ymm1, ymm1, ymm0\n")
    };
}

/// The loading kernels' hints, as `avx2.rs`'s `ahead!` and `far!`, for one eight-vector
/// step's four lines: `prefetcht0` of the lines [`PREFETCH_AHEAD`](super::PREFETCH_AHEAD)
/// bytes ahead of the loads, `prefetcht1` of those [`PREFETCH_FAR`](super::PREFETCH_FAR)
/// ahead.
macro_rules! hints {
    () => {
        concat!(
            "prefetcht0 byte ptr [rsi + 1024]\n",
            "prefetcht0 byte ptr [rsi + 1088]\n",
            "prefetcht0 byte ptr [rsi + 1152]\n",
            "prefetcht0 byte ptr [rsi + 1216]\n",
            "prefetcht1 byte ptr [rsi + 4096]\n",
            "prefetcht1 byte ptr [rsi + 4160]\n",
            "prefetcht1 byte ptr [rsi + 4224]\n",
            "prefetcht1 byte ptr [rsi + 4288]\n",
        )
    };
}

const _: () =
    assert!(super::PREFETCH_AHEAD == 1024 && super::PREFETCH_FAR == 4096, "`hints!` spells them out");

/// One kernel: the prologue; `eight` (four 64-byte vectors, folded, pointers advanced)
/// while at least eight of the rcx 32-byte vectors are left; [`combine!`]; `one` for the
/// rest; the lanes stored back and the upper halves cleared (every vector register is
/// declared clobbered).
macro_rules! kernel {
    ($lanes:expr, eight: [$($eight:expr),* $(,)?], one: [$($one:expr),* $(,)?], $($regs:tt)*) => {
        asm!(
            prologue!(),
            "cmp rcx, 8",
            "jb 3f",
            "2:",
            $($eight,)*
            "sub rcx, 8",
            "cmp rcx, 8",
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
            "vmovdqu ymmword ptr [{lanes}], ymm0",
            "vmovdqu ymmword ptr [{lanes} + 32], ymm1",
            "vzeroupper",
            lanes = in(reg) $lanes,
            k = in(reg) K0,
            $($regs)*
            clobber_abi("C"),
            options(nostack),
        )
    };
}

/// The copy kernel, with `$hints` first in each step: `quads` 32-byte vectors from `$src`
/// to `$dst`, each folded into `$lanes`.
macro_rules! copy_kernel {
    ([$($hints:expr),*], $src:expr, $dst:expr, $quads:expr, $lanes:expr) => {
        kernel!(
            $lanes,
            eight: [
                $($hints,)*
                load4!(),
                "vmovdqu64 zmmword ptr [rdi], zmm3",
                "vmovdqu64 zmmword ptr [rdi + 64], zmm4",
                "vmovdqu64 zmmword ptr [rdi + 128], zmm5",
                "vmovdqu64 zmmword ptr [rdi + 192], zmm6",
                fold!(),
                "add rsi, 256",
                "add rdi, 256",
            ],
            one: [
                "vmovdqu ymm3, ymmword ptr [rsi]",
                "vmovdqu ymmword ptr [rdi], ymm3",
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

/// The sum kernel, with `$hints` first in each step.
macro_rules! sum_kernel {
    ([$($hints:expr),*], $src:expr, $quads:expr, $lanes:expr) => {
        kernel!(
            $lanes,
            eight: [
                $($hints,)*
                load4!(),
                fold!(),
                "add rsi, 256",
            ],
            one: [
                "vmovdqu ymm3, ymmword ptr [rsi]",
                fold1!(),
                "add rsi, 32",
            ],
            inout("rsi") $src => _,
            inout("rcx") $quads => _,
        )
    };
}

/// Copies `quads` 32-byte vectors from `src` to `dst`, folding each into `lanes`: as
/// `avx2::copy_sum`.
///
/// # Safety
/// AVX-512 F must be present; `src` must be valid for `32 * quads` reads and `dst` for as
/// many writes, not overlapping; shared memory among them is accessed only as argued in
/// `wide`'s module docs (8-aligned).
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn copy_sum(src: *const u8, dst: *mut u8, quads: usize, lanes: &mut [[u64; 4]; 2]) {
    // SAFETY: as `avx2::copy_sum`'s, with AVX-512 F present (the caller's contract): the
    // block touches only `src`, `dst` and `lanes`, within bounds, and no stack; it declares
    // every vector register clobbered, so `vzeroupper` destroys no live value.
    unsafe { copy_kernel!([], src, dst, quads, lanes.as_mut_ptr()) };
}

/// [`copy_sum`] with the loading hints (for a copy out of a slot): as
/// `avx2::load_sum_ahead`.
///
/// # Safety
/// As [`copy_sum`].
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn load_sum_ahead(src: *const u8, dst: *mut u8, quads: usize, lanes: &mut [[u64; 4]; 2]) {
    // SAFETY: as `copy_sum`'s. The prefetches are hints: they access no memory in the
    // abstract machine and never fault, also past the end of the range.
    unsafe { copy_kernel!([hints!()], src, dst, quads, lanes.as_mut_ptr()) };
}

/// Folds `quads` 32-byte vectors from `src` into `lanes`: as `avx2::sum`.
///
/// # Safety
/// AVX-512 F must be present; `src` must be valid for `32 * quads` reads (shared memory
/// 8-aligned, read as argued in `wide`'s module docs).
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn sum(src: *const u8, quads: usize, lanes: &mut [[u64; 4]; 2]) {
    // SAFETY: as `avx2::sum`'s, with AVX-512 F present (the caller's contract): the block
    // reads `src` within bounds and writes only `lanes`; every vector register is declared
    // clobbered.
    unsafe { sum_kernel!([], src, quads, lanes.as_mut_ptr()) };
}

/// [`sum`] with the loading hints: as `avx2::sum_ahead`.
///
/// # Safety
/// As [`sum`].
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn sum_ahead(src: *const u8, quads: usize, lanes: &mut [[u64; 4]; 2]) {
    // SAFETY: as `sum`'s; the prefetches are hints (as in `load_sum_ahead`).
    unsafe { sum_kernel!([hints!()], src, quads, lanes.as_mut_ptr()) };
}

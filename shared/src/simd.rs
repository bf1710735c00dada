//! Running a hot loop compiled for the CPU's full vector width, with the same results.
//!
//! The workspace is built for the x86-64 baseline (SSE2, 128-bit vectors), so that a binary
//! runs on any x86-64 host, also one a container image is moved to. [`vectorised`] runs a
//! closure inside a function compiled with AVX-512 (F, BW, DQ, VL) when the CPU has it, else
//! with AVX2: whatever the compiler inlines into it is vectorised 512 or 256 bits wide, with
//! the wider integer multiplies, blends and masks. Elsewhere the closure runs as built.
//!
//! Only inlined code is compiled with AVX2, and the compiler does not inline a large closure
//! on its own: mark the closure `#[inline(always)]` (`vectorised(#[inline(always)] || …)`),
//! and the hot functions it calls too. A function left out runs as built, correctly.
//!
//! # Same bytes either way
//!
//! A fused multiply-add rounds once where a multiply and an add round twice, so it must
//! never replace the two. The AVX2 build does not enable `fma` at all. AVX-512F brings it
//! with it (LLVM's `avx512f` implies `fma`), but Rust never contracts a multiply and an
//! add into one (it emits no fast-math flags; only an explicit `mul_add` is fused, and that
//! is correctly rounded either way). Every other operation gives the same result at any
//! vector width: IEEE-754 arithmetic and conversions are exact to the last bit, integer
//! arithmetic is exact, and the compiler does not reorder float arithmetic (no fast-math).
//! So a simulated frame's bytes do not depend on the CPU: the simulator's golden hashes pin
//! them, and CI checks them at each width the machine has.
//!
//! Set in the environment, `EPOCHFUSE_NO_AVX512` stops at AVX2 and `EPOCHFUSE_NO_AVX2` runs
//! every closure as built, to measure one against the other.
//!
//! ```
//! let xs: Vec<f32> = (0..1000).map(|i| i as f32).collect();
//! let sum_sq = |v: &[f32]| v.iter().map(|x| x * x).fold(0.0f32, |a, b| a + b);
//! let wide = shared::simd::vectorised(#[inline(always)] || sum_sq(&xs));
//! assert_eq!(wide.to_bits(), sum_sq(&xs).to_bits());
//! ```

use std::sync::OnceLock;

/// Whether [`vectorised`] runs closures compiled with AVX2 in this process: the CPU has it
/// and `EPOCHFUSE_NO_AVX2` is unset.
#[must_use]
pub fn avx2() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| cpu_has_avx2() && std::env::var_os("EPOCHFUSE_NO_AVX2").is_none())
}

/// Whether [`vectorised`] runs closures compiled with AVX-512 (F, BW, DQ, VL) in this
/// process: [`avx2`] does, the CPU has them and `EPOCHFUSE_NO_AVX512` is unset.
#[must_use]
pub fn avx512() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| avx2() && cpu_has_avx512() && std::env::var_os("EPOCHFUSE_NO_AVX512").is_none())
}

/// Whether CPUID says the CPU has AVX-512 F, BW, DQ and VL (false off x86-64).
fn cpu_has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512dq")
        && std::arch::is_x86_feature_detected!("avx512vl");
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Whether CPUID says the CPU has AVX2 (false off x86-64).
pub(crate) fn cpu_has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("avx2");
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Runs `f`, compiled with AVX-512 where [`avx512`] says so, else with AVX2 where [`avx2`]
/// does (see the module docs: the result is the same either way). Only what is inlined into
/// `f` is compiled with it.
#[inline(always)]
pub fn vectorised<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if avx512() {
        // SAFETY: the one requirement of calling a function compiled with these features is
        // that the CPU has them, and `avx512()` is true only if CPUID says it has AVX2 and
        // AVX-512 F, BW, DQ and VL (`is_x86_feature_detected!`).
        return unsafe { with_avx512(f) };
    }
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        // SAFETY: the one requirement of calling a function compiled with AVX2 is that the
        // CPU has AVX2, and `avx2()` is true only if CPUID says it has
        // (`is_x86_feature_detected!`).
        return unsafe { with_avx2(f) };
    }
    f()
}

/// Calls `f` inside a function compiled with AVX2.
///
/// # Safety
/// The CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// Calls `f` inside a function compiled with AVX-512 (F, BW, DQ, VL).
///
/// # Safety
/// The CPU must have AVX2 and AVX-512 F, BW, DQ and VL.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512dq,avx512vl")]
unsafe fn with_avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(test)]
mod tests {
    use super::vectorised;

    /// Float work whose rounding depends on the order and fusion of the operations: the
    /// vectorised build must give the bits the baseline gives.
    #[inline(always)]
    fn work(xs: &[f32], out: &mut [u32]) {
        for (x, o) in xs.iter().zip(out.iter_mut()) {
            let y = x * 1.000_001 + 0.333_333_3;
            let z = 256.0 / (1.0 + 220.0 * y.recip());
            *o = (z * 3.7 - y * 0.1).to_bits() ^ (y as u32).wrapping_mul(2_654_435_761);
        }
    }

    #[test]
    fn vectorised_gives_the_baselines_bits() {
        let xs: Vec<f32> = (0..4099).map(|i| (i as f32 - 2000.0) * 0.37).collect();
        let (mut a, mut b) = (vec![0; xs.len()], vec![0; xs.len()]);
        work(&xs, &mut a);
        vectorised(
            #[inline(always)]
            || work(&xs, &mut b),
        );
        assert_eq!(a, b);
    }
}

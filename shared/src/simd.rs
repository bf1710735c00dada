//! Running a hot loop compiled for the CPU's full vector width, with the same results.
//!
//! The workspace is built for the x86-64 baseline (SSE2, 128-bit vectors), so that a binary
//! runs on any x86-64 host, also one a container image is moved to. [`vectorised`] runs a
//! closure inside a function compiled with AVX2 when the CPU has it: whatever the compiler
//! inlines into it is vectorised 256 bits wide, with AVX2's integer multiplies and blends.
//! Elsewhere the closure runs as built.
//!
//! Only inlined code is compiled with AVX2, and the compiler does not inline a large closure
//! on its own: mark the closure `#[inline(always)]` (`vectorised(#[inline(always)] || …)`),
//! and the hot functions it calls too. A function left out runs as built, correctly.
//!
//! # Same bytes either way
//!
//! Only `avx2` is enabled, not `fma`: a fused multiply-add rounds once where a multiply and
//! an add round twice, and the compiler never forms one from separate operations without it.
//! Every other operation gives the same result at any vector width: IEEE-754 arithmetic and
//! conversions are exact to the last bit, integer arithmetic is exact, and the compiler does
//! not reorder float arithmetic (no fast-math). So a simulated frame's bytes do not depend on
//! the CPU (the simulator's golden hashes pin them).
//!
//! `EPOCHFUSE_NO_AVX2` set in the environment runs every closure as built, to measure one
//! against the other.
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

/// Whether CPUID says the CPU has AVX2 (false off x86-64).
pub(crate) fn cpu_has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("avx2");
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Runs `f`, compiled with AVX2 where [`avx2`] says so (see the module docs: the result is
/// the same either way). Only what is inlined into `f` is compiled with it.
#[inline(always)]
pub fn vectorised<R>(f: impl FnOnce() -> R) -> R {
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

//! A small deterministic random number generator (SplitMix64 seeding a xoshiro256**
//! stream) and a Gaussian sampler.
//!
//! Written here rather than taken from a crate so that the bytes a scenario produces never
//! change with a dependency's version: the same seed gives the same world and the same noise
//! on every build.

/// SplitMix64 step: a good 64-bit mixer, used for seeding and hashing seeds together.
#[must_use]
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Mixes several words into one seed.
#[must_use]
pub fn mix(words: &[u64]) -> u64 {
    let mut s = 0x005E_ED0F_E90C_F05E_u64;
    let mut out = 0;
    for &w in words {
        s ^= w;
        out = splitmix64(&mut s);
    }
    out
}

/// xoshiro256** pseudo-random generator.
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
    spare: Option<f64>,
}

impl Rng {
    /// A generator seeded from one word.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        let mut sm = seed;
        let s = [splitmix64(&mut sm), splitmix64(&mut sm), splitmix64(&mut sm), splitmix64(&mut sm)];
        Self { s, spare: None }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1).
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.f64()
    }

    /// Uniform integer in 0..n (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (((self.next_u64() >> 32) * n as u64) >> 32) as usize
    }

    /// True with probability p.
    pub fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }

    /// Standard normal (Box–Muller, both values used).
    pub fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        let (u1, u2) = (self.f64(), self.f64());
        let (c, s) = box_muller(u1, u2);
        self.spare = Some(s);
        c
    }

    /// Draws into `out` (cleared) the uniforms that `n` calls of [`Rng::normal`] would draw
    /// on a generator with no spare value, in the same order: two [`Rng::f64`] per
    /// Box–Muller pair (the one for the pair's radius first), `n` rounded up to a whole
    /// pair. [`normals_from_uniforms`] turns them into those normals, any run of them on any
    /// thread; the generator is left where those calls would leave it (its spare aside).
    pub fn uniforms_for_normals(&mut self, n: usize, out: &mut Vec<f64>) {
        out.clear();
        out.extend((0..n.div_ceil(2) * 2).map(|_| self.f64()));
    }
}

/// Normals `first..first + out.len()` of the stream [`Rng::normal`] gives from `uniforms`
/// ([`Rng::uniforms_for_normals`]), into `out`: normal `i` is pair `i / 2`'s cosine value for
/// an even `i`, its sine value for an odd one, with the same arithmetic, so the same bits.
///
/// # Panics
/// If `uniforms` holds fewer than the pairs asked for.
pub fn normals_from_uniforms(uniforms: &[f64], first: usize, out: &mut [f64]) {
    let mut k = 0;
    while k < out.len() {
        let i = first + k;
        let (c, s) = box_muller(uniforms[i / 2 * 2], uniforms[i / 2 * 2 + 1]);
        if i.is_multiple_of(2) {
            out[k] = c;
            if let Some(o) = out.get_mut(k + 1) {
                *o = s;
            }
            k += 2;
        } else {
            out[k] = s;
            k += 1;
        }
    }
}

/// The pair of standard normals (cosine value, sine value) Box–Muller makes of two uniforms
/// in [0, 1), the first for the radius.
#[inline]
fn box_muller(u1: f64, u2: f64) -> (f64, f64) {
    let r = (-2.0 * (1.0 - u1).ln()).sqrt(); // 1 − u1 in (0, 1]
    let (s, c) = (std::f64::consts::TAU * u2).sin_cos();
    (r * c, r * s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_roughly_normal() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        let mut r = Rng::new(1);
        let n = 20000;
        let (mut sum, mut sq) = (0.0, 0.0);
        for _ in 0..n {
            let z = r.normal();
            sum += z;
            sq += z * z;
        }
        let mean = sum / f64::from(n);
        let var = sq / f64::from(n) - mean * mean;
        assert!(mean.abs() < 0.03, "{mean}");
        assert!((var - 1.0).abs() < 0.05, "{var}");
        assert!(r.below(10) < 10);
    }

    /// The normals from the uniforms are `normal()`'s, bit for bit, for any count (odd ones
    /// too) and any run of them, and the generator ends where `normal()` leaves it.
    #[test]
    fn normals_from_uniforms_are_normals() {
        for n in [0, 1, 2, 3, 7, 64, 101] {
            let mut a = Rng::new(42);
            let want: Vec<u64> = (0..n).map(|_| a.normal().to_bits()).collect();
            let mut b = Rng::new(42);
            let mut u = vec![9.0; 3];
            b.uniforms_for_normals(n, &mut u);
            assert_eq!(u.len(), n.div_ceil(2) * 2);
            assert_eq!(a.next_u64(), b.next_u64(), "{n}");
            for first in 0..n {
                for len in [0, 1, 2, 3, n - first] {
                    let len = len.min(n - first);
                    let mut out = vec![0.0; len];
                    normals_from_uniforms(&u, first, &mut out);
                    let got: Vec<u64> = out.iter().map(|z| z.to_bits()).collect();
                    assert_eq!(got, want[first..first + len], "{n} {first} {len}");
                }
            }
        }
    }
}

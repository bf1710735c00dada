//! `atomic-copy`: what the ring's copy loops could reach, in safe code on a `Vec<AtomicU64>`.
//!
//! The ring reads and writes shared memory only with Relaxed `AtomicU64` accesses (DESIGN.md
//! §5), which LLVM never vectorises, and checksums what it copies. This compares, per size:
//!
//! - `memcpy`: `copy_from_slice` between two byte buffers (the §9 baseline);
//! - `shared-shape read`: the loop shape of `shared::mapping::Mapping::copy_out` today (four
//!   Relaxed loads, `Checksum::add4`, `extend_from_slice` of 32 bytes per step);
//! - `fused read`: the same loads and the same checksum, with the checksum state in locals
//!   and the destination sized once and written through `chunks_exact_mut`;
//! - `shared-shape write`: `copy_in` (8-byte chunk stores) followed by a second pass that
//!   checksums the slot, as `Loan::commit` does today;
//! - `fused write`: the stores and the checksum in one pass;
//! - `copy, then sum the copy` / `sum the source, then copy`: the atomic copy alone, and the
//!   checksum over the private buffer (plain memory, which LLVM vectorises), in two passes.
//!
//! It is a prototype for a change in `shared` (the benchmark crate cannot touch segment
//! memory), not a measurement of the ring itself: `cargo bench -p shared --bench ring` is.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use shared::checksum::Checksum;

use crate::report::size_label;

/// Median nanoseconds per call of `f`, over batches of at least 1 ms within 100 ms.
fn ns_per_call(f: impl FnMut()) -> f64 {
    shared::bench_timer::ns_per_call(Duration::from_millis(100), f)
}

/// Four Relaxed loads, as `copy_out` issues them.
#[inline(always)]
fn load4(quad: &[AtomicU64]) -> [u64; 4] {
    [
        quad[0].load(Ordering::Relaxed),
        quad[1].load(Ordering::Relaxed),
        quad[2].load(Ordering::Relaxed),
        quad[3].load(Ordering::Relaxed),
    ]
}

/// `copy_out` as `shared::mapping` has it (whole words only).
fn read_shared_shape(src: &[AtomicU64], dst: &mut Vec<u8>) -> u64 {
    dst.clear();
    dst.reserve(src.len() * 8);
    let mut sum = Checksum::new();
    for quad in src.chunks_exact(4) {
        let w = load4(quad);
        sum.add4(w);
        let mut bytes = [0u8; 32];
        for (k, x) in w.iter().enumerate() {
            bytes[8 * k..8 * k + 8].copy_from_slice(&x.to_le_bytes());
        }
        dst.extend_from_slice(&bytes);
    }
    sum.finish(src.len() as u64 * 8)
}

/// Four lanes of the same checksum, kept in registers.
#[derive(Clone, Copy, Debug, Default)]
struct Lanes {
    a: [u64; 4],
    b: [u64; 4],
}

impl Lanes {
    #[inline(always)]
    fn add4(&mut self, w: [u64; 4]) {
        const K0: u64 = 0x9E37_79B9_7F4A_7C15;
        let [a0, a1, a2, a3] = &mut self.a;
        let [b0, b1, b2, b3] = &mut self.b;
        *a0 = a0.wrapping_add(w[0] ^ K0);
        *a1 = a1.wrapping_add(w[1] ^ K0);
        *a2 = a2.wrapping_add(w[2] ^ K0);
        *a3 = a3.wrapping_add(w[3] ^ K0);
        *b0 = b0.wrapping_add(*a0);
        *b1 = b1.wrapping_add(*a1);
        *b2 = b2.wrapping_add(*a2);
        *b3 = b3.wrapping_add(*a3);
    }

    fn fold(self) -> u64 {
        self.a.iter().chain(&self.b).fold(0, |h, x| h.rotate_left(7) ^ x)
    }
}

fn read_fused(src: &[AtomicU64], dst: &mut Vec<u8>) -> u64 {
    dst.resize(src.len() * 8, 0);
    let mut lanes = Lanes::default();
    for (quad, out) in src.chunks_exact(4).zip(dst.chunks_exact_mut(32)) {
        let w = load4(quad);
        lanes.add4(w);
        for (k, x) in w.iter().enumerate() {
            out[8 * k..8 * k + 8].copy_from_slice(&x.to_le_bytes());
        }
    }
    lanes.fold()
}

/// Copy with Relaxed loads only, then checksum the private copy (which LLVM vectorises).
fn read_copy_then_sum(src: &[AtomicU64], dst: &mut Vec<u8>) -> u64 {
    dst.resize(src.len() * 8, 0);
    for (w, out) in src.iter().zip(dst.chunks_exact_mut(8)) {
        out.copy_from_slice(&w.load(Ordering::Relaxed).to_le_bytes());
    }
    crate::proto::checksum(dst)
}

fn word(c: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(c);
    u64::from_le_bytes(b)
}

fn write_shared_shape(src: &[u8], dst: &[AtomicU64]) -> u64 {
    for (chunk, w) in src.chunks_exact(8).zip(dst) {
        w.store(word(chunk), Ordering::Relaxed);
    }
    let mut sum = Checksum::new();
    for (i, w) in dst.iter().enumerate() {
        sum.add_at(i, w.load(Ordering::Relaxed));
    }
    sum.finish(src.len() as u64)
}

/// Checksum the private source (vectorised), then store it with Relaxed stores.
fn write_sum_then_copy(src: &[u8], dst: &[AtomicU64]) -> u64 {
    let sum = crate::proto::checksum(src);
    for (chunk, w) in src.chunks_exact(8).zip(dst) {
        w.store(word(chunk), Ordering::Relaxed);
    }
    sum
}

fn write_fused(src: &[u8], dst: &[AtomicU64]) -> u64 {
    let mut lanes = Lanes::default();
    for (c, quad) in src.chunks_exact(32).zip(dst.chunks_exact(4)) {
        let w = [word(&c[0..8]), word(&c[8..16]), word(&c[16..24]), word(&c[24..32])];
        for (x, q) in w.iter().zip(quad) {
            q.store(*x, Ordering::Relaxed);
        }
        lanes.add4(w);
    }
    lanes.fold()
}

/// Runs the comparison and prints a markdown table.
pub fn run() {
    println!("Relaxed-atomic copy loops vs memcpy (safe prototype on a Vec<AtomicU64>; ratios ÷ memcpy)\n");
    println!(
        "| size | memcpy ns | shared-shape read | fused read | copy, then sum the copy | shared-shape \
         write+sum | fused write+sum | sum the source, then copy |\n|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for shift in [12, 14, 16, 18, 20, 22, 23] {
        let size = 1usize << shift;
        let src: Vec<u8> = (0..size).map(|i| (i.wrapping_mul(31) ^ (i >> 8)) as u8).collect();
        let words: Vec<AtomicU64> = src.chunks_exact(8).map(|c| AtomicU64::new(word(c))).collect();
        let mut dst = vec![0u8; size];
        let memcpy = ns_per_call(|| {
            dst.copy_from_slice(black_box(&src));
            black_box(&mut dst);
        });
        let mut buf = Vec::with_capacity(size);
        let cell = |f: &mut dyn FnMut() -> u64| {
            let ns = ns_per_call(|| {
                black_box(f());
            });
            format!("{ns:.0} ns ({:.2}×)", ns / memcpy)
        };
        let rs = cell(&mut || read_shared_shape(black_box(&words), &mut buf));
        let rf = cell(&mut || read_fused(black_box(&words), &mut buf));
        let rc = cell(&mut || read_copy_then_sum(black_box(&words), &mut buf));
        let ws = cell(&mut || write_shared_shape(black_box(&src), &words));
        let wf = cell(&mut || write_fused(black_box(&src), &words));
        let wc = cell(&mut || write_sum_then_copy(black_box(&src), &words));
        println!("| {} | {memcpy:.0} | {rs} | {rf} | {rc} | {ws} | {wf} | {wc} |", size_label(size));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loops_copy_every_byte() {
        let src: Vec<u8> = (0..4096u32).map(|i| (i * 7) as u8).collect();
        let words: Vec<AtomicU64> = src.chunks_exact(8).map(|c| AtomicU64::new(word(c))).collect();
        let mut a = Vec::new();
        let mut b = Vec::new();
        assert_eq!(read_shared_shape(&words, &mut a), shared::checksum::checksum_bytes(&src));
        read_fused(&words, &mut b);
        assert_eq!(a, src);
        assert_eq!(b, src);
        assert_eq!(read_copy_then_sum(&words, &mut b), shared::checksum::checksum_bytes(&src));
        assert_eq!(b, src);
        let out: Vec<AtomicU64> = (0..512).map(|_| AtomicU64::new(0)).collect();
        assert_eq!(write_shared_shape(&src, &out), shared::checksum::checksum_bytes(&src));
        write_fused(&src, &out);
        assert_eq!(write_sum_then_copy(&src, &out), shared::checksum::checksum_bytes(&src));
        assert!(out.iter().zip(&words).all(|(x, y)| x.load(Ordering::Relaxed) == y.load(Ordering::Relaxed)));
    }
}

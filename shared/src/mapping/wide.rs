//! The one wide-copy primitive of the workspace (issue 13): copies between a shared slot and
//! private memory 32 or 64 bytes per instruction, with the slot checksum folded into the same
//! pass.
//!
//! Everywhere else, shared bytes are touched only as `AtomicU64` words with Relaxed loads and
//! stores, which LLVM never merges into vector accesses: 8 bytes per µop against memcpy's 32
//! or 64, so a copy-out read stayed at 2–5× memcpy. Here, on x86-64 with AVX2, a loop in
//! inline assembly moves whole 32-byte vectors (`vmovdqu`) and folds the four checksum lanes
//! with `vpxor`/`vpaddq` (one 256-bit register holds exactly the four lanes); where the CPU
//! has AVX-512, the loading kernels (copy-out and sum) do the same with 64-byte vectors
//! (`vmovdqu64`, one 512-bit register holding the lanes twice, `wide/avx512.rs`). Elsewhere, or
//! with `EPOCHFUSE_WORD_COPY` set in the environment, the same functions run the Relaxed
//! `AtomicU64` word loop they replace, which is also what the loom model checks.
//!
//! # Memory-model argument
//!
//! **What the primitive is, in the abstract machine.** Each copy or sum kernel (in
//! `wide/avx2.rs`) is one `asm!` block; the quad read is a loop of small ones. Rust gives an
//! asm block no semantics of its own: it is sound only if its effect is that of
//! some operation the abstract machine could have performed (the reference's rules for inline
//! assembly; this is what makes `atomic-memcpy`-style primitives expressible at all). We
//! claim exactly this operation: *a sequence of Relaxed `AtomicU64` loads (reads) or stores
//! (writes) of the 8-aligned words of the range, in unspecified order*, plus plain accesses
//! to the private buffer or registers. That is the access the word loop makes, so nothing the protocol
//! relies on changes, and nothing new races: every shared word is still only ever accessed
//! atomically, at 8 bytes, by every party (no mixed-size access, which Rust does not define).
//!
//! **Why the hardware implements that claim.** The slot offsets handed to these functions are
//! 8-aligned (payloads are 64-aligned, so the kernels' 32- and 64-byte accesses are aligned
//! too). On x86-64 an aligned quadword access is single-copy atomic; a 256-bit `vmovdqu` or a
//! 512-bit `vmovdqu64` is architecturally "multiple memory accesses" of unstated size (Intel SDM vol. 3A §9.1.1; AMD
//! APM vol. 2 §7.3.2), and processors with AVX make aligned 16-byte vector accesses atomic as a
//! whole. That no aligned quadword inside a vector access is torn is therefore practice, not
//! promise, and the one thing relied on beyond the word loop. If it ever failed, the only
//! copies affected would be those that overlap a concurrent write of the same words, which
//! the seqlock refuses anyway: this is the P1478 / RFC 3301 model, atomic per *byte*, which is
//! all a seqlock reader needs. x86-64 is TSO: loads are not reordered with loads, nor stores
//! with stores, so the writer's data stores stay between its odd store and its closing
//! Release store in every other core's view. Two kernels give up that ordering and restore it
//! with fences of their own: the non-temporal one ("Streaming stores") and the string one
//! ("String stores").
//!
//! **Streaming stores for large appends.** An append of at least [`stream_min`] bytes
//! (default 2 MiB, the writer core's L2; `EPOCHFUSE_STREAM_MIN=<bytes>` changes it) is
//! stored with `vmovntdq` instead of `vmovdqu`. Why: a ring writes each frame into the slot
//! after the last one, which for frames this large has left every cache since the ring last
//! came round (4 slots of 4 MiB are 16 MiB); an ordinary store to a cold line first reads it
//! from memory (read for ownership), so the copy-in costs a memory read and a write per
//! byte. A streaming store writes whole lines without reading them. (A pool that hands the
//! writer back the buffer the reader just released, as iceoryx2's does, stays cache-hot
//! instead; a ring can only when its readers have released the slot before, see
//! `ring/place.rs`: such a slot is streamed into only from [`HOT_STREAM_MIN`].) Below the
//! threshold the frame can still be in the writer's caches when the reader reads it, and
//! streaming it to memory would make the reader's pass slower: measured, `docs/benchmarks.md`.
//! *The claim is the same*: Relaxed `AtomicU64` stores of the words of the range (aligned
//! 32-byte stores of whole quads; each aligned quadword inside is written as one, the same
//! practice as above, and a torn one could only be seen by a read that overlaps the write,
//! which the seqlock refuses). *What changes is the ordering the argument took from TSO*:
//! non-temporal stores are weakly ordered, against earlier and later stores alike (Intel SDM
//! vol. 3A, "Memory Ordering in P6 and More Recent Processor Families"; the `SFENCE` entries
//! of Intel SDM vol. 2 and AMD APM vol. 3), so without more a reader could see a streamed word
//! before the odd sequence word, or the closing even one before a streamed word, and accept a
//! torn copy. The kernel therefore brackets its stores with `sfence` on both sides: the
//! first makes every earlier store (the odd word of `write_begin`) globally visible before
//! any streamed store, the second every streamed store globally visible before any later
//! store (the frame header, `write_end`'s Release store). Between the two fences the streamed
//! stores are, in every other core's view, where the Release fence of `write_begin` and the
//! Release store of `write_end` put Relaxed stores, and Boehm's argument below holds as it
//! does for the ordinary kernel. The fences are asm blocks without `nomem`, so the compiler
//! keeps them, and the kernel, in program order with every other memory access. Readers are
//! unchanged (ordinary loads; the lines come from memory).
//!
//! **String stores for the other appends.** An append of at least 4 KiB that is not
//! streamed is copied with `rep movsq`, 16 KiB at a time, and each chunk is then folded into
//! the checksum from the private source, still in L1 (`EPOCHFUSE_NO_STRING_STORE` brings
//! back the vector kernel). Why: the slot's lines are usually in the reader's core (it read
//! the frame before), and a vector store fetches each line from there before writing it
//! (read for ownership). A fast string operation works a line at a time and, knowing the
//! whole line will be written, only invalidates the other copies (Intel SDM vol. 3A, "Fast
//! String Operation and Out-of-Order Stores"). Measured (`docs/benchmarks.md`, 2026-12-04): a
//! 64–256 KiB copy into lines the other core had read took 2.0–3.7× `memcpy` as a vector
//! loop and 1.3–1.8× as `rep movsq` plus the fold, and 6.4–6.8× against 1.3–1.4× when the
//! machine's cores were far apart; on one core with every line already its own, the string
//! copy is the slower (1.8× against 1.1–1.35×). *The claim is the same*: each `movsq`
//! element is one quadword store to an 8-aligned address (the destination is a slot
//! payload), and an aligned quadword write is single-copy atomic (Intel SDM vol. 3A §9.1.1;
//! AMD APM vol. 2 §7.3.2), so the block is Relaxed `AtomicU64` stores of the range's words in
//! unspecified order. (`rep movsb` would be byte stores, which the readers' 8-byte loads may
//! not race with in Rust's model: that is why the element size matters.) *The ordering is
//! restored as for streaming stores*: the stores of one fast string operation may be
//! performed out of order (same SDM section), so the kernel brackets `rep movsq` with
//! `sfence` on both sides, and the argument of the paragraph above applies word for word.
//!
//! **Loads into registers.** `for_each_quad_summed` is the read without a private copy: a
//! Rust loop around asm blocks of one to four `vmovdqu` loads each, whose results come out
//! in vector registers, are folded into the checksum there and handed to the consumer as
//! words. The claim is the same (Relaxed `AtomicU64` loads of the words, each aligned
//! quadword single-copy atomic); those blocks are `readonly` (they read memory and write
//! none) but not `pure`, so the compiler still never moves one across a store or a fence,
//! never elides or merges one, and runs each exactly once where the loop says.
//!
//! **Prefetch hints.** The kernels ask for the lines [`PREFETCH_AHEAD`] bytes ahead of their
//! loads (`prefetcht0`) or stores (`prefetchw`), and the loading ones also for the lines
//! [`PREFETCH_FAR`] ahead into L2 (`prefetcht1`), see [`prefetch_enabled`]. A prefetch is a
//! hint: it accesses no memory in the abstract machine, never faults (also past the end of a
//! range or of the mapping) and orders nothing, so the claim above and the ordering argument
//! below are untouched by it.
//!
//! **Why the seqlock's fences still order it.** The copy and sum kernels are not `pure`,
//! `nomem` or `readonly`: to the compiler each may read and write any memory, so it is never moved,
//! merged, duplicated or elided, and never crosses the Release fence of
//! [`seqlock::write_begin`](crate::seqlock::write_begin), the Release store of `write_end`,
//! the Acquire load of `read_begin` or the Acquire fence of `read_end` (the partners named in
//! `seqlock.rs`). With the claim above, Boehm's argument (2012) applies word for word:
//! if a reader's copy saw any word of a write that began after its first load, the writer's
//! Release fence synchronises with the reader's Acquire fence, and the second load sees the
//! odd value or a later one: the copy is refused. If the first load saw `s+2`, every word of
//! that write is visible to the copy. A copy that is accepted is data-race free and consistent.
//!
//! **Precedents weighed.** crossbeam-utils' `AtomicCell` seqlock reads with `ptr::read_volatile`
//! and says itself that this is a data race in the model; we do not. `atomic-memcpy`
//! implements P1478 with Relaxed word loads (sound, but as slow as our word loop); P1478's
//! `atomic_load_per_byte_memcpy` and RFC 3301's `AtomicPerByte` are the standard forms of the
//! claim made here, whose library implementations are expected to be plain vector copies.
//!
//! **What the loom model covers.** Loom cannot run inline assembly; under `--cfg loom` this
//! module is not built, and the model's slots are copied with Relaxed word loads, which is
//! the claimed abstract operation above. The protocol (`seqlock`, `wait`, `cursor`) is the
//! same code in both builds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use crate::checksum::{self, Checksum};

/// Whether the wide kernels run in this process: AVX2 is present and `EPOCHFUSE_WORD_COPY`
/// is unset (it forces the word loop, to measure one against the other).
#[must_use]
pub fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| crate::simd::cpu_has_avx2() && std::env::var_os("EPOCHFUSE_WORD_COPY").is_none())
}

/// Whether the loading kernels (copy-out and sum) run at 512 bits (`wide/avx512.rs`):
/// [`enabled`], and [`simd::avx512`](crate::simd::avx512) (the CPU has AVX-512 and
/// `EPOCHFUSE_NO_AVX512` is unset). Why only those: the fold costs half the vector
/// operations per line at 512 bits, and a copy-out or sum of a slot in L2 came 8–15 % nearer
/// `memcpy` on an AMD Zen 5 core; the store kernels write into lines the reader's core
/// holds, where 64-byte stores measured no better than 32-byte ones (`docs/benchmarks.md`).
/// The string stores' fold over the private source uses the 512-bit sum as well. The quad
/// read (`for_each_quad_summed`) stays at 256 bits: with 64-byte loads it measured no better
/// in the transport bench (256 KiB polling 3.78–4.39 µs against 3.54–3.90).
#[must_use]
pub fn wide512() -> bool {
    enabled() && crate::simd::avx512()
}

/// A copy kernel's signature: `quads` 32-byte vectors from `src` to `dst`, folded into the
/// lanes.
#[cfg(target_arch = "x86_64")]
type CopyKernel = unsafe fn(*const u8, *mut u8, usize, &mut [[u64; 4]; 2]);

/// A sum kernel's signature: `quads` 32-byte vectors from `src`, folded into the lanes.
#[cfg(target_arch = "x86_64")]
type SumKernel = unsafe fn(*const u8, usize, &mut [[u64; 4]; 2]);

/// The loading kernels this process runs, chosen once from [`wide512`] and
/// [`prefetch_enabled`] rather than on every read.
#[cfg(target_arch = "x86_64")]
struct Loading {
    /// Copy-out of a shared range, with the loading hints unless they are off.
    copy: CopyKernel,
    /// Sum of a shared range, likewise.
    sum: SumKernel,
    /// Sum of a private range the caller has just copied (no hints: it is in L1).
    fold: SumKernel,
    /// The copy-out's store alignment, bytes: its vector size.
    align: usize,
}

/// The loading kernels, valid only where [`enabled`] says the wide kernels run: each needs
/// AVX2, and the 512-bit ones AVX-512 F, which [`wide512`] checked.
#[cfg(target_arch = "x86_64")]
fn loading() -> &'static Loading {
    static KERNELS: OnceLock<Loading> = OnceLock::new();
    KERNELS.get_or_init(|| match (wide512(), prefetch_enabled()) {
        (true, true) => {
            Loading { copy: avx512::load_sum_ahead, sum: avx512::sum_ahead, fold: avx512::sum, align: 64 }
        }
        (true, false) => Loading { copy: avx512::copy_sum, sum: avx512::sum, fold: avx512::sum, align: 64 },
        (false, true) => {
            Loading { copy: avx2::load_sum_ahead, sum: avx2::sum_ahead, fold: avx2::sum, align: 32 }
        }
        (false, false) => Loading { copy: avx2::copy_sum, sum: avx2::sum, fold: avx2::sum, align: 32 },
    })
}

/// Whether the kernels ask for the lines they are about to touch ahead of time,
/// [`PREFETCH_AHEAD`] bytes on: unless `EPOCHFUSE_NO_PREFETCH` is set (it turns the hints
/// off, to measure one against the other). The store kernel's hint (`prefetchw`, fetch for
/// writing) needs the CPU to have it as well (CPUID `0x8000_0001`, ECX bit 8); without it
/// stores go unhinted.
///
/// Why: a slot's lines are usually in another core's cache (the writer wrote the frame
/// there, or the reader read the last frame there), so each load or store first fetches its
/// line from that core, one line at a time as the pass reaches it. The hints start those
/// fetches sixteen lines early, so that they overlap the pass (transport bench, 256 KiB to
/// 16 MiB: `docs/benchmarks.md`); the loading kernels' second hint ([`PREFETCH_FAR`]) asks
/// L2 for the lines sixty-four lines early. A prefetch is a hint: it reads and writes no
/// memory in the abstract machine and never faults (also past the end of the range), so the
/// memory-model argument above is unchanged.
#[must_use]
pub fn prefetch_enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| cfg!(target_arch = "x86_64") && std::env::var_os("EPOCHFUSE_NO_PREFETCH").is_none())
}

/// Whether the store kernel prefetches for writing ([`prefetch_enabled`] and the CPU has
/// `prefetchw`).
#[cfg(target_arch = "x86_64")]
fn prefetch_writes() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| {
        let max = std::arch::x86_64::__cpuid(0x8000_0000).eax;
        let has = max >= 0x8000_0001 && std::arch::x86_64::__cpuid(0x8000_0001).ecx & (1 << 8) != 0;
        has && prefetch_enabled()
    })
}

/// How far ahead of a kernel's loads or stores it prefetches, bytes (sixteen lines: far
/// enough to hide a transfer from another core, near enough to arrive just in time). The
/// kernels' asm spells it out (`ahead!`), checked against this at compile time.
pub const PREFETCH_AHEAD: usize = 1024;

/// How far ahead of their loads the loading kernels also prefetch into L2 (`prefetcht1`),
/// bytes. Why: L1 tracks few misses at a time, L2 many more, so a pass over a frame that is
/// in L3 or in memory (a camera frame the other core wrote, read by fusion) keeps more
/// lines in flight with the second, farther hint. Measured on an Intel guest, a 2.7 MB
/// frame written by the other core and summed with the `prefetcht0` hint alone, then with
/// both: 161–174 µs against 129–138 µs from L3, 272–287 µs against 211–238 µs from memory;
/// on an AMD Zen 5 guest, fusion's CPU in a default drive is about 10 % lower with it. A
/// pass over a range still in this core's L2 pays for it instead (the in-process ring
/// bench's copy-out, 10–20 %), and a threshold on the pass's length would take it from
/// fusion's reads too, whose passes are short calls (`docs/benchmarks.md`, 2026-12-04).
/// The asm spells it out (`far!`), checked against this at compile time.
pub const PREFETCH_FAR: usize = 4096;

/// Copies the shared words `src` (whole quads: a multiple of four words, the first at a
/// checksum lane 0) into `dst` (`8 * src.len()` bytes, little-endian) and folds them into
/// `sum`.
///
/// # Panics
/// If the lengths do not match or `src` is not whole quads (a bug in the caller).
///
/// The vector stores go to 32-aligned addresses of `dst` whenever `dst` is 8-aligned (a heap
/// buffer is 16-aligned): the first words up to that boundary and the last ones after the
/// last whole vector are copied one by one, and the kernel runs on the words between with
/// its checksum lanes rotated to match. Why: a 32-byte store that straddles two lines costs
/// two; a copy out of a 64-aligned slot into a buffer 16 bytes off took 1.24–1.38× memcpy
/// at 128–512 KiB against 0.92–1.12× with the buffer 64 bytes off (scratch test,
/// `docs/benchmarks.md`). The loads from the slot then start at an 8-aligned word that may
/// not be 32-aligned: still whole aligned quadwords, as the module docs claim.
#[inline]
pub(crate) fn load_summed(src: &[AtomicU64], dst: &mut [u8], sum: &mut Checksum) {
    assert!(src.len().is_multiple_of(4) && dst.len() == 8 * src.len(), "wide load of a partial quad");
    let (mut a, mut b) = sum.lanes();
    #[cfg(target_arch = "x86_64")]
    if enabled() {
        let kernels = loading();
        let (addr, align) = (dst.as_ptr() as usize, kernels.align);
        // Words before dst's next boundary of the kernel's vector size (none if dst is not
        // even 8-aligned).
        let head =
            if addr.is_multiple_of(8) { ((align - addr % align) % align / 8).min(src.len()) } else { 0 };
        let quads = (src.len() - head) / 4;
        load_words_summed(src, dst, 0..head, (&mut a, &mut b));
        // Kernel lane j holds word head + j + 4q, whose checksum lane is (head + j) % 4.
        let mut lanes = [a, b].map(|l| std::array::from_fn(|j| l[(head + j) % 4]));
        let (from, to) = (&src[head..head + 4 * quads], &mut dst[8 * head..8 * (head + 4 * quads)]);
        // SAFETY: AVX2 is present (`enabled`). `from` is `4 * quads` valid atomic words and
        // `to` as many private bytes (sliced above), so the kernel's `quads` 32-byte steps stay
        // inside both; they do not overlap (one is shared, one is a `&mut`). The shared reads
        // are the Relaxed word loads argued for in the module docs. `loading` chose a
        // kernel whose features the CPU has.
        unsafe { (kernels.copy)(from.as_ptr().cast(), to.as_mut_ptr(), quads, &mut lanes) };
        [a, b] = lanes.map(|l| std::array::from_fn(|lane| l[(lane + 4 - head % 4) % 4]));
        load_words_summed(src, dst, head + 4 * quads..src.len(), (&mut a, &mut b));
        *sum = Checksum::from_lanes(a, b);
        return;
    }
    load_words_summed(src, dst, 0..src.len(), (&mut a, &mut b));
    *sum = Checksum::from_lanes(a, b);
}

/// Copies the shared words `words` of `src` one by one (Relaxed loads) into `dst` at the
/// same word index, folding each into the lanes `a`, `b` of its checksum lane (its index
/// modulo 4).
fn load_words_summed(
    src: &[AtomicU64],
    dst: &mut [u8],
    words: std::ops::Range<usize>,
    (a, b): (&mut [u64; 4], &mut [u64; 4]),
) {
    for i in words {
        let w = src[i].load(Ordering::Relaxed);
        dst[8 * i..8 * i + 8].copy_from_slice(&w.to_le_bytes());
        let lane = i % 4;
        a[lane] = a[lane].wrapping_add(w ^ checksum::K0);
        b[lane] = b[lane].wrapping_add(a[lane]);
    }
}

/// Appends of at least this many bytes are stored with streaming (non-temporal) stores; see
/// the module docs. `EPOCHFUSE_STREAM_MIN=<bytes>` overrides the default (2 MiB), e.g. to
/// measure one kind of store against the other.
#[must_use]
pub fn stream_min() -> usize {
    static MIN: OnceLock<usize> = OnceLock::new();
    *MIN.get_or_init(|| {
        std::env::var("EPOCHFUSE_STREAM_MIN").ok().and_then(|v| v.trim().parse().ok()).unwrap_or(2 << 20)
    })
}

/// Stores the private bytes `src` (`8 * dst.len()` of them, little-endian words) into the
/// shared words `dst` (whole quads, the first at checksum lane 0) and folds them into `sum`;
/// with streaming stores from [`stream_min`] bytes on, or from [`HOT_STREAM_MIN`] into a
/// slot that is still in the caches (`hot`: the one its reader just released,
/// `ring/place.rs`).
///
/// # Panics
/// As [`load_summed`].
#[inline]
pub(crate) fn store_summed(dst: &[AtomicU64], src: &[u8], sum: &mut Checksum, hot: bool) {
    let min = if hot { HOT_STREAM_MIN.max(stream_min()) } else { stream_min() };
    store_summed_as(dst, src, sum, src.len() >= min);
}

/// Appends of at least this many bytes into a slot its reader has just read are streamed
/// all the same. Up to a few MiB such a slot is still in the caches, and ordinary stores
/// into it are far cheaper (4 MiB transport: 560–780 µs streamed, 300–380 µs not). At 16
/// MiB ordinary stores still win, because a frame written with them stays partly in the
/// shared L3 for the reader, who reads it in one pass (`RingReader::read_at_quads`):
/// 855–920 µs against 952–998 µs streamed (blocking transport, six sessions each; with a
/// reader that read the slot in two passes the order was the other way round). Measured in
/// `docs/benchmarks.md`.
pub const HOT_STREAM_MIN: usize = 32 << 20;

/// [`store_summed`] with the kind of store chosen by the caller: `streaming` uses the
/// non-temporal kernel where the wide kernels run and `dst` is 32-aligned (slot payloads are
/// 64-aligned and appends store whole quads from a quad boundary, so in a ring it is).
fn store_summed_as(dst: &[AtomicU64], src: &[u8], sum: &mut Checksum, streaming: bool) {
    assert!(dst.len().is_multiple_of(4) && src.len() == 8 * dst.len(), "wide store of a partial quad");
    #[cfg(target_arch = "x86_64")]
    if enabled() {
        let mut lanes = lanes_of(sum);
        let to: *mut u8 = dst.as_ptr().cast_mut().cast();
        if streaming && to.align_offset(32) == 0 {
            // SAFETY: as below; in addition `to` is 32-aligned (checked), as `vmovntdq`
            // requires, and the kernel fences its streamed stores on both sides (module docs).
            unsafe { avx2::copy_sum_streaming(src.as_ptr(), to, dst.len() / 4, &mut lanes) };
        } else {
            if dst.len() >= STRING_MIN_WORDS && string_stores() {
                store_string_summed(src, to, dst.len(), &mut lanes);
            } else if prefetch_writes() {
                // SAFETY: as below; `prefetchw` is present (`prefetch_writes`).
                unsafe { avx2::store_sum_ahead(src.as_ptr(), to, dst.len() / 4, &mut lanes) };
            } else {
                // SAFETY: as in `load_summed`, with the roles swapped: the kernel reads `src`
                // (private) and writes `dst`, `dst.len()` shared atomic words, with the
                // Relaxed word stores argued for in the module docs. Only the slot's single
                // writer calls this.
                unsafe { avx2::copy_sum(src.as_ptr(), to, dst.len() / 4, &mut lanes) };
            }
        }
        *sum = Checksum::from_lanes(lanes[0], lanes[1]);
        return;
    }
    let _ = streaming;
    let (mut a, mut b) = sum.lanes();
    for (chunk, quad) in src.chunks_exact(32).zip(dst.chunks_exact(4)) {
        for lane in 0..4 {
            let mut w = [0u8; 8];
            w.copy_from_slice(&chunk[8 * lane..8 * lane + 8]);
            let w = u64::from_le_bytes(w);
            quad[lane].store(w, Ordering::Relaxed);
            a[lane] = a[lane].wrapping_add(w ^ checksum::K0);
            b[lane] = b[lane].wrapping_add(a[lane]);
        }
    }
    *sum = Checksum::from_lanes(a, b);
}

/// Appends of at least this many words (4 KiB) that are not streamed are stored with string
/// stores when [`string_stores`] is on: below it the instruction's start-up outweighs what
/// it saves.
const STRING_MIN_WORDS: usize = 512;

/// The words a string store copies before the checksum folds them from the private source
/// (16 KiB: the chunk is still in L1 when it is folded).
const STRING_CHUNK_WORDS: usize = 2048;

/// Whether appends are stored with string stores ("String stores" in the module docs):
/// unless `EPOCHFUSE_NO_STRING_STORE` is set (it brings back the vector store kernel, to
/// measure one against the other).
#[must_use]
pub fn string_stores() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("EPOCHFUSE_NO_STRING_STORE").is_none())
}

/// Stores the private bytes `src` into the `words` shared words at `to` with string stores,
/// a chunk at a time, folding each chunk into `lanes` from `src` right after its copy.
#[cfg(target_arch = "x86_64")]
fn store_string_summed(src: &[u8], to: *mut u8, words: usize, lanes: &mut [[u64; 4]; 2]) {
    debug_assert!(src.len() == 8 * words && words.is_multiple_of(4));
    let mut first = 0;
    while first < words {
        let n = STRING_CHUNK_WORDS.min(words - first);
        let from = &src[8 * first..8 * (first + n)];
        // SAFETY: `to` is the start of `words` shared atomic words, 8-aligned (a slot's
        // payload), of which this writes `first..first + n` (in range: `n <= words - first`)
        // with the Relaxed word stores argued for in the module docs; `from` is `8 * n`
        // private bytes, which do not overlap shared memory. Only the slot's single writer
        // calls this.
        unsafe { avx2::copy_string(from.as_ptr(), to.add(8 * first), n) };
        // SAFETY: the wide kernels run (the caller checked `enabled`), so `loading`'s
        // kernels have the features they need; the kernel reads the `n / 4` whole quads of
        // private `from` (a chunk starts at a quad: `first` is a multiple of four) and
        // writes only `lanes`.
        unsafe { (loading().fold)(from.as_ptr(), n / 4, lanes) };
        first += n;
    }
}

/// Folds the shared words `src` (whole quads, the first at checksum lane 0) into `sum`.
///
/// # Panics
/// If `src` is not whole quads.
#[inline]
pub(crate) fn sum_words(src: &[AtomicU64], sum: &mut Checksum) {
    assert!(src.len().is_multiple_of(4), "wide sum of a partial quad");
    #[cfg(target_arch = "x86_64")]
    if enabled() {
        let mut lanes = lanes_of(sum);
        // SAFETY: the wide kernels run (`enabled`), so `loading`'s kernels have the
        // features they need; the kernel reads `src.len()` valid shared atomic words
        // (Relaxed loads, module docs) and writes only `lanes`.
        unsafe { (loading().sum)(src.as_ptr().cast(), src.len() / 4, &mut lanes) };
        *sum = Checksum::from_lanes(lanes[0], lanes[1]);
        return;
    }
    let (mut a, mut b) = sum.lanes();
    for quad in src.chunks_exact(4) {
        for lane in 0..4 {
            a[lane] = a[lane].wrapping_add(quad[lane].load(Ordering::Relaxed) ^ checksum::K0);
            b[lane] = b[lane].wrapping_add(a[lane]);
        }
    }
    *sum = Checksum::from_lanes(a, b);
}

/// Calls `f(&mut state, q, quad)` for every quad `q` of the shared words `src` (whole quads,
/// the first at checksum lane 0), in order, folds each into `sum`, and gives `state` back:
/// one load per quad serves both the checksum and the consumer, with no private copy
/// between them. Where the wide kernels run, a quad is one 32-byte vector load (the claim
/// of the module docs) and stays in registers, as does `state` (it is moved in, not
/// borrowed): the checksum's fold and the consumer's work are independent chains that the
/// core runs side by side.
///
/// # Panics
/// If `src` is not whole quads.
#[inline]
pub(crate) fn for_each_quad_summed<S>(
    src: &[AtomicU64],
    sum: &mut Checksum,
    state: S,
    mut f: impl FnMut(&mut S, usize, [u64; 4]),
) -> S {
    assert!(src.len().is_multiple_of(4), "wide read of a partial quad");
    #[cfg(target_arch = "x86_64")]
    if enabled() {
        let mut lanes = lanes_of(sum);
        // SAFETY: AVX2 is present (`enabled`); `src` is `src.len()` valid shared atomic words,
        // read only through the kernel's vector loads (the Relaxed word loads of the module
        // docs); `lanes` is private.
        let state = unsafe { avx2::quads(src.as_ptr().cast(), src.len() / 4, &mut lanes, state, &mut f) };
        *sum = Checksum::from_lanes(lanes[0], lanes[1]);
        return state;
    }
    let mut state = state;
    let (mut a, mut b) = sum.lanes();
    for (q, quad) in src.chunks_exact(4).enumerate() {
        let w: [u64; 4] = std::array::from_fn(|lane| quad[lane].load(Ordering::Relaxed));
        for lane in 0..4 {
            a[lane] = a[lane].wrapping_add(w[lane] ^ checksum::K0);
            b[lane] = b[lane].wrapping_add(a[lane]);
        }
        f(&mut state, q, w);
    }
    *sum = Checksum::from_lanes(a, b);
    state
}

#[cfg(target_arch = "x86_64")]
fn lanes_of(sum: &Checksum) -> [[u64; 4]; 2] {
    let (a, b) = sum.lanes();
    [a, b]
}

/// The kernels: `wide/avx2.rs`, and the loading ones at 512 bits in `wide/avx512.rs`.
#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;

#[cfg(test)]
mod tests {
    use zerocopy::IntoBytes as _;

    use super::*;
    use crate::checksum::checksum_bytes;

    fn words(bytes: &[u8]) -> Vec<AtomicU64> {
        bytes.chunks(8).map(|c| AtomicU64::new(checksum::word_at(c, 0))).collect()
    }

    #[test]
    fn kernels_match_the_reference_checksum_and_copy() {
        // 128 and 1029 quads: appends long enough for string stores (`STRING_MIN_WORDS`),
        // the second over two whole chunks and a partial one.
        for quads in [0usize, 1, 3, 4, 5, 8, 33, 128, 1029] {
            let src: Vec<u8> = (0..32 * quads).map(|i| (i * 37 + 11) as u8).collect();
            let shared = words(&src);
            // Targets at every 8-byte offset from a 64-byte boundary (the copy aligns its
            // stores to its vector size and rotates its lanes to match), and one not even
            // 8-aligned.
            let mut backing = vec![0u64; 4 * quads + 16];
            let base = backing.as_ptr().cast::<u8>().align_offset(64);
            for off in [0usize, 8, 16, 24, 32, 40, 48, 56, 3] {
                let bytes = backing.as_mut_slice().as_mut_bytes();
                let out = &mut bytes[base + off..base + off + src.len()];
                out.fill(0);
                let mut sum = Checksum::new();
                load_summed(&shared, out, &mut sum);
                assert_eq!(out, &src[..], "{quads} quads, {off} bytes off");
                assert_eq!(
                    sum.finish(src.len() as u64),
                    checksum_bytes(&src),
                    "{quads} quads, {off} bytes off"
                );
            }
            let mut only = Checksum::new();
            sum_words(&shared, &mut only);
            assert_eq!(only.finish(src.len() as u64), checksum_bytes(&src));
            let mut fed = Checksum::new();
            let seen = for_each_quad_summed(&shared, &mut fed, Vec::new(), |seen: &mut Vec<u8>, q, quad| {
                assert_eq!(seen.len(), 32 * q, "quads out of order");
                seen.extend(quad.iter().flat_map(|w| w.to_le_bytes()));
            });
            assert_eq!(seen, src, "{quads} quads handed over");
            assert_eq!(fed.finish(src.len() as u64), checksum_bytes(&src), "{quads} quads summed");
            for streaming in [false, true] {
                // 32-aligned target words (a Vec<AtomicU64> is only 8-aligned): streaming
                // stores need it, and an unaligned target takes the ordinary kernel.
                let backing: Vec<[AtomicU64; 4]> =
                    (0..quads + 1).map(|_| std::array::from_fn(|_| AtomicU64::new(0))).collect();
                let flat: &[AtomicU64] = backing.as_flattened();
                let skip = flat.as_ptr().align_offset(32).min(4);
                for target in [&flat[skip..skip + 4 * quads], &flat[skip + 1..skip + 1 + 4 * quads]] {
                    target.iter().for_each(|w| w.store(0, Ordering::Relaxed));
                    let mut stored = Checksum::new();
                    store_summed_as(target, &src, &mut stored, streaming);
                    assert_eq!(stored.finish(src.len() as u64), checksum_bytes(&src), "{quads} quads");
                    assert!(target
                        .iter()
                        .zip(&shared)
                        .all(|(a, b)| a.load(Ordering::Relaxed) == b.load(Ordering::Relaxed)));
                }
            }
        }
    }

    /// The kernels with prefetches ahead give the same bytes and sums as the plain ones, and
    /// the 512-bit ones the same as the 256-bit ones (the process-wide switches pick one kind
    /// for the test above; this runs each the CPU has).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn kernels_with_prefetches_and_at_512_bits_match_the_plain_ones() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            eprintln!("skipped: no AVX2 here");
            return;
        }
        let mut copies: Vec<(&str, CopyKernel)> =
            vec![("avx2", avx2::copy_sum), ("avx2 ahead", avx2::load_sum_ahead)];
        let mut sums: Vec<(&str, SumKernel)> = vec![("avx2", avx2::sum), ("avx2 ahead", avx2::sum_ahead)];
        if std::arch::is_x86_feature_detected!("avx512f") {
            copies.extend([
                ("avx512", avx512::copy_sum as CopyKernel),
                ("avx512 ahead", avx512::load_sum_ahead),
            ]);
            sums.extend([("avx512", avx512::sum as SumKernel), ("avx512 ahead", avx512::sum_ahead)]);
        } else {
            eprintln!("512-bit kernels skipped: no AVX-512 F here");
        }
        let writes = prefetch_writes();
        // Lengths on both sides of the prefetch distance, of the 512-bit kernels' eight-vector
        // step, and partial steps of either width.
        for quads in [0usize, 1, 5, 7, 8, 9, 15, 16, 31, 32, 33, 130, 263] {
            let src: Vec<u8> = (0..32 * quads).map(|i| (i * 131 + 7) as u8).collect();
            let shared = words(&src);
            let want = checksum_bytes(&src);
            let lanes = || lanes_of(&Checksum::new());
            let finish = |l: [[u64; 4]; 2]| Checksum::from_lanes(l[0], l[1]).finish(src.len() as u64);
            for (name, copy) in &copies {
                let (mut sum, mut out) = (lanes(), vec![0u8; src.len()]);
                // SAFETY: AVX2 is present, and AVX-512 F for the 512-bit kernels (checked);
                // `shared` and `out` are `32 * quads` bytes each and do not overlap.
                unsafe { copy(shared.as_ptr().cast(), out.as_mut_ptr(), quads, &mut sum) };
                assert!(out == src, "{name}: {quads} quads copied");
                assert_eq!(finish(sum), want, "{name}: {quads} quads loaded");
            }
            for (name, fold) in &sums {
                let mut sum = lanes();
                // SAFETY: as above; only `sum` is written.
                unsafe { fold(shared.as_ptr().cast(), quads, &mut sum) };
                assert_eq!(finish(sum), want, "{name}: {quads} quads summed");
            }
            if writes {
                let target: Vec<AtomicU64> = (0..4 * quads).map(|_| AtomicU64::new(0)).collect();
                let mut stored = lanes();
                // SAFETY: AVX2 and `prefetchw` are present; `target` is `32 * quads` bytes.
                unsafe {
                    avx2::store_sum_ahead(src.as_ptr(), target.as_ptr().cast_mut().cast(), quads, &mut stored)
                };
                assert_eq!(finish(stored), want, "{quads} quads stored");
                assert!(target
                    .iter()
                    .zip(&shared)
                    .all(|(a, b)| a.load(Ordering::Relaxed) == b.load(Ordering::Relaxed)));
            }
        }
    }
}

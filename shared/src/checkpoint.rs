//! A small crash-safe record of words in a shared file mapping: a process stores its state
//! at every change without a system call, and whoever opens the file after it died (a
//! restarted incarnation) reads the last record it completed, never half of one.
//!
//! Two slots, each under its own seqlock ([`crate::seqlock`]), written alternately: a store
//! goes to the slot that does not hold the newest complete record, so a writer killed
//! mid-store leaves that slot odd (refused by the seqlock) and the other slot intact.
//! Each slot is `[seq, generation, words...]`; the newest record is the valid slot with the
//! higher generation (0: never written).
//!
//! Only one process writes a record at a time (the caller's job: one incarnation after
//! another). Stores are plain page-cache writes, so they outlive a SIGKILL of the writer,
//! not a crash of the machine.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::Ordering;

use crate::mapping::{Mapping, ReadWrite};
use crate::seqlock::{self, Validated};

/// Words a record holds at most.
pub const MAX_WORDS: usize = 62;

/// Bytes of one slot: its sequence word, its generation and [`MAX_WORDS`] words.
const SLOT_BYTES: usize = (2 + MAX_WORDS) * 8;

/// Bytes of the file.
const FILE_BYTES: usize = 2 * SLOT_BYTES;

/// A record file, mapped. Not `Clone`: one writer per process.
#[derive(Debug)]
pub struct CheckpointRecord {
    map: Mapping<ReadWrite>,
    /// Words per record (the caller's fixed layout).
    words: usize,
    /// Generation of the newest complete record (0: none).
    generation: u64,
    /// The words last stored, to skip a store that changes nothing.
    last: Vec<u64>,
}

impl CheckpointRecord {
    /// Opens `path` (created 0600 if missing; symlinks refused) for records of `words` words.
    ///
    /// # Errors
    /// The open or mmap error; `InvalidInput` if `words` exceeds [`MAX_WORDS`] or `path` is
    /// not a regular file.
    pub fn open(path: &Path, words: usize) -> io::Result<Self> {
        if words > MAX_WORDS {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "checkpoint record too long"));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(path)?;
        Self::from_file(&file, words)
    }

    fn from_file(file: &File, words: usize) -> io::Result<Self> {
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"));
        }
        if meta.len() < FILE_BYTES as u64 {
            // Zeroes: two slots never written.
            file.set_len(FILE_BYTES as u64)?;
        }
        let map = Mapping::<ReadWrite>::map(file, FILE_BYTES)?;
        let mut record = Self { map, words, generation: 0, last: Vec::new() };
        if let Some((generation, words)) = record.newest() {
            record.generation = generation;
            record.last = words;
        }
        Ok(record)
    }

    /// The newest complete record, if any was ever stored.
    #[must_use]
    pub fn load(&self) -> Option<Vec<u64>> {
        self.newest().map(|(_, w)| w)
    }

    /// Stores `words` (padded with zeroes to the record's length; longer is a caller bug and
    /// is cut) as the newest record. A store equal to the last one is skipped.
    pub fn store(&mut self, words: &[u64]) {
        let mut padded = [0u64; MAX_WORDS];
        let n = words.len().min(self.words);
        padded[..n].copy_from_slice(&words[..n]);
        let padded = &padded[..self.words];
        if self.generation != 0 && self.last == padded {
            return;
        }
        let generation = self.generation + 1;
        let base = slot_offset(generation);
        let seq = self.map.word(base);
        let s = seqlock::write_begin(seq);
        // Relaxed: inside the seqlock write, ordered by `write_begin`'s Release fence and
        // `write_end`'s Release store (partners: `read_validated`'s Acquire fence and load).
        self.map.word(base + 8).store(generation, Ordering::Relaxed);
        self.map.store_words(base + 16, padded);
        seqlock::write_end(seq, s);
        self.generation = generation;
        self.last.clear();
        self.last.extend_from_slice(padded);
    }

    /// The valid slot with the higher generation: (generation, words).
    fn newest(&self) -> Option<(u64, Vec<u64>)> {
        (0..2u64)
            .filter_map(|slot| {
                let base = slot_offset(slot);
                let read = seqlock::read_validated(self.map.word(base), || {
                    // Relaxed: ordered by the seqlock read around it (see `store`).
                    let generation = self.map.load(base + 8, Ordering::Relaxed);
                    let words: Vec<u64> = (0..self.words)
                        .map(|i| self.map.load(base + 16 + 8 * i, Ordering::Relaxed))
                        .collect();
                    (generation, words)
                });
                match read {
                    // A generation in the wrong slot is a forged or scribbled file: not ours.
                    Validated::Valid { r, .. } if r.0 != 0 && slot_offset(r.0) == base => Some(r),
                    _ => None,
                }
            })
            .max_by_key(|(generation, _)| *generation)
    }
}

/// Where the slot of `generation` starts (odd generations in slot 1, even in slot 0).
const fn slot_offset(generation: u64) -> usize {
    (generation % 2) as usize * SLOT_BYTES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_record_is_read_back_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.bin");
        let mut r = CheckpointRecord::open(&path, 3).unwrap();
        assert_eq!(r.load(), None);
        r.store(&[1, 2, 3]);
        r.store(&[4, 5]);
        drop(r);
        let r = CheckpointRecord::open(&path, 3).unwrap();
        assert_eq!(r.load(), Some(vec![4, 5, 0]));
    }

    #[test]
    fn a_store_killed_midway_leaves_the_record_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.bin");
        let mut r = CheckpointRecord::open(&path, 2).unwrap();
        r.store(&[7, 7]);
        r.store(&[8, 8]);
        // A third store dies after its first data word: its slot stays odd.
        let base = slot_offset(3);
        let _ = seqlock::write_begin(r.map.word(base));
        r.map.word(base + 8).store(3, Ordering::Relaxed);
        r.map.word(base + 16).store(9, Ordering::Relaxed);
        drop(r);
        let mut r = CheckpointRecord::open(&path, 2).unwrap();
        assert_eq!(r.load(), Some(vec![8, 8]));
        // The next writer goes on in the torn slot, never over the newest record.
        r.store(&[10, 10]);
        assert_eq!(CheckpointRecord::open(&path, 2).unwrap().load(), Some(vec![10, 10]));
    }

    #[test]
    fn an_unchanged_record_is_not_stored_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = CheckpointRecord::open(&dir.path().join("s.bin"), 2).unwrap();
        r.store(&[1, 2]);
        r.store(&[1, 2]);
        assert_eq!(r.generation, 1);
        r.store(&[1, 3]);
        assert_eq!(r.generation, 2);
    }

    #[test]
    fn a_symlink_or_a_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), &link).unwrap();
        assert!(CheckpointRecord::open(&link, 1).is_err());
        assert!(CheckpointRecord::open(dir.path(), 1).is_err());
    }
}

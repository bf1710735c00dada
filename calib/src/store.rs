//! [`CalibStore`]: the calibration epochs a process knows, by epoch number.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use shared::{CalibEpoch, TimestampNs};

use crate::types::CalibrationSet;

/// What [`CalibStore::insert`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inserted {
    /// A new epoch.
    New,
    /// The same epoch with the same parameters was already known.
    Duplicate,
    /// The epoch was known with different parameters; the first one is kept (epochs are
    /// immutable).
    Conflict,
}

/// Epoch → calibration. Not synchronised: wrap it in a lock to share it between threads.
#[derive(Clone, Debug, Default)]
pub struct CalibStore {
    map: BTreeMap<CalibEpoch, Arc<CalibrationSet>>,
    conflicts: u64,
}

impl CalibStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an epoch (the caller has checked it: sets from [`crate::CalibSubscriber`], the
    /// table and files are). Epoch [`CalibEpoch::NONE`] is refused as a conflict.
    pub fn insert(&mut self, set: impl Into<Arc<CalibrationSet>>) -> Inserted {
        let set = set.into();
        if !set.epoch.is_some() {
            self.conflicts += 1;
            return Inserted::Conflict;
        }
        match self.map.get(&set.epoch) {
            None => {
                self.map.insert(set.epoch, set);
                Inserted::New
            }
            Some(old) if **old == *set => Inserted::Duplicate,
            Some(_) => {
                self.conflicts += 1;
                Inserted::Conflict
            }
        }
    }

    /// The calibration of `epoch`, if known.
    #[must_use]
    pub fn get(&self, epoch: CalibEpoch) -> Option<Arc<CalibrationSet>> {
        self.map.get(&epoch).cloned()
    }

    /// Whether `epoch` is known.
    #[must_use]
    pub fn contains(&self, epoch: CalibEpoch) -> bool {
        self.map.contains_key(&epoch)
    }

    /// The newest known epoch whose `valid_from ≤ t`: the tag of a frame captured at `t`.
    #[must_use]
    pub fn newest_valid_at(&self, t: TimestampNs) -> Option<CalibEpoch> {
        self.map.values().rev().find(|s| s.valid_from <= t).map(|s| s.epoch)
    }

    /// The newest known epoch's calibration.
    #[must_use]
    pub fn latest(&self) -> Option<Arc<CalibrationSet>> {
        self.map.values().next_back().cloned()
    }

    /// Known epochs, ascending.
    #[must_use]
    pub fn epochs(&self) -> Vec<CalibEpoch> {
        self.map.keys().copied().collect()
    }

    /// Every known calibration, ascending by epoch.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<CalibrationSet>> {
        self.map.values()
    }

    /// Number of known epochs.
    #[must_use]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no epoch is known.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Inserts that named a known epoch with different parameters (or epoch 0).
    #[must_use]
    pub const fn conflicts(&self) -> u64 {
        self.conflicts
    }

    /// Merges every epoch the calibration table at `path` holds. Returns how many were new.
    ///
    /// # Errors
    /// [`crate::table::TableError`] if the table cannot be attached.
    pub fn recover_from_table(&mut self, path: &Path) -> Result<usize, crate::table::TableError> {
        let sets = crate::table::read_table(path)?;
        Ok(sets.into_iter().filter(|s| self.insert(s.clone()) == Inserted::New).count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file::default_rig;

    fn epoch(e: u64, from: u64) -> CalibrationSet {
        let mut s = default_rig();
        s.epoch = CalibEpoch(e);
        s.valid_from = TimestampNs(from);
        s
    }

    #[test]
    fn lookup() {
        let mut st = CalibStore::new();
        assert_eq!(st.newest_valid_at(TimestampNs(5)), None);
        assert_eq!(st.insert(epoch(2, 1000)), Inserted::New);
        assert_eq!(st.insert(epoch(1, 0)), Inserted::New);
        assert_eq!(st.insert(epoch(1, 0)), Inserted::Duplicate);
        assert_eq!(st.insert(epoch(1, 7)), Inserted::Conflict);
        assert_eq!(st.insert(epoch(0, 7)), Inserted::Conflict);
        assert_eq!(st.conflicts(), 2);
        assert_eq!(st.newest_valid_at(TimestampNs(0)), Some(CalibEpoch(1)));
        assert_eq!(st.newest_valid_at(TimestampNs(999)), Some(CalibEpoch(1)));
        assert_eq!(st.newest_valid_at(TimestampNs(1000)), Some(CalibEpoch(2)));
        assert_eq!(st.latest().unwrap().epoch, CalibEpoch(2));
        assert_eq!(st.get(CalibEpoch(1)).unwrap().valid_from, TimestampNs(0));
        assert!(st.get(CalibEpoch(3)).is_none());
        assert_eq!(st.epochs(), vec![CalibEpoch(1), CalibEpoch(2)]);
    }
}

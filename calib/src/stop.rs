//! [`StopFlag`]: the one "please stop" signal of a process, shared by its threads.

use std::ops::Deref;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A flag raised once to ask every loop of a process to finish (SIGTERM in a role, the end
/// of a test). Clones share the flag. It derefs to the [`AtomicBool`] for APIs that take one
/// (`signal_hook::flag::register`, [`crate::CalibService::run`]).
///
/// Only the flag itself is communicated, no data: `Relaxed` is enough, a loop sees the raise
/// at its next check.
#[derive(Clone, Debug, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    /// A flag not raised yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Raises the flag (idempotent).
    pub fn raise(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether the flag has been raised.
    #[must_use]
    pub fn is_raised(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// The shared atomic, for registering with a signal handler.
    #[must_use]
    pub fn as_arc(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.0)
    }
}

impl Deref for StopFlag {
    type Target = AtomicBool;

    fn deref(&self) -> &AtomicBool {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_flag() {
        let a = StopFlag::new();
        let b = a.clone();
        assert!(!b.is_raised());
        a.raise();
        assert!(b.is_raised());
        assert!(a.as_arc().load(Ordering::Relaxed));
    }
}

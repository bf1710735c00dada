//! The key layout: everything of one run under `epochfuse/<run-id>/`.

use std::fmt;

use shared::{CalibEpoch, StreamKind};

/// The root of every key this product publishes.
pub const ROOT: &str = "epochfuse";

/// Longest run id accepted (a key is no place for an essay).
pub const MAX_RUN_ID: usize = 64;

/// A run id that is not a single plain key chunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadRunId(pub String);

impl fmt::Display for BadRunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "run id {:?}: 1..={MAX_RUN_ID} characters of [A-Za-z0-9_.-], not starting with '.'", self.0)
    }
}

impl std::error::Error for BadRunId {}

/// The keys of one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// The keys of run `run_id`.
    ///
    /// # Errors
    /// [`BadRunId`] for an id that is empty, too long, or holds anything but
    /// `[A-Za-z0-9_.-]` (no wildcard, no `/`, no `$`: one plain chunk of a key expression).
    pub fn new(run_id: &str) -> Result<Self, BadRunId> {
        let ok = !run_id.is_empty()
            && run_id.len() <= MAX_RUN_ID
            && !run_id.starts_with('.')
            && run_id.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if ok {
            Ok(Self { prefix: format!("{ROOT}/{run_id}") })
        } else {
            Err(BadRunId(run_id.to_string()))
        }
    }

    /// The run's frames of one sensor stream (`.../camera`, `.../lidar`).
    #[must_use]
    pub fn stream(&self, kind: StreamKind) -> String {
        format!("{}/{}", self.prefix, kind.name())
    }

    /// One calibration epoch (`.../calib/<epoch>`).
    #[must_use]
    pub fn calib(&self, epoch: CalibEpoch) -> String {
        format!("{}/calib/{}", self.prefix, epoch.0)
    }

    /// Every calibration epoch (`.../calib/*`): what a late joiner queries.
    #[must_use]
    pub fn calib_all(&self) -> String {
        format!("{}/calib/*", self.prefix)
    }

    /// The run's start and end messages (`.../run`).
    #[must_use]
    pub fn run(&self) -> String {
        format!("{}/run", self.prefix)
    }

    /// Every key of the run (`.../**`).
    #[must_use]
    pub fn all(&self) -> String {
        format!("{}/**", self.prefix)
    }

    /// The epoch a calibration key names, if `key` is one of this run's calibration keys.
    #[must_use]
    pub fn epoch_of(&self, key: &str) -> Option<CalibEpoch> {
        let rest = key.strip_prefix(&self.prefix)?.strip_prefix("/calib/")?;
        // Digits only: `+1` or ` 1` are not keys we publish.
        if rest.is_empty() || rest.len() > 20 || !rest.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        rest.parse().ok().map(CalibEpoch)
    }

    /// The sensor stream a frame key names, if `key` is one of this run's stream keys.
    #[must_use]
    pub fn stream_of(&self, key: &str) -> Option<StreamKind> {
        let rest = key.strip_prefix(&self.prefix)?.strip_prefix('/')?;
        [StreamKind::Camera, StreamKind::Lidar].into_iter().find(|k| k.name() == rest)
    }
}

/// The run id a key of any run belongs to (`epochfuse/<run-id>/...`), for a receiver that
/// does not know the run yet.
#[must_use]
pub fn run_id_of(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(ROOT)?.strip_prefix('/')?;
    let id = rest.split('/').next()?;
    Keys::new(id).ok().map(|_| id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_one_prefix_per_run() {
        let k = Keys::new("run-42_a.b").unwrap();
        assert_eq!(k.stream(StreamKind::Camera), "epochfuse/run-42_a.b/camera");
        assert_eq!(k.stream(StreamKind::Lidar), "epochfuse/run-42_a.b/lidar");
        assert_eq!(k.calib(CalibEpoch(7)), "epochfuse/run-42_a.b/calib/7");
        assert_eq!(k.calib_all(), "epochfuse/run-42_a.b/calib/*");
        assert_eq!(k.run(), "epochfuse/run-42_a.b/run");
        assert_eq!(k.epoch_of("epochfuse/run-42_a.b/calib/7"), Some(CalibEpoch(7)));
        assert_eq!(k.stream_of("epochfuse/run-42_a.b/lidar"), Some(StreamKind::Lidar));
        assert_eq!(run_id_of("epochfuse/run-42_a.b/run"), Some("run-42_a.b"));
    }

    #[test]
    fn keys_of_other_runs_and_odd_epochs_are_not_ours() {
        let k = Keys::new("a").unwrap();
        for key in
            ["epochfuse/b/calib/1", "epochfuse/a/calib/", "epochfuse/a/calib/+1", "epochfuse/a/calib/1/2"]
        {
            assert_eq!(k.epoch_of(key), None, "{key}");
        }
        assert_eq!(k.epoch_of("epochfuse/a/calib/99999999999999999999999"), None);
        assert_eq!(k.stream_of("epochfuse/a/fused"), None);
        assert_eq!(k.stream_of("epochfuse/ab/camera"), None);
    }

    #[test]
    fn run_ids_are_one_plain_chunk() {
        for bad in ["", "a/b", "*", "a*", "$x", "..", ".a", "a b", &"x".repeat(65)] {
            assert!(Keys::new(bad).is_err(), "{bad:?}");
        }
        assert!(Keys::new(&"x".repeat(64)).is_ok());
    }
}

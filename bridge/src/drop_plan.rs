//! A test-only knob: drop samples on purpose, to show the receiving side's counters and the
//! epoch gate at work. Set by the environment variable [`ENV`] of the publishing process,
//! `camera:N,lidar:M,calib:K` drops every Nth camera, Mth lidar and Kth calibration sample
//! (counting from 1). Unset, nothing is dropped.

use shared::StreamKind;

/// The environment variable.
pub const ENV: &str = "EPOCHFUSE_ZENOH_TEST_DROP";

/// What gets dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropPlan {
    every: [u64; 3],
    seen: [u64; 3],
}

/// What a sample is, for the plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum What {
    /// A frame of a stream.
    Frame(StreamKind),
    /// A calibration epoch.
    Calib,
}

impl DropPlan {
    /// Parses the knob's value.
    ///
    /// # Errors
    /// A one-line message naming the bad entry.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut plan = Self::default();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (name, n) = entry.split_once(':').ok_or_else(|| format!("{ENV}: {entry:?} is not NAME:N"))?;
            let i = match name {
                "camera" => 0,
                "lidar" => 1,
                "calib" => 2,
                _ => return Err(format!("{ENV}: {name:?} is not camera, lidar or calib")),
            };
            plan.every[i] = n
                .parse()
                .ok()
                .filter(|&n| n > 1)
                .ok_or_else(|| format!("{ENV}: {entry:?}: N must be an integer > 1"))?;
        }
        Ok(plan)
    }

    /// The plan from the environment (none if unset).
    ///
    /// # Errors
    /// As [`DropPlan::parse`].
    pub fn from_env() -> Result<Self, String> {
        std::env::var(ENV).map_or_else(|_| Ok(Self::default()), |v| Self::parse(&v))
    }

    /// Whether to drop the next sample of this kind.
    pub fn drop_next(&mut self, what: What) -> bool {
        let i = match what {
            What::Frame(StreamKind::Camera) => 0,
            What::Frame(_) => 1,
            What::Calib => 2,
        };
        self.seen[i] += 1;
        self.every[i] != 0 && self.seen[i].is_multiple_of(self.every[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_nth_is_dropped() {
        let mut p = DropPlan::parse("lidar:3, camera:2").unwrap();
        let l: Vec<bool> = (0..6).map(|_| p.drop_next(What::Frame(StreamKind::Lidar))).collect();
        assert_eq!(l, [false, false, true, false, false, true]);
        assert!(!p.drop_next(What::Calib));
        assert!(!p.drop_next(What::Frame(StreamKind::Camera)));
        assert!(p.drop_next(What::Frame(StreamKind::Camera)));
    }

    #[test]
    fn bad_knobs_are_one_line() {
        for bad in ["lidar", "lidar:0", "lidar:1", "radar:3", "lidar:x"] {
            assert!(DropPlan::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(DropPlan::parse("").unwrap(), DropPlan::default());
    }
}

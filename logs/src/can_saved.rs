//! A bag's CAN frames, saved by the process that read them at the door for the vehicle role
//! of the same run, which replays them without reading the bag again.
//!
//! The saved form is binary: the magic `EFCAN001`, then one 32-byte little-endian record per
//! frame in delivery order. Loading it is checking input: every record must be a frame
//! [`read_can`](crate::can::read_can) could have produced (data frame, `dlc` ≤ 8, identifier
//! in range for its kind, padding zero) and the frames in delivery order; anything else is
//! refused in one line naming the file.

use std::path::Path;

use shared::TimestampNs;
use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::can::CanFrameMsg;
use crate::LogError;

const MAGIC: &[u8; 8] = b"EFCAN001";

/// One frame as saved.
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct Record {
    sampled: U64,
    delivered: U64,
    id: U32,
    extended: u8,
    dlc: u8,
    pad: [u8; 2],
    data: [u8; 8],
}

const _: () = assert!(size_of::<Record>() == 32);

/// `frames` (in delivery order, as [`read_can`](crate::can::read_can) gives them) in their
/// saved form.
#[must_use]
pub fn save_frames(frames: &[CanFrameMsg]) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAGIC.len() + frames.len() * size_of::<Record>());
    out.extend_from_slice(MAGIC);
    for f in frames {
        let r = Record {
            sampled: U64::new(f.sampled.0),
            delivered: U64::new(f.delivered.0),
            id: U32::new(f.id),
            extended: u8::from(f.extended),
            dlc: f.dlc,
            pad: [0; 2],
            data: f.data,
        };
        out.extend_from_slice(r.as_bytes());
    }
    out
}

/// The frames saved by [`save_frames`], read from `file` as `bytes`.
///
/// # Errors
/// [`LogError::Input`], naming `file` and the record, if `bytes` are not saved frames.
pub fn load_frames(file: &Path, bytes: &[u8]) -> Result<Vec<CanFrameMsg>, LogError> {
    let refuse = |detail: String| LogError::Input {
        path: file.to_path_buf(),
        detail: format!("{}: {detail}", file.display()),
    };
    let body =
        bytes.strip_prefix(MAGIC).ok_or_else(|| refuse("not saved CAN frames (no EFCAN001)".into()))?;
    let records = <[Record]>::ref_from_bytes(body)
        .map_err(|_| refuse(format!("{} bytes of records, not a whole number of 32", body.len())))?;
    let mut frames = Vec::with_capacity(records.len());
    for (k, r) in records.iter().enumerate() {
        let (id, dlc) = (r.id.get(), r.dlc);
        let extended = match r.extended {
            0 => false,
            1 => true,
            v => return Err(refuse(format!("frame {k}: extended flag {v}"))),
        };
        if dlc > 8 || id > if extended { 0x1fff_ffff } else { 0x7ff } || r.pad != [0; 2] {
            return Err(refuse(format!("frame {k}: dlc {dlc} or id {id:#x} out of range")));
        }
        let f = CanFrameMsg {
            sampled: TimestampNs(r.sampled.get()),
            delivered: TimestampNs(r.delivered.get()),
            id,
            extended,
            dlc,
            data: r.data,
        };
        if frames.last().is_some_and(|p: &CanFrameMsg| p.delivered > f.delivered) {
            return Err(refuse(format!("frame {k}: out of delivery order")));
        }
        frames.push(f);
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(i: u64) -> CanFrameMsg {
        CanFrameMsg {
            sampled: TimestampNs(i * 1000),
            delivered: TimestampNs(i * 1000 + 7),
            id: (i as u32 * 37) & 0x7ff,
            extended: i.is_multiple_of(5),
            dlc: (i % 9) as u8,
            data: [i as u8; 8],
        }
    }

    #[test]
    fn saved_frames_load_back_the_same() {
        let frames: Vec<CanFrameMsg> = (0..300).map(frame).collect();
        let f = Path::new("can-frames.bin");
        assert_eq!(load_frames(f, &save_frames(&frames)).unwrap(), frames);
        assert_eq!(load_frames(f, &save_frames(&[])).unwrap(), []);
    }

    #[test]
    fn anything_else_is_refused_in_one_line() {
        let frames: Vec<CanFrameMsg> = (0..10).map(frame).collect();
        let good = save_frames(&frames);
        let f = Path::new("can-frames.bin");
        let edit = |at: usize, v: u8| {
            let mut b = good.clone();
            b[8 + at] = v;
            b
        };
        let cases: [(&str, Vec<u8>); 7] = [
            ("no EFCAN001", b"EFCAN002".to_vec()),
            ("not a whole number of 32", good[..good.len() - 1].to_vec()),
            ("frame 0: extended flag 2", edit(20, 2)),
            ("frame 0: dlc 9", edit(21, 9)),
            ("frame 1: dlc", edit(32 + 22, 1)),
            ("frame 1: dlc 1 or id 0x825", edit(32 + 17, 8)),
            ("frame 1: out of delivery order", save_frames(&[frame(1), frame(0)])),
        ];
        for (want, bytes) in cases {
            let e = load_frames(f, &bytes).expect_err(want).to_string();
            assert!(e.contains(want) && e.contains("can-frames.bin") && !e.contains('\n'), "{want}: {e}");
        }
    }
}

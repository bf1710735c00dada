//! The streaming pass: the file(s) read again, the planned frames handed out in time order.

use std::collections::HashMap;
use std::sync::Arc;

use shared::StreamKind;

use super::chunked::ChunkedStream;
use super::read::{bad, RawMsg};
use super::{McapIndex, Planned};
use crate::{ros, Body, LogError, LogFrame};

/// The streaming pass.
#[derive(Debug)]
pub(crate) struct McapFrames {
    index: Arc<McapIndex>,
    stream: ChunkedStream,
    next: usize,
    /// Messages read ahead of their turn, by ordinal.
    pending: HashMap<u64, RawMsgBox>,
    error_yielded: bool,
}

struct RawMsgBox(RawMsg);

impl std::fmt::Debug for RawMsgBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "message #{} on {}", self.0.ordinal, self.0.channel.topic)
    }
}

impl McapFrames {
    pub fn new(index: Arc<McapIndex>) -> Result<Self, LogError> {
        // Fail early if a file went away.
        for f in index.files.iter() {
            LogError::open_input(f, u64::MAX)?;
        }
        let stream = ChunkedStream::new(Arc::clone(&index.files))?;
        Ok(Self { index, stream, next: 0, pending: HashMap::new(), error_yielded: false })
    }

    fn fetch(&mut self, ordinal: u64) -> Result<RawMsg, LogError> {
        loop {
            if let Some(m) = self.pending.remove(&ordinal) {
                return Ok(m.0);
            }
            match self.stream.next() {
                Some(Ok(m)) => {
                    if self.index.wanted.binary_search(&m.ordinal).is_ok() {
                        // Bounded at open (plan::check_reorder); more means the file changed.
                        if self.pending.len() >= super::MAX_REORDER_MESSAGES {
                            return Err(LogError::missing(
                                &self.index.path,
                                format!("message #{ordinal} is not where the index put it: the file changed since it was opened"),
                            ));
                        }
                        self.pending.insert(m.ordinal, RawMsgBox(m));
                    }
                }
                Some(Err(e)) => return Err(e),
                None => {
                    return Err(LogError::missing(
                        &self.index.path,
                        format!("message #{ordinal} is gone: the file changed since it was opened"),
                    ))
                }
            }
        }
    }

    fn frame(&mut self, p: &Planned) -> Result<LogFrame, LogError> {
        let m = self.fetch(p.ordinal)?;
        let path = self.index.files[m.file].clone();
        let changed = |m: &RawMsg, topic: &str| {
            if m.channel.topic == topic {
                Ok(())
            } else {
                Err(bad(
                    &path,
                    m,
                    format!("expected a message on {topic}: the file changed since it was opened"),
                ))
            }
        };
        let name = format!("{}#{}", m.channel.topic, m.ordinal);
        let body = match p.stream {
            StreamKind::Lidar => {
                changed(&m, &self.index.lidar_topic)?;
                let (_, layout) = ros::parse_cloud(&m.data).map_err(|e| bad(&path, &m, e))?;
                Body::RosCloud { msg: m.data, layout }
            }
            // The plan holds lidar and camera frames only.
            _ => {
                changed(&m, &self.index.cameras[p.sensor].topic)?;
                let (_, layout) = ros::parse_image(&m.data).map_err(|e| bad(&path, &m, e))?;
                let labels = match p.labels {
                    Some(o) => {
                        let lm = self.fetch(o)?;
                        let (_, ll) = ros::parse_image(&lm.data).map_err(|e| bad(&path, &lm, e))?;
                        if (ll.width, ll.height) != (layout.width, layout.height)
                            || ll.encoding != ros::Encoding::Mono16
                        {
                            return Err(bad(
                                &path,
                                &lm,
                                format!(
                                    "label image is {}×{} {:?}, the camera image {}×{} (need mono16 of the same size)",
                                    ll.width, ll.height, ll.encoding, layout.width, layout.height
                                ),
                            ));
                        }
                        Some((lm.data, ll))
                    }
                    None => None,
                };
                Body::RosImage { msg: m.data, layout, labels }
            }
        };
        let sensor = if p.stream == StreamKind::Camera {
            self.index.cameras[p.sensor].name.clone()
        } else {
            self.index.lidar_name.clone()
        };
        Ok(LogFrame {
            stream: p.stream,
            sensor,
            stamp: p.stamp,
            epoch: p.epoch,
            index: p.index,
            recorded_epoch: p.recorded_epoch,
            name,
            body,
        })
    }

    pub fn next(&mut self) -> Option<Result<LogFrame, LogError>> {
        let Some(p) = self.index.planned.get(self.next).cloned() else {
            if self.error_yielded {
                return None;
            }
            self.error_yielded = true;
            return self.index.error.clone().map(Err);
        };
        self.next += 1;
        Some(self.frame(&p))
    }
}

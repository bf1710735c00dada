//! What a subscribed peer sends after its hello: the gatekeeper's verdict, and the epochs a
//! relay brings from another host.
//!
//! In `epochfuse remote` the calibration comes from the publishing host: the run's bridge
//! receives each epoch over the network and sends it here as an update message, which the
//! policy lets it do ([`SocketPolicy::relaying`](crate::policy::SocketPolicy::relaying)).
//! The service takes such an epoch as if its schedule had held it: decoded and checked like
//! any message, refused if it conflicts with a known epoch or goes back in epoch or
//! `valid_from`, then announced at once (table and subscribers, the bridge included, which
//! learns so that the epoch is known here). The message's own bytes are what the table and
//! the subscribers get: re-encoding the decoded set need not give the same rotation bits,
//! and a remote's fusion must see the very calibration the publisher's fusion saw.

use shared::{Role, TimestampNs};

use super::{CalibService, Epoch};
use crate::policy::Verdict;
use crate::types::CalibrationSet;
use crate::wire::{self, Message};

impl CalibService {
    /// Handles one message of subscribed peer `i` (`None`: an oversize packet). Returns
    /// `false` if the peer was dropped.
    pub(super) fn on_message(&mut self, i: usize, role: Role, bytes: Option<&[u8]>) -> bool {
        let msg = bytes.and_then(|b| wire::decode(b).ok());
        let p = &mut self.peers[i];
        match self.policy.inspect(msg.as_ref(), role, p.ids, self.ours) {
            Verdict::Ignore => self.stats.ignored_messages += 1,
            Verdict::Accept => {
                if let (Some(Message::Update(set)), Some(bytes)) = (msg, bytes) {
                    self.relay(set, bytes);
                }
            }
            Verdict::Refuse(r) => {
                tracing::warn!(pid = p.pid, "calibration service: {r}; peer dropped");
                p.dead = true;
                self.refuse(r);
                return false;
            }
        }
        true
    }

    /// Takes a relayed epoch (already decoded and checked), or ignores and counts it.
    fn relay(&mut self, set: CalibrationSet, bytes: &[u8]) {
        let why = match (self.epochs.iter().find(|e| e.set.epoch == set.epoch), self.epochs.last()) {
            // Sent again (a late joiner's table and the live stream may both bring it).
            (Some(known), _) if known.bytes == bytes => None,
            (Some(_), _) => Some("a different calibration under a known epoch".to_owned()),
            (None, Some(last)) if set.epoch < last.set.epoch || set.valid_from < last.set.valid_from => {
                Some(format!("older than epoch {} (valid from {} ns)", last.set.epoch, last.set.valid_from.0))
            }
            (None, _) => {
                tracing::info!(epoch = %set.epoch, valid_from_ns = set.valid_from.0, "calibration epoch relayed");
                self.epochs.push(Epoch {
                    set,
                    bytes: bytes.to_vec(),
                    due: TimestampNs(0),
                    announced_at: None,
                });
                self.stats.epochs_relayed += 1;
                return;
            }
        };
        if let Some(why) = why {
            tracing::warn!(epoch = %set.epoch, "calibration service: relayed epoch refused: {why}");
        }
        self.stats.ignored_messages += 1;
    }
}

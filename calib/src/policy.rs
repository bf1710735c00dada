//! The gatekeeper policy of the calibration socket: who may connect, as which role, and what
//! each peer may send.
//!
//! The kernel names every peer (`SO_PEERCRED`: uid, gid, pid), translated into the
//! service's user namespace: a peer in a user namespace that maps its ids onto ours shows up
//! with our ids; an id that has no mapping shows up as the overflow id (65534) and is refused
//! unless the policy lists it. The service asks [`SocketPolicy::admit`] when a peer
//! connects, [`SocketPolicy::admit_role`] when it says hello, and
//! [`SocketPolicy::inspect`] for every later message. Each refusal is counted by its
//! [`Refusal`] reason.
//!
//! # Format (`configs/calib/socket-policy.ron`)
//!
//! ```ron
//! SocketPolicy(
//!     subscribe: (same_user: true, uids: [], gids: []),   // who may connect and subscribe
//!     publish: (same_user: false, uids: [], gids: []),    // who may send a calibration
//!     roles: [camera, lidar, fusion, monitor, recorder],  // roles a subscriber may claim
//!     relays: [],                                         // roles whose updates are taken
//! )
//! ```
//!
//! Only the service publishes by design, so the default lets nobody else publish: a producer
//! that sends a calibration is refused ([`Refusal::PublishNotAllowed`]) and disconnected.
//!
//! One exception, never in the default: the calibration of `epochfuse remote` comes from
//! another host, through the run's bridge role. Its policy ([`SocketPolicy::relaying`])
//! admits the bridge, lets it publish, and names it a relay: its updates are taken as new
//! epochs ([`Verdict::Accept`]), checked by the service like any epoch, and announced.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use shared::Role;

use crate::file::CalibFileError;
use crate::wire::Message;

/// A set of principals: our own user, and listed uids and gids.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Principals {
    /// Processes running as the service's own uid.
    #[serde(default)]
    pub same_user: bool,
    /// Further uids (as the service's user namespace sees them).
    #[serde(default)]
    pub uids: Vec<u32>,
    /// Further gids (the peer's primary gid).
    #[serde(default)]
    pub gids: Vec<u32>,
}

impl Principals {
    /// Whether a peer with these ids is one of the set.
    #[must_use]
    pub fn contains(&self, peer: PeerIds, ours: PeerIds) -> bool {
        (self.same_user && peer.uid == ours.uid)
            || self.uids.contains(&peer.uid)
            || self.gids.contains(&peer.gid)
    }
}

/// A peer's ids as `SO_PEERCRED` gives them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerIds {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// Who may do what on the calibration socket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SocketPolicy {
    /// Who may connect and subscribe.
    pub subscribe: Principals,
    /// Who may send a calibration to the service.
    #[serde(default)]
    pub publish: Principals,
    /// The roles a subscriber may claim in its hello.
    pub roles: Vec<Role>,
    /// Roles whose updates, from a peer allowed to publish, the service takes as new epochs
    /// (the bridge of a remote run). When the list is not empty, other roles may not
    /// publish at all.
    #[serde(default)]
    pub relays: Vec<Role>,
}

impl Default for SocketPolicy {
    /// Same user only, nobody publishes, every subscribing role but the bridge (which
    /// subscribes in remote runs only, under [`SocketPolicy::relaying`]).
    fn default() -> Self {
        Self {
            subscribe: Principals { same_user: true, ..Principals::default() },
            publish: Principals::default(),
            roles: Role::ALL
                .into_iter()
                .filter(|r| r.subscribes_to_calibration() && *r != Role::Bridge)
                .collect(),
            relays: Vec::new(),
        }
    }
}

/// Why the gatekeeper refused a peer or a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// The kernel gave no credentials for the peer.
    NoCredentials,
    /// The peer's uid and gid are not allowed to subscribe.
    NotAllowed,
    /// The peer claimed a role the policy does not admit.
    RoleNotAllowed,
    /// The peer's first message was not a valid hello.
    BadHello,
    /// The peer sent a calibration without being allowed to publish.
    PublishNotAllowed,
    /// The peer sent a second hello, or bytes that are not a message.
    Unexpected,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NoCredentials => "no peer credentials",
            Self::NotAllowed => "peer not allowed to subscribe",
            Self::RoleNotAllowed => "role not allowed",
            Self::BadHello => "first message not a valid hello",
            Self::PublishNotAllowed => "peer not allowed to publish",
            Self::Unexpected => "unexpected message",
        })
    }
}

/// Refusals counted by reason (the summary's `calibration.refused`).
pub type RefusalCounts = BTreeMap<Refusal, u64>;

/// What the service does with a message from a subscribed peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Take the update as a new epoch (from a relay): the service checks it and announces it.
    Accept,
    /// Ignore it and keep the peer (a harmless message).
    Ignore,
    /// Refuse it and disconnect the peer.
    Refuse(Refusal),
}

impl SocketPolicy {
    /// This policy, plus `relay` as a relay of another host's epochs: it may subscribe, its
    /// user may publish, and its updates are taken. Only `relay` may publish then.
    #[must_use]
    pub fn relaying(mut self, relay: Role) -> Self {
        if !self.roles.contains(&relay) {
            self.roles.push(relay);
        }
        self.publish.same_user = true;
        self.relays.push(relay);
        self
    }

    /// Whether a connecting peer may stay until its hello.
    ///
    /// # Errors
    /// [`Refusal::NotAllowed`] when neither subscribing nor publishing is allowed to it.
    pub fn admit(&self, peer: PeerIds, ours: PeerIds) -> Result<(), Refusal> {
        if self.subscribe.contains(peer, ours) || self.publish.contains(peer, ours) {
            Ok(())
        } else {
            Err(Refusal::NotAllowed)
        }
    }

    /// Whether a peer may subscribe as `role`.
    ///
    /// # Errors
    /// [`Refusal::RoleNotAllowed`] for a role the policy does not list (or one that never
    /// subscribes), [`Refusal::NotAllowed`] for a publish-only peer.
    pub fn admit_role(&self, role: Role, peer: PeerIds, ours: PeerIds) -> Result<(), Refusal> {
        if !role.subscribes_to_calibration() || !self.roles.contains(&role) {
            return Err(Refusal::RoleNotAllowed);
        }
        if !self.subscribe.contains(peer, ours) {
            return Err(Refusal::NotAllowed);
        }
        Ok(())
    }

    /// What to do with a message a peer subscribed as `role` sent after its hello.
    #[must_use]
    pub fn inspect(&self, msg: Option<&Message>, role: Role, peer: PeerIds, ours: PeerIds) -> Verdict {
        let relay = self.relays.contains(&role);
        match msg {
            Some(Message::Update(_))
                if !self.publish.contains(peer, ours) || (!self.relays.is_empty() && !relay) =>
            {
                Verdict::Refuse(Refusal::PublishNotAllowed)
            }
            Some(Message::Update(_)) if relay => Verdict::Accept,
            // An allowed publisher's update is still not taken: epochs come from the
            // service's own schedule. It is ignored and counted, not obeyed.
            Some(Message::Update(_)) => Verdict::Ignore,
            Some(Message::Hello(_)) | None => Verdict::Refuse(Refusal::Unexpected),
        }
    }

    /// Checks the policy's own consistency (the part `calib check` adds to parsing).
    ///
    /// # Errors
    /// `(field, reason)` of the first problem.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if let Some(r) = self.roles.iter().find(|r| !r.subscribes_to_calibration()) {
            return Err(("roles".into(), format!("{r} never subscribes to calibration")));
        }
        if let Some(r) = self.relays.iter().find(|r| !self.roles.contains(r)) {
            return Err(("relays".into(), format!("{r} is not one of `roles`: it could not say hello")));
        }
        let s = &self.subscribe;
        if !s.same_user && s.uids.is_empty() && s.gids.is_empty() {
            return Err(("subscribe".into(), "admits nobody: no role could subscribe".into()));
        }
        Ok(())
    }
}

/// Reads and checks a policy file: the library side of `epochfuse calib check POLICY.ron`.
///
/// # Errors
/// [`CalibFileError`]: one line naming the file, the field and, for syntax, line:column.
pub fn check_policy_file(path: &std::path::Path) -> Result<SocketPolicy, CalibFileError> {
    let src = crate::file::read_source(path)?;
    let policy: SocketPolicy = crate::file::parse_ron(&src, path)?;
    policy.validate().map_err(|(field, reason)| CalibFileError {
        path: path.to_path_buf(),
        position: crate::ron_path::locate_field(&src, &field),
        field: Some(field),
        message: reason,
    })?;
    Ok(policy)
}

/// Whether RON text is a policy rather than a rig (its top-level struct name).
#[must_use]
pub fn is_policy_text(src: &str) -> bool {
    src.lines()
        .map(|l| l.split("//").next().unwrap_or("").trim())
        .find(|l| !l.is_empty())
        .is_some_and(|l| l.starts_with("SocketPolicy"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: PeerIds = PeerIds { uid: 1000, gid: 1000 };
    const OTHER: PeerIds = PeerIds { uid: 1001, gid: 1001 };
    const OVERFLOW: PeerIds = PeerIds { uid: 65534, gid: 65534 };

    #[test]
    fn default_admits_our_user_only() {
        let p = SocketPolicy::default();
        assert_eq!(p.admit(US, US), Ok(()));
        assert_eq!(p.admit(OTHER, US), Err(Refusal::NotAllowed));
        assert_eq!(p.admit(OVERFLOW, US), Err(Refusal::NotAllowed));
        assert_eq!(p.admit_role(Role::Fusion, US, US), Ok(()));
        assert_eq!(p.admit_role(Role::Calib, US, US), Err(Refusal::RoleNotAllowed));
    }

    #[test]
    fn listed_ids_and_roles_are_honoured() {
        let p = SocketPolicy {
            subscribe: Principals { same_user: false, uids: vec![], gids: vec![1001] },
            publish: Principals::default(),
            roles: vec![Role::Monitor],
            relays: Vec::new(),
        };
        assert_eq!(p.admit(OTHER, US), Ok(()));
        assert_eq!(p.admit(US, US), Err(Refusal::NotAllowed));
        assert_eq!(p.admit_role(Role::Monitor, OTHER, US), Ok(()));
        assert_eq!(p.admit_role(Role::Camera, OTHER, US), Err(Refusal::RoleNotAllowed));
    }

    #[test]
    fn a_producer_never_publishes() {
        let p = SocketPolicy::default();
        let update = Message::Update(crate::file::default_rig());
        assert_eq!(
            p.inspect(Some(&update), Role::Camera, US, US),
            Verdict::Refuse(Refusal::PublishNotAllowed)
        );
        assert_eq!(
            p.inspect(Some(&update), Role::Bridge, US, US),
            Verdict::Refuse(Refusal::PublishNotAllowed)
        );
        assert_eq!(p.inspect(None, Role::Camera, US, US), Verdict::Refuse(Refusal::Unexpected));
        assert_eq!(
            p.inspect(Some(&Message::Hello(shared::Role::Camera)), Role::Camera, US, US),
            Verdict::Refuse(Refusal::Unexpected)
        );
        // The bridge subscribes only where a policy says so.
        assert_eq!(p.admit_role(Role::Bridge, US, US), Err(Refusal::RoleNotAllowed));
    }

    #[test]
    fn a_remote_run_takes_updates_from_its_bridge_only() {
        let p = SocketPolicy::default().relaying(Role::Bridge);
        p.validate().unwrap();
        let update = Message::Update(crate::file::default_rig());
        assert_eq!(p.admit_role(Role::Bridge, US, US), Ok(()));
        assert_eq!(p.inspect(Some(&update), Role::Bridge, US, US), Verdict::Accept);
        // Another user's bridge may not publish; nor may any other role of ours.
        assert_eq!(
            p.inspect(Some(&update), Role::Bridge, OTHER, US),
            Verdict::Refuse(Refusal::PublishNotAllowed)
        );
        assert_eq!(
            p.inspect(Some(&update), Role::Fusion, US, US),
            Verdict::Refuse(Refusal::PublishNotAllowed)
        );
        assert_eq!(p.inspect(None, Role::Bridge, US, US), Verdict::Refuse(Refusal::Unexpected));
        // Without relays, an allowed publisher's update is ignored, as before.
        let ignoring = SocketPolicy {
            publish: Principals { same_user: true, ..Principals::default() },
            ..SocketPolicy::default()
        };
        assert_eq!(ignoring.inspect(Some(&update), Role::Fusion, US, US), Verdict::Ignore);
        let bad = SocketPolicy { relays: vec![Role::Bridge], ..SocketPolicy::default() };
        assert_eq!(bad.validate().unwrap_err().0, "relays");
    }

    #[test]
    fn the_shipped_default_policy_is_the_built_in_one() {
        let src = include_str!("../../configs/calib/socket-policy.ron");
        let shipped: SocketPolicy = ron::from_str(src).unwrap();
        assert_eq!(shipped, SocketPolicy::default());
        assert!(is_policy_text(src));
    }

    #[test]
    fn policy_parses_from_ron_and_validates() {
        let src = "SocketPolicy(subscribe: (same_user: true), roles: [camera, Lidar, fusion])";
        let p: SocketPolicy = ron::from_str(src).unwrap();
        assert_eq!(p.roles, vec![Role::Camera, Role::Lidar, Role::Fusion]);
        p.validate().unwrap();
        let nobody = SocketPolicy { subscribe: Principals::default(), ..p.clone() };
        assert_eq!(nobody.validate().unwrap_err().0, "subscribe");
        let calib = SocketPolicy { roles: vec![Role::Calib], ..p };
        assert_eq!(calib.validate().unwrap_err().0, "roles");
    }
}

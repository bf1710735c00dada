//! Opening a Zenoh session for a run: multicast scouting and gossip off (unless a config file
//! says otherwise), one TCP endpoint, listening (publisher, a peer) or connecting (remote, a
//! client).

use zenoh::Wait as _;

use crate::error::CliError;
use crate::pipeline::spec::ZenohSpec;

/// Which side of the endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The publishing run: listens on the endpoint.
    Listen,
    /// A remote: connects to it.
    Connect,
}

fn set(c: &mut zenoh::Config, key: &str, value: &str) -> Result<(), CliError> {
    c.insert_json5(key, value).map_err(|e| CliError::input(format!("zenoh config {key}: {e}")))
}

/// Opens the session.
///
/// # Errors
/// Exit 2 for a config file Zenoh refuses or an endpoint it cannot use (port taken,
/// nobody listening).
pub fn open(net: &ZenohSpec, side: Side) -> Result<zenoh::Session, CliError> {
    let mut c = match &net.config {
        Some(path) => zenoh::Config::from_file(path)
            .map_err(|e| CliError::input(format!("--zenoh-config: {}: {e}", path.display())))?,
        None => {
            let mut c = zenoh::Config::default();
            set(&mut c, "scouting/multicast/enabled", "false")?;
            set(&mut c, "scouting/gossip/enabled", "false")?;
            c
        }
    };
    let endpoints = serde_json::to_string(&[&net.endpoint]).unwrap_or_default();
    match side {
        Side::Listen => {
            set(&mut c, "mode", "\"peer\"")?;
            set(&mut c, "listen/endpoints", &endpoints)?;
        }
        Side::Connect => {
            set(&mut c, "mode", "\"client\"")?;
            set(&mut c, "connect/endpoints", &endpoints)?;
        }
    }
    zenoh::open(c).wait().map_err(|e| CliError::input(format!("zenoh {}: {e}", net.endpoint)))
}

/// A Zenoh error as the role's one line (exit 3: the session broke under a run).
pub fn broke(what: &str, e: &zenoh::Error) -> CliError {
    CliError::internal(format!("zenoh {what}: {e}"))
}

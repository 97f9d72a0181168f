//! Changes to what nodes hold in memory, announced so that every node of a cluster drops its
//! stale copies.
//!
//! Every node keeps views of the store in memory (key records, the set of known key digests,
//! root keys, rate-limit overrides) so the hot path never waits on the store. A node that
//! changes something applies the change to its own views and announces it on a
//! [`ChangeFeed`]; the feed delivers it to every other node, which applies it the same way.
//! A feed that may have lost announcements (a dropped connection) says so, and nodes then
//! reload everything: a full resync.

use std::fmt;

use async_trait::async_trait;

use crate::digest::KeyDigest;
use crate::id::{NamespaceId, WorkspaceId};
use crate::time::UnixMillis;

/// One change other nodes must apply to their views.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A key with this digest was stored: it can now be presented.
    KeyAdded(KeyDigest),
    /// The key with this digest changed (updated, disabled, soft-deleted, credits set, …).
    KeyChanged(KeyDigest),
    /// The key with this digest is gone from the store.
    KeyRemoved(KeyDigest),
    /// Something many keys share changed (a role's permissions, a deleted permission).
    AllKeysChanged,
    /// A root key was created, changed or revoked.
    RootKeysChanged,
    /// The overrides of a rate-limit namespace changed.
    OverridesChanged {
        workspace: WorkspaceId,
        namespace: NamespaceId,
    },
}

/// Why an announcement could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed change announcement: {0}")]
pub struct MalformedChange(String);

impl Change {
    /// The change as one line of text, the form feeds carry.
    pub fn encode(&self) -> String {
        match self {
            Self::KeyAdded(d) => format!("key+ {}", d.to_base64()),
            Self::KeyChanged(d) => format!("key~ {}", d.to_base64()),
            Self::KeyRemoved(d) => format!("key- {}", d.to_base64()),
            Self::AllKeysChanged => "keys~".to_owned(),
            Self::RootKeysChanged => "rootkeys~".to_owned(),
            Self::OverridesChanged {
                workspace,
                namespace,
            } => format!("overrides~ {workspace} {namespace}"),
        }
    }

    pub fn decode(text: &str) -> Result<Self, MalformedChange> {
        let malformed = || MalformedChange(text.chars().take(100).collect());
        let mut words = text.split(' ');
        let kind = words.next().unwrap_or_default();
        let mut arg = || words.next().ok_or_else(malformed);
        let digest = |s: &str| KeyDigest::from_base64(s).map_err(|_| malformed());
        let change = match kind {
            "key+" => Self::KeyAdded(digest(arg()?)?),
            "key~" => Self::KeyChanged(digest(arg()?)?),
            "key-" => Self::KeyRemoved(digest(arg()?)?),
            "keys~" => Self::AllKeysChanged,
            "rootkeys~" => Self::RootKeysChanged,
            "overrides~" => {
                let workspace = WorkspaceId::parse(arg()?).map_err(|_| malformed())?;
                let namespace = NamespaceId::parse(arg()?).map_err(|_| malformed())?;
                Self::OverridesChanged {
                    workspace,
                    namespace,
                }
            }
            _ => return Err(malformed()),
        };
        if words.next().is_some() {
            return Err(malformed());
        }
        Ok(change)
    }
}

/// What a feed delivers to the node that subscribed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedEvent {
    /// Another node made this change.
    Changed(Change),
    /// The feed is listening again after losing its connection: announcements
    /// made meanwhile may be lost, so the node must reload all its views.
    Resync,
    /// The feed lost its connection; announcements from now on may be missed until
    /// [`FeedEvent::Resync`].
    Disconnected,
}

/// Receives a feed's events. Called from the feed's own task: implementations hand the event
/// on quickly rather than doing I/O in the call.
pub trait ChangeSink: Send + Sync {
    fn deliver(&self, event: FeedEvent);
}

/// Whether a feed currently hears other nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedState {
    /// There are no other nodes to hear (a single node on an embedded store).
    Standalone,
    Connected,
    /// Not listening since this moment.
    Disconnected {
        since: UnixMillis,
    },
}

/// A failure to announce a change.
#[derive(Debug, thiserror::Error)]
#[error("could not announce changes to other nodes")]
pub struct FeedError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// Carries changes between the nodes sharing one store.
#[async_trait]
pub trait ChangeFeed: Send + Sync {
    /// A name for health reports: `"postgres"`, `"none"`.
    fn kind(&self) -> &'static str;
    /// Tells every other node about `changes`, which this node has applied already.
    async fn publish(&self, changes: &[Change]) -> Result<(), FeedError>;
    /// Starts delivering other nodes' changes to `sink`; called once, before serving.
    fn subscribe(&self, sink: std::sync::Arc<dyn ChangeSink>);
    fn state(&self) -> FeedState;
}

/// The feed of a node that is alone with its store: nothing to tell, nothing to hear.
#[derive(Debug, Default)]
pub struct Standalone;

#[async_trait]
impl ChangeFeed for Standalone {
    fn kind(&self) -> &'static str {
        "none"
    }

    async fn publish(&self, _changes: &[Change]) -> Result<(), FeedError> {
        Ok(())
    }

    fn subscribe(&self, _sink: std::sync::Arc<dyn ChangeSink>) {}

    fn state(&self) -> FeedState {
        FeedState::Standalone
    }
}

impl fmt::Display for FeedState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Standalone => f.write_str("standalone"),
            Self::Connected => f.write_str("connected"),
            Self::Disconnected { .. } => f.write_str("disconnected"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_change_survives_encoding() {
        let digest = KeyDigest::of("kw_example_key");
        let changes = [
            Change::KeyAdded(digest),
            Change::KeyChanged(digest),
            Change::KeyRemoved(digest),
            Change::AllKeysChanged,
            Change::RootKeysChanged,
            Change::OverridesChanged {
                workspace: WorkspaceId::generate(UnixMillis::from_millis(1)),
                namespace: NamespaceId::generate(UnixMillis::from_millis(2)),
            },
        ];
        for change in changes {
            let text = change.encode();
            assert_eq!(Change::decode(&text), Ok(change), "{text}");
        }
    }

    #[test]
    fn malformed_announcements_are_refused() {
        for text in [
            "",
            "key+",
            "key+ not-base64!",
            "keys~ extra",
            "overrides~ ws_1",
            "delete everything",
        ] {
            assert!(Change::decode(text).is_err(), "{text:?} was accepted");
        }
    }
}

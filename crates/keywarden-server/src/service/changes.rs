//! Keeping this node's in-memory views coherent with the store and with the other nodes.
//!
//! Every write that changes something a view holds ends in [`Keywarden::announce`]: the node
//! applies the change to its own views, then publishes it on the change feed for the others,
//! which apply it through [`Keywarden::apply`]. Applying only drops cached entries or adds a
//! digest to the set of known keys, so a change applied by a node that never cached the thing
//! does no harm; at worst a stray known digest costs one store lookup that finds nothing.

use std::sync::Arc;

use keywarden_core::change::{Change, ChangeSink, FeedEvent, FeedState};
use keywarden_core::store::StoreResult;
use keywarden_core::time::UnixMillis;
use tokio::sync::{Notify, mpsc};

use super::Keywarden;

impl Keywarden {
    /// Applies `changes` here and tells the other nodes. A failure to tell them is logged,
    /// not returned: the write it follows is committed, and nodes that missed the
    /// announcement because their feed was down resync when it returns.
    pub(crate) async fn announce(&self, changes: Vec<Change>) {
        if changes.is_empty() {
            return;
        }
        for change in &changes {
            self.apply(change);
        }
        if let Err(e) = self.feed.publish(&changes).await {
            tracing::error!(error = ?e, changes = changes.len(), "could not announce changes to other nodes");
        }
    }

    /// Applies a change made here or on another node to this node's views.
    pub fn apply(&self, change: &Change) {
        match change {
            Change::KeyAdded(digest) => self.keys.added(digest),
            Change::KeyChanged(digest) => self.keys.changed(digest),
            Change::KeyRemoved(digest) => self.keys.removed(digest),
            Change::AllKeysChanged => self.keys.changed_all(),
            Change::RootKeysChanged => self.root_keys_changed.notify_one(),
            Change::OverridesChanged {
                workspace,
                namespace,
            } => self.namespaces.forget(workspace, namespace),
        }
    }

    /// Reloads every view from the store, after the feed may have lost announcements.
    pub async fn resync(&self) -> StoreResult<()> {
        self.keys.changed_all();
        let known = self.keys.load_known(self.store.as_ref()).await?;
        self.namespaces.clear();
        self.refresh_root_keys().await?;
        self.resyncs
            .fetch_add(1, std::sync::atomic::Ordering::Release);
        tracing::info!(
            known_keys = known,
            "views reloaded from the store: the change feed (re)connected"
        );
        Ok(())
    }

    /// How many full resyncs completed since start; the first follows the feed's first
    /// connection.
    pub fn resyncs(&self) -> u64 {
        self.resyncs.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Whether cached records may answer: always, unless the feed has been deaf for longer
    /// than the configured staleness bound, in which case every lookup asks the store.
    pub fn cache_trusted(&self, now: UnixMillis) -> bool {
        match self.feed.state() {
            FeedState::Standalone | FeedState::Connected => true,
            FeedState::Disconnected { since } => {
                now.as_millis().saturating_sub(since.as_millis()) <= self.max_stale_ms
            }
        }
    }

    /// Wakes when a root-key change was announced, so the directory reloads at once rather
    /// than at the next poll.
    pub fn root_keys_changed(&self) -> &Notify {
        &self.root_keys_changed
    }
}

/// Hands feed events to the task that applies them, in order.
pub struct ChannelSink(mpsc::UnboundedSender<FeedEvent>);

impl ChannelSink {
    pub fn new() -> (Arc<Self>, mpsc::UnboundedReceiver<FeedEvent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Arc::new(Self(tx)), rx)
    }
}

impl ChangeSink for ChannelSink {
    fn deliver(&self, event: FeedEvent) {
        // The receiver lives as long as the server; after shutdown events have no audience.
        let _ = self.0.send(event);
    }
}

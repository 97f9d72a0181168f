//! The change feed of nodes sharing one PostgreSQL database: `NOTIFY` to announce,
//! `LISTEN` to hear.
//!
//! PostgreSQL delivers a notification to every session listening on its channel, in commit
//! order, within a millisecond or so on a local network; that is all the coherence a node's
//! views need, and it costs no other service. Notifications are not stored, so a node that was
//! not listening misses them: whenever the listening connection is (re)established the feed
//! asks for a full resync.
//!
//! A connection can die quietly (a network partition sends no reset), so the feed also sends
//! itself a heartbeat every second and treats three seconds without hearing anything as a
//! lost connection.
//!
//! The channel is named after the database schema, so several installations (or test runs)
//! sharing one database in different schemas do not hear each other.
//!
//! The feed keeps its own few connections, apart from the store's pool, so a node whose
//! store is saturated with requests still announces, hears and heartbeats on time.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use keywarden_core::change::{Change, ChangeFeed, ChangeSink, FeedError, FeedEvent, FeedState};
use keywarden_core::time::{Clock, UnixMillis};
use sqlx::PgPool;
use sqlx::postgres::{PgListener, PgPoolOptions};
use tokio::task::JoinHandle;

/// How often a node sends itself a heartbeat.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// Silence after which the listening connection is presumed dead.
const SILENCE_LIMIT: Duration = Duration::from_secs(3);
/// Pause between attempts to listen again.
const RETRY: Duration = Duration::from_millis(500);
/// PostgreSQL refuses payloads of 8000 bytes or more; announcements are split below that.
const MAX_PAYLOAD: usize = 7_000;
/// `down_since` while connected.
const CONNECTED: i64 = i64::MIN;
/// The feed's own connections: the listener's, and one for announcements and heartbeats.
const FEED_CONNECTIONS: u32 = 2;

pub struct PostgresFeed {
    pool: PgPool,
    clock: Arc<dyn Clock>,
    channel: String,
    /// Tells this node's own announcements (and heartbeats) apart from other nodes'.
    node: String,
    /// When the listener lost its connection, or [`CONNECTED`].
    down_since: Arc<AtomicI64>,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

impl PostgresFeed {
    /// A feed on the database (and schema) `store_pool` connects to, over connections of its
    /// own, on the channel of that schema.
    pub async fn new(store_pool: PgPool, clock: Arc<dyn Clock>) -> Result<Self, sqlx::Error> {
        let options = store_pool.connect_options().as_ref().clone();
        let pool = PgPoolOptions::new()
            .max_connections(FEED_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(3))
            .connect_lazy_with(options);
        let schema: String = sqlx::query_scalar("SELECT current_schema()::text")
            .fetch_one(&pool)
            .await?;
        let mut node = [0u8; 8];
        keywarden_core::random::fill(&mut node);
        let since = clock.now().as_millis();
        Ok(Self {
            pool,
            clock,
            channel: channel_name(&schema),
            node: node.iter().map(|b| format!("{b:02x}")).collect(),
            down_since: Arc::new(AtomicI64::new(since)),
            tasks: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// Sends `payload` as one notification.
    async fn notify(&self, payload: &str) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(&self.channel)
            .bind(payload)
            .execute(&self.pool)
            .await
            .map(|_| ())
    }
}

impl Drop for PostgresFeed {
    fn drop(&mut self) {
        let tasks = self.tasks.get_mut().unwrap_or_else(|e| e.into_inner());
        for task in tasks.drain(..) {
            task.abort();
        }
    }
}

#[async_trait]
impl ChangeFeed for PostgresFeed {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    async fn publish(&self, changes: &[Change]) -> Result<(), FeedError> {
        for payload in payloads(&self.node, changes) {
            self.notify(&payload)
                .await
                .map_err(|e| FeedError(Box::new(e)))?;
        }
        Ok(())
    }

    fn subscribe(&self, sink: Arc<dyn ChangeSink>) {
        let listening = tokio::spawn(listen(Listening {
            pool: self.pool.clone(),
            clock: Arc::clone(&self.clock),
            channel: self.channel.clone(),
            node: self.node.clone(),
            down_since: Arc::clone(&self.down_since),
            sink,
        }));
        let heartbeat = {
            let (pool, channel) = (self.pool.clone(), self.channel.clone());
            let beat = format!("{} ping", self.node);
            tokio::spawn(async move {
                let mut interval = tokio::time::interval(HEARTBEAT);
                loop {
                    interval.tick().await;
                    // A failure shows as silence on the listener, which handles it.
                    let _ = sqlx::query("SELECT pg_notify($1, $2)")
                        .bind(&channel)
                        .bind(&beat)
                        .execute(&pool)
                        .await;
                }
            })
        };
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.extend([listening, heartbeat]);
    }

    fn state(&self) -> FeedState {
        match self.down_since.load(Ordering::Acquire) {
            CONNECTED => FeedState::Connected,
            since => FeedState::Disconnected {
                since: UnixMillis::from_millis(since),
            },
        }
    }
}

/// What the listening task works with.
struct Listening {
    pool: PgPool,
    clock: Arc<dyn Clock>,
    channel: String,
    node: String,
    down_since: Arc<AtomicI64>,
    sink: Arc<dyn ChangeSink>,
}

/// Listens until the task is aborted: connects, resyncs, delivers, and starts over whenever
/// the connection is lost or silent.
async fn listen(l: Listening) {
    loop {
        let mut listener = match connect(&l.pool, &l.channel).await {
            Ok(listener) => listener,
            Err(e) => {
                tracing::debug!(error = ?e, "cannot listen for changes yet");
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        l.down_since.store(CONNECTED, Ordering::Release);
        tracing::info!(channel = %l.channel, "listening for changes from other nodes");
        // Whatever was announced while nobody listened is lost: reload.
        l.sink.deliver(FeedEvent::Resync);
        loop {
            match tokio::time::timeout(SILENCE_LIMIT, listener.try_recv()).await {
                Ok(Ok(Some(notification))) => deliver(&l, notification.payload()),
                Ok(Ok(None)) => {
                    tracing::warn!("change feed connection lost");
                    break;
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = ?e, "change feed failed");
                    break;
                }
                Err(_) => {
                    tracing::warn!("change feed silent for too long; reconnecting");
                    break;
                }
            }
        }
        l.down_since
            .store(l.clock.now().as_millis(), Ordering::Release);
        l.sink.deliver(FeedEvent::Disconnected);
        drop(listener);
        tokio::time::sleep(RETRY).await;
    }
}

async fn connect(pool: &PgPool, channel: &str) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(channel).await?;
    Ok(listener)
}

/// Hands on the changes in a notification from another node; skips this node's own.
fn deliver(l: &Listening, payload: &str) {
    let Some((node, body)) = payload.split_once(' ') else {
        return;
    };
    if node == l.node || body == "ping" {
        return;
    }
    for line in body.lines() {
        match Change::decode(line) {
            Ok(change) => l.sink.deliver(FeedEvent::Changed(change)),
            Err(e) => tracing::warn!(error = %e, "ignored an unreadable change announcement"),
        }
    }
}

/// `changes` as notification payloads of `<node> <change>\n<change>…`, each under the size
/// PostgreSQL accepts.
fn payloads(node: &str, changes: &[Change]) -> Vec<String> {
    let mut payloads = Vec::new();
    let mut current = String::new();
    for change in changes {
        let line = change.encode();
        if !current.is_empty() && current.len() + 1 + line.len() > MAX_PAYLOAD {
            payloads.push(std::mem::take(&mut current));
        }
        if current.is_empty() {
            current.push_str(node);
            current.push(' ');
        } else {
            current.push('\n');
        }
        current.push_str(&line);
    }
    if !current.is_empty() {
        payloads.push(current);
    }
    payloads
}

/// The channel of one schema's installation; PostgreSQL truncates identifiers at 63 bytes.
fn channel_name(schema: &str) -> String {
    let mut name = format!("keywarden_changes_{schema}");
    while name.len() > 63 {
        name.pop();
    }
    name
}

#[cfg(test)]
mod tests {
    use keywarden_core::digest::KeyDigest;

    use super::*;

    #[test]
    fn many_changes_are_split_into_payloads_postgres_accepts() {
        let changes: Vec<Change> = (0..500)
            .map(|i| Change::KeyChanged(KeyDigest::of(&format!("key {i}"))))
            .collect();
        let payloads = payloads("node1", &changes);
        assert!(payloads.len() > 1);
        let mut decoded = Vec::new();
        for payload in &payloads {
            assert!(payload.len() <= MAX_PAYLOAD, "{}", payload.len());
            let (node, body) = payload.split_once(' ').unwrap();
            assert_eq!(node, "node1");
            decoded.extend(body.lines().map(|l| Change::decode(l).unwrap()));
        }
        assert_eq!(decoded, changes);
    }

    #[test]
    fn channel_names_fit_postgres_identifiers() {
        assert_eq!(channel_name("public"), "keywarden_changes_public");
        assert_eq!(channel_name(&"s".repeat(100)).len(), 63);
    }
}

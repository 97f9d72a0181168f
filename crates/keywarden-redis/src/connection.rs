//! The limiter's connection to Redis: one connection that concurrent calls share, to a single
//! endpoint or to a Redis Cluster, replaced when it stops answering.
//!
//! To one endpoint it is a `ConnectionManager`, one multiplexed connection. To a cluster it is
//! the `redis` crate's cluster connection: one multiplexed connection per node, each command
//! sent to the node that holds its keys' slot, following `MOVED` and `ASK` redirections and
//! learning the new slot map when slots move. Both run any command, so the limiter's scripts
//! are invoked the same way on either.
//!
//! Both reconnect by themselves after a dropped connection, but not after one that is still
//! open and silent (a half-open TCP connection, a proxy that stopped forwarding, a hung node):
//! their calls just time out. So a call that times out replaces the connection with a fresh
//! one, once per connection, however many calls timed out on it together; but not one made
//! less than the connect timeout ago. That one may still be connecting, which the connect
//! timeout bounds by itself, and starting over would not make it faster. On a cluster it
//! matters: a fresh connection is ready once it has tried every node, so while one node hangs
//! it is ready only after the connect timeout, and then decides the counters of every other
//! node. Replaced at every timeout, it would never get there.
//!
//! On a cluster, a call may be sent more than once: after a redirection, which the node answers
//! without running the script, and after a connection that dropped while the call was under
//! way, which Redis may have run. So a call cut off mid-way may be counted twice: it can make
//! a counter deny early, never admit past its limit. On one endpoint such a call fails instead,
//! and whether it was counted is just as unknown.

use std::future::Future;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::Slot;
use redis::{Client, Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, Value};

use crate::address::RedisAddress;
use crate::error::RedisCallError;

pub(crate) struct RedisConnection {
    deployment: Deployment,
    timeout: Duration,
    connect_timeout: Duration,
    current: Mutex<Current>,
}

struct Current {
    link: Link,
    /// Counts replacements, so that a call replaces only the connection it used.
    generation: u64,
    made: Instant,
}

/// What a fresh connection is made from.
enum Deployment {
    Single {
        client: Client,
        config: ConnectionManagerConfig,
    },
    Cluster {
        client: ClusterClient,
        config: ClusterConfig,
    },
}

/// The connection one call runs on: cheap to clone, shared by every call in flight.
#[derive(Clone)]
pub(crate) enum Link {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// How many times the cluster connection sends a command again: after a redirection (`MOVED`
/// or `ASK`, a slot that moved), a `TRYAGAIN` or `CLUSTERDOWN` during a failover, or a dropped
/// connection. A few cover a slot that moves during a call; the call timeout bounds them all.
const CLUSTER_RETRIES: u32 = 3;

impl RedisConnection {
    /// A connection that is established on first use; fails only on an invalid URL.
    pub fn lazy(url: &str, timeout: Duration, connect_timeout: Duration) -> RedisResult<Self> {
        let deployment = match RedisAddress::parse(url)? {
            RedisAddress::Single(url) => Deployment::Single {
                client: Client::open(url)?,
                config: ConnectionManagerConfig::new()
                    .set_response_timeout(Some(timeout))
                    .set_connection_timeout(Some(connect_timeout))
                    // One attempt per reconnection: the next call starts another, and a caller
                    // never waits through a backoff it cannot see the end of.
                    .set_number_of_retries(0),
            },
            RedisAddress::Cluster { seeds } => {
                // Waits between retries fit within one call, so a failover that ends during
                // the call lets it through rather than waiting past its timeout.
                let max_wait = u64::try_from(timeout.as_millis() / 4).unwrap_or(u64::MAX);
                let client = ClusterClient::builder(seeds)
                    .connection_timeout(connect_timeout)
                    .response_timeout(timeout)
                    .overall_response_timeout(Some(timeout))
                    .retries(CLUSTER_RETRIES)
                    .min_retry_wait(1)
                    .max_retry_wait(max_wait.max(2))
                    .build()?;
                let config = ClusterConfig::new()
                    .set_connection_timeout(connect_timeout)
                    .set_response_timeout(timeout);
                Deployment::Cluster { client, config }
            }
        };
        let link = deployment.connect_lazily()?;
        Ok(Self {
            deployment,
            timeout,
            connect_timeout,
            current: Mutex::new(Current {
                link,
                generation: 0,
                made: Instant::now(),
            }),
        })
    }

    /// Whether this is a Redis Cluster, where one script may touch keys of one slot only.
    pub fn is_cluster(&self) -> bool {
        matches!(self.deployment, Deployment::Cluster { .. })
    }

    /// Runs `call` on the current connection within the call timeout.
    pub async fn run<T, F, Fut>(&self, call: F) -> Result<T, RedisCallError>
    where
        F: FnOnce(Link) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        self.run_within(self.timeout, call).await
    }

    /// Runs `call` on the current connection within `timeout`.
    pub async fn run_within<T, F, Fut>(
        &self,
        timeout: Duration,
        call: F,
    ) -> Result<T, RedisCallError>
    where
        F: FnOnce(Link) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let (link, generation) = {
            let current = self.current.lock();
            (current.link.clone(), current.generation)
        };
        match tokio::time::timeout(timeout, call(link)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => {
                // The connection's own response timeout, a little earlier than ours.
                if error.is_timeout() {
                    self.replace(generation);
                }
                Err(RedisCallError::Redis(error))
            }
            Err(_) => {
                self.replace(generation);
                Err(RedisCallError::Timeout(timeout))
            }
        }
    }

    /// Which connection calls go out on now; see [`replace`](Self::replace).
    pub fn generation(&self) -> u64 {
        self.current.lock().generation
    }

    /// Swaps in a fresh connection unless another call already replaced `generation`, or it
    /// may still be connecting.
    pub fn replace(&self, generation: u64) {
        let mut current = self.current.lock();
        if current.generation != generation || current.made.elapsed() < self.connect_timeout {
            return;
        }
        // Only the URL was ever checked, and it has not changed, so this cannot fail; if it
        // did, keeping the old connection is the best there is.
        if let Ok(link) = self.deployment.connect_lazily() {
            current.link = link;
            current.generation += 1;
            current.made = Instant::now();
            tracing::debug!(
                generation = current.generation,
                "replaced silent Redis connection"
            );
        }
    }
}

impl Deployment {
    /// A connection that connects in the background; calls made on it meanwhile wait for it.
    /// Must be called within a Tokio runtime.
    fn connect_lazily(&self) -> RedisResult<Link> {
        match self {
            Self::Single { client, config } => Ok(Link::Single(
                ConnectionManager::new_lazy_with_config(client.clone(), config.clone())?,
            )),
            Self::Cluster { client, config } => Ok(Link::Cluster(
                client.get_pending_async_connection_with_config(config.clone()),
            )),
        }
    }
}

impl Link {
    /// Checks that every shard of a cluster answers a read on this connection: `EXISTS` of a
    /// key in a slot of each primary, which the cluster client sends to the node that holds
    /// it, as it would a call. (A `PING` to every primary is no check: the client sends it only
    /// to the nodes it has a connection to, and leaves out a node it could not connect to.) On
    /// one endpoint there is nothing more to check.
    pub async fn reach_every_shard(&mut self, prefix: &str) -> RedisResult<()> {
        let Self::Cluster(cluster) = self else {
            return Ok(());
        };
        let entries: Vec<Vec<Value>> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async(cluster)
            .await?;
        let ranges = largest_range_of_each_primary(&entries);
        if ranges.is_empty() {
            return Err(RedisError::from((
                ErrorKind::ClusterConnectionNotFound,
                "the cluster reports no slot served",
            )));
        }
        for (start, end) in ranges {
            let key = key_in_slots(prefix, start, end).ok_or_else(|| {
                RedisError::from((ErrorKind::Client, "found no key for a slot range"))
            })?;
            redis::cmd("EXISTS").arg(key).exec_async(cluster).await?;
        }
        Ok(())
    }
}

/// For each primary in a `CLUSTER SLOTS` reply, its largest range of slots: the one where a
/// key is quickest to find. Entries are `[start, end, primary, replicas…]`; a primary is
/// known by its whole description (address and id), the same in each of its entries.
fn largest_range_of_each_primary(entries: &[Vec<Value>]) -> Vec<(u16, u16)> {
    let mut primaries: Vec<(&Value, u16, u16)> = Vec::new();
    for entry in entries {
        let [Value::Int(start), Value::Int(end), primary, ..] = entry.as_slice() else {
            continue;
        };
        let (Ok(start), Ok(end)) = (u16::try_from(*start), u16::try_from(*end)) else {
            continue;
        };
        if end < start {
            continue;
        }
        match primaries.iter_mut().find(|(known, ..)| *known == primary) {
            Some(known) if end - start > known.2 - known.1 => *known = (primary, start, end),
            Some(_) => {}
            None => primaries.push((primary, start, end)),
        }
    }
    primaries
        .into_iter()
        .map(|(_, start, end)| (start, end))
        .collect()
}

/// A key under `prefix` whose hash slot lies in `start..=end`. Slots spread evenly over
/// tags, so a range of n slots takes about 16384 / n tries.
fn key_in_slots(prefix: &str, start: u16, end: u16) -> Option<String> {
    let wanted: Vec<Slot> = (start..=end).filter_map(Slot::new).collect();
    (0..1u32 << 20)
        .map(|tag| format!("{prefix}:probe:{{{tag}}}"))
        .find(|key| wanted.contains(&Slot::for_key(key)))
}

impl ConnectionLike for Link {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(manager) => manager.req_packed_command(cmd),
            Self::Cluster(cluster) => cluster.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(manager) => manager.req_packed_commands(pipeline, offset, count),
            Self::Cluster(cluster) => cluster.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(manager) => manager.get_db(),
            Self::Cluster(cluster) => cluster.get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(port: i64, id: &str) -> Value {
        Value::Array(vec![
            Value::BulkString(b"127.0.0.1".to_vec()),
            Value::Int(port),
            Value::BulkString(id.as_bytes().to_vec()),
        ])
    }

    #[test]
    fn each_primary_is_probed_once_in_its_largest_range() {
        let entries = vec![
            vec![Value::Int(0), Value::Int(99), node(7000, "a")],
            vec![
                Value::Int(100),
                Value::Int(5460),
                node(7000, "a"),
                node(7003, "r"),
            ],
            vec![Value::Int(5461), Value::Int(10922), node(7001, "b")],
            vec![Value::Int(10923), Value::Int(16383), node(7002, "c")],
            vec![Value::Int(16383), Value::Int(16383), node(7002, "c")],
            // Nothing a slot range can be read from.
            vec![Value::Nil],
        ];
        assert_eq!(
            largest_range_of_each_primary(&entries),
            [(100, 5460), (5461, 10922), (10923, 16383)]
        );
        assert!(largest_range_of_each_primary(&[]).is_empty());
    }

    #[test]
    fn a_probe_key_lies_in_its_range() {
        for (start, end) in [
            (0, 16383),
            (0, 0),
            (16383, 16383),
            (5461, 10922),
            (777, 779),
        ] {
            let key = key_in_slots("kw", start, end).unwrap();
            assert!(key.starts_with("kw:probe:{"), "{key}");
            let slot = Slot::for_key(&key);
            assert!(
                (start..=end).any(|s| Slot::new(s) == Some(slot)),
                "{key} outside {start}..={end}"
            );
        }
    }
}

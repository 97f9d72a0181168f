//! The limiter's connection to Redis: one multiplexed connection that concurrent calls share,
//! replaced when it stops answering.
//!
//! `ConnectionManager` reconnects by itself after a dropped connection, but not after one that
//! is still open and silent (a half-open TCP connection, a proxy that stopped forwarding): its
//! calls just time out. So a call that times out replaces the manager with a fresh one, once
//! per manager, however many calls timed out on it together.

use std::future::Future;
use std::time::Duration;

use parking_lot::Mutex;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, RedisResult};

use crate::error::RedisCallError;

pub(crate) struct RedisConnection {
    client: Client,
    config: ConnectionManagerConfig,
    timeout: Duration,
    current: Mutex<Current>,
}

struct Current {
    manager: ConnectionManager,
    /// Counts replacements, so that a call replaces only the manager it used.
    generation: u64,
}

impl RedisConnection {
    /// A connection that is established on first use; fails only on an invalid URL.
    pub fn lazy(url: &str, timeout: Duration, connect_timeout: Duration) -> RedisResult<Self> {
        let client = Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(timeout))
            .set_connection_timeout(Some(connect_timeout))
            // One attempt per reconnection: the next call starts another, and a caller never
            // waits through a backoff it cannot see the end of.
            .set_number_of_retries(0);
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), config.clone())?;
        Ok(Self {
            client,
            config,
            timeout,
            current: Mutex::new(Current {
                manager,
                generation: 0,
            }),
        })
    }

    /// Runs `call` on the current connection within the call timeout.
    pub async fn run<T, F, Fut>(&self, call: F) -> Result<T, RedisCallError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
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
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let (manager, generation) = {
            let current = self.current.lock();
            (current.manager.clone(), current.generation)
        };
        match tokio::time::timeout(timeout, call(manager)).await {
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

    /// Swaps in a fresh manager unless another call already replaced `generation`.
    fn replace(&self, generation: u64) {
        let mut current = self.current.lock();
        if current.generation != generation {
            return;
        }
        // Only the client's URL was ever checked, and it has not changed, so this cannot fail;
        // if it did, keeping the old manager is the best there is.
        if let Ok(manager) =
            ConnectionManager::new_lazy_with_config(self.client.clone(), self.config.clone())
        {
            current.manager = manager;
            current.generation += 1;
            tracing::debug!(
                generation = current.generation,
                "replaced silent Redis connection"
            );
        }
    }
}

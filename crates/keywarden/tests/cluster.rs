//! Two `keywarden` processes sharing PostgreSQL and Redis behave as one service: limits and
//! credits are exact across them, and a change on one is seen by the other at once.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::cluster::Shared;
use common::{ROOT_KEY, ServerProcess, call};
use serde_json::{Value, json};
use tokio::task::JoinSet;

struct Cluster {
    /// Held so the schema outlives the nodes.
    _shared: Shared,
    nodes: Vec<Arc<ServerProcess>>,
    _dirs: Vec<tempfile::TempDir>,
    client: reqwest::Client,
}

impl Cluster {
    async fn start(nodes: usize) -> Self {
        let shared = Shared::create().await;
        let dirs: Vec<_> = (0..nodes).map(|_| tempfile::tempdir().unwrap()).collect();
        let nodes = dirs
            .iter()
            // These tests check exactness while Redis answers; a loaded test machine can take
            // longer than the default 100 ms per call, which would (rightly) fall back to
            // per-node limits. Timeouts and fallbacks are tested in `cluster_faults.rs`.
            .map(|dir| {
                Arc::new(shared.node_with_env(
                    dir.path(),
                    &shared.options(),
                    &[("KEYWARDEN_REDIS_TIMEOUT_MS", "2000")],
                ))
            })
            .collect();
        Self {
            _shared: shared,
            nodes,
            _dirs: dirs,
            client: common::http_client(),
        }
    }

    /// Calls `operation` on node `n`; asserts a 200 and returns `data`.
    async fn ok(&self, n: usize, operation: &str, body: Value) -> Value {
        let (status, reply) = call(&self.client, &self.nodes[n], ROOT_KEY, operation, body).await;
        assert_eq!(status, 200, "{operation} on node {n}: {reply}");
        reply["data"].clone()
    }

    async fn verify(&self, n: usize, key: &str) -> Value {
        self.ok(n, "keys.verifyKey", json!({ "key": key })).await
    }

    async fn api(&self) -> String {
        let data = self
            .ok(0, "apis.createApi", json!({ "name": "cluster" }))
            .await;
        data["apiId"].as_str().unwrap().to_owned()
    }

    async fn key(&self, api_id: &str, extra: Value) -> (String, String) {
        let mut body = json!({ "apiId": api_id });
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let data = self.ok(0, "keys.createKey", body).await;
        (
            data["keyId"].as_str().unwrap().to_owned(),
            data["key"].as_str().unwrap().to_owned(),
        )
    }

    /// Runs `calls` requests concurrently, call `i` on node `i % nodes`; returns the
    /// answers' `data`.
    async fn spread(&self, calls: usize, operation: &'static str, body: Value) -> Vec<Value> {
        let mut set = JoinSet::new();
        for i in 0..calls {
            let node = Arc::clone(&self.nodes[i % self.nodes.len()]);
            let (client, body) = (self.client.clone(), body.clone());
            set.spawn(async move {
                let (status, reply) = call(&client, &node, ROOT_KEY, operation, body).await;
                assert_eq!(status, 200, "{reply}");
                reply["data"].clone()
            });
        }
        set.join_all().await
    }
}

/// Waits until `check` holds, polling; returns how long it took.
async fn time_until<F, Fut>(limit: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "not seen within {limit:?}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_limit_is_exact_across_nodes() {
    let cluster = Cluster::start(2).await;
    // The standalone limiter: 400 calls spread over both nodes, 100 allowed per minute.
    let body =
        json!({ "namespace": "api", "identifier": "user_1", "limit": 100, "duration": 60_000 });
    let answers = cluster.spread(400, "ratelimit.limit", body).await;
    let passed = answers.iter().filter(|a| a["success"] == true).count();
    assert_eq!(passed, 100, "exactly the limit passes across nodes");

    // A key's own limit, checked by verifications on both nodes.
    let api_id = cluster.api().await;
    let (_, key) = cluster
        .key(
            &api_id,
            json!({ "ratelimits": [{ "name": "requests", "limit": 100, "duration": 60_000, "autoApply": true }] }),
        )
        .await;
    // Both nodes know the key before the burst, so every call reaches the limiter.
    for n in 0..2 {
        time_until(Duration::from_secs(1), || async {
            cluster.verify(n, &key).await["code"] != "NOT_FOUND"
        })
        .await;
    }
    let answers = cluster
        .spread(400, "keys.verifyKey", json!({ "key": key }))
        .await;
    let valid = answers.iter().filter(|a| a["code"] == "VALID").count();
    let limited = answers
        .iter()
        .filter(|a| a["code"] == "RATE_LIMITED")
        .count();
    // The two warm-up verifications counted too.
    assert_eq!(valid, 98, "{answers:?}");
    assert_eq!(limited, 302);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn credits_are_never_overspent_across_nodes() {
    let cluster = Cluster::start(2).await;
    let api_id = cluster.api().await;
    let (key_id, key) = cluster
        .key(&api_id, json!({ "credits": { "remaining": 50 } }))
        .await;
    // Node 1 knows the key once A's notice arrived; a zero-cost verification spends nothing.
    time_until(Duration::from_secs(1), || async {
        cluster
            .ok(
                1,
                "keys.verifyKey",
                json!({ "key": key, "credits": { "cost": 0 } }),
            )
            .await["code"]
            == "VALID"
    })
    .await;
    let answers = cluster
        .spread(200, "keys.verifyKey", json!({ "key": key }))
        .await;
    let valid = answers.iter().filter(|a| a["code"] == "VALID").count();
    let exceeded = answers
        .iter()
        .filter(|a| a["code"] == "USAGE_EXCEEDED")
        .count();
    assert_eq!((valid, exceeded), (50, 150), "{answers:?}");
    for n in 0..2 {
        let data = cluster
            .ok(n, "keys.getKey", json!({ "keyId": key_id }))
            .await;
        assert_eq!(data["credits"]["remaining"], 0, "node {n}: {data}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revocation_on_one_node_is_seen_by_the_other_at_once() {
    let cluster = Cluster::start(2).await;
    let api_id = cluster.api().await;
    const KEYS: usize = 100;
    let mut keys = Vec::new();
    for _ in 0..KEYS {
        keys.push(cluster.key(&api_id, json!({})).await);
    }
    // Node B has every key cached as valid.
    for (_, key) in &keys {
        time_until(Duration::from_secs(1), || async {
            cluster.verify(1, key).await["code"] == "VALID"
        })
        .await;
    }
    let mut delays = Vec::new();
    for (key_id, key) in &keys {
        cluster
            .ok(0, "keys.deleteKey", json!({ "keyId": key_id }))
            .await;
        // Timed from the acknowledgement on A.
        let delay = time_until(Duration::from_secs(1), || async {
            cluster.verify(1, key).await["code"] == "NOT_FOUND"
        })
        .await;
        delays.push(delay);
    }
    delays.sort();
    let p50 = delays[KEYS / 2];
    let p99 = delays[KEYS * 99 / 100 - 1];
    println!(
        "revocation propagation over {KEYS} keys: p50 {p50:?}, p99 {p99:?}, max {:?}",
        delays[KEYS - 1]
    );
    assert!(p99 < Duration::from_secs(1), "p99 {p99:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_kind_of_change_reaches_the_other_node() {
    let cluster = Cluster::start(2).await;
    let api_id = cluster.api().await;
    let within = Duration::from_secs(1);

    // Disabling.
    let (key_id, key) = cluster.key(&api_id, json!({})).await;
    time_until(within, || async {
        cluster.verify(1, &key).await["valid"] == true
    })
    .await;
    cluster
        .ok(
            0,
            "keys.updateKey",
            json!({ "keyId": key_id, "enabled": false }),
        )
        .await;
    time_until(within, || async {
        cluster.verify(1, &key).await["code"] == "DISABLED"
    })
    .await;

    // Setting credits on a key that had none.
    cluster
        .ok(
            0,
            "keys.updateKey",
            json!({ "keyId": key_id, "enabled": true }),
        )
        .await;
    cluster
        .ok(
            0,
            "keys.updateCredits",
            json!({ "keyId": key_id, "operation": "set", "value": 0 }),
        )
        .await;
    time_until(within, || async {
        cluster.verify(1, &key).await["code"] == "USAGE_EXCEEDED"
    })
    .await;

    // A reroll: the new key works on B, the old one ends at once with no grace period.
    let (old_id, old_key) = cluster.key(&api_id, json!({})).await;
    time_until(within, || async {
        cluster.verify(1, &old_key).await["valid"] == true
    })
    .await;
    let rerolled = cluster
        .ok(
            0,
            "keys.rerollKey",
            json!({ "keyId": old_id, "expiration": 0 }),
        )
        .await;
    let new_key = rerolled["key"].as_str().unwrap().to_owned();
    time_until(within, || async {
        cluster.verify(1, &new_key).await["valid"] == true
    })
    .await;
    time_until(within, || async {
        cluster.verify(1, &old_key).await["valid"] == false
    })
    .await;

    // A permission granted through a role, then the role losing it.
    let (holder_id, holder) = cluster.key(&api_id, json!({})).await;
    cluster
        .ok(
            0,
            "permissions.createPermission",
            json!({ "name": "read", "slug": "docs.read" }),
        )
        .await;
    cluster
        .ok(
            0,
            "permissions.createRole",
            json!({ "name": "reader", "permissions": ["docs.read"] }),
        )
        .await;
    cluster
        .ok(
            0,
            "keys.addRoles",
            json!({ "keyId": holder_id, "roles": ["reader"] }),
        )
        .await;
    let query = json!({ "key": holder, "permissions": "docs.read" });
    time_until(within, || async {
        cluster.ok(1, "keys.verifyKey", query.clone()).await["valid"] == true
    })
    .await;
    cluster
        .ok(
            0,
            "permissions.deletePermission",
            json!({ "permission": "docs.read" }),
        )
        .await;
    time_until(within, || async {
        cluster.ok(1, "keys.verifyKey", query.clone()).await["code"] == "INSUFFICIENT_PERMISSIONS"
    })
    .await;

    // An identity's limit, changed on A, applies on B: one call a minute, so repeated calls
    // end up limited once B knows it.
    let (_, limited) = cluster
        .key(&api_id, json!({ "externalId": "customer_1" }))
        .await;
    cluster
        .ok(
            0,
            "identities.updateIdentity",
            json!({ "identity": "customer_1", "ratelimits": [{ "name": "all", "limit": 1, "duration": 60_000, "autoApply": true }] }),
        )
        .await;
    time_until(within, || async {
        cluster.verify(1, &limited).await["code"] == "RATE_LIMITED"
    })
    .await;

    // A rate-limit override set on A decides on B.
    let limit = json!({ "namespace": "edge", "identifier": "blocked_user", "limit": 10, "duration": 60_000 });
    assert_eq!(
        cluster.ok(1, "ratelimit.limit", limit.clone()).await["success"],
        true
    );
    cluster
        .ok(
            0,
            "ratelimit.setOverride",
            json!({ "namespace": "edge", "identifier": "blocked_*", "limit": 0, "duration": 60_000 }),
        )
        .await;
    time_until(within, || async {
        cluster.ok(1, "ratelimit.limit", limit.clone()).await["success"] == false
    })
    .await;

    // A root key created on A authenticates on B; deleted on A, it stops on B.
    let created = cluster
        .ok(
            0,
            "rootKeys.createKey",
            json!({ "permissions": ["api.*.read_api"] }),
        )
        .await;
    let root = created["key"].as_str().unwrap().to_owned();
    let root_id = created["keyId"].as_str().unwrap().to_owned();
    let get_api = json!({ "apiId": api_id });
    let status_on_b = |token: String| {
        let (client, node, body) = (
            cluster.client.clone(),
            Arc::clone(&cluster.nodes[1]),
            get_api.clone(),
        );
        async move { call(&client, &node, &token, "apis.getApi", body).await.0 }
    };
    time_until(within, || status_on_b(root.clone()).then_is(200)).await;
    cluster
        .ok(0, "rootKeys.deleteKey", json!({ "keyId": root_id }))
        .await;
    time_until(within, || status_on_b(root.clone()).then_is(401)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restriction_changes_reach_the_other_node() {
    let cluster = Cluster::start(2).await;
    let api_id = cluster.api().await;
    let within = Duration::from_secs(1);
    let (key_id, key) = cluster.key(&api_id, json!({})).await;
    time_until(within, || async {
        cluster.verify(1, &key).await["valid"] == true
    })
    .await;

    // A key's own restrictions.
    cluster
        .ok(
            0,
            "keys.updateKey",
            json!({ "keyId": key_id, "restrictions": { "allowedIps": ["192.0.2.0/24"] } }),
        )
        .await;
    time_until(within, || async {
        cluster.verify(1, &key).await["code"] == "FORBIDDEN"
    })
    .await;
    cluster
        .ok(
            0,
            "keys.updateKey",
            json!({ "keyId": key_id, "restrictions": null }),
        )
        .await;
    time_until(within, || async {
        cluster.verify(1, &key).await["valid"] == true
    })
    .await;

    // The API's: node B holds the key cached with the API's old (empty) restrictions.
    cluster
        .ok(
            0,
            "apis.updateApi",
            json!({ "apiId": api_id, "restrictions": { "allowedOrigins": ["app.example.com"] } }),
        )
        .await;
    time_until(within, || async {
        cluster.verify(1, &key).await["code"] == "FORBIDDEN"
    })
    .await;
    cluster
        .ok(
            0,
            "apis.updateApi",
            json!({ "apiId": api_id, "restrictions": null }),
        )
        .await;
    time_until(within, || async {
        cluster.verify(1, &key).await["valid"] == true
    })
    .await;
}

/// `future.then_is(x)`: whether the future's output equals `x`.
trait ThenIs<T> {
    fn then_is(self, expected: T) -> impl std::future::Future<Output = bool>;
}

impl<F, T> ThenIs<T> for F
where
    F: std::future::Future<Output = T>,
    T: PartialEq,
{
    async fn then_is(self, expected: T) -> bool {
        self.await == expected
    }
}

//! A node cut off from Redis or PostgreSQL keeps its promises: limits by the configured fault
//! mode, cached verifications still answered, writes refused with 503, and everything back
//! by itself when the service returns. A node killed with `kill -9` loses no acknowledged
//! write.

mod common;

use std::time::{Duration, Instant};

use common::cluster::{NodeOptions, Shared};
use common::{ROOT_KEY, ServerProcess, call};
use keywarden_testkit::{TcpProxy, postgres_url, redis_url, socket_of, via_port};
use serde_json::{Value, json};

async fn ok(client: &reqwest::Client, node: &ServerProcess, operation: &str, body: Value) -> Value {
    let (status, reply) = call(client, node, ROOT_KEY, operation, body).await;
    assert_eq!(status, 200, "{operation}: {reply}");
    reply["data"].clone()
}

async fn health(client: &reqwest::Client, node: &ServerProcess) -> Value {
    let reply: Value = client
        .get(node.url("/v2/health"))
        .send()
        .await
        .expect("health")
        .json()
        .await
        .expect("health json");
    reply["data"].clone()
}

/// Polls `check` on the node's health report for up to `limit`.
async fn wait_for_health(
    client: &reqwest::Client,
    node: &ServerProcess,
    limit: Duration,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let start = Instant::now();
    loop {
        let report = health(client, node).await;
        if check(&report) {
            return report;
        }
        assert!(start.elapsed() < limit, "health never matched: {report}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends `calls` limit calls one after another; returns how many passed.
async fn passes(
    client: &reqwest::Client,
    node: &ServerProcess,
    identifier: &str,
    calls: usize,
) -> usize {
    let body =
        json!({ "namespace": "faults", "identifier": identifier, "limit": 3, "duration": 60_000 });
    let mut passed = 0;
    for _ in 0..calls {
        if ok(client, node, "ratelimit.limit", body.clone()).await["success"] == true {
            passed += 1;
        }
    }
    passed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_redis_limits_follow_the_fault_mode_and_recover() {
    let shared = Shared::create().await;
    let client = common::http_client();
    let mut proxy = TcpProxy::start(socket_of(&redis_url())).await;
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let modes = ["local", "fail-open", "fail-closed"];
    let nodes: Vec<ServerProcess> = modes
        .iter()
        .zip(&dirs)
        .map(|(mode, dir)| {
            shared.node_with(
                dir.path(),
                &NodeOptions {
                    redis_url: via_port(&redis_url(), proxy.port()),
                    fault_mode: mode,
                    ..shared.options()
                },
            )
        })
        .collect();
    for node in &nodes {
        let report = wait_for_health(&client, node, Duration::from_secs(5), |h| {
            h["limiter"]["reachable"] == true
        })
        .await;
        assert_eq!(report["limiter"]["backend"], "redis");
    }
    // With Redis, the three nodes share one budget of 3.
    let shared_passes: usize = [
        passes(&client, &nodes[0], "shared", 2).await,
        passes(&client, &nodes[1], "shared", 2).await,
        passes(&client, &nodes[2], "shared", 2).await,
    ]
    .iter()
    .sum();
    assert_eq!(shared_passes, 3);

    proxy.cut().await;
    // Local: each node enforces the limit on its own.
    assert_eq!(passes(&client, &nodes[0], "during", 5).await, 3);
    // Fail-open admits everything, fail-closed nothing.
    assert_eq!(passes(&client, &nodes[1], "during", 5).await, 5);
    assert_eq!(passes(&client, &nodes[2], "during", 5).await, 0);
    for (node, mode) in nodes.iter().zip(modes) {
        let report = health(&client, node).await;
        assert_eq!(report["status"], "degraded", "{report}");
        assert_eq!(report["limiter"]["reachable"], false, "{report}");
        assert_eq!(report["limiter"]["faultMode"], mode, "{report}");
        assert!(
            report["limiter"]["fallbackCalls"].as_u64().unwrap() >= 5,
            "{report}"
        );
    }

    let metrics = client
        .get(nodes[2].url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "keywarden_limiter_up{backend=\"redis\"} 0",
        "keywarden_limiter_fault_mode{mode=\"fail-closed\"} 1",
        "keywarden_degraded 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no `{line}` in:\n{metrics}"
        );
    }

    proxy.restore();
    for node in &nodes {
        wait_for_health(&client, node, Duration::from_secs(5), |h| {
            h["limiter"]["reachable"] == true && h["status"] == "ok"
        })
        .await;
    }
    // Back on Redis: one shared budget again.
    let after: usize = [
        passes(&client, &nodes[0], "after", 2).await,
        passes(&client, &nodes[1], "after", 2).await,
        passes(&client, &nodes[2], "after", 2).await,
    ]
    .iter()
    .sum();
    assert_eq!(after, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_postgres_cached_keys_verify_writes_answer_503_and_all_recovers() {
    let shared = Shared::create().await;
    let client = common::http_client();
    let mut proxy = TcpProxy::start(socket_of(&postgres_url())).await;
    let dir = tempfile::tempdir().unwrap();
    let node = shared.node_with(
        dir.path(),
        &NodeOptions {
            database_url: shared
                .schema
                .url_via(&via_port(&postgres_url(), proxy.port())),
            ..shared.options()
        },
    );
    let api = ok(
        &client,
        &node,
        "apis.createApi",
        json!({ "name": "outage" }),
    )
    .await;
    let api_id = api["apiId"].as_str().unwrap().to_owned();
    let created = ok(&client, &node, "keys.createKey", json!({ "apiId": api_id })).await;
    let key = created["key"].as_str().unwrap().to_owned();
    assert_eq!(
        ok(&client, &node, "keys.verifyKey", json!({ "key": key })).await["valid"],
        true
    );

    proxy.cut().await;
    // Verification answers from memory.
    for _ in 0..20 {
        assert_eq!(
            ok(&client, &node, "keys.verifyKey", json!({ "key": key })).await["valid"],
            true
        );
    }
    // Unknown keys are still told apart without the store.
    assert_eq!(
        ok(
            &client,
            &node,
            "keys.verifyKey",
            json!({ "key": "kw_not_a_real_key_1234" })
        )
        .await["code"],
        "NOT_FOUND"
    );
    // Writes are refused with the error envelope, and nothing is half done.
    let (status, reply) = call(
        &client,
        &node,
        ROOT_KEY,
        "keys.createKey",
        json!({ "apiId": api_id }),
    )
    .await;
    assert_eq!(status, 503, "{reply}");
    assert_eq!(
        reply["error"]["type"],
        "https://unkey.com/docs/errors/unkey/application/service_unavailable"
    );
    assert!(
        reply["meta"]["requestId"]
            .as_str()
            .unwrap()
            .starts_with("req_")
    );
    let report = wait_for_health(&client, &node, Duration::from_secs(10), |h| {
        h["changeFeed"]["state"] == "disconnected"
    })
    .await;
    assert_eq!(report["store"]["reachable"], false, "{report}");
    assert_eq!(report["status"], "degraded");
    // The refused write is counted as a store error.
    let metrics = client
        .get(node.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let store_errors: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("keywarden_store_errors_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no keywarden_store_errors_total in:\n{metrics}"));
    assert!(store_errors >= 1.0, "{metrics}");

    proxy.restore();
    wait_for_health(&client, &node, Duration::from_secs(10), |h| {
        h["status"] == "ok" && h["changeFeed"]["state"] == "connected"
    })
    .await;
    let start = Instant::now();
    loop {
        let (status, _) = call(
            &client,
            &node,
            ROOT_KEY,
            "keys.createKey",
            json!({ "apiId": api_id }),
        )
        .await;
        if status == 200 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "writes did not recover: {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        ok(&client, &node, "keys.verifyKey", json!({ "key": key })).await["valid"],
        true
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cached_keys_stop_answering_once_the_staleness_bound_has_passed() {
    let shared = Shared::create().await;
    let client = common::http_client();
    let mut proxy = TcpProxy::start(socket_of(&postgres_url())).await;
    let dir = tempfile::tempdir().unwrap();
    let node = shared.node_with_env(
        dir.path(),
        &NodeOptions {
            database_url: shared
                .schema
                .url_via(&via_port(&postgres_url(), proxy.port())),
            ..shared.options()
        },
        &[("KEYWARDEN_MAX_STALE_SECS", "1")],
    );
    let api = ok(&client, &node, "apis.createApi", json!({ "name": "stale" })).await;
    let created = ok(
        &client,
        &node,
        "keys.createKey",
        json!({ "apiId": api["apiId"] }),
    )
    .await;
    let key = created["key"].as_str().unwrap().to_owned();
    let verify = json!({ "key": key });
    assert_eq!(
        ok(&client, &node, "keys.verifyKey", verify.clone()).await["valid"],
        true
    );

    proxy.cut().await;
    let cut_at = Instant::now();
    // Within the bound, memory answers.
    assert_eq!(
        ok(&client, &node, "keys.verifyKey", verify.clone()).await["valid"],
        true
    );
    // Past it, memory is not trusted: the store must answer, and cannot.
    let report = wait_for_health(&client, &node, Duration::from_secs(10), |h| {
        h["changeFeed"]["cacheTrusted"] == false
    })
    .await;
    assert!(cut_at.elapsed() >= Duration::from_secs(1), "{report}");
    let (status, reply) = call(&client, &node, ROOT_KEY, "keys.verifyKey", verify.clone()).await;
    assert_eq!(status, 503, "{reply}");

    proxy.restore();
    wait_for_health(&client, &node, Duration::from_secs(10), |h| {
        h["status"] == "ok" && h["changeFeed"]["cacheTrusted"] == true
    })
    .await;
    assert_eq!(
        ok(&client, &node, "keys.verifyKey", verify).await["valid"],
        true
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_kill_9_on_postgres() {
    let shared = Shared::create().await;
    let client = common::http_client();
    let dir = tempfile::tempdir().unwrap();
    let mut node = shared.node(dir.path());
    let api = ok(
        &client,
        &node,
        "apis.createApi",
        json!({ "name": "durable" }),
    )
    .await;
    let api_id = api["apiId"].as_str().unwrap().to_owned();
    let mut keys = Vec::new();
    for i in 0..10 {
        let created = ok(
            &client,
            &node,
            "keys.createKey",
            json!({ "apiId": api_id, "name": format!("k{i}"), "credits": { "remaining": 10 } }),
        )
        .await;
        keys.push((
            created["keyId"].as_str().unwrap().to_owned(),
            created["key"].as_str().unwrap().to_owned(),
        ));
    }
    for _ in 0..3 {
        ok(
            &client,
            &node,
            "keys.verifyKey",
            json!({ "key": keys[0].1 }),
        )
        .await;
    }
    ok(
        &client,
        &node,
        "keys.updateKey",
        json!({ "keyId": keys[1].0, "enabled": false }),
    )
    .await;
    ok(
        &client,
        &node,
        "keys.deleteKey",
        json!({ "keyId": keys[2].0 }),
    )
    .await;
    node.kill_hard();

    let node = shared.node(dir.path());
    let verify = |key: String| {
        let (client, node) = (&client, &node);
        async move { ok(client, node, "keys.verifyKey", json!({ "key": key })).await }
    };
    let first = verify(keys[0].1.clone()).await;
    assert_eq!(
        (first["code"].clone(), first["credits"].clone()),
        (json!("VALID"), json!(6))
    );
    assert_eq!(verify(keys[1].1.clone()).await["code"], "DISABLED");
    assert_eq!(verify(keys[2].1.clone()).await["code"], "NOT_FOUND");
    for (_, key) in &keys[3..] {
        assert_eq!(verify(key.clone()).await["credits"], 9);
    }
}

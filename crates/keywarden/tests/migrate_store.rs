//! `keywarden migrate-store`: an installation moves from SQLite to PostgreSQL and back, and
//! every key still verifies with its credits, limits and permissions; anomalies and the
//! marker a reroll leaves on the replaced key move too.

mod common;

use std::path::Path;
use std::process::Command;

use common::cluster::Shared;
use common::{Launch, ROOT_KEY, ServerProcess, binary, call};
use serde_json::{Value, json};

async fn ok(client: &reqwest::Client, node: &ServerProcess, operation: &str, body: Value) -> Value {
    let (status, reply) = call(client, node, ROOT_KEY, operation, body).await;
    assert_eq!(status, 200, "{operation}: {reply}");
    reply["data"].clone()
}

fn migrate(from: &str, to: &str) -> (bool, String) {
    let output = Command::new(binary())
        .args(["migrate-store", "--from", from, "--to", to])
        .output()
        .expect("run migrate-store");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn sqlite_node(dir: &Path) -> ServerProcess {
    ServerProcess::start(Launch::in_dir(dir))
}

/// What the installation must still do after a move.
struct Expectations {
    /// A key with 10 credits, 3 of them spent.
    credits_key: String,
    /// A key whose own limit admits one verification per minute.
    limited_key: String,
    /// A key holding `docs.read` through the role `reader`, linked to identity `customer_9`.
    role_key: String,
    role_key_id: String,
    /// A deleted key, which must stay unknown.
    deleted_key: String,
    /// The old key of a reroll without grace: each use is `used_after_rotation`.
    rerolled_key: String,
    rerolled_key_id: String,
    /// An API with restrictions and an expiry policy, and a key of it with its own
    /// restrictions.
    fenced_api_id: String,
    fenced_key: String,
    fenced_key_id: String,
}

/// How many `used_after_rotation` anomalies `node` lists for `key_id`.
async fn rotation_anomalies(client: &reqwest::Client, node: &ServerProcess, key_id: &str) -> usize {
    let listed = ok(
        client,
        node,
        "anomalies.list",
        json!({ "kind": "used_after_rotation", "keyId": key_id }),
    )
    .await;
    listed.as_array().unwrap().len()
}

/// Presents the rerolled key and waits until one more anomaly about it is listed.
async fn use_after_rotation(client: &reqwest::Client, node: &ServerProcess, e: &Expectations) {
    let before = rotation_anomalies(client, node, &e.rerolled_key_id).await;
    let answer = ok(
        client,
        node,
        "keys.verifyKey",
        json!({ "key": e.rerolled_key }),
    )
    .await;
    assert_eq!(answer["code"], "EXPIRED");
    for _ in 0..200 {
        if rotation_anomalies(client, node, &e.rerolled_key_id).await > before {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("no used_after_rotation anomaly was raised");
}

async fn populate(client: &reqwest::Client, node: &ServerProcess) -> Expectations {
    // A webhook endpoint nobody listens on: every key created below leaves a delivery in the
    // outbox, which must move with the store.
    ok(
        client,
        node,
        "webhooks.createEndpoint",
        json!({ "url": "http://127.0.0.1:9/hook", "eventTypes": ["key.created"] }),
    )
    .await;
    let api = ok(client, node, "apis.createApi", json!({ "name": "moving" })).await;
    let api_id = api["apiId"].as_str().unwrap().to_owned();
    let create = |extra: Value| {
        let mut body = json!({ "apiId": api_id });
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        async move {
            let data = ok(client, node, "keys.createKey", body).await;
            (
                data["keyId"].as_str().unwrap().to_owned(),
                data["key"].as_str().unwrap().to_owned(),
            )
        }
    };
    let (_, credits_key) = create(json!({ "credits": { "remaining": 10 } })).await;
    for _ in 0..3 {
        ok(
            client,
            node,
            "keys.verifyKey",
            json!({ "key": credits_key }),
        )
        .await;
    }
    let (_, limited_key) = create(json!({
        "ratelimits": [{ "name": "slow", "limit": 1, "duration": 60_000, "autoApply": true }]
    }))
    .await;
    ok(
        client,
        node,
        "permissions.createPermission",
        json!({ "name": "read", "slug": "docs.read" }),
    )
    .await;
    ok(
        client,
        node,
        "permissions.createRole",
        json!({ "name": "reader", "permissions": ["docs.read"] }),
    )
    .await;
    let (role_key_id, role_key) =
        create(json!({ "roles": ["reader"], "externalId": "customer_9" })).await;
    let (deleted_id, deleted_key) = create(json!({})).await;
    ok(
        client,
        node,
        "keys.deleteKey",
        json!({ "keyId": deleted_id }),
    )
    .await;
    let (rerolled_key_id, rerolled_key) = create(json!({})).await;
    ok(
        client,
        node,
        "keys.rerollKey",
        json!({ "keyId": rerolled_key_id, "expiration": 0 }),
    )
    .await;
    let fenced = ok(
        client,
        node,
        "apis.createApi",
        json!({
            "name": "fenced",
            "restrictions": { "allowedIps": ["192.0.2.0/24"] },
            "defaultKeyLifetimeMs": 3_600_000,
            "maxKeyLifetimeMs": 86_400_000,
        }),
    )
    .await;
    let fenced_api_id = fenced["apiId"].as_str().unwrap().to_owned();
    let fenced_created = ok(
        client,
        node,
        "keys.createKey",
        json!({
            "apiId": fenced_api_id,
            "restrictions": { "allowedIps": ["192.0.2.7"], "allowedOrigins": ["app.example.com"] },
        }),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let e = Expectations {
        fenced_api_id,
        fenced_key: fenced_created["key"].as_str().unwrap().to_owned(),
        fenced_key_id: fenced_created["keyId"].as_str().unwrap().to_owned(),
        credits_key,
        limited_key,
        role_key,
        role_key_id,
        deleted_key,
        rerolled_key,
        rerolled_key_id,
    };
    use_after_rotation(client, node, &e).await;
    e
}

/// Checks `e` on `node`; the credits key is left with `credits_after` credits.
async fn check(
    client: &reqwest::Client,
    node: &ServerProcess,
    e: &Expectations,
    credits_after: i64,
) {
    let verify = |body: Value| ok(client, node, "keys.verifyKey", body);
    let credits = verify(json!({ "key": e.credits_key })).await;
    assert_eq!(
        (credits["code"].clone(), credits["credits"].clone()),
        (json!("VALID"), json!(credits_after))
    );
    assert_eq!(
        verify(json!({ "key": e.limited_key })).await["code"],
        "VALID"
    );
    assert_eq!(
        verify(json!({ "key": e.limited_key })).await["code"],
        "RATE_LIMITED"
    );
    assert_eq!(
        verify(json!({ "key": e.role_key, "permissions": "docs.read" })).await["code"],
        "VALID"
    );
    assert_eq!(
        verify(json!({ "key": e.role_key, "permissions": "docs.write" })).await["code"],
        "INSUFFICIENT_PERMISSIONS"
    );
    let key = ok(
        client,
        node,
        "keys.getKey",
        json!({ "keyId": e.role_key_id }),
    )
    .await;
    assert_eq!(key["identity"]["externalId"], "customer_9", "{key}");
    assert_eq!(
        verify(json!({ "key": e.deleted_key })).await["code"],
        "NOT_FOUND"
    );
    // Restrictions and the expiry policy moved with their key and API.
    let fenced = ok(
        client,
        node,
        "apis.getApi",
        json!({ "apiId": e.fenced_api_id }),
    )
    .await;
    assert_eq!(
        fenced["restrictions"]["allowedIps"],
        json!(["192.0.2.0/24"])
    );
    assert_eq!(fenced["maxKeyLifetimeMs"], 86_400_000);
    let key = ok(
        client,
        node,
        "keys.getKey",
        json!({ "keyId": e.fenced_key_id }),
    )
    .await;
    assert_eq!(
        key["restrictions"]["allowedOrigins"],
        json!(["app.example.com"])
    );
    assert_eq!(
        verify(json!({ "key": e.fenced_key })).await["code"],
        "FORBIDDEN"
    );
    assert_eq!(
        verify(json!({
            "key": e.fenced_key,
            "clientIp": "192.0.2.7",
            "origin": "https://app.example.com",
        }))
        .await["code"],
        "VALID"
    );
    // The anomalies moved, and the replaced key is still recognised as one.
    assert!(rotation_anomalies(client, node, &e.rerolled_key_id).await >= 1);
    use_after_rotation(client, node, e).await;
}

/// The `kid`s of the token signing keys `node` publishes.
async fn published_kids(client: &reqwest::Client, node: &ServerProcess) -> Vec<String> {
    let set: Value = client
        .get(node.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kids: Vec<String> = set["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kids.len(), 1, "{set}");
    kids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_installation_moves_to_postgres_and_back() {
    let client = common::http_client();
    let source_dir = tempfile::tempdir().unwrap();
    let mut source = sqlite_node(source_dir.path());
    let expectations = populate(&client, &source).await;
    let signing_keys = published_kids(&client, &source).await;
    source.terminate();

    let shared = Shared::create().await;
    let postgres = shared.options().database_url;
    let sqlite_url = format!(
        "sqlite://{}",
        source_dir.path().join("keywarden.db").display()
    );
    let (success, output) = migrate(&sqlite_url, &postgres);
    assert!(success, "{output}");
    assert!(
        output.contains("keys") && output.contains("copied and checked"),
        "{output}"
    );
    // Usage history moves too: the three verifications of the credits key, written when the
    // source stopped at the latest.
    let rows_of = |table: &str| -> u64 {
        output
            .lines()
            .find_map(|line| {
                let mut words = line.split_whitespace();
                (words.next() == Some(table)).then(|| words.next().unwrap().parse().unwrap())
            })
            .unwrap_or_else(|| panic!("no {table} in {output}"))
    };
    // Plus the rerolled key's one (EXPIRED) verification: its own rollup row. The events
    // travel in their batches (one or more, as the source wrote them), and the source folded
    // everything into the rollups before it stopped.
    assert!(rows_of("analytics_event_batches") >= 1);
    assert_eq!(rows_of("analytics_rollups_pending"), 0);
    assert_eq!(rows_of("analytics_verifications_per_month"), 2);
    assert_eq!(rows_of("webhook_endpoints"), 1);
    assert_eq!(rows_of("webhook_deliveries"), 6, "one per key created");
    assert_eq!(rows_of("anomalies"), 1);
    assert_eq!(rows_of("signing_keys"), 1);

    // A target that already holds data is refused, untouched.
    let (success, output) = migrate(&sqlite_url, &postgres);
    assert!(!success);
    assert!(output.contains("not empty"), "{output}");

    let cluster_dir = tempfile::tempdir().unwrap();
    let mut node = shared.node(cluster_dir.path());
    check(&client, &node, &expectations, 6).await;
    // Tokens issued before the move still verify: the same signing key is published.
    assert_eq!(published_kids(&client, &node).await, signing_keys);
    node.terminate();

    // And back into a fresh SQLite file.
    let back_dir = tempfile::tempdir().unwrap();
    let back_url = format!(
        "sqlite://{}",
        back_dir.path().join("keywarden.db").display()
    );
    let (success, output) = migrate(&postgres, &back_url);
    assert!(success, "{output}");
    let node = sqlite_node(back_dir.path());
    // Limit counts live in the limiter, not the store: on this node's own limiter the key is
    // admitted once more, then limited.
    check(&client, &node, &expectations, 5).await;
}

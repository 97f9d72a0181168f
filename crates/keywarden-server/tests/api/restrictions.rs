//! Restrictions on where keys may be used from: client networks (IPv4 and IPv6, CIDR edges),
//! browser origins, per key and per API, the `clientIp`/`origin` verify fields, and which
//! `X-Forwarded-For` is believed. Every address in 127.0.0.0/8 is loopback on Linux, so a
//! client socket bound to 127.0.0.n plays a client at that address.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use keywarden_core::restriction::IpNetwork;
use keywarden_core::store::UsageStore;
use keywarden_core::usage::Granularity;
use serde_json::{Value, json};

use crate::backend::TestStorage;
use crate::helpers::{ROOT_KEY, TestApp, TestClock, spawn_app, spawn_app_with};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Verifies `body` from a client socket bound to `from`, with extra request headers.
async fn verify_from(app: &TestApp, from: IpAddr, headers: &[(&str, &str)], body: Value) -> Value {
    let client = reqwest::Client::builder()
        .local_address(from)
        .build()
        .unwrap();
    let mut request = client
        .post(format!("{}/v2/keys.verifyKey", app.base_url))
        .bearer_auth(ROOT_KEY)
        .json(&body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("request");
    assert_eq!(response.status(), 200, "every outcome is a 200");
    let body: Value = response.json().await.unwrap();
    body["data"].clone()
}

async fn code_from(app: &TestApp, from: &str, key: &str) -> String {
    let data = verify_from(app, ip(from), &[], json!({ "key": key })).await;
    data["code"].as_str().unwrap().to_owned()
}

async fn code_with(app: &TestApp, body: Value) -> String {
    let reply = app.call("keys.verifyKey", body).await;
    reply.ok()["code"].as_str().unwrap().to_owned()
}

async fn code_with_headers(app: &TestApp, headers: &[(&str, &str)], key: &str) -> String {
    let data = verify_from(app, ip("127.0.0.1"), headers, json!({ "key": key })).await;
    data["code"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn ipv4_networks_admit_their_addresses_up_to_the_edges() {
    let app = spawn_app().await;
    let api = app.create_api("restricted").await;
    let (key_id, key) = app
        .create_key(
            &api,
            json!({ "restrictions": { "allowedIps": ["127.0.0.2", "127.0.1.0/24"] } }),
        )
        .await;
    assert_eq!(code_from(&app, "127.0.0.2", &key).await, "VALID");
    assert_eq!(code_from(&app, "127.0.1.0", &key).await, "VALID");
    assert_eq!(code_from(&app, "127.0.1.255", &key).await, "VALID");
    for refused in ["127.0.0.1", "127.0.0.3", "127.0.0.255", "127.0.2.0"] {
        let data = verify_from(&app, ip(refused), &[], json!({ "key": key })).await;
        assert_eq!(data["code"], "FORBIDDEN", "{refused}");
        assert_eq!(data["valid"], false);
        assert_eq!(
            data["keyId"],
            key_id.as_str(),
            "a refused key is still shown"
        );
    }
    let shown = app.call("keys.getKey", json!({ "keyId": key_id })).await;
    assert_eq!(
        shown.ok()["restrictions"],
        json!({ "allowedIps": ["127.0.0.2", "127.0.1.0/24"], "allowedOrigins": [] })
    );
}

#[tokio::test]
async fn ipv6_clients_are_matched_by_their_own_networks() {
    let storage = Arc::new(TestStorage::create(crate::BACKEND).await);
    let app = spawn_app_with(storage, TestClock::START, |settings| {
        settings.listen = "[::1]:0".parse().unwrap();
    })
    .await;
    let api = app.create_api("ipv6").await;
    let (_, loopback_only) = app
        .create_key(&api, json!({ "restrictions": { "allowedIps": ["::1"] } }))
        .await;
    let (_, documentation) = app
        .create_key(
            &api,
            json!({ "restrictions": { "allowedIps": ["2001:db8::/32", "10.0.0.0/8"] } }),
        )
        .await;
    assert_eq!(code_from(&app, "::1", &loopback_only).await, "VALID");
    assert_eq!(code_from(&app, "::1", &documentation).await, "FORBIDDEN");

    // The end client named in the body, at the network's edges.
    for (client, code) in [
        ("2001:db8::", "VALID"),
        ("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "VALID"),
        ("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", "FORBIDDEN"),
        ("2001:db9::", "FORBIDDEN"),
        // An IPv4 client seen through a dual-stack socket matches the IPv4 rule.
        ("::ffff:10.1.2.3", "VALID"),
        ("10.255.255.255", "VALID"),
        ("11.0.0.0", "FORBIDDEN"),
    ] {
        let data = verify_from(
            &app,
            ip("::1"),
            &[],
            json!({ "key": documentation, "clientIp": client }),
        )
        .await;
        assert_eq!(data["code"], code, "{client}");
    }
}

#[tokio::test]
async fn origins_admit_listed_hosts_from_either_header_or_the_body() {
    let app = spawn_app().await;
    let api = app.create_api("browser").await;
    let (_, key) = app
        .create_key(
            &api,
            json!({ "restrictions": { "allowedOrigins": ["App.Example.com", "*.example.org", "localhost:3000"] } }),
        )
        .await;
    for (headers, code) in [
        (vec![("Origin", "https://app.example.com")], "VALID"),
        (vec![("Origin", "https://APP.EXAMPLE.COM:8443")], "VALID"),
        (
            vec![("Referer", "https://a.b.example.org/page?x=1")],
            "VALID",
        ),
        (vec![("Origin", "http://localhost:3000")], "VALID"),
        (vec![("Origin", "http://localhost:3001")], "FORBIDDEN"),
        (vec![("Origin", "https://example.org")], "FORBIDDEN"),
        (
            vec![("Origin", "https://app.example.com.evil.net")],
            "FORBIDDEN",
        ),
        (vec![("Origin", "null")], "FORBIDDEN"),
        // Origin is preferred over Referer.
        (
            vec![
                ("Origin", "https://evil.net"),
                ("Referer", "https://app.example.com/"),
            ],
            "FORBIDDEN",
        ),
        // No origin at all: a browser-only key used from a server.
        (vec![], "FORBIDDEN"),
    ] {
        assert_eq!(
            code_with_headers(&app, &headers, &key).await,
            code,
            "{headers:?}"
        );
    }
    // The body's origin is used in preference to the request's own headers.
    let data = verify_from(
        &app,
        ip("127.0.0.1"),
        &[("Origin", "https://evil.net")],
        json!({ "key": key, "origin": "https://shop.example.org" }),
    )
    .await;
    assert_eq!(data["code"], "VALID");
    assert_eq!(
        code_with(&app, json!({ "key": key, "origin": "evil.net" })).await,
        "FORBIDDEN"
    );
}

#[tokio::test]
async fn api_restrictions_apply_to_every_key_and_both_must_pass() {
    let app = spawn_app().await;
    let api = app.create_api("fenced").await;
    let (_, open_key) = app.create_key(&api, json!({})).await;
    let (_, narrow_key) = app
        .create_key(
            &api,
            json!({ "restrictions": { "allowedIps": ["10.1.0.0/16"] } }),
        )
        .await;
    // Cached before the API changes: the change must reach the cached record.
    assert_eq!(code_with(&app, json!({ "key": open_key })).await, "VALID");

    let updated = app
        .call(
            "apis.updateApi",
            json!({ "apiId": api, "restrictions": { "allowedIps": ["10.0.0.0/8"] } }),
        )
        .await;
    assert_eq!(
        updated.ok()["restrictions"]["allowedIps"],
        json!(["10.0.0.0/8"])
    );
    let shown = app.call("apis.getApi", json!({ "apiId": api })).await;
    assert_eq!(
        shown.ok()["restrictions"]["allowedIps"],
        json!(["10.0.0.0/8"])
    );

    assert_eq!(
        code_with(&app, json!({ "key": open_key })).await,
        "FORBIDDEN"
    );
    let from = |client: &str, key: &str| json!({ "key": key, "clientIp": client });
    assert_eq!(code_with(&app, from("10.9.9.9", &open_key)).await, "VALID");
    assert_eq!(
        code_with(&app, from("10.9.9.9", &narrow_key)).await,
        "FORBIDDEN"
    );
    assert_eq!(
        code_with(&app, from("10.1.9.9", &narrow_key)).await,
        "VALID"
    );
    assert_eq!(
        code_with(&app, from("192.0.2.1", &narrow_key)).await,
        "FORBIDDEN"
    );

    // Clearing the API's restrictions leaves the key's own.
    let cleared = app
        .call(
            "apis.updateApi",
            json!({ "apiId": api, "restrictions": null }),
        )
        .await;
    assert!(cleared.ok().get("restrictions").is_none());
    assert_eq!(code_with(&app, json!({ "key": open_key })).await, "VALID");
    assert_eq!(
        code_with(&app, from("10.9.9.9", &narrow_key)).await,
        "FORBIDDEN"
    );

    // Creating an API with restrictions works the same.
    let created = app
        .call(
            "apis.createApi",
            json!({ "name": "born-fenced", "restrictions": { "allowedOrigins": ["*.example.com"] } }),
        )
        .await;
    let fenced = created.ok()["apiId"].as_str().unwrap().to_owned();
    let (_, key) = app.create_key(&fenced, json!({})).await;
    assert_eq!(code_with(&app, json!({ "key": key })).await, "FORBIDDEN");
    assert_eq!(
        code_with(
            &app,
            json!({ "key": key, "origin": "https://a.example.com" })
        )
        .await,
        "VALID"
    );
}

#[tokio::test]
async fn clearing_a_keys_restrictions_lifts_them_at_once() {
    let app = spawn_app().await;
    let api = app.create_api("lifted").await;
    let (key_id, key) = app
        .create_key(
            &api,
            json!({ "restrictions": { "allowedIps": ["192.0.2.0/24"] } }),
        )
        .await;
    assert_eq!(code_with(&app, json!({ "key": key })).await, "FORBIDDEN");

    let update = |restrictions: Value| json!({ "keyId": key_id, "restrictions": restrictions });
    app.call(
        "keys.updateKey",
        update(json!({ "allowedIps": ["127.0.0.0/8"] })),
    )
    .await
    .ok();
    assert_eq!(code_with(&app, json!({ "key": key })).await, "VALID");
    app.call(
        "keys.updateKey",
        update(json!({ "allowedIps": ["192.0.2.0/24"] })),
    )
    .await
    .ok();
    assert_eq!(code_with(&app, json!({ "key": key })).await, "FORBIDDEN");

    // Updating something else keeps the restrictions.
    app.call(
        "keys.updateKey",
        json!({ "keyId": key_id, "name": "renamed" }),
    )
    .await
    .ok();
    assert_eq!(code_with(&app, json!({ "key": key })).await, "FORBIDDEN");

    app.call("keys.updateKey", update(Value::Null)).await.ok();
    assert_eq!(code_with(&app, json!({ "key": key })).await, "VALID");
    let shown = app.call("keys.getKey", json!({ "keyId": key_id })).await;
    assert!(shown.ok().get("restrictions").is_none());

    // Empty lists restrict nothing, the same as clearing.
    app.call(
        "keys.updateKey",
        update(json!({ "allowedIps": [], "allowedOrigins": [] })),
    )
    .await
    .ok();
    assert_eq!(code_with(&app, json!({ "key": key })).await, "VALID");
}

#[tokio::test]
async fn malformed_restrictions_and_client_fields_are_400s() {
    let app = spawn_app().await;
    let api = app.create_api("strict").await;
    let create = |restrictions: Value| json!({ "apiId": api, "restrictions": restrictions });
    app.call(
        "keys.createKey",
        create(json!({ "allowedIps": ["10.0.0.1/8"] })),
    )
    .await
    .invalid_at("body.restrictions.allowedIps[0]");
    app.call(
        "keys.createKey",
        create(json!({ "allowedIps": ["10.0.0.0/8", "300.0.0.1"] })),
    )
    .await
    .invalid_at("body.restrictions.allowedIps[1]");
    app.call(
        "keys.createKey",
        create(json!({ "allowedIps": ["::/129"] })),
    )
    .await
    .invalid_at("body.restrictions.allowedIps[0]");
    let many: Vec<String> = (0..101).map(|i| format!("10.0.0.{i}")).collect();
    app.call("keys.createKey", create(json!({ "allowedIps": many })))
        .await
        .invalid_at("body.restrictions.allowedIps");
    app.call(
        "keys.createKey",
        create(json!({ "allowedOrigins": ["https://app.example.com"] })),
    )
    .await
    .invalid_at("body.restrictions.allowedOrigins[0]");
    app.call(
        "apis.updateApi",
        json!({ "apiId": api, "restrictions": { "allowedOrigins": ["a.*.com"] } }),
    )
    .await
    .invalid_at("body.restrictions.allowedOrigins[0]");

    let (_, key) = app.create_key(&api, json!({})).await;
    app.call(
        "keys.verifyKey",
        json!({ "key": key, "clientIp": "10.0.0.256" }),
    )
    .await
    .invalid_at("body.clientIp");
    app.call(
        "keys.verifyKey",
        json!({ "key": key, "origin": "https://" }),
    )
    .await
    .invalid_at("body.origin");
}

#[tokio::test]
async fn update_api_needs_its_permission_and_hides_other_workspaces() {
    let app = spawn_app().await;
    let api = app.create_api("guarded").await;
    let body = json!({ "apiId": api, "restrictions": { "allowedIps": ["10.0.0.0/8"] } });
    let reader = app.root_key_with(&["api.*.read_api"]).await;
    app.call_as(&reader, "apis.updateApi", body.clone())
        .await
        .err(403);
    let updater = app.root_key_with(&[&format!("api.{api}.update_api")]).await;
    app.call_as(&updater, "apis.updateApi", body.clone())
        .await
        .ok();
    let (_, stranger) = app.other_workspace().await;
    app.call_as(&stranger, "apis.updateApi", body)
        .await
        .err(404);
    let audit = app
        .call("audit.listLogs", json!({ "action": "api.update" }))
        .await;
    assert!(
        audit.ok().to_string().contains("10.0.0.0/8"),
        "the change is audited: {}",
        audit.ok()
    );
}

#[tokio::test]
async fn forbidden_verifications_are_recorded_like_other_outcomes() {
    let app = spawn_app().await;
    let api = app.create_api("recorded").await;
    let (key_id, key) = app
        .create_key(
            &api,
            json!({ "restrictions": { "allowedIps": ["192.0.2.1"] } }),
        )
        .await;
    assert_eq!(code_with(&app, json!({ "key": key })).await, "FORBIDDEN");
    assert_eq!(
        code_with(&app, json!({ "key": key, "clientIp": "192.0.2.1" })).await,
        "VALID"
    );
    let started = Instant::now();
    loop {
        let rows = app
            .store
            .verification_rollups(&app.workspace, Granularity::Minute)
            .await
            .unwrap();
        let mut outcomes: Vec<(&str, i64)> = rows
            .iter()
            .filter(|r| r.key_id.as_str() == key_id)
            .map(|r| (r.outcome.as_str(), r.count))
            .collect();
        outcomes.sort_unstable();
        if outcomes == [("FORBIDDEN", 1), ("VALID", 1)] {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "recorded: {outcomes:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn spawn_behind_proxy(proxies: &[&str]) -> TestApp {
    let storage = Arc::new(TestStorage::create(crate::BACKEND).await);
    let proxies: Vec<IpNetwork> = proxies
        .iter()
        .map(|p| IpNetwork::parse(p).unwrap())
        .collect();
    spawn_app_with(storage, TestClock::START, move |settings| {
        settings.trusted_proxies = proxies;
    })
    .await
}

async fn code_via(app: &TestApp, peer: &str, forwarded: &str, key: &str) -> String {
    let data = verify_from(
        app,
        ip(peer),
        &[("X-Forwarded-For", forwarded)],
        json!({ "key": key }),
    )
    .await;
    data["code"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn forwarded_for_is_believed_only_from_trusted_proxies() {
    let app = spawn_behind_proxy(&["127.0.0.5", "127.0.0.6"]).await;
    let api = app.create_api("proxied").await;
    let (_, key) = app
        .create_key(
            &api,
            json!({ "restrictions": { "allowedIps": ["198.51.100.7"] } }),
        )
        .await;
    // Through the proxy: the address it saw is the client.
    assert_eq!(
        code_via(&app, "127.0.0.5", "198.51.100.7", &key).await,
        "VALID"
    );
    // Through two trusted proxies: the first untrusted hop from the right.
    assert_eq!(
        code_via(&app, "127.0.0.5", "198.51.100.7, 127.0.0.6", &key).await,
        "VALID"
    );
    // A client that put the allowed address in its own header, behind the proxy: the proxy
    // appended the client's real address, which is what counts.
    assert_eq!(
        code_via(&app, "127.0.0.5", "198.51.100.7, 203.0.113.9", &key).await,
        "FORBIDDEN"
    );
    // A spoofed header straight from an untrusted peer is ignored.
    assert_eq!(
        code_via(&app, "127.0.0.7", "198.51.100.7", &key).await,
        "FORBIDDEN"
    );
}

#[tokio::test]
async fn forwarded_for_is_ignored_without_trusted_proxies() {
    let app = spawn_app().await;
    let api = app.create_api("direct").await;
    let (_, key) = app
        .create_key(
            &api,
            json!({ "restrictions": { "allowedIps": ["198.51.100.7"] } }),
        )
        .await;
    assert_eq!(
        code_via(&app, "127.0.0.1", "198.51.100.7", &key).await,
        "FORBIDDEN"
    );
    let (_, local) = app
        .create_key(
            &api,
            json!({ "restrictions": { "allowedIps": ["127.0.0.8"] } }),
        )
        .await;
    assert_eq!(
        code_via(&app, "127.0.0.8", "198.51.100.7", &local).await,
        "VALID"
    );
}

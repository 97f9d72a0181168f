//! Bad input: every malformed body, wrong type and broken bound is a 400 naming the field;
//! oversized bodies are 413; unknown routes 404. Never a 5xx.

use serde_json::{Value, json};

use crate::helpers::{ROOT_KEY, reply, spawn_app};

#[tokio::test]
async fn bounds_of_create_key_are_enforced() {
    let app = spawn_app().await;
    let api = app.create_api("bounds").await;
    let too_much_meta: serde_json::Map<String, Value> =
        (0..101).map(|i| (format!("k{i}"), json!(i))).collect();
    let cases: Vec<(Value, &str)> = vec![
        (json!({}), "body.apiId"),
        (json!({ "apiId": "ab" }), "body.apiId"),
        (json!({ "apiId": "api-with-dash" }), "body.apiId"),
        (json!({ "apiId": api, "prefix": "" }), "body.prefix"),
        (
            json!({ "apiId": api, "prefix": "a".repeat(17) }),
            "body.prefix",
        ),
        (json!({ "apiId": api, "prefix": "no-dash" }), "body.prefix"),
        (json!({ "apiId": api, "name": "" }), "body.name"),
        (
            json!({ "apiId": api, "name": "n".repeat(256) }),
            "body.name",
        ),
        (json!({ "apiId": api, "byteLength": 15 }), "body.byteLength"),
        (
            json!({ "apiId": api, "byteLength": 256 }),
            "body.byteLength",
        ),
        (json!({ "apiId": api, "meta": too_much_meta }), "body.meta"),
        (json!({ "apiId": api, "meta": [1, 2] }), "body.meta"),
        (json!({ "apiId": api, "expires": -1 }), "body.expires"),
        (
            json!({ "apiId": api, "expires": 4_102_444_800_001_i64 }),
            "body.expires",
        ),
        (json!({ "apiId": api, "expires": 1.5 }), "body.expires"),
        (
            json!({ "apiId": api, "credits": {} }),
            "body.credits.remaining",
        ),
        (
            json!({ "apiId": api, "credits": { "remaining": -1 } }),
            "body.credits.remaining",
        ),
        (
            json!({ "apiId": api, "credits": { "remaining": "5" } }),
            "body.credits.remaining",
        ),
        (
            json!({ "apiId": api, "credits": { "remaining": null, "refill": { "interval": "daily", "amount": 1 } } }),
            "body.credits.refill",
        ),
        (
            json!({ "apiId": api, "credits": { "remaining": 1, "refill": { "interval": "weekly", "amount": 1 } } }),
            "body.credits.refill.interval",
        ),
        (
            json!({ "apiId": api, "credits": { "remaining": 1, "refill": { "interval": "daily", "amount": 0 } } }),
            "body.credits.refill.amount",
        ),
        (
            json!({ "apiId": api, "credits": { "remaining": 1, "refill": { "interval": "monthly", "amount": 1 } } }),
            "body.credits.refill.refillDay",
        ),
        (
            json!({ "apiId": api, "credits": { "remaining": 1, "refill": { "interval": "monthly", "amount": 1, "refillDay": 32 } } }),
            "body.credits.refill.refillDay",
        ),
        (json!({ "apiId": api, "enabled": "yes" }), "body.enabled"),
        (json!({ "apiId": api, "unknownField": { "x": 1 } }), ""),
        (
            json!({ "apiId": api, "byteLength": 18_446_744_073_709_551_615_u64 }),
            "body.byteLength",
        ),
    ];
    for (body, location) in cases {
        let reply = app.call("keys.createKey", body.clone()).await;
        if location.is_empty() {
            // Unknown fields are ignored.
            reply.ok();
            continue;
        }
        assert_eq!(reply.status, 400, "{body} -> {}", reply.body);
        reply.invalid_at(location);
    }
}

#[tokio::test]
async fn every_problem_is_listed_at_once() {
    let app = spawn_app().await;
    let reply = app
        .call(
            "keys.createKey",
            json!({ "prefix": "bad-prefix", "byteLength": 1, "name": "" }),
        )
        .await;
    let error = reply.err(400);
    let locations: Vec<&str> = error["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["location"].as_str().unwrap())
        .collect();
    for location in ["body.apiId", "body.prefix", "body.byteLength", "body.name"] {
        assert!(
            locations.contains(&location),
            "{location} missing from {locations:?}"
        );
    }
    assert_eq!(
        error["type"],
        "https://unkey.com/docs/errors/unkey/application/invalid_input"
    );
}

#[tokio::test]
async fn bounds_of_other_endpoints_are_enforced() {
    let app = spawn_app().await;
    let api = app.create_api("other-bounds").await;
    let (key_id, _) = app.create_key(&api, json!({})).await;
    let cases: Vec<(&str, Value, &str)> = vec![
        ("apis.createApi", json!({}), "body.name"),
        ("apis.createApi", json!({ "name": "ab" }), "body.name"),
        (
            "apis.createApi",
            json!({ "name": "a".repeat(257) }),
            "body.name",
        ),
        ("apis.createApi", json!({ "name": 123 }), "body.name"),
        ("apis.getApi", json!({ "apiId": "api_1" }), "body.apiId"),
        ("apis.deleteApi", json!({}), "body.apiId"),
        ("apis.listKeys", json!({ "apiId": "" }), "body.apiId"),
        (
            "apis.listKeys",
            json!({ "apiId": api, "externalId": "user 1" }),
            "body.externalId",
        ),
        ("keys.getKey", json!({ "keyId": "k" }), "body.keyId"),
        (
            "keys.getKey",
            json!({ "keyId": "key_1", "decrypt": "no" }),
            "body.decrypt",
        ),
        ("keys.whoami", json!({ "key": "" }), "body.key"),
        ("keys.whoami", json!({ "key": "k".repeat(513) }), "body.key"),
        ("keys.verifyKey", json!({}), "body.key"),
        (
            "keys.verifyKey",
            json!({ "key": "k".repeat(513) }),
            "body.key",
        ),
        (
            "keys.verifyKey",
            json!({ "key": "k", "credits": { "cost": -1 } }),
            "body.credits.cost",
        ),
        (
            "keys.verifyKey",
            json!({ "key": "k", "credits": { "cost": 1_000_000_000_001_i64 } }),
            "body.credits.cost",
        ),
        (
            "keys.verifyKey",
            json!({ "key": "k", "credits": {} }),
            "body.credits.cost",
        ),
        (
            "keys.verifyKey",
            json!({ "key": "k", "tags": vec!["t"; 21] }),
            "body.tags",
        ),
        (
            "keys.verifyKey",
            json!({ "key": "k", "tags": [""] }),
            "body.tags[0]",
        ),
        (
            "keys.verifyKey",
            json!({ "key": "k", "migrationId": "m".repeat(257) }),
            "body.migrationId",
        ),
        (
            "keys.verifyKey",
            json!({ "key": "k", "ratelimits": [{ "name": "x" }] }),
            "body.ratelimits[0].name",
        ),
        (
            "keys.verifyKey",
            json!({ "key": "k", "ratelimits": [{ "name": "xyz", "limit": 5 }] }),
            "body.ratelimits[0]",
        ),
        (
            "keys.verifyKey",
            json!({ "key": "k", "ratelimits": [{ "name": "xyz", "limit": 5, "duration": 999 }] }),
            "body.ratelimits[0].duration",
        ),
        (
            "keys.createKey",
            json!({ "apiId": api, "ratelimits": [{ "name": "xyz", "limit": 0, "duration": 1000 }] }),
            "body.ratelimits[0].limit",
        ),
        (
            "keys.createKey",
            json!({ "apiId": api, "ratelimits": [
                { "name": "xyz", "limit": 1, "duration": 1000 },
                { "name": "xyz", "limit": 2, "duration": 1000 }
            ] }),
            "body.ratelimits[1].name",
        ),
        (
            "keys.updateKey",
            json!({ "keyId": key_id, "name": "" }),
            "body.name",
        ),
        (
            "keys.updateKey",
            json!({ "keyId": key_id, "expires": -5 }),
            "body.expires",
        ),
        (
            "keys.updateKey",
            json!({ "keyId": key_id, "externalId": "" }),
            "body.externalId",
        ),
        (
            "keys.updateKey",
            json!({ "keyId": key_id, "credits": { "remaining": -2 } }),
            "body.credits.remaining",
        ),
        (
            "keys.deleteKey",
            json!({ "keyId": key_id, "permanent": 1 }),
            "body.permanent",
        ),
        (
            "keys.rerollKey",
            json!({ "keyId": key_id, "expiration": -1 }),
            "body.expiration",
        ),
        (
            "keys.rerollKey",
            json!({ "keyId": key_id, "expiration": 4_102_444_800_001_i64 }),
            "body.expiration",
        ),
        (
            "keys.updateCredits",
            json!({ "keyId": key_id, "value": 1 }),
            "body.operation",
        ),
    ];
    for (operation, body, location) in cases {
        let reply = app.call(operation, body.clone()).await;
        assert_eq!(reply.status, 400, "{operation} {body} -> {}", reply.body);
        reply.invalid_at(location);
    }
}

async fn raw(
    app: &crate::helpers::TestApp,
    path: &str,
    body: impl Into<reqwest::Body>,
) -> crate::helpers::Reply {
    let response = app
        .client
        .post(format!("{}{path}", app.base_url))
        .bearer_auth(ROOT_KEY)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    reply(response).await
}

#[tokio::test]
async fn malformed_json_is_a_400() {
    let app = spawn_app().await;
    for body in [
        "{",
        "",
        "[]",
        "null",
        "{\"name\": \"abc\"} trailing",
        "{\"name\": \"a\u{0}\"",
        "\u{feff}{}",
    ] {
        let reply = raw(&app, "/v2/apis.createApi", body).await;
        assert_eq!(reply.status, 400, "{body:?} -> {}", reply.body);
        reply.err(400);
    }
}

#[tokio::test]
async fn bodies_over_one_mebibyte_are_413() {
    let app = spawn_app().await;
    let big = format!("{{\"name\": \"{}\"}}", "a".repeat(1024 * 1024));
    let reply = raw(&app, "/v2/apis.createApi", big).await;
    reply.err(413);
    // Just under the limit is parsed (and then fails validation, not size).
    let near = format!("{{\"name\": \"{}\"}}", "a".repeat(1024 * 1024 - 20));
    raw(&app, "/v2/apis.createApi", near)
        .await
        .invalid_at("body.name");
}

/// Sends `chunks` as a chunked body (no declared length) and returns the status line.
async fn post_chunked(app: &crate::helpers::TestApp, path: &str, chunks: &[&[u8]]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = app.base_url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {ROOT_KEY}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    for chunk in chunks {
        let size = format!("{:x}\r\n", chunk.len());
        // The server may answer (and close) before the whole body is sent.
        if stream.write_all(size.as_bytes()).await.is_err()
            || stream.write_all(chunk).await.is_err()
            || stream.write_all(b"\r\n").await.is_err()
        {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    answer.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn chunked_bodies_are_joined_and_limited_without_a_declared_length() {
    let app = spawn_app().await;
    // Split mid-document: only the joined body parses.
    let status = post_chunked(&app, "/v2/keys.verifyKey", &[b"{\"key\":\"sk_", b"nope\"}"]).await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    let big = vec![b'a'; 64 * 1024];
    let mut chunks: Vec<&[u8]> = vec![b"{\"name\": \""];
    chunks.extend(std::iter::repeat_n(&big[..], 17));
    chunks.push(b"\"}");
    let status = post_chunked(&app, "/v2/apis.createApi", &chunks).await;
    assert_eq!(status, "HTTP/1.1 413 Payload Too Large");
}

#[tokio::test]
async fn unknown_routes_are_404_and_wrong_methods_405() {
    let app = spawn_app().await;
    let reply = raw(&app, "/v2/keys.doesNotExist", "{}").await;
    reply.err(404);
    let reply = raw(&app, "/v2/apps.createApp", "{}").await;
    reply.err(404);
    let response = app
        .client
        .get(format!("{}/v2/keys.createKey", app.base_url))
        .send()
        .await
        .unwrap();
    reply_of(response).await.err(405);
    let response = app
        .client
        .get(format!("{}/v2/liveness", app.base_url))
        .send()
        .await
        .unwrap();
    let live = reply_of(response).await;
    assert_eq!(live.ok(), &json!({ "message": "OK" }));
}

async fn reply_of(response: reqwest::Response) -> crate::helpers::Reply {
    reply(response).await
}

#[tokio::test]
async fn errors_are_problem_json_only_when_accepted() {
    let app = spawn_app().await;
    let send = |accept: &'static str| {
        app.client
            .post(format!("{}/v2/apis.getApi", app.base_url))
            .bearer_auth(ROOT_KEY)
            .header("accept", accept)
            .json(&json!({ "apiId": "api_missing1" }))
            .send()
    };
    let plain = send("application/json").await.unwrap();
    assert_eq!(plain.headers()["content-type"], "application/json");
    let problem = send("application/problem+json").await.unwrap();
    assert_eq!(
        problem.headers()["content-type"],
        "application/problem+json"
    );
    let any = send("*/*").await.unwrap();
    assert_eq!(any.headers()["content-type"], "application/problem+json");
}

#[tokio::test]
async fn text_with_a_nul_character_is_refused_on_every_store() {
    let app = spawn_app().await;
    let reply = app
        .call("apis.createApi", json!({ "name": "bad\u{0}name" }))
        .await;
    reply.invalid_at("body");
    let reply = app
        .call(
            "permissions.createPermission",
            json!({ "name": "\u{0}", "slug": "daily" }),
        )
        .await;
    reply.invalid_at("body");
    // An escaped backslash followed by "u0000" is ordinary text.
    let reply = app
        .call("apis.createApi", json!({ "name": "literal \\u0000" }))
        .await;
    assert_eq!(
        reply.ok()["apiId"]
            .as_str()
            .map(|id| id.starts_with("api_")),
        Some(true)
    );
}

//! Secrets never reach the logs: the real binary runs at the most verbose log level, in both
//! log formats, through a tour of every place a secret passes (keys, recoverable keys, root
//! keys, webhook secrets, the master key, secrets sent where they do not belong); afterwards
//! neither its stdout nor its stderr holds any of them, whole or their random part. Responses
//! to bad credentials, `/metrics` and the audit log are checked on the way.

mod common;

use std::process::Command;

use common::{Launch, ROOT_KEY, ServerProcess, binary, call};
use serde_json::{Value, json};

/// Every secret the tour saw, to look for afterwards.
#[derive(Default)]
struct Secrets(Vec<String>);

impl Secrets {
    /// Remembers `secret` and its random part (what follows the last `_`, or the key
    /// material after `<id>:`), which is what identifies it even if reformatted.
    fn add(&mut self, secret: &str) {
        assert!(!secret.is_empty());
        self.0.push(secret.to_owned());
        let body = secret
            .rsplit_once('_')
            .or_else(|| secret.split_once(':'))
            .map_or(secret, |(_, body)| body);
        if body.len() >= 16 {
            self.0.push(body.to_owned());
        }
    }

    fn add_str(&mut self, value: &Value) -> String {
        let secret = value.as_str().expect("a secret string").to_owned();
        self.add(&secret);
        secret
    }

    /// Fails naming the first secret found in `text`.
    fn assert_absent(&self, what: &str, text: &str) {
        for secret in &self.0 {
            assert!(
                !text.contains(secret.as_str()),
                "{what} contains the secret {secret}"
            );
        }
    }
}

fn generate_master_key() -> String {
    let output = Command::new(binary())
        .args(["master-key", "generate", "--id", "hygiene"])
        .output()
        .expect("run keywarden master-key generate");
    assert!(output.status.success());
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// A string shaped like a key that no server issued, sent where keys are checked.
fn stranger(tag: &str) -> String {
    format!("sk_{tag}9xQ2mZp7RkV4wL8nT3bY6cJ5hF1dG")
}

async fn tour(server: &ServerProcess, secrets: &mut Secrets) {
    let client = common::http_client();
    let ok = |(status, body): (u16, Value)| {
        assert_eq!(status, 200, "{body}");
        body["data"].clone()
    };

    let api = ok(call(
        &client,
        server,
        ROOT_KEY,
        "apis.createApi",
        json!({ "name": "tour" }),
    )
    .await)["apiId"]
        .as_str()
        .unwrap()
        .to_owned();

    // Keys: plain, prefixed, recoverable; verified, looked up, decrypted, rerolled.
    let mut keys = Vec::new();
    for extra in [
        json!({}),
        json!({ "prefix": "tour", "name": "prefixed" }),
        json!({ "recoverable": true, "prefix": "rec" }),
    ] {
        let mut body = json!({ "apiId": api });
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let data = ok(call(&client, server, ROOT_KEY, "keys.createKey", body).await);
        let key = secrets.add_str(&data["key"]);
        keys.push((data["keyId"].as_str().unwrap().to_owned(), key));
    }
    for (key_id, key) in &keys {
        let verified = ok(call(
            &client,
            server,
            ROOT_KEY,
            "keys.verifyKey",
            json!({ "key": key }),
        )
        .await);
        assert_eq!(verified["valid"], true);
        ok(call(
            &client,
            server,
            ROOT_KEY,
            "keys.whoami",
            json!({ "key": key }),
        )
        .await);
        ok(call(
            &client,
            server,
            ROOT_KEY,
            "keys.getKey",
            json!({ "keyId": key_id, "decrypt": true }),
        )
        .await);
    }
    let listed = ok(call(
        &client,
        server,
        ROOT_KEY,
        "apis.listKeys",
        json!({ "apiId": api, "decrypt": true }),
    )
    .await);
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["plaintext"] == keys[2].1.as_str()),
        "{listed}"
    );
    for (key_id, _) in &keys[1..] {
        let rerolled = ok(call(
            &client,
            server,
            ROOT_KEY,
            "keys.rerollKey",
            json!({ "keyId": key_id, "expiration": 60_000 }),
        )
        .await);
        secrets.add_str(&rerolled["key"]);
    }
    let unknown = stranger("unknown");
    secrets.add(&unknown);
    let verified = ok(call(
        &client,
        server,
        ROOT_KEY,
        "keys.verifyKey",
        json!({ "key": unknown }),
    )
    .await);
    assert_eq!(verified["code"], "NOT_FOUND");
    let (status, _) = call(
        &client,
        server,
        ROOT_KEY,
        "keys.whoami",
        json!({ "key": unknown }),
    )
    .await;
    assert_eq!(status, 404);

    // Root keys issued and rerolled over the API, then used.
    let root = ok(call(
        &client,
        server,
        ROOT_KEY,
        "rootKeys.createKey",
        json!({ "permissions": ["api.*.read_key", "api.*.verify_key"], "name": "tour" }),
    )
    .await);
    let root_key = secrets.add_str(&root["key"]);
    let rerolled_root = ok(call(
        &client,
        server,
        ROOT_KEY,
        "rootKeys.rerollKey",
        json!({ "keyId": root["keyId"], "expiration": 60_000 }),
    )
    .await);
    secrets.add_str(&rerolled_root["key"]);
    common::poll_status(
        &client,
        server,
        &root_key,
        "apis.listKeys",
        json!({ "apiId": api }),
        |s| s == 200,
    )
    .await;
    // A root key without decrypt_key asking for plaintexts.
    let (status, _) = call(
        &client,
        server,
        &root_key,
        "keys.getKey",
        json!({ "keyId": keys[2].0, "decrypt": true }),
    )
    .await;
    assert_eq!(status, 403);

    // Webhook secrets: issued on create and on rotation.
    let endpoint = ok(call(
        &client,
        server,
        ROOT_KEY,
        "webhooks.createEndpoint",
        json!({ "url": "http://127.0.0.1:9/hook", "eventTypes": ["key.created"] }),
    )
    .await);
    secrets.add_str(&endpoint["secret"]);
    let rotated = ok(call(
        &client,
        server,
        ROOT_KEY,
        "webhooks.rotateSecret",
        json!({ "endpointId": endpoint["endpointId"] }),
    )
    .await);
    secrets.add_str(&rotated["secret"]);
    ok(call(
        &client,
        server,
        ROOT_KEY,
        "keys.createKey",
        json!({ "apiId": api }),
    )
    .await);

    // Secrets where they do not belong: unknown root keys, other auth schemes, keys in
    // malformed bodies and in fields of the wrong type or shape.
    let bad_root = stranger("badroot");
    secrets.add(&bad_root);
    for authorization in [
        format!("Bearer {bad_root}"),
        format!("Basic {bad_root}"),
        format!("Bearer {}", keys[0].1),
        bad_root.clone(),
    ] {
        let response = client
            .post(server.url("/v2/apis.listKeys"))
            .header("authorization", &authorization)
            .json(&json!({ "apiId": api }))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_client_error());
        let text = response.text().await.unwrap();
        secrets.assert_absent("an authentication error response", &text);
    }
    let in_body = stranger("inbody");
    secrets.add(&in_body);
    for body in [
        format!("{{\"key\": \"{in_body}\""),
        format!("{{\"key\": \"{in_body}\", \"tags\": 5}}"),
        format!("{{\"key\": [\"{in_body}\"]}}"),
        format!("{{\"keyId\": \"{in_body}\", \"decrypt\": \"{in_body}\"}}"),
        format!("{{\"apiId\": \"{in_body}\", \"name\": \"{in_body}\"}}"),
    ] {
        for operation in [
            "keys.verifyKey",
            "keys.whoami",
            "keys.getKey",
            "keys.createKey",
        ] {
            let response = client
                .post(server.url(&format!("/v2/{operation}")))
                .bearer_auth(ROOT_KEY)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            assert!(!response.status().is_server_error(), "{operation}: {body}");
            let text = response.text().await.unwrap();
            assert!(!text.contains(&in_body), "{operation} echoed a key: {text}");
        }
    }
    let too_long = format!("{in_body}{}", "x".repeat(600));
    let (status, _) = call(
        &client,
        server,
        ROOT_KEY,
        "keys.verifyKey",
        json!({ "key": too_long }),
    )
    .await;
    assert_eq!(status, 400);

    // What the server shows about itself holds no secret either.
    let metrics = client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    secrets.assert_absent("/metrics", &metrics);
    let audit = ok(call(
        &client,
        server,
        ROOT_KEY,
        "audit.listLogs",
        json!({ "limit": 100 }),
    )
    .await);
    assert!(!audit.as_array().unwrap().is_empty());
    secrets.assert_absent("the audit log", &audit.to_string());
}

async fn no_secret_in_logs(format: &str) {
    let dir = tempfile::tempdir().unwrap();
    let master_key = generate_master_key();
    let key_file = dir.path().join("master-keys");
    std::fs::write(&key_file, format!("{master_key}\n")).unwrap();
    let key_file = key_file.to_str().unwrap().to_owned();
    let mut secrets = Secrets::default();
    secrets.add(ROOT_KEY);
    secrets.add(&master_key);

    let mut server = ServerProcess::start(Launch {
        dir: dir.path(),
        bootstrap_key: Some(ROOT_KEY),
        extra_args: &["--log-format", format, "--master-key-file", &key_file],
        envs: &[("RUST_LOG", "trace")],
    });
    tour(&server, &mut secrets).await;
    assert!(server.terminate().success());

    let stderr = server.stderr_text();
    let stdout = server.stdout.lock().unwrap().join("\n");
    // The capture worked: debug-level output of the tour is there. (Nothing in the server
    // or the libraries it uses emits at trace level today; trace is asked for so that
    // anything added later is covered.)
    assert!(
        stderr.contains("DEBUG"),
        "no debug lines: {}",
        &stderr[..stderr.len().min(4000)]
    );
    assert!(
        stderr.contains("key created"),
        "{format} logs lack the tour"
    );
    secrets.assert_absent(&format!("stderr ({format} logs)"), &stderr);
    secrets.assert_absent(&format!("stdout ({format} logs)"), &stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_json_logs() {
    no_secret_in_logs("json").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_text_logs() {
    no_secret_in_logs("text").await;
}

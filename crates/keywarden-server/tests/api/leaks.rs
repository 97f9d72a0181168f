//! Leaked keys: GitHub secret scanning partner reports (signed with a P-256 key made here),
//! `leaks.reportKey`, `leaks.checkKeys`, and the workspace policy they apply.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use keywarden_core::audit::{AuditAction, AuditFilter};
use keywarden_core::leak::PartnerKeys;
use keywarden_core::store::{AuditStore as _, PageRequest, WebhookStore as _};
use keywarden_core::webhook::WebhookEventType;
use keywarden_core::webhook_outbox::DeliveryFilter;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::{EncodePublicKey as _, LineEnding};
use serde_json::{Value, json};

use crate::backend::TestStorage;
use crate::helpers::{Reply, TestApp, TestClock, reply, spawn_app_with};

const KEY_ID: &str = "test-key-1";

fn signing_key() -> SigningKey {
    loop {
        let mut bytes = [0u8; 32];
        keywarden_core::random::fill(&mut bytes);
        if let Ok(key) = SigningKey::from_slice(&bytes) {
            return key;
        }
    }
}

struct Scanner {
    key: SigningKey,
}

impl Scanner {
    fn published(&self) -> PartnerKeys {
        let pem = self
            .key
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        let doc =
            json!({"public_keys": [{"key_identifier": KEY_ID, "key": pem, "is_current": true}]});
        PartnerKeys::from_github_json(&doc.to_string()).unwrap()
    }

    fn sign(&self, body: &[u8]) -> String {
        let signature: Signature = self.key.sign(body);
        STANDARD.encode(signature.to_der().as_bytes())
    }
}

async fn spawn_with_scanner() -> (TestApp, Scanner) {
    let scanner = Scanner { key: signing_key() };
    let keys = scanner.published();
    let storage = std::sync::Arc::new(TestStorage::create(crate::BACKEND).await);
    let app = spawn_app_with(storage, TestClock::START, |s| s.service.partner_keys = keys).await;
    (app, scanner)
}

/// POSTs a partner request with the given headers.
async fn post_report(app: &TestApp, body: &[u8], key_id: Option<&str>, sig: Option<&str>) -> Reply {
    let mut request = app
        .client
        .post(format!("{}/v2/leaks.githubSecretScanning", app.base_url))
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(key_id) = key_id {
        request = request.header("Github-Public-Key-Identifier", key_id);
    }
    if let Some(sig) = sig {
        request = request.header("Github-Public-Key-Signature", sig);
    }
    reply(request.send().await.unwrap()).await
}

fn report_body(tokens: &[&str]) -> Vec<u8> {
    let reports: Vec<Value> = tokens
        .iter()
        .map(|t| {
            json!({"token": t, "type": "keywarden_api_key", "url": "https://github.com/o/r/blob/abc/x.env", "source": "content"})
        })
        .collect();
    serde_json::to_vec(&reports).unwrap()
}

async fn signed_report(app: &TestApp, scanner: &Scanner, tokens: &[&str]) -> Reply {
    let body = report_body(tokens);
    post_report(app, &body, Some(KEY_ID), Some(&scanner.sign(&body))).await
}

async fn valid(app: &TestApp, key: &str) -> bool {
    app.verify(key).await["valid"].as_bool().unwrap()
}

async fn leak_entries(app: &TestApp, workspace: &keywarden_core::id::WorkspaceId) -> usize {
    app.store
        .audit_entries(
            workspace,
            &AuditFilter {
                action: Some(AuditAction::KeyLeaked),
                ..AuditFilter::default()
            },
            PageRequest {
                from: None,
                limit: 100,
            },
        )
        .await
        .unwrap()
        .items
        .len()
}

async fn leaked_deliveries(app: &TestApp) -> usize {
    app.store
        .webhook_deliveries(
            &app.workspace,
            &DeliveryFilter::default(),
            PageRequest {
                from: None,
                limit: 100,
            },
        )
        .await
        .unwrap()
        .items
        .iter()
        .filter(|d| d.event_type == WebhookEventType::KeyLeaked)
        .count()
}

#[tokio::test]
async fn a_signed_report_revokes_audits_announces_and_answers_true_positive() {
    let (app, scanner) = spawn_with_scanner().await;
    app.call(
        "webhooks.createEndpoint",
        json!({"url": "http://127.0.0.1:9/hook", "eventTypes": ["key.leaked"]}),
    )
    .await
    .ok();
    let api = app.create_api("leaky").await;
    let (key_id, key) = app.create_key(&api, json!({})).await;
    assert!(valid(&app, &key).await);

    let reply = signed_report(&app, &scanner, &[&key]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.body,
        json!([{"token_raw": key, "token_type": "keywarden_api_key", "label": "true_positive"}])
    );
    assert!(
        !valid(&app, &key).await,
        "a revoked key must stop verifying at once"
    );
    assert_eq!(leak_entries(&app, &app.workspace).await, 1);
    assert_eq!(leaked_deliveries(&app).await, 1);

    let reports = app.call("leaks.listReports", json!({})).await;
    let listed = reports.ok().as_array().unwrap().clone();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["keyId"], key_id);
    assert_eq!(listed[0]["action"], "revoked");
    assert_eq!(listed[0]["reporter"]["type"], "github_secret_scanning");
    assert_eq!(listed[0]["source"], "content");
    assert!(
        !reports.body.to_string().contains(&key),
        "reports never echo the key"
    );

    // A second report of the same (now revoked) key is still a true positive, changing nothing.
    let again = signed_report(&app, &scanner, &[&key]).await;
    assert_eq!(again.body[0]["label"], "true_positive");
    assert_eq!(leak_entries(&app, &app.workspace).await, 1);
    app.stop().await;
}

#[tokio::test]
async fn unsigned_or_badly_signed_reports_are_refused_and_change_nothing() {
    let (app, scanner) = spawn_with_scanner().await;
    let api = app.create_api("leaky").await;
    let (_, key) = app.create_key(&api, json!({})).await;
    let body = report_body(&[&key]);
    let good = scanner.sign(&body);
    let other = Scanner { key: signing_key() };
    let forged = other.sign(&body);
    let cases = [
        (None, None),
        (Some(KEY_ID), None),
        (None, Some(good.as_str())),
        (Some("unknown-key"), Some(good.as_str())),
        (Some(KEY_ID), Some("bm90IGEgc2lnbmF0dXJl")),
        (Some(KEY_ID), Some(forged.as_str())),
    ];
    for (key_id, sig) in cases {
        let reply = post_report(&app, &body, key_id, sig).await;
        let error = reply.err(401);
        assert!(!error["detail"].as_str().unwrap().contains(&key));
    }
    // A valid signature over a different body does not carry over.
    let tampered = report_body(&[&key, "x"]);
    post_report(&app, &tampered, Some(KEY_ID), Some(&good))
        .await
        .err(401);
    // Oversized bodies get the Unkey 413 before any signature work.
    let huge = vec![b' '; 1024 * 1024 + 1];
    post_report(&app, &huge, Some(KEY_ID), Some(&good))
        .await
        .err(413);
    assert!(valid(&app, &key).await);
    assert_eq!(leak_entries(&app, &app.workspace).await, 0);
    app.stop().await;
}

#[tokio::test]
async fn unknown_tokens_are_false_positives_and_change_nothing() {
    let (app, scanner) = spawn_with_scanner().await;
    let api = app.create_api("leaky").await;
    let (_, key) = app.create_key(&api, json!({})).await;
    let unknown =
        keywarden_core::key_format::generate(None, keywarden_core::key_format::ByteLength::DEFAULT);
    let unknown = unknown.plaintext.expose().to_owned();
    let reply = signed_report(&app, &scanner, &[&unknown, "ghp_notours"]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let labels: Vec<&str> = reply
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["false_positive", "false_positive"]);
    assert_eq!(reply.body[1]["token_type"], "keywarden_api_key");
    assert!(valid(&app, &key).await);
    assert_eq!(leak_entries(&app, &app.workspace).await, 0);
    // Malformed bodies with a valid signature are a 400, not a 500.
    let junk = br#"{"not": "an array"}"#;
    post_report(&app, junk, Some(KEY_ID), Some(&scanner.sign(junk)))
        .await
        .invalid_at("body");
    app.stop().await;
}

#[tokio::test]
async fn disable_and_flag_policies_apply_and_each_workspace_keeps_its_own() {
    let (app, scanner) = spawn_with_scanner().await;
    assert_eq!(
        app.call("leaks.getPolicy", json!({})).await.ok()["policy"],
        "revoke"
    );
    app.call("leaks.setPolicy", json!({"policy": "disable"}))
        .await
        .ok();
    app.call("leaks.setPolicy", json!({"policy": "ignore"}))
        .await
        .invalid_at("body.policy");
    let api = app.create_api("leaky").await;
    let (key_id, key) = app.create_key(&api, json!({})).await;

    let (other_ws, other_root) = app.other_workspace().await;
    app.call_as(&other_root, "leaks.setPolicy", json!({"policy": "flag"}))
        .await
        .ok();
    let other_api = app
        .call_as(&other_root, "apis.createApi", json!({"name": "theirs"}))
        .await
        .ok()["apiId"]
        .as_str()
        .unwrap()
        .to_owned();
    let other_key = app
        .call_as(&other_root, "keys.createKey", json!({"apiId": other_api}))
        .await
        .ok()["key"]
        .as_str()
        .unwrap()
        .to_owned();

    let reply = signed_report(&app, &scanner, &[&key, &other_key]).await;
    assert_eq!(reply.body[0]["label"], "true_positive");
    assert_eq!(reply.body[1]["label"], "true_positive");

    // disable: the key stops verifying but still exists, disabled.
    let verified = app.verify(&key).await;
    assert_eq!(verified["valid"], false);
    assert_eq!(verified["code"], "DISABLED");
    let got = app.call("keys.getKey", json!({"keyId": key_id})).await;
    assert_eq!(got.ok()["enabled"], false);
    // flag: the other workspace's key keeps working; the report is recorded there only.
    let theirs = app
        .call_as(&other_root, "keys.verifyKey", json!({"key": other_key}))
        .await;
    assert_eq!(theirs.ok()["valid"], true);
    assert_eq!(leak_entries(&app, &app.workspace).await, 1);
    assert_eq!(leak_entries(&app, &other_ws).await, 1);
    let theirs = app
        .call_as(&other_root, "leaks.listReports", json!({}))
        .await;
    assert_eq!(theirs.ok()[0]["action"], "flagged");
    app.stop().await;
}

#[tokio::test]
async fn report_key_and_check_keys_work_within_the_callers_workspace() {
    let (app, _) = spawn_with_scanner().await;
    let api = app.create_api("leaky").await;
    let (key_id, key) = app.create_key(&api, json!({})).await;
    let (_, other_root) = app.other_workspace().await;

    let check = app
        .call("leaks.checkKeys", json!({"keys": [key, "sk_nothing_here"]}))
        .await;
    let answers = check.ok().as_array().unwrap().clone();
    assert_eq!(answers[0]["live"], true);
    assert_eq!(answers[0]["keyId"], key_id);
    assert_eq!(answers[1], json!({"live": false}));
    assert!(!check.body.to_string().contains(&key));
    // Another workspace neither sees nor revokes it.
    let theirs = app
        .call_as(&other_root, "leaks.checkKeys", json!({"keys": [key]}))
        .await;
    assert_eq!(theirs.ok()[0]["live"], false);
    app.call_as(&other_root, "leaks.reportKey", json!({"key": key}))
        .await
        .err(404);
    // checkKeys is not a verification and changes nothing.
    assert!(valid(&app, &key).await);
    app.call("leaks.checkKeys", json!({"keys": []}))
        .await
        .invalid_at("body.keys");

    let limited = app.root_key_with(&["leak.*.check_keys"]).await;
    let denied = app
        .call_as(&limited, "leaks.reportKey", json!({"key": key}))
        .await;
    assert!(
        denied.err(403)["detail"]
            .as_str()
            .unwrap()
            .contains("leak.*.report_key"),
        "{}",
        denied.body
    );

    let reported = app
        .call(
            "leaks.reportKey",
            json!({"key": key, "url": "https://pastebin.example/x", "source": "paste"}),
        )
        .await;
    assert_eq!(reported.ok()["action"], "revoked");
    assert_eq!(reported.ok()["keyId"], key_id);
    assert!(!valid(&app, &key).await);
    let after = app.call("leaks.checkKeys", json!({"keys": [key]})).await;
    assert_eq!(after.ok()[0]["live"], false);
    let reports = app.call("leaks.listReports", json!({})).await;
    assert_eq!(reports.ok()[0]["reporter"]["type"], "root_key");
    assert_eq!(reports.ok()[0]["url"], "https://pastebin.example/x");
    app.call("leaks.reportKey", json!({"key": key}))
        .await
        .err(404);
    app.stop().await;
}

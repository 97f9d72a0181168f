//! Recoverable keys: sealed under the workspace's data key, read back with `decrypt: true`
//! by root keys holding `decrypt_key`, never stored in the clear, and surviving master-key
//! rotation.

use std::sync::Arc;

use keywarden_core::store::Store as _;
use keywarden_core::vault::{MasterKey, MasterKeyId, MasterKeyring};
use keywarden_server::service::{RotationReport, SecretReport, rotate_master_key};
use serde_json::json;

use crate::helpers::{TestApp, TestClock, spawn_app_with, try_spawn_app_with};

/// A fresh master key's configuration entry, `<id>:<base64>`.
fn master_key(id: &str) -> String {
    MasterKey::generate(MasterKeyId::parse(id).unwrap()).expose_config_entry()
}

fn ring(entries: &[&str]) -> MasterKeyring {
    MasterKeyring::parse(&entries.join("\n")).unwrap()
}

async fn spawn_with_keys(
    storage: Arc<crate::backend::TestStorage>,
    keys: MasterKeyring,
) -> TestApp {
    spawn_app_with(storage, TestClock::START, |s| {
        s.service.master_keys = Some(keys);
    })
    .await
}

async fn spawn_recoverable() -> TestApp {
    let storage = Arc::new(crate::backend::TestStorage::create(crate::BACKEND).await);
    spawn_with_keys(storage, ring(&[&master_key("mk1")])).await
}

/// The random part of a key: what follows its prefix.
fn body_of(key: &str) -> &str {
    key.rsplit_once('_').map_or(key, |(_, body)| body)
}

async fn decrypted(app: &TestApp, root_key: &str, key_id: &str) -> crate::helpers::Reply {
    app.call_as(
        root_key,
        "keys.getKey",
        json!({ "keyId": key_id, "decrypt": true }),
    )
    .await
}

#[tokio::test]
async fn a_recoverable_key_reads_back_with_decrypt() {
    let app = spawn_recoverable().await;
    let api = app.create_api("recoverable").await;
    let (key_id, key) = app
        .create_key(&api, json!({ "recoverable": true, "prefix": "sk" }))
        .await;
    let (plain_id, _) = app.create_key(&api, json!({})).await;

    let got = decrypted(&app, crate::helpers::ROOT_KEY, &key_id).await;
    assert_eq!(got.ok()["plaintext"], key.as_str());
    // Without `decrypt`, or for a key that is not recoverable, there is no plaintext.
    let plain = app.call("keys.getKey", json!({ "keyId": key_id })).await;
    assert!(plain.ok().get("plaintext").is_none(), "{}", plain.body);
    let other = decrypted(&app, crate::helpers::ROOT_KEY, &plain_id).await;
    assert!(other.ok().get("plaintext").is_none(), "{}", other.body);

    let listed = app
        .call("apis.listKeys", json!({ "apiId": api, "decrypt": true }))
        .await;
    let items = listed.ok().as_array().unwrap().clone();
    assert_eq!(items.len(), 2);
    for item in items {
        if item["keyId"] == key_id.as_str() {
            assert_eq!(item["plaintext"], key.as_str());
        } else {
            assert!(item.get("plaintext").is_none(), "{item}");
        }
    }
    let listed = app.call("apis.listKeys", json!({ "apiId": api })).await;
    assert!(
        listed
            .ok()
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k.get("plaintext").is_none()),
        "{}",
        listed.body
    );
    assert_eq!(app.verify(&key).await["valid"], true);
}

#[tokio::test]
async fn decrypting_needs_decrypt_key_and_sealing_needs_encrypt_key() {
    let app = spawn_recoverable().await;
    let api = app.create_api("perms").await;
    let (key_id, key) = app.create_key(&api, json!({ "recoverable": true })).await;

    let reader = app.root_key_with(&["api.*.read_key"]).await;
    let refused = decrypted(&app, &reader, &key_id).await;
    refused.err(403);
    assert!(!refused.body.to_string().contains(body_of(&key)));
    app.call_as(
        &reader,
        "apis.listKeys",
        json!({ "apiId": api, "decrypt": true }),
    )
    .await
    .err(403);
    // Reading without decrypting stays allowed.
    app.call_as(&reader, "keys.getKey", json!({ "keyId": key_id }))
        .await
        .ok();

    // The API-scoped form of the permission is enough for that API.
    let scoped = app
        .root_key_with(&[
            &format!("api.{api}.read_key"),
            &format!("api.{api}.decrypt_key"),
        ])
        .await;
    assert_eq!(
        decrypted(&app, &scoped, &key_id).await.ok()["plaintext"],
        key.as_str()
    );

    let creator = app.root_key_with(&["api.*.create_key"]).await;
    app.call_as(
        &creator,
        "keys.createKey",
        json!({ "apiId": api, "recoverable": true }),
    )
    .await
    .err(403);
    app.call_as(
        &creator,
        "keys.rerollKey",
        json!({ "keyId": key_id, "expiration": 0 }),
    )
    .await
    .err(403);
}

#[tokio::test]
async fn a_rerolled_recoverable_key_is_recoverable_too() {
    let app = spawn_recoverable().await;
    let api = app.create_api("reroll").await;
    let (old_id, _) = app
        .create_key(&api, json!({ "recoverable": true, "prefix": "rr" }))
        .await;
    let rerolled = app
        .call(
            "keys.rerollKey",
            json!({ "keyId": old_id, "expiration": 0 }),
        )
        .await;
    let new_id = rerolled.ok()["keyId"].as_str().unwrap().to_owned();
    let new_key = rerolled.ok()["key"].as_str().unwrap().to_owned();
    assert_eq!(
        decrypted(&app, crate::helpers::ROOT_KEY, &new_id)
            .await
            .ok()["plaintext"],
        new_key.as_str()
    );
}

#[tokio::test]
async fn without_a_master_key_recoverable_keys_are_a_precondition_failure() {
    let storage = Arc::new(crate::backend::TestStorage::create(crate::BACKEND).await);
    let with_keys = spawn_with_keys(Arc::clone(&storage), ring(&[&master_key("mk1")])).await;
    let api = with_keys.create_api("later").await;
    with_keys
        .create_key(&api, json!({ "recoverable": true }))
        .await;
    with_keys.stop().await;

    // The same store served without master keys: its token signing key is sealed too, so
    // the server refuses to start, naming the master key it needs.
    let refused = try_spawn_app_with(Arc::clone(&storage), TestClock::START, |_| {}).await;
    let message = format!(
        "{:#}",
        refused.err().expect("sealed secrets need master keys")
    );
    assert!(message.contains("master key 'mk1'"), "{message}");

    // A store that never had master keys: no sealing, no opening, everything else as usual.
    let app = spawn_app_with(
        Arc::new(crate::backend::TestStorage::create(crate::BACKEND).await),
        TestClock::START,
        |_| {},
    )
    .await;
    let api = app.create_api("plain").await;
    app.call(
        "keys.createKey",
        json!({ "apiId": api, "recoverable": true }),
    )
    .await
    .err(412);
    let (key_id, _) = app.create_key(&api, json!({})).await;
    app.call("keys.getKey", json!({ "keyId": key_id }))
        .await
        .ok();
}

#[tokio::test]
async fn the_store_never_holds_a_plaintext() {
    let app = spawn_recoverable().await;
    let api = app.create_api("at-rest").await;
    let mut keys = Vec::new();
    for _ in 0..5 {
        keys.push(
            app.create_key(&api, json!({ "recoverable": true, "prefix": "rest" }))
                .await
                .1,
        );
    }
    let (old_id, _) = app.create_key(&api, json!({ "recoverable": true })).await;
    let rerolled = app
        .call(
            "keys.rerollKey",
            json!({ "keyId": old_id, "expiration": 0 }),
        )
        .await;
    keys.push(rerolled.ok()["key"].as_str().unwrap().to_owned());
    app.store.flush().await.unwrap();

    let raw = app.storage.raw_contents().await;
    for key in &keys {
        for secret in [key.as_str(), body_of(key)] {
            assert!(
                !raw.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "the store holds {secret}"
            );
        }
    }
}

#[tokio::test]
async fn master_key_rotation_keeps_keys_readable_without_the_old_key() {
    let storage = Arc::new(crate::backend::TestStorage::create(crate::BACKEND).await);
    let (old, new) = (master_key("old"), master_key("new"));

    let app = spawn_with_keys(Arc::clone(&storage), ring(&[&old])).await;
    let api = app.create_api("rotation").await;
    let (key_id, key) = app.create_key(&api, json!({ "recoverable": true })).await;
    app.stop().await;

    // Step 1: the new key becomes current; the old one still opens existing data keys, and
    // new data keys are wrapped under the new one.
    let both = ring(&[&new, &old]);
    let app = spawn_with_keys(Arc::clone(&storage), both.clone()).await;
    assert_eq!(
        decrypted(&app, crate::helpers::ROOT_KEY, &key_id)
            .await
            .ok()["plaintext"],
        key.as_str()
    );
    // Step 2: re-wrap every data key under the new master key (twice: it is idempotent).
    // The server secrets (here the token signing key) are re-sealed with them.
    let report = rotate_master_key(app.store.as_ref(), &both).await.unwrap();
    assert_eq!((report.rewrapped, report.current), (1, 0));
    assert_eq!((report.secrets.resealed, report.secrets.current), (1, 0));
    let again = rotate_master_key(app.store.as_ref(), &both).await.unwrap();
    assert_eq!(
        again,
        RotationReport {
            rewrapped: 0,
            current: 1,
            secrets: SecretReport {
                current: 1,
                ..SecretReport::default()
            },
        }
    );
    app.stop().await;

    // Step 3: the old master key is gone from the configuration.
    let app = spawn_with_keys(Arc::clone(&storage), ring(&[&new])).await;
    assert_eq!(
        decrypted(&app, crate::helpers::ROOT_KEY, &key_id)
            .await
            .ok()["plaintext"],
        key.as_str()
    );
    app.stop().await;

    // Only the old key, or a different key under the right id: the server refuses to start,
    // naming the problem (and never the key material).
    for wrong in [old.clone(), master_key("new")] {
        let refused = try_spawn_app_with(Arc::clone(&storage), TestClock::START, |s| {
            s.service.master_keys = Some(ring(&[&wrong]));
        })
        .await;
        let message = format!("{:#}", refused.err().expect("a wrong master key must fail"));
        assert!(message.contains("master key"), "{message}");
        let material = wrong.split_once(':').unwrap().1;
        assert!(!message.contains(material), "{message}");
    }
}

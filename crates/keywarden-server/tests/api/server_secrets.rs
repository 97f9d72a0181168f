//! Server secrets at rest: with master keys configured, neither webhook endpoint secrets nor
//! token signing seeds appear anywhere in the store's bytes, yet deliveries still verify with
//! the secret and tokens against the JWKS; plaintext secrets from before master keys get
//! sealed at startup; rotation re-seals them so the old master key can go; and a server
//! whose master keys do not open them refuses to start.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use keywarden_core::sealed_secret::SecretAtRest;
use keywarden_core::store::{ServerSecretStore as _, SigningKeyStore as _, Store as _};
use keywarden_core::vault::{MasterKey, MasterKeyId, MasterKeyring};
use keywarden_core::webhook::WebhookSecret;
use keywarden_server::service::{Reseal, SecretReport, seal_server_secrets};
use serde_json::json;

use crate::backend::TestStorage;
use crate::helpers::{TestApp, TestClock, spawn_app_in, spawn_app_with, try_spawn_app_with};
use crate::tokens::claims_of;
use crate::webhooks::{Shared, create_endpoint, receiver, wait_for};

fn master_key(id: &str) -> String {
    MasterKey::generate(MasterKeyId::parse(id).unwrap()).expose_config_entry()
}

fn ring(entries: &[&str]) -> MasterKeyring {
    MasterKeyring::parse(&entries.join("\n")).unwrap()
}

async fn spawn(storage: &Arc<TestStorage>, keys: Option<MasterKeyring>) -> TestApp {
    spawn_app_with(Arc::clone(storage), TestClock::START, |s| {
        s.service.master_keys = keys;
    })
    .await
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every form a secret had in the store before sealing: text and raw bytes.
fn forms_of_webhook_secret(secret: &WebhookSecret) -> Vec<Vec<u8>> {
    let text = secret.expose();
    let body = text.trim_start_matches("whsec_").to_owned();
    vec![
        text.into_bytes(),
        STANDARD.decode(&body).unwrap(),
        body.into_bytes(),
    ]
}

/// The seeds of the stored signing keys, opened with `keys`, in their stored-before forms.
async fn forms_of_seeds(app: &TestApp, keys: Option<&MasterKeyring>) -> Vec<Vec<u8>> {
    let records = app.store.signing_keys().await.unwrap();
    assert!(!records.is_empty(), "a signing key exists");
    let mut forms = Vec::new();
    for record in records {
        let seed = record.seed.open(&record.owner(), keys).unwrap();
        let text = keywarden_core::sealed_secret::ServerSecret::to_plain(&seed);
        forms.push(URL_SAFE_NO_PAD.decode(&text).unwrap());
        forms.push(text.into_bytes());
    }
    forms
}

/// Creates a key (a `key.created` delivery) and checks that it arrives signed with the
/// inbox's secret, and that a token exchanged for it verifies against the JWKS.
async fn deliveries_and_tokens_verify(app: &TestApp, inbox: &Shared, secret: &WebhookSecret) {
    inbox.lock().unwrap().secret = Some(secret.clone());
    let before = inbox.lock().unwrap().received.len();
    let api = app.create_api("sealed").await;
    let (key_id, key) = app.create_key(&api, json!({})).await;
    wait_for(inbox, |i| i.received.len() > before).await;
    assert_eq!(inbox.lock().unwrap().bad_signatures, 0);
    let data = app
        .call("keys.exchangeToken", json!({ "key": key }))
        .await
        .ok()
        .clone();
    let claims = claims_of(app, data["token"].as_str().unwrap()).await;
    assert_eq!(claims["sub"], key_id.as_str());
}

/// Whether every stored server secret is sealed under master key `id`.
async fn all_under(app: &TestApp, id: &str) -> bool {
    let endpoints = app.store.webhook_endpoint_secrets().await.unwrap();
    let signing = app.store.signing_keys().await.unwrap();
    endpoints
        .iter()
        .map(|e| e.secret.master_key_id().cloned())
        .chain(signing.iter().map(|k| k.seed.master_key_id().cloned()))
        .all(|m| m.is_some_and(|m| m.as_str() == id))
}

#[tokio::test]
async fn with_master_keys_no_server_secret_is_stored_in_the_clear() {
    let storage = Arc::new(TestStorage::create(crate::BACKEND).await);
    let keys = ring(&[&master_key("mk1")]);
    let app = spawn(&storage, Some(keys.clone())).await;
    let (inbox, addr) = receiver("127.0.0.1:0".parse().unwrap()).await;
    let (endpoint_id, secret) = create_endpoint(&app, addr, &["key.created"]).await;
    deliveries_and_tokens_verify(&app, &inbox, &secret).await;

    // A rotated secret is sealed as well, and signs from then on.
    let rotated = app
        .call(
            "webhooks.rotateSecret",
            json!({ "endpointId": endpoint_id }),
        )
        .await;
    let rotated = WebhookSecret::parse(rotated.ok()["secret"].as_str().unwrap()).unwrap();
    deliveries_and_tokens_verify(&app, &inbox, &rotated).await;

    let stored = app.store.webhook_endpoint_secrets().await.unwrap();
    assert_eq!(stored.len(), 1);
    assert!(
        stored[0].secret.to_stored().starts_with("sealed:v1:mk1:"),
        "the endpoint's secret is sealed"
    );
    for record in app.store.signing_keys().await.unwrap() {
        assert_eq!(record.seed.master_key_id().unwrap().as_str(), "mk1");
    }

    let mut secrets = forms_of_seeds(&app, Some(&keys)).await;
    secrets.extend(forms_of_webhook_secret(&secret));
    secrets.extend(forms_of_webhook_secret(&rotated));
    app.store.flush().await.unwrap();
    let raw = storage.raw_contents().await;
    for form in &secrets {
        assert!(
            !contains(&raw, form),
            "the store holds a secret in the clear"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn plaintext_secrets_get_sealed_and_rotation_retires_the_old_master_key() {
    let storage = Arc::new(TestStorage::create(crate::BACKEND).await);
    let (inbox, addr) = receiver("127.0.0.1:0".parse().unwrap()).await;

    // Before master keys: both kinds stored as they are shown (and the test can see them).
    let app = spawn_app_in(Arc::clone(&storage), TestClock::START).await;
    let (_, secret) = create_endpoint(&app, addr, &["key.created"]).await;
    deliveries_and_tokens_verify(&app, &inbox, &secret).await;
    let seeds = forms_of_seeds(&app, None).await;
    app.store.flush().await.unwrap();
    let raw = storage.raw_contents().await;
    assert!(contains(&raw, secret.expose().as_bytes()));
    assert!(seeds.iter().any(|seed| contains(&raw, seed)));
    app.stop().await;

    // Master keys configured: startup seals what was plaintext; the same secret and the
    // same signing key go on working.
    let (old, new) = (master_key("old"), master_key("new"));
    let app = spawn(&storage, Some(ring(&[&old]))).await;
    assert!(
        all_under(&app, "old").await,
        "plaintext secrets were sealed at startup"
    );
    deliveries_and_tokens_verify(&app, &inbox, &secret).await;
    app.stop().await;

    // Rotation: the new key first; every secret re-sealed under it (idempotently).
    let both = ring(&[&new, &old]);
    let app = spawn(&storage, Some(both.clone())).await;
    let signing_keys = app.store.signing_keys().await.unwrap().len();
    let report = seal_server_secrets(app.store.as_ref(), Some(&both), Reseal::All)
        .await
        .unwrap();
    assert_eq!(
        report,
        SecretReport {
            resealed: signing_keys + 1,
            ..SecretReport::default()
        }
    );
    let again = seal_server_secrets(app.store.as_ref(), Some(&both), Reseal::All)
        .await
        .unwrap();
    assert_eq!(
        again,
        SecretReport {
            current: signing_keys + 1,
            ..SecretReport::default()
        }
    );
    assert!(all_under(&app, "new").await);
    app.stop().await;

    // The old master key removed: everything still works.
    let app = spawn(&storage, Some(ring(&[&new]))).await;
    deliveries_and_tokens_verify(&app, &inbox, &secret).await;
    app.stop().await;

    // Keys that do not open the sealed secrets, or none at all: refused at startup, naming
    // the master key and never printing key material.
    for wrong in [Some(old.clone()), Some(master_key("new")), None] {
        let refused = try_spawn_app_with(Arc::clone(&storage), TestClock::START, |s| {
            s.service.master_keys = wrong.as_deref().map(|w| ring(&[w]));
        })
        .await;
        let message = format!("{:#}", refused.err().expect("unfit master keys must fail"));
        assert!(message.contains("master key 'new'"), "{message}");
        if let Some(wrong) = &wrong {
            assert!(
                !message.contains(wrong.split_once(':').unwrap().1),
                "{message}"
            );
        }
        assert!(!message.contains(&secret.expose()), "{message}");
    }
}

#[test]
fn a_plaintext_row_reads_back_as_plaintext() {
    // The stored form of a secret written before master keys existed is still understood.
    let secret = WebhookSecret::generate();
    assert_eq!(
        SecretAtRest::<WebhookSecret>::from_stored(&secret.expose()).unwrap(),
        SecretAtRest::Plain(secret)
    );
}

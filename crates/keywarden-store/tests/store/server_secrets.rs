//! Server secrets at rest: sealed webhook secrets and signing seeds round-trip through the
//! store as they were written, list across workspaces, and are re-sealed in place only while
//! the stored value is still the one re-sealed.

use keywarden_core::id::WebhookEndpointId;
use keywarden_core::sealed_secret::SecretAtRest;
use keywarden_core::token::{SigningKey, SigningKeyRecord};
use keywarden_core::vault::{MasterKey, MasterKeyId, MasterKeyring};
use keywarden_core::webhook::{WebhookEventType, WebhookSecret};
use keywarden_core::webhook_outbox::{WebhookEndpoint, WebhookUrl};

use crate::backend::Backend;
use crate::fixture::{NOW, audit, fixture};

store_tests!(
    sealed_webhook_secrets_round_trip_and_reseal_in_place,
    sealed_signing_seeds_round_trip_and_reseal_in_place,
);

fn ring(id: &str) -> MasterKeyring {
    MasterKeyring::parse(
        &MasterKey::generate(MasterKeyId::parse(id).unwrap()).expose_config_entry(),
    )
    .unwrap()
}

fn endpoint(f: &crate::fixture::Fixture, secret: SecretAtRest<WebhookSecret>) -> WebhookEndpoint {
    WebhookEndpoint {
        id: WebhookEndpointId::generate(NOW),
        workspace_id: f.workspace.clone(),
        url: WebhookUrl::parse("http://127.0.0.1:9/hook").unwrap(),
        description: None,
        event_types: vec![WebhookEventType::KeyCreated],
        enabled: true,
        secret,
        created_at: NOW,
        updated_at: None,
    }
}

async fn sealed_webhook_secrets_round_trip_and_reseal_in_place(backend: Backend) {
    let f = fixture(backend).await;
    let keys = ring("mk1");
    let secret = WebhookSecret::generate();
    let mut sealed_endpoint = endpoint(&f, SecretAtRest::Plain(secret.clone()));
    sealed_endpoint.secret =
        SecretAtRest::seal(&secret, &sealed_endpoint.secret_owner(), Some(&keys));
    f.store
        .insert_webhook_endpoint(&sealed_endpoint, &audit(&f.workspace))
        .await
        .unwrap();
    let read = f
        .store
        .webhook_endpoint(&f.workspace, &sealed_endpoint.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.secret, sealed_endpoint.secret);
    assert_eq!(read.secret.master_key_id().unwrap().as_str(), "mk1");
    assert_eq!(
        read.secret.open(&read.secret_owner(), Some(&keys)).unwrap(),
        secret
    );

    // A plaintext endpoint from before master keys: listed, sealed in place.
    let plain = endpoint(&f, SecretAtRest::Plain(WebhookSecret::generate()));
    f.store
        .insert_webhook_endpoint(&plain, &audit(&f.workspace))
        .await
        .unwrap();
    let listed = f.store.webhook_endpoint_secrets().await.unwrap();
    assert_eq!(listed.len(), 2);
    let current = listed.iter().find(|e| e.endpoint_id == plain.id).unwrap();
    assert_eq!(current.workspace_id, f.workspace);
    assert_eq!(current.secret, plain.secret);
    let plain_secret = current.secret.open(&current.owner(), None).unwrap();
    let resealed = SecretAtRest::seal(&plain_secret, &current.owner(), Some(&keys));
    assert!(
        f.store
            .reseal_webhook_secret(current, &resealed)
            .await
            .unwrap()
    );
    let read = f
        .store
        .webhook_endpoint(&f.workspace, &plain.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.secret, resealed);
    // The listed value is stale now: a second re-seal from it changes nothing.
    let again = SecretAtRest::seal(&plain_secret, &current.owner(), Some(&keys));
    assert!(
        !f.store
            .reseal_webhook_secret(current, &again)
            .await
            .unwrap()
    );
    let read = f
        .store
        .webhook_endpoint(&f.workspace, &plain.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.secret, resealed);
}

async fn sealed_signing_seeds_round_trip_and_reseal_in_place(backend: Backend) {
    let f = fixture(backend).await;
    let (old, new) = (ring("old"), ring("new"));
    let key = SigningKeyRecord::generate(NOW, Some(&old));
    assert!(
        f.store
            .rotate_signing_key(&key, NOW.plus_millis(-1), NOW.plus_millis(-1))
            .await
            .unwrap()
    );
    let stored = f.store.signing_keys().await.unwrap();
    assert_eq!(stored, vec![key.clone()]);
    let public = SigningKey::open(&stored[0], Some(&old)).unwrap().jwk();

    let seed = key.seed.open(&key.owner(), Some(&old)).unwrap();
    let resealed = SecretAtRest::seal(&seed, &key.owner(), Some(&new));
    assert!(f.store.reseal_signing_seed(&key, &resealed).await.unwrap());
    assert!(!f.store.reseal_signing_seed(&key, &resealed).await.unwrap());
    let stored = f.store.signing_keys().await.unwrap();
    assert_eq!(stored[0].seed, resealed);
    // The same key pair, now opened with the new master key alone.
    assert_eq!(
        SigningKey::open(&stored[0], Some(&new)).unwrap().jwk(),
        public
    );
    assert!(SigningKey::open(&stored[0], Some(&old)).is_err());
}

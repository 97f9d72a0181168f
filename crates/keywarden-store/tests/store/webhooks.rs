//! The webhook outbox: key events are enqueued in the change's own transaction, and leasing
//! hands each due delivery to one sender at a time.

use std::collections::HashSet;

use keywarden_core::audit::{AuditAction, AuditContext};
use keywarden_core::id::WebhookEndpointId;
use keywarden_core::sealed_secret::SecretAtRest;
use keywarden_core::store::StoreError;
use keywarden_core::time::UnixMillis;
use keywarden_core::webhook::{WebhookEventType, WebhookSecret};
use keywarden_core::webhook_outbox::{
    AttemptNext, DeliveryAttempt, DeliveryFilter, WebhookEndpoint, WebhookEvent, WebhookUrl,
};
use serde_json::Map;

use crate::backend::Backend;
use crate::fixture::{NOW, audit, fixture, page, random_digest};

store_tests!(
    key_events_are_enqueued_with_their_change_only,
    two_claimers_never_get_the_same_delivery,
    attempts_move_deliveries_on,
);

fn endpoint(f: &crate::fixture::Fixture, types: Vec<WebhookEventType>) -> WebhookEndpoint {
    WebhookEndpoint {
        id: WebhookEndpointId::generate(NOW),
        workspace_id: f.workspace.clone(),
        url: WebhookUrl::parse("http://127.0.0.1:9/hook").unwrap(),
        description: None,
        event_types: types,
        enabled: true,
        secret: SecretAtRest::Plain(WebhookSecret::generate()),
        created_at: NOW,
        updated_at: None,
    }
}

async fn deliveries(f: &crate::fixture::Fixture) -> usize {
    f.store
        .webhook_deliveries(&f.workspace, &DeliveryFilter::default(), page(100))
        .await
        .unwrap()
        .items
        .len()
}

async fn key_events_are_enqueued_with_their_change_only(backend: Backend) {
    let f = fixture(backend).await;
    let subscribed = endpoint(&f, vec![WebhookEventType::KeyCreated]);
    f.store
        .insert_webhook_endpoint(&subscribed, &audit(&f.workspace))
        .await
        .unwrap();
    let key = f.key(random_digest(), None);
    let created = AuditContext::cli()
        .entry(&f.workspace, NOW, AuditAction::KeyCreate)
        .target("key", key.id.as_str(), None);
    f.store.insert_key(&key, &created).await.unwrap();
    assert_eq!(deliveries(&f).await, 1);

    // The same digest again: the insert fails, and so does its event.
    let mut twin = f.key(key.digest, None);
    twin.id = keywarden_core::id::KeyId::generate(NOW);
    let created_twin = AuditContext::cli()
        .entry(&f.workspace, NOW, AuditAction::KeyCreate)
        .target("key", twin.id.as_str(), None);
    let refused = f.store.insert_key(&twin, &created_twin).await;
    assert!(
        matches!(refused, Err(StoreError::Conflict(_))),
        "{refused:?}"
    );
    assert_eq!(deliveries(&f).await, 1);

    // An event type nobody subscribed to makes no delivery.
    let deleted = AuditContext::cli()
        .entry(&f.workspace, NOW, AuditAction::KeyDelete)
        .target("key", key.id.as_str(), None);
    let gone = f
        .store
        .delete_key(&f.workspace, &key.id, false, NOW, &deleted)
        .await
        .unwrap();
    assert!(gone.is_some());
    assert_eq!(deliveries(&f).await, 1);
}

async fn two_claimers_never_get_the_same_delivery(backend: Backend) {
    let f = fixture(backend).await;
    f.store
        .insert_webhook_endpoint(
            &endpoint(&f, vec![WebhookEventType::AnomalyRateSpike]),
            &audit(&f.workspace),
        )
        .await
        .unwrap();
    let event = WebhookEvent::new(WebhookEventType::AnomalyRateSpike, NOW, Map::new());
    for _ in 0..40 {
        let made = f
            .store
            .enqueue_webhook_event(&f.workspace, &event, NOW)
            .await
            .unwrap();
        assert_eq!(made, 1);
    }
    let other = f.db.open().await;
    let lease_end = NOW.plus_millis(60_000);
    let (a, b) = tokio::join!(
        f.store.claim_webhook_deliveries(NOW, lease_end, 30),
        other.claim_webhook_deliveries(NOW, lease_end, 30),
    );
    let ids = |claimed: Vec<keywarden_core::webhook_outbox::ClaimedDelivery>| {
        claimed
            .into_iter()
            .map(|c| c.delivery.id.to_string())
            .collect::<HashSet<_>>()
    };
    let (a, b) = (ids(a.unwrap()), ids(b.unwrap()));
    assert!(a.is_disjoint(&b), "claimed twice: {:?}", a.intersection(&b));
    assert_eq!(a.len() + b.len(), 40);
    // Leased: nothing more to claim until the leases end, then all of them again.
    let again = f
        .store
        .claim_webhook_deliveries(NOW.plus_millis(1), lease_end, 100)
        .await
        .unwrap();
    assert!(again.is_empty());
    let after = f
        .store
        .claim_webhook_deliveries(lease_end.plus_millis(1), lease_end.plus_millis(60_000), 100)
        .await
        .unwrap();
    assert_eq!(after.len(), 40);
}

async fn attempts_move_deliveries_on(backend: Backend) {
    let f = fixture(backend).await;
    f.store
        .insert_webhook_endpoint(
            &endpoint(&f, vec![WebhookEventType::KeyCreditsLow]),
            &audit(&f.workspace),
        )
        .await
        .unwrap();
    let event = WebhookEvent::new(WebhookEventType::KeyCreditsLow, NOW, Map::new());
    for _ in 0..2 {
        f.store
            .enqueue_webhook_event(&f.workspace, &event, NOW)
            .await
            .unwrap();
    }
    let claimed = f
        .store
        .claim_webhook_deliveries(NOW, NOW.plus_millis(60_000), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    let attempt = |next| DeliveryAttempt {
        at: NOW,
        status: Some(500),
        error: None,
        duration_ms: 3,
        next,
    };
    let retry_at = UnixMillis::from_millis(NOW.as_millis() + 5_000);
    f.store
        .record_delivery_attempt(&claimed[0].delivery.id, &attempt(AttemptNext::Delivered))
        .await
        .unwrap();
    f.store
        .record_delivery_attempt(
            &claimed[1].delivery.id,
            &attempt(AttemptNext::RetryAt(retry_at)),
        )
        .await
        .unwrap();
    assert_eq!(f.store.pending_webhook_deliveries().await.unwrap(), 1);
    // The retry is not due before its time, although the lease was released.
    let early = f
        .store
        .claim_webhook_deliveries(retry_at.plus_millis(-1), retry_at.plus_millis(60_000), 10)
        .await
        .unwrap();
    assert!(early.is_empty());
    let due = f
        .store
        .claim_webhook_deliveries(retry_at, retry_at.plus_millis(60_000), 10)
        .await
        .unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].delivery.id, claimed[1].delivery.id);
    let log = f
        .store
        .delivery_attempts(&f.workspace, &claimed[1].delivery.id)
        .await
        .unwrap();
    assert_eq!(log.len(), 1);
}

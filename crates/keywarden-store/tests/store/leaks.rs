//! Leak policies per workspace, and leak reports recorded with their webhook event.

use keywarden_core::audit::Actor;
use keywarden_core::audit::{AuditAction, AuditContext, AuditFilter};
use keywarden_core::id::WebhookEndpointId;
use keywarden_core::leak::LeakPolicy;
use keywarden_core::sealed_secret::SecretAtRest;
use keywarden_core::webhook::WebhookEventType;
use keywarden_core::webhook::WebhookSecret;
use keywarden_core::webhook_outbox::{DeliveryFilter, WebhookEndpoint, WebhookUrl};

use crate::backend::Backend;
use crate::fixture::{NOW, audit, fixture, page, workspace};

store_tests!(
    policies_are_kept_per_workspace,
    a_flagged_leak_is_audited_and_announced,
);

async fn policies_are_kept_per_workspace(backend: Backend) {
    let f = fixture(backend).await;
    let other = workspace("other");
    f.store.insert_workspace(&other).await.unwrap();
    assert_eq!(f.store.leak_policy(&f.workspace).await.unwrap(), None);
    let set = |ws| AuditContext::cli().entry(ws, NOW, AuditAction::LeakPolicySet);
    f.store
        .set_leak_policy(&f.workspace, LeakPolicy::Disable, &set(&f.workspace))
        .await
        .unwrap();
    f.store
        .set_leak_policy(&f.workspace, LeakPolicy::Flag, &set(&f.workspace))
        .await
        .unwrap();
    assert_eq!(
        f.store.leak_policy(&f.workspace).await.unwrap(),
        Some(LeakPolicy::Flag)
    );
    assert_eq!(f.store.leak_policy(&other.id).await.unwrap(), None);
    let entries = f
        .store
        .audit_entries(
            &f.workspace,
            &AuditFilter {
                action: Some(AuditAction::LeakPolicySet),
                ..AuditFilter::default()
            },
            page(10),
        )
        .await
        .unwrap();
    assert_eq!(entries.items.len(), 2);
}

async fn a_flagged_leak_is_audited_and_announced(backend: Backend) {
    let f = fixture(backend).await;
    let endpoint = WebhookEndpoint {
        id: WebhookEndpointId::generate(NOW),
        workspace_id: f.workspace.clone(),
        url: WebhookUrl::parse("http://127.0.0.1:9/hook").unwrap(),
        description: None,
        event_types: vec![WebhookEventType::KeyLeaked],
        enabled: true,
        secret: SecretAtRest::Plain(WebhookSecret::generate()),
        created_at: NOW,
        updated_at: None,
    };
    f.store
        .insert_webhook_endpoint(&endpoint, &audit(&f.workspace))
        .await
        .unwrap();
    let scanning = AuditContext {
        actor: Actor::SecretScanning,
        request_id: None,
        client_ip: None,
    };
    let entry = scanning
        .entry(&f.workspace, NOW, AuditAction::KeyLeaked)
        .target("key", "key_1", None)
        .change("action", "flagged");
    f.store.record_leak(&entry).await.unwrap();
    let listed = f
        .store
        .audit_entries(
            &f.workspace,
            &AuditFilter {
                action: Some(AuditAction::KeyLeaked),
                ..AuditFilter::default()
            },
            page(10),
        )
        .await
        .unwrap();
    assert_eq!(listed.items, vec![entry]);
    let deliveries = f
        .store
        .webhook_deliveries(&f.workspace, &DeliveryFilter::default(), page(10))
        .await
        .unwrap();
    assert_eq!(deliveries.items.len(), 1);
}

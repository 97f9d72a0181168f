//! The audit log: an audited change writes its entry in the same transaction, exactly when
//! the change takes effect; entries read back whole, newest first, filtered, paged and per
//! workspace.

use keywarden_core::audit::{Actor, AuditAction, AuditContext, AuditEntry, AuditFilter};
use keywarden_core::credits::CreditAdjustment;
use keywarden_core::id::{KeyId, RootKeyId};
use keywarden_core::key_change::{KeyChange, KeyChangeError};
use keywarden_core::store::{Store, StoreError};
use keywarden_core::time::UnixMillis;

use crate::backend::Backend;
use crate::fixture::{
    Fixture, NOW, fixture, identity_in, page, page_from, permission_in, random_digest, root_key_in,
    workspace,
};

store_tests!(
    an_audited_change_writes_exactly_its_entry,
    failed_changes_write_no_entry,
    upserts_record_only_what_they_created,
    entries_are_filtered_paged_and_kept_per_workspace,
);

/// Every entry of the fixture's workspace, newest first.
async fn entries(f: &Fixture) -> Vec<AuditEntry> {
    f.store
        .audit_entries(&f.workspace, &AuditFilter::default(), page(1000))
        .await
        .unwrap()
        .items
}

fn by_root_key(f: &Fixture, action: AuditAction, at: i64) -> AuditEntry {
    AuditContext {
        actor: Actor::RootKey(RootKeyId::parse("rootkey_admin").unwrap()),
        request_id: Some(format!("req_{at}")),
        client_ip: Some("203.0.113.7".parse().unwrap()),
    }
    .entry(&f.workspace, UnixMillis::from_millis(at), action)
}

async fn an_audited_change_writes_exactly_its_entry(backend: Backend) {
    let f = fixture(backend).await;
    let before = entries(&f).await.len();
    let key = f.key(random_digest(), Some(10));
    let created = by_root_key(&f, AuditAction::KeyCreate, 1)
        .target("key", key.id.as_str(), Some("first"))
        .change("credits", 10)
        .change("meta", serde_json::json!({ "plan": "pro" }));
    f.store.insert_key(&key, &created).await.unwrap();
    let after_create = entries(&f).await;
    assert_eq!(after_create.len(), before + 1);
    assert_eq!(after_create[0], created, "the entry reads back whole");

    let credited = by_root_key(&f, AuditAction::KeyCreditsUpdate, 2)
        .target("key", key.id.as_str(), None)
        .change("operation", "increment");
    f.store
        .change_key(
            &f.workspace,
            &key.id,
            KeyChange::AdjustCredits(CreditAdjustment::Increment(5)),
            NOW,
            &credited,
        )
        .await
        .unwrap()
        .unwrap();
    let listed = entries(&f).await;
    assert_eq!(listed.len(), before + 2);
    assert_eq!(listed[0], credited, "newest first");
    assert_eq!(listed[1], created);
}

async fn failed_changes_write_no_entry(backend: Backend) {
    let f = fixture(backend).await;
    let key = f.key(random_digest(), None);
    f.store
        .insert_key(&key, &by_root_key(&f, AuditAction::KeyCreate, 1))
        .await
        .unwrap();
    let before = entries(&f).await;

    // A conflict: the same hash again.
    let twin = f.key(key.digest, None);
    let conflict = f
        .store
        .insert_key(&twin, &by_root_key(&f, AuditAction::KeyCreate, 2))
        .await;
    assert!(matches!(conflict, Err(StoreError::Conflict(_))));
    // A missing target.
    let missing = KeyId::generate(NOW);
    let result = f
        .store
        .change_key(
            &f.workspace,
            &missing,
            KeyChange::SetCredits(Some(1)),
            NOW,
            &by_root_key(&f, AuditAction::KeyCreditsUpdate, 3),
        )
        .await
        .unwrap();
    assert_eq!(result.unwrap_err(), KeyChangeError::NotFound);
    // A change the key's state refuses: no balance to decrement.
    let refused = f
        .store
        .change_key(
            &f.workspace,
            &key.id,
            KeyChange::AdjustCredits(CreditAdjustment::Decrement(1)),
            NOW,
            &by_root_key(&f, AuditAction::KeyCreditsUpdate, 4),
        )
        .await
        .unwrap();
    assert!(refused.is_err());
    assert!(
        f.store
            .delete_key(
                &f.workspace,
                &missing,
                false,
                NOW,
                &by_root_key(&f, AuditAction::KeyDelete, 5)
            )
            .await
            .unwrap()
            .is_none()
    );
    // Revoking twice: the second revokes nothing.
    let root = root_key_in(&f.workspace);
    f.store
        .insert_root_key(&root, &by_root_key(&f, AuditAction::RootKeyCreate, 6))
        .await
        .unwrap();
    let revoke = by_root_key(&f, AuditAction::RootKeyRevoke, 7);
    assert!(
        f.store
            .revoke_root_key(&root.id, NOW, &revoke)
            .await
            .unwrap()
    );
    let with_root_key = entries(&f).await;
    assert_eq!(with_root_key.len(), before.len() + 2);
    assert!(
        !f.store
            .revoke_root_key(
                &root.id,
                NOW,
                &by_root_key(&f, AuditAction::RootKeyRevoke, 8)
            )
            .await
            .unwrap()
    );
    // An identity whose external id is taken, a permission and a role that do not exist.
    let acme = identity_in(&f.workspace, "acme");
    f.store
        .insert_identity(&acme, &by_root_key(&f, AuditAction::IdentityCreate, 9))
        .await
        .unwrap();
    let taken = f
        .store
        .insert_identity(
            &identity_in(&f.workspace, "acme"),
            &by_root_key(&f, AuditAction::IdentityCreate, 10),
        )
        .await;
    assert!(matches!(taken, Err(StoreError::Conflict(_))));
    assert!(
        !f.store
            .delete_permission(
                &f.workspace,
                "perm_missing",
                &by_root_key(&f, AuditAction::PermissionDelete, 11)
            )
            .await
            .unwrap()
    );
    assert!(
        !f.store
            .delete_role(
                &f.workspace,
                "role_missing",
                &by_root_key(&f, AuditAction::RoleDelete, 12)
            )
            .await
            .unwrap()
    );
    let actions: Vec<AuditAction> = entries(&f).await.iter().map(|e| e.action).collect();
    let mut expected = vec![AuditAction::IdentityCreate, AuditAction::RootKeyRevoke];
    expected.push(AuditAction::RootKeyCreate);
    expected.extend(before.iter().map(|e| e.action));
    assert_eq!(
        actions, expected,
        "only the changes that happened are recorded"
    );
}

async fn upserts_record_only_what_they_created(backend: Backend) {
    let f = fixture(backend).await;
    let before = entries(&f).await.len();
    let candidate = identity_in(&f.workspace, "first-use");
    f.store
        .upsert_identity(&candidate, &by_root_key(&f, AuditAction::IdentityCreate, 1))
        .await
        .unwrap();
    // The second use finds it: nothing created, nothing recorded.
    f.store
        .upsert_identity(
            &identity_in(&f.workspace, "first-use"),
            &by_root_key(&f, AuditAction::IdentityCreate, 2),
        )
        .await
        .unwrap();
    assert_eq!(entries(&f).await.len(), before + 1);

    let read = permission_in(&f.workspace, "keys.read");
    f.store
        .insert_permission(&read, &by_root_key(&f, AuditAction::PermissionCreate, 3))
        .await
        .unwrap();
    let write = permission_in(&f.workspace, "keys.write");
    let read_again = permission_in(&f.workspace, "keys.read");
    let template = by_root_key(&f, AuditAction::PermissionCreate, 4)
        .target("permission", read_again.id.as_str(), Some("keys.read"))
        .target("permission", write.id.as_str(), Some("keys.write"));
    f.store
        .upsert_permissions(&[read_again, write.clone()], &template)
        .await
        .unwrap();
    let listed = entries(&f).await;
    assert_eq!(listed.len(), before + 3);
    let targets: Vec<&str> = listed[0].targets.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(
        targets,
        vec![write.id.as_str()],
        "only the created permission"
    );
    // Nothing new to create: no entry.
    f.store
        .upsert_permissions(
            &[permission_in(&f.workspace, "keys.write")],
            &by_root_key(&f, AuditAction::PermissionCreate, 5),
        )
        .await
        .unwrap();
    assert_eq!(entries(&f).await.len(), before + 3);
}

async fn entries_are_filtered_paged_and_kept_per_workspace(backend: Backend) {
    let f = fixture(backend).await;
    let store: &dyn Store = f.store.as_ref();
    let baseline = entries(&f).await.len();
    let mut keys = Vec::new();
    for at in 1..=7 {
        let key = f.key(random_digest(), None);
        let entry =
            by_root_key(&f, AuditAction::KeyCreate, at * 1000).target("key", key.id.as_str(), None);
        store.insert_key(&key, &entry).await.unwrap();
        keys.push(key);
    }
    let cli_entry = AuditContext::cli()
        .entry(
            &f.workspace,
            UnixMillis::from_millis(8000),
            AuditAction::KeyDelete,
        )
        .target("key", keys[0].id.as_str(), None);
    store
        .delete_key(&f.workspace, &keys[0].id, false, NOW, &cli_entry)
        .await
        .unwrap()
        .unwrap();

    // Another workspace's entries never show.
    let other = workspace("other");
    store.insert_workspace(&other).await.unwrap();
    let foreign = root_key_in(&other.id);
    let foreign_entry = AuditContext::cli().entry(&other.id, NOW, AuditAction::RootKeyCreate);
    store
        .insert_root_key(&foreign, &foreign_entry)
        .await
        .unwrap();
    let all = entries(&f).await;
    assert_eq!(all.len(), baseline + 8);
    assert!(all.iter().all(|e| e.workspace_id == f.workspace));
    let theirs = store
        .audit_entries(&other.id, &AuditFilter::default(), page(10))
        .await
        .unwrap();
    assert_eq!(theirs.items, vec![foreign_entry]);

    let ws = &f.workspace;
    let count = |filter: AuditFilter| async move {
        store
            .audit_entries(ws, &filter, page(100))
            .await
            .unwrap()
            .items
    };
    let deletes = count(AuditFilter {
        action: Some(AuditAction::KeyDelete),
        ..AuditFilter::default()
    })
    .await;
    assert_eq!(deletes, vec![cli_entry.clone()]);
    let by_cli = count(AuditFilter {
        actor: Some("cli".into()),
        ..AuditFilter::default()
    })
    .await;
    assert!(by_cli.contains(&cli_entry));
    assert!(by_cli.iter().all(|e| e.actor == Actor::Cli));
    let by_admin = count(AuditFilter {
        actor: Some("rootkey_admin".into()),
        ..AuditFilter::default()
    })
    .await;
    assert_eq!(by_admin.len(), 7);
    let about_first = count(AuditFilter {
        target_id: Some(keys[0].id.to_string()),
        ..AuditFilter::default()
    })
    .await;
    let actions: Vec<AuditAction> = about_first.iter().map(|e| e.action).collect();
    assert_eq!(
        actions,
        vec![AuditAction::KeyDelete, AuditAction::KeyCreate]
    );
    let window = count(AuditFilter {
        since: Some(UnixMillis::from_millis(2000)),
        until: Some(UnixMillis::from_millis(4000)),
        ..AuditFilter::default()
    })
    .await;
    let times: Vec<i64> = window.iter().map(|e| e.time.as_millis()).collect();
    assert_eq!(times, vec![4000, 3000, 2000]);

    // Pages of 3 over the 8 rootkey_admin + cli entries, to the last page.
    let filter = AuditFilter {
        since: Some(UnixMillis::from_millis(1000)),
        until: Some(UnixMillis::from_millis(8000)),
        ..AuditFilter::default()
    };
    let mut seen = Vec::new();
    let mut from = None;
    let mut pages = 0;
    loop {
        let page = store
            .audit_entries(&f.workspace, &filter, page_from(from, 3))
            .await
            .unwrap();
        pages += 1;
        seen.extend(page.items);
        match page.next {
            Some(next) => from = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let times: Vec<i64> = seen.iter().map(|e| e.time.as_millis()).collect();
    assert_eq!(times, vec![8000, 7000, 6000, 5000, 4000, 3000, 2000, 1000]);
}

//! Root keys, the revision that tracks them, and the first-start bootstrap.

use std::sync::Arc;

use keywarden_core::root_key::{RootKeyUpdate, RootPermissions};
use keywarden_core::store::Store;
use keywarden_core::text::Label;

use crate::backend::{Backend, TestDb};
use crate::fixture::{NOW, audit, fixture, root_key_in, workspace};

store_tests!(
    bootstrap_happens_once_and_revisions_track_root_keys,
    concurrent_bootstraps_create_one_workspace,
    root_keys_are_updated_and_rotated_while_live,
);

async fn bootstrap_happens_once_and_revisions_track_root_keys(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.open().await;
    let ws = workspace("first");
    let r0 = store.root_key_revision().await.unwrap();
    let first = root_key_in(&ws.id);
    assert!(store.bootstrap(&ws, &first, &audit(&ws.id)).await.unwrap());
    let second_ws = workspace("second");
    assert!(
        !store
            .bootstrap(
                &second_ws,
                &root_key_in(&second_ws.id),
                &audit(&second_ws.id)
            )
            .await
            .unwrap()
    );
    assert_eq!(store.workspaces().await.unwrap(), vec![ws.clone()]);
    let r1 = store.root_key_revision().await.unwrap();
    assert!(r1 > r0);
    assert!(
        store
            .revoke_root_key(&first.id, NOW, &audit(&first.workspace_id))
            .await
            .unwrap()
    );
    let r2 = store.root_key_revision().await.unwrap();
    assert!(r2 > r1);
    assert!(
        !store
            .revoke_root_key(&first.id, NOW, &audit(&first.workspace_id))
            .await
            .unwrap()
    );
    let listed = store.root_keys().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].revoked_at, Some(NOW));
    assert_eq!(listed[0].permissions, RootPermissions::everything());
    assert!(store.root_key(&ws.id, &first.id).await.unwrap().is_none());
    store.flush().await.unwrap();
}

async fn concurrent_bootstraps_create_one_workspace(backend: Backend) {
    let db = TestDb::new(backend).await;
    let stores: Vec<Arc<dyn Store>> = vec![db.open().await, db.open().await];
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let store = Arc::clone(&stores[i % stores.len()]);
            tokio::spawn(async move {
                let ws = workspace("first");
                store
                    .bootstrap(&ws, &root_key_in(&ws.id), &audit(&ws.id))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        created += usize::from(task.await.unwrap());
    }
    assert_eq!(created, 1);
    assert_eq!(stores[0].workspaces().await.unwrap().len(), 1);
    assert_eq!(stores[1].root_keys().await.unwrap().len(), 1);
}

async fn root_keys_are_updated_and_rotated_while_live(backend: Backend) {
    let f = fixture(backend).await;
    let mut key = root_key_in(&f.workspace);
    key.expires = Some(NOW.plus_millis(10_000));
    f.store
        .insert_root_key(&key, &audit(&key.workspace_id))
        .await
        .unwrap();
    let r0 = f.store.root_key_revision().await.unwrap();

    let update = RootKeyUpdate {
        name: Some(Some(Label::parse("ci").unwrap())),
        enabled: Some(false),
        permissions: Some(RootPermissions::parse_all(&["api.*.create_key"]).unwrap()),
    };
    let updated = f
        .store
        .update_root_key(&f.workspace, &key.id, update, &audit(&f.workspace))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.name.as_ref().map(Label::as_str), Some("ci"));
    assert!(!updated.enabled);
    assert_eq!(
        f.store.root_key(&f.workspace, &key.id).await.unwrap(),
        Some(updated.clone())
    );
    let r1 = f.store.root_key_revision().await.unwrap();
    assert!(r1 > r0);

    let new = root_key_in(&f.workspace);
    let rotated = f
        .store
        .rotate_root_key(
            &f.workspace,
            &key.id,
            &new,
            Some(NOW.plus_millis(60_000)),
            &audit(&f.workspace),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rotated.expires, key.expires, "never lengthened");
    let sooner = NOW.plus_millis(5);
    let rotated = f
        .store
        .rotate_root_key(
            &f.workspace,
            &key.id,
            &root_key_in(&f.workspace),
            Some(sooner),
            &audit(&f.workspace),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rotated.expires, Some(sooner));
    assert_eq!(
        f.store.root_key(&f.workspace, &new.id).await.unwrap(),
        Some(new.clone())
    );
    assert!(f.store.root_key_revision().await.unwrap() > r1);

    // Revoked keys can be neither changed nor rotated, and rotating inserts nothing then.
    assert!(
        f.store
            .revoke_root_key(&key.id, NOW, &audit(&key.workspace_id))
            .await
            .unwrap()
    );
    assert!(
        f.store
            .update_root_key(
                &f.workspace,
                &key.id,
                RootKeyUpdate::default(),
                &audit(&f.workspace)
            )
            .await
            .unwrap()
            .is_none()
    );
    let orphan = root_key_in(&f.workspace);
    assert!(
        f.store
            .rotate_root_key(&f.workspace, &key.id, &orphan, None, &audit(&f.workspace))
            .await
            .unwrap()
            .is_none()
    );
    let all = f.store.root_keys().await.unwrap();
    assert_eq!(all.len(), 3);
    assert!(all.iter().all(|k| k.id != orphan.id));
}

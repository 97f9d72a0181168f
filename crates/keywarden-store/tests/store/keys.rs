//! Keys: stored and read back whole, isolated per workspace, changed atomically.

use std::sync::Arc;

use keywarden_core::credits::{CreditAdjustment, CreditRefill, Credits, RefillSchedule};
use keywarden_core::id::{KeyId, WorkspaceId};
use keywarden_core::identity::ExternalId;
use keywarden_core::key::{KeyUpdate, Patch};
use keywarden_core::key_change::{KeyChange, KeyChangeError};
use keywarden_core::meta::Meta;
use keywarden_core::named_limit::{LimitName, LimitSpec};
use keywarden_core::ratelimit::WindowDuration;
use keywarden_core::store::{ImportOutcome, StoreError};
use keywarden_core::text::KeyName;

use crate::backend::Backend;
use crate::fixture::{NOW, audit, fixture, identity_in, page, page_from, random_digest};

store_tests!(
    a_record_reads_back_equal_from_another_store,
    concurrent_inserts_of_one_digest_conflict_individually,
    reads_and_changes_are_confined_to_their_workspace,
    deleting_an_api_deletes_its_keys_and_reports_them,
    imports_skip_existing_hashes_one_by_one,
    keys_are_listed_in_pages_by_id_and_by_identity,
    changes_apply_atomically_or_not_at_all,
    soft_deleted_keys_stay_presentable_and_permanent_ones_go,
    rotation_shortens_the_old_key_and_inserts_the_new_one,
);

fn meta(value: serde_json::Value) -> Meta {
    Meta::new(value.as_object().unwrap().clone()).unwrap()
}

async fn a_record_reads_back_equal_from_another_store(backend: Backend) {
    let f = fixture(backend).await;
    let identity = f
        .store
        .upsert_identity(&identity_in(&f.workspace, "acme"), &audit(&f.workspace))
        .await
        .unwrap();
    let mut record = f.key(random_digest(), Some(7));
    record.name = Some(KeyName::parse("ünïcode name").unwrap());
    record.meta = Some(meta(serde_json::json!({ "a": [1, 2], "b": { "c": null } })));
    record.expires = Some(NOW.plus_millis(5));
    record.credits = Some(
        Credits::new(
            7,
            Some(CreditRefill::new(RefillSchedule::Monthly { day: 31 }, 9).unwrap()),
            NOW,
        )
        .unwrap(),
    );
    record.identity = Some(identity);
    record.ratelimits = keywarden_core::named_limit::replace_by_name(
        &[],
        vec![LimitSpec {
            name: LimitName::parse("tokens").unwrap(),
            limit: 100,
            duration: WindowDuration::from_millis(1_000).unwrap(),
            auto_apply: false,
        }],
        NOW,
    );
    f.store
        .insert_key(&record, &audit(&record.workspace_id))
        .await
        .unwrap();
    drop(f.store);

    let reopened = f.db.open().await;
    let read = reopened.key(&f.workspace, &record.id).await.unwrap();
    assert_eq!(read, Some(record.clone()));
    let by_digest = reopened.key_by_digest(&record.digest).await.unwrap();
    assert_eq!(by_digest, Some(record));
}

async fn concurrent_inserts_of_one_digest_conflict_individually(backend: Backend) {
    let f = fixture(backend).await;
    let shared = random_digest();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let digest = if i % 4 == 0 { shared } else { random_digest() };
        let record = f.key(digest, None);
        let store = Arc::clone(&f.store);
        tasks.push(tokio::spawn(async move {
            let result = store
                .insert_key(&record, &audit(&record.workspace_id))
                .await;
            (record, result)
        }));
    }
    let (mut inserted, mut conflicts) = (0, 0);
    for task in tasks {
        let (record, result) = task.await.unwrap();
        let stored = f.store.key(&f.workspace, &record.id).await.unwrap();
        match result {
            Ok(()) => {
                inserted += 1;
                assert!(stored.is_some());
            }
            Err(StoreError::Conflict(what)) => {
                conflicts += 1;
                assert_eq!(what, "a key with this hash");
                assert!(stored.is_none());
            }
            Err(e) => panic!("unexpected error: {e:?}"),
        }
    }
    // 150 distinct digests plus one winner of the 50 sharing one.
    assert_eq!((inserted, conflicts), (151, 49));
    assert_eq!(f.store.all_key_digests().await.unwrap().len(), 151);
}

async fn reads_and_changes_are_confined_to_their_workspace(backend: Backend) {
    let f = fixture(backend).await;
    let record = f.key(random_digest(), Some(1));
    f.store
        .insert_key(&record, &audit(&record.workspace_id))
        .await
        .unwrap();
    let other = WorkspaceId::generate(NOW);
    assert!(f.store.key(&other, &record.id).await.unwrap().is_none());
    assert!(f.store.api(&other, &f.api).await.unwrap().is_none());
    assert!(
        f.store
            .delete_api(&other, &f.api, NOW, &audit(&other))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        f.store
            .delete_key(&other, &record.id, true, NOW, &audit(&other))
            .await
            .unwrap()
            .is_none()
    );
    let change = KeyChange::SetCredits(Some(5));
    assert_eq!(
        f.store
            .change_key(&other, &record.id, change, NOW, &audit(&other))
            .await
            .unwrap(),
        Err(KeyChangeError::NotFound)
    );
    let listed = f
        .store
        .keys_of_api(&other, &f.api, None, page(10))
        .await
        .unwrap();
    assert!(listed.items.is_empty());
    assert_eq!(
        f.store.key(&f.workspace, &record.id).await.unwrap(),
        Some(record)
    );
}

async fn deleting_an_api_deletes_its_keys_and_reports_them(backend: Backend) {
    let f = fixture(backend).await;
    let a = f.key(random_digest(), None);
    let b = f.key(random_digest(), None);
    f.store
        .insert_key(&a, &audit(&a.workspace_id))
        .await
        .unwrap();
    f.store
        .insert_key(&b, &audit(&b.workspace_id))
        .await
        .unwrap();
    let mut digests = f
        .store
        .delete_api(&f.workspace, &f.api, NOW, &audit(&f.workspace))
        .await
        .unwrap()
        .unwrap();
    digests.sort();
    let mut expected = vec![a.digest, b.digest];
    expected.sort();
    assert_eq!(digests, expected);
    assert!(f.store.api(&f.workspace, &f.api).await.unwrap().is_none());
    assert!(f.store.key(&f.workspace, &a.id).await.unwrap().is_none());
    // Soft-deleted keys stay findable by digest, marked deleted, for verification.
    let found = f.store.key_by_digest(&a.digest).await.unwrap().unwrap();
    assert_eq!(found.deleted_at, Some(NOW));
    // A second deletion finds nothing.
    assert!(
        f.store
            .delete_api(&f.workspace, &f.api, NOW, &audit(&f.workspace))
            .await
            .unwrap()
            .is_none()
    );
}

async fn imports_skip_existing_hashes_one_by_one(backend: Backend) {
    let f = fixture(backend).await;
    let existing = f.key(random_digest(), None);
    f.store
        .insert_key(&existing, &audit(&existing.workspace_id))
        .await
        .unwrap();
    let fresh = f.key(random_digest(), Some(3));
    let duplicate = f.key(existing.digest, None);
    let twice = f.key(fresh.digest, None);
    let outcomes = f
        .store
        .import_keys(
            &[fresh.clone(), duplicate.clone(), twice],
            &audit(&f.workspace),
        )
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        vec![
            ImportOutcome::Imported,
            ImportOutcome::Duplicate,
            ImportOutcome::Duplicate
        ]
    );
    assert_eq!(
        f.store.key(&f.workspace, &fresh.id).await.unwrap(),
        Some(fresh)
    );
    assert!(
        f.store
            .key(&f.workspace, &duplicate.id)
            .await
            .unwrap()
            .is_none()
    );
}

async fn keys_are_listed_in_pages_by_id_and_by_identity(backend: Backend) {
    let f = fixture(backend).await;
    let identity = f
        .store
        .upsert_identity(&identity_in(&f.workspace, "acme"), &audit(&f.workspace))
        .await
        .unwrap();
    let (mut ids, mut linked): (Vec<KeyId>, Vec<KeyId>) = (Vec::new(), Vec::new());
    for i in 0..5 {
        let mut record = f.key(random_digest(), None);
        if i % 2 == 0 {
            record.identity = Some(identity.clone());
            linked.push(record.id.clone());
        }
        f.store
            .insert_key(&record, &audit(&record.workspace_id))
            .await
            .unwrap();
        ids.push(record.id);
    }
    // Deleted keys are not listed.
    let deleted = ids.remove(4);
    linked.retain(|id| *id != deleted);
    f.store
        .delete_key(&f.workspace, &deleted, false, NOW, &audit(&f.workspace))
        .await
        .unwrap();
    ids.sort();
    linked.sort();

    let mut listed = Vec::new();
    let mut from = None;
    loop {
        let page = f
            .store
            .keys_of_api(&f.workspace, &f.api, None, page_from(from, 3))
            .await
            .unwrap();
        assert!(page.items.len() <= 3);
        listed.extend(page.items.into_iter().map(|k| k.id));
        match page.next {
            Some(next) => from = Some(next),
            None => break,
        }
    }
    assert_eq!(listed, ids, "every live key once, in id order");

    let acme = ExternalId::parse("acme").unwrap();
    let of_acme = f
        .store
        .keys_of_api(&f.workspace, &f.api, Some(&acme), page(10))
        .await
        .unwrap();
    let of_acme: Vec<KeyId> = of_acme.items.into_iter().map(|k| k.id).collect();
    assert_eq!(of_acme, linked);
    let nobody = ExternalId::parse("nobody").unwrap();
    let of_nobody = f
        .store
        .keys_of_api(&f.workspace, &f.api, Some(&nobody), page(10))
        .await
        .unwrap();
    assert!(of_nobody.items.is_empty());
}

async fn changes_apply_atomically_or_not_at_all(backend: Backend) {
    let f = fixture(backend).await;
    let record = f.key(random_digest(), Some(10));
    f.store
        .insert_key(&record, &audit(&record.workspace_id))
        .await
        .unwrap();

    let update = KeyUpdate {
        name: Patch::Set(KeyName::parse("renamed").unwrap()),
        meta: Patch::Set(meta(serde_json::json!({ "plan": "pro" }))),
        enabled: Some(false),
        ..KeyUpdate::default()
    };
    let changed = f
        .store
        .change_key(
            &f.workspace,
            &record.id,
            KeyChange::Update(Box::new(update)),
            NOW,
            &audit(&f.workspace),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(changed.name.as_ref().unwrap().as_str(), "renamed");
    assert!(!changed.enabled);
    assert_eq!(changed.updated_at, Some(NOW));
    let read = f.store.key(&f.workspace, &record.id).await.unwrap();
    assert_eq!(read.as_ref(), Some(&changed));

    let adjusted = f
        .store
        .change_key(
            &f.workspace,
            &record.id,
            KeyChange::AdjustCredits(CreditAdjustment::Decrement(4)),
            NOW,
            &audit(&f.workspace),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(adjusted.credits.unwrap().remaining(), 6);

    // A refused change leaves the key as it was.
    let refused = f
        .store
        .change_key(
            &f.workspace,
            &record.id,
            KeyChange::SetCredits(Some(-1)),
            NOW,
            &audit(&f.workspace),
        )
        .await
        .unwrap();
    assert!(matches!(refused, Err(KeyChangeError::NegativeCredits(_))));
    let read = f
        .store
        .key(&f.workspace, &record.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read, adjusted);

    let unlimited = f
        .store
        .change_key(
            &f.workspace,
            &record.id,
            KeyChange::SetCredits(None),
            NOW,
            &audit(&f.workspace),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(unlimited.credits, None);
    let missing = KeyId::generate(NOW);
    assert_eq!(
        f.store
            .change_key(
                &f.workspace,
                &missing,
                KeyChange::SetCredits(None),
                NOW,
                &audit(&f.workspace)
            )
            .await
            .unwrap(),
        Err(KeyChangeError::NotFound)
    );

    // Concurrent increments all count: each is decided against the row as it is then.
    f.store
        .change_key(
            &f.workspace,
            &record.id,
            KeyChange::SetCredits(Some(0)),
            NOW,
            &audit(&f.workspace),
        )
        .await
        .unwrap()
        .unwrap();
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let store = Arc::clone(&f.store);
            let (workspace, id) = (f.workspace.clone(), record.id.clone());
            tokio::spawn(async move {
                let increment = KeyChange::AdjustCredits(CreditAdjustment::Increment(1));
                store
                    .change_key(&workspace, &id, increment, NOW, &audit(&workspace))
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap().unwrap();
    }
    let after = f
        .store
        .key(&f.workspace, &record.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.credits.unwrap().remaining(), 40);
}

async fn soft_deleted_keys_stay_presentable_and_permanent_ones_go(backend: Backend) {
    let f = fixture(backend).await;
    let soft = f.key(random_digest(), None);
    let hard = f.key(random_digest(), None);
    f.store
        .insert_key(&soft, &audit(&soft.workspace_id))
        .await
        .unwrap();
    f.store
        .insert_key(&hard, &audit(&hard.workspace_id))
        .await
        .unwrap();

    let deleted = f
        .store
        .delete_key(&f.workspace, &soft.id, false, NOW, &audit(&f.workspace))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(deleted.id, soft.id);
    assert!(f.store.key(&f.workspace, &soft.id).await.unwrap().is_none());
    let found = f.store.key_by_digest(&soft.digest).await.unwrap().unwrap();
    assert_eq!(found.deleted_at, Some(NOW));
    assert!(
        f.store
            .delete_key(&f.workspace, &soft.id, true, NOW, &audit(&f.workspace))
            .await
            .unwrap()
            .is_none(),
        "a deleted key cannot be deleted again"
    );

    f.store
        .delete_key(&f.workspace, &hard.id, true, NOW, &audit(&f.workspace))
        .await
        .unwrap()
        .unwrap();
    assert!(f.store.key_by_digest(&hard.digest).await.unwrap().is_none());
    assert_eq!(f.store.all_key_digests().await.unwrap(), vec![soft.digest]);
}

async fn rotation_shortens_the_old_key_and_inserts_the_new_one(backend: Backend) {
    let f = fixture(backend).await;
    let mut old = f.key(random_digest(), Some(3));
    old.expires = Some(NOW.plus_millis(1_000));
    f.store
        .insert_key(&old, &audit(&old.workspace_id))
        .await
        .unwrap();

    let new = f.key(random_digest(), Some(3));
    let later = NOW.plus_millis(60_000);
    let rotated = f
        .store
        .rotate_key(&f.workspace, &old.id, &new, later, &audit(&f.workspace))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rotated.expires, old.expires, "never lengthened");
    assert_eq!(rotated.updated_at, Some(new.created_at));
    assert_eq!(
        f.store.key(&f.workspace, &new.id).await.unwrap(),
        Some(new.clone())
    );

    let newer = f.key(random_digest(), None);
    let sooner = NOW.plus_millis(10);
    let rotated = f
        .store
        .rotate_key(&f.workspace, &new.id, &newer, sooner, &audit(&f.workspace))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rotated.expires, Some(sooner));
    let read = f.store.key(&f.workspace, &new.id).await.unwrap().unwrap();
    assert_eq!(read.expires, Some(sooner));

    // Rotating a key that does not exist inserts nothing.
    let orphan = f.key(random_digest(), None);
    let missing = KeyId::generate(NOW);
    assert!(
        f.store
            .rotate_key(
                &f.workspace,
                &missing,
                &orphan,
                sooner,
                &audit(&f.workspace)
            )
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        f.store
            .key_by_digest(&orphan.digest)
            .await
            .unwrap()
            .is_none()
    );
}

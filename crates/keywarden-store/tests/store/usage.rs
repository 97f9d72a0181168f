//! Verification events: rollups add up exactly across batches (once folded), last use only
//! moves forward, pruning removes only old raw events, and workspaces never mix.

use std::net::{IpAddr, Ipv4Addr};

use keywarden_core::id::{ApiId, KeyId, WorkspaceId};
use keywarden_core::store::Store;
use keywarden_core::time::UnixMillis;
use keywarden_core::usage::{Granularity, VerificationEvent};
use keywarden_core::verify::VerifyCode;

use crate::backend::Backend;
use crate::fixture::{NOW, api_in, audit, fixture, identity_in, key_in, random_digest, workspace};

store_tests!(
    rollups_sum_exactly_across_batches_and_buckets,
    last_use_never_moves_backwards,
    pruning_removes_only_old_raw_rows,
    workspaces_never_mix,
);

const MINUTE: i64 = 60_000;

fn event(
    workspace: &WorkspaceId,
    api: &ApiId,
    key: &KeyId,
    time: UnixMillis,
    outcome: VerifyCode,
    spent: i64,
    tags: &[&str],
) -> VerificationEvent {
    VerificationEvent {
        request_id: format!("req_{}", time.as_millis()).into(),
        time,
        workspace_id: workspace.clone(),
        api_id: api.clone(),
        key_id: key.clone(),
        identity_id: None,
        external_id: None,
        outcome,
        spent_credits: spent,
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        client_ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
    }
}

/// (bucket, key, outcome, tags, count, spent) of every rollup row of the workspace.
async fn rows(
    store: &dyn Store,
    workspace: &WorkspaceId,
    granularity: Granularity,
) -> Vec<(i64, String, &'static str, Vec<String>, i64, i64)> {
    store
        .verification_rollups(workspace, granularity)
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            (
                r.bucket.as_millis(),
                r.key_id.to_string(),
                r.outcome.as_str(),
                r.tags,
                r.count,
                r.spent_credits,
            )
        })
        .collect()
}

async fn rollups_sum_exactly_across_batches_and_buckets(backend: Backend) {
    let f = fixture(backend).await;
    let key = f.key(random_digest(), None);
    let mut with_identity = f.key(random_digest(), None);
    let identity = identity_in(&f.workspace, "customer_1");
    f.store
        .insert_identity(&identity, &audit(&identity.workspace_id))
        .await
        .unwrap();
    with_identity.identity = Some(identity.clone());
    f.store
        .insert_key(&key, &audit(&key.workspace_id))
        .await
        .unwrap();
    f.store
        .insert_key(&with_identity, &audit(&with_identity.workspace_id))
        .await
        .unwrap();
    let hour = Granularity::Hour.bucket_start(NOW);
    let ev = |minute: i64, outcome, spent, tags: &[&str]| {
        event(
            &f.workspace,
            &f.api,
            &key.id,
            hour.plus_millis(minute * MINUTE + 5),
            outcome,
            spent,
            tags,
        )
    };
    // Three batches; the second adds to rows the first created.
    let first = vec![
        ev(0, VerifyCode::Valid, 1, &["a"]),
        ev(0, VerifyCode::Valid, 2, &["a"]),
        ev(1, VerifyCode::Valid, 1, &["a"]),
        ev(1, VerifyCode::RateLimited, 0, &["a"]),
    ];
    let second = vec![
        ev(0, VerifyCode::Valid, 4, &["a"]),
        ev(1, VerifyCode::Valid, 0, &[]),
        ev(61, VerifyCode::UsageExceeded, 0, &["a", "b"]),
    ];
    let mut third = vec![ev(0, VerifyCode::Valid, 1, &["a"])];
    let mut linked = event(
        &f.workspace,
        &f.api,
        &with_identity.id,
        hour.plus_millis(10),
        VerifyCode::Valid,
        0,
        &[],
    );
    linked.identity_id = Some(identity.id.clone());
    linked.external_id = Some(identity.external_id.clone());
    third.push(linked);
    for batch in [first, second, third] {
        f.store.record_verifications(&batch).await.unwrap();
    }

    let k = key.id.to_string();
    let w = with_identity.id.to_string();
    let tags = |t: &[&str]| t.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let m = |n: i64| hour.as_millis() + n * MINUTE;
    let mut minutes = rows(f.store.as_ref(), &f.workspace, Granularity::Minute).await;
    minutes.sort();
    let mut expected = vec![
        (m(0), k.clone(), "VALID", tags(&["a"]), 4, 8),
        (m(0), w.clone(), "VALID", tags(&[]), 1, 0),
        (m(1), k.clone(), "RATE_LIMITED", tags(&["a"]), 1, 0),
        (m(1), k.clone(), "VALID", tags(&[]), 1, 0),
        (m(1), k.clone(), "VALID", tags(&["a"]), 1, 1),
        (m(61), k.clone(), "USAGE_EXCEEDED", tags(&["a", "b"]), 1, 0),
    ];
    expected.sort();
    assert_eq!(minutes, expected);

    let mut hours = rows(f.store.as_ref(), &f.workspace, Granularity::Hour).await;
    hours.sort();
    let mut expected = vec![
        (m(0), k.clone(), "RATE_LIMITED", tags(&["a"]), 1, 0),
        (m(0), k.clone(), "VALID", tags(&[]), 1, 0),
        (m(0), k.clone(), "VALID", tags(&["a"]), 5, 9),
        (m(0), w.clone(), "VALID", tags(&[]), 1, 0),
        (m(60), k.clone(), "USAGE_EXCEEDED", tags(&["a", "b"]), 1, 0),
    ];
    expected.sort();
    assert_eq!(hours, expected);

    for granularity in [Granularity::Day, Granularity::Month] {
        let all = rows(f.store.as_ref(), &f.workspace, granularity).await;
        let start = granularity.bucket_start(NOW).as_millis();
        assert!(all.iter().all(|r| r.0 == start), "{granularity:?}: {all:?}");
        assert_eq!(all.iter().map(|r| r.4).sum::<i64>(), 9, "{granularity:?}");
        assert_eq!(all.iter().map(|r| r.5).sum::<i64>(), 9, "{granularity:?}");
        assert_eq!(all.len(), 5, "{granularity:?}");
    }

    // The identity shows on its key's rows and is absent (NULL) on the others.
    let rollups = f
        .store
        .verification_rollups(&f.workspace, Granularity::Month)
        .await
        .unwrap();
    for r in &rollups {
        if r.key_id == with_identity.id {
            assert_eq!(r.identity_id.as_ref(), Some(&identity.id));
            assert_eq!(r.external_id.as_ref(), Some(&identity.external_id));
        } else {
            assert_eq!(
                (r.identity_id.as_ref(), r.external_id.as_ref()),
                (None, None)
            );
        }
    }
    assert_eq!(
        f.store
            .count_verification_events(&f.workspace)
            .await
            .unwrap(),
        9
    );
}

async fn last_use_never_moves_backwards(backend: Backend) {
    let f = fixture(backend).await;
    let key = f.key(random_digest(), None);
    let other = f.key(random_digest(), None);
    f.store
        .insert_key(&key, &audit(&key.workspace_id))
        .await
        .unwrap();
    f.store
        .insert_key(&other, &audit(&other.workspace_id))
        .await
        .unwrap();
    let read = |id: KeyId| {
        let (store, workspace) = (f.store.clone(), f.workspace.clone());
        async move { store.key(&workspace, &id).await.unwrap().unwrap().last_used }
    };
    assert_eq!(read(key.id.clone()).await, None);

    let at = |ms: i64| NOW.plus_millis(ms);
    let ev = |id: &KeyId, ms| event(&f.workspace, &f.api, id, at(ms), VerifyCode::Valid, 0, &[]);
    f.store
        .record_verifications(&[ev(&key.id, 500), ev(&key.id, 900), ev(&key.id, 100)])
        .await
        .unwrap();
    assert_eq!(read(key.id.clone()).await, None, "not before the fold");
    assert_eq!(f.store.fold_verification_rollups().await.unwrap(), 1);
    assert_eq!(read(key.id.clone()).await, Some(at(900)));
    assert_eq!(
        f.store.fold_verification_rollups().await.unwrap(),
        0,
        "folded once"
    );
    // An older batch committed later leaves the newer time.
    f.store
        .record_verifications(&[ev(&key.id, 300)])
        .await
        .unwrap();
    f.store.fold_verification_rollups().await.unwrap();
    assert_eq!(read(key.id.clone()).await, Some(at(900)));
    // Two writes folded together: the later time wins whatever their order.
    f.store
        .record_verifications(&[ev(&key.id, 1_000)])
        .await
        .unwrap();
    f.store
        .record_verifications(&[ev(&key.id, 950)])
        .await
        .unwrap();
    assert_eq!(f.store.fold_verification_rollups().await.unwrap(), 2);
    assert_eq!(read(key.id.clone()).await, Some(at(1_000)));
    assert_eq!(read(other.id.clone()).await, None);
    // Key reads by digest show it too (verification and whoami read keys that way).
    let by_digest = f.store.key_by_digest(&key.digest).await.unwrap().unwrap();
    assert_eq!(by_digest.last_used, Some(at(1_000)));
}

async fn pruning_removes_only_old_raw_rows(backend: Backend) {
    let f = fixture(backend).await;
    let key = f.key(random_digest(), None);
    f.store
        .insert_key(&key, &audit(&key.workspace_id))
        .await
        .unwrap();
    let ev = |ms: i64| {
        event(
            &f.workspace,
            &f.api,
            &key.id,
            NOW.plus_millis(ms),
            VerifyCode::Valid,
            1,
            &[],
        )
    };
    let events: Vec<_> = (0..10).map(|i| ev(i * 1_000)).collect();
    f.store.record_verifications(&events).await.unwrap();
    let before_rollups = rows(f.store.as_ref(), &f.workspace, Granularity::Day).await;

    // Rows strictly before the cut go; the one at the cut stays.
    let pruned = f
        .store
        .prune_verifications(NOW.plus_millis(4_000))
        .await
        .unwrap();
    assert_eq!(pruned, 4);
    assert_eq!(
        f.store
            .count_verification_events(&f.workspace)
            .await
            .unwrap(),
        6
    );
    assert_eq!(
        f.store
            .prune_verifications(NOW.plus_millis(4_000))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        rows(f.store.as_ref(), &f.workspace, Granularity::Day).await,
        before_rollups,
        "rollups stay"
    );
    assert_eq!(before_rollups[0].4, 10);
}

async fn workspaces_never_mix(backend: Backend) {
    let f = fixture(backend).await;
    let other_workspace = workspace("other");
    f.store.insert_workspace(&other_workspace).await.unwrap();
    let other_api = api_in(&other_workspace.id);
    f.store
        .insert_api(&other_api, &audit(&other_api.workspace_id))
        .await
        .unwrap();
    let mine = f.key(random_digest(), None);
    let theirs = key_in(&other_workspace.id, &other_api.id, random_digest(), None);
    f.store
        .insert_key(&mine, &audit(&mine.workspace_id))
        .await
        .unwrap();
    f.store
        .insert_key(&theirs, &audit(&theirs.workspace_id))
        .await
        .unwrap();

    let mut batch: Vec<_> = (0..3)
        .map(|i| {
            event(
                &f.workspace,
                &f.api,
                &mine.id,
                NOW.plus_millis(i),
                VerifyCode::Valid,
                0,
                &["t"],
            )
        })
        .collect();
    batch.push(event(
        &other_workspace.id,
        &other_api.id,
        &theirs.id,
        NOW,
        VerifyCode::Valid,
        0,
        &["t"],
    ));
    // An event naming a key of another workspace touches nothing of that key.
    batch.push(event(
        &f.workspace,
        &f.api,
        &theirs.id,
        NOW.plus_millis(50),
        VerifyCode::Valid,
        0,
        &["t"],
    ));
    f.store.record_verifications(&batch).await.unwrap();

    let count = |w: &WorkspaceId| {
        let (store, w) = (f.store.clone(), w.clone());
        async move { store.count_verification_events(&w).await.unwrap() }
    };
    assert_eq!(count(&f.workspace).await, 4);
    assert_eq!(count(&other_workspace.id).await, 1);
    let theirs_rows = rows(f.store.as_ref(), &other_workspace.id, Granularity::Minute).await;
    assert_eq!(theirs_rows.len(), 1);
    assert_eq!(theirs_rows[0].1, theirs.id.to_string());
    assert_eq!(theirs_rows[0].4, 1);
    let theirs_after = f
        .store
        .key(&other_workspace.id, &theirs.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        theirs_after.last_used,
        Some(NOW),
        "not the 50 ms event of the wrong workspace"
    );
}

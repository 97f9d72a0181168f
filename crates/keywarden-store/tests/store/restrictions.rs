//! Restrictions and expiry policies: stored with keys and APIs and read back whole; a key
//! read for verification carries its API's current restrictions.

use keywarden_core::api::{ApiUpdate, ApiUpdateError};
use keywarden_core::key::{KeyUpdate, Patch};
use keywarden_core::key_change::KeyChange;
use keywarden_core::key_lifetime::{Lifetime, LifetimeError};
use keywarden_core::restriction::{IpNetwork, OriginPattern, Restrictions};

use crate::backend::Backend;
use crate::fixture::{NOW, audit, fixture, random_digest};

store_tests!(
    key_restrictions_read_back_and_clear,
    api_settings_update_atomically_and_reach_the_keys,
);

fn restrictions(ips: &[&str], origins: &[&str]) -> Restrictions {
    Restrictions::new(
        ips.iter().map(|s| IpNetwork::parse(s).unwrap()).collect(),
        origins
            .iter()
            .map(|s| OriginPattern::parse(s).unwrap())
            .collect(),
    )
    .unwrap()
    .unwrap()
}

fn lifetime(ms: i64) -> Lifetime {
    Lifetime::from_millis(ms).unwrap()
}

async fn key_restrictions_read_back_and_clear(backend: Backend) {
    let f = fixture(backend).await;
    let mut record = f.key(random_digest(), None);
    record.restrictions = Some(restrictions(
        &["10.0.0.0/8", "2001:db8::/32", "192.0.2.1"],
        &["app.example.com", "*.example.com:8443"],
    ));
    f.store
        .insert_key(&record, &audit(&f.workspace))
        .await
        .unwrap();
    let read = f
        .store
        .key_by_digest(&record.digest)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.restrictions, record.restrictions);
    assert_eq!(read.api_restrictions, None);

    let cleared = f
        .store
        .change_key(
            &f.workspace,
            &record.id,
            KeyChange::Update(Box::new(KeyUpdate {
                restrictions: Patch::Clear,
                ..KeyUpdate::default()
            })),
            NOW,
            &audit(&f.workspace),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cleared.restrictions, None);
    let read = f
        .store
        .key(&f.workspace, &record.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.restrictions, None);
}

async fn api_settings_update_atomically_and_reach_the_keys(backend: Backend) {
    let f = fixture(backend).await;
    let record = f.key(random_digest(), None);
    f.store
        .insert_key(&record, &audit(&f.workspace))
        .await
        .unwrap();
    let api_rules = restrictions(&["::1"], &[]);
    let updated = f
        .store
        .update_api(
            &f.workspace,
            &f.api,
            ApiUpdate {
                restrictions: Patch::Set(api_rules.clone()),
                default_key_lifetime: Patch::Set(lifetime(60_000)),
                max_key_lifetime: Patch::Set(lifetime(120_000)),
            },
            &audit(&f.workspace),
        )
        .await
        .unwrap()
        .unwrap();
    let read = f.store.api(&f.workspace, &f.api).await.unwrap().unwrap();
    assert_eq!(read, updated);
    assert_eq!(read.restrictions, Some(api_rules.clone()));
    assert_eq!(read.key_lifetime.default_lifetime(), Some(lifetime(60_000)));
    assert_eq!(read.key_lifetime.max_lifetime(), Some(lifetime(120_000)));
    let key = f
        .store
        .key_by_digest(&record.digest)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(key.api_restrictions, Some(api_rules));

    // A maximum below the default is refused and changes nothing.
    let refused = f
        .store
        .update_api(
            &f.workspace,
            &f.api,
            ApiUpdate {
                restrictions: Patch::Clear,
                max_key_lifetime: Patch::Set(lifetime(61_000)),
                default_key_lifetime: Patch::Set(lifetime(120_000)),
            },
            &audit(&f.workspace),
        )
        .await
        .unwrap();
    assert!(matches!(
        refused,
        Err(ApiUpdateError::Lifetime(
            LifetimeError::DefaultAboveMax { .. }
        ))
    ));
    assert_eq!(
        f.store.api(&f.workspace, &f.api).await.unwrap().unwrap(),
        updated
    );

    let other = crate::fixture::workspace("other");
    f.store.insert_workspace(&other).await.unwrap();
    let elsewhere = f
        .store
        .update_api(&other.id, &f.api, ApiUpdate::default(), &audit(&other.id))
        .await
        .unwrap();
    assert_eq!(elsewhere, Err(ApiUpdateError::NotFound));
}

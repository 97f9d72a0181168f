//! The SQLite store against its contract: atomic, durable, isolated per workspace.

use std::sync::Arc;

use keywarden_core::api::Api;
use keywarden_core::credits::{CreditRefill, Credits, RefillSchedule, SpendOutcome};
use keywarden_core::digest::KeyDigest;
use keywarden_core::id::{ApiId, KeyId, RootKeyId, WorkspaceId};
use keywarden_core::identity::{ExternalId, Identity, IdentityUpdate};
use keywarden_core::key::KeyRecord;
use keywarden_core::key_format::{self, ByteLength};
use keywarden_core::named_limit::{LimitName, LimitSpec};
use keywarden_core::ratelimit::WindowDuration;
use keywarden_core::root_key::{RootKey, RootPermissions};
use keywarden_core::store::{
    ApiStore, CreditSpend, IdentityStore, ImportOutcome, KeyStore, PageRequest, RootKeyStore,
    Store, StoreError, WorkspaceStore,
};
use keywarden_core::text::{ApiName, Label};
use keywarden_core::time::UnixMillis;
use keywarden_core::workspace::Workspace;
use keywarden_store::SqliteStore;
use keywarden_store::sqlite::SqliteOpenError;

const NOW: UnixMillis = UnixMillis::from_millis(1_795_780_800_000);

struct Fixture {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    store: Arc<SqliteStore>,
    workspace: WorkspaceId,
    api: ApiId,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kw.db");
    let store = Arc::new(SqliteStore::open(&path).unwrap());
    let workspace = Workspace {
        id: WorkspaceId::generate(NOW),
        name: Label::parse("w").unwrap(),
        created_at: NOW,
    };
    store.insert_workspace(&workspace).await.unwrap();
    let api = api_in(&workspace.id);
    store.insert_api(&api).await.unwrap();
    Fixture {
        _dir: dir,
        path,
        store,
        workspace: workspace.id,
        api: api.id,
    }
}

fn api_in(workspace: &WorkspaceId) -> Api {
    Api {
        id: ApiId::generate(NOW),
        workspace_id: workspace.clone(),
        name: ApiName::parse("api").unwrap(),
        default_prefix: None,
        default_byte_length: ByteLength::DEFAULT,
        delete_protection: false,
        created_at: NOW,
    }
}

fn key(f: &Fixture, digest: KeyDigest, credits: Option<i64>) -> KeyRecord {
    KeyRecord {
        id: KeyId::generate(NOW),
        workspace_id: f.workspace.clone(),
        api_id: f.api.clone(),
        digest,
        start: "sk_abcd".into(),
        prefix: None,
        byte_length: ByteLength::DEFAULT,
        name: None,
        meta: None,
        enabled: true,
        expires: None,
        credits: credits.map(|c| Credits::new(c, None, NOW).unwrap()),
        identity: None,
        ratelimits: Vec::new(),
        permissions: Vec::new(),
        roles: Vec::new(),
        created_at: NOW,
        updated_at: None,
        deleted_at: None,
    }
}

fn random_digest() -> KeyDigest {
    key_format::generate(None, ByteLength::DEFAULT)
        .plaintext
        .digest()
}

#[tokio::test]
async fn a_record_survives_reopening_and_reads_back_equal() {
    let f = fixture().await;
    let mut record = key(&f, random_digest(), Some(7));
    record.meta = Some(
        keywarden_core::meta::Meta::new(
            serde_json::json!({ "a": [1, 2], "b": { "c": null } })
                .as_object()
                .unwrap()
                .clone(),
        )
        .unwrap(),
    );
    record.expires = Some(NOW.plus_millis(5));
    record.credits = Some(
        Credits::new(
            7,
            Some(CreditRefill::new(RefillSchedule::Monthly { day: 31 }, 9).unwrap()),
            NOW,
        )
        .unwrap(),
    );
    f.store.insert_key(&record).await.unwrap();
    drop(f.store);
    let reopened = SqliteStore::open(&f.path).unwrap();
    let read = reopened
        .key(&f.workspace, &record.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read, record);
    let by_digest = reopened
        .key_by_digest(&record.digest)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_digest, record);
}

#[tokio::test]
async fn concurrent_writes_commit_independently_in_groups() {
    let f = fixture().await;
    let shared = random_digest();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let digest = if i % 4 == 0 { shared } else { random_digest() };
        let record = key(&f, digest, None);
        let store = Arc::clone(&f.store);
        tasks.push(tokio::spawn(async move {
            (record.clone(), store.insert_key(&record).await)
        }));
    }
    let mut inserted = 0;
    let mut conflicts = 0;
    for task in tasks {
        let (record, result) = task.await.unwrap();
        match result {
            Ok(()) => {
                inserted += 1;
                assert!(
                    f.store
                        .key(&f.workspace, &record.id)
                        .await
                        .unwrap()
                        .is_some()
                );
            }
            Err(StoreError::Conflict(_)) => {
                conflicts += 1;
                assert!(
                    f.store
                        .key(&f.workspace, &record.id)
                        .await
                        .unwrap()
                        .is_none()
                );
            }
            Err(e) => panic!("unexpected error: {e:?}"),
        }
    }
    // 150 distinct digests plus one winner of the 50 sharing one.
    assert_eq!((inserted, conflicts), (151, 49));
    assert_eq!(f.store.all_key_digests().await.unwrap().len(), 151);
}

#[tokio::test]
async fn spending_is_exact_under_concurrency() {
    let f = fixture().await;
    let record = key(&f, random_digest(), Some(25));
    f.store.insert_key(&record).await.unwrap();
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let (store, id) = (Arc::clone(&f.store), record.id.clone());
            tokio::spawn(async move { store.spend_credits(&id, 1, NOW).await.unwrap() })
        })
        .collect();
    let mut spent = 0;
    for task in tasks {
        match task.await.unwrap() {
            CreditSpend::Outcome(SpendOutcome::Spent { .. }) => spent += 1,
            CreditSpend::Outcome(SpendOutcome::Insufficient { remaining }) => {
                assert_eq!(remaining, 0)
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(spent, 25);
    let after = f
        .store
        .key(&f.workspace, &record.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.credits.unwrap().remaining(), 0);
}

#[tokio::test]
async fn reads_and_changes_are_confined_to_their_workspace() {
    let f = fixture().await;
    let record = key(&f, random_digest(), Some(1));
    f.store.insert_key(&record).await.unwrap();
    let other = WorkspaceId::generate(NOW);
    assert!(f.store.key(&other, &record.id).await.unwrap().is_none());
    assert!(f.store.api(&other, &f.api).await.unwrap().is_none());
    assert!(
        f.store
            .delete_api(&other, &f.api, NOW)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        f.store
            .delete_key(&other, &record.id, true, NOW)
            .await
            .unwrap()
            .is_none()
    );
    let page = f
        .store
        .keys_of_api(
            &other,
            &f.api,
            None,
            PageRequest {
                from: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert!(page.items.is_empty());
    assert!(
        f.store
            .key(&f.workspace, &record.id)
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn deleting_an_api_deletes_its_keys_and_reports_them() {
    let f = fixture().await;
    let a = key(&f, random_digest(), None);
    let b = key(&f, random_digest(), None);
    f.store.insert_key(&a).await.unwrap();
    f.store.insert_key(&b).await.unwrap();
    let mut digests = f
        .store
        .delete_api(&f.workspace, &f.api, NOW)
        .await
        .unwrap()
        .unwrap();
    digests.sort();
    let mut expected = vec![a.digest, b.digest];
    expected.sort();
    assert_eq!(digests, expected);
    assert!(f.store.key(&f.workspace, &a.id).await.unwrap().is_none());
    // Soft-deleted keys stay findable by digest, marked deleted, for verification.
    let found = f.store.key_by_digest(&a.digest).await.unwrap().unwrap();
    assert!(found.deleted_at.is_some());
}

#[tokio::test]
async fn imports_skip_existing_hashes_one_by_one() {
    let f = fixture().await;
    let existing = key(&f, random_digest(), None);
    f.store.insert_key(&existing).await.unwrap();
    let fresh = key(&f, random_digest(), None);
    let duplicate = key(&f, existing.digest, None);
    let twice = key(&f, fresh.digest, None);
    let outcomes = f
        .store
        .import_keys(&[fresh, duplicate, twice])
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
}

#[tokio::test]
async fn bootstrap_happens_once_and_revisions_track_root_keys() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("kw.db")).unwrap();
    let root = |ws: &WorkspaceId| RootKey {
        id: RootKeyId::generate(NOW),
        workspace_id: ws.clone(),
        digest: random_digest(),
        start: "kw_root_abcd".into(),
        end: "wxyz".into(),
        name: None,
        permissions: RootPermissions::everything(),
        expires: None,
        enabled: true,
        created_at: NOW,
        revoked_at: None,
    };
    let ws = Workspace {
        id: WorkspaceId::generate(NOW),
        name: Label::parse("first").unwrap(),
        created_at: NOW,
    };
    let r0 = store.root_key_revision().await.unwrap();
    let first = root(&ws.id);
    assert!(store.bootstrap(&ws, &first).await.unwrap());
    let second_ws = Workspace {
        id: WorkspaceId::generate(NOW),
        ..ws.clone()
    };
    assert!(
        !store
            .bootstrap(&second_ws, &root(&second_ws.id))
            .await
            .unwrap()
    );
    assert_eq!(store.workspaces().await.unwrap().len(), 1);
    let r1 = store.root_key_revision().await.unwrap();
    assert!(r1 > r0);
    assert!(store.revoke_root_key(&first.id, NOW).await.unwrap());
    assert!(!store.revoke_root_key(&first.id, NOW).await.unwrap());
    assert!(store.root_key_revision().await.unwrap() > r1);
    let listed = store.root_keys().await.unwrap();
    assert_eq!(listed[0].revoked_at, Some(NOW));
    assert_eq!(listed[0].permissions, RootPermissions::everything());
    store.flush().await.unwrap();
}

#[test]
fn a_database_from_a_newer_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kw.db");
    drop(SqliteStore::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 999).unwrap();
    drop(conn);
    match SqliteStore::open(&path) {
        Err(SqliteOpenError::TooNew { found, .. }) => assert_eq!(found, 999),
        Err(e) => panic!("unexpected error: {e}"),
        Ok(_) => panic!("a newer schema was accepted"),
    }
}

fn identity_in(workspace: &WorkspaceId, external_id: &str) -> Identity {
    Identity::new(
        workspace.clone(),
        ExternalId::parse(external_id).unwrap(),
        None,
        vec![LimitSpec {
            name: LimitName::parse("requests").unwrap(),
            limit: 10,
            duration: WindowDuration::from_millis(60_000).unwrap(),
            auto_apply: true,
        }],
        NOW,
    )
}

#[tokio::test]
async fn concurrent_upserts_of_one_external_id_make_one_identity() {
    let f = fixture().await;
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = Arc::clone(&f.store);
            let candidate = identity_in(&f.workspace, "acme");
            tokio::spawn(async move { store.upsert_identity(&candidate).await.unwrap() })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.unwrap().id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "every upsert returned the same identity");
    let page = f
        .store
        .identities(
            &f.workspace,
            None,
            PageRequest {
                from: None,
                limit: 100,
            },
        )
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    // A second insert of the external id conflicts; another workspace may use it.
    assert!(matches!(
        f.store
            .insert_identity(&identity_in(&f.workspace, "acme"))
            .await,
        Err(StoreError::Conflict(_))
    ));
}

#[tokio::test]
async fn keys_read_back_with_their_identity_until_it_is_deleted() {
    let f = fixture().await;
    let identity = f
        .store
        .upsert_identity(&identity_in(&f.workspace, "acme"))
        .await
        .unwrap();
    let mut record = key(&f, random_digest(), None);
    record.identity = Some(identity.clone());
    f.store.insert_key(&record).await.unwrap();

    let read = f
        .store
        .key_by_digest(&record.digest)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.identity.as_ref(), Some(&identity));
    assert_eq!(read, record);

    // Reads find the identity by id or external id, only in its own workspace.
    for reference in [identity.id.as_str(), "acme"] {
        assert_eq!(
            f.store.identity(&f.workspace, reference).await.unwrap(),
            Some(identity.clone())
        );
    }
    let other = WorkspaceId::generate(NOW);
    assert_eq!(f.store.identity(&other, "acme").await.unwrap(), None);

    let (updated, digests) = f
        .store
        .update_identity(
            &f.workspace,
            "acme",
            IdentityUpdate {
                meta: None,
                ratelimits: Some(Vec::new()),
            },
            NOW,
        )
        .await
        .unwrap()
        .unwrap();
    assert!(updated.ratelimits.is_empty());
    assert_eq!(digests, [record.digest]);

    let unlinked = f
        .store
        .delete_identity(&f.workspace, identity.id.as_str())
        .await
        .unwrap();
    assert_eq!(unlinked, Some(vec![record.digest]));
    let read = f
        .store
        .key_by_digest(&record.digest)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.identity, None);
    assert_eq!(f.store.identity(&f.workspace, "acme").await.unwrap(), None);
    assert_eq!(
        f.store.delete_identity(&f.workspace, "acme").await.unwrap(),
        None
    );
}

//! What only PostgreSQL has to get right: several nodes on one database, the schema chosen
//! by the URL, and a database that cannot be reached or goes away.

use std::sync::Arc;
use std::time::{Duration, Instant};

use keywarden_core::credits::SpendOutcome;
use keywarden_core::store::{
    ApiStore, CreditSpend, KeyStore, RootKeyStore, Store, StoreError, WorkspaceStore,
};
use keywarden_store::postgres::PostgresOpenError;
use keywarden_store::{PostgresStore, StoreLocation};
use keywarden_testkit::{
    TcpProxy, TestSchema, postgres_url, socket_of, unique_name, via_port, with_param,
};
use sqlx::Row;

use crate::backend::{PATIENCE, open_postgres};
use crate::fixture::{NOW, api_in, audit, key_in, random_digest, root_key_in, workspace};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_spending_at_once_never_overspend() {
    let schema = TestSchema::create().await;
    let nodes: [Arc<dyn Store>; 2] = [
        Arc::new(open_postgres(&schema).await),
        Arc::new(open_postgres(&schema).await),
    ];
    let ws = workspace("w");
    nodes[0].insert_workspace(&ws).await.unwrap();
    let api = api_in(&ws.id);
    nodes[0]
        .insert_api(&api, &audit(&api.workspace_id))
        .await
        .unwrap();
    let key = key_in(&ws.id, &api.id, random_digest(), Some(50));
    nodes[1]
        .insert_key(&key, &audit(&key.workspace_id))
        .await
        .unwrap();

    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let (node, id) = (Arc::clone(&nodes[i % 2]), key.id.clone());
            tokio::spawn(async move { node.spend_credits(&id, 1, NOW).await.unwrap() })
        })
        .collect();
    let mut spent = 0;
    for task in tasks {
        match task.await.unwrap() {
            CreditSpend::Outcome(SpendOutcome::Spent { .. }) => spent += 1,
            CreditSpend::Outcome(SpendOutcome::Insufficient { remaining: 0 }) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(spent, 50);
    for node in &nodes {
        let read = node.key(&ws.id, &key.id).await.unwrap().unwrap();
        assert_eq!(read.credits.unwrap().remaining(), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_together_migrate_once_and_bootstrap_once() {
    let schema = TestSchema::create().await;
    let url = schema.url();
    let (a, b) = tokio::join!(PostgresStore::connect(&url), PostgresStore::connect(&url));
    let (a, b) = (a.unwrap(), b.unwrap());
    let (wa, wb) = (workspace("a"), workspace("b"));
    let (ka, kb) = (root_key_in(&wa.id), root_key_in(&wb.id));
    let (audit_a, audit_b) = (audit(&wa.id), audit(&wb.id));
    let (created_a, created_b) = tokio::join!(
        a.bootstrap(&wa, &ka, &audit_a),
        b.bootstrap(&wb, &kb, &audit_b)
    );
    let (created_a, created_b) = (created_a.unwrap(), created_b.unwrap());
    assert!(created_a ^ created_b, "exactly one node bootstraps");
    assert_eq!(a.workspaces().await.unwrap().len(), 1);
    assert_eq!(b.root_keys().await.unwrap().len(), 1);

    let mut conn = schema.connection().await;
    let versions: Vec<i64> = sqlx::query("SELECT version FROM keywarden_schema_version")
        .fetch_all(&mut conn)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        versions,
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
        "each migration recorded once"
    );
}

#[tokio::test]
async fn tables_live_in_the_schema_of_the_url_and_order_ids_bytewise() {
    let schema = TestSchema::create().await;
    let store = open_postgres(&schema).await;
    assert_eq!(store.kind(), "postgres");
    store.ping().await.unwrap();
    let mut conn = schema.connection().await;
    let tables: Vec<String> = sqlx::query(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = $1 ORDER BY 1",
    )
    .bind(schema.name())
    .fetch_all(&mut conn)
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect();
    for table in ["keys", "keywarden_schema_version", "revisions", "root_keys"] {
        assert!(tables.iter().any(|t| t == table), "{table} in {tables:?}");
    }
    // Pages are "ids from the cursor on": ids must sort bytewise whatever the database's
    // default collation.
    let loose: i64 = sqlx::query(
        "SELECT count(*) FROM information_schema.columns \
         WHERE table_schema = $1 AND (column_name = 'id' OR column_name LIKE '%\\_id') \
         AND data_type = 'text' AND coalesce(collation_name, '') <> 'C'",
    )
    .bind(schema.name())
    .fetch_one(&mut conn)
    .await
    .unwrap()
    .get(0);
    assert_eq!(loose, 0, "every id column collates as C");

    // The generic opener reaches the same schema.
    let location = StoreLocation::parse(&schema.url()).unwrap();
    let opened = keywarden_store::open(&location).await.unwrap();
    let ws = workspace("w");
    opened.insert_workspace(&ws).await.unwrap();
    assert_eq!(store.workspaces().await.unwrap(), vec![ws]);
}

#[tokio::test]
async fn a_schema_newer_than_the_build_is_refused() {
    let schema = TestSchema::create().await;
    drop(open_postgres(&schema).await);
    let mut conn = schema.connection().await;
    sqlx::query("INSERT INTO keywarden_schema_version (version) VALUES (999)")
        .execute(&mut conn)
        .await
        .unwrap();
    match PostgresStore::connect(&schema.url()).await {
        Err(PostgresOpenError::TooNew { found, supported }) => {
            assert_eq!(found, 999);
            assert!(supported < 999);
        }
        Err(e) => panic!("unexpected error: {e}"),
        Ok(_) => panic!("a newer schema was accepted"),
    }
}

#[tokio::test]
async fn an_unreachable_database_fails_to_open_at_once() {
    let started = Instant::now();
    let refused = PostgresStore::connect("postgres://postgres@127.0.0.1:1/test").await;
    assert!(matches!(refused, Err(PostgresOpenError::Connect(_))));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(
        PostgresStore::connect("postgres://postgres@127.0.0.1:notaport/test").await,
        Err(PostgresOpenError::Url(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_goes_away_is_unavailable_until_it_returns() {
    let schema = TestSchema::create().await;
    let mut proxy = TcpProxy::start(socket_of(&postgres_url())).await;
    let store = PostgresStore::connect(&via_port(&schema.url(), proxy.port()))
        .await
        .unwrap();
    let ws = workspace("w");
    store.insert_workspace(&ws).await.unwrap();

    proxy.cut().await;
    let started = Instant::now();
    let gone = store.workspaces().await;
    assert!(matches!(gone, Err(StoreError::Unavailable(_))), "{gone:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(
        store.root_key_revision().await,
        Err(StoreError::Unavailable(_))
    ));

    proxy.restore();
    let deadline = Instant::now() + PATIENCE;
    loop {
        match store.workspaces().await {
            Ok(found) => {
                assert_eq!(found, vec![ws]);
                break;
            }
            Err(e) if Instant::now() < deadline => {
                assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("the store did not come back: {e:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_the_server_terminates_are_replaced() {
    let schema = TestSchema::create().await;
    let name = unique_name("kwt_app_");
    let store = PostgresStore::connect(&with_param(
        &schema.url(),
        &format!("application_name={name}"),
    ))
    .await
    .unwrap();
    let ws = workspace("w");
    store.insert_workspace(&ws).await.unwrap();
    let mut conn = schema.connection().await;
    let terminated: i64 = sqlx::query(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = $1) t",
    )
    .bind(&name)
    .fetch_one(&mut conn)
    .await
    .unwrap()
    .get(0);
    assert!(terminated >= 1, "the store had a connection open");
    assert_eq!(store.workspaces().await.unwrap(), vec![ws]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_opens_no_more_connections_than_configured() {
    let schema = TestSchema::create().await;
    let store = Arc::new(PostgresStore::connect_with(&schema.url(), 3).await.unwrap());
    let ws = workspace("pool");
    store.insert_workspace(&ws).await.unwrap();
    let api = api_in(&ws.id);
    store
        .insert_api(&api, &audit(&api.workspace_id))
        .await
        .unwrap();
    let key = key_in(&ws.id, &api.id, random_digest(), Some(1_000));
    store
        .insert_key(&key, &audit(&key.workspace_id))
        .await
        .unwrap();
    // Far more concurrent operations than connections: they queue for the three.
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let (store, id) = (Arc::clone(&store), key.id.clone());
            tokio::spawn(async move { store.spend_credits(&id, 1, NOW).await.unwrap() })
        })
        .collect();
    for task in tasks {
        assert!(matches!(
            task.await.unwrap(),
            CreditSpend::Outcome(SpendOutcome::Spent { .. })
        ));
    }
    assert!(
        store.pool().size() <= 3,
        "{} connections",
        store.pool().size()
    );
    let read = store.key(&ws.id, &key.id).await.unwrap().unwrap();
    assert_eq!(read.credits.unwrap().remaining(), 960);
}

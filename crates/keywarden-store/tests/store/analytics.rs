//! Analytics queries: the same rendered query gives the same rows on every backend (counts,
//! sums, buckets, `has`, aggregates over no rows, NULL identities), rows of another workspace
//! or API never appear, nothing can write, and the time budget and row cap hold.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use keywarden_core::analytics_query::{AnalyticsQuery, ApiScope, RenderedQuery};
use keywarden_core::id::{ApiId, IdentityId, KeyId, WorkspaceId};
use keywarden_core::identity::ExternalId;
use keywarden_core::store::{AnalyticsError, AnalyticsLimits, AnalyticsRow, Store};
use keywarden_core::time::UnixMillis;
use keywarden_core::usage::{Granularity, VerificationEvent};
use keywarden_core::verify::VerifyCode;
use serde_json::{Value, json};

use crate::backend::Backend;
use crate::fixture::{NOW, api_in, audit, fixture};

store_tests!(
    queries_give_the_expected_rows,
    rows_of_other_workspaces_and_apis_never_appear,
    nothing_can_be_written,
    the_time_budget_stops_a_heavy_query,
    more_rows_than_allowed_is_an_error,
);

const DAY: i64 = 86_400_000;
const LIMITS: AnalyticsLimits = AnalyticsLimits {
    time_budget: Duration::from_secs(10),
    max_rows: 10_000,
};

struct Event<'a> {
    api: &'a ApiId,
    key: &'a KeyId,
    time: UnixMillis,
    outcome: VerifyCode,
    spent: i64,
    tags: &'a [&'a str],
    identity: Option<(&'a IdentityId, &'a str)>,
}

fn event(n: usize, workspace: &WorkspaceId, e: Event<'_>) -> VerificationEvent {
    VerificationEvent {
        request_id: format!("req_{n:06}").into(),
        time: e.time,
        workspace_id: workspace.clone(),
        api_id: e.api.clone(),
        key_id: e.key.clone(),
        identity_id: e.identity.map(|(id, _)| id.clone()),
        external_id: e.identity.map(|(_, ext)| ExternalId::parse(ext).unwrap()),
        outcome: e.outcome,
        spent_credits: e.spent,
        tags: e.tags.iter().map(|t| (*t).to_owned()).collect(),
        client_ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
    }
}

/// Runs `text` for `workspace` within `scope` on `store`.
async fn run(
    store: &dyn Store,
    workspace: &WorkspaceId,
    scope: &ApiScope,
    text: &str,
) -> Vec<AnalyticsRow> {
    let query = AnalyticsQuery::parse(text, NOW).unwrap_or_else(|e| panic!("{text}: {e}"));
    let rendered = query.render(store.analytics_dialect(), workspace, scope);
    store
        .run_analytics_query(&rendered, LIMITS)
        .await
        .unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn rows(value: Value) -> Vec<AnalyticsRow> {
    serde_json::from_value(value).unwrap()
}

/// A workspace with three keys on two APIs, one with an identity, over two months; and a
/// second workspace whose rows must never show.
struct Data {
    workspace: WorkspaceId,
    other_workspace: WorkspaceId,
    api: ApiId,
    second_api: ApiId,
    k1: KeyId,
}

async fn data(store: &dyn Store, workspace: WorkspaceId, api: ApiId) -> Data {
    let second_api = api_in(&workspace);
    store
        .insert_api(&second_api, &audit(&second_api.workspace_id))
        .await
        .unwrap();
    let other = crate::fixture::workspace("other");
    store.insert_workspace(&other).await.unwrap();
    let other_api = api_in(&other.id);
    store
        .insert_api(&other_api, &audit(&other_api.workspace_id))
        .await
        .unwrap();
    let (k1, k2, k3, k4) = (
        KeyId::generate(NOW),
        KeyId::generate(NOW),
        KeyId::generate(NOW),
        KeyId::generate(NOW),
    );
    let identity = IdentityId::generate(NOW);
    let earlier = NOW.plus_millis(-40 * DAY);
    let e = |api, key, time, outcome, spent, tags, identity| Event {
        api,
        key,
        time,
        outcome,
        spent,
        tags,
        identity,
    };
    let with_identity = Some((&identity, "cust_1"));
    let events = vec![
        e(
            &api,
            &k1,
            NOW,
            VerifyCode::Valid,
            1,
            &["beta", "path=/a"][..],
            with_identity,
        ),
        e(
            &api,
            &k1,
            NOW.plus_millis(1_000),
            VerifyCode::Valid,
            2,
            &["beta"],
            with_identity,
        ),
        e(
            &api,
            &k1,
            NOW.plus_millis(2_000),
            VerifyCode::RateLimited,
            0,
            &[],
            with_identity,
        ),
        e(
            &api,
            &k2,
            NOW.plus_millis(3_600_000),
            VerifyCode::Valid,
            0,
            &["path=/a"],
            None,
        ),
        e(&api, &k2, earlier, VerifyCode::UsageExceeded, 0, &[], None),
        e(
            &second_api.id,
            &k3,
            earlier,
            VerifyCode::Valid,
            5,
            &["beta"],
            None,
        ),
    ];
    let mut batch: Vec<_> = events
        .into_iter()
        .enumerate()
        .map(|(n, ev)| event(n, &workspace, ev))
        .collect();
    for n in 0..3 {
        batch.push(event(
            100 + n,
            &other.id,
            e(
                &other_api.id,
                &k4,
                NOW,
                VerifyCode::Valid,
                7,
                &["beta"],
                None,
            ),
        ));
    }
    store.record_verifications(&batch).await.unwrap();
    store.fold_verification_rollups().await.unwrap();
    Data {
        workspace,
        other_workspace: other.id,
        api,
        second_api: second_api.id,
        k1,
    }
}

async fn queries_give_the_expected_rows(backend: Backend) {
    let f = fixture(backend).await;
    let store = f.store.as_ref();
    let d = data(store, f.workspace.clone(), f.api.clone()).await;
    let month = |t: UnixMillis| Granularity::Month.bucket_start(t).as_millis();
    let hour = Granularity::Hour.bucket_start(NOW).as_millis();
    let earlier = NOW.plus_millis(-40 * DAY);
    let k1 = d.k1.as_str();
    let cases: Vec<(String, Value)> = vec![
        (
            "SELECT count() AS total FROM key_verifications_v1".into(),
            json!([{ "total": 6 }]),
        ),
        (
            "SELECT outcome, count() AS n FROM key_verifications_v1 GROUP BY outcome ORDER BY outcome"
                .into(),
            json!([
                { "outcome": "RATE_LIMITED", "n": 1 },
                { "outcome": "USAGE_EXCEEDED", "n": 1 },
                { "outcome": "VALID", "n": 4 },
            ]),
        ),
        (
            format!(
                "SELECT sum(spent_credits) AS credits, count(*), avg(spent_credits) AS mean, \
                 min(time), max(outcome) FROM key_verifications_v1 WHERE key_id = '{k1}'"
            ),
            json!([{ "credits": 3, "count()": 3, "mean": 1.0, "min(time)": NOW.as_millis(),
                     "max(outcome)": "VALID" }]),
        ),
        (
            "SELECT count() AS n, sum(spent_credits) AS s, min(time) AS first, \
             max(key_id) AS last, avg(spent_credits) AS mean \
             FROM key_verifications_v1 WHERE outcome = 'EXPIRED'"
                .into(),
            json!([{ "n": 0, "s": 0, "first": null, "last": null, "mean": null }]),
        ),
        (
            "SELECT toStartOfMonth(time) AS month, sum(count) AS n, sum(spent_credits) AS credits \
             FROM key_verifications_per_day_v1 GROUP BY month ORDER BY month"
                .into(),
            json!([
                { "month": month(earlier), "n": 2, "credits": 5 },
                { "month": month(NOW), "n": 4, "credits": 3 },
            ]),
        ),
        (
            "SELECT toStartOfHour(time) AS hour, count() AS n FROM key_verifications_v1 \
             WHERE time >= now() - INTERVAL 1 DAY GROUP BY hour ORDER BY hour DESC"
                .into(),
            json!([{ "hour": hour + 3_600_000, "n": 1 }, { "hour": hour, "n": 3 }]),
        ),
        (
            "SELECT has(tags, 'beta') AS beta, count() AS n FROM key_verifications_v1 \
             GROUP BY beta ORDER BY beta"
                .into(),
            json!([{ "beta": 0, "n": 3 }, { "beta": 1, "n": 3 }]),
        ),
        (
            "SELECT count() AS n, countIf(has(tags, 'beta')) AS beta FROM key_verifications_v1 \
             WHERE has(tags, 'path=/a')"
                .into(),
            json!([{ "n": 2, "beta": 1 }]),
        ),
        (
            format!("SELECT tags FROM key_verifications_v1 WHERE key_id = '{k1}' ORDER BY time"),
            json!([{ "tags": ["beta", "path=/a"] }, { "tags": ["beta"] }, { "tags": [] }]),
        ),
        (
            "SELECT identity_id, external_id, count() AS n FROM key_verifications_v1 \
             WHERE identity_id IS NULL GROUP BY identity_id, external_id"
                .into(),
            json!([{ "identity_id": null, "external_id": null, "n": 3 }]),
        ),
        (
            "SELECT external_id, sum(count) AS n FROM key_verifications_per_hour_v1 \
             WHERE external_id IS NOT NULL GROUP BY external_id"
                .into(),
            json!([{ "external_id": "cust_1", "n": 3 }]),
        ),
        (
            "SELECT key_space_id, countIf(outcome = 'VALID') AS valid, \
             sumIf(spent_credits, outcome = 'VALID') AS credits FROM key_verifications_v1 \
             GROUP BY key_space_id ORDER BY valid DESC"
                .into(),
            json!([
                { "key_space_id": d.api.as_str(), "valid": 3, "credits": 3 },
                { "key_space_id": d.second_api.as_str(), "valid": 1, "credits": 5 },
            ]),
        ),
        (
            "SELECT request_id FROM key_verifications_v1 WHERE outcome LIKE 'RATE\\\\_%' \
             OR request_id IN ('req_000004') ORDER BY request_id LIMIT 1, 5"
                .into(),
            json!([{ "request_id": "req_000004" }]),
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(
            run(store, &d.workspace, &ApiScope::All, &text).await,
            rows(expected),
            "{backend:?}: {text}"
        );
    }
    // Every rollup holds every verification.
    for table in ["minute", "hour", "day", "month"] {
        let text = format!(
            "SELECT sum(count) AS n, sum(spent_credits) AS credits FROM key_verifications_per_{table}_v1"
        );
        assert_eq!(
            run(store, &d.workspace, &ApiScope::All, &text).await,
            rows(json!([{ "n": 6, "credits": 8 }])),
            "{backend:?}: {text}"
        );
    }
}

async fn rows_of_other_workspaces_and_apis_never_appear(backend: Backend) {
    let f = fixture(backend).await;
    let store = f.store.as_ref();
    let d = data(store, f.workspace.clone(), f.api.clone()).await;
    let mine = d.workspace.as_str();
    let theirs = d.other_workspace.as_str();
    let count = |w: &WorkspaceId, scope: ApiScope, text: String| {
        let w = w.clone();
        async move {
            let rows = run(store, &w, &scope, &text).await;
            rows[0]["n"].as_i64().unwrap()
        }
    };
    let all = "SELECT count() AS n FROM key_verifications_v1".to_owned();
    assert_eq!(count(&d.workspace, ApiScope::All, all.clone()).await, 6);
    assert_eq!(
        count(&d.other_workspace, ApiScope::All, all.clone()).await,
        3
    );
    // Naming the other workspace finds nothing; OR-ing a tautology finds only our own rows.
    for (text, expected) in [
        (
            format!(
                "SELECT count() AS n FROM key_verifications_v1 WHERE workspace_id = '{theirs}'"
            ),
            0,
        ),
        (
            format!(
                "SELECT count() AS n FROM key_verifications_v1 \
                 WHERE workspace_id = '{theirs}' OR 1 = 1"
            ),
            6,
        ),
        (
            format!(
                "SELECT count() AS n FROM key_verifications_per_month_v1 \
                 WHERE workspace_id != '{mine}'"
            ),
            0,
        ),
    ] {
        assert_eq!(
            count(&d.workspace, ApiScope::All, text.clone()).await,
            expected,
            "{text}"
        );
    }
    let or_true = format!(
        "SELECT count() AS n FROM key_verifications_v1 WHERE workspace_id = '{mine}' OR key_id != ''"
    );
    assert_eq!(count(&d.other_workspace, ApiScope::All, or_true).await, 3);

    let second = ApiScope::Only(vec![d.second_api.clone()]);
    assert_eq!(count(&d.workspace, second.clone(), all.clone()).await, 1);
    let widen = format!(
        "SELECT count() AS n FROM key_verifications_v1 WHERE key_space_id = '{}' OR 1 = 1",
        d.api
    );
    assert_eq!(count(&d.workspace, second, widen).await, 1);
    assert_eq!(count(&d.workspace, ApiScope::Only(vec![]), all).await, 0);
}

/// The connection or transaction is read-only even for SQL the renderer would never write.
async fn nothing_can_be_written(backend: Backend) {
    let f = fixture(backend).await;
    let store = f.store.as_ref();
    let d = data(store, f.workspace.clone(), f.api.clone()).await;
    for sql in [
        "DELETE FROM analytics_event_batches",
        "UPDATE keys SET enabled = false",
        "CREATE TABLE stolen (x INTEGER)",
    ] {
        let query = RenderedQuery {
            sql: sql.to_owned(),
            params: Vec::new(),
            columns: Vec::new(),
        };
        let result = store.run_analytics_query(&query, LIMITS).await;
        assert!(
            matches!(result, Err(AnalyticsError::Store(_))),
            "{backend:?}: {sql} gave {result:?}"
        );
    }
    assert_eq!(
        store.count_verification_events(&d.workspace).await.unwrap(),
        6
    );
}

async fn the_time_budget_stops_a_heavy_query(backend: Backend) {
    let f = fixture(backend).await;
    let store = f.store.as_ref();
    let key = KeyId::generate(NOW);
    let batch: Vec<_> = (0..20_000)
        .map(|n| {
            let tags = ["heavy"];
            let ev = Event {
                api: &f.api,
                key: &key,
                time: NOW.plus_millis(i64::try_from(n).unwrap()),
                outcome: VerifyCode::Valid,
                spent: 1,
                tags: &tags,
                identity: None,
            };
            event(n, &f.workspace, ev)
        })
        .collect();
    store.record_verifications(&batch).await.unwrap();
    store.fold_verification_rollups().await.unwrap();
    let text = "SELECT request_id, tags, count() AS n, avg(time) AS t FROM key_verifications_v1 \
                WHERE request_id LIKE '%0%' OR has(tags, 'heavy') \
                GROUP BY request_id, tags ORDER BY t DESC, request_id";
    let query = AnalyticsQuery::parse(text, NOW).unwrap();
    let rendered = query.render(store.analytics_dialect(), &f.workspace, &ApiScope::All);
    let tight = AnalyticsLimits {
        time_budget: Duration::from_millis(1),
        max_rows: 20_000,
    };
    let result = store.run_analytics_query(&rendered, tight).await;
    assert!(
        matches!(result, Err(AnalyticsError::TimedOut(budget)) if budget == tight.time_budget),
        "{backend:?}: {:?}",
        result.map(|rows| rows.len())
    );
    // The same query within a sane budget finishes, and the store still answers.
    let rows = store.run_analytics_query(&rendered, LIMITS).await.unwrap();
    assert_eq!(rows.len(), 10_000);
}

async fn more_rows_than_allowed_is_an_error(backend: Backend) {
    let f = fixture(backend).await;
    let store = f.store.as_ref();
    let d = data(store, f.workspace.clone(), f.api.clone()).await;
    let query = AnalyticsQuery::parse("SELECT request_id FROM key_verifications_v1", NOW).unwrap();
    let rendered = query.render(store.analytics_dialect(), &d.workspace, &ApiScope::All);
    let capped = AnalyticsLimits {
        max_rows: 5,
        ..LIMITS
    };
    let result = store.run_analytics_query(&rendered, capped).await;
    assert!(
        matches!(result, Err(AnalyticsError::TooManyRows(5))),
        "{backend:?}: {result:?}"
    );
    let exact = AnalyticsLimits {
        max_rows: 6,
        ..LIMITS
    };
    assert_eq!(
        store
            .run_analytics_query(&rendered, exact)
            .await
            .unwrap()
            .len(),
        6
    );
}

//! `analytics.getVerifications` over HTTP: exact counts from the raw table and every rollup
//! after 20 000 concurrent verifications, hostile queries refused by name, workspaces and
//! API-scoped root keys see only their rows, and the permission, envelope and limits.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use keywarden_core::store::AnalyticsLimits;
use serde_json::{Value, json};

use crate::helpers::{Reply, TestApp, TestClock, spawn_app};

const KEYS: usize = 50;
const VERIFICATIONS: usize = 20_000;
const TASKS: usize = 16;
const HOUR: i64 = 3_600_000;

async fn query_as(app: &TestApp, root_key: &str, query: &str) -> Reply {
    app.call_as(
        root_key,
        "analytics.getVerifications",
        json!({ "query": query }),
    )
    .await
}

async fn query(app: &TestApp, query: &str) -> Reply {
    app.call("analytics.getVerifications", json!({ "query": query }))
        .await
}

/// The rows of a successful query.
async fn rows(app: &TestApp, text: &str) -> Vec<Value> {
    query(app, text)
        .await
        .ok()
        .as_array()
        .unwrap_or_else(|| panic!("{text}: data is not an array"))
        .clone()
}

async fn total(app: &TestApp) -> i64 {
    rows(app, "SELECT count() AS n FROM key_verifications_v1").await[0]["n"]
        .as_i64()
        .unwrap()
}

/// Waits (up to 60 s) until the endpoint counts `n` verifications.
async fn wait_for_total(app: &TestApp, n: i64) {
    let started = Instant::now();
    loop {
        let seen = total(app).await;
        if seen == n {
            return;
        }
        assert!(seen < n, "more events than verifications: {seen} > {n}");
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "only {seen} of {n} verifications counted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `verifications` verifyKey calls spread over `keys` by 16 concurrent tasks.
async fn verify_concurrently(app: &Arc<TestApp>, keys: &Arc<Vec<(String, String)>>, n: usize) {
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let (app, keys) = (Arc::clone(app), Arc::clone(keys));
            tokio::spawn(async move {
                for i in (task..n).step_by(TASKS) {
                    let (_, key) = &keys[i % KEYS];
                    app.call("keys.verifyKey", json!({ "key": key, "tags": ["load"] }))
                        .await
                        .ok();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

/// `{(key_id, outcome): (count, credits)}` from rows with those fields.
fn by_key_and_outcome(rows: &[Value]) -> BTreeMap<(String, String), (i64, i64)> {
    rows.iter()
        .map(|r| {
            (
                (
                    r["key_id"].as_str().unwrap().to_owned(),
                    r["outcome"].as_str().unwrap().to_owned(),
                ),
                (r["n"].as_i64().unwrap(), r["credits"].as_i64().unwrap()),
            )
        })
        .collect()
}

fn by_outcome(rows: &[Value]) -> BTreeMap<String, i64> {
    rows.iter()
        .map(|r| {
            (
                r["outcome"].as_str().unwrap().to_owned(),
                r["n"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn counts_are_exact_from_the_raw_table_and_every_rollup() {
    let app = Arc::new(spawn_app().await);
    let api = app.create_api("analytics").await;
    // Keys 0..40 are unlimited, 40..45 have 100 credits, 45..50 a limit of 50 a minute.
    let keys = Arc::new(app.create_mixed_keys(&api, KEYS).await);
    // Half in the first hour, half in the next: credits run out in the first, rate limits
    // start again in the second.
    verify_concurrently(&app, &keys, VERIFICATIONS / 2).await;
    app.clock.advance(HOUR);
    verify_concurrently(&app, &keys, VERIFICATIONS / 2).await;
    wait_for_total(&app, VERIFICATIONS as i64).await;

    let per_phase = (VERIFICATIONS / 2 / KEYS) as i64;
    // Per hour: (outcome, count, credits) of key `i`.
    let expected_in_hour = |i: usize, hour: usize| -> Vec<(&'static str, i64, i64)> {
        match (i, hour) {
            (0..40, _) => vec![("VALID", per_phase, 0)],
            (40..45, 0) => vec![("USAGE_EXCEEDED", per_phase - 100, 0), ("VALID", 100, 100)],
            (40..45, _) => vec![("USAGE_EXCEEDED", per_phase, 0)],
            _ => vec![("RATE_LIMITED", per_phase - 50, 0), ("VALID", 50, 0)],
        }
    };
    let mut expected: BTreeMap<(String, String), (i64, i64)> = BTreeMap::new();
    let mut expected_hours: BTreeMap<(i64, String), i64> = BTreeMap::new();
    for (i, (key_id, _)) in keys.iter().enumerate() {
        for hour in 0..2 {
            for (outcome, n, credits) in expected_in_hour(i, hour) {
                let entry = expected
                    .entry((key_id.clone(), outcome.to_owned()))
                    .or_default();
                entry.0 += n;
                entry.1 += credits;
                *expected_hours
                    .entry((TestClock::START + HOUR * hour as i64, outcome.to_owned()))
                    .or_default() += n;
            }
        }
    }
    let mut expected_outcomes: BTreeMap<String, i64> = BTreeMap::new();
    for ((_, outcome), (n, _)) in &expected {
        *expected_outcomes.entry(outcome.clone()).or_default() += n;
    }
    assert_eq!(expected_outcomes["VALID"], 17_000, "the mix is as intended");

    // The raw table, one row per verification.
    let raw = rows(
        &app,
        "SELECT key_id, outcome, count() AS n, sum(spent_credits) AS credits \
         FROM key_verifications_v1 GROUP BY key_id, outcome ORDER BY key_id, outcome",
    )
    .await;
    assert_eq!(by_key_and_outcome(&raw), expected, "raw, per key");
    let outcomes = rows(
        &app,
        "SELECT outcome, count() AS n FROM key_verifications_v1 GROUP BY outcome",
    )
    .await;
    assert_eq!(by_outcome(&outcomes), expected_outcomes, "raw, per outcome");
    let hours = rows(
        &app,
        "SELECT toStartOfHour(time) AS hour, outcome, count() AS n FROM key_verifications_v1 \
         GROUP BY hour, outcome ORDER BY hour, outcome",
    )
    .await;
    let hours: BTreeMap<(i64, String), i64> = hours
        .iter()
        .map(|r| {
            (
                (
                    r["hour"].as_i64().unwrap(),
                    r["outcome"].as_str().unwrap().to_owned(),
                ),
                r["n"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(hours, expected_hours, "raw, per hour");

    // Every rollup gives the same numbers.
    for table in ["minute", "hour", "day", "month"] {
        let table = format!("key_verifications_per_{table}_v1");
        let per_key = rows(
            &app,
            &format!(
                "SELECT key_id, outcome, sum(count) AS n, sum(spent_credits) AS credits \
                 FROM {table} GROUP BY key_id, outcome"
            ),
        )
        .await;
        assert_eq!(by_key_and_outcome(&per_key), expected, "{table}, per key");
        let outcomes = rows(
            &app,
            &format!("SELECT outcome, sum(count) AS n FROM {table} GROUP BY outcome"),
        )
        .await;
        assert_eq!(by_outcome(&outcomes), expected_outcomes, "{table}");
        let all = rows(&app, &format!("SELECT sum(count) AS n FROM {table}")).await;
        assert_eq!(all, [json!({ "n": VERIFICATIONS })], "{table}");
    }
    for table in ["minute", "hour"] {
        let hours = rows(
            &app,
            &format!(
                "SELECT toStartOfHour(time) AS hour, outcome, sum(count) AS n \
                 FROM key_verifications_per_{table}_v1 GROUP BY hour, outcome"
            ),
        )
        .await;
        let hours: BTreeMap<(i64, String), i64> = hours
            .iter()
            .map(|r| {
                (
                    (
                        r["hour"].as_i64().unwrap(),
                        r["outcome"].as_str().unwrap().to_owned(),
                    ),
                    r["n"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(hours, expected_hours, "{table}, per hour");
    }

    // A query the database cannot finish within its budget is the client's problem: 422.
    *app.store.analytics_limits.lock().unwrap() = Some(AnalyticsLimits {
        time_budget: Duration::from_millis(1),
        max_rows: 10_000,
    });
    let heavy = query(
        &app,
        "SELECT request_id, tags, count() AS n, avg(time) AS t FROM key_verifications_v1 \
         WHERE request_id LIKE '%0%' OR has(tags, 'load') \
         GROUP BY request_id, tags ORDER BY t DESC, request_id",
    )
    .await;
    let error = heavy.err(422);
    assert_eq!(
        error["type"],
        "https://unkey.com/docs/errors/user/unprocessable_entity/query_execution_timeout"
    );
    assert!(
        error["detail"].as_str().unwrap().contains("1 ms"),
        "{error}"
    );
}

/// A workspace with one API, two keys and three verifications; returns the API id.
async fn some_usage(app: &TestApp, root_key: &str, n: usize) -> String {
    let api = app
        .call_as(root_key, "apis.createApi", json!({ "name": "usage" }))
        .await
        .ok()["apiId"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = app
        .call_as(root_key, "keys.createKey", json!({ "apiId": api }))
        .await
        .ok()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..n {
        app.call_as(root_key, "keys.verifyKey", json!({ "key": key }))
            .await
            .ok();
    }
    api
}

async fn total_as(app: &TestApp, root_key: &str, text: &str) -> i64 {
    query_as(app, root_key, text).await.ok()[0]["n"]
        .as_i64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_queries_are_refused_by_name_and_workspaces_never_mix() {
    let app = spawn_app().await;
    let (b_workspace, b_root) = app.other_workspace().await;
    let a_root = crate::helpers::ROOT_KEY;
    some_usage(&app, a_root, 3).await;
    some_usage(&app, &b_root, 2).await;
    let count = "SELECT count() AS n FROM key_verifications_v1";
    let started = Instant::now();
    while total_as(&app, a_root, count).await + total_as(&app, &b_root, count).await < 5 {
        assert!(started.elapsed() < Duration::from_secs(30), "never flushed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(total_as(&app, a_root, count).await, 3);
    assert_eq!(total_as(&app, &b_root, count).await, 2);

    let a = app.workspace.as_str();
    let cases: Vec<(String, &str)> = vec![
        ("SELECT * FROM keys".into(), "unknown table `keys`"),
        (
            "SELECT * FROM root_keys".into(),
            "unknown table `root_keys`",
        ),
        (
            "SELECT * FROM analytics_verifications".into(),
            "unknown table `analytics_verifications`",
        ),
        (
            "SELECT name FROM system.tables".into(),
            "unknown table `system.tables`",
        ),
        (
            "SELECT * FROM sqlite_master".into(),
            "unknown table `sqlite_master`",
        ),
        (
            "SELECT * FROM pg_catalog.pg_tables".into(),
            "unknown table `pg_catalog.pg_tables`",
        ),
        (
            "SELECT * FROM information_schema.tables".into(),
            "unknown table `information_schema.tables`",
        ),
        (
            "SELECT client_ip FROM key_verifications_v1".into(),
            "unknown column `client_ip`",
        ),
        (
            format!("{count} UNION ALL SELECT count() FROM keys"),
            "UNION is not supported",
        ),
        (
            format!("{count} WHERE key_id IN (SELECT id FROM keys)"),
            "a subquery is not supported",
        ),
        (
            "SELECT * FROM (SELECT * FROM keys)".into(),
            "a subquery in FROM is not supported",
        ),
        (
            "SELECT * FROM key_verifications_v1 JOIN keys ON keys.id = key_id".into(),
            "JOIN is not supported",
        ),
        (
            format!("{count}; DROP TABLE keys"),
            "only one statement is allowed",
        ),
        (
            format!("{count}; SELECT * FROM keys -- "),
            "only one statement is allowed",
        ),
        (
            format!(
                "{count} /* a comment */ WHERE key_id = 'x' --'; DELETE FROM keys\nOR sleep(1) = 0"
            ),
            "function `sleep` is not supported",
        ),
        (
            "DELETE FROM keys".into(),
            "only SELECT is allowed, not `DELETE`",
        ),
        (
            "SELECT pg_sleep(10) FROM key_verifications_v1".into(),
            "function `pg_sleep` is not supported",
        ),
        (
            format!("{count} WHERE sleep(3) = 0"),
            "function `sleep` is not supported",
        ),
        (
            "SELECT randomblob(1000000000) FROM key_verifications_v1".into(),
            "function `randomblob` is not supported",
        ),
        (
            "SELECT * FROM file('/etc/passwd')".into(),
            "function `file` is not supported",
        ),
    ];
    for (text, problem) in &cases {
        let reply = query_as(&app, &b_root, text).await;
        let error = reply.err(400);
        assert_eq!(
            error["type"], "https://unkey.com/docs/errors/user/bad_request/invalid_analytics_query",
            "{text}"
        );
        assert!(
            error["detail"].as_str().unwrap().contains(problem),
            "{text}: {error}"
        );
        assert_eq!(error["errors"][0]["location"], "body.query", "{text}");
        assert!(
            error["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains(problem),
            "{text}: {error}"
        );
    }

    // Legitimate queries from B that name A, or try to widen the filter, see only B's rows.
    for (text, expected) in [
        (format!("{count} WHERE workspace_id = '{a}'"), 0),
        (format!("{count} WHERE workspace_id = '{a}' OR 1 = 1"), 2),
        (
            format!("{count} WHERE workspace_id != '{}'", b_workspace),
            0,
        ),
        (format!("{count} WHERE 1 = 1 OR workspace_id = '{a}'"), 2),
        (
            format!("{count} /* WHERE workspace_id = '{a}' */ -- OR 1 = 1"),
            2,
        ),
        (
            "SELECT sum(count) AS n FROM key_verifications_per_month_v1".into(),
            2,
        ),
    ] {
        assert_eq!(total_as(&app, &b_root, &text).await, expected, "{text}");
    }
    let listed = query_as(
        &app,
        &b_root,
        "SELECT workspace_id, key_space_id, key_id, request_id FROM key_verifications_v1",
    )
    .await;
    let listed = listed.ok().as_array().unwrap().clone();
    assert_eq!(listed.len(), 2);
    for row in &listed {
        assert_eq!(row["workspace_id"], b_workspace.as_str(), "{row}");
    }
    // The workspace of A is untouched by everything B sent.
    assert_eq!(total_as(&app, a_root, count).await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permission_scope_and_request_shape() {
    let app = spawn_app().await;
    let root = crate::helpers::ROOT_KEY;
    let first = some_usage(&app, root, 3).await;
    let second = some_usage(&app, root, 2).await;
    let count = "SELECT count() AS n FROM key_verifications_v1";
    let started = Instant::now();
    while total_as(&app, root, count).await < 5 {
        assert!(started.elapsed() < Duration::from_secs(30), "never flushed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Scoped to one API: only its rows, whatever the query says.
    let scoped = app
        .root_key_with(&[&format!("api.{second}.read_analytics")])
        .await;
    assert_eq!(total_as(&app, &scoped, count).await, 2);
    let widen = format!("{count} WHERE key_space_id = '{first}' OR 1 = 1");
    assert_eq!(total_as(&app, &scoped, &widen).await, 2);
    let per_api = query_as(
        &app,
        &scoped,
        "SELECT key_space_id, count() AS n FROM key_verifications_v1 GROUP BY key_space_id",
    )
    .await;
    assert_eq!(per_api.ok(), &json!([{ "key_space_id": second, "n": 2 }]));
    let both = app
        .root_key_with(&[
            &format!("api.{first}.read_analytics"),
            &format!("api.{second}.read_analytics"),
        ])
        .await;
    assert_eq!(total_as(&app, &both, count).await, 5);
    let wildcard = app.root_key_with(&["api.*.read_analytics"]).await;
    assert_eq!(total_as(&app, &wildcard, count).await, 5);

    // Without the permission: 403 naming it.
    let other = app
        .root_key_with(&["api.*.read_key", "api.*.verify_key"])
        .await;
    let denied = query_as(&app, &other, count).await;
    assert!(
        denied.err(403)["detail"]
            .as_str()
            .unwrap()
            .contains("api.*.read_analytics"),
        "{}",
        denied.body
    );

    // The request: `query` is required, a string, not empty and at most 10 KiB.
    for body in [
        json!({}),
        json!({ "query": null }),
        json!({ "query": 5 }),
        json!({ "query": "" }),
        json!({ "query": "   " }),
        json!({ "query": format!("{count} {}", " ".repeat(11 * 1024)) }),
    ] {
        app.call("analytics.getVerifications", body.clone())
            .await
            .invalid_at("body.query");
    }
    let broken = query(&app, "SELEC count() FROM key_verifications_v1").await;
    assert!(
        broken.err(400)["detail"]
            .as_str()
            .unwrap()
            .contains("SQL syntax error"),
        "{}",
        broken.body
    );

    // Every row shape: tags as an array, NULL identity, floats; an empty result is [].
    let shaped = query(
        &app,
        &format!(
            "SELECT key_space_id, tags, identity_id, avg(spent_credits) AS mean, count() AS n \
             FROM key_verifications_v1 WHERE key_space_id = '{second}' \
             GROUP BY key_space_id, tags, identity_id"
        ),
    )
    .await;
    assert_eq!(
        shaped.ok(),
        &json!([{ "key_space_id": second, "tags": [], "identity_id": null, "mean": 0.0, "n": 2 }])
    );
    let none = query(
        &app,
        &format!("{count} WHERE outcome = 'EXPIRED' GROUP BY outcome"),
    )
    .await;
    assert_eq!(none.ok(), &json!([]));

    // More rows than allowed: 422.
    *app.store.analytics_limits.lock().unwrap() = Some(AnalyticsLimits {
        time_budget: Duration::from_secs(10),
        max_rows: 4,
    });
    let many = query(&app, "SELECT request_id FROM key_verifications_v1").await;
    assert_eq!(
        many.err(422)["type"],
        "https://unkey.com/docs/errors/user/unprocessable_entity/query_rows_limit_exceeded"
    );
    let few = query(&app, "SELECT request_id FROM key_verifications_v1 LIMIT 4").await;
    assert_eq!(few.ok().as_array().unwrap().len(), 4);
}

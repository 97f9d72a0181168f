//! Legitimate queries, rendered exactly, for both databases.

use super::*;
use crate::id::ApiId;

/// 2026-11-27T21:48:01Z
const NOW: i64 = 1_795_816_081_000;
const DAY: i64 = 86_400_000;

fn workspace() -> WorkspaceId {
    WorkspaceId::parse("ws_1").expect("a valid id")
}

fn parse(text: &str) -> AnalyticsQuery {
    match AnalyticsQuery::parse(text, UnixMillis::from_millis(NOW)) {
        Ok(q) => q,
        Err(e) => panic!("{text:?} was refused: {e}"),
    }
}

fn sqlite(text: &str) -> RenderedQuery {
    parse(text).render(Dialect::Sqlite, &workspace(), &ApiScope::All)
}

fn postgres(text: &str) -> RenderedQuery {
    parse(text).render(Dialect::Postgres, &workspace(), &ApiScope::All)
}

fn text(s: &str) -> Param {
    Param::Text(s.to_owned())
}

fn column(name: &str, kind: OutputKind) -> OutputColumn {
    OutputColumn {
        name: name.to_owned(),
        kind,
    }
}

#[test]
fn the_documented_example_counts_valid_verifications_of_the_last_week() {
    let q = "SELECT COUNT(*) as total FROM key_verifications_v1 \
             WHERE outcome = 'VALID' AND time >= now() - INTERVAL 7 DAY";
    let r = sqlite(q);
    assert_eq!(
        r.sql,
        "SELECT count(*) AS c0 FROM analytics_verifications WHERE workspace_id = ? \
         AND (outcome = ? AND time >= ?) AND batch_last_time >= ? LIMIT ?"
    );
    assert_eq!(
        r.params,
        vec![
            text("ws_1"),
            text("VALID"),
            Param::Int(NOW - 7 * DAY),
            Param::Int(NOW - 7 * DAY),
            Param::Int(10_000)
        ]
    );
    assert_eq!(r.columns, vec![column("total", OutputKind::Integer)]);

    let r = postgres(q);
    assert_eq!(
        r.sql,
        "SELECT count(*) AS c0 FROM analytics_verifications WHERE workspace_id = $1 \
         AND (outcome = $2 AND time >= $3) AND batch_last_time >= $4 LIMIT $5"
    );
}

#[test]
fn the_workspace_filter_stays_outside_a_user_or() {
    let q = "SELECT key_id FROM key_verifications_v1 WHERE outcome = 'VALID' OR 1 = 1";
    let r = sqlite(q);
    assert_eq!(
        r.sql,
        "SELECT key_id AS c0 FROM analytics_verifications WHERE workspace_id = ? \
         AND (outcome = ? OR ? = ?) LIMIT ?"
    );
    assert_eq!(
        r.params,
        vec![
            text("ws_1"),
            text("VALID"),
            Param::Int(1),
            Param::Int(1),
            Param::Int(10_000)
        ]
    );
    // Selecting or filtering workspace_id cannot reach another workspace either.
    let r = sqlite("SELECT workspace_id FROM key_verifications_v1 WHERE workspace_id = 'ws_2'");
    assert_eq!(
        r.sql,
        "SELECT workspace_id AS c0 FROM analytics_verifications WHERE workspace_id = ? \
         AND (workspace_id = ?) LIMIT ?"
    );
    assert_eq!(r.params[0], text("ws_1"));
}

#[test]
fn an_api_scope_restricts_keyspaces_and_an_empty_scope_matches_nothing() {
    let query = parse("SELECT count() FROM key_verifications_per_day_v1 WHERE a.outcome != 'VALID' OR NOT has(tags, 'x')".replace("per_day_v1", "per_day_v1 AS a").as_str());
    let apis = ApiScope::Only(vec![
        ApiId::parse("api_a").expect("id"),
        ApiId::parse("api_b").expect("id"),
    ]);
    let r = query.render(Dialect::Postgres, &workspace(), &apis);
    assert_eq!(
        r.sql,
        "SELECT count(*) AS c0 FROM analytics_verifications_per_day WHERE workspace_id = $1 \
         AND key_space_id IN ($2, $3) AND (outcome <> $4 OR NOT ((tags::jsonb ? $5))) LIMIT $6"
    );
    assert_eq!(
        r.params,
        vec![
            text("ws_1"),
            text("api_a"),
            text("api_b"),
            text("VALID"),
            text("x"),
            Param::Int(10_000)
        ]
    );
    let r = query.render(Dialect::Sqlite, &workspace(), &ApiScope::Only(Vec::new()));
    assert_eq!(
        r.sql,
        "SELECT count(*) AS c0 FROM analytics_verifications_per_day WHERE workspace_id = ? \
         AND 1 = 0 AND (outcome <> ? OR NOT (EXISTS (SELECT 1 FROM json_each(tags) WHERE value = ?))) \
         LIMIT ?"
    );
}

#[test]
fn hourly_buckets_grouped_ordered_and_limited() {
    let q = "SELECT toStartOfHour(time) AS hour, outcome, count() AS n, sum(spent_credits) \
             FROM key_verifications_v1 \
             WHERE time BETWEEN 1000 AND 2000 AND key_id IN ('key_1', 'key_2') \
             GROUP BY hour, outcome ORDER BY hour DESC, n LIMIT 24 OFFSET 48";
    let r = sqlite(q);
    assert_eq!(
        r.sql,
        "SELECT (time / 3600000 * 3600000) AS c0, outcome AS c1, count(*) AS c2, \
         COALESCE(sum(spent_credits), 0) AS c3 FROM analytics_verifications \
         WHERE workspace_id = ? AND (time BETWEEN ? AND ? AND key_id IN (?, ?)) \
         AND batch_last_time >= ? AND batch_first_time <= ? \
         GROUP BY c0, c1 ORDER BY c0 DESC, c2 ASC LIMIT ? OFFSET ?"
    );
    assert_eq!(
        r.params,
        vec![
            text("ws_1"),
            Param::Int(1000),
            Param::Int(2000),
            text("key_1"),
            text("key_2"),
            Param::Int(1000),
            Param::Int(2000),
            Param::Int(24),
            Param::Int(48)
        ]
    );
    assert_eq!(
        r.columns,
        vec![
            column("hour", OutputKind::Integer),
            column("outcome", OutputKind::Text),
            column("n", OutputKind::Integer),
            column("sum(spent_credits)", OutputKind::Integer),
        ]
    );
    let r = postgres(q);
    assert_eq!(
        r.sql,
        "SELECT (time / 3600000 * 3600000) AS c0, outcome AS c1, count(*) AS c2, \
         COALESCE(sum(spent_credits), 0)::bigint AS c3 FROM analytics_verifications \
         WHERE workspace_id = $1 AND (time BETWEEN $2 AND $3 AND key_id IN ($4, $5)) \
         AND batch_last_time >= $6 AND batch_first_time <= $7 \
         GROUP BY c0, c1 ORDER BY c0 DESC, c2 ASC LIMIT $8 OFFSET $9"
    );
}

#[test]
fn month_buckets_differ_per_dialect_and_group_by_expression_matches_the_projection() {
    let q = "SELECT toStartOfMonth(time), sum(count) FROM key_verifications_per_day_v1 \
             GROUP BY toStartOfMonth(time) ORDER BY toStartOfMonth(time)";
    let r = sqlite(q);
    assert_eq!(
        r.sql,
        "SELECT (CAST(strftime('%s', time / 1000, 'unixepoch', 'start of month') AS INTEGER) * 1000) AS c0, \
         COALESCE(sum(count), 0) AS c1 FROM analytics_verifications_per_day WHERE workspace_id = ? \
         GROUP BY c0 ORDER BY c0 ASC LIMIT ?"
    );
    assert_eq!(r.columns[0].name, "toStartOfMonth(time)");
    assert_eq!(r.columns[1].name, "sum(count)");
    let r = postgres(q);
    assert_eq!(
        r.sql,
        "SELECT (EXTRACT(EPOCH FROM date_trunc('month', to_timestamp(time / 1000) AT TIME ZONE 'UTC')) * 1000)::bigint AS c0, \
         COALESCE(sum(count), 0)::bigint AS c1 FROM analytics_verifications_per_day WHERE workspace_id = $1 \
         GROUP BY c0 ORDER BY c0 ASC LIMIT $2"
    );
}

#[test]
fn a_group_key_need_not_be_selected_and_aggregates_can_be_sorted_on() {
    let r = sqlite(
        "SELECT count() FROM key_verifications_per_minute_v1 \
         GROUP BY toStartOfDay(time), key_id ORDER BY max(time) DESC LIMIT 5",
    );
    assert_eq!(
        r.sql,
        "SELECT count(*) AS c0 FROM analytics_verifications_per_minute WHERE workspace_id = ? \
         GROUP BY (time / 86400000 * 86400000), key_id ORDER BY max(time) DESC LIMIT ?"
    );
}

#[test]
fn select_star_expands_to_the_public_columns_without_client_ip() {
    let r = sqlite("SELECT * FROM key_verifications_v1 ORDER BY time DESC LIMIT 10");
    assert_eq!(
        r.sql,
        "SELECT request_id AS c0, time AS c1, workspace_id AS c2, key_space_id AS c3, \
         identity_id AS c4, external_id AS c5, key_id AS c6, outcome AS c7, region AS c8, \
         tags AS c9, spent_credits AS c10 FROM analytics_verifications WHERE workspace_id = ? \
         ORDER BY c1 DESC LIMIT ?"
    );
    assert_eq!(
        r.columns[4],
        column("identity_id", OutputKind::NullableText)
    );
    assert_eq!(r.columns[9], column("tags", OutputKind::Tags));
    // ClickHouse's FINAL is accepted and means nothing here.
    assert_eq!(
        sqlite("SELECT key_id FROM key_verifications_per_hour_v1 FINAL").sql,
        "SELECT key_id AS c0 FROM analytics_verifications_per_hour WHERE workspace_id = ? LIMIT ?"
    );
    let r = sqlite("SELECT v.* FROM key_verifications_per_hour_v1 v");
    let names: Vec<_> = r.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "time",
            "workspace_id",
            "key_space_id",
            "identity_id",
            "external_id",
            "key_id",
            "outcome",
            "tags",
            "count",
            "spent_credits"
        ]
    );
}

#[test]
fn conditional_aggregates_min_max_avg_and_has_in_the_select_list() {
    let q = "SELECT key_id, countIf(outcome = 'VALID') AS valid, \
             sumIf(spent_credits, outcome <> 'VALID'), min(time), max(outcome), avg(spent_credits), \
             has(tags, 'beta') AS beta \
             FROM key_verifications_v1 GROUP BY key_id, beta";
    let r = sqlite(q);
    assert_eq!(
        r.sql,
        "SELECT key_id AS c0, count(CASE WHEN outcome = ? THEN 1 END) AS c1, \
         COALESCE(sum(CASE WHEN outcome <> ? THEN spent_credits END), 0) AS c2, min(time) AS c3, \
         max(outcome) AS c4, avg(spent_credits) AS c5, \
         EXISTS (SELECT 1 FROM json_each(tags) WHERE value = ?) AS c6 \
         FROM analytics_verifications WHERE workspace_id = ? GROUP BY c0, c6 LIMIT ?"
    );
    assert_eq!(
        r.params,
        vec![
            text("VALID"),
            text("VALID"),
            text("beta"),
            text("ws_1"),
            Param::Int(10_000)
        ]
    );
    assert_eq!(
        r.columns,
        vec![
            column("key_id", OutputKind::Text),
            column("valid", OutputKind::Integer),
            column(
                "sumIf(spent_credits, outcome <> 'VALID')",
                OutputKind::Integer
            ),
            column("min(time)", OutputKind::NullableInteger),
            column("max(outcome)", OutputKind::NullableText),
            column("avg(spent_credits)", OutputKind::NullableFloat),
            column("beta", OutputKind::Integer),
        ]
    );
    let r = postgres(q);
    assert_eq!(
        r.sql,
        "SELECT key_id AS c0, count(CASE WHEN outcome = $1 THEN 1 END) AS c1, \
         COALESCE(sum(CASE WHEN outcome <> $2 THEN spent_credits END), 0)::bigint AS c2, min(time) AS c3, \
         max(outcome) AS c4, avg(spent_credits)::double precision AS c5, \
         (CASE WHEN (tags::jsonb ? $3) THEN 1 ELSE 0 END)::bigint AS c6 \
         FROM analytics_verifications WHERE workspace_id = $4 GROUP BY c0, c6 LIMIT $5"
    );
}

#[test]
fn where_operators_render_with_explicit_grouping() {
    let r = sqlite(
        // ClickHouse string literals take backslash escapes: `\\_` is a backslash and `_`,
        // which LIKE reads as a literal underscore.
        "SELECT request_id FROM key_verifications_v1 \
         WHERE (outcome = 'A' OR outcome = 'B') AND NOT (region IS NULL) \
         AND identity_id IS NOT NULL AND external_id LIKE 'cus\\\\_%' AND key_id NOT IN ('k') \
         AND time NOT BETWEEN -5 AND now() AND outcome == 'C' AND toStartOfMinute(time) < now() - INTERVAL 1 MONTH",
    );
    assert_eq!(
        r.sql,
        "SELECT request_id AS c0 FROM analytics_verifications WHERE workspace_id = ? AND \
         ((outcome = ? OR outcome = ?) AND NOT (region IS NULL) AND identity_id IS NOT NULL \
         AND external_id LIKE ? ESCAPE '\\' AND key_id NOT IN (?) AND time NOT BETWEEN ? AND ? \
         AND outcome = ? AND (time / 60000 * 60000) < ?) LIMIT ?"
    );
    assert_eq!(
        r.params,
        vec![
            text("ws_1"),
            text("A"),
            text("B"),
            text("cus\\_%"),
            text("k"),
            Param::Int(-5),
            Param::Int(NOW),
            text("C"),
            // 2026-10-27T21:48:01Z: one calendar month back.
            Param::Int(1_793_137_681_000),
            Param::Int(10_000)
        ]
    );
}

#[test]
fn intervals_fold_with_every_unit() {
    for (unit, delta) in [
        ("SECOND", 1_000),
        ("MINUTE", 60_000),
        ("HOUR", 3_600_000),
        ("DAY", DAY),
        ("WEEK", 7 * DAY),
    ] {
        let r = sqlite(&format!(
            "SELECT count() FROM key_verifications_v1 WHERE time > now() - INTERVAL 2 {unit}"
        ));
        assert_eq!(r.params[1], Param::Int(NOW - 2 * delta), "{unit}");
    }
    // 2026-11-27 + 3 months = 2027-02-27; 2026-05-31 - 3 months clamps to 2026-02-28.
    let r =
        sqlite("SELECT count() FROM key_verifications_v1 WHERE time < now() + INTERVAL 3 MONTH");
    assert_eq!(r.params[1], Param::Int(1_803_764_881_000));
    let may_31 = 1_780_264_800_000; // 2026-05-31T22:00:00Z
    let q = AnalyticsQuery::parse(
        "SELECT count() FROM key_verifications_v1 WHERE time > now() - INTERVAL 3 MONTH",
        UnixMillis::from_millis(may_31),
    )
    .expect("valid");
    let r = q.render(Dialect::Sqlite, &workspace(), &ApiScope::All);
    assert_eq!(r.params[1], Param::Int(1_772_316_000_000)); // 2026-02-28T22:00:00Z
}

#[test]
fn literals_that_try_to_break_out_of_quoting_are_parameters() {
    let r = sqlite(
        r"SELECT key_id FROM key_verifications_v1 WHERE outcome = 'x'' OR 1=1; DROP TABLE keys; --'",
    );
    assert_eq!(
        r.sql,
        "SELECT key_id AS c0 FROM analytics_verifications WHERE workspace_id = ? \
         AND (outcome = ?) LIMIT ?"
    );
    assert_eq!(r.params[1], text("x' OR 1=1; DROP TABLE keys; --"));
    let r = sqlite(r"SELECT key_id FROM key_verifications_v1 WHERE has(tags, 'a\') OR 1=1 --')");
    assert_eq!(r.params[1], text("a') OR 1=1 --"));
}

#[test]
fn names_are_case_sensitive_functions_are_not_and_comments_are_ignored() {
    let r = sqlite(
        "-- daily\nselect Count(*), TOSTARTOFDAY(time) /* bucket */ from key_verifications_per_day_v1 \
         group by toStartOfDay(time);",
    );
    assert_eq!(
        r.sql,
        "SELECT count(*) AS c0, (time / 86400000 * 86400000) AS c1 \
         FROM analytics_verifications_per_day WHERE workspace_id = ? GROUP BY c1 LIMIT ?"
    );
    assert!(
        AnalyticsQuery::parse(
            "SELECT Outcome FROM key_verifications_v1",
            UnixMillis::from_millis(NOW)
        )
        .is_err()
    );
}

#[test]
fn limit_defaults_to_and_is_capped_at_max_rows() {
    let r = sqlite("SELECT key_id FROM key_verifications_v1 LIMIT 10000");
    assert_eq!(r.params.last(), Some(&Param::Int(10_000)));
    let r = sqlite("SELECT key_id FROM key_verifications_v1 LIMIT 20, 10");
    assert_eq!(r.params[1..], [Param::Int(10), Param::Int(20)]);
    let err = AnalyticsQuery::parse(
        "SELECT key_id FROM key_verifications_v1 LIMIT 10001",
        UnixMillis::from_millis(NOW),
    )
    .expect_err("over the cap");
    assert_eq!(err.to_string(), "LIMIT may be at most 10000");
}

#[test]
fn aliases_shadow_columns_in_group_by_and_order_by() {
    // A common ClickHouse idiom: the bucket takes the column's name.
    let r = sqlite(
        "SELECT toStartOfDay(time) AS time, count() AS count FROM key_verifications_v1 \
         WHERE time > 0 GROUP BY time ORDER BY time",
    );
    assert_eq!(
        r.sql,
        "SELECT (time / 86400000 * 86400000) AS c0, count(*) AS c1 FROM analytics_verifications \
         WHERE workspace_id = ? AND (time > ?) AND batch_last_time >= ? \
         GROUP BY c0 ORDER BY c0 ASC LIMIT ?"
    );
}

/// The examples in `docs/analytics.md` stay valid, and the SQL shown for one stays true.
#[test]
fn the_documented_examples_are_accepted() {
    let doc = include_str!("../../../../docs/analytics.md");
    let examples = doc
        .split("## Examples")
        .nth(1)
        .and_then(|s| s.split("```sql").nth(1))
        .and_then(|s| s.split("```").next())
        .expect("an sql block under Examples");
    let queries: Vec<&str> = examples
        .split("\n\n")
        .filter(|q| !q.trim().is_empty())
        .collect();
    assert_eq!(queries.len(), 4);
    for q in &queries {
        parse(q);
    }
    let r = sqlite(queries[1]);
    assert_eq!(
        r.sql,
        "SELECT (time / 3600000 * 3600000) AS c0, outcome AS c1, count(*) AS c2 \
         FROM analytics_verifications \
         WHERE workspace_id = ? AND (key_id = ? AND time >= ?) AND batch_last_time >= ? \
         GROUP BY c0, c1 ORDER BY c0 ASC, c1 ASC LIMIT ?"
    );
    assert_eq!(r.params[2], Param::Int(NOW - DAY));
}

/// Raw events are read through batches: the filter's time range, where a top-level AND of
/// comparisons gives one, also bounds the batches, so whole batches outside it are skipped.
#[test]
fn time_ranges_of_raw_queries_bound_the_batches_read() {
    let bounds = |condition: &str| {
        let r = sqlite(&format!(
            "SELECT count() FROM key_verifications_v1 WHERE {condition}"
        ));
        let tail = r.sql.rsplit_once(") ").map_or("", |(_, t)| t).to_owned();
        let n = r.params.len();
        (tail, r.params[n.saturating_sub(3)..n - 1].to_vec())
    };
    let ints = |a: i64, b: i64| vec![Param::Int(a), Param::Int(b)];
    assert_eq!(
        bounds("time >= 10 AND time < 20"),
        (
            "AND batch_last_time >= ? AND batch_first_time <= ? LIMIT ?".to_owned(),
            ints(10, 19)
        )
    );
    // Mirrored, several bounds (the tightest wins), equality.
    assert_eq!(
        bounds("30 > time AND time > 5 AND time <= 25 AND 7 <= time").1,
        ints(7, 25)
    );
    assert_eq!(
        bounds("time = 42 AND outcome = 'VALID'").1[1],
        Param::Int(42)
    );
    // An OR, a NOT or a comparison with another column says nothing about batches.
    for condition in [
        "time >= 10 OR outcome = 'VALID'",
        "NOT (time < 10)",
        "time NOT BETWEEN 1 AND 5",
        "time <> 10",
    ] {
        let r = sqlite(&format!(
            "SELECT count() FROM key_verifications_v1 WHERE {condition}"
        ));
        assert!(!r.sql.contains("batch_"), "{condition}: {}", r.sql);
    }
    // Rollup tables are not batched.
    let r = sqlite("SELECT sum(count) FROM key_verifications_per_day_v1 WHERE time >= 10");
    assert!(!r.sql.contains("batch_"), "{}", r.sql);
}

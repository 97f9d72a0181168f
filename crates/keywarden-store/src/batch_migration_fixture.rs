//! Tests only: raw verification rows as schema 10 of either store held them (a row per
//! event), and what schema 11 must make of them, for both stores' migration tests.

use serde_json::Value;

/// Four raw rows: two of one key in one minute, one a minute later, one of another workspace.
pub const RAW_ROWS: &str = r#"INSERT INTO analytics_verifications (request_id, time,
    workspace_id, key_space_id, identity_id, external_id, key_id, outcome, tags, spent_credits,
    client_ip) VALUES
  ('req_1', 60000, 'ws_a', 'api_1', NULL, NULL, 'key_1', 'VALID', '[]', 1, '10.0.0.1'),
  ('req_2', 60500, 'ws_a', 'api_1', 'id_1', 'user-1', 'key_1', 'RATE_LIMITED', '["x","y"]', 0,
   NULL),
  ('req_3', 120000, 'ws_a', 'api_1', NULL, NULL, 'key_2', 'VALID', '[]', 2, NULL),
  ('req_4', 60000, 'ws_b', 'api_9', NULL, NULL, 'key_9', 'VALID', '[]', 0, NULL);"#;

/// The view's columns, ordered by request id.
pub const VIEW_ROWS: &str = "SELECT request_id, time, workspace_id, identity_id, external_id, \
    key_id, outcome, tags, spent_credits, client_ip FROM analytics_verifications \
    ORDER BY request_id";

/// The batches, ordered by workspace and first time.
pub const BATCHES: &str = "SELECT workspace_id, first_time, last_time, event_count \
    FROM analytics_event_batches ORDER BY workspace_id, first_time";

/// One row of [`VIEW_ROWS`].
pub type RawRow = (
    String,
    i64,
    String,
    Option<String>,
    Option<String>,
    String,
    String,
    String,
    i64,
    Option<String>,
);

/// [`BATCHES`] after the migration: one batch per workspace and minute.
pub fn expected_batches() -> Vec<(String, i64, i64, i64)> {
    [
        ("ws_a", 60_000, 60_500, 2),
        ("ws_a", 120_000, 120_000, 1),
        ("ws_b", 60_000, 60_000, 1),
    ]
    .into_iter()
    .map(|(w, first, last, n)| (w.to_owned(), first, last, n))
    .collect()
}

/// Asserts that the view gives back [`RAW_ROWS`] as they were (tags compared as JSON: each
/// store writes JSON text its own way).
pub fn assert_rows_unchanged(rows: &[RawRow]) {
    let owned = |s: Option<&str>| s.map(str::to_owned);
    let expected = [
        (
            "req_1",
            60_000,
            "ws_a",
            None,
            None,
            "key_1",
            "VALID",
            "[]",
            1,
            Some("10.0.0.1"),
        ),
        (
            "req_2",
            60_500,
            "ws_a",
            Some("id_1"),
            Some("user-1"),
            "key_1",
            "RATE_LIMITED",
            r#"["x","y"]"#,
            0,
            None,
        ),
        (
            "req_3", 120_000, "ws_a", None, None, "key_2", "VALID", "[]", 2, None,
        ),
        (
            "req_4", 60_000, "ws_b", None, None, "key_9", "VALID", "[]", 0, None,
        ),
    ];
    assert_eq!(rows.len(), expected.len());
    for (row, want) in rows.iter().zip(expected) {
        let tags: Value = serde_json::from_str(&row.7).unwrap();
        let want_tags: Value = serde_json::from_str(want.7).unwrap();
        assert_eq!(tags, want_tags, "{}", row.0);
        assert_eq!(
            (
                row.0.as_str(),
                row.1,
                row.2.as_str(),
                row.3.clone(),
                row.4.clone(),
                row.5.as_str(),
                row.6.as_str(),
                row.8,
                row.9.clone()
            ),
            (
                want.0,
                want.1,
                want.2,
                owned(want.3),
                owned(want.4),
                want.5,
                want.6,
                want.8,
                owned(want.9)
            )
        );
    }
}

//! Queries an attacker (or a confused user) might send. Every one must be refused with an
//! error that names the problem, and nothing may panic.

use proptest::prelude::*;

use super::*;

const NOW: UnixMillis = UnixMillis::from_millis(1_795_816_081_000);

fn refused(text: &str) -> String {
    match AnalyticsQuery::parse(text, NOW) {
        Ok(q) => panic!("{text:?} was accepted as {q:?}"),
        Err(e) => e.to_string(),
    }
}

/// Each query is refused, and the message contains the given text.
#[test]
fn hostile_queries_are_refused_by_name() {
    let cases: &[(&str, &str)] = &[
        // Other tables and catalogues.
        ("SELECT * FROM users", "unknown table `users`"),
        ("SELECT * FROM keys", "unknown table `keys`"),
        (
            "SELECT name FROM system.tables",
            "unknown table `system.tables`",
        ),
        (
            "SELECT * FROM information_schema.tables",
            "unknown table `information_schema.tables`",
        ),
        (
            "SELECT * FROM sqlite_master",
            "unknown table `sqlite_master`",
        ),
        (
            "SELECT usename, passwd FROM pg_catalog.pg_user",
            "unknown table `pg_catalog.pg_user`",
        ),
        (
            "SELECT * FROM analytics_verifications",
            "unknown table `analytics_verifications`",
        ),
        (
            "SELECT * FROM default.key_verifications_v1",
            "unknown table `default.key_verifications_v1`",
        ),
        (
            "SELECT * FROM \"key_verifications_v1\"\"; DROP TABLE keys; --\"",
            "unknown table",
        ),
        (
            "SELECT * FROM KEY_VERIFICATIONS_V1",
            "unknown table `KEY_VERIFICATIONS_V1`",
        ),
        // Table functions.
        (
            "SELECT * FROM url('http://evil/x', CSV)",
            "function `url` is not supported",
        ),
        (
            "SELECT * FROM file('/etc/passwd')",
            "function `file` is not supported",
        ),
        (
            "SELECT * FROM remote('host', system.users)",
            "function `remote` is not supported",
        ),
        (
            "SELECT * FROM s3('https://bucket/x')",
            "function `s3` is not supported",
        ),
        // Columns that are not public.
        (
            "SELECT client_ip FROM key_verifications_v1",
            "unknown column `client_ip` in key_verifications_v1",
        ),
        (
            "SELECT secret FROM key_verifications_v1",
            "unknown column `secret` in key_verifications_v1",
        ),
        (
            "SELECT count FROM key_verifications_v1",
            "unknown column `count` in key_verifications_v1",
        ),
        (
            "SELECT region FROM key_verifications_per_day_v1",
            "unknown column `region` in key_verifications_per_day_v1",
        ),
        (
            "SELECT key_id FROM key_verifications_v1 WHERE client_ip = '1.2.3.4'",
            "unknown column `client_ip`",
        ),
        (
            "SELECT \"key_id\" FROM keys.key_verifications_v1",
            "unknown table",
        ),
        (
            "SELECT keys.hash FROM key_verifications_v1",
            "unknown table `keys`",
        ),
        (
            "SELECT a.b.c FROM key_verifications_v1",
            "unknown column `a.b.c`",
        ),
        // Quoted identifiers trying to escape their quotes.
        (
            "SELECT \"outcome\" FROM key_verifications_v1 WHERE \"x\"\" OR 1=1 --\" = 1",
            "unknown column",
        ),
        (
            "SELECT `key_id` FROM `key_verifications_v1` WHERE `outcome` = 'VALID' OR `a``b` = 1",
            "unknown column `a`b`",
        ),
        (
            "SELECT \"key_id\"\"; DROP TABLE keys; --\" FROM key_verifications_v1",
            "unknown column",
        ),
        // Set operations, subqueries, CTEs, joins.
        (
            "SELECT key_id FROM key_verifications_v1 UNION ALL SELECT key_id FROM key_verifications_v1",
            "UNION is not supported",
        ),
        (
            "SELECT key_id FROM key_verifications_v1 UNION SELECT name FROM system.users",
            "UNION is not supported",
        ),
        (
            "SELECT key_id FROM key_verifications_v1 EXCEPT SELECT key_id FROM key_verifications_v1",
            "EXCEPT is not supported",
        ),
        (
            "SELECT key_id FROM key_verifications_v1 INTERSECT SELECT key_id FROM key_verifications_v1",
            "INTERSECT is not supported",
        ),
        (
            "SELECT * FROM (SELECT * FROM users)",
            "a subquery in FROM is not supported",
        ),
        (
            "SELECT key_id FROM key_verifications_v1 WHERE key_id IN (SELECT id FROM keys)",
            "a subquery is not supported",
        ),
        (
            "SELECT key_id FROM key_verifications_v1 WHERE EXISTS (SELECT 1 FROM keys)",
            "a subquery is not supported",
        ),
        (
            "SELECT (SELECT hash FROM keys LIMIT 1) FROM key_verifications_v1",
            "a subquery is not supported",
        ),
        (
            "SELECT key_id FROM key_verifications_v1 WHERE outcome = (SELECT 'x')",
            "a subquery is not supported",
        ),
        (
            "WITH k AS (SELECT * FROM keys) SELECT * FROM k",
            "WITH (common table expressions) is not supported",
        ),
        (
            "WITH 1 AS x SELECT key_id FROM key_verifications_v1",
            "SQL syntax error",
        ),
        (
            "SELECT * FROM key_verifications_v1 JOIN keys ON keys.id = key_id",
            "JOIN is not supported",
        ),
        ("SELECT * FROM key_verifications_v1, keys", "JOIN"),
        (
            "SELECT * FROM key_verifications_v1 a LEFT JOIN key_verifications_v1 b ON a.key_id = b.key_id",
            "JOIN is not supported",
        ),
        ("SELECT * FROM key_verifications_v1 ARRAY JOIN tags", "JOIN"),
        // Several statements and writes.
        ("SELECT 1; SELECT 2", "only one statement is allowed"),
        (
            "SELECT key_id FROM key_verifications_v1; DROP TABLE keys",
            "only one statement is allowed",
        ),
        (
            "SELECT key_id FROM key_verifications_v1; DROP TABLE keys;",
            "only one statement is allowed",
        ),
        ("DROP TABLE keys", "only SELECT is allowed, not `DROP`"),
        (
            "INSERT INTO keys VALUES (1)",
            "only SELECT is allowed, not `INSERT`",
        ),
        (
            "DELETE FROM analytics_verifications",
            "only SELECT is allowed, not `DELETE`",
        ),
        (
            "UPDATE keys SET hash = 'x'",
            "only SELECT is allowed, not `UPDATE`",
        ),
        (
            "ATTACH DATABASE '/tmp/x.db' AS x",
            "only SELECT is allowed, not `ATTACH`",
        ),
        (
            "PRAGMA writable_schema = 1",
            "only SELECT is allowed, not `PRAGMA`",
        ),
        ("SET allow_ddl = 1", "only SELECT is allowed, not `SET`"),
        (
            "SELECT time + 1 FROM key_verifications_v1",
            "arithmetic (`+`) is not supported",
        ),
        (
            "SELECT key_id FROM key_verifications_v1 WHERE time > now() - 3600",
            "arithmetic (`-`)",
        ),
        (
            "SELECT key_id INTO evil FROM key_verifications_v1",
            "SELECT INTO is not supported",
        ),
        // ClickHouse clauses.
        (
            "SELECT key_id FROM key_verifications_v1 SETTINGS max_threads = 100",
            "SETTINGS is not supported",
        ),
        (
            "SELECT key_id FROM key_verifications_v1 FORMAT JSON",
            "FORMAT is not supported",
        ),
        (
            "SELECT key_id FROM key_verifications_v1 PREWHERE 1 = 1",
            "PREWHERE is not supported",
        ),
        (
            "SELECT key_id FROM key_verifications_v1 LIMIT 1 BY key_id",
            "LIMIT BY is not supported",
        ),
        (
            "SELECT DISTINCT key_id FROM key_verifications_v1",
            "DISTINCT is not supported",
        ),
        (
            "SELECT outcome, count() FROM key_verifications_v1 GROUP BY outcome HAVING count() > 1",
            "HAVING is not supported",
        ),
        (
            "SELECT outcome, count() FROM key_verifications_v1 GROUP BY outcome WITH TOTALS",
            "is not supported",
        ),
        (
            "SELECT arrayJoin(tags) FROM key_verifications_v1",
            "function `arrayJoin` is not supported",
        ),
        // Functions with side effects or reach, and unknown ones.
        (
            "SELECT pg_sleep(10) FROM key_verifications_v1",
            "function `pg_sleep` is not supported",
        ),
        (
            "SELECT key_id FROM key_verifications_v1 WHERE sleep(3) = 0",
            "function `sleep` is not supported",
        ),
        (
            "SELECT randomblob(1000000000) FROM key_verifications_v1",
            "function `randomblob` is not supported",
        ),
        (
            "SELECT load_extension('/tmp/evil.so') FROM key_verifications_v1",
            "function `load_extension` is not supported",
        ),
        (
            "SELECT pg_read_file('/etc/passwd') FROM key_verifications_v1",
            "function `pg_read_file` is not supported",
        ),
        (
            "SELECT key_id FROM key_verifications_v1 WHERE pg_catalog.pg_sleep(1) = 0",
            "function `pg_catalog.pg_sleep` is not supported",
        ),
        (
            "SELECT key_id FROM key_verifications_v1 WHERE outcome = currentUser()",
            "function `currentUser` is not supported",
        ),
        (
            "SELECT count() OVER () FROM key_verifications_v1",
            "window functions (OVER) is not supported",
        ),
        (
            "SELECT row_number() OVER (ORDER BY time) FROM key_verifications_v1",
            "window functions",
        ),
        (
            "SELECT count(DISTINCT key_id) FROM key_verifications_v1",
            "DISTINCT inside `count` is not supported",
        ),
        (
            "SELECT quantile(0.5)(time) FROM key_verifications_v1",
            "is not supported",
        ),
        (
            "SELECT CAST(time AS String) FROM key_verifications_v1",
            "is not supported",
        ),
        (
            "SELECT key_id FROM key_verifications_v1 WHERE CAST(outcome AS Int64) = 1",
            "CAST is not supported",
        ),
        (
            "SELECT key_id FROM key_verifications_v1 WHERE time = now() - INTERVAL '1' DAY",
            "INTERVAL other than",
        ),
        (
            "SELECT key_id FROM key_verifications_v1 WHERE time > now('Europe/Berlin')",
            "now() with arguments",
        ),
        (
            "SELECT toStartOfHour(time, 'Asia/Tokyo') FROM key_verifications_v1",
            "anything but `time`",
        ),
        (
            "SELECT toStartOfHour(outcome) FROM key_verifications_v1",
            "anything but `time`",
        ),
        // Type errors that PostgreSQL would otherwise raise at run time.
        (
            "SELECT key_id FROM key_verifications_v1 WHERE outcome = 1",
            "cannot compare text with an integer",
        ),
        (
            "SELECT key_id FROM key_verifications_v1 WHERE time > 'yesterday'",
            "cannot compare an integer with text",
        ),
        (
            "SELECT key_id FROM key_verifications_v1 WHERE tags = '[]'",
            "`tags` can only be tested with has",
        ),
        (
            "SELECT key_id FROM key_verifications_v1 WHERE time IN (1, 'a')",
            "cannot compare",
        ),
        (
            "SELECT sum(outcome) FROM key_verifications_v1",
            "sum() needs an integer column",
        ),
        (
            "SELECT key_id FROM key_verifications_v1 WHERE time > 1.5",
            "only integers are supported",
        ),
        (
            "SELECT key_id FROM key_verifications_v1 WHERE time > 99999999999999999999",
            "out of range",
        ),
        (
            "SELECT key_id FROM key_verifications_v1 WHERE outcome = NULL",
            "NULL literal",
        ),
        (
            "SELECT key_id FROM key_verifications_v1 WHERE has(tags, outcome)",
            "has() other than has(tags, '<string>')",
        ),
        (
            "SELECT key_id FROM key_verifications_v1 WHERE has(outcome, 'x')",
            "has() other than",
        ),
        // Grouping mistakes.
        (
            "SELECT key_id, count() FROM key_verifications_v1",
            "`key_id` is neither aggregated nor in GROUP BY",
        ),
        (
            "SELECT outcome FROM key_verifications_v1 GROUP BY key_id",
            "`outcome` is neither aggregated nor in GROUP BY",
        ),
        (
            "SELECT count() FROM key_verifications_v1 GROUP BY count()",
            "an aggregate cannot be a GROUP BY key",
        ),
        (
            "SELECT outcome, count() FROM key_verifications_v1 GROUP BY 1",
            "positional GROUP BY",
        ),
        (
            "SELECT outcome, outcome FROM key_verifications_v1",
            "two result columns are named `outcome`",
        ),
        (
            "SELECT 1",
            "FROM with one of the key_verifications tables is required",
        ),
        (
            "SELECT now() FROM key_verifications_v1",
            "now() outside a WHERE comparison is not supported",
        ),
        (
            "SELECT 1 FROM key_verifications_v1",
            "a literal (`1`) as a selected",
        ),
        // Limits.
        (
            "SELECT key_id FROM key_verifications_v1 LIMIT 1000000",
            "LIMIT may be at most 10000",
        ),
        (
            "SELECT key_id FROM key_verifications_v1 LIMIT -1",
            "LIMIT other than a non-negative integer",
        ),
        (
            "SELECT key_id FROM key_verifications_v1 LIMIT 10 OFFSET (SELECT 1)",
            "OFFSET other than",
        ),
        // Not SQL, or nothing at all.
        ("", "the query is empty"),
        ("   ;  ", "the query is empty"),
        ("-- only a comment", "the query is empty"),
        ("SELECT FROM WHERE", "SQL syntax error"),
        (
            "SELECT key_id FROM key_verifications_v1 WHERE outcome = 'unterminated",
            "SQL syntax error",
        ),
    ];
    let mut failures = Vec::new();
    for (query, expected) in cases {
        match AnalyticsQuery::parse(query, NOW) {
            Ok(q) => failures.push(format!("ACCEPTED {query:?} as {q:?}")),
            Err(e) if !e.to_string().contains(expected) => failures.push(format!(
                "{query:?}\n    expected {expected:?}\n    got      {:?}",
                e.to_string()
            )),
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let deep = format!(
        "SELECT key_id FROM key_verifications_v1 WHERE {}time > 0{}",
        "(".repeat(6_000),
        ")".repeat(6_000)
    );
    assert!(refused(&deep).contains("the query is longer than"));
    let nested = format!(
        "SELECT key_id FROM key_verifications_v1 WHERE {}time > 0{}",
        "(".repeat(500),
        ")".repeat(500)
    );
    assert!(
        refused(&nested).contains("recursion limit"),
        "{}",
        refused(&nested)
    );
    let nots = format!(
        "SELECT key_id FROM key_verifications_v1 WHERE {}time > 0",
        "NOT ".repeat(1_000)
    );
    refused(&nots);
    let ors = |n: usize| {
        format!(
            "SELECT key_id FROM key_verifications_v1 WHERE time > 0{}",
            " OR time > 0".repeat(n)
        )
    };
    // A flat chain parses without nesting but converts into a tree as deep as it is long.
    assert!(AnalyticsQuery::parse(&ors(30), NOW).is_ok());
    assert!(refused(&ors(600)).contains("nests more than"));
    // Refusals that echo an expression print it; a deep one must not overflow either.
    let printed = format!(
        "SELECT key_id FROM key_verifications_v1 WHERE (1{}) IS TRUE",
        " OR 1".repeat(2_000)
    );
    refused(&printed);
    let dotted = format!(
        "SELECT {}key_id FROM key_verifications_v1",
        "a.".repeat(3_000)
    );
    refused(&dotted);
}

#[test]
fn the_error_echo_of_a_long_identifier_is_cut() {
    let long = "x".repeat(5_000);
    let message = refused(&format!("SELECT {long} FROM key_verifications_v1"));
    assert!(message.len() < 200, "{message}");
}

proptest! {
    #[test]
    fn random_printable_input_never_panics(text in "[ -~\\n]{0,300}") {
        let _ = AnalyticsQuery::parse(&text, NOW);
    }

    #[test]
    fn random_sql_shaped_input_never_panics(
        words in proptest::collection::vec(
            prop_oneof![
                Just("SELECT"), Just("FROM"), Just("WHERE"), Just("GROUP BY"), Just("ORDER BY"),
                Just("LIMIT"), Just("key_verifications_v1"), Just("time"), Just("outcome"),
                Just("tags"), Just("count()"), Just("has(tags, 'a')"), Just("toStartOfMonth(time)"),
                Just("now()"), Just("- INTERVAL 1 MONTH"), Just("AND"), Just("OR"), Just("NOT"),
                Just("("), Just(")"), Just(","), Just("="), Just("'x'"), Just("1"), Just("AS a"),
                Just("a"), Just("*"), Just(";"), Just("IN"), Just("BETWEEN"), Just("IS NULL"),
            ],
            0..40,
        )
    ) {
        let text = words.join(" ");
        if let Ok(q) = AnalyticsQuery::parse(&text, NOW) {
            let workspace = crate::id::WorkspaceId::parse("ws_1").expect("valid");
            for dialect in [Dialect::Sqlite, Dialect::Postgres] {
                let r = q.render(dialect, &workspace, &ApiScope::All);
                prop_assert!(r.sql.contains("WHERE workspace_id = "));
                prop_assert!(!r.sql.contains("'x'") && !r.sql.contains("'a'"));
            }
        }
    }
}

proptest! {
    /// Whatever a string literal holds, it arrives intact as a parameter and the SQL text is
    /// the same as for any other literal.
    #[test]
    fn any_string_literal_becomes_exactly_one_parameter(value in "\\PC{0,40}") {
        let quoted = value.replace('\\', "\\\\").replace('\'', "''");
        let text = format!("SELECT key_id FROM key_verifications_v1 WHERE outcome = '{quoted}'");
        let q = AnalyticsQuery::parse(&text, NOW).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let workspace = crate::id::WorkspaceId::parse("ws_1").expect("valid");
        let r = q.render(Dialect::Postgres, &workspace, &ApiScope::All);
        prop_assert_eq!(
            r.sql,
            "SELECT key_id AS c0 FROM analytics_verifications WHERE workspace_id = $1 \
             AND (outcome = $2) LIMIT $3"
        );
        prop_assert_eq!(&r.params[1], &Param::Text(value));
    }
}

//! SQL text for SQLite or PostgreSQL from a checked [`AnalyticsQuery`]. The text is made only
//! of our own keywords, physical table and column names and generated aliases (`c0`, `c1`,
//! …); every value from the query arrives as a bound parameter.

use std::fmt::Write;

use super::ast::{
    Aggregate, AnalyticsQuery, CompareOp, Condition, Direction, KeyExpr, Literal, Operand,
    OutputColumn, TimeBucket, ValueExpr,
};
use super::schema::{Column, Table};
use crate::id::{ApiId, WorkspaceId};

/// Which database the SQL is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A value bound to a placeholder, in placeholder order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Param {
    Int(i64),
    Text(String),
}

/// Which keyspaces (APIs) the caller may read. A root key granted `read_analytics` on some
/// APIs only sees their rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiScope {
    All,
    Only(Vec<ApiId>),
}

/// A query ready to run: SQL, its parameters, and how to decode each result column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedQuery {
    pub sql: String,
    pub params: Vec<Param>,
    pub columns: Vec<OutputColumn>,
}

struct Sql {
    dialect: Dialect,
    text: String,
    params: Vec<Param>,
}

impl Sql {
    fn push(&mut self, s: &str) {
        self.text.push_str(s);
    }

    fn param(&mut self, p: Param) {
        self.params.push(p);
        match self.dialect {
            Dialect::Sqlite => self.text.push('?'),
            // Writing to a String cannot fail.
            Dialect::Postgres => {
                let _ = write!(self.text, "${}", self.params.len());
            }
        }
    }

    fn literal(&mut self, l: &Literal) {
        self.param(match l {
            Literal::Int(n) => Param::Int(*n),
            Literal::Text(s) => Param::Text(s.clone()),
        });
    }
}

pub(crate) fn render(
    query: &AnalyticsQuery,
    dialect: Dialect,
    workspace: &WorkspaceId,
    apis: &ApiScope,
) -> RenderedQuery {
    let mut sql = Sql {
        dialect,
        text: String::with_capacity(256),
        params: Vec::new(),
    };
    sql.push("SELECT ");
    for (i, item) in query.projection.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        value(&mut sql, &item.expr);
        sql.push(&format!(" AS c{i}"));
    }
    sql.push(" FROM ");
    sql.push(query.table.physical_name());

    // The tenant filter comes first and the user's condition is one parenthesised operand
    // of AND, so no OR inside it can widen the rows beyond this workspace.
    sql.push(" WHERE workspace_id = ");
    sql.param(Param::Text(workspace.as_str().to_owned()));
    match apis {
        ApiScope::All => {}
        ApiScope::Only(ids) if ids.is_empty() => sql.push(" AND 1 = 0"),
        ApiScope::Only(ids) => {
            sql.push(" AND key_space_id IN (");
            for (i, id) in ids.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.param(Param::Text(id.as_str().to_owned()));
            }
            sql.push(")");
        }
    }
    if let Some(filter) = &query.filter {
        sql.push(" AND (");
        condition(&mut sql, filter);
        sql.push(")");
        // Raw events are stored in batches; the batches' time range (columns of the view that
        // queries cannot name) lets the database skip whole batches through its index
        // instead of unpacking every batch of the workspace. Implied by the filter, so the
        // rows are the same.
        if query.table == Table::Raw {
            let (low, high) = time_bounds(filter);
            if let Some(low) = low {
                sql.push(" AND batch_last_time >= ");
                sql.param(Param::Int(low));
            }
            if let Some(high) = high {
                sql.push(" AND batch_first_time <= ");
                sql.param(Param::Int(high));
            }
        }
    }
    if !query.group_by.is_empty() {
        sql.push(" GROUP BY ");
        for (i, key) in query.group_by.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            key_expr(&mut sql, key);
        }
    }
    if !query.order_by.is_empty() {
        sql.push(" ORDER BY ");
        for (i, sort) in query.order_by.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            key_expr(&mut sql, &sort.key);
            sql.push(match sort.direction {
                Direction::Asc => " ASC",
                Direction::Desc => " DESC",
            });
        }
    }
    sql.push(" LIMIT ");
    sql.param(Param::Int(i64::from(query.limit)));
    if query.offset > 0 {
        sql.push(" OFFSET ");
        // The parser stores OFFSET from an i64, so this conversion cannot saturate.
        sql.param(Param::Int(i64::try_from(query.offset).unwrap_or(i64::MAX)));
    }
    RenderedQuery {
        sql: sql.text,
        params: sql.params,
        columns: query.columns(),
    }
}

/// The lowest and highest event time `c` lets through, as far as its top-level conjunction
/// of comparisons of `time` with integers tells (`None`: unbounded).
fn time_bounds(c: &Condition) -> (Option<i64>, Option<i64>) {
    let time = |o: &Operand| matches!(o, Operand::Column(Column::Time));
    let int = |o: &Operand| match o {
        Operand::Literal(Literal::Int(n)) => Some(*n),
        _ => None,
    };
    match c {
        Condition::And(l, r) => {
            let (l_low, l_high) = time_bounds(l);
            let (r_low, r_high) = time_bounds(r);
            (l_low.max(r_low), tighter_high(l_high, r_high))
        }
        Condition::Compare(l, op, r) => {
            // `time op n`, or `n op time` read the other way round.
            let (op, n) = match (time(l), int(r), int(l), time(r)) {
                (true, Some(n), _, _) => (*op, n),
                (_, _, Some(n), true) => (mirrored(*op), n),
                _ => return (None, None),
            };
            match op {
                CompareOp::Eq => (Some(n), Some(n)),
                CompareOp::Gt => (Some(n.saturating_add(1)), None),
                CompareOp::GtEq => (Some(n), None),
                CompareOp::Lt => (None, Some(n.saturating_sub(1))),
                CompareOp::LtEq => (None, Some(n)),
                CompareOp::NotEq => (None, None),
            }
        }
        Condition::Between {
            operand,
            low,
            high,
            negated: false,
        } if time(operand) => (int(low), int(high)),
        _ => (None, None),
    }
}

/// The smaller of two upper bounds, where `None` is no bound.
fn tighter_high(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// `n op time` as `time op' n`.
fn mirrored(op: CompareOp) -> CompareOp {
    match op {
        CompareOp::Lt => CompareOp::Gt,
        CompareOp::LtEq => CompareOp::GtEq,
        CompareOp::Gt => CompareOp::Lt,
        CompareOp::GtEq => CompareOp::LtEq,
        other => other,
    }
}

/// A selected item is referred to by its generated alias: both databases accept output
/// aliases in GROUP BY and ORDER BY, and PostgreSQL could not otherwise match a `has()` key,
/// whose tag is a separate parameter each time it is written.
fn key_expr(sql: &mut Sql, key: &KeyExpr) {
    match key {
        KeyExpr::Output(i) => sql.push(&format!("c{i}")),
        KeyExpr::Expr(e) => value(sql, e),
    }
}

fn value(sql: &mut Sql, e: &ValueExpr) {
    match e {
        ValueExpr::Column(c) => sql.push(c.name()),
        ValueExpr::Bucket(b) => bucket(sql, *b),
        ValueExpr::HasTag(tag) => match sql.dialect {
            Dialect::Sqlite => has_tag(sql, tag),
            // A boolean would not decode as an integer; NULL tags count as no tags.
            Dialect::Postgres => {
                sql.push("(CASE WHEN ");
                has_tag(sql, tag);
                sql.push(" THEN 1 ELSE 0 END)::bigint");
            }
        },
        ValueExpr::Aggregate(a) => aggregate(sql, a),
    }
}

fn aggregate(sql: &mut Sql, a: &Aggregate) {
    // PostgreSQL's sum of bigint is numeric and its avg is numeric: cast them back so the
    // executor decodes one type per kind. count is bigint already.
    let pg = sql.dialect == Dialect::Postgres;
    match a {
        Aggregate::Count => sql.push("count(*)"),
        Aggregate::CountIf(cond) => {
            sql.push("count(CASE WHEN ");
            condition(sql, cond);
            sql.push(" THEN 1 END)");
        }
        // ClickHouse's sum over no rows is 0, not NULL.
        Aggregate::Sum(c) => {
            sql.push(&format!("COALESCE(sum({c}), 0)"));
            if pg {
                sql.push("::bigint");
            }
        }
        Aggregate::SumIf(c, cond) => {
            sql.push("COALESCE(sum(CASE WHEN ");
            condition(sql, cond);
            sql.push(&format!(" THEN {c} END), 0)"));
            if pg {
                sql.push("::bigint");
            }
        }
        Aggregate::Min(c) => sql.push(&format!("min({c})")),
        Aggregate::Max(c) => sql.push(&format!("max({c})")),
        Aggregate::Avg(c) => {
            sql.push(&format!("avg({c})"));
            if pg {
                sql.push("::double precision");
            }
        }
    }
}

/// Bucket starts in Unix ms, UTC. Contains no parameters, so the same bucket written in
/// SELECT and GROUP BY is the same expression to PostgreSQL.
fn bucket(sql: &mut Sql, b: TimeBucket) {
    let width = match b {
        TimeBucket::Minute => 60_000,
        TimeBucket::Hour => 3_600_000,
        TimeBucket::Day => 86_400_000,
        TimeBucket::Month => {
            sql.push(match sql.dialect {
                Dialect::Sqlite => {
                    "(CAST(strftime('%s', time / 1000, 'unixepoch', 'start of month') AS INTEGER) * 1000)"
                }
                Dialect::Postgres => {
                    "(EXTRACT(EPOCH FROM date_trunc('month', to_timestamp(time / 1000) AT TIME ZONE 'UTC')) * 1000)::bigint"
                }
            });
            return;
        }
    };
    sql.push(&format!("(time / {width} * {width})"));
}

fn has_tag(sql: &mut Sql, tag: &str) {
    match sql.dialect {
        Dialect::Sqlite => {
            sql.push("EXISTS (SELECT 1 FROM json_each(tags) WHERE value = ");
            sql.param(Param::Text(tag.to_owned()));
            sql.push(")");
        }
        Dialect::Postgres => {
            sql.push("(tags::jsonb ? ");
            sql.param(Param::Text(tag.to_owned()));
            sql.push(")");
        }
    }
}

fn operand(sql: &mut Sql, o: &Operand) {
    match o {
        Operand::Column(c) => sql.push(c.name()),
        Operand::Bucket(b) => bucket(sql, *b),
        Operand::Literal(l) => sql.literal(l),
    }
}

/// Conditions are rendered with explicit parentheses wherever precedence would otherwise
/// matter, so the tree's shape is exactly what the database evaluates.
fn condition(sql: &mut Sql, c: &Condition) {
    match c {
        Condition::And(l, r) => {
            grouped_unless(sql, l, |c| !matches!(c, Condition::Or(..)));
            sql.push(" AND ");
            grouped_unless(sql, r, |c| !matches!(c, Condition::Or(..)));
        }
        Condition::Or(l, r) => {
            condition(sql, l);
            sql.push(" OR ");
            condition(sql, r);
        }
        Condition::Not(inner) => {
            sql.push("NOT (");
            condition(sql, inner);
            sql.push(")");
        }
        Condition::Compare(l, op, r) => {
            operand(sql, l);
            sql.push(match op {
                CompareOp::Eq => " = ",
                CompareOp::NotEq => " <> ",
                CompareOp::Lt => " < ",
                CompareOp::LtEq => " <= ",
                CompareOp::Gt => " > ",
                CompareOp::GtEq => " >= ",
            });
            operand(sql, r);
        }
        Condition::InList {
            operand: o,
            list,
            negated,
        } => {
            operand(sql, o);
            sql.push(if *negated { " NOT IN (" } else { " IN (" });
            for (i, l) in list.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.literal(l);
            }
            sql.push(")");
        }
        Condition::Between {
            operand: o,
            low,
            high,
            negated,
        } => {
            operand(sql, o);
            sql.push(if *negated {
                " NOT BETWEEN "
            } else {
                " BETWEEN "
            });
            operand(sql, low);
            sql.push(" AND ");
            operand(sql, high);
        }
        Condition::IsNull { column, negated } => {
            sql.push(column.name());
            sql.push(if *negated { " IS NOT NULL" } else { " IS NULL" });
        }
        Condition::Like {
            operand: o,
            pattern,
            negated,
        } => {
            operand(sql, o);
            sql.push(if *negated { " NOT LIKE " } else { " LIKE " });
            sql.param(Param::Text(pattern.clone()));
            // ClickHouse escapes % and _ with a backslash; say so for SQLite, which has no
            // default escape character.
            sql.push(" ESCAPE '\\'");
        }
        Condition::HasTag(tag) => has_tag(sql, tag),
    }
}

fn grouped_unless(sql: &mut Sql, c: &Condition, bare: impl Fn(&Condition) -> bool) {
    if bare(c) {
        condition(sql, c);
    } else {
        sql.push("(");
        condition(sql, c);
        sql.push(")");
    }
}

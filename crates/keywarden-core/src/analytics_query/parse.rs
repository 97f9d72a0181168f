//! From query text to [`AnalyticsQuery`]: parse with the ClickHouse dialect, refuse every
//! clause outside the subset, and convert what is left. The parser's structs are destructured
//! field by field, so that a parser upgrade adding a clause fails to compile here instead of
//! letting the new clause through unchecked.

use sqlparser::ast::{Expr, OrderBySort};
use sqlparser::ast::{
    GroupByExpr, LimitClause, Offset, OrderBy, OrderByExpr, OrderByKind, OrderByOptions, Query,
    Select, SelectFlavor, SelectItem, SelectItemQualifiedWildcardKind, SetExpr, Statement,
    TableAlias, TableFactor, TableWithJoins, WildcardAdditionalOptions,
};
use sqlparser::dialect::ClickHouseDialect;
use sqlparser::parser::Parser;

use super::ast::{
    Aggregate, AnalyticsQuery, Direction, KeyExpr, OutputColumn, OutputKind, Projection, SortKey,
    ValueExpr,
};
use super::error::{QueryError, excerpt, invalid, unsupported};
use super::expr::{Scope, integer, simple_name};
use super::schema::{ColumnType, Table};
use super::{MAX_NESTING, MAX_QUERY_BYTES, MAX_ROWS};
use crate::time::UnixMillis;

pub(crate) fn parse(text: &str, now: UnixMillis) -> Result<AnalyticsQuery, QueryError> {
    if text.len() > MAX_QUERY_BYTES {
        return Err(QueryError::TooLong {
            max: MAX_QUERY_BYTES,
        });
    }
    let dialect = ClickHouseDialect {};
    let statements = Parser::new(&dialect)
        .with_recursion_limit(MAX_NESTING)
        .try_with_sql(text)
        .and_then(|mut p| p.parse_statements())
        .map_err(|e| QueryError::Syntax(excerpt(&e.to_string())))?;
    let statement = match <[Statement; 1]>::try_from(statements) {
        Ok([one]) => one,
        Err(v) if v.is_empty() => return Err(QueryError::Empty),
        Err(_) => return Err(QueryError::SeveralStatements),
    };
    let Statement::Query(query) = statement else {
        let keyword = statement
            .to_string()
            .split_whitespace()
            .next()
            .map(str::to_ascii_uppercase)
            .unwrap_or_default();
        return Err(QueryError::NotSelect(excerpt(&keyword)));
    };
    query_from(*query, now)
}

fn query_from(query: Query, now: UnixMillis) -> Result<AnalyticsQuery, QueryError> {
    let Query {
        with,
        body,
        order_by,
        limit_clause,
        fetch,
        locks,
        for_clause,
        settings,
        format_clause,
        pipe_operators,
    } = query;
    refuse_if(with.is_some(), "WITH (common table expressions)")?;
    refuse_if(fetch.is_some(), "FETCH")?;
    refuse_if(!locks.is_empty(), "FOR UPDATE / FOR SHARE")?;
    refuse_if(for_clause.is_some(), "FOR XML / FOR JSON")?;
    refuse_if(settings.is_some(), "SETTINGS")?;
    refuse_if(format_clause.is_some(), "FORMAT")?;
    refuse_if(!pipe_operators.is_empty(), "pipe operators")?;
    let select = match *body {
        SetExpr::Select(select) => select,
        SetExpr::SetOperation { op, .. } => {
            return Err(unsupported(op.to_string().to_ascii_uppercase()));
        }
        SetExpr::Query(_) => return Err(unsupported("a parenthesised subquery")),
        SetExpr::Values(_) => return Err(unsupported("VALUES")),
        SetExpr::Insert(_) => return Err(unsupported("INSERT")),
        SetExpr::Update(_) => return Err(unsupported("UPDATE")),
        SetExpr::Delete(_) => return Err(unsupported("DELETE")),
        SetExpr::Merge(_) => return Err(unsupported("MERGE")),
        SetExpr::Table(_) => return Err(unsupported("TABLE")),
    };
    let Select {
        select_token: _,
        optimizer_hints,
        distinct,
        select_modifiers,
        top,
        top_before_distinct: _,
        projection,
        exclude,
        into,
        from,
        lateral_views,
        prewhere,
        selection,
        connect_by,
        group_by,
        cluster_by,
        distribute_by,
        sort_by,
        having,
        named_window,
        qualify,
        window_before_qualify: _,
        value_table_mode,
        flavor,
    } = *select;
    refuse_if(!optimizer_hints.is_empty(), "optimizer hints")?;
    refuse_if(distinct.is_some(), "DISTINCT")?;
    refuse_if(select_modifiers.is_some(), "SELECT modifiers")?;
    refuse_if(top.is_some(), "TOP")?;
    refuse_if(exclude.is_some(), "EXCLUDE")?;
    refuse_if(into.is_some(), "SELECT INTO")?;
    refuse_if(!lateral_views.is_empty(), "LATERAL VIEW")?;
    refuse_if(prewhere.is_some(), "PREWHERE")?;
    refuse_if(!connect_by.is_empty(), "CONNECT BY")?;
    refuse_if(!cluster_by.is_empty(), "CLUSTER BY")?;
    refuse_if(!distribute_by.is_empty(), "DISTRIBUTE BY")?;
    refuse_if(!sort_by.is_empty(), "SORT BY")?;
    refuse_if(having.is_some(), "HAVING")?;
    refuse_if(!named_window.is_empty(), "WINDOW")?;
    refuse_if(qualify.is_some(), "QUALIFY")?;
    refuse_if(value_table_mode.is_some(), "SELECT AS STRUCT / VALUE")?;
    refuse_if(
        !matches!(flavor, SelectFlavor::Standard),
        "FROM-first SELECT",
    )?;

    let (table, alias) = table_from(from)?;
    let scope = Scope::new(table, alias.as_deref(), now);
    let (projection, aliases) = projection_from(&scope, &projection)?;
    let filter = selection.map(|e| scope.condition(&e)).transpose()?;
    let group_by = group_by_from(&scope, group_by, &projection, &aliases)?;
    let order_by = match order_by {
        Some(o) => order_by_from(&scope, o, &projection, &aliases)?,
        None => Vec::new(),
    };
    let (limit, offset) = limits_from(limit_clause)?;
    let query = AnalyticsQuery {
        table,
        projection,
        filter,
        group_by,
        order_by,
        limit,
        offset,
    };
    check_grouping(&query)?;
    Ok(query)
}

fn refuse_if(present: bool, what: &str) -> Result<(), QueryError> {
    if present {
        Err(unsupported(what))
    } else {
        Ok(())
    }
}

/// The one table of FROM and its alias.
fn table_from(from: Vec<TableWithJoins>) -> Result<(Table, Option<String>), QueryError> {
    let mut from = from.into_iter();
    let (first, second) = (from.next(), from.next());
    let TableWithJoins { relation, joins } = match (first, second) {
        (Some(one), None) => one,
        (None, _) => {
            return Err(invalid(
                "FROM with one of the key_verifications tables is required",
            ));
        }
        (Some(_), Some(_)) => return Err(unsupported("JOIN (several tables in FROM)")),
    };
    refuse_if(!joins.is_empty(), "JOIN")?;
    let TableFactor::Table {
        name,
        alias,
        args,
        with_hints,
        version,
        with_ordinality,
        partitions,
        json_path,
        sample,
        index_directives,
        inheritance,
    } = relation
    else {
        return Err(match relation {
            TableFactor::Derived { .. } => unsupported("a subquery in FROM"),
            TableFactor::NestedJoin { .. } => unsupported("JOIN"),
            _ => unsupported("table functions and other FROM items"),
        });
    };
    if args.is_some() {
        return Err(QueryError::UnknownFunction(excerpt(&name.to_string())));
    }
    refuse_if(
        !with_hints.is_empty()
            || version.is_some()
            || with_ordinality
            || !partitions.is_empty()
            || json_path.is_some()
            || sample.is_some()
            || !index_directives.is_empty()
            || inheritance.is_some(),
        "table hints, versions, partitions and SAMPLE",
    )?;
    let table = simple_name(&name)
        .and_then(Table::from_public_name)
        .ok_or_else(|| QueryError::UnknownTable(excerpt(&name.to_string())))?;
    let alias = match alias {
        None => None,
        Some(TableAlias {
            explicit: _,
            name,
            columns,
            at,
        }) => {
            refuse_if(
                !columns.is_empty() || at.is_some(),
                "column lists in a table alias",
            )?;
            // ClickHouse's FINAL (merge rollup parts before reading) reaches us as an alias;
            // our rollups are always merged, so it means nothing here.
            if name.quote_style.is_none() && name.value.eq_ignore_ascii_case("final") {
                None
            } else {
                Some(name.value)
            }
        }
    };
    Ok((table, alias))
}

/// The SELECT list, with each item's explicit alias (for GROUP BY / ORDER BY lookups).
fn projection_from(
    scope: &Scope<'_>,
    items: &[SelectItem],
) -> Result<(Vec<Projection>, Vec<Option<String>>), QueryError> {
    let mut projection = Vec::new();
    let mut aliases = Vec::new();
    for item in items {
        match item {
            SelectItem::UnnamedExpr(e) => {
                let expr = scope.value(e)?;
                let name = default_name(&expr, e);
                projection.push(Projection {
                    output: output_column(&expr, name),
                    expr,
                });
                aliases.push(None);
            }
            SelectItem::ExprWithAlias { expr: e, alias } => {
                let expr = scope.value(e)?;
                projection.push(Projection {
                    output: output_column(&expr, alias.value.clone()),
                    expr,
                });
                aliases.push(Some(alias.value.clone()));
            }
            SelectItem::ExprWithAliases { .. } => {
                return Err(unsupported("several aliases for one expression"));
            }
            SelectItem::Wildcard(options) => {
                plain_wildcard(options)?;
                expand_star(scope, &mut projection, &mut aliases);
            }
            SelectItem::QualifiedWildcard(kind, options) => {
                plain_wildcard(options)?;
                let qualifier = match kind {
                    SelectItemQualifiedWildcardKind::ObjectName(name) => simple_name(name),
                    SelectItemQualifiedWildcardKind::Expr(_) => None,
                };
                let known = qualifier
                    .is_some_and(|q| q == scope.table.public_name() || Some(q) == scope.alias);
                if !known {
                    return Err(QueryError::UnknownTable(excerpt(&kind.to_string())));
                }
                expand_star(scope, &mut projection, &mut aliases);
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    for p in &projection {
        if !seen.insert(p.output.name.as_str()) {
            return Err(invalid(format!(
                "two result columns are named `{}`; give one an alias with AS",
                excerpt(&p.output.name)
            )));
        }
    }
    Ok((projection, aliases))
}

fn plain_wildcard(options: &WildcardAdditionalOptions) -> Result<(), QueryError> {
    let WildcardAdditionalOptions {
        wildcard_token: _,
        opt_ilike,
        opt_exclude,
        opt_except,
        opt_replace,
        opt_rename,
        opt_alias,
    } = options;
    refuse_if(
        opt_ilike.is_some()
            || opt_exclude.is_some()
            || opt_except.is_some()
            || opt_replace.is_some()
            || opt_rename.is_some()
            || opt_alias.is_some(),
        "modifiers on `*` (EXCEPT, REPLACE, …)",
    )
}

fn expand_star(
    scope: &Scope<'_>,
    projection: &mut Vec<Projection>,
    aliases: &mut Vec<Option<String>>,
) {
    for &column in scope.table.public_columns() {
        let expr = ValueExpr::Column(column);
        projection.push(Projection {
            output: output_column(&expr, column.name().to_owned()),
            expr,
        });
        aliases.push(None);
    }
}

/// The name ClickHouse would give an unaliased item, spelled canonically where we can
/// (`count()` for `COUNT(*)`), else as the parser prints the expression.
fn default_name(expr: &ValueExpr, original: &Expr) -> String {
    match expr {
        ValueExpr::Column(c) => c.name().to_owned(),
        ValueExpr::Bucket(b) => format!("{}(time)", b.function_name()),
        ValueExpr::HasTag(_) => original.to_string(),
        ValueExpr::Aggregate(a) => match a {
            Aggregate::Count => "count()".to_owned(),
            Aggregate::Sum(c) => format!("sum({c})"),
            Aggregate::Min(c) => format!("min({c})"),
            Aggregate::Max(c) => format!("max({c})"),
            Aggregate::Avg(c) => format!("avg({c})"),
            Aggregate::CountIf(_) | Aggregate::SumIf(..) => original.to_string(),
        },
    }
}

fn output_column(expr: &ValueExpr, name: String) -> OutputColumn {
    let of_column = |c: super::schema::Column, nullable: bool| match c.column_type() {
        ColumnType::Integer if nullable => OutputKind::NullableInteger,
        ColumnType::Integer => OutputKind::Integer,
        ColumnType::Text if nullable => OutputKind::NullableText,
        ColumnType::Text => OutputKind::Text,
        ColumnType::NullableText => OutputKind::NullableText,
        ColumnType::Tags => OutputKind::Tags,
    };
    let kind = match expr {
        ValueExpr::Column(c) => of_column(*c, false),
        ValueExpr::Bucket(_) | ValueExpr::HasTag(_) => OutputKind::Integer,
        ValueExpr::Aggregate(a) => match a {
            Aggregate::Count | Aggregate::CountIf(_) | Aggregate::Sum(_) | Aggregate::SumIf(..) => {
                OutputKind::Integer
            }
            // Over no rows these are NULL.
            Aggregate::Min(c) | Aggregate::Max(c) => of_column(*c, true),
            Aggregate::Avg(_) => OutputKind::NullableFloat,
        },
    };
    OutputColumn { name, kind }
}

/// A GROUP BY or ORDER BY item: a projection alias first (as in ClickHouse, where an alias
/// shadows a column of the same name), then an expression, which is the projection item it
/// equals if there is one.
fn key_from(
    scope: &Scope<'_>,
    e: &Expr,
    projection: &[Projection],
    aliases: &[Option<String>],
) -> Result<KeyExpr, QueryError> {
    if let Expr::Identifier(ident) = e
        && let Some(i) = aliases
            .iter()
            .position(|a| a.as_deref() == Some(ident.value.as_str()))
    {
        return Ok(KeyExpr::Output(i));
    }
    if let Expr::Value(v) = e
        && matches!(v.value, sqlparser::ast::Value::Number(..))
    {
        return Err(unsupported(
            "positional GROUP BY / ORDER BY (a number); name the column or alias",
        ));
    }
    let expr = scope.value(e)?;
    Ok(match projection.iter().position(|p| p.expr == expr) {
        Some(i) => KeyExpr::Output(i),
        None => KeyExpr::Expr(expr),
    })
}

fn group_by_from(
    scope: &Scope<'_>,
    group_by: GroupByExpr,
    projection: &[Projection],
    aliases: &[Option<String>],
) -> Result<Vec<KeyExpr>, QueryError> {
    let exprs = match group_by {
        GroupByExpr::All(_) => return Err(unsupported("GROUP BY ALL")),
        GroupByExpr::Expressions(exprs, modifiers) => {
            refuse_if(!modifiers.is_empty(), "WITH ROLLUP / CUBE / TOTALS")?;
            exprs
        }
    };
    let mut keys = Vec::with_capacity(exprs.len());
    for e in &exprs {
        let key = key_from(scope, e, projection, aliases)?;
        let expr = match &key {
            KeyExpr::Output(i) => &projection[*i].expr,
            KeyExpr::Expr(expr) => expr,
        };
        if expr.is_aggregate() {
            return Err(invalid("an aggregate cannot be a GROUP BY key"));
        }
        // A has() key outside the SELECT list would be rendered with its own bound
        // parameter, which PostgreSQL cannot match against the same expression elsewhere.
        if matches!(key, KeyExpr::Expr(ValueExpr::HasTag(_))) {
            return Err(unsupported("has() in GROUP BY unless it is also selected"));
        }
        keys.push(key);
    }
    Ok(keys)
}

fn order_by_from(
    scope: &Scope<'_>,
    order_by: OrderBy,
    projection: &[Projection],
    aliases: &[Option<String>],
) -> Result<Vec<SortKey>, QueryError> {
    let OrderBy { kind, interpolate } = order_by;
    refuse_if(interpolate.is_some(), "INTERPOLATE")?;
    let exprs = match kind {
        OrderByKind::All(_) => return Err(unsupported("ORDER BY ALL")),
        OrderByKind::Expressions(exprs) => exprs,
    };
    let mut keys = Vec::with_capacity(exprs.len());
    for OrderByExpr {
        expr,
        options: OrderByOptions { sort, nulls_first },
        with_fill,
    } in exprs
    {
        refuse_if(with_fill.is_some(), "WITH FILL")?;
        refuse_if(nulls_first.is_some(), "NULLS FIRST / NULLS LAST")?;
        let direction = match sort {
            None | Some(OrderBySort::Asc) => Direction::Asc,
            Some(OrderBySort::Desc) => Direction::Desc,
            Some(_) => return Err(unsupported("ORDER BY … USING")),
        };
        let key = key_from(scope, &expr, projection, aliases)?;
        if matches!(key, KeyExpr::Expr(ValueExpr::HasTag(_))) {
            return Err(unsupported("has() in ORDER BY unless it is also selected"));
        }
        keys.push(SortKey { key, direction });
    }
    Ok(keys)
}

fn limits_from(clause: Option<LimitClause>) -> Result<(u32, u64), QueryError> {
    let (limit, offset) = match clause {
        None => (None, None),
        Some(LimitClause::LimitOffset {
            limit,
            offset,
            limit_by,
        }) => {
            refuse_if(!limit_by.is_empty(), "LIMIT BY")?;
            (limit, offset.map(|Offset { value, rows: _ }| value))
        }
        Some(LimitClause::OffsetCommaLimit { offset, limit }) => (Some(limit), Some(offset)),
    };
    let limit = match limit {
        None => MAX_ROWS,
        Some(e) => {
            let n = non_negative(&e, "LIMIT")?;
            u32::try_from(n)
                .ok()
                .filter(|n| *n <= MAX_ROWS)
                .ok_or_else(|| invalid(format!("LIMIT may be at most {MAX_ROWS}")))?
        }
    };
    let offset = match offset {
        None => 0,
        Some(e) => u64::try_from(non_negative(&e, "OFFSET")?)
            .map_err(|_| invalid("OFFSET is out of range"))?,
    };
    Ok((limit, offset))
}

fn non_negative(e: &Expr, clause: &str) -> Result<i64, QueryError> {
    match e {
        Expr::Value(v) => match &v.value {
            sqlparser::ast::Value::Number(text, _) => integer(text),
            _ => Err(unsupported(format!(
                "{clause} other than a non-negative integer"
            ))),
        },
        _ => Err(unsupported(format!(
            "{clause} other than a non-negative integer"
        ))),
    }
}

/// When a query aggregates, every other selected or sorted value must be a GROUP BY key.
/// SQLite would quietly pick an arbitrary row's value and PostgreSQL would fail at run time;
/// refusing here gives both the same, clear answer.
fn check_grouping(query: &AnalyticsQuery) -> Result<(), QueryError> {
    let resolve = |key: &KeyExpr| match key {
        KeyExpr::Output(i) => query.projection[*i].expr.clone(),
        KeyExpr::Expr(e) => e.clone(),
    };
    let grouped_exprs: Vec<ValueExpr> = query.group_by.iter().map(resolve).collect();
    let sorted: Vec<ValueExpr> = query.order_by.iter().map(|k| resolve(&k.key)).collect();
    let aggregates = query
        .projection
        .iter()
        .map(|p| &p.expr)
        .chain(sorted.iter())
        .any(ValueExpr::is_aggregate);
    if grouped_exprs.is_empty() && !aggregates {
        return Ok(());
    }
    let ungrouped = query
        .projection
        .iter()
        .map(|p| (&p.expr, p.output.name.as_str()))
        .chain(sorted.iter().map(|e| (e, "an ORDER BY key")))
        .find(|(e, _)| !e.is_aggregate() && !grouped_exprs.contains(e));
    match ungrouped {
        Some((_, name)) => Err(invalid(format!(
            "`{}` is neither aggregated nor in GROUP BY",
            excerpt(name)
        ))),
        None => Ok(()),
    }
}

//! Converts the parser's expressions into ours. Each function here accepts a short list of
//! shapes and refuses everything else by name; nothing falls through unexamined.

use std::cell::Cell;

use sqlparser::ast::{
    BinaryOperator, DuplicateTreatment, Expr, Function, FunctionArg, FunctionArgExpr,
    FunctionArguments, InTarget, ObjectName, ObjectNamePart, UnaryOperator, Value,
};

use super::MAX_NESTING;
use super::ast::{
    Aggregate, CompareOp, Condition, Literal, Operand, TimeBucket, ValueExpr, ValueType,
};
use super::error::{QueryError, excerpt, invalid, unsupported};
use super::interval::{interval_parts, shift};
use super::schema::{Column, ColumnType, Table};
use crate::time::UnixMillis;

/// What names mean inside one query: its table, the alias it was given, and the instant
/// `now()` stands for.
pub(crate) struct Scope<'a> {
    pub table: Table,
    pub alias: Option<&'a str>,
    pub now: UnixMillis,
    /// How deep the conversion is. The parser bounds nesting, but a flat `a OR b OR c …`
    /// chain parses into a tree as deep as it is long, and converting, rendering and
    /// printing trees recurse.
    depth: Cell<usize>,
}

/// Leaves one level of [`Scope::depth`] when dropped.
struct Level<'s>(&'s Cell<usize>);

impl Drop for Level<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

/// A function argument the subset understands.
enum Arg<'e> {
    Expr(&'e Expr),
    Star,
}

impl<'a> Scope<'a> {
    pub fn new(table: Table, alias: Option<&'a str>, now: UnixMillis) -> Self {
        Scope {
            table,
            alias,
            now,
            depth: Cell::new(0),
        }
    }

    fn enter(&self) -> Result<Level<'_>, QueryError> {
        let depth = self.depth.get() + 1;
        if depth > MAX_NESTING {
            return Err(invalid(format!(
                "the query nests more than {MAX_NESTING} levels deep (each AND/OR in a chain counts)"
            )));
        }
        self.depth.set(depth);
        Ok(Level(&self.depth))
    }

    /// A column reference: `col`, `table.col` or `alias.col`.
    pub fn column(&self, e: &Expr) -> Result<Column, QueryError> {
        let name = match e {
            Expr::Identifier(ident) => &ident.value,
            Expr::CompoundIdentifier(parts) => match parts.as_slice() {
                [qualifier, column] => {
                    let q = qualifier.value.as_str();
                    if q != self.table.public_name() && Some(q) != self.alias {
                        return Err(QueryError::UnknownTable(excerpt(q)));
                    }
                    &column.value
                }
                _ => {
                    return Err(QueryError::UnknownColumn {
                        column: excerpt(&e.to_string()),
                        table: self.table,
                    });
                }
            },
            other => {
                return Err(unsupported(format!(
                    "expression `{}`",
                    excerpt(&other.to_string())
                )));
            }
        };
        self.table
            .column(name)
            .ok_or_else(|| QueryError::UnknownColumn {
                column: excerpt(name),
                table: self.table,
            })
    }

    /// Something to select, group by or sort by.
    pub fn value(&self, e: &Expr) -> Result<ValueExpr, QueryError> {
        let _level = self.enter()?;
        match e {
            Expr::Identifier(_) | Expr::CompoundIdentifier(_) => {
                Ok(ValueExpr::Column(self.column(e)?))
            }
            Expr::Nested(inner) => self.value(inner),
            Expr::Function(f) => self.value_function(f),
            Expr::Value(_) | Expr::UnaryOp { .. } => Err(unsupported(format!(
                "a literal (`{}`) as a selected, grouping or sorting value",
                excerpt(&e.to_string())
            ))),
            other => Err(self.refuse(other)),
        }
    }

    fn value_function(&self, f: &Function) -> Result<ValueExpr, QueryError> {
        let (name, args) = function_parts(f)?;
        let value = match (name.as_str(), args.as_slice()) {
            ("count", [] | [Arg::Star]) => ValueExpr::Aggregate(Aggregate::Count),
            ("count", _) => {
                return Err(unsupported(
                    "count(<expression>); use count() or countIf(…)",
                ));
            }
            ("countif", [Arg::Expr(cond)]) => {
                ValueExpr::Aggregate(Aggregate::CountIf(Box::new(self.condition(cond)?)))
            }
            ("sum", [Arg::Expr(c)]) => {
                ValueExpr::Aggregate(Aggregate::Sum(self.integer_column(c, "sum")?))
            }
            ("sumif", [Arg::Expr(c), Arg::Expr(cond)]) => ValueExpr::Aggregate(Aggregate::SumIf(
                self.integer_column(c, "sumIf")?,
                Box::new(self.condition(cond)?),
            )),
            ("avg", [Arg::Expr(c)]) => {
                ValueExpr::Aggregate(Aggregate::Avg(self.integer_column(c, "avg")?))
            }
            ("min" | "max", [Arg::Expr(c)]) => {
                let column = self.column(c)?;
                if column.column_type() == ColumnType::Tags {
                    return Err(invalid(format!("{name}() does not take `tags`")));
                }
                if name == "min" {
                    ValueExpr::Aggregate(Aggregate::Min(column))
                } else {
                    ValueExpr::Aggregate(Aggregate::Max(column))
                }
            }
            ("has", _) => ValueExpr::HasTag(self.has_tag(&args)?),
            ("now", _) => return Err(unsupported("now() outside a WHERE comparison")),
            _ => match bucket(&name) {
                Some(b) => ValueExpr::Bucket(self.bucket_arg(b, &args)?),
                None => return Err(self.wrong_function(&name, f, &args)),
            },
        };
        Ok(value)
    }

    /// A WHERE condition, or the condition inside `countIf`/`sumIf`.
    pub fn condition(&self, e: &Expr) -> Result<Condition, QueryError> {
        let _level = self.enter()?;
        match e {
            Expr::Nested(inner) => self.condition(inner),
            Expr::BinaryOp { left, op, right } => match op {
                BinaryOperator::And => Ok(Condition::And(
                    Box::new(self.condition(left)?),
                    Box::new(self.condition(right)?),
                )),
                BinaryOperator::Or => Ok(Condition::Or(
                    Box::new(self.condition(left)?),
                    Box::new(self.condition(right)?),
                )),
                _ => {
                    let op = compare_op(op)
                        .ok_or_else(|| unsupported(format!("operator `{op}` in a condition")))?;
                    let (l, r) = (self.operand(left)?, self.operand(right)?);
                    same_type(&l, &r, e)?;
                    Ok(Condition::Compare(l, op, r))
                }
            },
            Expr::UnaryOp {
                op: UnaryOperator::Not,
                expr,
            } => Ok(Condition::Not(Box::new(self.condition(expr)?))),
            Expr::IsNull(inner) | Expr::IsNotNull(inner) => Ok(Condition::IsNull {
                column: self.column(inner)?,
                negated: matches!(e, Expr::IsNotNull(_)),
            }),
            Expr::In {
                expr,
                target,
                negated,
                global,
            } => {
                if *global {
                    return Err(unsupported("GLOBAL IN"));
                }
                let items = match target {
                    InTarget::List(items) => items,
                    InTarget::Subquery(_) => return Err(unsupported("a subquery")),
                    _ => return Err(unsupported("IN with anything but a list of literals")),
                };
                if items.is_empty() {
                    return Err(invalid("IN needs at least one value"));
                }
                let operand = self.operand(expr)?;
                let mut list = Vec::with_capacity(items.len());
                for item in items {
                    let Operand::Literal(l) = self.operand(item)? else {
                        return Err(unsupported("IN with anything but a list of literals"));
                    };
                    same_type(&operand, &Operand::Literal(l.clone()), e)?;
                    list.push(l);
                }
                Ok(Condition::InList {
                    operand,
                    list,
                    negated: *negated,
                })
            }
            Expr::Between {
                expr,
                negated,
                low,
                high,
            } => {
                let (operand, low, high) =
                    (self.operand(expr)?, self.operand(low)?, self.operand(high)?);
                same_type(&operand, &low, e)?;
                same_type(&operand, &high, e)?;
                Ok(Condition::Between {
                    operand,
                    low,
                    high,
                    negated: *negated,
                })
            }
            Expr::Like {
                negated,
                any,
                expr,
                pattern,
                escape_char,
            } => {
                if *any || escape_char.is_some() {
                    return Err(unsupported("LIKE ANY / LIKE … ESCAPE"));
                }
                let operand = self.operand(expr)?;
                let Operand::Literal(Literal::Text(pattern)) = self.operand(pattern)? else {
                    return Err(unsupported(
                        "LIKE with a pattern that is not a string literal",
                    ));
                };
                if operand.value_type() != ValueType::Text {
                    return Err(invalid("LIKE needs a text value on its left"));
                }
                Ok(Condition::Like {
                    operand,
                    pattern,
                    negated: *negated,
                })
            }
            Expr::Function(f) => {
                let (name, args) = function_parts(f)?;
                if name == "has" {
                    return Ok(Condition::HasTag(self.has_tag(&args)?));
                }
                if is_known_function(&name) {
                    return Err(invalid(format!(
                        "`{}` is not a condition",
                        excerpt(&f.to_string())
                    )));
                }
                Err(self.wrong_function(&name, f, &args))
            }
            other => Err(self.refuse(other)),
        }
    }

    /// A value inside a condition: a column, a time bucket, a literal, or a time folded from
    /// `now()`.
    fn operand(&self, e: &Expr) -> Result<Operand, QueryError> {
        let _level = self.enter()?;
        if let Some(ms) = self.constant_time(e)? {
            return Ok(Operand::Literal(Literal::Int(ms)));
        }
        match e {
            Expr::Nested(inner) => self.operand(inner),
            Expr::Identifier(_) | Expr::CompoundIdentifier(_) => {
                let column = self.column(e)?;
                if column.column_type() == ColumnType::Tags {
                    return Err(invalid("`tags` can only be tested with has(tags, '…')"));
                }
                Ok(Operand::Column(column))
            }
            Expr::Value(v) => Ok(Operand::Literal(literal(&v.value)?)),
            Expr::UnaryOp {
                op: op @ (UnaryOperator::Minus | UnaryOperator::Plus),
                expr,
            } => match self.operand(expr)? {
                Operand::Literal(Literal::Int(n)) if *op == UnaryOperator::Minus => n
                    .checked_neg()
                    .map(|n| Operand::Literal(Literal::Int(n)))
                    .ok_or_else(|| invalid("integer out of range")),
                Operand::Literal(Literal::Int(n)) => Ok(Operand::Literal(Literal::Int(n))),
                _ => Err(unsupported(
                    "unary minus on anything but an integer literal",
                )),
            },
            Expr::Function(f) => {
                let (name, args) = function_parts(f)?;
                match bucket(&name) {
                    Some(b) => Ok(Operand::Bucket(self.bucket_arg(b, &args)?)),
                    None if is_known_function(&name) => Err(invalid(format!(
                        "`{}` cannot be compared; only columns, literals, now() and toStartOf…(time) can",
                        excerpt(&f.to_string())
                    ))),
                    None => Err(self.wrong_function(&name, f, &args)),
                }
            }
            other => Err(self.refuse(other)),
        }
    }

    /// `now()`, `now() ± INTERVAL n UNIT`, folded to Unix ms so the database never sees a
    /// clock of its own (and tests can fix the instant).
    fn constant_time(&self, e: &Expr) -> Result<Option<i64>, QueryError> {
        let _level = self.enter()?;
        match e {
            Expr::Nested(inner) => self.constant_time(inner),
            Expr::Function(f) if is_now(f) => {
                let (_, args) = function_parts(f)?;
                if !args.is_empty() {
                    return Err(unsupported("now() with arguments (time zones)"));
                }
                Ok(Some(self.now.as_millis()))
            }
            Expr::BinaryOp { left, op, right } => {
                let sign = match op {
                    BinaryOperator::Plus => 1,
                    BinaryOperator::Minus => -1,
                    _ => return Ok(None),
                };
                let Expr::Interval(interval) = right.as_ref() else {
                    return Ok(None);
                };
                let Some(base) = self.constant_time(left)? else {
                    return Err(unsupported("INTERVAL arithmetic on anything but now()"));
                };
                let (amount, unit) = interval_parts(interval)?;
                let amount = amount
                    .checked_mul(sign)
                    .ok_or_else(|| invalid("INTERVAL out of range"))?;
                shift(base, amount, unit).map(Some)
            }
            _ => Ok(None),
        }
    }

    fn integer_column(&self, e: &Expr, function: &str) -> Result<Column, QueryError> {
        let column = self.column(e)?;
        if column.column_type() != ColumnType::Integer {
            return Err(invalid(format!(
                "{function}() needs an integer column, `{column}` is not one"
            )));
        }
        Ok(column)
    }

    fn bucket_arg(&self, bucket: TimeBucket, args: &[Arg<'_>]) -> Result<TimeBucket, QueryError> {
        match args {
            [Arg::Expr(e)] if self.column(e)? == Column::Time => Ok(bucket),
            _ => Err(unsupported(format!(
                "{}() of anything but `time` (time zones are not supported either)",
                bucket.function_name()
            ))),
        }
    }

    fn has_tag(&self, args: &[Arg<'_>]) -> Result<String, QueryError> {
        if let [Arg::Expr(column), Arg::Expr(Expr::Value(v))] = args
            && self.column(column)? == Column::Tags
            && let Value::SingleQuotedString(tag) = &v.value
        {
            return Ok(tag.clone());
        }
        Err(unsupported("has() other than has(tags, '<string>')"))
    }

    fn wrong_function(&self, name: &str, f: &Function, args: &[Arg<'_>]) -> QueryError {
        if is_known_function(name) {
            invalid(format!(
                "wrong arguments ({}) in `{}`",
                args.len(),
                excerpt(&f.to_string())
            ))
        } else {
            QueryError::UnknownFunction(excerpt(&f.name.to_string()))
        }
    }

    /// The refusal for an expression shape the subset does not know, naming the shape.
    fn refuse(&self, e: &Expr) -> QueryError {
        match e {
            Expr::Subquery(_) | Expr::Exists { .. } => unsupported("a subquery"),
            Expr::Cast { .. } | Expr::Convert { .. } => unsupported("CAST"),
            Expr::Case { .. } => unsupported("CASE"),
            Expr::Interval(_) => unsupported("INTERVAL outside `now() - INTERVAL n UNIT`"),
            Expr::Wildcard(_) | Expr::QualifiedWildcard(..) => {
                unsupported("`*` outside `SELECT *` and `count(*)`")
            }
            Expr::Lambda(_) => unsupported("lambda expressions"),
            Expr::BinaryOp {
                op:
                    op @ (BinaryOperator::Plus
                    | BinaryOperator::Minus
                    | BinaryOperator::Multiply
                    | BinaryOperator::Divide
                    | BinaryOperator::Modulo),
                ..
            } => invalid(format!(
                "arithmetic (`{op}`) is not supported; for times relative to now use `now() - INTERVAL n UNIT`"
            )),
            Expr::BinaryOp { op, .. } => unsupported(format!("operator `{op}` here")),
            other => unsupported(format!("expression `{}`", excerpt(&other.to_string()))),
        }
    }
}

/// A function's lower-cased name and plain positional arguments. Everything that makes a
/// call more than `name(args)` is refused here once for all functions.
fn function_parts(f: &Function) -> Result<(String, Vec<Arg<'_>>), QueryError> {
    let name = simple_name(&f.name)
        .ok_or_else(|| QueryError::UnknownFunction(excerpt(&f.name.to_string())))?;
    if f.over.is_some() {
        return Err(unsupported("window functions (OVER)"));
    }
    if f.filter.is_some() || f.null_treatment.is_some() || !f.within_group.is_empty() {
        return Err(unsupported(format!(
            "FILTER / WITHIN GROUP / NULLS clauses in `{name}`"
        )));
    }
    if f.uses_odbc_syntax || !matches!(f.parameters, FunctionArguments::None) {
        return Err(unsupported(format!("parametric function `{name}`")));
    }
    let list = match &f.args {
        FunctionArguments::None => return Ok((name.to_ascii_lowercase(), Vec::new())),
        FunctionArguments::Subquery(_) => return Err(unsupported("a subquery")),
        FunctionArguments::List(list) => list,
    };
    if matches!(list.duplicate_treatment, Some(DuplicateTreatment::Distinct)) {
        return Err(unsupported(format!("DISTINCT inside `{name}`")));
    }
    if !list.clauses.is_empty() {
        return Err(unsupported(format!("clauses inside `{name}(…)`")));
    }
    let mut args = Vec::with_capacity(list.args.len());
    for arg in &list.args {
        match arg {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => args.push(Arg::Expr(e)),
            FunctionArg::Unnamed(FunctionArgExpr::Wildcard) => args.push(Arg::Star),
            _ => return Err(unsupported(format!("this kind of argument to `{name}`"))),
        }
    }
    Ok((name.to_ascii_lowercase(), args))
}

/// The name of a one-part, unquoted-or-quoted identifier; `None` for `schema.name` and other
/// shapes, which never name one of our tables or functions.
pub(crate) fn simple_name(name: &ObjectName) -> Option<&str> {
    match name.0.as_slice() {
        [ObjectNamePart::Identifier(ident)] => Some(ident.value.as_str()),
        _ => None,
    }
}

fn is_now(f: &Function) -> bool {
    simple_name(&f.name).is_some_and(|n| n.eq_ignore_ascii_case("now"))
}

fn bucket(lower_name: &str) -> Option<TimeBucket> {
    match lower_name {
        "tostartofminute" => Some(TimeBucket::Minute),
        "tostartofhour" => Some(TimeBucket::Hour),
        "tostartofday" => Some(TimeBucket::Day),
        "tostartofmonth" => Some(TimeBucket::Month),
        _ => None,
    }
}

fn is_known_function(lower_name: &str) -> bool {
    matches!(
        lower_name,
        "count" | "countif" | "sum" | "sumif" | "avg" | "min" | "max" | "has" | "now"
    ) || bucket(lower_name).is_some()
}

fn compare_op(op: &BinaryOperator) -> Option<CompareOp> {
    Some(match op {
        BinaryOperator::Eq => CompareOp::Eq,
        BinaryOperator::NotEq => CompareOp::NotEq,
        BinaryOperator::Lt => CompareOp::Lt,
        BinaryOperator::LtEq => CompareOp::LtEq,
        BinaryOperator::Gt => CompareOp::Gt,
        BinaryOperator::GtEq => CompareOp::GtEq,
        _ => return None,
    })
}

/// Both databases would either fail (PostgreSQL: `text = bigint`) or compare by storage class
/// (SQLite), so mixed comparisons are refused up front.
fn same_type(a: &Operand, b: &Operand, whole: &Expr) -> Result<(), QueryError> {
    let (ta, tb) = (a.value_type(), b.value_type());
    if ta == tb {
        return Ok(());
    }
    let name = |t: ValueType| match t {
        ValueType::Integer => "an integer",
        ValueType::Text => "text",
        ValueType::Tags => "tags",
    };
    Err(invalid(format!(
        "cannot compare {} with {} in `{}`",
        name(ta),
        name(tb),
        excerpt(&whole.to_string())
    )))
}

pub(crate) fn literal(v: &Value) -> Result<Literal, QueryError> {
    match v {
        Value::Number(text, _) => integer(text).map(Literal::Int),
        Value::SingleQuotedString(s) => Ok(Literal::Text(s.clone())),
        Value::Null => Err(unsupported("NULL literal (use IS NULL / IS NOT NULL)")),
        Value::Boolean(_) => Err(unsupported("boolean literals")),
        _ => Err(unsupported(format!(
            "literal `{}` (use integers and 'single-quoted' strings)",
            excerpt(&v.to_string())
        ))),
    }
}

pub(crate) fn integer(text: &str) -> Result<i64, QueryError> {
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(unsupported(format!(
            "number `{}` (only integers are supported)",
            excerpt(text)
        )));
    }
    text.parse()
        .map_err(|_| invalid(format!("integer `{}` is out of range", excerpt(text))))
}

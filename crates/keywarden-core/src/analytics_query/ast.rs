//! Our own small query tree. It can only express what the subset allows, so a query that made
//! it into these types is safe to render: it names known columns, known functions and typed
//! literals, nothing else.

use super::schema::{Column, ColumnType, Table};

/// A literal from the query text. It always reaches the database as a bound parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Literal {
    Int(i64),
    Text(String),
}

impl Literal {
    pub fn value_type(&self) -> ValueType {
        match self {
            Literal::Int(_) => ValueType::Integer,
            Literal::Text(_) => ValueType::Text,
        }
    }
}

/// The type of a scalar for comparisons: integers compare with integers, text with text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    Integer,
    Text,
    Tags,
}

impl From<ColumnType> for ValueType {
    fn from(t: ColumnType) -> Self {
        match t {
            ColumnType::Integer => ValueType::Integer,
            ColumnType::Text | ColumnType::NullableText => ValueType::Text,
            ColumnType::Tags => ValueType::Tags,
        }
    }
}

/// `toStartOfMinute(time)` and friends; always over `time`, always Unix ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeBucket {
    Minute,
    Hour,
    Day,
    Month,
}

impl TimeBucket {
    pub fn function_name(self) -> &'static str {
        match self {
            TimeBucket::Minute => "toStartOfMinute",
            TimeBucket::Hour => "toStartOfHour",
            TimeBucket::Day => "toStartOfDay",
            TimeBucket::Month => "toStartOfMonth",
        }
    }
}

/// A value inside a condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operand {
    Column(Column),
    Bucket(TimeBucket),
    Literal(Literal),
}

impl Operand {
    pub fn value_type(&self) -> ValueType {
        match self {
            Operand::Column(c) => c.column_type().into(),
            Operand::Bucket(_) => ValueType::Integer,
            Operand::Literal(l) => l.value_type(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

/// A boolean condition (WHERE, and the condition of `countIf`/`sumIf`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    And(Box<Condition>, Box<Condition>),
    Or(Box<Condition>, Box<Condition>),
    Not(Box<Condition>),
    Compare(Operand, CompareOp, Operand),
    InList {
        operand: Operand,
        list: Vec<Literal>,
        negated: bool,
    },
    Between {
        operand: Operand,
        low: Operand,
        high: Operand,
        negated: bool,
    },
    IsNull {
        column: Column,
        negated: bool,
    },
    Like {
        operand: Operand,
        pattern: String,
        negated: bool,
    },
    /// `has(tags, 'x')`
    HasTag(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Aggregate {
    /// `count()` / `count(*)`
    Count,
    CountIf(Box<Condition>),
    Sum(Column),
    SumIf(Column, Box<Condition>),
    Min(Column),
    Max(Column),
    Avg(Column),
}

/// Something that can be selected, grouped by or sorted by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueExpr {
    Column(Column),
    Bucket(TimeBucket),
    /// `has(tags, 'x')` as a 0/1 value.
    HasTag(String),
    Aggregate(Aggregate),
}

impl ValueExpr {
    pub fn is_aggregate(&self) -> bool {
        matches!(self, ValueExpr::Aggregate(_))
    }
}

/// How the executor decodes one output column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    Integer,
    /// `min`/`max` of an integer column over no rows.
    NullableInteger,
    Text,
    NullableText,
    /// `avg`, NULL over no rows.
    NullableFloat,
    /// Text holding a JSON array of strings; return it as an array.
    Tags,
}

/// One column of the result, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputColumn {
    /// The name the row object uses: the alias, else the column name, else the expression
    /// (e.g. `count()`, `toStartOfHour(time)`).
    pub name: String,
    pub kind: OutputKind,
}

/// One item of the SELECT list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Projection {
    pub expr: ValueExpr,
    pub output: OutputColumn,
}

/// A GROUP BY or ORDER BY key: a projection item (by alias or by being the same expression),
/// or an expression that is not selected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyExpr {
    Output(usize),
    Expr(ValueExpr),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Asc,
    Desc,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    pub key: KeyExpr,
    pub direction: Direction,
}

/// A checked query over one public table, ready to render for either database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnalyticsQuery {
    pub(crate) table: Table,
    pub(crate) projection: Vec<Projection>,
    pub(crate) filter: Option<Condition>,
    pub(crate) group_by: Vec<KeyExpr>,
    pub(crate) order_by: Vec<SortKey>,
    pub(crate) limit: u32,
    pub(crate) offset: u64,
}

impl AnalyticsQuery {
    pub fn table(&self) -> Table {
        self.table
    }

    /// The result columns in order, as the rendered query returns them.
    pub fn columns(&self) -> Vec<OutputColumn> {
        self.projection.iter().map(|p| p.output.clone()).collect()
    }
}

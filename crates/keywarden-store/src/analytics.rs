//! What both backends share about running analytics queries: turning decoded column values
//! into JSON row objects.

use keywarden_core::analytics_query::{OutputColumn, OutputKind};
use keywarden_core::store::AnalyticsRow;
use serde_json::Value;

/// One value as the database returned it, before it becomes JSON.
pub(crate) enum Cell {
    Null,
    Int(i64),
    Float(f64),
    Text(String),
}

/// A value of a result column that does not fit its `OutputKind`: a bug in rendering or
/// decoding, reported as a backend failure.
#[derive(Debug, thiserror::Error)]
#[error("analytics column `{column}` ({kind:?}) holds {found}")]
pub(crate) struct CellError {
    column: String,
    kind: OutputKind,
    found: &'static str,
}

/// The JSON value of `cell` in `column`.
pub(crate) fn json_value(column: &OutputColumn, cell: Cell) -> Result<Value, CellError> {
    let mismatch = |found| CellError {
        column: column.name.clone(),
        kind: column.kind,
        found,
    };
    match (column.kind, cell) {
        (
            OutputKind::NullableInteger | OutputKind::NullableText | OutputKind::NullableFloat,
            Cell::Null,
        ) => Ok(Value::Null),
        (OutputKind::Integer | OutputKind::NullableInteger, Cell::Int(n)) => Ok(Value::from(n)),
        (OutputKind::Text | OutputKind::NullableText, Cell::Text(s)) => Ok(Value::String(s)),
        // NaN and infinities have no JSON number; avg over integers never makes them.
        (OutputKind::NullableFloat, Cell::Float(x)) => Ok(serde_json::Number::from_f64(x)
            .map(Value::Number)
            .unwrap_or(Value::Null)),
        // SQLite's avg is a float, but a float column may come back as an integer there.
        (OutputKind::NullableFloat, Cell::Int(n)) => Ok(serde_json::Number::from_f64(n as f64)
            .map(Value::Number)
            .unwrap_or(Value::Null)),
        (OutputKind::Tags, Cell::Text(s)) => match serde_json::from_str::<Vec<String>>(&s) {
            Ok(tags) => Ok(Value::from(tags)),
            Err(_) => Err(mismatch("text that is not a JSON array of strings")),
        },
        (_, Cell::Null) => Err(mismatch("NULL")),
        (_, Cell::Int(_)) => Err(mismatch("an integer")),
        (_, Cell::Float(_)) => Err(mismatch("a float")),
        (_, Cell::Text(_)) => Err(mismatch("text")),
    }
}

/// A row object from one cell per column, in column order.
pub(crate) fn row(
    columns: &[OutputColumn],
    cells: impl IntoIterator<Item = Cell>,
) -> Result<AnalyticsRow, CellError> {
    let mut out = AnalyticsRow::new();
    for (column, cell) in columns.iter().zip(cells) {
        out.insert(column.name.clone(), json_value(column, cell)?);
    }
    Ok(out)
}

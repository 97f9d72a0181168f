//! [`Tables`] for the SQLite store.

use async_trait::async_trait;
use keywarden_core::store::StoreResult;
use rusqlite::types::ValueRef;

use super::{Kind, Row, Table, Tables, Value};
use crate::SqliteStore;

#[async_trait]
impl Tables for SqliteStore {
    async fn read_rows(&self, table: &'static Table) -> StoreResult<Vec<Row>> {
        self.read(move |conn| {
            let sql = format!(
                "SELECT {} FROM {} ORDER BY 1, {}",
                table.column_list(),
                table.name,
                table.columns.len().min(2)
            );
            let mut stmt = conn.prepare(&sql)?;
            stmt.query_map([], |row| {
                table
                    .columns
                    .iter()
                    .enumerate()
                    .map(|(i, &(_, kind))| value_at(row.get_ref(i)?, kind, i))
                    .collect()
            })?
            .collect()
        })
        .await
    }

    async fn write_rows(&self, tables: Vec<(&'static Table, Vec<Row>)>) -> StoreResult<()> {
        self.write(move |conn| {
            for (table, rows) in &tables {
                let placeholders = (1..=table.columns.len())
                    .map(|i| format!("?{i}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let mut stmt = conn.prepare(&format!(
                    "INSERT INTO {} ({}) VALUES ({placeholders})",
                    table.name,
                    table.column_list()
                ))?;
                for row in rows {
                    let values: Vec<rusqlite::types::Value> = row.iter().map(to_sqlite).collect();
                    stmt.execute(rusqlite::params_from_iter(values))?;
                }
            }
            Ok(())
        })
        .await
    }

    async fn count_rows(&self, table: &'static Table) -> StoreResult<u64> {
        self.read(move |conn| {
            conn.query_row(&format!("SELECT COUNT(*) FROM {}", table.name), [], |r| {
                r.get::<_, i64>(0)
            })
        })
        .await
        .map(|n| u64::try_from(n).unwrap_or(0))
    }
}

fn value_at(value: ValueRef<'_>, kind: Kind, column: usize) -> rusqlite::Result<Value> {
    Ok(match (value, kind) {
        (ValueRef::Null, _) => Value::Null,
        (ValueRef::Integer(n), Kind::Int) => Value::Int(n),
        (ValueRef::Integer(n), Kind::Flag) => Value::Flag(n != 0),
        (ValueRef::Text(t), Kind::Text) => Value::Text(
            std::str::from_utf8(t)
                .map_err(|e| crate::sqlite::conversion_error(column, e))?
                .to_owned(),
        ),
        (other, _) => {
            return Err(crate::sqlite::conversion_error(
                column,
                UnexpectedType(format!("{:?} in a {kind:?} column", other.data_type())),
            ));
        }
    })
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct UnexpectedType(String);

fn to_sqlite(value: &Value) -> rusqlite::types::Value {
    use rusqlite::types::Value as V;
    match value {
        Value::Null => V::Null,
        Value::Text(t) => V::Text(t.clone()),
        Value::Int(n) => V::Integer(*n),
        Value::Flag(b) => V::Integer(i64::from(*b)),
    }
}

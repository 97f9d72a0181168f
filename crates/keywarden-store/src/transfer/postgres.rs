//! [`Tables`] for the PostgreSQL store. Its SQL is built from the fixed table list in
//! [`super::TABLES`], never from input, which is why it may be dynamic.

use async_trait::async_trait;
use keywarden_core::store::{StoreError, StoreResult};
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, Row as _};

use super::{Kind, Row, Table, Tables, Value};
use crate::PostgresStore;

fn failed(e: sqlx::Error) -> StoreError {
    crate::postgres::store_error(e)
}

#[async_trait]
impl Tables for PostgresStore {
    async fn read_rows(&self, table: &'static Table) -> StoreResult<Vec<Row>> {
        let sql = format!(
            "SELECT {} FROM {} ORDER BY 1, {}",
            table.column_list(),
            table.name,
            table.columns.len().min(2)
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .fetch_all(self.pool())
            .await
            .map_err(failed)?;
        rows.iter()
            .map(|row| {
                table
                    .columns
                    .iter()
                    .enumerate()
                    .map(|(i, &(_, kind))| value_at(row, i, kind))
                    .collect::<Result<Row, sqlx::Error>>()
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(failed)
    }

    async fn write_rows(&self, tables: Vec<(&'static Table, Vec<Row>)>) -> StoreResult<()> {
        let mut tx = self.pool().begin().await.map_err(failed)?;
        for (table, rows) in &tables {
            let placeholders = (1..=table.columns.len())
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "INSERT INTO {} ({}) VALUES ({placeholders})",
                table.name,
                table.column_list()
            );
            for row in rows {
                let mut query = sqlx::query(AssertSqlSafe(sql.as_str()));
                for (value, &(_, kind)) in row.iter().zip(table.columns) {
                    query = match (value, kind) {
                        (Value::Null, Kind::Text) => query.bind(None::<String>),
                        (Value::Null, Kind::Int) => query.bind(None::<i64>),
                        (Value::Null, Kind::Flag) => query.bind(None::<bool>),
                        (Value::Text(t), _) => query.bind(t.as_str()),
                        (Value::Int(n), _) => query.bind(*n),
                        (Value::Flag(b), _) => query.bind(*b),
                    };
                }
                query.execute(&mut *tx).await.map_err(failed)?;
            }
        }
        tx.commit().await.map_err(failed)
    }

    async fn count_rows(&self, table: &'static Table) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM {}",
            table.name
        )))
        .fetch_one(self.pool())
        .await
        .map_err(failed)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

fn value_at(row: &PgRow, i: usize, kind: Kind) -> Result<Value, sqlx::Error> {
    Ok(match kind {
        Kind::Text => row
            .try_get::<Option<String>, _>(i)?
            .map_or(Value::Null, Value::Text),
        Kind::Int => row
            .try_get::<Option<i64>, _>(i)?
            .map_or(Value::Null, Value::Int),
        Kind::Flag => row
            .try_get::<Option<bool>, _>(i)?
            .map_or(Value::Null, Value::Flag),
    })
}

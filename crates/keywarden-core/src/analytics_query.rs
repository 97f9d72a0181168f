//! The SQL subset of `analytics.getVerifications`: ClickHouse-dialect text over the public
//! verification tables, parsed by a real SQL parser, checked against a small documented
//! subset (`docs/analytics.md`), turned into our own query tree and rendered anew for SQLite
//! or PostgreSQL. No text from the query is ever copied into the SQL that runs: identifiers
//! map to our enums and literals become bound parameters. The workspace filter (and the API
//! scope of the root key) is added by the renderer, around the whole user condition.
//!
//! ```text
//! let query = AnalyticsQuery::parse(text, now)?;
//! let rendered = query.render(Dialect::Sqlite, &workspace, &ApiScope::All);
//! ```

mod ast;
mod error;
mod expr;
mod interval;
mod parse;
mod render;
mod schema;

#[cfg(test)]
mod hostile_tests;
#[cfg(test)]
mod tests;

pub use ast::{AnalyticsQuery, OutputColumn, OutputKind};
pub use error::QueryError;
pub use render::{ApiScope, Dialect, Param, RenderedQuery};
pub use schema::{Column, ColumnType, Table};

use crate::id::WorkspaceId;
use crate::time::UnixMillis;

/// The most rows one query returns; also the LIMIT of a query that has none.
pub const MAX_ROWS: u32 = 10_000;

/// Longer queries are refused before parsing, bounding parse time and memory.
pub const MAX_QUERY_BYTES: usize = 10 * 1024;

/// How deeply expressions may nest (parentheses, NOT, AND/OR chains count). The parser stops
/// there with an error instead of recursing until the stack runs out.
pub const MAX_NESTING: usize = 40;

impl AnalyticsQuery {
    /// Parses and checks `text`. `now()` in the query stands for `now`.
    pub fn parse(text: &str, now: UnixMillis) -> Result<AnalyticsQuery, QueryError> {
        parse::parse(text, now)
    }

    /// SQL for `dialect`, restricted to `workspace` and to the keyspaces in `apis`.
    pub fn render(
        &self,
        dialect: Dialect,
        workspace: &WorkspaceId,
        apis: &ApiScope,
    ) -> RenderedQuery {
        render::render(self, dialect, workspace, apis)
    }
}

//! Why a query was refused. Every message names what is unsupported, so a user can fix the
//! query without reading our source; all of them are client errors (HTTP 400).

use thiserror::Error;

use super::schema::Table;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QueryError {
    #[error("the query is empty")]
    Empty,
    #[error("the query is longer than {max} bytes")]
    TooLong { max: usize },
    #[error("SQL syntax error: {0}")]
    Syntax(String),
    #[error("only one statement is allowed")]
    SeveralStatements,
    #[error("only SELECT is allowed, not `{0}`")]
    NotSelect(String),
    #[error("{0} is not supported")]
    Unsupported(String),
    #[error("unknown table `{0}`")]
    UnknownTable(String),
    #[error("unknown column `{column}` in {table}")]
    UnknownColumn { column: String, table: Table },
    #[error("function `{0}` is not supported")]
    UnknownFunction(String),
    #[error("{0}")]
    Invalid(String),
}

/// Identifiers and expressions from the query are echoed in errors; long ones are cut so an
/// error stays short whatever was sent.
pub(crate) fn excerpt(text: &str) -> String {
    const MAX_CHARS: usize = 80;
    let mut out: String = text.chars().take(MAX_CHARS).collect();
    if text.chars().nth(MAX_CHARS).is_some() {
        out.push('…');
    }
    out
}

pub(crate) fn unsupported(what: impl Into<String>) -> QueryError {
    QueryError::Unsupported(what.into())
}

pub(crate) fn invalid(what: impl Into<String>) -> QueryError {
    QueryError::Invalid(what.into())
}

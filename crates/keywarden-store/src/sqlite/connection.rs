//! Opening a connection with the settings every connection needs.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

/// Prepared statements each connection keeps.
const STATEMENT_CACHE: usize = 128;

/// Opens `path` for reading and writing with WAL and synchronous commits.
///
/// `synchronous = FULL` makes every commit durable before it returns, also against power loss,
/// not only against the process being killed. `busy_timeout` covers the CLI writing to the
/// same file as a running server.
pub fn open_connection(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // The writer alone runs more distinct statements than rusqlite's default of 16 (a usage
    // batch uses 11); an evicted one is compiled again on its next use.
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

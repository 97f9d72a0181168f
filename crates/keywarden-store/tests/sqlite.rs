//! What only the SQLite store has to get right: its file format. The store contract itself
//! is tested against every backend in `tests/store`.

use keywarden_store::SqliteStore;
use keywarden_store::sqlite::SqliteOpenError;

#[test]
fn a_database_from_a_newer_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kw.db");
    drop(SqliteStore::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 999).unwrap();
    drop(conn);
    match SqliteStore::open(&path) {
        Err(SqliteOpenError::TooNew { found, .. }) => assert_eq!(found, 999),
        Err(e) => panic!("unexpected error: {e}"),
        Ok(_) => panic!("a newer schema was accepted"),
    }
}

//! Read connections: WAL lets readers run beside the writer, each on a blocking thread.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use super::connection::open_connection;

/// Idle connections kept for reuse; more are opened under load and closed afterwards.
const MAX_IDLE: usize = 8;

#[derive(Clone)]
pub struct Readers {
    path: Arc<PathBuf>,
    idle: Arc<Mutex<Vec<Connection>>>,
}

impl Readers {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path: Arc::new(path),
            idle: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// The database file the connections read.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Runs `f` on a read connection on a blocking thread.
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> rusqlite::Result<T> {
        let readers = self.clone();
        tokio::task::spawn_blocking(move || {
            let conn = match readers.take_idle() {
                Some(conn) => conn,
                None => open_connection(&readers.path)?,
            };
            let result = f(&conn);
            readers.put_back(conn);
            result
        })
        .await
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?
    }

    fn take_idle(&self) -> Option<Connection> {
        self.idle.lock().ok()?.pop()
    }

    fn put_back(&self, conn: Connection) {
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_IDLE
        {
            idle.push(conn);
        }
    }
}

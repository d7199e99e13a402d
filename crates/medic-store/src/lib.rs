//! SQLite store: incidents, executions with idempotency keys, checkpoints, hash-chained audit log.
//!
//! One [`Store`] wraps one connection behind a mutex: every method is a short synchronous
//! transaction, cheap enough to call from async code directly. Several `Store`s (or
//! processes) may open the same file: WAL mode plus `BEGIN IMMEDIATE` on every write that
//! reads first keeps the audit chain and the idempotency ledger consistent.

mod approvals;
mod audit;
pub mod checkpoint;
mod error;
mod executions;
mod incidents;
mod kv;
mod schema;
#[doc(hidden)]
pub mod testing;
mod verifications;

pub use audit::AuditReport;
pub use error::StoreError;
pub use executions::BeginOutcome;

use rusqlite::Connection;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// How long a writer waits for another writer (another `Store` or process) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Store {
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if absent) the store at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open(path).map_err(open_err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        // The first statement is what reads the file header, so a non-SQLite or truncated
        // file fails here, and the error names the path.
        let _mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(open_err)?;
        schema::migrate(&conn, &path.display().to_string())?;
        Ok(Store {
            conn: Mutex::new(conn),
        })
    }

    /// A private, non-persistent store (tests, `--dry-run`).
    pub fn open_in_memory() -> Result<Store, StoreError> {
        let conn = Connection::open_in_memory().map_err(|source| StoreError::Open {
            path: ":memory:".into(),
            source,
        })?;
        schema::migrate(&conn, ":memory:")?;
        Ok(Store {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves no half-done work behind: an open rusqlite
        // transaction rolls back when dropped. So a poisoned lock is safe to reuse.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Milliseconds and sequence numbers are `i64` in SQLite.
fn to_sql_int(v: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Corrupt {
        what: what.to_string(),
        detail: format!("{v} does not fit in a signed 64-bit integer"),
    })
}

#[cfg(test)]
mod tests;

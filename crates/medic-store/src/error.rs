use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open store {} (expected an SQLite database medic can write): {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "store {path} has schema version {found}, newer than version {supported} that this medic understands; use a newer medic or another store file"
    )]
    NewerSchema {
        path: String,
        found: i64,
        supported: i64,
    },
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored value that cannot be read back as what it should be.
    #[error("corrupt {what} in store: {detail}")]
    Corrupt { what: String, detail: String },
    #[error("cannot encode {what} as JSON: {source}")]
    Encode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// Appending would hide tampering: the head anchor is gone but records remain.
    #[error(
        "audit log head anchor (table audit_head) is missing while the log holds {records} records; refusing to append, verify the audit log"
    )]
    AuditHeadMissing { records: u64 },
    #[error("no execution with idempotency key {0:?}; begin_execution must come first")]
    UnknownExecution(String),
}

//! Schema, versioned with `PRAGMA user_version`: each step upgrades from the version before it.

use crate::StoreError;
use rusqlite::Connection;

/// The version this code writes. Add a step to `STEPS` and bump this for every change.
pub const SCHEMA_VERSION: i64 = 4;

pub(crate) const STEPS: [&str; 4] = [
    r#"
CREATE TABLE IF NOT EXISTS audit (
    seq       INTEGER PRIMARY KEY,
    ts        INTEGER NOT NULL,
    kind      TEXT NOT NULL,
    incident  TEXT,
    payload   TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_by_incident ON audit(incident, seq);
-- Tamper-evident anchor for the chain's tip: deleting the last records leaves a valid-looking
-- shorter chain, which only this row contradicts.
CREATE TABLE IF NOT EXISTS audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS incidents (
    id      TEXT PRIMARY KEY,
    state   TEXT NOT NULL,
    opened  INTEGER NOT NULL,
    updated INTEGER NOT NULL,
    body    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS incidents_by_opened ON incidents(opened, id);
CREATE INDEX IF NOT EXISTS incidents_by_state ON incidents(state);
CREATE TABLE IF NOT EXISTS executions (
    idempotency_key TEXT PRIMARY KEY,
    incident        TEXT NOT NULL,
    attempt         INTEGER NOT NULL,
    action          TEXT NOT NULL,
    started         INTEGER NOT NULL,
    finished        INTEGER,
    status          TEXT NOT NULL,
    detail          TEXT NOT NULL,
    policy          TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS executions_by_started ON executions(started);
CREATE TABLE IF NOT EXISTS kv (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"#,
    r#"
-- The audit log is append-only: the store refuses to change or remove a record, and the head
-- anchor only ever moves one record forward. (Someone who can write the file can drop these
-- triggers; signed checkpoints outside the file catch what they do then.)
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_head_forward BEFORE UPDATE ON audit_head
WHEN NEW.seq != OLD.seq + 1
BEGIN SELECT RAISE(ABORT, 'the audit head only moves one record forward'); END;
CREATE TRIGGER IF NOT EXISTS audit_head_no_delete BEFORE DELETE ON audit_head
BEGIN SELECT RAISE(ABORT, 'the audit head anchor cannot be removed'); END;
"#,
    r#"
-- A person's answer to an approval request: one per incident, never changed.
CREATE TABLE IF NOT EXISTS approvals (
    incident TEXT PRIMARY KEY,
    approved INTEGER NOT NULL,
    by_whom  TEXT NOT NULL,
    role     TEXT NOT NULL,
    reason   TEXT NOT NULL,
    at       INTEGER NOT NULL
);
-- The kill switch: a row while medic is paused.
CREATE TABLE IF NOT EXISTS pause (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    by_whom TEXT NOT NULL,
    reason  TEXT NOT NULL,
    at      INTEGER NOT NULL
);
"#,
    r#"
-- What each verification found (the window, each symptom's before/after test, checks,
-- rollout) and its verdict: one per incident and attempt.
CREATE TABLE IF NOT EXISTS verifications (
    incident   TEXT NOT NULL,
    attempt    INTEGER NOT NULL,
    verdict    TEXT NOT NULL,
    decided_at INTEGER NOT NULL,
    body       TEXT NOT NULL,
    PRIMARY KEY (incident, attempt)
);
CREATE INDEX IF NOT EXISTS verifications_by_verdict ON verifications(verdict, decided_at);
"#,
];

pub fn migrate(conn: &Connection, path: &str) -> Result<(), StoreError> {
    // Immediate: two processes opening a fresh file at once must not both run the steps.
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = migrate_locked(conn, path);
    match result {
        Ok(()) => conn.execute_batch("COMMIT")?,
        Err(_) => {
            let _ = conn.execute_batch("ROLLBACK");
        }
    }
    result
}

fn migrate_locked(conn: &Connection, path: &str) -> Result<(), StoreError> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            path: path.to_string(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found < 0 {
        return Err(StoreError::Corrupt {
            what: "schema version".into(),
            detail: format!("{path} has user_version {found}, expected 0..={SCHEMA_VERSION}"),
        });
    }
    for step in STEPS.iter().skip(found as usize) {
        conn.execute_batch(step)?;
    }
    if found != SCHEMA_VERSION {
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    }
    Ok(())
}

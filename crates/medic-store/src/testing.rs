//! Tampering helpers for tests that check `verify_audit` from outside this crate (the CLI's
//! end-to-end tests). medic itself never calls these.

use crate::StoreError;
use std::path::Path;

/// What someone who can write the file does first: drop the append-only triggers.
pub const DROP_GUARDS: &str = "DROP TRIGGER IF EXISTS audit_no_update;
 DROP TRIGGER IF EXISTS audit_no_delete;
 DROP TRIGGER IF EXISTS audit_head_forward;
 DROP TRIGGER IF EXISTS audit_head_no_delete;";

/// Rewrites the payload of audit record `seq` in place, as an attacker with file access would.
pub fn tamper_payload(path: &Path, seq: u64) -> Result<(), StoreError> {
    let conn = rusqlite::Connection::open(path)?;
    conn.execute_batch(DROP_GUARDS)?;
    let changed = conn.execute(
        "UPDATE audit SET payload = replace(payload, '\"', '''') WHERE seq = ?1",
        [seq as i64],
    )?;
    if changed == 1 {
        Ok(())
    } else {
        Err(StoreError::Corrupt {
            what: format!("audit record {seq}"),
            detail: "no such record to tamper with".into(),
        })
    }
}

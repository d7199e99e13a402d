//! Tampering helpers for tests that check `verify_audit` from outside this crate (the CLI's
//! end-to-end tests). medic itself never calls these.

use crate::StoreError;
use std::path::Path;

/// Rewrites the payload of audit record `seq` in place, as an attacker with file access would.
pub fn tamper_payload(path: &Path, seq: u64) -> Result<(), StoreError> {
    let conn = rusqlite::Connection::open(path)?;
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

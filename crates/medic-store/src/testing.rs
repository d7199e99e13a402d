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

/// Rebuilds the whole chain, anchor included, with `edit` applied to each record's payload —
/// what someone who can write the file but does not hold the signing key can do. The result
/// passes `verify_audit`; only signed checkpoints contradict it.
pub fn rewrite_chain(path: &Path, edit: impl Fn(u64, &str) -> String) -> Result<(), StoreError> {
    let records = crate::Store::open(path)?.audit_records()?;
    let conn = rusqlite::Connection::open(path)?;
    conn.execute_batch(DROP_GUARDS)?;
    let mut prev = medic_core::audit::GENESIS_HASH.to_string();
    for r in &records {
        let payload = edit(r.seq, &r.payload);
        let hash = medic_core::AuditRecord::compute_hash(
            r.seq,
            r.ts,
            &r.kind,
            r.incident.as_deref(),
            &payload,
            &prev,
        );
        conn.execute(
            "UPDATE audit SET payload = ?1, prev_hash = ?2, hash = ?3 WHERE seq = ?4",
            rusqlite::params![payload, prev, hash, r.seq as i64],
        )?;
        prev = hash;
    }
    conn.execute("UPDATE audit_head SET hash = ?1", [prev])?;
    Ok(())
}

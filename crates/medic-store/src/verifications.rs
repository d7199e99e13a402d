//! Verification results as typed records: one per incident and attempt, the whole
//! `VerificationRecord` as JSON beside indexed columns (verdict, when).

use crate::{Store, StoreError};
use medic_core::VerificationRecord;
use rusqlite::params;

impl Store {
    /// Records a verification's result; a second result for the same attempt (a
    /// verification re-run after a restart of medic) replaces the first.
    pub fn record_verification(&self, v: &VerificationRecord) -> Result<(), StoreError> {
        let body = serde_json::to_string(v).map_err(|source| StoreError::Encode {
            what: "verification",
            source,
        })?;
        self.conn().execute(
            "INSERT INTO verifications (incident, attempt, verdict, decided_at, body)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(incident, attempt) DO UPDATE SET verdict = excluded.verdict,
                 decided_at = excluded.decided_at, body = excluded.body",
            params![
                v.incident,
                v.attempt,
                v.verdict.as_str(),
                v.decided_at.0,
                body
            ],
        )?;
        Ok(())
    }

    /// Every verification of an incident, first attempt first.
    pub fn verifications(&self, incident: &str) -> Result<Vec<VerificationRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT attempt, body FROM verifications WHERE incident = ?1 ORDER BY attempt",
        )?;
        let rows = stmt.query_map([incident], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (attempt, body) = row?;
            out.push(
                serde_json::from_str(&body).map_err(|e| StoreError::Corrupt {
                    what: format!("verification of {incident} attempt {attempt}"),
                    detail: e.to_string(),
                })?,
            );
        }
        Ok(out)
    }

    /// The latest verification of an incident.
    pub fn verification(&self, incident: &str) -> Result<Option<VerificationRecord>, StoreError> {
        Ok(self.verifications(incident)?.pop())
    }
}

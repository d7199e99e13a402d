//! Approvals and the kill switch as typed records: a person's answer to an incident's
//! approval request (one per incident, never changed), and whether medic is paused.

use crate::{Store, StoreError};
use medic_core::{Approval, AuditEvent, Pause, Ts};
use rusqlite::{OptionalExtension, params};

impl Store {
    /// A person's answer, recorded and audited (with who, their role and why). False when
    /// the incident was already answered: the first answer stands, nothing is written.
    pub fn answer_approval(&self, a: &Approval) -> Result<bool, StoreError> {
        if !self.record_approval(a)? {
            return Ok(false);
        }
        self.append_audit(
            a.at,
            &AuditEvent::ApprovalAnswered {
                incident: a.incident.clone(),
                approved: a.approved,
                by: a.by.clone(),
                role: a.role.clone(),
                reason: a.reason.clone(),
            },
        )?;
        Ok(true)
    }

    /// The kill switch on, audited.
    pub fn pause_actions(&self, p: &Pause) -> Result<(), StoreError> {
        self.set_pause(Some(p))?;
        self.append_audit(
            p.at,
            &AuditEvent::Paused {
                by: p.by.clone(),
                reason: p.reason.clone(),
            },
        )?;
        Ok(())
    }

    /// The kill switch off, audited; None (and nothing written) when it was not on.
    pub fn resume_actions(
        &self,
        by: &str,
        reason: &str,
        at: Ts,
    ) -> Result<Option<Pause>, StoreError> {
        let Some(was) = self.set_pause(None)? else {
            return Ok(None);
        };
        self.append_audit(
            at,
            &AuditEvent::Resumed {
                by: by.to_string(),
                reason: reason.to_string(),
            },
        )?;
        Ok(Some(was))
    }

    /// Records an answer. False when the incident already has one (the first answer stands).
    pub fn record_approval(&self, a: &Approval) -> Result<bool, StoreError> {
        let changed = self.conn().execute(
            "INSERT INTO approvals (incident, approved, by_whom, role, reason, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(incident) DO NOTHING",
            params![a.incident, a.approved, a.by, a.role, a.reason, a.at.0],
        )?;
        Ok(changed == 1)
    }

    pub fn approval(&self, incident: &str) -> Result<Option<Approval>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT incident, approved, by_whom, role, reason, at FROM approvals WHERE incident = ?1",
                [incident],
                |r| {
                    Ok(Approval {
                        incident: r.get(0)?,
                        approved: r.get(1)?,
                        by: r.get(2)?,
                        role: r.get(3)?,
                        reason: r.get(4)?,
                        at: Ts(r.get(5)?),
                    })
                },
            )
            .optional()?)
    }

    /// Turns the kill switch on (Some) or off (None). Returns what was in force before.
    pub fn set_pause(&self, pause: Option<&Pause>) -> Result<Option<Pause>, StoreError> {
        let before = self.pause()?;
        let conn = self.conn();
        match pause {
            Some(p) => conn.execute(
                "INSERT INTO pause (id, by_whom, reason, at) VALUES (1, ?1, ?2, ?3)
                 ON CONFLICT(id) DO UPDATE SET by_whom = excluded.by_whom, reason = excluded.reason, at = excluded.at",
                params![p.by, p.reason, p.at.0],
            )?,
            None => conn.execute("DELETE FROM pause", [])?,
        };
        Ok(before)
    }

    pub fn pause(&self) -> Result<Option<Pause>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT by_whom, reason, at FROM pause WHERE id = 1",
                [],
                |r| {
                    Ok(Pause {
                        by: r.get(0)?,
                        reason: r.get(1)?,
                        at: Ts(r.get(2)?),
                    })
                },
            )
            .optional()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_answer_stands_and_the_pause_survives_a_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.db");
        let store = Store::open(&path).expect("store");
        let a = Approval {
            incident: "inc-1".into(),
            approved: true,
            by: "alice".into(),
            role: "approver".into(),
            reason: "checked the dashboard".into(),
            at: Ts(5),
        };
        assert!(store.record_approval(&a).expect("record"));
        let late = Approval {
            approved: false,
            by: "bob".into(),
            ..a.clone()
        };
        assert!(!store.record_approval(&late).expect("record"));
        assert_eq!(store.approval("inc-1").expect("read"), Some(a));
        assert_eq!(store.approval("inc-2").expect("read"), None);
        let p = Pause {
            by: "carol".into(),
            reason: "maintenance".into(),
            at: Ts(9),
        };
        assert_eq!(store.set_pause(Some(&p)).expect("pause"), None);
        drop(store);
        let store = Store::open(&path).expect("reopen");
        assert_eq!(store.pause().expect("read"), Some(p.clone()));
        assert_eq!(store.set_pause(None).expect("resume"), Some(p));
        assert_eq!(store.pause().expect("read"), None);
    }
}

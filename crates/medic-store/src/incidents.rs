//! Incidents: the whole `Incident` as JSON, plus indexed columns to find them.

use crate::{Store, StoreError};
use medic_core::{Incident, IncidentState};
use rusqlite::{OptionalExtension, params};

impl Store {
    /// Inserts or replaces the incident with this id.
    pub fn save_incident(&self, incident: &Incident) -> Result<(), StoreError> {
        let body = serde_json::to_string(incident).map_err(|source| StoreError::Encode {
            what: "incident",
            source,
        })?;
        self.conn().execute(
            "INSERT INTO incidents (id, state, opened, updated, body) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(id) DO UPDATE SET state = excluded.state, opened = excluded.opened,
                 updated = excluded.updated, body = excluded.body",
            params![
                incident.id,
                incident.state.as_str(),
                incident.opened.0,
                incident.updated.0,
                body
            ],
        )?;
        Ok(())
    }

    pub fn incident(&self, id: &str) -> Result<Option<Incident>, StoreError> {
        let body: Option<String> = self
            .conn()
            .query_row("SELECT body FROM incidents WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?;
        body.map(|b| decode(id, &b)).transpose()
    }

    /// Every incident, oldest first.
    pub fn incidents(&self) -> Result<Vec<Incident>, StoreError> {
        self.select("SELECT id, body FROM incidents ORDER BY opened, id", &[])
    }

    /// Incidents not yet resolved, escalated or closed, oldest first.
    pub fn active_incidents(&self) -> Result<Vec<Incident>, StoreError> {
        let terminal: Vec<&str> = IncidentState::ALL
            .iter()
            .filter(|s| s.is_terminal())
            .map(|s| s.as_str())
            .collect();
        let placeholders = vec!["?"; terminal.len()].join(", ");
        let sql = format!(
            "SELECT id, body FROM incidents WHERE state NOT IN ({placeholders}) ORDER BY opened, id"
        );
        self.select(&sql, &terminal)
    }

    fn select(&self, sql: &str, args: &[&str]) -> Result<Vec<Incident>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(args), |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        rows.map(|row| {
            let (id, body) = row?;
            decode(&id, &body)
        })
        .collect()
    }
}

fn decode(id: &str, body: &str) -> Result<Incident, StoreError> {
    serde_json::from_str(body).map_err(|e| StoreError::Corrupt {
        what: format!("incident {id:?}"),
        detail: format!("body is not an incident as JSON: {e}"),
    })
}

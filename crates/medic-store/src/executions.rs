//! Executions: the idempotency ledger. An execution is recorded (pending) before the actuator
//! is called, keyed by its idempotency key, so a restarted medic finds it instead of acting
//! twice.

use crate::{Store, StoreError};
use medic_core::{Action, Execution, ExecutionStatus, Ts};
use rusqlite::{OptionalExtension, TransactionBehavior, params};

#[derive(Clone, Debug, PartialEq)]
pub enum BeginOutcome {
    /// Recorded now: go ahead and call the actuator.
    New,
    /// This key was recorded before: do not act again; here is what was recorded.
    Existing(Box<Execution>),
}

const COLUMNS: &str =
    "idempotency_key, incident, attempt, action, started, finished, status, detail, policy";

impl Store {
    /// Inserts the execution unless its idempotency key is already present.
    pub fn begin_execution(&self, execution: &Execution) -> Result<BeginOutcome, StoreError> {
        let action =
            serde_json::to_string(&execution.action).map_err(|source| StoreError::Encode {
                what: "action",
                source,
            })?;
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let inserted = tx.execute(
            &format!(
                "INSERT INTO executions ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT(idempotency_key) DO NOTHING"
            ),
            params![
                execution.idempotency_key,
                execution.incident,
                execution.attempt,
                action,
                execution.started.0,
                execution.finished.map(|t| t.0),
                status_str(execution.status),
                execution.detail,
                execution.policy
            ],
        )?;
        let outcome = if inserted == 1 {
            BeginOutcome::New
        } else {
            let existing = tx
                .query_row(
                    &format!("SELECT {COLUMNS} FROM executions WHERE idempotency_key = ?1"),
                    [&execution.idempotency_key],
                    read_row,
                )?
                .and_then_decode()?;
            BeginOutcome::Existing(Box::new(existing))
        };
        tx.commit()?;
        Ok(outcome)
    }

    /// Records how an execution ended.
    pub fn finish_execution(
        &self,
        key: &str,
        status: ExecutionStatus,
        detail: &str,
        at: Ts,
    ) -> Result<(), StoreError> {
        let updated = self.conn().execute(
            "UPDATE executions SET status = ?2, detail = ?3, finished = ?4
             WHERE idempotency_key = ?1",
            params![key, status_str(status), detail, at.0],
        )?;
        if updated == 0 {
            return Err(StoreError::UnknownExecution(key.to_string()));
        }
        Ok(())
    }

    pub fn execution(&self, key: &str) -> Result<Option<Execution>, StoreError> {
        let row = self
            .conn()
            .query_row(
                &format!("SELECT {COLUMNS} FROM executions WHERE idempotency_key = ?1"),
                [key],
                read_row,
            )
            .optional()?;
        row.map(RawExecution::and_then_decode).transpose()
    }

    /// Executions started at or after `since`, oldest first (the guards' history).
    pub fn executions_since(&self, since: Ts) -> Result<Vec<Execution>, StoreError> {
        self.select_executions("started >= ?1", since.0)
    }

    /// Every execution of one incident, oldest first.
    pub fn executions_for(&self, incident: &str) -> Result<Vec<Execution>, StoreError> {
        self.select_executions("incident = ?1", incident)
    }

    fn select_executions(
        &self,
        condition: &str,
        arg: impl rusqlite::ToSql,
    ) -> Result<Vec<Execution>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM executions WHERE {condition} ORDER BY started, idempotency_key"
        ))?;
        let rows = stmt.query_map([arg], read_row)?;
        rows.map(|r| r?.and_then_decode()).collect()
    }
}

fn status_str(s: ExecutionStatus) -> &'static str {
    match s {
        ExecutionStatus::Pending => "pending",
        ExecutionStatus::Succeeded => "succeeded",
        ExecutionStatus::Failed => "failed",
    }
}

fn parse_status(s: &str) -> Option<ExecutionStatus> {
    [
        ExecutionStatus::Pending,
        ExecutionStatus::Succeeded,
        ExecutionStatus::Failed,
    ]
    .into_iter()
    .find(|st| status_str(*st) == s)
}

/// A row as stored, before the JSON and enum columns are decoded.
struct RawExecution {
    key: String,
    incident: String,
    attempt: i64,
    action: String,
    started: i64,
    finished: Option<i64>,
    status: String,
    detail: String,
    policy: String,
}

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawExecution> {
    Ok(RawExecution {
        key: r.get(0)?,
        incident: r.get(1)?,
        attempt: r.get(2)?,
        action: r.get(3)?,
        started: r.get(4)?,
        finished: r.get(5)?,
        status: r.get(6)?,
        detail: r.get(7)?,
        policy: r.get(8)?,
    })
}

impl RawExecution {
    fn and_then_decode(self) -> Result<Execution, StoreError> {
        let corrupt = |detail: String| StoreError::Corrupt {
            what: format!("execution {:?}", self.key),
            detail,
        };
        let action: Action = serde_json::from_str(&self.action)
            .map_err(|e| corrupt(format!("action is not an action as JSON: {e}")))?;
        let status = parse_status(&self.status).ok_or_else(|| {
            corrupt(format!(
                "status {:?}, expected pending, succeeded or failed",
                self.status
            ))
        })?;
        let attempt = u32::try_from(self.attempt)
            .map_err(|_| corrupt(format!("attempt {} is not a u32", self.attempt)))?;
        Ok(Execution {
            idempotency_key: self.key,
            incident: self.incident,
            attempt,
            action,
            started: Ts(self.started),
            finished: self.finished.map(Ts),
            status,
            detail: self.detail,
            policy: self.policy,
        })
    }
}

//! The hash-chained audit log and its verification.

use crate::{Store, StoreError, to_sql_int};
use medic_core::audit::GENESIS_HASH;
use medic_core::{AuditEvent, AuditRecord, Ts};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};

/// What [`Store::verify_audit`] found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditReport {
    /// Records read (whether or not they verified).
    pub records: u64,
    /// The first broken record's seq (or the seq where one is missing) and why.
    pub broken: Option<(u64, String)>,
}

impl AuditReport {
    pub fn is_intact(&self) -> bool {
        self.broken.is_none()
    }
}

const COLUMNS: &str = "seq, ts, kind, incident, payload, prev_hash, hash";

impl Store {
    /// Appends one event, chained to the head anchor, in one `BEGIN IMMEDIATE` transaction so
    /// that concurrent writers (other `Store`s, other processes) serialise.
    pub fn append_audit(&self, ts: Ts, event: &AuditEvent) -> Result<AuditRecord, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Chain from the anchor, not from the last row: if the last rows were deleted, the new
        // record then points at a hash that is no longer there, and verification sees the gap.
        let head = read_head(&tx)?;
        if head.is_none() {
            let records: i64 = tx.query_row("SELECT COUNT(*) FROM audit", [], |r| r.get(0))?;
            if records > 0 {
                return Err(StoreError::AuditHeadMissing {
                    records: records.unsigned_abs(),
                });
            }
        }
        let record = chain_after(head, ts, event);
        let seq = to_sql_int(record.seq, "audit seq")?;
        tx.execute(
            "INSERT INTO audit (seq, ts, kind, incident, payload, prev_hash, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                seq,
                record.ts.0,
                record.kind,
                record.incident,
                record.payload,
                record.prev_hash,
                record.hash
            ],
        )?;
        tx.execute(
            "INSERT INTO audit_head (id, seq, hash) VALUES (1, ?1, ?2)
             ON CONFLICT(id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
            params![seq, record.hash],
        )?;
        tx.commit()?;
        Ok(record)
    }

    /// Every record, in seq order.
    pub fn audit_records(&self) -> Result<Vec<AuditRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM audit ORDER BY seq"))?;
        let rows = stmt.query_map([], raw_row)?;
        rows.map(|row| parse_row(row?).map_err(|(seq, detail)| corrupt(seq, detail)))
            .collect()
    }

    /// The records of one incident, in seq order.
    pub fn audit_records_for(&self, incident: &str) -> Result<Vec<AuditRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM audit WHERE incident = ?1 ORDER BY seq"
        ))?;
        let rows = stmt.query_map([incident], raw_row)?;
        rows.map(|row| parse_row(row?).map_err(|(seq, detail)| corrupt(seq, detail)))
            .collect()
    }

    /// (seq, hash) of every record that has them, in seq order (for checkpoint checks).
    pub(crate) fn audit_records_raw(&self) -> Result<Vec<(u64, String)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT seq, hash FROM audit ORDER BY seq")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, Value>(0)?, r.get::<_, Value>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            if let (Value::Integer(s), Value::Text(h)) = row?
                && let Ok(s) = u64::try_from(s)
            {
                out.push((s, h));
            }
        }
        Ok(out)
    }

    /// Walks the whole chain and checks it against the head anchor. Tampering is reported in
    /// the [`AuditReport`], not as an error; errors are for a store that cannot be read at all.
    pub fn verify_audit(&self) -> Result<AuditReport, StoreError> {
        let conn = self.conn();
        // A read transaction: one consistent snapshot even while another process appends.
        let tx = conn.unchecked_transaction()?;
        let report = verify_locked(&tx)?;
        tx.commit()?;
        Ok(report)
    }
}

/// The record that follows the chain tip `head` (seq, hash), or the first record.
fn chain_after(head: Option<(u64, String)>, ts: Ts, event: &AuditEvent) -> AuditRecord {
    let mut record = AuditRecord::chain(None, ts, event);
    if let Some((seq, hash)) = head {
        record.seq = seq.saturating_add(1);
        record.prev_hash = hash;
        record.hash = AuditRecord::compute_hash(
            record.seq,
            record.ts,
            &record.kind,
            record.incident.as_deref(),
            &record.payload,
            &record.prev_hash,
        );
    }
    record
}

pub(crate) fn read_head(conn: &Connection) -> Result<Option<(u64, String)>, StoreError> {
    let head: Option<(Value, Value)> = conn
        .query_row("SELECT seq, hash FROM audit_head WHERE id = 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    match head {
        None => Ok(None),
        Some((Value::Integer(seq), Value::Text(hash))) if seq > 0 => {
            Ok(Some((seq.unsigned_abs(), hash)))
        }
        Some((seq, hash)) => Err(StoreError::Corrupt {
            what: "audit head anchor".into(),
            detail: format!(
                "expected a positive integer seq and a text hash, found {seq:?} and {hash:?}"
            ),
        }),
    }
}

type RawRow = [Value; 7];

fn raw_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawRow> {
    Ok([
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
    ])
}

fn corrupt(seq: Option<i64>, detail: String) -> StoreError {
    StoreError::Corrupt {
        what: match seq {
            Some(s) => format!("audit record {s}"),
            None => "audit record".into(),
        },
        detail,
    }
}

/// Reads a row column by column, so that a value of the wrong type (someone edited it by
/// hand) is reported as tampering rather than aborting the whole read. The error carries the
/// raw seq when there is one.
fn parse_row(row: RawRow) -> Result<AuditRecord, (Option<i64>, String)> {
    let [seq, ts, kind, incident, payload, prev_hash, hash] = row;
    let raw_seq = match seq {
        Value::Integer(s) => s,
        other => return Err((None, format!("seq holds {other:?}, expected an integer"))),
    };
    let fail = |column: &str, found: &Value, expected: &str| {
        (
            Some(raw_seq),
            format!("column {column} holds {found:?}, expected {expected}"),
        )
    };
    let seq = u64::try_from(raw_seq)
        .ok()
        .filter(|s| *s > 0)
        .ok_or_else(|| fail("seq", &Value::Integer(raw_seq), "a positive integer"))?;
    let text = |column: &str, v: Value| match v {
        Value::Text(t) => Ok(t),
        other => Err(fail(column, &other, "text")),
    };
    let ts = match ts {
        Value::Integer(t) => Ts(t),
        other => return Err(fail("ts", &other, "an integer")),
    };
    let incident = match incident {
        Value::Null => None,
        Value::Text(t) => Some(t),
        other => return Err(fail("incident", &other, "text or null")),
    };
    Ok(AuditRecord {
        seq,
        ts,
        kind: text("kind", kind)?,
        incident,
        payload: text("payload", payload)?,
        prev_hash: text("prev_hash", prev_hash)?,
        hash: text("hash", hash)?,
    })
}

fn verify_locked(conn: &Connection) -> Result<AuditReport, StoreError> {
    let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM audit ORDER BY seq"))?;
    let mut rows = stmt.query([])?;
    let mut records = 0u64;
    let mut broken: Option<(u64, String)> = None;
    let mut tip: Option<(u64, String)> = None;
    while let Some(row) = rows.next()? {
        records += 1;
        if broken.is_some() {
            // Keep counting so the report says how many records there are.
            continue;
        }
        let expected_seq = tip.as_ref().map_or(1, |(s, _)| s + 1);
        let record = match parse_row(raw_row(row)?) {
            Ok(r) => r,
            Err((raw_seq, why)) => {
                let at = raw_seq
                    .and_then(|s| u64::try_from(s).ok())
                    .filter(|s| *s > 0)
                    .unwrap_or(expected_seq);
                broken = Some((at, format!("record {at} is malformed: {why}")));
                continue;
            }
        };
        broken = check_link(&record, expected_seq, tip.as_ref());
        tip = Some((record.seq, record.hash));
    }
    if broken.is_none() {
        broken = check_head(tip, read_head(conn));
    }
    Ok(AuditReport { records, broken })
}

/// Checks one record against the one before it (`prev`: its seq and hash).
fn check_link(
    record: &AuditRecord,
    expected_seq: u64,
    prev: Option<&(u64, String)>,
) -> Option<(u64, String)> {
    if record.seq != expected_seq {
        // Rows come in seq order, so a mismatch means a gap: the expected record is gone (or
        // its seq was changed to a later value).
        return Some((
            expected_seq,
            format!(
                "record {expected_seq} is missing: the next record is {} (deleted, inserted or seq changed)",
                record.seq
            ),
        ));
    }
    let expected_prev = prev.map_or(GENESIS_HASH, |(_, h)| h.as_str());
    if record.prev_hash != expected_prev {
        return Some((
            record.seq,
            format!(
                "record {} does not link to the record before it (inserted, reordered, or the previous record was edited)",
                record.seq
            ),
        ));
    }
    if !record.hash_is_valid() {
        return Some((
            record.seq,
            format!(
                "record {} was edited: its hash does not match its contents",
                record.seq
            ),
        ));
    }
    None
}

/// Compares the chain's tip with the head anchor.
fn check_head(
    tip: Option<(u64, String)>,
    head: Result<Option<(u64, String)>, StoreError>,
) -> Option<(u64, String)> {
    let tip_seq = tip.as_ref().map_or(0, |(s, _)| *s);
    let head = match head {
        Ok(h) => h,
        Err(e) => return Some((tip_seq.max(1), format!("head anchor unreadable: {e}"))),
    };
    match (tip, head) {
        (None, None) => None,
        (Some((seq, _)), None) => Some((
            seq,
            "the head anchor (audit_head) is missing: the log's tip cannot be checked".into(),
        )),
        (tip, Some((head_seq, head_hash))) => {
            if head_seq > tip_seq {
                let first_missing = tip_seq + 1;
                Some((
                    first_missing,
                    format!(
                        "records {first_missing}..={head_seq} are missing: the log ends at {tip_seq} but the head anchor says {head_seq}"
                    ),
                ))
            } else if head_seq < tip_seq {
                let first_extra = head_seq + 1;
                Some((
                    first_extra,
                    format!(
                        "record {first_extra} was added outside medic: the head anchor says the log ends at {head_seq}"
                    ),
                ))
            } else if tip.is_some_and(|(_, h)| h != head_hash) {
                Some((
                    tip_seq,
                    format!(
                        "record {tip_seq} does not match the head anchor's hash (the tip was replaced)"
                    ),
                ))
            } else {
                None
            }
        }
    }
}

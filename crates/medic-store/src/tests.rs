use super::*;
use medic_core::audit::GENESIS_HASH;
use medic_core::{
    Action, ActionKind, AuditEvent, AuditRecord, Execution, ExecutionStatus, Finding, FindingKind,
    Incident, IncidentState, Ts, verify_chain,
};
use std::path::PathBuf;
use tempfile::TempDir;

fn event(i: usize) -> AuditEvent {
    AuditEvent::IncidentClosed {
        incident: format!("inc-{}", i % 3),
        reason: format!("reason {i}"),
    }
}

/// A store file with `n` audit records, and a raw connection to tamper with it.
fn store_with(n: usize) -> (TempDir, PathBuf, Store) {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("medic.db");
    let store = Store::open(&path).unwrap();
    for i in 0..n {
        store.append_audit(Ts(1_000 + i as i64), &event(i)).unwrap();
    }
    (dir, path, store)
}

/// Tampers as someone who can write the file would: the append-only triggers go first.
fn tamper(path: &Path, sql: &str) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(crate::testing::DROP_GUARDS).unwrap();
    conn.execute_batch(sql).unwrap();
}

fn broken_at(store: &Store) -> (u64, String) {
    let report = store.verify_audit().unwrap();
    report.broken.expect("tampering went unnoticed")
}

#[test]
fn appended_records_chain_and_verify() {
    let (_dir, _path, store) = store_with(5);
    let records = store.audit_records().unwrap();
    assert_eq!(
        records.iter().map(|r| r.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    assert_eq!(records[0].prev_hash, GENESIS_HASH);
    assert_eq!(verify_chain(&records), Ok(5));
    let report = store.verify_audit().unwrap();
    assert_eq!(report.records, 5);
    assert!(report.is_intact(), "{report:?}");
    let for_inc0 = store.audit_records_for("inc-0").unwrap();
    assert_eq!(for_inc0.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 4]);
    assert!(store.audit_records_for("nope").unwrap().is_empty());
}

#[test]
fn empty_log_verifies() {
    let store = Store::open_in_memory().unwrap();
    assert_eq!(
        store.verify_audit().unwrap(),
        AuditReport {
            records: 0,
            broken: None
        }
    );
}

#[test]
fn events_without_incident_are_stored_with_null_incident() {
    let store = Store::open_in_memory().unwrap();
    let ev = AuditEvent::AgentStarted {
        version: "0.1".into(),
        config_digest: "abc".into(),
    };
    let rec = store.append_audit(Ts(5), &ev).unwrap();
    assert_eq!(rec.incident, None);
    assert_eq!(store.audit_records().unwrap(), vec![rec]);
    assert!(store.verify_audit().unwrap().is_intact());
}

#[test]
fn chain_survives_reopen() {
    let (_dir, path, store) = store_with(3);
    drop(store);
    let store = Store::open(&path).unwrap();
    let rec = store.append_audit(Ts(9), &event(9)).unwrap();
    assert_eq!(rec.seq, 4);
    assert!(store.verify_audit().unwrap().is_intact());
}

#[test]
fn edit_of_any_column_is_caught_at_that_record() {
    for (column, value) in [
        ("ts", "12345"),
        ("kind", "'incident_resolved'"),
        ("incident", "'inc-9'"),
        ("incident", "NULL"),
        ("payload", "'{}'"),
        ("prev_hash", "'00'"),
        ("hash", "'ff'"),
    ] {
        let (_dir, path, store) = store_with(5);
        tamper(
            &path,
            &format!("UPDATE audit SET {column} = {value} WHERE seq = 3"),
        );
        let (seq, why) = broken_at(&store);
        assert_eq!(seq, 3, "{column}: {why}");
    }
}

#[test]
fn edit_with_wrong_type_is_reported_not_an_error() {
    let (_dir, path, store) = store_with(4);
    tamper(&path, "UPDATE audit SET ts = 'yesterday' WHERE seq = 2");
    let (seq, why) = broken_at(&store);
    assert_eq!(seq, 2);
    assert!(why.contains("ts"), "{why}");
    // Reading the records is an error (not a panic) naming the record.
    let err = store.audit_records().unwrap_err().to_string();
    assert!(err.contains("audit record 2"), "{err}");
}

#[test]
fn rehashed_edit_is_caught_at_the_next_record() {
    let (_dir, path, store) = store_with(5);
    let r = &store.audit_records().unwrap()[2];
    let hash = AuditRecord::compute_hash(
        r.seq,
        r.ts,
        &r.kind,
        r.incident.as_deref(),
        "{}",
        &r.prev_hash,
    );
    tamper(
        &path,
        &format!("UPDATE audit SET payload = '{{}}', hash = '{hash}' WHERE seq = 3"),
    );
    assert_eq!(broken_at(&store).0, 4);
}

#[test]
fn deleted_first_middle_and_last_records_are_caught() {
    for (deleted, expected) in [(1, 1), (3, 3), (5, 5)] {
        let (_dir, path, store) = store_with(5);
        tamper(&path, &format!("DELETE FROM audit WHERE seq = {deleted}"));
        let (seq, why) = broken_at(&store);
        assert_eq!(seq, expected, "deleted {deleted}: {why}");
        assert!(why.contains("missing"), "{why}");
    }
}

#[test]
fn deleting_every_record_is_caught_by_the_head_anchor() {
    let (_dir, path, store) = store_with(3);
    tamper(&path, "DELETE FROM audit");
    let report = store.verify_audit().unwrap();
    assert_eq!(report.records, 0);
    assert_eq!(report.broken.unwrap().0, 1);
}

#[test]
fn appending_after_a_deleted_tip_does_not_hide_it() {
    let (_dir, path, store) = store_with(4);
    tamper(&path, "DELETE FROM audit WHERE seq = 4");
    store.append_audit(Ts(99), &event(99)).unwrap();
    assert_eq!(broken_at(&store).0, 4);
}

#[test]
fn deleted_head_anchor_is_caught_and_blocks_appends() {
    let (_dir, path, store) = store_with(3);
    tamper(&path, "DELETE FROM audit_head");
    assert_eq!(broken_at(&store).0, 3);
    let err = store.append_audit(Ts(1), &event(1)).unwrap_err();
    assert!(
        matches!(err, StoreError::AuditHeadMissing { records: 3 }),
        "{err}"
    );
}

#[test]
fn record_appended_outside_medic_is_caught_even_with_a_valid_hash() {
    let (_dir, path, store) = store_with(3);
    let last = store.audit_records().unwrap().pop().unwrap();
    let forged = AuditRecord::chain(Some(&last), Ts(5_000), &event(7));
    tamper(
        &path,
        &format!(
            "INSERT INTO audit VALUES ({}, {}, '{}', '{}', '{}', '{}', '{}')",
            forged.seq,
            forged.ts.0,
            forged.kind,
            forged.incident.as_deref().unwrap_or(""),
            forged.payload.replace('\'', "''"),
            forged.prev_hash,
            forged.hash
        ),
    );
    let (seq, why) = broken_at(&store);
    assert_eq!(seq, 4, "{why}");
}

#[test]
fn record_inserted_in_the_middle_is_caught() {
    let (_dir, path, store) = store_with(5);
    // Make room at seq 3 (shift from the top so the primary key never collides), then forge.
    tamper(
        &path,
        "UPDATE audit SET seq = seq + 100 WHERE seq >= 3;
         UPDATE audit SET seq = seq - 99 WHERE seq >= 103;
         INSERT INTO audit SELECT 3, ts, kind, incident, payload, prev_hash, hash FROM audit WHERE seq = 2;",
    );
    assert_eq!(broken_at(&store).0, 3);
}

#[test]
fn swapped_seq_values_are_caught() {
    let (_dir, path, store) = store_with(5);
    tamper(
        &path,
        "UPDATE audit SET seq = 100 WHERE seq = 2;
         UPDATE audit SET seq = 2 WHERE seq = 3;
         UPDATE audit SET seq = 3 WHERE seq = 100;",
    );
    assert_eq!(broken_at(&store).0, 2);
}

#[test]
fn changed_seq_is_caught() {
    for (new_seq, expected) in [("10", 3), ("-1", 1), ("0", 1)] {
        let (_dir, path, store) = store_with(5);
        tamper(
            &path,
            &format!("UPDATE audit SET seq = {new_seq} WHERE seq = 3"),
        );
        let (seq, why) = broken_at(&store);
        assert_eq!(seq, expected, "seq 3 → {new_seq}: {why}");
    }
}

#[test]
fn only_the_first_broken_record_is_reported() {
    let (_dir, path, store) = store_with(6);
    tamper(
        &path,
        "UPDATE audit SET payload = 'x' WHERE seq = 5; DELETE FROM audit WHERE seq = 2;",
    );
    let report = store.verify_audit().unwrap();
    assert_eq!(report.records, 5);
    assert_eq!(report.broken.unwrap().0, 2);
}

#[test]
fn two_stores_on_one_file_append_without_breaking_the_chain() {
    let (_dir, path, first) = store_with(0);
    let second = Store::open(&path).unwrap();
    let appended = std::thread::scope(|s| {
        let a = s.spawn(|| {
            (0..40)
                .map(|i| first.append_audit(Ts(i), &event(i as usize)).unwrap().seq)
                .collect::<Vec<_>>()
        });
        let b = s.spawn(|| {
            (0..40)
                .map(|i| second.append_audit(Ts(i), &event(i as usize)).unwrap().seq)
                .collect::<Vec<_>>()
        });
        let mut all = a.join().unwrap();
        all.extend(b.join().unwrap());
        all
    });
    let mut seqs = appended;
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=80).collect::<Vec<u64>>());
    let report = Store::open(&path).unwrap().verify_audit().unwrap();
    assert_eq!(report.records, 80);
    assert!(report.is_intact(), "{report:?}");
}

#[test]
fn non_sqlite_file_is_a_clear_error_naming_the_path() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("not-a-db.db");
    std::fs::write(&path, "this is a text file, not a database\n".repeat(200)).unwrap();
    let err = Store::open(&path).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StoreError::Open { .. }), "{msg}");
    assert!(msg.contains("not-a-db.db"), "{msg}");
    assert!(msg.contains("SQLite"), "{msg}");
}

#[test]
fn truncated_store_file_fails_without_panicking() {
    let (_dir, path, store) = store_with(200);
    drop(store);
    // Fold the WAL into the main file, then cut the file in half.
    tamper(&path, "PRAGMA wal_checkpoint(TRUNCATE);");
    let len = std::fs::metadata(&path).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(len / 2).unwrap();
    drop(f);
    match Store::open(&path) {
        Err(e) => assert!(e.to_string().contains("medic.db"), "{e}"),
        Ok(store) => match store.verify_audit() {
            Err(_) => {}
            Ok(report) => assert!(report.broken.is_some(), "{report:?}"),
        },
    }
}

#[test]
fn newer_schema_version_is_refused() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("future.db");
    tamper(&path, "PRAGMA user_version = 99;");
    let err = Store::open(&path).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, StoreError::NewerSchema { found: 99, .. }),
        "{msg}"
    );
    assert!(msg.contains("future.db") && msg.contains("99"), "{msg}");
}

#[test]
fn schema_version_is_recorded() {
    let (_dir, path, _store) = store_with(0);
    let conn = Connection::open(&path).unwrap();
    let v: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, schema::SCHEMA_VERSION);
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

fn finding(service: &str, ts: i64) -> Finding {
    Finding {
        id: format!("f-{service}-{ts}"),
        ts: Ts(ts),
        service: service.into(),
        instance: None,
        kind: FindingKind::ErrorRate,
        detector: "error_rate".into(),
        score: 0.9,
        summary: "errors up".into(),
        evidence: vec![],
    }
}

#[test]
fn incidents_round_trip_and_filter_by_state() {
    let store = Store::open_in_memory().unwrap();
    let mut late = Incident::new(
        "b'; DROP TABLE incidents; --".into(),
        finding("checkout", 300),
    );
    let mut early = Incident::new("a".into(), finding("catalog", 100));
    let mut middle = Incident::new("c".into(), finding("cache", 200));
    store.save_incident(&late).unwrap();
    store.save_incident(&early).unwrap();
    store.save_incident(&middle).unwrap();
    assert_eq!(
        store
            .incident("b'; DROP TABLE incidents; --")
            .unwrap()
            .as_ref(),
        Some(&late)
    );
    assert_eq!(store.incident("missing").unwrap(), None);
    let ids = |v: Vec<Incident>| v.into_iter().map(|i| i.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.incidents().unwrap()),
        ["a", "c", "b'; DROP TABLE incidents; --"]
    );

    early.state = IncidentState::Resolved;
    middle.state = IncidentState::Verifying;
    late.state = IncidentState::Closed;
    late.closing_reason = Some("planned".into());
    for i in [&early, &middle, &late] {
        store.save_incident(i).unwrap();
    }
    assert_eq!(ids(store.active_incidents().unwrap()), ["c"]);
    assert_eq!(store.incidents().unwrap().len(), 3);
    assert_eq!(
        store
            .incident(&late.id)
            .unwrap()
            .unwrap()
            .closing_reason
            .as_deref(),
        Some("planned")
    );
}

#[test]
fn corrupt_incident_body_is_an_error_naming_the_incident() {
    let (_dir, path, store) = store_with(0);
    store
        .save_incident(&Incident::new("x1".into(), finding("a", 1)))
        .unwrap();
    tamper(
        &path,
        "UPDATE incidents SET body = '{\"id\": 3' WHERE id = 'x1'",
    );
    let err = store.incident("x1").unwrap_err().to_string();
    assert!(err.contains("x1"), "{err}");
    assert!(store.incidents().is_err());
}

fn execution(key: &str, started: i64) -> Execution {
    Execution {
        idempotency_key: key.into(),
        incident: "inc-1".into(),
        attempt: 1,
        policy: "p".into(),
        action: Action {
            kind: ActionKind::ScaleWorkload,
            target: "checkout".into(),
            replicas: Some(4),
            workload: None,
            memory_limit_bytes: None,
        },
        started: Ts(started),
        finished: None,
        status: ExecutionStatus::Pending,
        detail: String::new(),
    }
}

#[test]
fn begin_execution_is_insert_if_absent() {
    let store = Store::open_in_memory().unwrap();
    let first = execution("k1", 1_000);
    assert_eq!(store.begin_execution(&first).unwrap(), BeginOutcome::New);
    let mut replay = execution("k1", 5_000);
    replay.attempt = 2;
    assert_eq!(
        store.begin_execution(&replay).unwrap(),
        BeginOutcome::Existing(Box::new(first.clone()))
    );
    store
        .finish_execution("k1", ExecutionStatus::Succeeded, "scaled to 4", Ts(2_000))
        .unwrap();
    let done = store.execution("k1").unwrap().unwrap();
    assert_eq!(done.status, ExecutionStatus::Succeeded);
    assert_eq!(done.finished, Some(Ts(2_000)));
    assert_eq!(done.detail, "scaled to 4");
    assert_eq!(done.action, first.action);
    match store.begin_execution(&first).unwrap() {
        BeginOutcome::Existing(e) => assert_eq!(*e, done),
        BeginOutcome::New => panic!("replayed key executed again"),
    }
    assert_eq!(store.execution("nope").unwrap(), None);
}

#[test]
fn idempotency_ledger_survives_reopen() {
    let (_dir, path, store) = store_with(0);
    store.begin_execution(&execution("k", 1)).unwrap();
    drop(store);
    let store = Store::open(&path).unwrap();
    assert!(matches!(
        store.begin_execution(&execution("k", 2)).unwrap(),
        BeginOutcome::Existing(_)
    ));
}

#[test]
fn finishing_an_unknown_execution_is_an_error() {
    let store = Store::open_in_memory().unwrap();
    let err = store
        .finish_execution("ghost", ExecutionStatus::Failed, "x", Ts(1))
        .unwrap_err();
    assert!(err.to_string().contains("ghost"), "{err}");
}

#[test]
fn executions_since_filters_and_orders_by_start() {
    let store = Store::open_in_memory().unwrap();
    for (key, started) in [("c", 300), ("a", 100), ("b", 200)] {
        store.begin_execution(&execution(key, started)).unwrap();
    }
    let keys = |since| {
        store
            .executions_since(Ts(since))
            .unwrap()
            .into_iter()
            .map(|e| e.idempotency_key)
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(0), ["a", "b", "c"]);
    assert_eq!(keys(200), ["b", "c"]);
    assert!(keys(301).is_empty());
    assert_eq!(store.executions_for("inc-1").unwrap().len(), 3);
}

#[test]
fn corrupt_execution_status_is_an_error() {
    let (_dir, path, store) = store_with(0);
    store.begin_execution(&execution("k", 1)).unwrap();
    tamper(&path, "UPDATE executions SET status = 'maybe'");
    let err = store.execution("k").unwrap_err().to_string();
    assert!(err.contains("maybe") && err.contains("\"k\""), "{err}");
}

#[test]
fn kv_set_get_overwrite() {
    let store = Store::open_in_memory().unwrap();
    assert_eq!(store.kv_get("offset").unwrap(), None);
    store.kv_set("offset", "10").unwrap();
    store.kv_set("offset", "20").unwrap();
    assert_eq!(store.kv_get("offset").unwrap().as_deref(), Some("20"));
}

#[test]
fn huge_and_hostile_payloads_round_trip() {
    let store = Store::open_in_memory().unwrap();
    let ev = AuditEvent::IncidentClosed {
        incident: "i\u{0}'\"\n".into(),
        reason: "x".repeat(2_000_000),
    };
    let rec = store.append_audit(Ts(-5), &ev).unwrap();
    assert_eq!(store.audit_records_for("i\u{0}'\"\n").unwrap(), vec![rec]);
    assert!(store.verify_audit().unwrap().is_intact());
    let big = "v".repeat(1_000_000);
    store.kv_set("big", &big).unwrap();
    assert_eq!(store.kv_get("big").unwrap(), Some(big));
}

#[test]
fn store_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Store>();
}

#[test]
fn unopenable_path_is_an_error_naming_it() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("no-such-dir").join("medic.db");
    let err = Store::open(&path).unwrap_err().to_string();
    assert!(err.contains("no-such-dir"), "{err}");
}

#[test]
fn the_store_refuses_to_change_or_remove_audit_records() {
    let (_dir, path, store) = store_with(3);
    let conn = Connection::open(&path).unwrap();
    for sql in [
        "UPDATE audit SET payload = '{}' WHERE seq = 2",
        "DELETE FROM audit WHERE seq = 3",
        "DELETE FROM audit_head",
        "UPDATE audit_head SET seq = 1",
    ] {
        let e = conn.execute_batch(sql).unwrap_err().to_string();
        assert!(e.contains("audit"), "{sql}: {e}");
    }
    assert!(store.verify_audit().unwrap().is_intact());
    // Appending still moves the head forward.
    store.append_audit(Ts(5_000), &event(9)).unwrap();
    assert!(store.verify_audit().unwrap().is_intact());
}

mod signed {
    use super::*;
    use crate::checkpoint::{SigningKey, read_public_key};

    struct Setup {
        _dir: TempDir,
        path: PathBuf,
        store: Store,
        file: PathBuf,
        public: Vec<u8>,
    }

    /// Six records, checkpointed after 3 and after 6, with a key outside the store.
    fn setup() -> Setup {
        let (dir, path, store) = store_with(3);
        let key_path = dir.path().join("keys/audit.key");
        std::fs::create_dir_all(key_path.parent().unwrap()).unwrap();
        SigningKey::generate(&key_path).unwrap();
        let key = SigningKey::load(&key_path).unwrap();
        let public = read_public_key(&crate::checkpoint::public_path(&key_path)).unwrap();
        assert_eq!(hex::encode(&public), key.public_hex());
        let file = dir.path().join("checkpoints.jsonl");
        assert_eq!(
            store.checkpoint(&key, &file, Ts(10)).unwrap().unwrap().seq,
            3
        );
        // Nothing new: no second line for the same head.
        assert!(store.checkpoint(&key, &file, Ts(11)).unwrap().is_none());
        for i in 3..6 {
            store
                .append_audit(Ts(2_000 + i), &event(i as usize))
                .unwrap();
        }
        assert_eq!(
            store.checkpoint(&key, &file, Ts(20)).unwrap().unwrap().seq,
            6
        );
        Setup {
            _dir: dir,
            path,
            store,
            file,
            public,
        }
    }

    fn verdict(s: &Setup) -> Option<String> {
        let chain = s.store.verify_audit().unwrap().broken.map(|(_, w)| w);
        let signed = s
            .store
            .verify_checkpoints(&s.public, &s.file)
            .unwrap()
            .broken;
        chain.or(signed)
    }

    #[test]
    fn an_intact_log_verifies_against_its_checkpoints() {
        let s = setup();
        let r = s.store.verify_checkpoints(&s.public, &s.file).unwrap();
        assert_eq!((r.checked, r.last_seq, r.broken), (2, 6, None));
        // A key that exists is never overwritten.
        assert!(SigningKey::generate(&s._dir.path().join("keys/audit.key")).is_err());
    }

    #[test]
    fn each_tampering_is_detected() {
        let cases: [(&str, &str); 5] = [
            ("edited", "UPDATE audit SET payload = '{}' WHERE seq = 2"),
            ("deleted", "DELETE FROM audit WHERE seq = 4"),
            (
                "inserted",
                "UPDATE audit SET seq = seq + 100 WHERE seq >= 5; UPDATE audit SET seq = seq - 99 WHERE seq >= 105; INSERT INTO audit SELECT 5, ts, kind, incident, payload, prev_hash, hash FROM audit WHERE seq = 4",
            ),
            (
                "reordered",
                "UPDATE audit SET seq = 100 WHERE seq = 2; UPDATE audit SET seq = 2 WHERE seq = 3; UPDATE audit SET seq = 3 WHERE seq = 100",
            ),
            // The tail cut and the anchor moved back to match: the chain alone looks fine.
            (
                "truncated",
                "DELETE FROM audit WHERE seq > 4; UPDATE audit_head SET seq = 4, hash = (SELECT hash FROM audit WHERE seq = 4)",
            ),
        ];
        for (what, sql) in cases {
            let s = setup();
            tamper(&s.path, sql);
            let v = verdict(&s);
            assert!(v.is_some(), "{what} went unnoticed");
            if what == "truncated" {
                assert!(
                    s.store.verify_audit().unwrap().is_intact(),
                    "the chain alone cannot tell"
                );
                assert!(v.unwrap().contains("the log ends at 4"), "{what}");
            }
        }
    }

    #[test]
    fn a_chain_rewritten_from_the_start_is_detected() {
        let s = setup();
        // The writer rebuilds a complete, self-consistent chain with one record changed,
        // and its head anchor: only the signed checkpoints contradict it.
        crate::testing::rewrite_chain(&s.path, |seq, p| {
            if seq == 2 {
                "{\"forged\":true}".to_string()
            } else {
                p.to_string()
            }
        })
        .unwrap();
        assert!(
            s.store.verify_audit().unwrap().is_intact(),
            "a consistent rewrite"
        );
        let why = s
            .store
            .verify_checkpoints(&s.public, &s.file)
            .unwrap()
            .broken
            .expect("caught");
        assert!(why.contains("the chain was rewritten"), "{why}");
    }

    #[test]
    fn forged_or_foreign_checkpoints_do_not_verify() {
        let s = setup();
        // An edited checkpoint line (the writer moves the signed seq back).
        let text = std::fs::read_to_string(&s.file).unwrap();
        std::fs::write(&s.file, text.replacen("\"seq\":6", "\"seq\":5", 1)).unwrap();
        let why = s
            .store
            .verify_checkpoints(&s.public, &s.file)
            .unwrap()
            .broken
            .expect("caught");
        assert!(why.contains("does not verify"), "{why}");
        // Another key's public key.
        std::fs::write(&s.file, &text).unwrap();
        let other = s._dir.path().join("other.key");
        SigningKey::generate(&other).unwrap();
        let other_pub = read_public_key(&crate::checkpoint::public_path(&other)).unwrap();
        assert!(
            s.store
                .verify_checkpoints(&other_pub, &s.file)
                .unwrap()
                .broken
                .is_some()
        );
        // Garbage and truncated lines are reported, not a panic.
        std::fs::write(&s.file, format!("{}\n{{\"seq\":", &text[..text.len() / 2])).unwrap();
        assert!(
            s.store
                .verify_checkpoints(&s.public, &s.file)
                .unwrap()
                .broken
                .is_some()
        );
        assert!(SigningKey::load(&s.file).is_err());
    }
}

fn verification_record(
    incident: &str,
    attempt: u32,
    verdict: medic_core::Verdict,
) -> medic_core::VerificationRecord {
    use medic_core::{CheckResult, Comparison, Direction, Symptom, SymptomCheck, SymptomResult};
    medic_core::VerificationRecord {
        incident: incident.into(),
        attempt,
        started: Ts(1_000),
        decided_at: Ts(31_000),
        window_s: 30.0,
        alpha: 0.05,
        verdict,
        reason: "clear for the window; checkout/error_rate improved".into(),
        symptoms: vec![SymptomCheck {
            symptom: Symptom {
                service: "checkout".into(),
                kind: FindingKind::ErrorRate,
            },
            metric: Some("error_ratio".into()),
            better: Direction::LowerIsBetter,
            test: Comparison {
                n_before: 40,
                n_after: 30,
                thin: 1,
                inflation: 2.5,
                before_median: Some(0.31),
                after_median: Some(0.004),
                p_better: Some(1e-7),
                p_worse: Some(1.0),
                effect: Some(1.0),
            },
            result: SymptomResult::Improved,
            clear_rounds: 30,
            window_strong: true,
        }],
        rollout: Some("rollout settled (2/2 available)".into()),
        checks: vec![CheckResult {
            expr: "up == 1".into(),
            held: Some(true),
        }],
    }
}

#[test]
fn verification_records_round_trip_latest_attempt_last() {
    use medic_core::Verdict;
    let (_dir, path, store) = store_with(0);
    assert_eq!(store.verification("inc-1").unwrap(), None);
    let first = verification_record("inc-1", 1, Verdict::NotHealed);
    let second = verification_record("inc-1", 2, Verdict::Healed);
    store.record_verification(&second).unwrap();
    store.record_verification(&first).unwrap();
    store
        .record_verification(&verification_record("inc-2", 1, Verdict::Inconclusive))
        .unwrap();
    drop(store);
    let store = Store::open(&path).unwrap();
    assert_eq!(
        store.verifications("inc-1").unwrap(),
        vec![first.clone(), second.clone()]
    );
    assert_eq!(store.verification("inc-1").unwrap(), Some(second));
    // A re-run of the same attempt replaces it.
    let rerun = medic_core::VerificationRecord {
        verdict: Verdict::Inconclusive,
        ..first.clone()
    };
    store.record_verification(&rerun).unwrap();
    assert_eq!(store.verifications("inc-1").unwrap()[0], rerun);
    // The verdict column agrees with the body.
    let conn = Connection::open(&path).unwrap();
    let verdict: String = conn
        .query_row(
            "SELECT verdict FROM verifications WHERE incident = 'inc-2'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(verdict, "inconclusive");
    // A corrupt body is an error that names the record, not a panic.
    conn.execute(
        "UPDATE verifications SET body = '{\"truncated' WHERE incident = 'inc-2'",
        [],
    )
    .unwrap();
    let err = store.verifications("inc-2").unwrap_err().to_string();
    assert!(err.contains("verification of inc-2 attempt 1"), "{err}");
}

#[test]
fn a_version_3_store_gains_the_verifications_table_and_keeps_its_data() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("v3.db");
    {
        let conn = Connection::open(&path).unwrap();
        for step in &schema::STEPS[..3] {
            conn.execute_batch(step).unwrap();
        }
        conn.pragma_update(None, "user_version", 3).unwrap();
        conn.execute(
            "INSERT INTO kv (key, value) VALUES ('verify_promql:old', '{\"checks\":[]}')",
            [],
        )
        .unwrap();
        let no_table: Result<i64, _> =
            conn.query_row("SELECT count(*) FROM verifications", [], |r| r.get(0));
        assert!(no_table.is_err(), "v3 has no verifications table");
    }
    let store = Store::open(&path).unwrap();
    let v: i64 = Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, 4);
    assert_eq!(
        store.kv_get("verify_promql:old").unwrap().as_deref(),
        Some("{\"checks\":[]}")
    );
    let rec = verification_record("inc-9", 1, medic_core::Verdict::Healed);
    store.record_verification(&rec).unwrap();
    assert_eq!(store.verification("inc-9").unwrap(), Some(rec));
    // Opening again is a no-op.
    drop(store);
    Store::open(&path).unwrap();
}

//! SQLite store: incidents, executions with idempotency keys, checkpoints, hash-chained audit log

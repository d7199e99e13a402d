//! Streaming log template mining. Not built yet: its owner fills this crate.

//! One module per protocol.

pub mod alertmanager;
pub mod api;
pub mod logs;
pub mod metrics;
pub mod otlp;
pub mod remote_write;

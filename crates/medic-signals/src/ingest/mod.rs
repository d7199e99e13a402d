//! Decoders shared by the network sources and the server's ingest routes: one file per
//! protocol. They are pure (bytes in, signals or counted rejections out) so that routes,
//! sources and benchmarks use the same code.

pub mod body;
pub mod json_logs;
#[cfg(feature = "otlp")]
pub mod otlp;
#[cfg(feature = "remote_write")]
pub mod remote_write;
pub mod syslog;

//! The local demo estate: demo services, load generator, fault injector, and the estate
//! process that runs them under its own process supervisor ([`supervisor`]) on 127.0.0.1.

pub mod endpoints;
pub mod estate;
pub mod loadgen;
pub mod prng;
pub mod service;
pub mod supervisor;
pub mod topology;

use std::path::PathBuf;

/// Everything that can go wrong in the demo crate.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("supervisor error: {0}")]
    Supervisor(String),
    #[error("http client error: {0}")]
    Http(String),
    #[error("{0}")]
    Invalid(String),
}

impl DemoError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        DemoError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

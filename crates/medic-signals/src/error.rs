use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SignalsError {
    #[error("source `{source_name}`: invalid path pattern `{pattern}`: {reason}")]
    InvalidPattern {
        source_name: String,
        pattern: String,
        reason: String,
    },
    #[error("source `{source_name}`: {reason}")]
    InvalidConfig { source_name: String, reason: String },
    #[error("source `{source_name}`: cannot build the HTTP client")]
    HttpClient {
        source_name: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("sources must be started inside a tokio runtime")]
    NoRuntime,
    #[error("cannot read {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

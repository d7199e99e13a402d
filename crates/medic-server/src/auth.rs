//! Who may use the server: bearer tokens with roles (`server.auth`), kept only as SHA-256
//! hashes, re-read from their files and environment variables without a restart.
//!
//! Every route is behind [`require`] with the role it needs; the caller's [`Identity`] goes
//! into the request's extensions for handlers that record who did what. A missing or unknown
//! token is 401 (with `WWW-Authenticate: Bearer`), a known token of the wrong role 403 —
//! each with a message that says what was wrong, never whether another token exists.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use medic_config::{AuthConfig, Role, TokenConfig, TokenSecret};
use sha2::{Digest, Sha256};
use std::sync::RwLock;

/// Longest token accepted (a header beyond this is malformed, not hashed).
const MAX_TOKEN_BYTES: usize = 4096;

/// Who made a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The token's name (`anonymous` when authentication is off).
    pub name: String,
    pub role: Role,
    /// Approver groups (`server.auth.tokens[].groups`).
    pub groups: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("token `{name}` ({at}): cannot read {path}: {reason}")]
    File {
        name: String,
        at: String,
        path: String,
        reason: String,
    },
    #[error("token `{name}` ({at}): environment variable `{var}` is not set or empty")]
    Env {
        name: String,
        at: String,
        var: String,
    },
    #[error("token `{name}` ({at}): {reason}")]
    Invalid {
        name: String,
        at: String,
        reason: String,
    },
}

/// Why a request was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Denied {
    Missing,
    Malformed(&'static str),
    Unknown,
    /// A known token past its `expires`.
    Expired {
        name: String,
        at: String,
    },
    Forbidden {
        identity: Identity,
        needed: Role,
    },
}

impl Denied {
    /// The status (401, or 403 for a known token of the wrong role) and what was wrong.
    pub fn status_and_message(&self) -> (StatusCode, String) {
        match self {
            Denied::Missing => (
                StatusCode::UNAUTHORIZED,
                "authentication required: send `Authorization: Bearer TOKEN`".to_string(),
            ),
            Denied::Malformed(why) => (
                StatusCode::UNAUTHORIZED,
                format!("malformed Authorization header: {why}"),
            ),
            Denied::Unknown => (
                StatusCode::UNAUTHORIZED,
                "unknown token: it matches no token in `server.auth.tokens`".to_string(),
            ),
            Denied::Expired { name, at } => (
                StatusCode::UNAUTHORIZED,
                format!("token `{name}` expired at {at}: ask for a new one"),
            ),
            Denied::Forbidden { identity, needed } => (
                StatusCode::FORBIDDEN,
                format!(
                    "token `{}` has role `{}`; this needs role `{}`",
                    identity.name,
                    identity.role.as_str(),
                    needed.as_str()
                ),
            ),
        }
    }
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        let (status, message) = self.status_and_message();
        let mut r = crate::routes::logs::error(status, message);
        if status == StatusCode::UNAUTHORIZED {
            let value = match self {
                Denied::Missing => r#"Bearer realm="medic""#,
                _ => r#"Bearer realm="medic", error="invalid_token""#,
            };
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(value));
        }
        r
    }
}

struct Entry {
    name: String,
    role: Role,
    groups: Vec<String>,
    expires: Option<medic_core::Ts>,
    hash: [u8; 32],
}

/// The tokens in force.
pub struct Auth {
    config: AuthConfig,
    env: fn(&str) -> Option<String>,
    table: RwLock<Vec<Entry>>,
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Equal in time independent of where the first difference is.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn process_env(k: &str) -> Option<String> {
    std::env::var(k).ok()
}

/// A token as read from a file or variable: surrounding whitespace (a trailing newline) is
/// not part of it.
fn token_text(name: &str, at: &str, raw: &str) -> Result<String, AuthError> {
    let t = raw.trim();
    let invalid = |reason: &str| AuthError::Invalid {
        name: name.to_string(),
        at: at.to_string(),
        reason: reason.to_string(),
    };
    if t.is_empty() {
        return Err(invalid("the token is empty"));
    }
    if t.len() > MAX_TOKEN_BYTES {
        return Err(invalid("the token is longer than 4096 bytes"));
    }
    if !t.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(
            "the token has characters an HTTP header cannot carry (expected printable ASCII)",
        ));
    }
    Ok(t.to_string())
}

fn read_entry(t: &TokenConfig, env: fn(&str) -> Option<String>) -> Result<Entry, AuthError> {
    let at = t.location.to_string();
    let hash = match &t.secret {
        TokenSecret::Sha256(hex_text) => {
            let mut h = [0u8; 32];
            hex::decode_to_slice(hex_text, &mut h).map_err(|e| AuthError::Invalid {
                name: t.name.clone(),
                at: at.clone(),
                reason: format!("sha256 is not 64 hex digits: {e}"),
            })?;
            h
        }
        TokenSecret::File(path) => {
            let raw = std::fs::read_to_string(path).map_err(|e| AuthError::File {
                name: t.name.clone(),
                at: at.clone(),
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
            sha256(token_text(&t.name, &at, &raw)?.as_bytes())
        }
        TokenSecret::Env(var) => {
            let raw = env(var)
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| AuthError::Env {
                    name: t.name.clone(),
                    at: at.clone(),
                    var: var.clone(),
                })?;
            sha256(token_text(&t.name, &at, &raw)?.as_bytes())
        }
    };
    Ok(Entry {
        name: t.name.clone(),
        role: t.role,
        groups: t.groups.clone(),
        expires: t.expires,
        hash,
    })
}

impl Auth {
    /// Reads every token now; any that cannot be read is an error (the server does not start
    /// with a token silently missing).
    pub fn from_config(config: &AuthConfig) -> Result<Auth, AuthError> {
        Auth::with_env(config, process_env)
    }

    pub fn with_env(
        config: &AuthConfig,
        env: fn(&str) -> Option<String>,
    ) -> Result<Auth, AuthError> {
        let table = config
            .tokens
            .iter()
            .map(|t| read_entry(t, env))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Auth {
            config: config.clone(),
            env,
            table: RwLock::new(table),
        })
    }

    /// No tokens at all: every request is refused (what a server gets until told otherwise).
    pub fn deny_all() -> Auth {
        Auth {
            config: AuthConfig::default(),
            env: process_env,
            table: RwLock::new(Vec::new()),
        }
    }

    /// Tokens given in the clear (tests, embedders): hashed at once, the text is not kept.
    pub fn from_tokens(tokens: &[(&str, Role, &str)]) -> Auth {
        let table = tokens
            .iter()
            .map(|(name, role, token)| Entry {
                name: name.to_string(),
                role: *role,
                groups: Vec::new(),
                expires: None,
                hash: sha256(token.as_bytes()),
            })
            .collect();
        Auth {
            config: AuthConfig::default(),
            env: process_env,
            table: RwLock::new(table),
        }
    }

    /// Whether anyone may do anything (`server.auth.unauthenticated`).
    pub fn is_open(&self) -> bool {
        self.config.unauthenticated
    }

    pub fn token_count(&self) -> usize {
        self.table.read().map(|t| t.len()).unwrap_or(0)
    }

    /// Re-reads the tokens' files and variables. On an error the tokens in force stay as
    /// they were (a half-written file must not lock everyone out). True when they changed.
    pub fn reload(&self) -> Result<bool, AuthError> {
        if self.config.tokens.is_empty() {
            return Ok(false);
        }
        let fresh = self
            .config
            .tokens
            .iter()
            .map(|t| read_entry(t, self.env))
            .collect::<Result<Vec<_>, _>>()?;
        let mut table = self.table.write().unwrap_or_else(|p| p.into_inner());
        let changed = table.len() != fresh.len()
            || table
                .iter()
                .zip(&fresh)
                .any(|(a, b)| a.name != b.name || a.role != b.role || !same(&a.hash, &b.hash));
        *table = fresh;
        Ok(changed)
    }

    /// Who sent `token`, if anyone.
    fn identify(&self, token: &str) -> Result<Identity, Denied> {
        let h = sha256(token.as_bytes());
        let table = self.table.read().unwrap_or_else(|p| p.into_inner());
        // Every entry is compared, so the time taken says nothing about which one matched.
        let mut found = None;
        for e in table.iter() {
            if same(&e.hash, &h) && found.is_none() {
                found = Some(e);
            }
        }
        let e = found.ok_or(Denied::Unknown)?;
        if let Some(at) = e.expires
            && medic_core::Ts::now() >= at
        {
            return Err(Denied::Expired {
                name: e.name.clone(),
                at: at.to_rfc3339(),
            });
        }
        Ok(Identity {
            name: e.name.clone(),
            role: e.role,
            groups: e.groups.clone(),
        })
    }

    /// The bearer token of `Authorization`, if well-formed.
    pub fn bearer(headers: &HeaderMap) -> Result<Option<&str>, Denied> {
        let Some(v) = headers.get(header::AUTHORIZATION) else {
            return Ok(None);
        };
        let v = v
            .to_str()
            .map_err(|_| Denied::Malformed("not ASCII"))?
            .trim();
        let (scheme, token) = v
            .split_once(' ')
            .ok_or(Denied::Malformed("expected `Bearer TOKEN`"))?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(Denied::Malformed("only the `Bearer` scheme is accepted"));
        }
        let token = token.trim();
        if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
            return Err(Denied::Malformed(
                "the token is empty or longer than 4096 bytes",
            ));
        }
        Ok(Some(token))
    }

    /// Checks a request's token against `needed`.
    pub fn check(&self, token: Option<&str>, needed: Role) -> Result<Identity, Denied> {
        if self.is_open() {
            return Ok(Identity {
                name: "anonymous".into(),
                role: Role::Admin,
                groups: Vec::new(),
            });
        }
        let identity = self.identify(token.ok_or(Denied::Missing)?)?;
        if identity.role.grants(needed) {
            Ok(identity)
        } else {
            Err(Denied::Forbidden { identity, needed })
        }
    }

    pub fn check_headers(&self, headers: &HeaderMap, needed: Role) -> Result<Identity, Denied> {
        self.check(Auth::bearer(headers)?, needed)
    }
}

/// Middleware: the request needs a token of role `ingest`.
pub async fn require_ingest(
    State(state): State<crate::ServerState>,
    req: Request,
    next: Next,
) -> Response {
    require(&state, Role::Ingest, req, next).await
}

/// Middleware: the request needs a token that may view.
pub async fn require_viewer(
    State(state): State<crate::ServerState>,
    req: Request,
    next: Next,
) -> Response {
    require(&state, Role::Viewer, req, next).await
}

/// Middleware: the request needs a token that may answer approvals.
pub async fn require_approver(
    State(state): State<crate::ServerState>,
    req: Request,
    next: Next,
) -> Response {
    require(&state, Role::Approver, req, next).await
}

/// Middleware: the request needs an admin token.
pub async fn require_admin(
    State(state): State<crate::ServerState>,
    req: Request,
    next: Next,
) -> Response {
    require(&state, Role::Admin, req, next).await
}

async fn require(
    state: &crate::ServerState,
    needed: Role,
    mut req: Request,
    next: Next,
) -> Response {
    match state.auth.check_headers(req.headers(), needed) {
        Ok(identity) => {
            req.extensions_mut().insert(identity);
            next.run(req).await
        }
        Err(denied) => {
            state.metrics.auth_denied(&denied);
            denied.into_response()
        }
    }
}

/// Re-reads token files and variables every `every` until `shutdown`.
pub fn spawn_reloader(
    auth: std::sync::Arc<Auth>,
    every: std::time::Duration,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    if auth
        .config
        .tokens
        .iter()
        .all(|t| matches!(t.secret, TokenSecret::Sha256(_)))
    {
        return;
    }
    crate::every(every, shutdown, move || match auth.reload() {
        Ok(true) => tracing::info!(tokens = auth.token_count(), "server tokens reloaded"),
        Ok(false) => {}
        Err(e) => tracing::warn!("server tokens not reloaded, the previous ones stay: {e}"),
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use medic_config::Location;

    fn tok(name: &str, role: Role, secret: TokenSecret) -> TokenConfig {
        TokenConfig {
            name: name.into(),
            role,
            secret,
            groups: Vec::new(),
            expires: None,
            location: Location {
                file: "medic.yaml".into(),
                line: 3,
                col: 7,
            },
        }
    }

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(v).expect("header"),
        );
        h
    }

    #[test]
    fn an_expired_token_is_refused_with_when() {
        let sha = |t: &str| TokenSecret::Sha256(hex::encode(sha256(t.as_bytes())));
        let old = TokenConfig {
            expires: medic_core::Ts::parse_rfc3339("2020-01-01T00:00:00Z"),
            ..tok("old", Role::Viewer, sha("old-secret"))
        };
        let new = TokenConfig {
            expires: Some(medic_core::Ts::now().plus_secs(3600.0)),
            ..tok("new", Role::Viewer, sha("new-secret"))
        };
        let auth = Auth::with_env(
            &AuthConfig {
                tokens: vec![old, new],
                unauthenticated: false,
            },
            |_| None,
        )
        .expect("auth");
        let denied = auth
            .check(Some("old-secret"), Role::Viewer)
            .expect_err("expired");
        let (status, message) = denied.status_and_message();
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            message,
            "token `old` expired at 2020-01-01T00:00:00.000Z: ask for a new one"
        );
        assert_eq!(
            auth.check(Some("new-secret"), Role::Viewer)
                .expect("ok")
                .name,
            "new"
        );
    }

    #[test]
    fn roles_tokens_and_refusals() {
        let auth = Auth::from_tokens(&[
            ("am", Role::Ingest, "ingest-secret"),
            ("alice", Role::Approver, "alice-secret"),
            ("root", Role::Admin, "root-secret"),
        ]);
        let ok = |h: &str, r| auth.check_headers(&headers(h), r);
        assert_eq!(
            ok("Bearer ingest-secret", Role::Ingest).expect("ok").name,
            "am"
        );
        assert_eq!(
            ok("bearer  alice-secret ", Role::Viewer).expect("ok").name,
            "alice"
        );
        assert!(ok("Bearer root-secret", Role::Ingest).is_ok());
        assert!(matches!(
            ok("Bearer ingest-secret", Role::Viewer),
            Err(Denied::Forbidden {
                needed: Role::Viewer,
                ..
            })
        ));
        assert!(matches!(
            ok("Bearer alice-secret", Role::Admin),
            Err(Denied::Forbidden { .. })
        ));
        assert_eq!(ok("Bearer nope", Role::Ingest), Err(Denied::Unknown));
        assert!(matches!(
            ok("Basic YTpi", Role::Ingest),
            Err(Denied::Malformed(_))
        ));
        assert!(matches!(
            ok("Bearer", Role::Ingest),
            Err(Denied::Malformed(_))
        ));
        assert!(matches!(
            ok(&format!("Bearer {}", "x".repeat(5000)), Role::Ingest),
            Err(Denied::Malformed(_))
        ));
        assert_eq!(
            auth.check_headers(&HeaderMap::new(), Role::Ingest),
            Err(Denied::Missing)
        );
        assert_eq!(
            Auth::deny_all().check(Some("anything"), Role::Ingest),
            Err(Denied::Unknown)
        );
        let r = Denied::Missing.into_response();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(r.headers().contains_key(header::WWW_AUTHENTICATE));
    }

    #[test]
    fn files_and_variables_are_read_hashed_and_reloaded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("token");
        std::fs::write(&file, "first-token\n").expect("write");
        let hashed = hex::encode(sha256(b"hashed-token"));
        let cfg = AuthConfig {
            tokens: vec![
                tok("f", Role::Viewer, TokenSecret::File(file.clone())),
                tok(
                    "e",
                    Role::Ingest,
                    TokenSecret::Env("MEDIC_TEST_TOKEN".into()),
                ),
                tok("h", Role::Admin, TokenSecret::Sha256(hashed)),
            ],
            unauthenticated: false,
        };
        fn env(k: &str) -> Option<String> {
            (k == "MEDIC_TEST_TOKEN").then(|| "env-token".to_string())
        }
        let auth = Auth::with_env(&cfg, env).expect("auth");
        assert_eq!(
            auth.check(Some("first-token"), Role::Viewer)
                .expect("f")
                .name,
            "f"
        );
        assert_eq!(
            auth.check(Some("env-token"), Role::Ingest).expect("e").name,
            "e"
        );
        assert_eq!(
            auth.check(Some("hashed-token"), Role::Admin)
                .expect("h")
                .name,
            "h"
        );
        // Rotated: the old token stops working, the new one works, without a restart.
        std::fs::write(&file, "second-token").expect("write");
        assert_eq!(auth.reload(), Ok(true));
        assert_eq!(
            auth.check(Some("first-token"), Role::Viewer),
            Err(Denied::Unknown)
        );
        assert!(auth.check(Some("second-token"), Role::Viewer).is_ok());
        assert_eq!(auth.reload(), Ok(false));
        // A broken file keeps what was in force.
        std::fs::write(&file, "").expect("write");
        assert!(matches!(auth.reload(), Err(AuthError::Invalid { .. })));
        assert!(auth.check(Some("second-token"), Role::Viewer).is_ok());
        std::fs::remove_file(&file).expect("rm");
        let e = auth.reload().expect_err("missing file");
        assert!(
            e.to_string()
                .contains("token `f` (medic.yaml:3:7): cannot read"),
            "{e}"
        );
        // At start, a token that cannot be read stops the server.
        let e = Auth::with_env(&cfg, |_| None).err().expect("error");
        assert!(matches!(e, AuthError::File { .. }), "{e}");
        // Nothing of a token's text is kept.
        std::fs::write(&file, "binary\u{1}token").expect("write");
        assert!(matches!(auth.reload(), Err(AuthError::Invalid { .. })));
    }

    #[test]
    fn open_servers_let_anyone_in_as_anonymous() {
        let auth = Auth::with_env(
            &AuthConfig {
                tokens: Vec::new(),
                unauthenticated: true,
            },
            |_| None,
        )
        .expect("auth");
        assert_eq!(
            auth.check(None, Role::Admin).expect("open").name,
            "anonymous"
        );
    }
}

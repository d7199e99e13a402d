//! Not built yet: its owner replaces this module.

use crate::ServerState;

pub fn router() -> axum::Router<ServerState> {
    axum::Router::new()
}

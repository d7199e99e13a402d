use crate::node::Node;
use crate::reader::{Ctx, MapReader};
use crate::types::{AuditSigning, StoreConfig};
use std::time::Duration;

pub(super) fn read(node: &Node, cx: &mut Ctx) -> StoreConfig {
    let mut m = MapReader::new(node, "`store`", cx);
    let sqlite = m
        .path("sqlite", false)
        .unwrap_or_else(|| StoreConfig::default().sqlite);
    let signing = m.node("audit_signing");
    m.finish();
    let audit_signing = signing.and_then(|n| {
        let mut s = MapReader::new(n, "`store.audit_signing`", cx);
        let key = s.path("key", true);
        let checkpoints = s.path("checkpoints", true);
        let every = s.duration_or("every", Duration::from_secs(60), false);
        // A second copy of each checkpoint somewhere else again (a log archive, a chat): a
        // writer who can replace the checkpoint file still cannot recall what was sent.
        let webhook = s.field("webhook", false, |n, label, cx| {
            let text = crate::reader::to_string(n, label, cx)?;
            if text.trim().is_empty() {
                return None;
            }
            let v = super::escalation::secret(n, &text, label, cx, 0)?;
            if let crate::types::SecretValue::Plain(url) = &v {
                super::check_http_url(url, n.pos, label, cx);
            }
            Some(v)
        });
        s.finish();
        let (key, checkpoints) = (key?, checkpoints?);
        if key == sqlite || checkpoints == sqlite {
            cx.error(
                n.pos,
                "`store.audit_signing`: the key and the checkpoints must live outside the database file, or whoever can write it could rewrite them too",
            );
            return None;
        }
        Some(AuditSigning {
            key,
            checkpoints,
            every,
            webhook,
        })
    });
    StoreConfig {
        sqlite,
        audit_signing,
    }
}

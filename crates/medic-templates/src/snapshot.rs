//! Versioned binary snapshot of a miner's templates (the agent keeps it in its SQLite kv).
//! Layout: magic, version, config (JSON), counters, templates, then a checksum of everything
//! before it so a torn or corrupted blob is an error rather than wrong templates.

use crate::TemplateError;
use crate::hash::hash_bytes;
use crate::miner::{MinerConfig, Pos, Template, TemplateMiner};

const MAGIC: &[u8; 8] = b"MEDICTPL";
/// Version 2 adds each position's pattern bounds; version 1 snapshots still restore (their
/// positions are exact or `<*>`).
const VERSION: u32 = 2;

impl TemplateMiner {
    /// Serialises config, templates and counters (not parameter values: none are kept).
    pub fn snapshot(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.memory_bytes() / 2);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        let cfg = serde_json::to_vec(&self.cfg).unwrap_or_default();
        put_bytes(&mut out, &cfg);
        out.extend_from_slice(&self.next_id.to_le_bytes());
        out.extend_from_slice(&self.clock.to_le_bytes());
        let live: Vec<&Template> = self.live_templates().collect();
        out.extend_from_slice(&(live.len() as u32).to_le_bytes());
        for t in live {
            out.extend_from_slice(&t.id.to_le_bytes());
            out.extend_from_slice(&t.count.to_le_bytes());
            out.extend_from_slice(&t.last_seen.to_le_bytes());
            out.extend_from_slice(&t.leaf.to_le_bytes());
            out.extend_from_slice(&(t.texts.len() as u32).to_le_bytes());
            for (i, s) in t.texts.iter().enumerate() {
                put_bytes(&mut out, s.as_bytes());
                // Pattern bounds, or u32::MAX for a position that is not a pattern.
                let (pre, suf) = match t.pos.get(i) {
                    Some(&Pos::Pat { pre, suf }) => (pre, suf),
                    _ => (u32::MAX, u32::MAX),
                };
                out.extend_from_slice(&pre.to_le_bytes());
                out.extend_from_slice(&suf.to_le_bytes());
            }
        }
        let sum = hash_bytes(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    /// Restores a snapshot; any corruption, truncation or unknown version is an error.
    pub fn restore(bytes: &[u8]) -> Result<TemplateMiner, TemplateError> {
        let bad = |why: &str| TemplateError::Snapshot(why.to_string());
        if bytes.len() < MAGIC.len() + 4 + 8 {
            return Err(bad("too short"));
        }
        if &bytes[..8] != MAGIC {
            return Err(bad("missing magic header MEDICTPL"));
        }
        let (body, sum) = bytes.split_at(bytes.len() - 8);
        let mut r = Reader { b: body, at: 8 };
        let version = r.u32()?;
        if version != VERSION && version != 1 {
            return Err(TemplateError::SnapshotVersion {
                found: version,
                expected: VERSION,
            });
        }
        let mut s8 = [0u8; 8];
        s8.copy_from_slice(sum);
        if u64::from_le_bytes(s8) != hash_bytes(body) {
            return Err(bad("checksum mismatch"));
        }
        let cfg: MinerConfig =
            serde_json::from_slice(r.bytes()?).map_err(|e| bad(&format!("config: {e}")))?;
        let mut m = TemplateMiner::new(cfg);
        m.next_id = r.u32()?;
        m.clock = r.u64()?;
        let n = r.u32()? as usize;
        let wild = m.wild_hash();
        for _ in 0..n {
            let id = r.u32()?;
            let count = r.u64()?;
            let last_seen = r.u64()?;
            let leaf = r.u64()?;
            let ntok = r.u32()? as usize;
            if ntok > r.remaining() / 4 {
                return Err(bad("token count exceeds data"));
            }
            let mut texts = Vec::with_capacity(ntok);
            let mut hashes = Vec::with_capacity(ntok);
            let mut pos = Vec::with_capacity(ntok);
            for _ in 0..ntok {
                let s = std::str::from_utf8(r.bytes()?)
                    .map_err(|_| bad("template token is not utf-8"))?;
                let h = hash_bytes(s.as_bytes());
                hashes.push(if s == "<*>" { wild } else { h });
                let mut p = Pos::of_text(s);
                if version >= 2 {
                    let (pre, suf) = (r.u32()?, r.u32()?);
                    if pre != u32::MAX {
                        let fits = (pre as usize)
                            .checked_add(suf as usize)
                            .is_some_and(|n| n <= s.len())
                            && s.is_char_boundary(pre as usize)
                            && s.is_char_boundary(s.len() - suf as usize);
                        if !fits {
                            return Err(bad("pattern bounds outside the token"));
                        }
                        p = Pos::Pat { pre, suf };
                    }
                }
                pos.push(p);
                texts.push(Box::<str>::from(s));
            }
            if m.by_id.contains_key(&id) || id == 0 || id >= m.next_id {
                return Err(bad("duplicate or out-of-range template id"));
            }
            m.insert_template(Template {
                id,
                hashes,
                texts,
                pos,
                count,
                last_seen,
                leaf,
            });
        }
        if r.remaining() != 0 {
            return Err(bad("trailing bytes"));
        }
        Ok(m)
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.b.len().saturating_sub(self.at)
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], TemplateError> {
        if n > self.remaining() {
            return Err(TemplateError::Snapshot(format!(
                "truncated at byte {}",
                self.at
            )));
        }
        let s = &self.b[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32, TemplateError> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(a))
    }
    fn u64(&mut self) -> Result<u64, TemplateError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
    fn bytes(&mut self) -> Result<&'a [u8], TemplateError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_ids_and_templates() {
        let mut m = TemplateMiner::default();
        let a = m.mine_id("Invalid user alice from 10.0.0.1");
        m.mine_id("Invalid user bob from 10.0.0.2");
        let b = m.mine_id("Connection closed by 10.0.0.9 [preauth]");
        let snap = m.snapshot();
        let mut r = TemplateMiner::restore(&snap).expect("restore");
        assert_eq!(r.templates(), m.templates());
        assert_eq!(r.mine_id("Invalid user carol from 10.0.0.3"), a);
        assert_eq!(r.mine_id("Connection closed by 10.0.0.7 [preauth]"), b);
        let c = r.mine_id("Something entirely new here");
        assert!(c.0 > b.0);
        assert_eq!(r.count(a), 3);
    }

    #[test]
    fn patterns_survive_a_round_trip() {
        let mut m = TemplateMiner::default();
        let a = m.mine_id("pam auth failure; logname= tty=ssh ruser= rhost=10.0.0.1 user=root");
        m.mine_id("pam auth failure; logname= tty=ssh ruser= rhost=example.com user=admin");
        let mut r = TemplateMiner::restore(&m.snapshot()).expect("restore");
        assert_eq!(r.templates(), m.templates());
        // Still a pattern after restore: a fitting value keeps `rhost=`.
        assert_eq!(
            r.mine_id("pam auth failure; logname= tty=ssh ruser= rhost=other.org user=bob"),
            a
        );
        assert_eq!(
            r.template(a).as_deref(),
            Some("pam auth failure; logname= tty=ssh ruser= rhost=<*> user=<*>")
        );
    }

    #[test]
    fn version_1_snapshots_restore() {
        // A version 1 blob: no pattern bounds after each token text.
        let mut m = TemplateMiner::default();
        m.mine_id("hello big wide world");
        let leaf = m.live_templates().next().map_or(0, |t| t.leaf);
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&1u32.to_le_bytes());
        put_bytes(&mut out, b"{}");
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&5u64.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&2u32.to_le_bytes());
        out.extend_from_slice(&4u64.to_le_bytes());
        out.extend_from_slice(&5u64.to_le_bytes());
        out.extend_from_slice(&leaf.to_le_bytes());
        out.extend_from_slice(&4u32.to_le_bytes());
        for t in [&b"hello"[..], b"big", b"wide", b"<*>"] {
            put_bytes(&mut out, t);
        }
        let sum = hash_bytes(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        let mut r = TemplateMiner::restore(&out).expect("restore v1");
        assert_eq!(r.mine_id("hello big wide planet"), crate::TemplateId(2));
        assert_eq!(r.count(crate::TemplateId(2)), 5);
    }

    #[test]
    fn corrupt_snapshots_are_errors() {
        let mut m = TemplateMiner::default();
        m.mine_id("hello world 1");
        let snap = m.snapshot();
        assert!(TemplateMiner::restore(&[]).is_err());
        assert!(TemplateMiner::restore(b"garbage garbage garbage").is_err());
        assert!(TemplateMiner::restore(&snap[..snap.len() - 3]).is_err());
        for i in 8..snap.len() {
            let mut s = snap.clone();
            s[i] ^= 0x40;
            assert!(TemplateMiner::restore(&s).is_err(), "flip at {i}");
        }
        let mut v2 = snap.clone();
        v2[8] = 3;
        assert!(matches!(
            TemplateMiner::restore(&v2),
            Err(TemplateError::SnapshotVersion { .. })
        ));
    }
}

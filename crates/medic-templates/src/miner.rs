//! The online miner: a Drain-like fixed-depth tree (token count + leading tokens → leaf of
//! candidate templates, best match by position-wise similarity), in front of it an exact cache
//! from the line's masked shape to its template: for ids only, the cache is probed with a walk
//! that hashes the masked shape without writing it, and the full masking runs only on a miss.

use crate::hash::{FastMap, combine, fmix, hash_bytes};
use crate::mask::{Masked, WILDCARD, mask_message, shape_key};
use serde::{Deserialize, Serialize};

/// A template's id. Stable for the template's lifetime (also across generalisation and
/// snapshot/restore); ids of evicted templates are never reused.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TemplateId(pub u32);

impl std::fmt::Display for TemplateId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "T{}", self.0)
    }
}

/// The result of mining one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mined {
    pub id: TemplateId,
    /// The template was created by this message.
    pub is_new: bool,
    /// The message's values at the template's variable positions, in order (empty when
    /// `MinerConfig::extract_params` is off).
    pub params: Vec<String>,
}

/// Miner configuration. `Default` is the one configuration used for every system.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MinerConfig {
    /// Most templates kept; beyond it the least recently seen eighth is evicted.
    pub max_templates: usize,
    /// Most bytes of template text kept (bounds memory with long templates).
    pub max_template_bytes: usize,
    /// Leading tokens used as tree keys (Drain's depth minus two).
    pub key_tokens: usize,
    /// Minimum share of equal positions to join an existing template.
    pub similarity: f64,
    /// Tokens per message; the rest folds into one trailing wildcard.
    pub max_tokens: usize,
    /// Bytes per message; the rest is cut (counted in stats).
    pub max_message_bytes: usize,
    /// Entries in the exact-shape cache (cleared when full).
    pub cache_entries: usize,
    /// Fill `Mined::params` in [`TemplateMiner::mine`].
    pub extract_params: bool,
}

impl Default for MinerConfig {
    fn default() -> Self {
        MinerConfig {
            max_templates: 20_000,
            max_template_bytes: 32 << 20,
            key_tokens: 2,
            similarity: 0.7,
            max_tokens: 96,
            max_message_bytes: 16 << 10,
            cache_entries: 1 << 18,
            extract_params: true,
        }
    }
}

/// Counters of everything cut or dropped (nothing is lost silently).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MinerStats {
    pub messages: u64,
    pub truncated_messages: u64,
    pub folded_tokens: u64,
    pub evicted_templates: u64,
    pub cache_clears: u64,
}

/// How one template position matches a message token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pos {
    /// Only the same masked text (its hash).
    Exact,
    /// Any token (`<*>`).
    Wild,
    /// Any token starting with the text's first `pre` bytes and ending with its last `suf`
    /// bytes: values that differ only between punctuation keep it (`rhost=<*>`, `<*>,`,
    /// `[<*>]`), which Loghub templates keep too.
    Pat { pre: u32, suf: u32 },
}

impl Pos {
    /// The position's kind for a template text read back from storage.
    pub(crate) fn of_text(text: &str) -> Pos {
        if text == "<*>" { Pos::Wild } else { Pos::Exact }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Template {
    pub id: u32,
    pub hashes: Vec<u64>,
    pub texts: Vec<Box<str>>,
    pub pos: Vec<Pos>,
    pub count: u64,
    pub last_seen: u64,
    pub leaf: u64,
}

impl Template {
    fn bytes(&self) -> usize {
        std::mem::size_of::<Template>()
            + self.hashes.len() * (8 + std::mem::size_of::<Pos>())
            + self.texts.iter().map(|t| t.len() + 16).sum::<usize>()
    }
}

/// The streaming template miner. `Send`; use one per thread (or behind a lock).
#[derive(Debug)]
pub struct TemplateMiner {
    pub(crate) cfg: MinerConfig,
    pub(crate) slots: Vec<Option<Template>>,
    free: Vec<u32>,
    pub(crate) by_id: FastMap<u32, u32>,
    leaves: FastMap<u64, Vec<u32>>,
    cache: FastMap<u64, (u32, u32)>,
    pub(crate) next_id: u32,
    pub(crate) clock: u64,
    template_bytes: usize,
    pub(crate) stats: MinerStats,
    buf: Masked,
    wild: u64,
}

impl Default for TemplateMiner {
    fn default() -> Self {
        TemplateMiner::new(MinerConfig::default())
    }
}

impl TemplateMiner {
    pub fn new(cfg: MinerConfig) -> Self {
        TemplateMiner {
            cfg,
            slots: Vec::new(),
            free: Vec::new(),
            by_id: FastMap::default(),
            leaves: FastMap::default(),
            cache: FastMap::default(),
            next_id: 1,
            clock: 0,
            template_bytes: 0,
            stats: MinerStats::default(),
            buf: Masked::default(),
            wild: hash_bytes(WILDCARD),
        }
    }

    pub fn config(&self) -> &MinerConfig {
        &self.cfg
    }

    pub fn stats(&self) -> &MinerStats {
        &self.stats
    }

    /// Mines one message: returns its template id, whether the template is new, and its
    /// parameters (if configured).
    pub fn mine(&mut self, message: &str) -> Mined {
        let want = self.cfg.extract_params;
        let (id, is_new, slot) = self.mine_inner(message, want);
        let params = if want {
            self.params_of(message, slot)
        } else {
            Vec::new()
        };
        Mined { id, is_new, params }
    }

    /// The fast path: the template id only.
    pub fn mine_id(&mut self, message: &str) -> TemplateId {
        self.mine_inner(message, false).0
    }

    fn cut<'a>(&mut self, message: &'a str) -> &'a str {
        if message.len() <= self.cfg.max_message_bytes {
            return message;
        }
        self.stats.truncated_messages += 1;
        let mut end = self.cfg.max_message_bytes;
        while end > 0 && !message.is_char_boundary(end) {
            end -= 1;
        }
        &message[..end]
    }

    fn mine_inner(&mut self, message: &str, want_params: bool) -> (TemplateId, bool, u32) {
        self.clock += 1;
        self.stats.messages += 1;
        let msg = self.cut(message);
        if !want_params {
            // A shape seen before costs one walk that only hashes (no text, no tokens).
            let (key, dropped) = shape_key(msg.as_bytes(), self.cfg.max_tokens);
            if let Some(hit) = self.cache_hit(key) {
                self.stats.folded_tokens += dropped as u64;
                return hit;
            }
        }
        let mut buf = std::mem::take(&mut self.buf);
        mask_message(msg.as_bytes(), &mut buf, want_params, self.cfg.max_tokens);
        self.stats.folded_tokens += buf.dropped_tokens as u64;
        // Without parameters the probe above already missed.
        let hit = if want_params {
            self.cache_hit(buf.key)
        } else {
            None
        };
        let r = match hit {
            Some(hit) => hit,
            None => self.place(&buf, msg.as_bytes()),
        };
        self.buf = buf;
        r
    }

    /// The cached template of a line shape, counted as seen.
    #[inline]
    fn cache_hit(&mut self, key: u64) -> Option<(TemplateId, bool, u32)> {
        let &(slot, id) = self.cache.get(&key)?;
        match self.slots.get_mut(slot as usize) {
            Some(Some(t)) if t.id == id => {
                t.count += 1;
                t.last_seen = self.clock;
                Some((TemplateId(id), false, slot))
            }
            _ => None,
        }
    }

    fn place(&mut self, buf: &Masked, msg: &[u8]) -> (TemplateId, bool, u32) {
        let n = buf.toks.len();
        let seq = buf.key;
        let leaf = self.leaf_key(buf);
        let mut best: Option<(u32, usize, usize)> = None; // slot, same, params
        if let Some(cands) = self.leaves.get(&leaf) {
            for &slot in cands {
                let Some(Some(t)) = self.slots.get(slot as usize) else {
                    continue;
                };
                if t.hashes.len() != n {
                    continue;
                }
                // Similarity counts only the line's constant tokens: masked values that happen
                // to line up (`<*>:`) say nothing about the words around them.
                // A pattern position (`rhost=<*>`) scores like a wildcard when the token fits
                // it, so it only breaks ties between otherwise equal candidates.
                let mut same = 0usize;
                let mut params = 0usize;
                for (i, (h, tok)) in t.hashes.iter().zip(&buf.toks).enumerate() {
                    if *h == self.wild {
                        params += 1;
                    } else if *h == tok.hash {
                        same += usize::from(!tok.var);
                    } else if let Some(&Pos::Pat { pre, suf }) = t.pos.get(i)
                        && pat_matches(t.texts[i].as_bytes(), pre, suf, buf.tok_text(msg, tok))
                    {
                        params += 1;
                    }
                }
                let better = match best {
                    None => true,
                    Some((_, bs, bp)) => same > bs || (same == bs && params > bp),
                };
                if better {
                    best = Some((slot, same, params));
                }
            }
        }
        let threshold = self.cfg.similarity;
        let constants = buf.toks.iter().filter(|t| !t.var).count();
        let chosen = best.filter(|&(_, same, _)| {
            constants == 0 || (same as f64) / (constants as f64) >= threshold
        });
        let (slot, is_new) = match chosen {
            Some((slot, _, _)) => {
                self.generalise(slot, buf, msg);
                (slot, false)
            }
            None => (self.create(buf, msg, leaf), true),
        };
        let id = match self.slots.get(slot as usize) {
            Some(Some(t)) => t.id,
            _ => 0,
        };
        if self.cache.len() >= self.cfg.cache_entries.max(1) {
            self.cache.clear();
            self.stats.cache_clears += 1;
        }
        self.cache.insert(seq, (slot, id));
        if is_new {
            self.enforce_caps(slot);
        }
        (TemplateId(id), is_new, slot)
    }

    fn leaf_key(&self, buf: &Masked) -> u64 {
        let mut k = fmix(buf.toks.len() as u64 ^ 0xA5A5);
        for t in buf.toks.iter().take(self.cfg.key_tokens) {
            k = combine(k, if t.unkeyable { self.wild } else { t.hash });
        }
        fmix(k)
    }

    fn generalise(&mut self, slot: u32, buf: &Masked, msg: &[u8]) {
        let wild = self.wild;
        let clock = self.clock;
        let Some(Some(t)) = self.slots.get_mut(slot as usize) else {
            return;
        };
        t.count += 1;
        t.last_seen = clock;
        let mut freed = 0usize;
        for (i, tok) in buf.toks.iter().enumerate() {
            let h = t.hashes[i];
            if h == wild || h == tok.hash {
                continue;
            }
            let old = t.texts[i].as_bytes();
            let m = buf.tok_text(msg, tok);
            let (mut p, mut s) = common_affixes(old, m);
            if let Some(&Pos::Pat { pre, suf }) = t.pos.get(i) {
                if pat_matches(old, pre, suf, m) {
                    continue;
                }
                // The new pattern must cover every token the old one did.
                (p, s) = (p.min(pre as usize), s.min(suf as usize));
            }
            let before = old.len();
            if p == 0 && s == 0 {
                t.hashes[i] = wild;
                t.texts[i] = "<*>".into();
                t.pos[i] = Pos::Wild;
            } else {
                let mut text = String::with_capacity(p + s + WILDCARD.len());
                text.push_str(&t.texts[i][..p]);
                text.push_str("<*>");
                text.push_str(&t.texts[i][before - s..]);
                t.hashes[i] = hash_bytes(text.as_bytes());
                t.texts[i] = text.into();
                t.pos[i] = Pos::Pat {
                    pre: p as u32,
                    suf: s as u32,
                };
            }
            freed += before.saturating_sub(t.texts[i].len());
        }
        self.template_bytes = self.template_bytes.saturating_sub(freed);
    }

    fn create(&mut self, buf: &Masked, msg: &[u8], leaf: u64) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let t = Template {
            id,
            hashes: buf.toks.iter().map(|t| t.hash).collect(),
            texts: buf
                .toks
                .iter()
                .map(|t| String::from_utf8_lossy(buf.tok_text(msg, t)).into())
                .collect(),
            pos: vec![Pos::Exact; buf.toks.len()],
            count: 1,
            last_seen: self.clock,
            leaf,
        };
        self.insert_template(t)
    }

    pub(crate) fn insert_template(&mut self, t: Template) -> u32 {
        self.template_bytes += t.bytes();
        let id = t.id;
        let leaf = t.leaf;
        let slot = match self.free.pop() {
            Some(s) => {
                self.slots[s as usize] = Some(t);
                s
            }
            None => {
                self.slots.push(Some(t));
                (self.slots.len() - 1) as u32
            }
        };
        self.by_id.insert(id, slot);
        self.leaves.entry(leaf).or_default().push(slot);
        slot
    }

    /// Evicts the least recently seen eighth when over a cap (never `keep`, the template just
    /// created). Batching makes eviction amortised O(log n) per new template.
    fn enforce_caps(&mut self, keep: u32) {
        if self.by_id.len() <= self.cfg.max_templates.max(1)
            && self.template_bytes <= self.cfg.max_template_bytes
        {
            return;
        }
        let mut live: Vec<(u64, u32)> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(s, t)| t.as_ref().map(|t| (t.last_seen, s as u32)))
            .filter(|&(_, s)| s != keep)
            .collect();
        live.sort_unstable();
        let over = self
            .by_id
            .len()
            .saturating_sub(self.cfg.max_templates.max(1));
        let target = (live.len() / 8).max(over).max(1);
        for &(_, slot) in live.iter().take(target) {
            self.evict(slot);
        }
        // Still over the byte cap (a few huge templates): evict the oldest one by one.
        let mut rest = live.iter().skip(target);
        while self.template_bytes > self.cfg.max_template_bytes {
            match rest.next() {
                Some(&(_, slot)) => self.evict(slot),
                None => break,
            }
        }
    }

    fn evict(&mut self, slot: u32) {
        let Some(t) = self.slots.get_mut(slot as usize).and_then(Option::take) else {
            return;
        };
        self.template_bytes = self.template_bytes.saturating_sub(t.bytes());
        self.by_id.remove(&t.id);
        if let Some(v) = self.leaves.get_mut(&t.leaf) {
            v.retain(|&s| s != slot);
            if v.is_empty() {
                self.leaves.remove(&t.leaf);
            }
        }
        self.free.push(slot);
        self.stats.evicted_templates += 1;
    }

    fn params_of(&self, message: &str, slot: u32) -> Vec<String> {
        let Some(Some(t)) = self.slots.get(slot as usize) else {
            return Vec::new();
        };
        let msg = &message[..message.len().min(self.cfg.max_message_bytes)];
        let bytes = msg.as_bytes();
        let get = |a: u32, b: u32| -> String {
            String::from_utf8_lossy(bytes.get(a as usize..b as usize).unwrap_or_default())
                .into_owned()
        };
        let mut out = Vec::new();
        for (i, tok) in self.buf.toks.iter().enumerate() {
            let Some(&h) = t.hashes.get(i) else { break };
            if h == self.wild {
                out.push(get(tok.raw_start, tok.raw_end));
            } else if let Some(&Pos::Pat { pre, suf }) = t.pos.get(i) {
                // One value per pattern: the raw token without the literal prefix and
                // suffix when they are literally there, else the whole token.
                let text = t.texts[i].as_bytes();
                let (a, b) = (tok.raw_start as usize, tok.raw_end as usize);
                let raw = bytes.get(a..b).unwrap_or_default();
                let (pre, suf) = (pre as usize, suf as usize);
                let (lp, ls) = (&text[..pre], &text[text.len() - suf..]);
                if raw.len() >= pre + suf && raw.starts_with(lp) && raw.ends_with(ls) {
                    out.push(get((a + pre) as u32, (b - suf) as u32));
                } else {
                    out.push(get(tok.raw_start, tok.raw_end));
                }
            } else {
                for p in &self.buf.params
                    [tok.first_param as usize..(tok.first_param + tok.n_params) as usize]
                {
                    out.push(get(p.0, p.1));
                }
            }
        }
        out
    }

    fn slot_of(&self, id: TemplateId) -> Option<&Template> {
        let slot = *self.by_id.get(&id.0)?;
        self.slots.get(slot as usize)?.as_ref()
    }

    /// The template text in Loghub's canonical form, wildcard `<*>`.
    pub fn template(&self, id: TemplateId) -> Option<String> {
        self.slot_of(id)
            .map(|t| crate::canonical::canonical_template(&t.texts.join(" ")))
    }

    /// The template's tokens as mined (before canonical rewriting), joined by spaces.
    pub fn raw_template(&self, id: TemplateId) -> Option<String> {
        self.slot_of(id).map(|t| t.texts.join(" "))
    }

    /// Messages seen for this template (0 if unknown or evicted).
    pub fn count(&self, id: TemplateId) -> u64 {
        self.slot_of(id).map_or(0, |t| t.count)
    }

    /// Every live template: id, canonical text, count; ordered by id.
    pub fn templates(&self) -> Vec<(TemplateId, String, u64)> {
        let mut v: Vec<_> = self
            .slots
            .iter()
            .flatten()
            .map(|t| {
                (
                    TemplateId(t.id),
                    crate::canonical::canonical_template(&t.texts.join(" ")),
                    t.count,
                )
            })
            .collect();
        v.sort_by_key(|x| x.0);
        v
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Approximate heap bytes held (templates, tree, cache, buffers).
    pub fn memory_bytes(&self) -> usize {
        self.template_bytes
            + self.slots.capacity() * std::mem::size_of::<Option<Template>>()
            + self.by_id.capacity() * 16
            + self.leaves.capacity() * 40
            + self
                .leaves
                .values()
                .map(|v| v.capacity() * 4)
                .sum::<usize>()
            + self.cache.capacity() * 24
            + self.buf.text.capacity()
            + self.buf.toks.capacity() * std::mem::size_of::<crate::mask::MTok>()
            + self.buf.params.capacity() * 8
    }

    pub(crate) fn live_templates(&self) -> impl Iterator<Item = &Template> {
        self.slots.iter().flatten()
    }

    pub(crate) fn wild_hash(&self) -> u64 {
        self.wild
    }
}

/// Whether a token fits the pattern `text[..pre] <*> text[len - suf..]`.
#[inline]
fn pat_matches(text: &[u8], pre: u32, suf: u32, tok: &[u8]) -> bool {
    let (pre, suf) = (pre as usize, suf as usize);
    pre + suf <= text.len()
        && tok.len() >= pre + suf
        && tok.starts_with(&text[..pre])
        && tok.ends_with(&text[text.len() - suf..])
}

/// The longest common literal prefix and suffix of a template token and a message token that
/// end (prefix) or start (suffix) at punctuation, so values are cut at segment boundaries
/// (`[LNKB]`/`[LNKC]` keep `[` and `]`, not `[LNK`), never inside a `<*>` (its bytes are not
/// punctuation), and never overlapping in either token.
fn common_affixes(a: &[u8], b: &[u8]) -> (usize, usize) {
    let n = a.len().min(b.len());
    let mut p = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    while p > 0 && !crate::mask::is_delim(a[p - 1]) {
        p -= 1;
    }
    let room = n - p;
    let mut s = a
        .iter()
        .rev()
        .zip(b.iter().rev())
        .take(room)
        .take_while(|(x, y)| x == y)
        .count();
    // A shared tail after a dot (`.example.com:<*>`, `.log`) belongs to the value: host and
    // file names are one variable in Loghub templates, while a dotted head (`org.apache.<*>`)
    // is a namespace and stays.
    while s > 0 && (!crate::mask::is_delim(a[a.len() - s]) || a[a.len() - s] == b'.') {
        s -= 1;
    }
    (p, s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_shape_same_id_and_generalises_stably() {
        let mut m = TemplateMiner::default();
        let a = m.mine("Invalid user alice from 10.0.0.1");
        assert!(a.is_new);
        let b = m.mine("Invalid user bob from 10.0.0.2");
        assert!(!b.is_new);
        assert_eq!(a.id, b.id);
        assert_eq!(
            m.template(a.id).as_deref(),
            Some("Invalid user <*> from <*>")
        );
        assert_eq!(b.params, vec!["bob".to_string(), "10.0.0.2".to_string()]);
        let c = m.mine("Invalid user carol from 10.0.0.3");
        assert_eq!(c.id, a.id);
        assert_eq!(m.count(a.id), 3);
        let d = m.mine("Connection closed by 10.0.0.1 port 22");
        assert_ne!(d.id, a.id);
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn different_lengths_are_different_templates() {
        let mut m = TemplateMiner::default();
        let a = m.mine_id("session opened for user root");
        let b = m.mine_id("session opened for user root by uid 0");
        assert_ne!(a, b);
    }

    #[test]
    fn eviction_at_cap() {
        let cfg = MinerConfig {
            max_templates: 16,
            ..MinerConfig::default()
        };
        let mut m = TemplateMiner::new(cfg);
        let mut first = None;
        for i in 0..200 {
            // Distinct first words and lengths so nothing merges.
            let msg = format!(
                "w{}x{} {}",
                (b'a' + (i % 26) as u8) as char,
                "y".repeat(i / 26),
                "z ".repeat(i % 7)
            );
            let id = m.mine_id(&msg);
            first.get_or_insert(id);
            assert!(m.len() <= 16);
        }
        assert!(m.stats().evicted_templates > 0);
        assert_eq!(m.count(first.unwrap_or(TemplateId(0))), 0);
        // Ids of evicted templates are not reused.
        let ids: Vec<_> = m.templates().into_iter().map(|t| t.0).collect();
        assert!(ids.iter().all(|i| i.0 > 16));
    }

    #[test]
    fn punctuation_around_merged_values_is_kept() {
        let mut m = TemplateMiner::default();
        let a = m.mine("pam auth failure; tty=ssh ruser= rhost=10.0.0.1 user=root");
        let b = m.mine("pam auth failure; tty=ssh ruser= rhost=host.example.com user=admin");
        assert_eq!(a.id, b.id);
        assert_eq!(
            m.template(a.id).as_deref(),
            Some("pam auth failure; tty=ssh ruser= rhost=<*> user=<*>")
        );
        assert_eq!(b.params, vec!["host.example.com", "admin"]);
        let c = m.mine("got no answer from [LNKB] source");
        m.mine("got no answer from [LNKC] source");
        assert_eq!(
            m.template(c.id).as_deref(),
            Some("got no answer from [<*>] source")
        );
        let d = m.mine("clock synchronized to LOCAL(0), stratum 10");
        m.mine("clock synchronized to 10.0.0.7, stratum 3");
        assert_eq!(
            m.template(d.id).as_deref(),
            Some("clock synchronized to <*>, stratum <*>")
        );
        // A value that no longer fits the pattern widens it, never narrows it.
        m.mine("clock synchronized to peer stratum 3");
        assert_eq!(
            m.template(d.id).as_deref(),
            Some("clock synchronized to <*> stratum <*>")
        );
        // A shared dotted tail is part of a host name, not kept literal.
        let e = m.mine("Now opening a proxy : alpha.corp.example.com:8030");
        m.mine("Now opening a proxy : beta.corp.example.com:8030");
        assert_eq!(
            m.template(e.id).as_deref(),
            Some("Now opening a proxy : <*>")
        );
    }

    #[test]
    fn affixes_stop_at_punctuation() {
        assert_eq!(common_affixes(b"rhost=a", b"rhost=bb"), (6, 0));
        assert_eq!(common_affixes(b"[LNKB]", b"[LNKC]"), (1, 1));
        assert_eq!(common_affixes(b"dadmin3", b"dadmin4"), (0, 0));
        assert_eq!(common_affixes(b"<*>,", b"root,"), (0, 1));
        assert_eq!(common_affixes(b"a.b", b"a.b.c"), (2, 0));
        assert_eq!(common_affixes(b"", b"x"), (0, 0));
    }

    #[test]
    fn fast_path_matches_full_path() {
        // The id-only path probes the cache with a hash-only walk; it must give the same ids
        // as the full walk (mine with parameters) on every line.
        let lines = [
            "Accepted password for root from 10.0.0.1 port 22 ssh2",
            "Accepted password for bob from 10.0.0.2 port 2222 ssh2",
            "GET /a/b?id=7 HTTP/1.1 200 12KB 3ms",
            "GET /c?id=8 HTTP/1.1 404 1KB 30ms",
            "delete blk_1 blk_2 /x/y /z 10.0.0.1 done",
            "delete blk_3 /x/y done",
            "id 123e4567-e89b-12d3-a456-426614174000 at https://x.example/a?b=1 ok",
            "flag=true value=NULL (uid=0) [preauth] <*> <*>:5 a<*>b",
            "x,y z.1.2 -42 =-1 ::1 //a/b",
            "",
            "   ",
            "ünïcödé wörds 12 ünïcödé",
        ];
        let mut fast = TemplateMiner::new(MinerConfig {
            extract_params: false,
            max_tokens: 6,
            ..MinerConfig::default()
        });
        let mut full = TemplateMiner::new(MinerConfig {
            max_tokens: 6,
            ..MinerConfig::default()
        });
        for _ in 0..3 {
            for l in lines {
                assert_eq!(fast.mine_id(l), full.mine(l).id, "{l}");
            }
        }
        assert_eq!(fast.templates(), full.templates());
        assert_eq!(fast.stats(), full.stats());
        for l in lines {
            let mut buf = Masked::default();
            mask_message(l.as_bytes(), &mut buf, true, 6);
            assert_eq!(
                shape_key(l.as_bytes(), 6),
                (buf.key, buf.dropped_tokens),
                "{l}"
            );
        }
    }

    #[test]
    fn huge_and_garbage_inputs_are_bounded() {
        let mut m = TemplateMiner::default();
        let big = "x".repeat(10 << 20);
        let r = m.mine(&big);
        assert_eq!(m.stats().truncated_messages, 1);
        assert!(m.template(r.id).is_some_and(|t| t.len() <= 16 << 10));
        let garbage: Vec<u8> = (0..1_000_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let s = String::from_utf8_lossy(&garbage);
        for chunk in s.as_bytes().chunks(4096) {
            let line = String::from_utf8_lossy(chunk);
            m.mine(&line);
        }
        let spaced = "a ".repeat(5 << 20);
        m.mine(&spaced);
        assert!(m.stats().folded_tokens > 0);
        assert!(m.memory_bytes() < 64 << 20, "{}", m.memory_bytes());
    }
}

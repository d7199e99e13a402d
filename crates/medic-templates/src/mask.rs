//! The hot-path tokenizer and variable masker: no regex, one table lookup per byte, no
//! allocation per line (buffers are reused by the caller).
//!
//! A message is split on ASCII whitespace. Inside a token, variables are found per *segment*
//! (text between delimiters such as `.:,=()[]-`), because real ids are glued to punctuation
//! (`blk_-123`, `(uid=0)`, `10.0.0.1:50010`). A segment is a variable when it looks like a
//! number, an id with several digits, a hex value, a boolean or null; a path (`/a/b`) runs to the
//! next path delimiter; URLs and UUIDs are masked whole. Masked text uses the Loghub wildcard
//! `<*>`, and adjacent variables joined by `.` collapse into one (IPs, versions, decimals) so
//! the grouping does not depend on how many dots a value has.

pub(crate) const WILDCARD: &[u8] = b"<*>";

const WS: u8 = 1;
const DELIM: u8 = 2; // token delimiter (splits segments)
const PATHDELIM: u8 = 4; // ends a path
const DIGIT: u8 = 8;
const ALPHA: u8 = 16;
const HEX: u8 = 32;
const OPEN: u8 = 64; // leading punctuation stripped before whole-token checks
const CLOSE: u8 = 128; // trailing punctuation stripped before whole-token checks

const fn build_table() -> [u8; 256] {
    let mut t = [0u8; 256];
    let ws = b" \t\r\n\x0b\x0c";
    let mut i = 0;
    while i < ws.len() {
        t[ws[i] as usize] |= WS;
        i += 1;
    }
    let delims = b",!;:=|\"'[](){}.-+@#$%&/";
    i = 0;
    while i < delims.len() {
        t[delims[i] as usize] |= DELIM;
        i += 1;
    }
    let pd = b",!;:=|\"'[](){}";
    i = 0;
    while i < pd.len() {
        t[pd[i] as usize] |= PATHDELIM;
        i += 1;
    }
    let mut c = b'0';
    while c <= b'9' {
        t[c as usize] |= DIGIT | HEX;
        c += 1;
    }
    c = b'a';
    while c <= b'z' {
        t[c as usize] |= ALPHA;
        t[(c - 32) as usize] |= ALPHA;
        if c <= b'f' {
            t[c as usize] |= HEX;
            t[(c - 32) as usize] |= HEX;
        }
        c += 1;
    }
    let open = b"([{<\"'";
    i = 0;
    while i < open.len() {
        t[open[i] as usize] |= OPEN;
        i += 1;
    }
    let close = b")]}>\"',;:.!?";
    i = 0;
    while i < close.len() {
        t[close[i] as usize] |= CLOSE;
        i += 1;
    }
    t
}

static CLASS: [u8; 256] = build_table();

/// Per byte, its contribution to a segment's (digits, letters, non-hex letters) counts packed
/// in 40-bit fields of a u128: one add per byte instead of three branches. Fields cannot
/// overflow (a segment is shorter than 2^40 bytes).
const fn build_inc() -> [u128; 256] {
    let mut t = [0u128; 256];
    let mut i = 0;
    while i < 256 {
        let c = CLASS[i];
        if c & DIGIT != 0 {
            t[i] = 1;
        } else if c & ALPHA != 0 {
            t[i] = 1 << 40;
            if c & HEX == 0 {
                t[i] += 1 << 80;
            }
        }
        i += 1;
    }
    t
}

static INC: [u128; 256] = build_inc();
const FIELD: u128 = (1 << 40) - 1;

#[inline]
fn class(b: u8) -> u8 {
    CLASS[b as usize]
}

/// Punctuation that splits a token into segments (where a pattern's literal part may end).
#[inline]
pub(crate) fn is_delim(b: u8) -> bool {
    class(b) & DELIM != 0
}

/// One masked token: its masked text is `text[start..end]` of the owning [`Masked`].
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct MTok {
    pub start: u32,
    pub end: u32,
    pub hash: u64,
    /// Raw byte range of the token in the message (for parameters).
    pub raw_start: u32,
    pub raw_end: u32,
    /// The masked text contains a wildcard or a digit: not usable as a tree key.
    pub unkeyable: bool,
    /// The masked text holds a wildcard.
    pub var: bool,
    /// The token needed no masking: its text is the raw message bytes, not in `text`.
    pub raw: bool,
    /// Index of the first parameter range of this token in `params` and how many there are.
    pub first_param: u32,
    pub n_params: u32,
}

/// Reusable per-line buffers.
#[derive(Default, Debug)]
pub(crate) struct Masked {
    pub text: Vec<u8>,
    pub toks: Vec<MTok>,
    /// Raw byte ranges (in the message) of masked pieces, filled only when asked.
    pub params: Vec<(u32, u32)>,
    /// Tokens beyond the cap that were folded into the last token.
    pub dropped_tokens: usize,
    /// The line's shape key (the same value [`shape_key`] computes).
    pub key: u64,
}

impl Masked {
    pub fn tok_text<'a>(&'a self, msg: &'a [u8], t: &MTok) -> &'a [u8] {
        if t.raw {
            &msg[t.raw_start as usize..t.raw_end as usize]
        } else {
            &self.text[t.start as usize..t.end as usize]
        }
    }

    #[cfg(test)]
    fn is_wild(&self, t: &MTok) -> bool {
        !t.raw && &self.text[t.start as usize..t.end as usize] == WILDCARD
    }
}

/// What the masker reports while it walks a line. One walk drives two sinks: [`KeySink`]
/// only hashes the masked shape (the miner's cache probe, no text written), [`FullSink`]
/// also writes the masked tokens. Both run the same walk, so they cannot disagree.
trait Sink {
    /// A token with nothing to mask (`a..b` are its raw bytes).
    fn word(&mut self, msg: &[u8], a: usize, b: usize);
    /// A token that is wholly one variable.
    fn whole_wild(&mut self, a: usize, b: usize);
    /// A token with segments begins at `s`.
    fn tok_begin(&mut self, s: usize);
    /// A literal piece of the current token (absolute range, non-empty).
    fn lit(&mut self, msg: &[u8], a: usize, b: usize);
    /// A variable piece of the current token.
    fn var(&mut self, a: usize, b: usize);
    /// The last variable piece now ends at `b` (`<*>.<*>` merged).
    fn extend_var(&mut self, b: usize);
    /// Forget the current token's pieces (a URL found late is masked whole).
    fn tok_reset(&mut self);
    /// The current token `s..e` ends; `var`: it holds a wildcard (else it is its raw bytes).
    fn tok_end(&mut self, msg: &[u8], s: usize, e: usize, var: bool, unkeyable: bool);
    /// Keep the token just reported.
    fn commit(&mut self);
    /// The token just reported (a whole wildcard ending at `e`) joins the previous one.
    fn collapse(&mut self, e: usize);
    /// The rest of the line from `s` is one wildcard token; `dropped` tokens were folded.
    fn fold(&mut self, s: usize, n: usize, dropped: usize);
    /// The line ended with `tokens` tokens.
    fn finish(&mut self, tokens: usize);
}

const TOK_SEED: u64 = 0x6A09_E667_F3BC_C908;
const WILD_PIECE: u64 = 0xB7E1_5162_8AED_2A6B;
const FOLD_MARK: u64 = 0x3C6E_F372_FE94_F82B;

/// The shape key: per token a hash of its masked pieces, combined over the line with the
/// token count. Equal masked token sequences give equal keys.
#[derive(Default)]
struct KeySink {
    key: u64,
    cur: u64,
}

impl Sink for KeySink {
    #[inline(always)]
    fn word(&mut self, msg: &[u8], a: usize, b: usize) {
        self.cur = crate::hash::hash_fast(&msg[a..b]);
    }
    #[inline(always)]
    fn whole_wild(&mut self, _a: usize, _b: usize) {
        // The same value a segmented token whose text is exactly `<*>` ends with.
        self.cur = crate::hash::combine(TOK_SEED, WILD_PIECE);
    }
    #[inline(always)]
    fn tok_begin(&mut self, _s: usize) {
        self.cur = TOK_SEED;
    }
    #[inline(always)]
    fn lit(&mut self, msg: &[u8], a: usize, b: usize) {
        self.cur = crate::hash::combine(self.cur, crate::hash::hash_fast(&msg[a..b]));
    }
    #[inline(always)]
    fn var(&mut self, _a: usize, _b: usize) {
        self.cur = crate::hash::combine(self.cur, WILD_PIECE);
    }
    #[inline(always)]
    fn extend_var(&mut self, _b: usize) {}
    #[inline(always)]
    fn tok_reset(&mut self) {
        self.cur = TOK_SEED;
    }
    #[inline(always)]
    fn tok_end(&mut self, msg: &[u8], s: usize, e: usize, var: bool, _unkeyable: bool) {
        if !var {
            // Unmasked: the same value as a plain word with these bytes.
            self.cur = crate::hash::hash_fast(&msg[s..e]);
        }
    }
    #[inline(always)]
    fn commit(&mut self) {
        self.key = crate::hash::combine(self.key, self.cur);
    }
    #[inline(always)]
    fn collapse(&mut self, _e: usize) {}
    #[inline(always)]
    fn fold(&mut self, _s: usize, _n: usize, _dropped: usize) {
        self.key = crate::hash::combine(self.key, FOLD_MARK);
    }
    #[inline(always)]
    fn finish(&mut self, tokens: usize) {
        self.key = crate::hash::fmix(crate::hash::combine(self.key, tokens as u64));
    }
}

/// Writes masked tokens (and parameter ranges when asked) into a [`Masked`], and the key.
struct FullSink<'a> {
    out: &'a mut Masked,
    want_params: bool,
    k: KeySink,
    tok_start: usize,
    first_param: usize,
}

impl Sink for FullSink<'_> {
    #[inline(always)]
    fn word(&mut self, msg: &[u8], a: usize, b: usize) {
        self.k.word(msg, a, b);
        self.out.toks.push(MTok {
            start: 0,
            end: 0,
            // Template hashes use the persisted hash, not the cache's.
            hash: crate::hash::hash_bytes(&msg[a..b]),
            raw_start: a as u32,
            raw_end: b as u32,
            unkeyable: false,
            var: false,
            raw: true,
            first_param: self.out.params.len() as u32,
            n_params: 0,
        });
    }
    #[inline(always)]
    fn whole_wild(&mut self, a: usize, b: usize) {
        self.k.whole_wild(a, b);
        push_whole_wild(self.out, a, b, self.want_params);
    }
    #[inline(always)]
    fn tok_begin(&mut self, s: usize) {
        self.k.tok_begin(s);
        self.tok_start = self.out.text.len();
        self.first_param = self.out.params.len();
    }
    #[inline(always)]
    fn lit(&mut self, msg: &[u8], a: usize, b: usize) {
        self.k.lit(msg, a, b);
        self.out.text.extend_from_slice(&msg[a..b]);
    }
    #[inline(always)]
    fn var(&mut self, a: usize, b: usize) {
        self.k.var(a, b);
        self.out.text.extend_from_slice(WILDCARD);
        if self.want_params {
            self.out.params.push((a as u32, b as u32));
        }
    }
    #[inline(always)]
    fn extend_var(&mut self, b: usize) {
        if self.want_params
            && let Some(last) = self.out.params.last_mut()
        {
            last.1 = b as u32;
        }
    }
    #[inline(always)]
    fn tok_reset(&mut self) {
        self.k.tok_reset();
        self.out.text.truncate(self.tok_start);
        self.out.params.truncate(self.first_param);
    }
    #[inline(always)]
    fn tok_end(&mut self, msg: &[u8], s: usize, e: usize, var: bool, unkeyable: bool) {
        self.k.tok_end(msg, s, e, var, unkeyable);
        let (start, end) = (self.tok_start, self.out.text.len());
        // Without a variable nothing was written: the token is its raw bytes.
        let hash = if !var {
            crate::hash::hash_bytes(&msg[s..e])
        } else if &self.out.text[start..end] == WILDCARD {
            wild_hash()
        } else {
            crate::hash::hash_bytes(&self.out.text[start..end])
        };
        self.out.toks.push(MTok {
            start: start as u32,
            end: end as u32,
            hash,
            raw_start: s as u32,
            raw_end: e as u32,
            unkeyable,
            var,
            raw: !var,
            first_param: self.first_param as u32,
            n_params: (self.out.params.len() - self.first_param) as u32,
        });
    }
    #[inline(always)]
    fn commit(&mut self) {
        self.k.commit();
    }
    #[inline(always)]
    fn collapse(&mut self, _e: usize) {
        self.k.collapse(_e);
        let out = &mut *self.out;
        let Some(last) = out.toks.pop() else { return };
        out.text.truncate(last.start as usize);
        if let Some(p) = out.toks.last_mut() {
            p.raw_end = last.raw_end;
            if last.n_params > 0 && p.n_params > 0 {
                out.params.truncate(last.first_param as usize);
                if let Some(pp) = out.params.last_mut() {
                    pp.1 = last.raw_end;
                }
            }
        }
    }
    #[inline(always)]
    fn fold(&mut self, s: usize, n: usize, dropped: usize) {
        self.k.fold(s, n, dropped);
        self.out.dropped_tokens = dropped;
        push_whole_wild(self.out, s, n, self.want_params);
    }
    #[inline(always)]
    fn finish(&mut self, tokens: usize) {
        self.k.finish(tokens);
        self.out.key = self.k.key;
    }
}

/// Masks `msg` into `out` (cleared first). At most `max_tokens` tokens are kept: the rest of
/// the message becomes one final wildcard token so long tails neither blow up the tree nor are
/// silently lost (the count is in `dropped_tokens`). `out.key` is the line's [`shape_key`].
pub(crate) fn mask_message(msg: &[u8], out: &mut Masked, want_params: bool, max_tokens: usize) {
    out.text.clear();
    out.toks.clear();
    out.params.clear();
    out.dropped_tokens = 0;
    // Text grows by at most two bytes per masked byte (`1` → `<*>`): one reservation per
    // line instead of growth checks mid-line.
    out.text.reserve(msg.len().saturating_mul(3));
    let mut sink = FullSink {
        out,
        want_params,
        k: KeySink::default(),
        tok_start: 0,
        first_param: 0,
    };
    walk(msg, &mut sink, max_tokens);
}

/// The line's shape key and folded-token count, without writing anything: the miner's cache
/// probe (a repeated shape costs one walk over the bytes and one lookup).
pub(crate) fn shape_key(msg: &[u8], max_tokens: usize) -> (u64, usize) {
    let mut sink = KeySink::default();
    let dropped = walk(msg, &mut sink, max_tokens);
    (sink.key, dropped)
}

/// The masker: tokens split on whitespace, each classified with one table lookup per byte;
/// returns how many tokens were folded at the cap.
#[inline(always)]
fn walk<S: Sink>(msg: &[u8], sink: &mut S, max_tokens: usize) -> usize {
    let n = msg.len();
    let mut i = 0;
    let max_tokens = max_tokens.max(1);
    let mut count = 0usize;
    // The kind of the whole-token wildcard run the last token belongs to, if it is one.
    let mut run: Option<bool> = None;
    while i < n {
        // Slice iterators, not indexing: no bounds check per byte.
        i += msg[i..]
            .iter()
            .position(|&b| class(b) & WS == 0)
            .unwrap_or(n - i);
        if i >= n {
            break;
        }
        let s = i;
        let (len, or, and) = scan_token(&msg[s..]);
        i = s + len;
        if count + 1 == max_tokens && i < n {
            // Fold the rest (if more tokens follow) into one wildcard.
            let rest_has_more = msg[i..].iter().any(|&b| class(b) & WS == 0);
            if rest_has_more {
                let mut tokens = 0usize;
                let mut in_tok = false;
                for &b in &msg[s..] {
                    let w = class(b) & WS != 0;
                    if !w && !in_tok {
                        tokens += 1;
                    }
                    in_tok = !w;
                }
                let dropped = tokens.saturating_sub(1);
                sink.fold(s, n, dropped);
                sink.finish(count + 1);
                return dropped;
            }
        }
        let whole =
            if and & DIGIT != 0 || (or & (DIGIT | DELIM) == 0 && is_bool_or_null(&msg[s..i])) {
                // All digits, or a boolean / null: the whole token is one value, no segments.
                sink.whole_wild(s, i);
                true
            } else if or & (DIGIT | DELIM) == 0 {
                // A plain word: nothing to mask, nothing to copy.
                sink.word(msg, s, i);
                false
            } else {
                sink.tok_begin(s);
                let (var, whole) = mask_complex(msg, s, i, sink);
                sink.tok_end(msg, s, i, var, var || or & DIGIT != 0);
                whole
            };
        if whole {
            // A run of whole-token variables of one kind (`delete blk_1 blk_2 blk_3`,
            // `IRQs 3 4 5`) is one wildcard token, so lists of any length share a template.
            let kind = value_kind(msg, s);
            if run == Some(kind) {
                sink.collapse(i);
                continue;
            }
            run = Some(kind);
        } else {
            run = None;
        }
        count += 1;
        sink.commit();
    }
    sink.finish(count);
    0
}

/// The token's length (up to the first whitespace) and the OR / AND of its byte classes, in
/// one pass (slice iteration: no bounds check per byte).
#[inline(always)]
fn scan_token(t: &[u8]) -> (usize, u8, u8) {
    let mut or = 0u8;
    let mut and = 0xFFu8;
    for (k, &b) in t.iter().enumerate() {
        let c = class(b);
        if c & WS != 0 {
            return (k, or, and);
        }
        or |= c;
        and &= c;
    }
    (t.len(), or, and)
}

/// Appends a token that is wholly one variable.
#[inline]
fn push_whole_wild(out: &mut Masked, s: usize, e: usize, want_params: bool) {
    let start = out.text.len() as u32;
    out.text.extend_from_slice(WILDCARD);
    let first_param = out.params.len() as u32;
    if want_params {
        out.params.push((s as u32, e as u32));
    }
    out.toks.push(MTok {
        start,
        end: start + WILDCARD.len() as u32,
        hash: wild_hash(),
        raw_start: s as u32,
        raw_end: e as u32,
        unkeyable: true,
        var: true,
        raw: false,
        first_param,
        n_params: u32::from(want_params),
    });
}

#[inline(always)]
fn is_bool_or_null(w: &[u8]) -> bool {
    match w.len() {
        4 => w.eq_ignore_ascii_case(b"true") || w.eq_ignore_ascii_case(b"null"),
        5 => w.eq_ignore_ascii_case(b"false"),
        _ => false,
    }
}

/// The hash of a whole-token wildcard (computed once).
#[inline]
pub(crate) fn wild_hash() -> u64 {
    static H: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *H.get_or_init(|| crate::hash::hash_bytes(WILDCARD))
}

/// A cheap kind of a whole-token value: a path or anything else. Lists are of one kind;
/// a path next to another value (`allocateBlock: /a/part-1 blk_2`) names two things.
#[inline]
fn value_kind(msg: &[u8], at: usize) -> bool {
    msg.get(at) == Some(&b'/')
}

/// Piece writer for one token: token-relative bytes before `lit_from` are reported.
struct TokWriter {
    s: usize,
    lit_from: usize,
    /// End (token-relative) of the last variable written, for `<*>.<*>` merging.
    last_var_end: Option<usize>,
    vars: u32,
    lits: u32,
}

impl TokWriter {
    fn new(s: usize) -> Self {
        TokWriter {
            s,
            lit_from: 0,
            last_var_end: None,
            vars: 0,
            lits: 0,
        }
    }

    #[inline(always)]
    fn var<S: Sink>(&mut self, msg: &[u8], sink: &mut S, a: usize, b: usize) {
        let s = self.s;
        // `<*>.<*>` collapses into one variable (IPs, versions, decimals).
        if self
            .last_var_end
            .is_some_and(|le| le == self.lit_from && a == le + 1 && msg[s + le] == b'.')
        {
            sink.extend_var(s + b);
        } else {
            if a > self.lit_from {
                sink.lit(msg, s + self.lit_from, s + a);
                self.lits += 1;
            }
            sink.var(s + a, s + b);
            self.vars += 1;
        }
        self.lit_from = b;
        self.last_var_end = Some(b);
    }

    /// Reports the literal tail; returns (holds a wildcard, is exactly one wildcard).
    #[inline(always)]
    fn end<S: Sink>(&mut self, msg: &[u8], sink: &mut S, n: usize) -> (bool, bool) {
        if self.vars == 0 {
            return (false, false);
        }
        if n > self.lit_from {
            sink.lit(msg, self.s + self.lit_from, self.s + n);
            self.lits += 1;
        }
        (true, self.vars == 1 && self.lits == 0)
    }
}

/// Masks one token `s..e` with delimiters or digits. Returns (holds a wildcard, is exactly
/// one wildcard); without a wildcard nothing was reported.
#[inline(always)]
fn mask_complex<S: Sink>(msg: &[u8], s: usize, e: usize, sink: &mut S) -> (bool, bool) {
    let tok = &msg[s..e];
    let n = tok.len();
    if n >= 36
        && let Some((a, b)) = strip(tok)
        && is_uuid(&tok[a..b])
    {
        return whole(msg, s, e, a, b, sink);
    }
    let mut w = TokWriter::new(s);
    let mut i = 0;
    let mut seg = 0;
    // Packed (digits, letters, non-hex letters) of the current segment, see `INC`.
    let mut counts = 0u128;
    let counted = |counts: u128| {
        (
            (counts & FIELD) as usize,
            ((counts >> 40) & FIELD) as usize,
            ((counts >> 80) & FIELD) as usize,
        )
    };
    while i < n {
        let c = tok[i];
        let cl = class(c);
        if cl & DELIM == 0 {
            counts += INC[c as usize];
            i += 1;
            continue;
        }
        // At the start of a path-delimited unit, where a `/path` may begin.
        let unit_start = i == 0 || class(tok[i - 1]) & PATHDELIM != 0;
        if c == b'/'
            && unit_start
            && i + 1 < n
            && tok[i + 1] != b'/'
            && class(tok[i + 1]) & PATHDELIM == 0
        {
            // A path runs to the next path delimiter (Loghub's path-like-string rule).
            let mut j = i + 1;
            while j < n && class(tok[j]) & PATHDELIM == 0 {
                j += 1;
            }
            w.var(msg, sink, i, j);
            i = j;
            seg = j;
            counts = 0;
            continue;
        }
        if c == b':'
            && tok.get(i + 1..i + 3) == Some(b"//")
            && let Some((a, b)) = strip(tok)
            && a <= seg
            && is_scheme(&tok[a..i])
        {
            // A URL: everything inside the surrounding punctuation is one variable.
            sink.tok_reset();
            return whole(msg, s, e, a, b.max(i + 3), sink);
        }
        // A minus sign glued to digits belongs to the number (`blk_-42`, `=-1`).
        if c == b'-'
            && i + 1 < n
            && class(tok[i + 1]) & DIGIT != 0
            && (i == seg || tok[i - 1] == b'_')
        {
            i += 1;
            continue;
        }
        if i > seg && seg_is_var(&tok[seg..i], counted(counts)) {
            w.var(msg, sink, seg, i);
        }
        i += 1;
        seg = i;
        counts = 0;
    }
    if n > seg && seg_is_var(&tok[seg..n], counted(counts)) {
        w.var(msg, sink, seg, n);
    }
    w.end(msg, sink, n)
}

/// The token's core without surrounding punctuation, or `None` if nothing is left.
fn strip(tok: &[u8]) -> Option<(usize, usize)> {
    let n = tok.len();
    let mut a = 0;
    while a < n && class(tok[a]) & OPEN != 0 {
        a += 1;
    }
    let mut b = n;
    while b > a && class(tok[b - 1]) & CLOSE != 0 {
        b -= 1;
    }
    (a < b).then_some((a, b))
}

/// Reports the token's core `a..b` (token-relative) as one variable.
fn whole<S: Sink>(
    msg: &[u8],
    s: usize,
    e: usize,
    a: usize,
    b: usize,
    sink: &mut S,
) -> (bool, bool) {
    let ve = (s + b).min(e);
    if a > 0 {
        sink.lit(msg, s, s + a);
    }
    sink.var(s + a, ve);
    if ve < e {
        sink.lit(msg, ve, e);
    }
    (true, a == 0 && ve == e)
}

#[inline(always)]
fn seg_is_var(seg: &[u8], (digits, alpha, nonhex): (usize, usize, usize)) -> bool {
    if digits == 0 {
        return (3..=5).contains(&seg.len())
            && (seg.eq_ignore_ascii_case(b"true")
                || seg.eq_ignore_ascii_case(b"false")
                || seg.eq_ignore_ascii_case(b"null"));
    }
    // Numbers, sizes and durations start with a digit (or a sign); ids carry several digits;
    // words with one digit (`ssh2`, `log4j`) are names, unless they are mostly not letters.
    let first = seg[0];
    first.is_ascii_digit()
        || first == b'-'
        || digits >= 2
        || alpha < 2
        || (nonhex == 0 && seg.len() >= 8)
}

fn is_scheme(p: &[u8]) -> bool {
    !p.is_empty()
        && p.iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'.' | b'-'))
}

fn is_uuid(core: &[u8]) -> bool {
    core.len() == 36
        && core.iter().enumerate().all(|(i, &b)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                b == b'-'
            } else {
                b.is_ascii_hexdigit()
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> String {
        let mut out = Masked::default();
        mask_message(s.as_bytes(), &mut out, true, 64);
        out.toks
            .iter()
            .map(|t| String::from_utf8_lossy(out.tok_text(s.as_bytes(), t)).into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn masking_classes() {
        assert_eq!(
            m("connected to 10.251.73.220:50010"),
            "connected to <*>:<*>"
        );
        assert_eq!(m("ip 10.0.0.1"), "ip <*>");
        assert_eq!(m("took 350ms and 12.5s"), "took <*> and <*>");
        assert_eq!(m("size 64MB"), "size <*>");
        assert_eq!(m("hex 0xdeadBEEF and ff12ab34cd"), "hex <*> and <*>");
        assert_eq!(m("id 123e4567-e89b-12d3-a456-426614174000"), "id <*>");
        assert_eq!(m("open /var/log/syslog failed"), "open <*> failed");
        assert_eq!(m("file:/tmp/x.conf"), "file:<*>");
        assert_eq!(m("see https://example.com/a?b=1 now"), "see <*> now");
        assert_eq!(
            m("at 2015-07-29 17:41:44,747"),
            "at <*>-<*>-<*> <*>:<*>:<*>,<*>"
        );
        assert_eq!(m("block blk_-6952295868487656571 done"), "block <*> done");
        assert_eq!(m("by (uid=0)"), "by (uid=<*>)");
        assert_eq!(m("node MININT-FNANLI5 ssh2"), "node MININT-FNANLI5 ssh2");
        assert_eq!(m("task attempt_1445144423722_0020_m_000001_0"), "task <*>");
        assert_eq!(m("flag=true value=NULL"), "flag=<*> value=<*>");
        assert_eq!(m("delta -42 x"), "delta <*> x");
        assert_eq!(m("plain words only"), "plain words only");
        assert_eq!(
            m("delete blk_11 blk_22 /a/b /c/d 10.0.0.1 done"),
            "delete <*> <*> <*> done"
        );
    }

    #[test]
    fn params_are_raw_values() {
        let mut out = Masked::default();
        let s = "from 10.0.0.1:22 user bob id=77";
        mask_message(s.as_bytes(), &mut out, true, 64);
        let ps: Vec<&str> = out
            .params
            .iter()
            .map(|&(a, b)| &s[a as usize..b as usize])
            .collect();
        assert_eq!(ps, vec!["10.0.0.1", "22", "77"]);
    }

    #[test]
    fn token_cap_folds_the_tail() {
        let mut out = Masked::default();
        mask_message(b"a b c d e f", &mut out, false, 3);
        assert_eq!(out.toks.len(), 3);
        assert!(out.is_wild(&out.toks[2]));
        assert_eq!(out.dropped_tokens, 3);
    }
}

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

#[inline]
fn class(b: u8) -> u8 {
    CLASS[b as usize]
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
    /// Where the token being masked starts in `text` (merges never reach into earlier tokens).
    cur: usize,
}

impl Masked {
    pub fn tok_text<'a>(&'a self, msg: &'a [u8], t: &MTok) -> &'a [u8] {
        if t.raw {
            &msg[t.raw_start as usize..t.raw_end as usize]
        } else {
            &self.text[t.start as usize..t.end as usize]
        }
    }

    fn is_wild(&self, t: &MTok) -> bool {
        !t.raw && &self.text[t.start as usize..t.end as usize] == WILDCARD
    }
}

/// Masks `msg` into `out` (cleared first). At most `max_tokens` tokens are kept: the rest of
/// the message becomes one final wildcard token so long tails neither blow up the tree nor are
/// silently lost (the count is in `dropped_tokens`).
pub(crate) fn mask_message(msg: &[u8], out: &mut Masked, want_params: bool, max_tokens: usize) {
    out.text.clear();
    out.toks.clear();
    out.params.clear();
    out.dropped_tokens = 0;
    let n = msg.len();
    let mut i = 0;
    let max_tokens = max_tokens.max(1);
    while i < n {
        while i < n && class(msg[i]) & WS != 0 {
            i += 1;
        }
        if i >= n {
            break;
        }
        let s = i;
        // Find the token's end and OR its byte classes in the same pass.
        let mut or = 0u8;
        while i < n {
            let c = class(msg[i]);
            if c & WS != 0 {
                break;
            }
            or |= c;
            i += 1;
        }
        if out.toks.len() + 1 == max_tokens && i < n {
            // Fold the rest (if more tokens follow) into one wildcard.
            let rest_has_more = msg[i..].iter().any(|&b| class(b) & WS == 0);
            if rest_has_more {
                let mut count = 0usize;
                let mut in_tok = false;
                for &b in &msg[s..] {
                    let w = class(b) & WS != 0;
                    if !w && !in_tok {
                        count += 1;
                    }
                    in_tok = !w;
                }
                out.dropped_tokens = count.saturating_sub(1);
                let start = out.text.len() as u32;
                out.text.extend_from_slice(WILDCARD);
                let first_param = out.params.len() as u32;
                if want_params {
                    out.params.push((s as u32, n as u32));
                }
                out.toks.push(MTok {
                    start,
                    end: out.text.len() as u32,
                    hash: crate::hash::hash_bytes(WILDCARD),
                    raw_start: s as u32,
                    raw_end: n as u32,
                    unkeyable: true,
                    var: true,
                    raw: false,
                    first_param,
                    n_params: u32::from(want_params),
                });
                return;
            }
        }
        if or & (DIGIT | DELIM) == 0 && !(3..=5).contains(&(i - s)) {
            // A plain word: nothing to mask, nothing to copy.
            out.toks.push(MTok {
                start: 0,
                end: 0,
                hash: crate::hash::hash_bytes(&msg[s..i]),
                raw_start: s as u32,
                raw_end: i as u32,
                unkeyable: false,
                var: false,
                raw: true,
                first_param: out.params.len() as u32,
                n_params: 0,
            });
        } else {
            mask_token(msg, s, i, or, out, want_params);
            collapse_wildcard_run(out);
        }
    }
}

/// A run of whole-token variables (`delete blk_1 blk_2 blk_3`) becomes one wildcard token, so
/// lists of any length share one template.
#[inline]
fn collapse_wildcard_run(out: &mut Masked) {
    let k = out.toks.len();
    if k < 2 {
        return;
    }
    let (last, prev) = (out.toks[k - 1], out.toks[k - 2]);
    if !out.is_wild(&last) || !out.is_wild(&prev) {
        return;
    }
    out.text.truncate(last.start as usize);
    out.toks.pop();
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

#[inline]
fn mask_token(msg: &[u8], s: usize, e: usize, or: u8, out: &mut Masked, want_params: bool) {
    let start = out.text.len();
    out.cur = start;
    let first_param = out.params.len();
    let var = mask_complex(msg, s, e, out, want_params);
    let unkeyable = var || or & DIGIT != 0;
    let end = out.text.len();
    // Without a variable nothing was written: the token is its raw bytes.
    let hash = if var {
        crate::hash::hash_bytes(&out.text[start..end])
    } else {
        crate::hash::hash_bytes(&msg[s..e])
    };
    out.toks.push(MTok {
        start: start as u32,
        end: end as u32,
        hash,
        raw_start: s as u32,
        raw_end: e as u32,
        unkeyable,
        var,
        raw: !var,
        first_param: first_param as u32,
        n_params: (out.params.len() - first_param) as u32,
    });
}

/// Writer state for one token: bytes before `lit_from` are already in `out.text`.
struct TokWriter {
    s: usize,
    lit_from: usize,
    /// End (token-relative) of the last variable written, for `<*>.<*>` merging.
    last_var_end: Option<usize>,
    any: bool,
}

impl TokWriter {
    #[inline]
    fn var(&mut self, msg: &[u8], out: &mut Masked, a: usize, b: usize, want_params: bool) {
        let tok = &msg[self.s..];
        // `<*>.<*>` collapses into one variable (IPs, versions, decimals).
        if self
            .last_var_end
            .is_some_and(|le| le == self.lit_from && a == le + 1 && tok[le] == b'.')
        {
            if want_params && let Some(last) = out.params.last_mut() {
                last.1 = (self.s + b) as u32;
            }
        } else {
            out.text.extend_from_slice(&tok[self.lit_from..a]);
            out.text.extend_from_slice(WILDCARD);
            if want_params {
                out.params.push(((self.s + a) as u32, (self.s + b) as u32));
            }
        }
        self.lit_from = b;
        self.last_var_end = Some(b);
        self.any = true;
    }
}

/// Masks one token with delimiters or digits. Returns whether a wildcard was written (when
/// not, nothing was written).
fn mask_complex(msg: &[u8], s: usize, e: usize, out: &mut Masked, want_params: bool) -> bool {
    let tok = &msg[s..e];
    let n = tok.len();
    if n >= 36
        && let Some((a, b)) = strip(tok)
        && is_uuid(&tok[a..b])
    {
        return whole(msg, s, e, a, b, out, want_params);
    }
    let p0 = out.params.len();
    let mut w = TokWriter {
        s,
        lit_from: 0,
        last_var_end: None,
        any: false,
    };
    let mut i = 0;
    let mut seg = 0;
    let (mut digits, mut alpha, mut nonhex) = (0usize, 0usize, 0usize);
    // At the start of a path-delimited unit, where a `/path` may begin.
    let mut unit_start = true;
    while i < n {
        let c = tok[i];
        let cl = class(c);
        if cl & DELIM == 0 {
            if cl & DIGIT != 0 {
                digits += 1;
            } else if cl & ALPHA != 0 {
                alpha += 1;
                nonhex += usize::from(cl & HEX == 0);
            }
            unit_start = false;
            i += 1;
            continue;
        }
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
            w.var(msg, out, i, j, want_params);
            i = j;
            seg = j;
            (digits, alpha, nonhex) = (0, 0, 0);
            unit_start = false;
            continue;
        }
        if c == b':'
            && tok.get(i + 1..i + 3) == Some(b"//")
            && let Some((a, b)) = strip(tok)
            && a <= seg
            && is_scheme(&tok[a..i])
        {
            // A URL: everything inside the surrounding punctuation is one variable.
            out.text.truncate(out.cur);
            out.params.truncate(p0);
            return whole(msg, s, e, a, b.max(i + 3), out, want_params);
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
        if i > seg && seg_is_var(&tok[seg..i], digits, alpha, nonhex) {
            w.var(msg, out, seg, i, want_params);
        }
        i += 1;
        seg = i;
        (digits, alpha, nonhex) = (0, 0, 0);
        unit_start = cl & PATHDELIM != 0;
    }
    if n > seg && seg_is_var(&tok[seg..n], digits, alpha, nonhex) {
        w.var(msg, out, seg, n, want_params);
    }
    if w.any {
        out.text.extend_from_slice(&tok[w.lit_from..]);
    }
    w.any
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

/// Masks the token's core `a..b` (token-relative) as one variable.
fn whole(
    msg: &[u8],
    s: usize,
    e: usize,
    a: usize,
    b: usize,
    out: &mut Masked,
    want_params: bool,
) -> bool {
    let ve = (s + b).min(e);
    out.text.extend_from_slice(&msg[s..s + a]);
    out.text.extend_from_slice(WILDCARD);
    if want_params {
        out.params.push(((s + a) as u32, ve as u32));
    }
    out.text.extend_from_slice(&msg[ve..e]);
    true
}

#[inline]
fn seg_is_var(seg: &[u8], digits: usize, alpha: usize, nonhex: usize) -> bool {
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
            m("delete blk_11 blk_22 /a/b 10.0.0.1 done"),
            "delete <*> done"
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

//! Redaction of secrets and personal data in log text, applied before anything leaves a
//! source. A hand-written scanner (no regex dependency): every detector is one linear pass
//! that reports byte spans; overlapping spans are merged and replaced by `[REDACTED:kind]`.

use std::borrow::Cow;

/// Keys whose values are secrets (matched as the end of a key, case-insensitive, `-` read
/// as `_`: `db_password`, `X-Api-Key`, `access_token`).
const SENSITIVE_KEYS: [&str; 14] = [
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "secret_key",
    "access_key",
    "private_key",
    "signature",
    "credential",
    "credentials",
];

/// Authorization schemes whose next word is the credential.
const AUTH_SCHEMES: [&str; 5] = ["bearer", "basic", "digest", "token", "negotiate"];

#[derive(Clone, Copy, Debug)]
struct Span<'k> {
    start: usize,
    end: usize,
    kind: &'k str,
}

/// Whether a field name holds a secret (its whole value is then redacted). No allocation:
/// it runs for every word followed by `=` or `:`.
pub fn is_sensitive_key(key: &str) -> bool {
    let k = key.as_bytes();
    SENSITIVE_KEYS.iter().any(|s| {
        let s = s.as_bytes();
        k.len() >= s.len()
            && k[k.len() - s.len()..].iter().zip(s).all(|(a, b)| {
                (if *a == b'-' {
                    b'_'
                } else {
                    a.to_ascii_lowercase()
                }) == *b
            })
    })
}

/// Replaces secrets and personal data with `[REDACTED:kind]`; borrows when nothing matched.
/// Uses the redaction installed with [`install`] (the config's), else the built-in one.
pub fn redact(s: &str) -> Cow<'_, str> {
    current().redact(s)
}

static INSTALLED: std::sync::OnceLock<std::sync::Arc<Redactor>> = std::sync::OnceLock::new();

/// Makes `redactor` the process-wide one behind [`redact`], so that every path that
/// redacts (sources, ingest routes, change descriptions) applies the config's extra
/// patterns and disabled kinds. The first call wins (the config is read once); returns
/// false when another was installed before.
pub fn install(redactor: std::sync::Arc<Redactor>) -> bool {
    INSTALLED.set(redactor).is_ok()
}

/// The installed redactor, else the built-in one.
pub fn current() -> &'static Redactor {
    INSTALLED.get().map_or(Redactor::builtin(), |r| r)
}

/// Bit of each built-in kind in [`Redactor`]'s disabled set; names as in
/// `medic_config::REDACTION_KINDS`.
const KIND_SECRET: u16 = 1;
const KIND_BEARER: u16 = 1 << 1;
const KIND_URL_PASSWORD: u16 = 1 << 2;
const KIND_AWS: u16 = 1 << 3;
const KIND_GCP: u16 = 1 << 4;
const KIND_AZURE: u16 = 1 << 5;
const KIND_JWT: u16 = 1 << 6;
const KIND_PRIVATE_KEY: u16 = 1 << 7;
const KIND_EMAIL: u16 = 1 << 8;
const KIND_CARD: u16 = 1 << 9;
const KIND_BASIC: u16 = 1 << 10;

fn kind_bit(name: &str) -> Option<u16> {
    Some(match name {
        "secret" => KIND_SECRET,
        "bearer" => KIND_BEARER,
        "url_password" => KIND_URL_PASSWORD,
        "aws_key" => KIND_AWS,
        "gcp_key" => KIND_GCP,
        "azure_key" => KIND_AZURE,
        "jwt" => KIND_JWT,
        "private_key" => KIND_PRIVATE_KEY,
        "email" => KIND_EMAIL,
        "card" => KIND_CARD,
        "basic_auth" => KIND_BASIC,
        _ => return None,
    })
}

/// An invalid `redaction:` setting (normally caught when the config is read).
#[derive(Debug, thiserror::Error)]
pub enum RedactionError {
    #[error("redaction pattern `{name}`: expected a regex, {reason}")]
    BadRegex { name: String, reason: String },
    #[error("redaction: unknown kind `{0}` in `disable`")]
    UnknownKind(String),
}

/// The built-in scanner, less the kinds turned off, plus extra regexes from the config
/// (applied after the built-in ones, on the same text, so spans merge).
#[derive(Debug, Default)]
pub struct Redactor {
    disabled: u16,
    extra: Vec<(String, regex::Regex)>,
}

impl Redactor {
    /// Every built-in kind, no extras.
    pub fn builtin() -> &'static Redactor {
        static BUILTIN: Redactor = Redactor {
            disabled: 0,
            extra: Vec::new(),
        };
        &BUILTIN
    }

    pub fn from_config(cfg: &medic_config::RedactionConfig) -> Result<Redactor, RedactionError> {
        let mut disabled = 0;
        for k in &cfg.disable {
            disabled |= kind_bit(k).ok_or_else(|| RedactionError::UnknownKind(k.clone()))?;
        }
        let extra = cfg
            .extra_patterns
            .iter()
            .map(|p| {
                regex::Regex::new(&p.regex)
                    .map(|r| (p.name.clone(), r))
                    .map_err(|e| RedactionError::BadRegex {
                        name: p.name.clone(),
                        reason: e.to_string().replace('\n', " "),
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Redactor { disabled, extra })
    }

    fn on(&self, kind: u16) -> bool {
        self.disabled & kind == 0
    }

    /// Whether values of fields named `key` are redacted whole (`secret` kind on).
    pub fn redacts_key(&self, key: &str) -> bool {
        self.on(KIND_SECRET) && is_sensitive_key(key)
    }

    /// Replaces secrets and personal data with `[REDACTED:kind]`; borrows when nothing
    /// matched.
    pub fn redact<'s>(&self, s: &'s str) -> Cow<'s, str> {
        let mut spans: Vec<Span<'_>> = Vec::new();
        let b = s.as_bytes();
        // Cheap gates: most detectors need a byte that many log lines lack.
        let has_sep = memchr::memchr2(b'=', b':', b).is_some();
        if self.on(KIND_PRIVATE_KEY) {
            find_private_keys(s, &mut spans);
        }
        let url_at_signs = if has_sep {
            find_url_passwords(s, &mut spans, self.on(KIND_URL_PASSWORD))
        } else {
            Vec::new()
        };
        if self.on(KIND_SECRET) && has_sep {
            find_key_values(s, &mut spans);
        }
        if self.on(KIND_BEARER) || self.on(KIND_BASIC) {
            find_auth_schemes(s, &mut spans, self.on(KIND_BEARER), self.on(KIND_BASIC));
        }
        if self.on(KIND_AWS) {
            find_aws_keys(s, &mut spans);
        }
        if self.on(KIND_GCP) {
            find_gcp_keys(s, &mut spans);
        }
        if self.on(KIND_AZURE) && has_sep {
            find_azure_keys(s, &mut spans);
        }
        if self.on(KIND_JWT) {
            find_jwts(s, &mut spans);
        }
        if self.on(KIND_EMAIL) {
            find_emails(s, &url_at_signs, &mut spans);
        }
        if self.on(KIND_CARD) {
            find_card_numbers(s, &mut spans);
        }
        for (name, re) in &self.extra {
            for m in re.find_iter(s) {
                if m.end() > m.start() {
                    spans.push(Span {
                        start: m.start(),
                        end: m.end(),
                        kind: name,
                    });
                }
            }
        }
        if spans.is_empty() {
            return Cow::Borrowed(s);
        }
        Cow::Owned(apply(s, &mut spans))
    }
}

fn apply(s: &str, spans: &mut [Span<'_>]) -> String {
    spans.sort_by_key(|sp| (sp.start, std::cmp::Reverse(sp.end)));
    let mut out = String::with_capacity(s.len());
    let mut pos = 0;
    let mut i = 0;
    while i < spans.len() {
        let Span {
            start,
            mut end,
            kind,
        } = spans[i];
        i += 1;
        while i < spans.len() && spans[i].start < end {
            end = end.max(spans[i].end);
            i += 1;
        }
        let start = start.max(pos);
        if start >= end {
            continue;
        }
        out.push_str(&s[pos..start]);
        out.push_str("[REDACTED:");
        out.push_str(kind);
        out.push(']');
        pos = end;
    }
    out.push_str(&s[pos..]);
    out
}

fn is_key_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.'
}

fn is_b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

fn skip_spaces(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
        i += 1;
    }
    i
}

/// End of an unquoted value: up to whitespace or a separator.
fn bare_value_end(b: &[u8], mut i: usize) -> usize {
    while i < b.len()
        && !b[i].is_ascii_whitespace()
        && !matches!(
            b[i],
            b',' | b';' | b'&' | b'"' | b'\'' | b')' | b'}' | b']' | b'<' | b'>'
        )
    {
        i += 1;
    }
    i
}

/// End of a quoted value starting after its opening `quote` (honours backslash escapes).
fn quoted_value_end(b: &[u8], mut i: usize, quote: u8) -> usize {
    while i < b.len() && b[i] != quote {
        i += if b[i] == b'\\' { 2 } else { 1 };
    }
    i.min(b.len())
}

/// `key=value`, `key: value`, `"key": "value"`, `key='value'`.
fn find_key_values(s: &str, spans: &mut Vec<Span<'_>>) {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if !is_key_char(b[i]) || (i > 0 && is_key_char(b[i - 1])) {
            i += 1;
            continue;
        }
        let key_start = i;
        while i < b.len() && is_key_char(b[i]) {
            i += 1;
        }
        let key = &s[key_start..i];
        if !is_sensitive_key(key) {
            continue;
        }
        let mut j = i;
        if j < b.len()
            && (b[j] == b'"' || b[j] == b'\'')
            && key_start > 0
            && b[key_start - 1] == b[j]
        {
            j += 1;
        }
        j = skip_spaces(b, j);
        if j >= b.len() || (b[j] != b'=' && b[j] != b':') {
            continue;
        }
        j = skip_spaces(b, j + 1);
        if j >= b.len() {
            continue;
        }
        let (start, mut end) = if b[j] == b'"' || b[j] == b'\'' {
            (j + 1, quoted_value_end(b, j + 1, b[j]))
        } else {
            (j, bare_value_end(b, j))
        };
        // `Authorization: Bearer abc`: the scheme is harmless, the next word is not.
        let first_word = &s[start..bare_value_end(b, start).min(end.max(start))];
        if AUTH_SCHEMES
            .iter()
            .any(|w| first_word.eq_ignore_ascii_case(w))
        {
            let after = skip_spaces(b, start + first_word.len());
            if after > start + first_word.len() && after < b.len() {
                end = end.max(bare_value_end(b, after));
            }
        }
        if end > start {
            spans.push(Span {
                start,
                end,
                kind: "secret",
            });
        }
        i = end.max(i);
    }
}

/// `Bearer <token>` anywhere (tokens of at least 8 characters, so prose is left alone), and
/// `Basic <base64 of user:password>` (checked by decoding, so `basic configuration` stays).
fn find_auth_schemes(s: &str, spans: &mut Vec<Span<'_>>, bearer: bool, basic: bool) {
    let b = s.as_bytes();
    for i in memchr::memchr2_iter(b'b', b'B', b) {
        if i > 0 && b[i - 1].is_ascii_alphanumeric() {
            continue;
        }
        let (len, kind) =
            if bearer && b[i..].len() > 6 && b[i..i + 6].eq_ignore_ascii_case(b"bearer") {
                (6, "bearer")
            } else if basic && b[i..].len() > 5 && b[i..i + 5].eq_ignore_ascii_case(b"basic") {
                (5, "basic_auth")
            } else {
                continue;
            };
        if b[i + len] != b' ' {
            continue;
        }
        let start = skip_spaces(b, i + len);
        let mut end = start;
        while end < b.len() && (b[end].is_ascii_alphanumeric() || b"._~+/=-".contains(&b[end])) {
            end += 1;
        }
        let ok = match kind {
            "bearer" => end - start >= 8,
            _ => is_basic_credential(&b[start..end]),
        };
        if ok {
            spans.push(Span { start, end, kind });
        }
    }
}

/// Whether `token` is standard base64 of printable `user:password`.
fn is_basic_credential(token: &[u8]) -> bool {
    if token.len() < 8 || !token.len().is_multiple_of(4) {
        return false;
    }
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        })
    };
    let body = token
        .strip_suffix(b"==")
        .or_else(|| token.strip_suffix(b"="))
        .unwrap_or(token);
    let mut decoded = Vec::with_capacity(body.len());
    for chunk in body.chunks(4) {
        let mut acc = 0u32;
        for (k, c) in chunk.iter().enumerate() {
            let Some(v) = val(*c) else {
                return false;
            };
            acc |= v << (18 - 6 * k);
        }
        let bytes = acc.to_be_bytes();
        decoded.extend_from_slice(&bytes[1..chunk.len()]);
    }
    decoded.contains(&b':') && decoded.iter().all(|c| (0x20..0x7f).contains(c))
}

/// Google API keys: `AIza` and 35 more of `[A-Za-z0-9_-]`, as a whole word.
fn find_gcp_keys(s: &str, spans: &mut Vec<Span<'_>>) {
    let b = s.as_bytes();
    for i in memchr::memmem::find_iter(b, b"AIza") {
        let end = i + 39;
        if end <= b.len()
            && (i == 0 || !is_b64url(b[i - 1]))
            && b[i + 4..end].iter().all(|c| is_b64url(*c))
            && (end == b.len() || !is_b64url(b[end]))
        {
            spans.push(Span {
                start: i,
                end,
                kind: "gcp_key",
            });
        }
    }
}

/// Azure storage/service-bus connection strings: the value of `AccountKey=`,
/// `SharedAccessKey=` (base64, up to `;`), and SAS signatures `sig=`.
fn find_azure_keys(s: &str, spans: &mut Vec<Span<'_>>) {
    let b = s.as_bytes();
    for needle in [&b"AccountKey="[..], b"SharedAccessKey=", b"sig="] {
        for i in memchr::memmem::find_iter(b, needle) {
            if i > 0 && b[i - 1].is_ascii_alphanumeric() {
                continue;
            }
            let start = i + needle.len();
            let mut end = start;
            while end < b.len()
                && (b[end].is_ascii_alphanumeric() || matches!(b[end], b'+' | b'/' | b'=' | b'%'))
            {
                end += 1;
            }
            if end - start >= 16 {
                spans.push(Span {
                    start,
                    end,
                    kind: "azure_key",
                });
            }
        }
    }
}

/// `scheme://user:password@host`: the password is redacted. Returns the positions of the
/// `@` signs it handled, so that they are not taken for e-mail addresses.
fn find_url_passwords(s: &str, spans: &mut Vec<Span<'_>>, redact_passwords: bool) -> Vec<usize> {
    let b = s.as_bytes();
    let mut ats = Vec::new();
    let mut from = 0;
    while let Some(rel) = s[from..].find("://") {
        let auth_start = from + rel + 3;
        let mut auth_end = auth_start;
        while auth_end < b.len()
            && !b[auth_end].is_ascii_whitespace()
            && !matches!(b[auth_end], b'/' | b'?' | b'#' | b'"' | b'\'' | b'<' | b'>')
        {
            auth_end += 1;
        }
        if let Some(at_rel) = s[auth_start..auth_end].rfind('@') {
            let at = auth_start + at_rel;
            ats.push(at);
            if let Some(colon_rel) = s[auth_start..at].find(':')
                && redact_passwords
                && auth_start + colon_rel + 1 < at
            {
                spans.push(Span {
                    start: auth_start + colon_rel + 1,
                    end: at,
                    kind: "url_password",
                });
            }
        }
        from = auth_end.max(auth_start);
    }
    ats
}

/// `AKIA…`/`ASIA…` followed by 16 upper-case letters or digits, as a whole word.
fn find_aws_keys(s: &str, spans: &mut Vec<Span<'_>>) {
    let b = s.as_bytes();
    let mut i = 0;
    while i + 20 <= b.len() {
        let prefix = &b[i..i + 4];
        if (prefix == b"AKIA" || prefix == b"ASIA")
            && (i == 0 || !b[i - 1].is_ascii_alphanumeric())
            && b[i + 4..i + 20]
                .iter()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
            && (i + 20 == b.len() || !b[i + 20].is_ascii_alphanumeric())
        {
            spans.push(Span {
                start: i,
                end: i + 20,
                kind: "aws_key",
            });
            i += 20;
        } else {
            i += 1;
        }
    }
}

/// `eyJ<header>.<payload>.<signature>` (the signature may be empty: unsigned tokens are
/// still credentials).
fn find_jwts(s: &str, spans: &mut Vec<Span<'_>>) {
    let b = s.as_bytes();
    let mut from = 0;
    while let Some(rel) = s[from..].find("eyJ") {
        let start = from + rel;
        from = start + 3;
        if start > 0 && is_b64url(b[start - 1]) {
            continue;
        }
        let run = |mut k: usize| {
            while k < b.len() && is_b64url(b[k]) {
                k += 1;
            }
            k
        };
        let h_end = run(start);
        if h_end - start < 10 || h_end >= b.len() || b[h_end] != b'.' {
            continue;
        }
        let p_end = run(h_end + 1);
        if p_end - (h_end + 1) < 2 || p_end >= b.len() || b[p_end] != b'.' {
            continue;
        }
        let end = run(p_end + 1);
        spans.push(Span {
            start,
            end,
            kind: "jwt",
        });
        from = end;
    }
}

/// `-----BEGIN … PRIVATE KEY-----` through the matching END line, or to the end of the
/// text when the END is not in it.
fn find_private_keys(s: &str, spans: &mut Vec<Span<'_>>) {
    let mut from = 0;
    while let Some(rel) = s[from..].find("-----BEGIN ") {
        let start = from + rel;
        let header_from = start + "-----BEGIN ".len();
        let Some(h_rel) = s[header_from..].find("-----") else {
            break;
        };
        let header = &s[header_from..header_from + h_rel];
        from = header_from + h_rel + 5;
        if !header.contains("PRIVATE KEY") {
            continue;
        }
        let end = match s[from..].find("-----END ") {
            Some(e_rel) => {
                let e = from + e_rel + "-----END ".len();
                match s[e..].find("-----") {
                    Some(t) => e + t + 5,
                    None => s.len(),
                }
            }
            None => s.len(),
        };
        spans.push(Span {
            start,
            end,
            kind: "private_key",
        });
        from = end;
    }
}

fn is_local_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
}

/// `local@domain.tld` (the top-level domain is at least two letters).
fn find_emails(s: &str, url_at_signs: &[usize], spans: &mut Vec<Span<'_>>) {
    let b = s.as_bytes();
    for (at, _) in s.match_indices('@') {
        if url_at_signs.contains(&at) {
            continue;
        }
        let mut start = at;
        while start > 0 && is_local_char(b[start - 1]) {
            start -= 1;
        }
        let mut end = at + 1;
        while end < b.len() && (b[end].is_ascii_alphanumeric() || b[end] == b'.' || b[end] == b'-')
        {
            end += 1;
        }
        while end > at + 1 && (b[end - 1] == b'.' || b[end - 1] == b'-') {
            end -= 1;
        }
        let local = &s[start..at];
        let domain = &s[at + 1..end];
        let tld_ok = domain.rsplit_once('.').is_some_and(|(host, tld)| {
            !host.is_empty() && tld.len() >= 2 && tld.bytes().all(|c| c.is_ascii_alphabetic())
        });
        if !local.is_empty() && !local.starts_with('.') && tld_ok {
            spans.push(Span {
                start,
                end,
                kind: "email",
            });
        }
    }
}

fn luhn_ok(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(*d);
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// 13–19 digits (optionally in groups of 4+ separated by one space or dash) passing Luhn.
/// Only numbers starting 2–6 (the card networks' ranges): epoch-millisecond timestamps,
/// which start with 1 and would pass Luhn one time in ten, are left alone.
fn find_card_numbers(s: &str, spans: &mut Vec<Span<'_>>) {
    let b = s.as_bytes();
    // Most lines hold fewer than 13 digits in all: no card number possible.
    if b.iter().filter(|c| c.is_ascii_digit()).count() < 13 {
        return;
    }
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit()
            || (i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'.'))
        {
            i += 1;
            continue;
        }
        let start = i;
        let mut digits: Vec<u8> = Vec::new();
        let mut group = 0;
        let mut groups_ok = true;
        let mut end = i;
        while end < b.len() {
            if b[end].is_ascii_digit() {
                digits.push(b[end] - b'0');
                group += 1;
                end += 1;
            } else if matches!(b[end], b' ' | b'-')
                && end + 1 < b.len()
                && b[end + 1].is_ascii_digit()
                && digits.len() < 19
            {
                groups_ok &= group >= 4;
                group = 0;
                end += 1;
            } else {
                break;
            }
        }
        // A separator that was not followed by more of the number is not part of it.
        let followed_ok = end >= b.len() || !(b[end].is_ascii_alphanumeric());
        if (13..=19).contains(&digits.len())
            && groups_ok
            && followed_ok
            && (2..=6).contains(&digits[0])
            && luhn_ok(&digits)
        {
            spans.push(Span {
                start,
                end,
                kind: "card",
            });
        }
        i = end.max(start + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> String {
        redact(s).into_owned()
    }

    #[test]
    fn clean_text_is_borrowed() {
        let s = "GET /product 200 in 12ms user_id=42 order=1234";
        assert!(matches!(redact(s), Cow::Borrowed(_)));
    }

    #[test]
    fn key_values() {
        assert_eq!(
            r("login password=hunter2 ok"),
            "login password=[REDACTED:secret] ok"
        );
        assert_eq!(r("passwd: s3cr3t"), "passwd: [REDACTED:secret]");
        assert_eq!(
            r("client_secret=abc&x=1"),
            "client_secret=[REDACTED:secret]&x=1"
        );
        assert_eq!(r("TOKEN = 'a b c'"), "TOKEN = '[REDACTED:secret]'");
        assert_eq!(
            r("api_key=k1 apikey=k2"),
            "api_key=[REDACTED:secret] apikey=[REDACTED:secret]"
        );
        assert_eq!(r("X-Api-Key: zzz"), "X-Api-Key: [REDACTED:secret]");
        assert_eq!(
            r(r#"{"user":"bob","password":"p\"w","n":1}"#),
            r#"{"user":"bob","password":"[REDACTED:secret]","n":1}"#
        );
        assert_eq!(r(r#"{"token": 12345}"#), r#"{"token": [REDACTED:secret]}"#);
        assert_eq!(
            r("Authorization: Basic dXNlcjpwYXNz next"),
            "Authorization: [REDACTED:secret] next"
        );
    }

    #[test]
    fn key_values_negative() {
        for s in [
            "token_count=5",
            "secretary=bob",
            "password reset requested for user 7",
            "password_hash_algo=argon2",
            "password=",
            "the token",
        ] {
            assert_eq!(r(s), s, "{s}");
        }
    }

    #[test]
    fn bearer() {
        assert_eq!(
            r("sent Bearer abcdef123456.xyz to upstream"),
            "sent Bearer [REDACTED:bearer] to upstream"
        );
        assert_eq!(r("bearer of bad news"), "bearer of bad news");
        assert_eq!(r("Bearer short"), "Bearer short");
    }

    #[test]
    fn url_credentials() {
        assert_eq!(
            r("connecting to postgres://app:s3cret@db.internal:5432/x"),
            "connecting to postgres://app:[REDACTED:url_password]@db.internal:5432/x"
        );
        assert_eq!(r("https://example.com/a@b"), "https://example.com/a@b");
        assert_eq!(r("https://user@example.com/"), "https://user@example.com/");
        assert_eq!(
            r("http://127.0.0.1:8080/metrics"),
            "http://127.0.0.1:8080/metrics"
        );
    }

    #[test]
    fn aws_keys() {
        assert_eq!(
            r("key AKIAIOSFODNN7EXAMPLE used"),
            "key [REDACTED:aws_key] used"
        );
        assert_eq!(r("AKIAIOSFODNN7EXAMPL"), "AKIAIOSFODNN7EXAMPL"); // 15 chars
        assert_eq!(r("XAKIAIOSFODNN7EXAMPLE"), "XAKIAIOSFODNN7EXAMPLE");
        assert_eq!(r("AKIAiosfodnn7example"), "AKIAiosfodnn7example");
    }

    #[test]
    fn jwts() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
        assert_eq!(r(&format!("got {jwt} ok")), "got [REDACTED:jwt] ok");
        assert_eq!(
            r("eyJhbGciOiJIUzI1NiJ9 alone"),
            "eyJhbGciOiJIUzI1NiJ9 alone"
        );
        assert_eq!(r("eyJx.y.z"), "eyJx.y.z");
    }

    #[test]
    fn private_keys() {
        let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nabc\n-----END RSA PRIVATE KEY-----";
        assert!(!r(&format!("key: {pem} done")).contains("MIIEow"));
        assert_eq!(r(&format!("k {pem} done")), "k [REDACTED:private_key] done");
        // The END is not in this text (e.g. a single log line): redact to the end.
        assert_eq!(
            r("x -----BEGIN PRIVATE KEY----- MIIEvQIB"),
            "x [REDACTED:private_key]"
        );
        let cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----";
        assert_eq!(r(cert), cert);
    }

    #[test]
    fn emails() {
        assert_eq!(
            r("mail to bob.smith+x@example.co.uk now"),
            "mail to [REDACTED:email] now"
        );
        assert_eq!(r("user@localhost"), "user@localhost");
        assert_eq!(r("@handle and a@b.c"), "@handle and a@b.c");
        assert_eq!(r("ends with x@example.com."), "ends with [REDACTED:email].");
    }

    #[test]
    fn cards() {
        assert_eq!(r("card 4111111111111111 ok"), "card [REDACTED:card] ok");
        assert_eq!(r("card 4111 1111 1111 1111 ok"), "card [REDACTED:card] ok");
        assert_eq!(r("card 4111-1111-1111-1111"), "card [REDACTED:card]");
        assert_eq!(r("amex 378282246310005"), "amex [REDACTED:card]");
        // Fails Luhn: an order id, kept.
        assert_eq!(r("order 4111111111111112"), "order 4111111111111112");
        // Too short, too long, epoch millis, part of a word or a decimal.
        assert_eq!(r("n 411111111111"), "n 411111111111");
        assert_eq!(r("n 41111111111111111111"), "n 41111111111111111111");
        assert_eq!(r("ts 1700000000006"), "ts 1700000000006");
        assert_eq!(r("id x4111111111111111"), "id x4111111111111111");
        assert_eq!(r("v 0.4111111111111111"), "v 0.4111111111111111");
        assert_eq!(r("2024-01-02 12:00:01"), "2024-01-02 12:00:01");
    }

    #[test]
    fn luhn() {
        assert!(luhn_ok(&[7, 9, 9, 2, 7, 3, 9, 8, 7, 1, 3]));
        assert!(!luhn_ok(&[7, 9, 9, 2, 7, 3, 9, 8, 7, 1, 4]));
    }

    #[test]
    fn several_patterns_and_overlaps() {
        let s =
            "u=a@b.io password=AKIAIOSFODNN7EXAMPLE Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIx.sig";
        let out = r(s);
        assert!(!out.contains("a@b.io"));
        assert!(!out.contains("AKIA"));
        assert!(!out.contains("eyJ"));
        assert!(out.starts_with("u=[REDACTED:email] password=[REDACTED:"));
    }

    #[test]
    fn hostile_input_does_not_panic() {
        let inputs = [
            "password=".to_string(),
            "\"password\":\"unterminated".to_string(),
            "://@:".to_string(),
            "@".repeat(1000),
            "-----BEGIN ".to_string(),
            "-----BEGIN PRIVATE KEY-----".to_string(),
            "eyJ".repeat(1000),
            "é@ü.de password=ü ключ=1 Bearer ééééééééé".to_string(),
            "4".repeat(100_000),
            "password:\\".to_string(),
        ];
        for s in &inputs {
            let _ = redact(s);
        }
        // Multi-byte neighbours keep the output valid UTF-8 and the secret out.
        let out = r("é password=ü€x é");
        assert_eq!(out, "é password=[REDACTED:secret] é");
    }

    #[test]
    fn url_query_tokens() {
        assert_eq!(
            r("GET https://api.example.com/v1/items?token=abc123&api_key=k9&page=2 200"),
            "GET https://api.example.com/v1/items?token=[REDACTED:secret]&api_key=[REDACTED:secret]&page=2 200"
        );
        assert_eq!(
            r("GET /cb?access_token=xyz&state=1"),
            "GET /cb?access_token=[REDACTED:secret]&state=1"
        );
        // Negative: harmless query parameters stay.
        let s = "GET /search?q=tokens&page=2&sort=password_strength";
        assert_eq!(r(s), s);
    }

    #[test]
    fn basic_auth() {
        assert_eq!(
            r("Authorization: Basic dXNlcjpwYXNz next"),
            "Authorization: [REDACTED:secret] next"
        );
        assert_eq!(
            r("upstream sent Basic dXNlcjpwYXNzd29yZA== back"),
            "upstream sent Basic [REDACTED:basic_auth] back"
        );
        // Negative: English, and base64 that is not user:password.
        for s in [
            "basic configuration loaded",
            "Basic aGVsbG8gd29ybGQ= is hello world",
            "a basic",
        ] {
            assert_eq!(r(s), s, "{s}");
        }
    }

    #[test]
    fn gcp_and_azure_keys() {
        assert_eq!(
            r("maps key=AIzaSyA1bcDEfGhIjKlMnOpQrStUvWxYz012345 used"),
            "maps key=[REDACTED:gcp_key] used"
        );
        assert_eq!(
            r("using AIzaSyA1bcDEfGhIjKlMnOpQrStUvWxYz012345"),
            "using [REDACTED:gcp_key]"
        );
        assert_eq!(
            r(
                "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;EndpointSuffix=core.windows.net"
            ),
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=[REDACTED:azure_key];EndpointSuffix=core.windows.net"
        );
        assert_eq!(
            r(
                "GET https://a.blob.core.windows.net/c/b?sv=2020-08-04&sig=abcdEFGH1234ijklMNOP%3D&se=x"
            ),
            "GET https://a.blob.core.windows.net/c/b?sv=2020-08-04&sig=[REDACTED:azure_key]&se=x"
        );
        // Negative: too short, inside a word, other prefixes.
        for s in [
            "AIzaShort",
            "xAIzaSyA1bcDEfGhIjKlMnOpQrStUvWxYz012345",
            "AccountKey=short;",
            "design=1234567890abcdefgh",
        ] {
            assert_eq!(r(s), s, "{s}");
        }
    }

    fn redactor(extra: &[(&str, &str)], disable: &[&str]) -> Redactor {
        Redactor::from_config(&medic_config::RedactionConfig {
            extra_patterns: extra
                .iter()
                .map(|(n, re)| medic_config::RedactionPattern {
                    name: n.to_string(),
                    regex: re.to_string(),
                })
                .collect(),
            disable: disable.iter().map(|s| s.to_string()).collect(),
        })
        .unwrap()
    }

    #[test]
    fn extra_patterns_and_disabled_kinds() {
        let red = redactor(&[("employee_id", r"\bEMP-\d{6}\b")], &["email"]);
        assert_eq!(
            red.redact("EMP-123456 from bob@example.com password=x"),
            "[REDACTED:employee_id] from bob@example.com password=[REDACTED:secret]"
        );
        // Negative: no match, no change (and no copy).
        assert!(matches!(red.redact("EMP-12 ok"), Cow::Borrowed(_)));
        // Extra and built-in spans overlapping merge into one.
        let red = redactor(&[("order", r"order=\d+")], &[]);
        assert_eq!(red.redact("order=4111111111111111"), "[REDACTED:order]");
        let none = redactor(&[], &["secret"]);
        assert!(!none.redacts_key("password"));
        assert_eq!(none.redact("password=x"), "password=x");
    }

    #[test]
    fn bad_config_is_an_error() {
        let bad = Redactor::from_config(&medic_config::RedactionConfig {
            extra_patterns: vec![medic_config::RedactionPattern {
                name: "x".into(),
                regex: "(unclosed".into(),
            }],
            disable: vec![],
        });
        assert!(matches!(bad, Err(RedactionError::BadRegex { .. })));
        let bad = Redactor::from_config(&medic_config::RedactionConfig {
            extra_patterns: vec![],
            disable: vec!["nonsense".into()],
        });
        assert!(matches!(bad, Err(RedactionError::UnknownKind(_))));
    }
}

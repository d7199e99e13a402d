//! Typed reading of the spanned tree. Every reader records its errors and carries on, so one
//! pass reports everything wrong with a file.

use crate::duration::parse_duration;
use crate::error::{Errors, Pos};
use crate::node::{Node, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// State shared by all section readers of one file.
pub(crate) struct Ctx<'a> {
    pub errs: Errors<'a>,
    /// Relative paths in the file resolve against this (the file's directory).
    pub base_dir: &'a Path,
}

impl Ctx<'_> {
    pub fn error(&mut self, pos: Pos, message: impl Into<String>) {
        self.errs.push(pos, message);
    }

    pub fn resolve(&self, path: &str) -> PathBuf {
        let p = Path::new(path);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    pub fn resolve_string(&self, path: &str) -> String {
        self.resolve(path).to_string_lossy().into_owned()
    }
}

/// Reads one YAML mapping field by field; `finish` reports the keys nobody asked for.
pub(crate) struct MapReader<'n, 'c, 'a> {
    what: String,
    entries: &'n [(Node, Node)],
    used: Vec<bool>,
    known: Vec<&'static str>,
    pub pos: Pos,
    /// False when the node was not a mapping (already reported): no "missing key" noise.
    valid: bool,
    pub cx: &'c mut Ctx<'a>,
}

impl<'n, 'c, 'a> MapReader<'n, 'c, 'a> {
    /// `what` names the mapping in messages (`policy \`x\``, `topology`).
    pub fn new(node: &'n Node, what: impl Into<String>, cx: &'c mut Ctx<'a>) -> Self {
        let what = what.into();
        let (entries, valid): (&'n [(Node, Node)], bool) = match &node.value {
            Value::Map(m) => (m, true),
            // `key:` with nothing after it: an empty section, i.e. all defaults.
            _ if node.is_null() => (&[], true),
            Value::Invalid => (&[], false),
            _ => {
                cx.error(
                    node.pos,
                    format!(
                        "invalid {what}: expected a mapping (`key: value` lines), found {}",
                        node.describe()
                    ),
                );
                (&[], false)
            }
        };
        MapReader {
            what,
            entries,
            used: vec![false; entries.len()],
            known: Vec::new(),
            pos: node.pos,
            valid,
            cx,
        }
    }

    /// The same reader under a better name, once the mapping's `name` is known.
    pub fn renamed(mut self, what: String) -> Self {
        self.what = what;
        self
    }

    /// Drops the reader without judging the remaining keys (their meaning depended on a
    /// value that was already reported as wrong).
    pub fn abandon(self) {}

    pub fn what(&self) -> &str {
        &self.what
    }

    fn label(&self, key: &str) -> String {
        format!("`{key}` in {}", self.what)
    }

    /// The raw node for `key` (null included), marking the key as known and used.
    pub fn take(&mut self, key: &'static str) -> Option<&'n Node> {
        if !self.known.contains(&key) {
            self.known.push(key);
        }
        let i = self
            .entries
            .iter()
            .position(|(k, _)| k.key_str() == Some(key))?;
        self.used[i] = true;
        Some(&self.entries[i].1)
    }

    /// Reads `key` with `convert`; absent or null gives `None`, reported when `required`.
    pub fn field<T>(
        &mut self,
        key: &'static str,
        required: bool,
        convert: impl FnOnce(&'n Node, &str, &mut Ctx<'a>) -> Option<T>,
    ) -> Option<T> {
        let node = self.take(key);
        match node {
            None => {
                if required && self.valid {
                    let msg = format!("missing required key `{key}` in {}", self.what);
                    self.cx.error(self.pos, msg);
                }
                None
            }
            Some(n) if n.is_null() => {
                if required && self.valid {
                    let msg = format!("missing value for required key `{key}` in {}", self.what);
                    self.cx.error(n.pos, msg);
                }
                None
            }
            Some(Node {
                value: Value::Invalid,
                ..
            }) => None,
            Some(n) => {
                let label = self.label(key);
                convert(n, &label, self.cx)
            }
        }
    }

    /// A sub-mapping or list to hand to another reader; `None` when absent or null.
    pub fn node(&mut self, key: &'static str) -> Option<&'n Node> {
        self.take(key).filter(|n| !n.is_null())
    }

    pub fn opt_str(&mut self, key: &'static str) -> Option<String> {
        self.field(key, false, to_string)
    }

    pub fn str_or(&mut self, key: &'static str, default: &str) -> String {
        self.opt_str(key).unwrap_or_else(|| default.to_string())
    }

    pub fn bool_or(&mut self, key: &'static str, default: bool) -> bool {
        self.field(key, false, to_bool).unwrap_or(default)
    }

    pub fn u64_or(&mut self, key: &'static str, default: u64, min: u64, max: u64) -> u64 {
        self.field(key, false, |n, l, cx| to_u64(n, l, cx, min, max))
            .unwrap_or(default)
    }

    pub fn u32_or(&mut self, key: &'static str, default: u32, min: u32) -> u32 {
        let v = self.u64_or(key, u64::from(default), u64::from(min), u64::from(u32::MAX));
        u32::try_from(v).unwrap_or(default)
    }

    pub fn usize_or(&mut self, key: &'static str, default: usize, min: usize, max: usize) -> usize {
        let v = self.u64_or(key, default as u64, min as u64, max as u64);
        usize::try_from(v).unwrap_or(default)
    }

    /// A number that must satisfy `check`; `expected` says which numbers, for the message.
    pub fn f64_or(
        &mut self,
        key: &'static str,
        default: f64,
        check: fn(f64) -> bool,
        expected: &'static str,
    ) -> f64 {
        self.field(key, false, |n, l, cx| to_f64(n, l, cx, check, expected))
            .unwrap_or(default)
    }

    /// A duration; zero is refused unless `allow_zero` (a zero poll interval would spin).
    pub fn duration_or(
        &mut self,
        key: &'static str,
        default: Duration,
        allow_zero: bool,
    ) -> Duration {
        self.field(key, false, |n, l, cx| to_duration(n, l, cx, allow_zero))
            .unwrap_or(default)
    }

    pub fn enum_value(
        &mut self,
        key: &'static str,
        required: bool,
        allowed: &[&str],
    ) -> Option<String> {
        self.field(key, required, |n, l, cx| to_enum(n, l, cx, allowed))
    }

    pub fn str_list(&mut self, key: &'static str, required: bool) -> Option<Vec<String>> {
        self.field(key, required, to_str_list)
    }

    /// A path, resolved against the file's directory.
    pub fn path(&mut self, key: &'static str, required: bool) -> Option<PathBuf> {
        let s = self.field(key, required, to_non_empty_string)?;
        Some(self.cx.resolve(&s))
    }

    /// Reports every key that no reader asked for, with a suggestion when one is close.
    pub fn finish(self) {
        for (i, (key, _)) in self.entries.iter().enumerate() {
            if self.used[i] {
                continue;
            }
            let msg = match key.key_str() {
                Some(name) => match did_you_mean(name, self.known.iter().copied()) {
                    Some(s) => {
                        format!("unknown key `{name}` in {}: did you mean `{s}`?", self.what)
                    }
                    None => format!(
                        "unknown key `{name}` in {}: expected one of {}",
                        self.what,
                        list_names(&self.known)
                    ),
                },
                None => format!(
                    "invalid key in {}: expected a plain name, found {}",
                    self.what,
                    key.describe()
                ),
            };
            self.cx.error(key.pos, msg);
        }
    }
}

/// `a`, `b` and `c` as "`a`, `b`, `c`".
pub(crate) fn list_names<S: AsRef<str>>(names: &[S]) -> String {
    names
        .iter()
        .map(|n| format!("`{}`", n.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The closest candidate within a small edit distance, for "did you mean" hints.
pub(crate) fn did_you_mean<'s>(
    word: &str,
    candidates: impl Iterator<Item = &'s str>,
) -> Option<&'s str> {
    // One edit per three characters: `tik` → `tick`, but `b` suggests nothing.
    let limit = word.chars().count() / 3;
    candidates
        .map(|c| (edit_distance(&word.to_lowercase(), &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut row = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != *cb);
            row[j + 1] = substitute.min(prev[j + 1] + 1).min(row[j] + 1);
        }
        prev = row;
    }
    prev[b.len()]
}

fn type_error(n: &Node, label: &str, cx: &mut Ctx, expected: &str) {
    cx.error(
        n.pos,
        format!(
            "invalid {label}: expected {expected}, found {}",
            n.describe()
        ),
    );
}

pub(crate) fn to_string(n: &Node, label: &str, cx: &mut Ctx) -> Option<String> {
    match n.scalar() {
        Some(s) => Some(s.text.clone()),
        None => {
            type_error(n, label, cx, "a string");
            None
        }
    }
}

pub(crate) fn to_non_empty_string(n: &Node, label: &str, cx: &mut Ctx) -> Option<String> {
    let s = to_string(n, label, cx)?;
    if s.trim().is_empty() {
        type_error(n, label, cx, "a non-empty string");
        return None;
    }
    Some(s)
}

/// Text of a plain (unquoted) scalar: only those can be numbers or booleans.
fn plain_text<'n>(n: &'n Node, label: &str, cx: &mut Ctx, expected: &str) -> Option<&'n str> {
    match n.scalar() {
        Some(s) if !s.quoted => Some(s.text.trim()),
        Some(_) => {
            cx.error(
                n.pos,
                format!(
                    "invalid {label}: expected {expected}, found the quoted string {}; remove the quotes",
                    n.describe()
                ),
            );
            None
        }
        None => {
            type_error(n, label, cx, expected);
            None
        }
    }
}

pub(crate) fn to_bool(n: &Node, label: &str, cx: &mut Ctx) -> Option<bool> {
    match plain_text(n, label, cx, "`true` or `false`")? {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => {
            type_error(n, label, cx, "`true` or `false`");
            None
        }
    }
}

pub(crate) fn to_u64(n: &Node, label: &str, cx: &mut Ctx, min: u64, max: u64) -> Option<u64> {
    let expected = if max == u64::from(u32::MAX) || max == u64::MAX {
        format!("a whole number ≥ {min}")
    } else {
        format!("a whole number from {min} to {max}")
    };
    let text = plain_text(n, label, cx, &expected)?;
    match text.parse::<u64>() {
        Ok(v) if (min..=max).contains(&v) => Some(v),
        _ => {
            type_error(n, label, cx, &expected);
            None
        }
    }
}

pub(crate) fn to_f64(
    n: &Node,
    label: &str,
    cx: &mut Ctx,
    check: fn(f64) -> bool,
    expected: &str,
) -> Option<f64> {
    let text = plain_text(n, label, cx, expected)?;
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && check(v) => Some(v),
        _ => {
            type_error(n, label, cx, expected);
            None
        }
    }
}

pub(crate) fn to_duration(
    n: &Node,
    label: &str,
    cx: &mut Ctx,
    allow_zero: bool,
) -> Option<Duration> {
    let Some(s) = n.scalar() else {
        type_error(n, label, cx, "a duration such as `10s`");
        return None;
    };
    match parse_duration(&s.text) {
        Ok(d) if d.is_zero() && !allow_zero => {
            type_error(n, label, cx, "a duration greater than zero");
            None
        }
        Ok(d) => Some(d),
        Err(why) => {
            cx.error(n.pos, format!("invalid {label}: {why}"));
            None
        }
    }
}

pub(crate) fn to_enum(n: &Node, label: &str, cx: &mut Ctx, allowed: &[&str]) -> Option<String> {
    let s = to_string(n, label, cx)?;
    if allowed.contains(&s.as_str()) {
        return Some(s);
    }
    let hint = did_you_mean(&s, allowed.iter().copied())
        .map(|m| format!(" (did you mean `{m}`?)"))
        .unwrap_or_default();
    cx.error(
        n.pos,
        format!(
            "invalid {label}: expected one of {}, found {}{hint}",
            list_names(allowed),
            n.describe()
        ),
    );
    None
}

pub(crate) fn to_str_list(n: &Node, label: &str, cx: &mut Ctx) -> Option<Vec<String>> {
    let Value::Seq(items) = &n.value else {
        let hint = if n.scalar().is_some() {
            format!("; write it as a list: [{}]", n.describe().trim_matches('`'))
        } else {
            String::new()
        };
        cx.error(
            n.pos,
            format!(
                "invalid {label}: expected a list of strings, found {}{hint}",
                n.describe()
            ),
        );
        return None;
    };
    let mut out = Vec::with_capacity(items.len());
    let mut ok = true;
    for item in items {
        match &item.value {
            Value::Invalid => ok = false,
            _ => match to_non_empty_string(item, label, cx) {
                Some(s) => out.push(s),
                None => ok = false,
            },
        }
    }
    ok.then_some(out)
}

/// Items of a list (or nothing, reported, when it is not one).
pub(crate) fn seq_items<'n>(n: &'n Node, label: &str, cx: &mut Ctx) -> &'n [Node] {
    match &n.value {
        Value::Seq(items) => items,
        Value::Invalid => &[],
        _ => {
            type_error(n, label, cx, "a list");
            &[]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_are_close_matches_only() {
        let keys = ["interval", "timeout", "file_sd", "targets"];
        assert_eq!(
            did_you_mean("intervall", keys.into_iter()),
            Some("interval")
        );
        assert_eq!(did_you_mean("Timeout", keys.into_iter()), Some("timeout"));
        assert_eq!(did_you_mean("colour", keys.into_iter()), None);
        assert_eq!(did_you_mean("x", keys.into_iter()), None);
        assert_eq!(did_you_mean("b", ["a"].into_iter()), None);
        assert_eq!(did_you_mean("tik", ["tick"].into_iter()), Some("tick"));
    }

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }
}

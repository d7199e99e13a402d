//! A small renderer for the Go-template subset the chart uses (listed at the top of
//! `deploy/helm/medic/templates/_helpers.tpl`), because Helm cannot be installed here. It
//! follows Helm's semantics for what it supports and refuses everything else with an error
//! naming the template and the construct, so that a chart edit outside the subset fails the
//! test instead of rendering something Helm would not.

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use yaml_rust2::yaml::Hash;
use yaml_rust2::{Yaml, YamlEmitter, YamlLoader};

#[derive(Debug)]
pub struct RenderError(pub String);

impl std::fmt::Display for RenderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

type Result<T> = std::result::Result<T, RenderError>;

fn err<T>(msg: impl Into<String>) -> Result<T> {
    Err(RenderError(msg.into()))
}

/// The install a chart is rendered for.
pub struct Release<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
}

/// Renders every template of the chart at `dir` (as `helm template` does: files under
/// `templates/` not starting with `_`), with `values.yaml` deep-merged with `overrides` (maps
/// merge, anything else replaces, `null` deletes). Returns file name → output.
pub fn render_chart(
    dir: &Path,
    release: &Release<'_>,
    overrides: &[&str],
) -> Result<BTreeMap<String, String>> {
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|e| RenderError(format!("{}: {e}", p.display())))
    };
    let chart = load_one(&read(&dir.join("Chart.yaml"))?, "Chart.yaml")?;
    let mut values = load_one(&read(&dir.join("values.yaml"))?, "values.yaml")?;
    for (i, o) in overrides.iter().enumerate() {
        let o = load_one(o, &format!("override {i}"))?;
        values = merge(values, o);
    }
    let field = |k: &str| match chart[k].as_str() {
        Some(s) => Ok(Yaml::String(s.to_string())),
        None => err(format!("Chart.yaml: `{k}` must be a string")),
    };
    let mut c = Hash::new();
    c.insert(s("Name"), field("name")?);
    c.insert(s("Version"), field("version")?);
    c.insert(s("AppVersion"), field("appVersion")?);
    let mut r = Hash::new();
    r.insert(s("Name"), s(release.name));
    r.insert(s("Namespace"), s(release.namespace));
    r.insert(s("Service"), s("Helm"));
    let mut root = Hash::new();
    root.insert(s("Values"), values);
    root.insert(s("Chart"), Yaml::Hash(c));
    root.insert(s("Release"), Yaml::Hash(r));
    let root = Yaml::Hash(root);

    let mut files: Vec<(String, String)> = Vec::new();
    let tdir = dir.join("templates");
    let mut entries: Vec<_> = std::fs::read_dir(&tdir)
        .map_err(|e| RenderError(format!("{}: {e}", tdir.display())))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    for name in entries {
        files.push((name.clone(), read(&tdir.join(&name))?));
    }
    // Defines are shared by every file, as in Helm.
    let mut defines: BTreeMap<String, Vec<Node>> = BTreeMap::new();
    let mut bodies: Vec<(String, Vec<Node>)> = Vec::new();
    for (name, text) in &files {
        let (body, defs) = parse(text).map_err(|e| RenderError(format!("{name}: {}", e.0)))?;
        for (k, v) in defs {
            if defines.insert(k.clone(), v).is_some() {
                return err(format!("{name}: template {k:?} defined twice"));
            }
        }
        bodies.push((name.clone(), body));
    }
    let mut out = BTreeMap::new();
    for (name, body) in bodies {
        if name.starts_with('_') {
            continue;
        }
        let cx = Cx {
            defines: &defines,
            root: &root,
            depth: 0,
        };
        let mut text = String::new();
        cx.exec(&body, &root, &mut text)
            .map_err(|e| RenderError(format!("{name}: {}", e.0)))?;
        out.insert(name, text);
    }
    Ok(out)
}

fn s(v: &str) -> Yaml {
    Yaml::String(v.to_string())
}

fn load_one(text: &str, what: &str) -> Result<Yaml> {
    let docs = YamlLoader::load_from_str(text).map_err(|e| RenderError(format!("{what}: {e}")))?;
    match docs.into_iter().next() {
        Some(y @ Yaml::Hash(_)) => Ok(y),
        Some(Yaml::Null) | None => Ok(Yaml::Hash(Hash::new())),
        Some(_) => err(format!("{what}: expected a mapping")),
    }
}

/// Helm's coalescing of values: maps merge key by key, `null` deletes, the rest replaces.
fn merge(base: Yaml, over: Yaml) -> Yaml {
    match (base, over) {
        (Yaml::Hash(mut b), Yaml::Hash(o)) => {
            for (k, v) in o {
                if v.is_null() {
                    b.remove(&k);
                    continue;
                }
                let merged = match b.remove(&k) {
                    Some(old) => merge(old, v),
                    None => v,
                };
                b.insert(k, merged);
            }
            Yaml::Hash(b)
        }
        (_, o) => o,
    }
}

// ---------------------------------------------------------------------------------------
// Lexing and parsing

#[derive(Clone, Debug)]
enum Tok {
    /// `.a.b` (`.` alone: empty path) or `$.a.b` (root).
    Field {
        root: bool,
        path: Vec<String>,
    },
    Ident(String),
    Str(String),
    Int(i64),
    Pipe,
    LParen,
    RParen,
}

#[derive(Clone, Debug)]
enum Expr {
    Field {
        root: bool,
        path: Vec<String>,
    },
    Str(String),
    Int(i64),
    Bool(bool),
    /// A function call: name and arguments.
    Call(String, Vec<Expr>),
    Paren(Box<Pipeline>),
}

/// `cmd | cmd | ...`: each command after the first is a call taking the previous result as
/// its last argument.
#[derive(Clone, Debug)]
struct Pipeline(Vec<Expr>);

#[derive(Clone, Debug)]
enum Node {
    Text(String),
    Out(Pipeline),
    /// `if`, any `else if`s, and the optional `else`.
    If(Vec<(Pipeline, Vec<Node>)>, Vec<Node>),
    Range(Pipeline, Vec<Node>),
}

/// A lexed piece of a template: text, or an action's tokens (with the line it starts on).
enum Piece {
    Text(String),
    Action(Vec<Tok>, usize),
}

fn lex(src: &str) -> Result<Vec<Piece>> {
    let mut pieces = Vec::new();
    let mut rest = src;
    let mut trim_next = false;
    let line_of = |rest: &str| src[..src.len() - rest.len()].matches('\n').count() + 1;
    loop {
        let Some(open) = rest.find("{{") else {
            let mut t = rest.to_string();
            if trim_next {
                t = t.trim_start().to_string();
            }
            pieces.push(Piece::Text(t));
            break;
        };
        let mut text = rest[..open].to_string();
        if trim_next {
            text = text.trim_start().to_string();
        }
        let line = line_of(&rest[open..]);
        let mut inner = &rest[open + 2..];
        // `{{- ` trims the text before (Go requires the space after the dash).
        if inner.starts_with('-') && inner[1..].starts_with(|c: char| c.is_ascii_whitespace()) {
            text = text.trim_end().to_string();
            inner = &inner[2..];
        }
        pieces.push(Piece::Text(text));
        if !inner.starts_with("/*") && inner.trim_start().starts_with("/*") {
            // Go reads a comment only right after `{{` or `{{- `.
            return err(format!(
                "line {line}: malformed comment (write `{{{{/*` or `{{{{- /*`)"
            ));
        }
        if let Some(after) = inner.strip_prefix("/*") {
            let Some(end) = after.find("*/") else {
                return err(format!("line {line}: unclosed comment"));
            };
            let tail = &after[end + 2..];
            if let Some(t) = tail.strip_prefix(" -}}") {
                trim_next = true;
                rest = t;
            } else if let Some(t) = tail.strip_prefix("}}") {
                trim_next = false;
                rest = t;
            } else {
                return err(format!(
                    "line {line}: a comment must end with `*/}}}}` or `*/ -}}}}`"
                ));
            }
            continue;
        }
        let (toks, consumed, trim) = lex_action(inner, line)?;
        pieces.push(Piece::Action(toks, line));
        trim_next = trim;
        rest = &inner[consumed..];
    }
    Ok(pieces)
}

/// Tokens of one action up to its `}}`; returns them, the bytes consumed (past `}}`) and
/// whether it ended with ` -}}`.
fn lex_action(s: &str, line: usize) -> Result<(Vec<Tok>, usize, bool)> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut toks = Vec::new();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    loop {
        let Some(&c) = b.get(i) else {
            return err(format!("line {line}: unclosed action `{{{{`"));
        };
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                // ` -}}`: trim the text after.
                if s[i..].trim_start().starts_with("-}}") {
                    let j = i + (s[i..].len() - s[i..].trim_start().len());
                    return Ok((toks, j + 3, true));
                }
                i += 1;
            }
            b'}' if s[i..].starts_with("}}") => return Ok((toks, i + 2, false)),
            b'|' => {
                toks.push(Tok::Pipe);
                i += 1;
            }
            b'(' => {
                toks.push(Tok::LParen);
                i += 1;
            }
            b')' => {
                toks.push(Tok::RParen);
                i += 1;
            }
            b'"' => {
                let mut out = String::new();
                let mut chars = s[i + 1..].char_indices();
                loop {
                    let Some((j, ch)) = chars.next() else {
                        return err(format!("line {line}: unterminated string"));
                    };
                    match ch {
                        '"' => {
                            i += 1 + j + 1;
                            break;
                        }
                        '\\' => match chars.next().map(|x| x.1) {
                            Some('n') => out.push('\n'),
                            Some('t') => out.push('\t'),
                            Some('"') => out.push('"'),
                            Some('\\') => out.push('\\'),
                            other => {
                                return err(format!(
                                    "line {line}: unsupported escape `\\{}` in a string",
                                    other.unwrap_or(' ')
                                ));
                            }
                        },
                        '\n' => return err(format!("line {line}: newline in a string")),
                        _ => out.push(ch),
                    }
                }
                toks.push(Tok::Str(out));
            }
            b'.' | b'$' => {
                let root = c == b'$';
                let mut j = i + 1;
                if root {
                    if b.get(j).is_some_and(|&c| ident(c)) {
                        return err(format!(
                            "line {line}: template variables (`$name`) are not supported"
                        ));
                    }
                } else {
                    // `.` itself starts the path: `.a.b`.
                    j = i;
                }
                let mut path = Vec::new();
                while b.get(j) == Some(&b'.') && b.get(j + 1).is_some_and(|&c| ident(c)) {
                    let start = j + 1;
                    j = start;
                    while b.get(j).is_some_and(|&c| ident(c)) {
                        j += 1;
                    }
                    path.push(s[start..j].to_string());
                }
                if !root && path.is_empty() {
                    j = i + 1;
                }
                if b.get(j).is_some_and(|&c| c == b'.' || ident(c)) {
                    return err(format!("line {line}: malformed field at `{}`", &s[i..=j]));
                }
                toks.push(Tok::Field { root, path });
                i = j;
            }
            b'0'..=b'9' | b'-' => {
                let mut j = i + 1;
                while b.get(j).is_some_and(|c| c.is_ascii_digit()) {
                    j += 1;
                }
                match s[i..j].parse::<i64>() {
                    Ok(n) => toks.push(Tok::Int(n)),
                    Err(_) => {
                        return err(format!(
                            "line {line}: unsupported number or token `{}`",
                            &s[i..j]
                        ));
                    }
                }
                i = j;
            }
            c if ident(c) => {
                let mut j = i;
                while b.get(j).is_some_and(|&c| ident(c)) {
                    j += 1;
                }
                toks.push(Tok::Ident(s[i..j].to_string()));
                i = j;
            }
            _ => {
                let ch = s[i..].chars().next().unwrap_or(' ');
                return err(format!(
                    "line {line}: unsupported character `{ch}` in an action (assignments, \
                     comparisons and raw strings are outside the subset)"
                ));
            }
        }
    }
}

/// Functions the subset knows, with how many arguments each takes (`None`: any number ≥ 1).
const FUNCTIONS: &[(&str, Option<usize>)] = &[
    ("include", Some(2)),
    ("toYaml", Some(1)),
    ("nindent", Some(2)),
    ("indent", Some(2)),
    ("quote", Some(1)),
    ("default", Some(2)),
    ("printf", None),
    ("contains", Some(2)),
    ("trunc", Some(2)),
    ("trimSuffix", Some(2)),
    ("int", Some(1)),
    ("ne", Some(2)),
    ("not", Some(1)),
    ("fail", Some(1)),
    ("sha256sum", Some(1)),
];

struct Parser<'a> {
    toks: &'a [Tok],
    i: usize,
    line: usize,
}

impl Parser<'_> {
    fn pipeline(&mut self) -> Result<Pipeline> {
        let mut cmds = vec![self.command()?];
        while matches!(self.toks.get(self.i), Some(Tok::Pipe)) {
            self.i += 1;
            let cmd = self.command()?;
            if !matches!(cmd, Expr::Call(..)) {
                return err(format!(
                    "line {}: only a function can follow `|`",
                    self.line
                ));
            }
            cmds.push(cmd);
        }
        Ok(Pipeline(cmds))
    }

    /// One command: a function call with its arguments, or a single operand.
    fn command(&mut self) -> Result<Expr> {
        match self.toks.get(self.i) {
            Some(Tok::Ident(name)) if name != "true" && name != "false" => {
                let name = name.clone();
                if !FUNCTIONS.iter().any(|(f, _)| *f == name) {
                    return err(format!(
                        "line {}: `{name}` is not in the supported template subset",
                        self.line
                    ));
                }
                self.i += 1;
                let mut args = Vec::new();
                while let Some(t) = self.toks.get(self.i) {
                    if matches!(t, Tok::Pipe | Tok::RParen) {
                        break;
                    }
                    args.push(self.operand()?);
                }
                Ok(Expr::Call(name, args))
            }
            Some(_) => {
                let e = self.operand()?;
                if let Some(t) = self.toks.get(self.i)
                    && !matches!(t, Tok::Pipe | Tok::RParen)
                {
                    return err(format!(
                        "line {}: unexpected {t:?} after an operand",
                        self.line
                    ));
                }
                Ok(e)
            }
            None => err(format!("line {}: empty command", self.line)),
        }
    }

    fn operand(&mut self) -> Result<Expr> {
        let line = self.line;
        let t = self.toks.get(self.i).cloned();
        self.i += 1;
        match t {
            Some(Tok::Field { root, path }) => Ok(Expr::Field { root, path }),
            Some(Tok::Str(v)) => Ok(Expr::Str(v)),
            Some(Tok::Int(n)) => Ok(Expr::Int(n)),
            Some(Tok::Ident(b)) if b == "true" || b == "false" => Ok(Expr::Bool(b == "true")),
            Some(Tok::LParen) => {
                let p = self.pipeline()?;
                match self.toks.get(self.i) {
                    Some(Tok::RParen) => {
                        self.i += 1;
                        Ok(Expr::Paren(Box::new(p)))
                    }
                    _ => err(format!("line {line}: missing `)`")),
                }
            }
            Some(Tok::Ident(f)) => err(format!(
                "line {line}: function `{f}` as an argument needs parentheses"
            )),
            other => err(format!("line {line}: unexpected {other:?}")),
        }
    }

    fn done(&self) -> Result<()> {
        match self.toks.get(self.i) {
            None => Ok(()),
            Some(t) => err(format!("line {}: unexpected {t:?}", self.line)),
        }
    }
}

fn parse_pipeline(toks: &[Tok], line: usize) -> Result<Pipeline> {
    let mut p = Parser { toks, i: 0, line };
    let pipe = p.pipeline()?;
    p.done()?;
    Ok(pipe)
}

/// What ended a list of nodes.
enum Stop {
    Eof,
    End,
    Else(Option<Pipeline>),
}

type Defines = Vec<(String, Vec<Node>)>;

fn parse(src: &str) -> Result<(Vec<Node>, Defines)> {
    let pieces = lex(src)?;
    let mut it = pieces.into_iter().peekable();
    let mut defines = Vec::new();
    let (body, stop) = parse_list(&mut it, &mut defines, true)?;
    match stop {
        Stop::Eof => Ok((body, defines)),
        _ => err("`end` or `else` without `if`, `range` or `define`"),
    }
}

fn parse_list(
    it: &mut std::iter::Peekable<std::vec::IntoIter<Piece>>,
    defines: &mut Defines,
    top: bool,
) -> Result<(Vec<Node>, Stop)> {
    let mut nodes = Vec::new();
    while let Some(piece) = it.next() {
        let (toks, line) = match piece {
            Piece::Text(t) => {
                if !t.is_empty() {
                    nodes.push(Node::Text(t));
                }
                continue;
            }
            Piece::Action(toks, line) => (toks, line),
        };
        let kw = match toks.first() {
            Some(Tok::Ident(k)) => k.as_str(),
            _ => "",
        };
        match kw {
            "end" => {
                parse_pipeline_empty(&toks[1..], line)?;
                return Ok((nodes, Stop::End));
            }
            "else" => {
                if let Some(Tok::Ident(k)) = toks.get(1)
                    && k == "if"
                {
                    return Ok((nodes, Stop::Else(Some(parse_pipeline(&toks[2..], line)?))));
                }
                parse_pipeline_empty(&toks[1..], line)?;
                return Ok((nodes, Stop::Else(None)));
            }
            "if" => {
                let mut branches = vec![(parse_pipeline(&toks[1..], line)?, Vec::new())];
                let mut otherwise = Vec::new();
                loop {
                    let (body, stop) = parse_list(it, defines, false)?;
                    match stop {
                        Stop::End => {
                            branches.last_mut().expect("a branch").1 = body;
                            break;
                        }
                        Stop::Else(Some(cond)) => {
                            branches.last_mut().expect("a branch").1 = body;
                            branches.push((cond, Vec::new()));
                        }
                        Stop::Else(None) => {
                            branches.last_mut().expect("a branch").1 = body;
                            let (body, stop) = parse_list(it, defines, false)?;
                            if !matches!(stop, Stop::End) {
                                return err(format!("line {line}: `if` without `end`"));
                            }
                            otherwise = body;
                            break;
                        }
                        Stop::Eof => return err(format!("line {line}: `if` without `end`")),
                    }
                }
                nodes.push(Node::If(branches, otherwise));
            }
            "range" => {
                let pipe = parse_pipeline(&toks[1..], line)?;
                let (body, stop) = parse_list(it, defines, false)?;
                if !matches!(stop, Stop::End) {
                    return err(format!(
                        "line {line}: `range` without `end` (`range ... else` is outside the subset)"
                    ));
                }
                nodes.push(Node::Range(pipe, body));
            }
            "define" => {
                if !top {
                    return err(format!("line {line}: `define` inside another block"));
                }
                let name = match (toks.get(1), toks.len()) {
                    (Some(Tok::Str(n)), 2) => n.clone(),
                    _ => return err(format!("line {line}: expected `define \"name\"`")),
                };
                let (body, stop) = parse_list(it, defines, false)?;
                if !matches!(stop, Stop::End) {
                    return err(format!("line {line}: `define` without `end`"));
                }
                defines.push((name, body));
            }
            "with" | "template" | "block" | "break" | "continue" | "tpl" | "lookup" => {
                return err(format!(
                    "line {line}: `{kw}` is outside the supported template subset"
                ));
            }
            _ => nodes.push(Node::Out(parse_pipeline(&toks, line)?)),
        }
    }
    Ok((nodes, Stop::Eof))
}

fn parse_pipeline_empty(toks: &[Tok], line: usize) -> Result<()> {
    if toks.is_empty() {
        Ok(())
    } else {
        err(format!("line {line}: unexpected {:?}", toks[0]))
    }
}

// ---------------------------------------------------------------------------------------
// Evaluation

struct Cx<'a> {
    defines: &'a BTreeMap<String, Vec<Node>>,
    root: &'a Yaml,
    depth: usize,
}

fn truthy(v: &Yaml) -> bool {
    match v {
        Yaml::Null | Yaml::BadValue => false,
        Yaml::Boolean(b) => *b,
        Yaml::Integer(n) => *n != 0,
        Yaml::Real(r) => r.parse::<f64>().map(|f| f != 0.0).unwrap_or(true),
        Yaml::String(s) => !s.is_empty(),
        Yaml::Array(a) => !a.is_empty(),
        Yaml::Hash(h) => !h.is_empty(),
        Yaml::Alias(_) => true,
    }
}

/// A value as `{{ }}` prints it. Helm prints a missing value as nothing; maps and lists
/// would print as Go's `map[...]`, never what a manifest wants, so they are refused.
fn print(v: &Yaml) -> Result<String> {
    match v {
        Yaml::Null | Yaml::BadValue => Ok(String::new()),
        Yaml::String(s) => Ok(s.clone()),
        Yaml::Integer(n) => Ok(n.to_string()),
        Yaml::Real(r) => Ok(r.clone()),
        Yaml::Boolean(b) => Ok(b.to_string()),
        Yaml::Array(_) | Yaml::Hash(_) | Yaml::Alias(_) => err(format!(
            "cannot print a list or map ({}) directly: pipe it to toYaml",
            short(v)
        )),
    }
}

fn short(v: &Yaml) -> String {
    let mut out = String::new();
    let _ = YamlEmitter::new(&mut out).dump(v);
    let out = out.trim_start_matches("---").trim().replace('\n', " ");
    if out.len() > 60 {
        format!("{}…", &out[..out.floor_char_boundary(60)])
    } else {
        out
    }
}

fn as_str<'v>(v: &'v Yaml, f: &str) -> Result<&'v str> {
    match v {
        Yaml::String(s) => Ok(s),
        _ => err(format!("{f}: expected a string, found {}", short(v))),
    }
}

fn as_int(v: &Yaml, f: &str) -> Result<i64> {
    match v {
        Yaml::Integer(n) => Ok(*n),
        _ => err(format!("{f}: expected an integer, found {}", short(v))),
    }
}

/// Keys sorted at every level, as Helm's toYaml writes maps (through Go maps).
fn sorted(v: &Yaml) -> Yaml {
    match v {
        Yaml::Hash(h) => {
            let mut items: Vec<(&Yaml, &Yaml)> = h.iter().collect();
            items.sort_by(|a, b| a.0.cmp(b.0));
            Yaml::Hash(
                items
                    .into_iter()
                    .map(|(k, v)| (k.clone(), sorted(v)))
                    .collect(),
            )
        }
        Yaml::Array(a) => Yaml::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

fn to_yaml(v: &Yaml) -> Result<String> {
    if let Yaml::Null | Yaml::BadValue = v {
        return Ok("null".into());
    }
    let mut out = String::new();
    YamlEmitter::new(&mut out)
        .dump(&sorted(v))
        .map_err(|e| RenderError(format!("toYaml: {e}")))?;
    let body = out
        .strip_prefix("---\n")
        .or_else(|| out.strip_prefix("--- "))
        .unwrap_or(&out);
    Ok(body.trim_end_matches('\n').to_string())
}

/// Go's `%q` (strconv.Quote) for the characters values can hold.
fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl Cx<'_> {
    fn exec(&self, nodes: &[Node], dot: &Yaml, out: &mut String) -> Result<()> {
        for n in nodes {
            match n {
                Node::Text(t) => out.push_str(t),
                Node::Out(p) => out.push_str(&print(&self.pipeline(p, dot)?)?),
                Node::If(branches, otherwise) => {
                    let mut taken = false;
                    for (cond, body) in branches {
                        if truthy(&self.pipeline(cond, dot)?) {
                            self.exec(body, dot, out)?;
                            taken = true;
                            break;
                        }
                    }
                    if !taken {
                        self.exec(otherwise, dot, out)?;
                    }
                }
                Node::Range(p, body) => match self.pipeline(p, dot)? {
                    Yaml::Array(items) => {
                        for item in &items {
                            self.exec(body, item, out)?;
                        }
                    }
                    Yaml::Null => {}
                    other => {
                        return err(format!(
                            "range over {}: only lists are supported",
                            short(&other)
                        ));
                    }
                },
            }
        }
        Ok(())
    }

    fn pipeline(&self, p: &Pipeline, dot: &Yaml) -> Result<Yaml> {
        let mut val = self.expr(&p.0[0], dot, None)?;
        for cmd in &p.0[1..] {
            val = self.expr(cmd, dot, Some(val))?;
        }
        Ok(val)
    }

    fn expr(&self, e: &Expr, dot: &Yaml, piped: Option<Yaml>) -> Result<Yaml> {
        match e {
            Expr::Field { root, path } => {
                let mut v = if *root { self.root } else { dot };
                let mut walked = String::from(if *root { "$" } else { "" });
                for key in path {
                    match v {
                        Yaml::Hash(h) => {
                            v = h.get(&Yaml::String(key.clone())).unwrap_or(&Yaml::Null);
                        }
                        Yaml::Null => {
                            return err(format!(
                                "nil pointer evaluating {walked}.{key}: `{walked}` is not set"
                            ));
                        }
                        other => {
                            return err(format!(
                                "can't evaluate field {key} in {walked} (a scalar or list: {})",
                                short(other)
                            ));
                        }
                    }
                    walked.push('.');
                    walked.push_str(key);
                }
                Ok(v.clone())
            }
            Expr::Str(s) => Ok(Yaml::String(s.clone())),
            Expr::Int(n) => Ok(Yaml::Integer(*n)),
            Expr::Bool(b) => Ok(Yaml::Boolean(*b)),
            Expr::Paren(p) => self.pipeline(p, dot),
            Expr::Call(name, args) => {
                let mut vals = Vec::new();
                for a in args {
                    vals.push(self.expr(a, dot, None)?);
                }
                vals.extend(piped);
                self.call(name, vals)
            }
        }
    }

    fn call(&self, f: &str, a: Vec<Yaml>) -> Result<Yaml> {
        let arity = FUNCTIONS.iter().find(|(n, _)| *n == f).and_then(|x| x.1);
        match arity {
            Some(n) if a.len() != n => {
                return err(format!("{f}: wants {n} arguments, got {}", a.len()));
            }
            None if a.is_empty() => return err(format!("{f}: wants arguments")),
            _ => {}
        }
        let str_val = |v: &Yaml| -> Result<String> { print(v) };
        Ok(match f {
            "include" => {
                let name = as_str(&a[0], f)?;
                let Some(body) = self.defines.get(name) else {
                    return err(format!("include: no template named {name:?}"));
                };
                if self.depth > 50 {
                    return err(format!("include {name:?}: recursion too deep"));
                }
                let inner = Cx {
                    defines: self.defines,
                    root: self.root,
                    depth: self.depth + 1,
                };
                let mut out = String::new();
                inner
                    .exec(body, &a[1], &mut out)
                    .map_err(|e| RenderError(format!("in {name:?}: {}", e.0)))?;
                Yaml::String(out)
            }
            "toYaml" => Yaml::String(to_yaml(&a[0])?),
            "indent" | "nindent" => {
                let n = as_int(&a[0], f)?;
                let pad = " ".repeat(usize::try_from(n).unwrap_or(0));
                let text = as_str(&a[1], f)?;
                let body = format!("{pad}{}", text.replace('\n', &format!("\n{pad}")));
                Yaml::String(if f == "nindent" {
                    format!("\n{body}")
                } else {
                    body
                })
            }
            // Sprig's quote: nothing for a missing value, else Go's %q of its string form.
            "quote" => Yaml::String(match &a[0] {
                Yaml::Null => String::new(),
                v => go_quote(&str_val(v)?),
            }),
            "default" => {
                if truthy(&a[1]) {
                    a[1].clone()
                } else {
                    a[0].clone()
                }
            }
            "printf" => {
                let fmt = as_str(&a[0], f)?;
                let mut args = a[1..].iter();
                let mut out = String::new();
                let mut chars = fmt.chars();
                while let Some(c) = chars.next() {
                    if c != '%' {
                        out.push(c);
                        continue;
                    }
                    match chars.next() {
                        Some('%') => out.push('%'),
                        Some('s') => match args.next() {
                            Some(v) => out.push_str(as_str(v, "printf %s")?),
                            None => return err("printf: missing argument for %s"),
                        },
                        other => {
                            return err(format!(
                                "printf: only %s is supported, found %{}",
                                other.unwrap_or(' ')
                            ));
                        }
                    }
                }
                if args.next().is_some() {
                    return err("printf: more arguments than %s verbs");
                }
                Yaml::String(out)
            }
            "contains" => Yaml::Boolean(as_str(&a[1], f)?.contains(as_str(&a[0], f)?)),
            "trunc" => {
                let n = usize::try_from(as_int(&a[0], f)?)
                    .map_err(|_| RenderError("trunc: negative lengths are not supported".into()))?;
                Yaml::String(as_str(&a[1], f)?.chars().take(n).collect())
            }
            "trimSuffix" => {
                let suffix = as_str(&a[0], f)?;
                let s = as_str(&a[1], f)?;
                Yaml::String(s.strip_suffix(suffix).unwrap_or(s).to_string())
            }
            // Sprig's int: numbers truncate, numeric strings parse, anything else is 0.
            "int" => Yaml::Integer(match &a[0] {
                Yaml::Integer(n) => *n,
                Yaml::Real(r) => r.parse::<f64>().map(|x| x as i64).unwrap_or(0),
                Yaml::String(s) => s.trim().parse().unwrap_or(0),
                Yaml::Boolean(b) => i64::from(*b),
                _ => 0,
            }),
            // Go's ne: values of different kinds cannot be compared.
            "ne" => Yaml::Boolean(match (&a[0], &a[1]) {
                (Yaml::Integer(x), Yaml::Integer(y)) => x != y,
                (Yaml::String(x), Yaml::String(y)) => x != y,
                (Yaml::Boolean(x), Yaml::Boolean(y)) => x != y,
                (x, y) => {
                    return err(format!(
                        "ne: incompatible types for comparison ({} and {})",
                        short(x),
                        short(y)
                    ));
                }
            }),
            "not" => Yaml::Boolean(!truthy(&a[0])),
            "fail" => return err(format!("fail: {}", str_val(&a[0])?)),
            "sha256sum" => {
                let digest = Sha256::digest(as_str(&a[0], f)?.as_bytes());
                Yaml::String(digest.iter().fold(String::new(), |mut s, b| {
                    let _ = write!(s, "{b:02x}");
                    s
                }))
            }
            other => return err(format!("`{other}` is not in the supported template subset")),
        })
    }
}

/// The YAML documents of rendered manifests (Helm's split on `---` lines; empty ones dropped).
pub fn documents(rendered: &BTreeMap<String, String>) -> Result<Vec<(String, Yaml)>> {
    let mut out = Vec::new();
    for (file, text) in rendered {
        if !file.ends_with(".yaml") {
            continue;
        }
        let docs = YamlLoader::load_from_str(text).map_err(|e| {
            RenderError(format!("{file}: rendered YAML does not parse: {e}\n{text}"))
        })?;
        for d in docs {
            match d {
                Yaml::Null => {}
                Yaml::Hash(_) => out.push((file.clone(), d)),
                other => {
                    return err(format!(
                        "{file}: a document is not a mapping: {}",
                        short(&other)
                    ));
                }
            }
        }
    }
    Ok(out)
}

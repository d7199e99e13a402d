//! YAML text → a tree whose every node knows its line and column. `yaml-rust2`'s own `Yaml`
//! type drops positions, so the tree is built here from its parser's marked events.

use crate::env::{EnvLookup, expand};
use crate::error::{Errors, Pos};
use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Deeper nesting than any medic config needs; the cap keeps hostile input from exhausting
/// the stack.
pub const MAX_DEPTH: usize = 64;

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Node {
    pub value: Value,
    pub pos: Pos,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    Scalar(Scalar),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
    /// Something already reported (an alias, a failed `${VAR}`): readers skip it silently so
    /// that one mistake gives one message.
    Invalid,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Scalar {
    /// The text after `${VAR}` expansion.
    pub text: String,
    /// Quoted or block scalars are always strings; only plain ones may be numbers or booleans.
    pub quoted: bool,
    /// `~`, `null` or nothing at all.
    pub null: bool,
}

impl Node {
    /// Describes what was found, for "expected X, found Y" messages.
    pub fn describe(&self) -> String {
        match &self.value {
            Value::Scalar(s) if s.null => "nothing (null)".into(),
            Value::Scalar(s) => format!("`{}`", excerpt(&s.text)),
            Value::Seq(_) => "a list".into(),
            Value::Map(_) => "a mapping".into(),
            Value::Invalid => "an invalid value".into(),
        }
    }

    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn scalar(&self) -> Option<&Scalar> {
        match &self.value {
            Value::Scalar(s) => Some(s),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar(s) if s.null)
    }

    pub fn key_str(&self) -> Option<&str> {
        self.scalar().map(|s| s.text.as_str())
    }
}

/// At most 40 characters of `text`, so that a huge value does not make a huge message.
pub(crate) fn excerpt(text: &str) -> String {
    const MAX: usize = 40;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

fn pos(m: &Marker) -> Pos {
    // yaml-rust2 lines are 1-based, columns 0-based.
    Pos {
        line: m.line(),
        col: m.col() + 1,
    }
}

/// Parses one YAML document. `Ok(None)` means the text holds no document at all (empty, or
/// only comments). Syntax errors are pushed to `errs` and give `Err(())`.
pub(crate) fn parse(text: &str, env: EnvLookup<'_>, errs: &mut Errors) -> Result<Option<Node>, ()> {
    let mut builder = Builder {
        parser: Parser::new_from_str(text),
        env,
        errs,
    };
    builder.document()
}

/// Parses every document of a `---`-separated stream (policy files hold one
/// RemediationPolicy per document). Empty documents are skipped.
pub(crate) fn parse_all(
    text: &str,
    env: EnvLookup<'_>,
    errs: &mut Errors,
) -> Result<Vec<Node>, ()> {
    let mut builder = Builder {
        parser: Parser::new_from_str(text),
        env,
        errs,
    };
    builder.documents()
}

struct Builder<'t, 'e, 'x, 'f> {
    parser: Parser<std::str::Chars<'t>>,
    env: EnvLookup<'e>,
    errs: &'x mut Errors<'f>,
}

impl Builder<'_, '_, '_, '_> {
    fn next(&mut self) -> Result<(Event, Marker), ()> {
        self.parser.next_token().map_err(|e| {
            self.errs
                .push(pos(e.marker()), format!("invalid YAML: {}", e.info()));
        })
    }

    fn document(&mut self) -> Result<Option<Node>, ()> {
        let mut root = None;
        loop {
            let (event, mark) = self.next()?;
            match event {
                Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
                Event::StreamEnd => return Ok(root),
                Event::DocumentStart if root.is_some() => {
                    self.errs.push(
                        pos(&mark),
                        "a second YAML document starts here: expected exactly one document per file",
                    );
                    return Err(());
                }
                Event::DocumentStart => {
                    let (event, mark) = self.next()?;
                    root = Some(self.node(event, mark, 1, false)?);
                }
                other => {
                    // The parser always opens a document first; anything else is its bug.
                    self.errs.push(
                        pos(&mark),
                        format!("invalid YAML: unexpected {other:?} outside a document"),
                    );
                    return Err(());
                }
            }
        }
    }

    fn documents(&mut self) -> Result<Vec<Node>, ()> {
        let mut roots = Vec::new();
        loop {
            let (event, mark) = self.next()?;
            match event {
                Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
                Event::StreamEnd => return Ok(roots),
                Event::DocumentStart => {
                    let (event, mark) = self.next()?;
                    let node = self.node(event, mark, 1, false)?;
                    if !node.is_null() {
                        roots.push(node);
                    }
                }
                other => {
                    self.errs.push(
                        pos(&mark),
                        format!("invalid YAML: unexpected {other:?} outside a document"),
                    );
                    return Err(());
                }
            }
        }
    }

    fn node(&mut self, event: Event, mark: Marker, depth: usize, is_key: bool) -> Result<Node, ()> {
        let at = pos(&mark);
        if depth > MAX_DEPTH {
            self.errs.push(
                at,
                format!("nesting deeper than {MAX_DEPTH} levels: expected a shallower document"),
            );
            return Err(());
        }
        let value = match event {
            Event::Scalar(raw, style, _anchor, _tag) => self.scalar(raw, style, at, is_key),
            Event::Alias(_) => {
                self.errs.push(
                    at,
                    "found an alias (`*name`): aliases are not supported in medic files; expected the value written out",
                );
                Value::Invalid
            }
            Event::SequenceStart(..) => {
                let mut items = Vec::new();
                loop {
                    let (event, mark) = self.next()?;
                    if event == Event::SequenceEnd {
                        break;
                    }
                    items.push(self.node(event, mark, depth + 1, false)?);
                }
                Value::Seq(items)
            }
            Event::MappingStart(..) => {
                let mut entries: Vec<(Node, Node)> = Vec::new();
                loop {
                    let (event, mark) = self.next()?;
                    if event == Event::MappingEnd {
                        break;
                    }
                    let key = self.node(event, mark, depth + 1, true)?;
                    let (event, mark) = self.next()?;
                    let mut value = self.node(event, mark, depth + 1, false)?;
                    // `key:` with nothing after it is marked at the next token, possibly lines
                    // later; the key is where the missing value belongs.
                    if matches!(&value.value, Value::Scalar(s) if s.null && s.text.is_empty()) {
                        value.pos = key.pos;
                    }
                    if let Some(name) = key.key_str()
                        && let Some((first, _)) =
                            entries.iter().find(|(k, _)| k.key_str() == Some(name))
                    {
                        self.errs.push(
                            key.pos,
                            format!(
                                "duplicate key `{name}` (first at line {}, column {}): expected each key once per mapping",
                                first.pos.line, first.pos.col
                            ),
                        );
                        continue;
                    }
                    entries.push((key, value));
                }
                // A block mapping's start event is marked after its first key; the key
                // itself is where a person looks for the mapping.
                if let Some(first) = entries.first().map(|(k, _)| k.pos)
                    && (first.line, first.col) < (at.line, at.col)
                {
                    return Ok(Node {
                        value: Value::Map(entries),
                        pos: first,
                    });
                }
                Value::Map(entries)
            }
            other => {
                self.errs
                    .push(at, format!("invalid YAML: unexpected {other:?}"));
                return Err(());
            }
        };
        Ok(Node { value, pos: at })
    }

    fn scalar(&mut self, raw: String, style: TScalarStyle, at: Pos, is_key: bool) -> Value {
        let quoted = style != TScalarStyle::Plain;
        let null = !quoted && matches!(raw.as_str(), "" | "~" | "null" | "Null" | "NULL");
        if is_key || null {
            return Value::Scalar(Scalar {
                text: raw,
                quoted,
                null,
            });
        }
        match expand(&raw, self.env) {
            Ok(text) => Value::Scalar(Scalar { text, quoted, null }),
            Err(e) => {
                // A one-line plain scalar maps characters to columns one to one, so point
                // at the `${` itself; otherwise at the scalar.
                let at = if style == TScalarStyle::Plain && !raw.contains('\n') {
                    Pos {
                        line: at.line,
                        col: at.col + e.char_offset,
                    }
                } else {
                    at
                };
                self.errs.push(at, e.message);
                Value::Invalid
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn parse_ok(text: &str) -> Node {
        let mut errs = Errors::new("t.yaml");
        let node = parse(text, &no_env, &mut errs).unwrap().unwrap();
        assert!(errs.list.is_empty(), "{:?}", errs.list);
        node
    }

    #[test]
    fn positions_are_one_based() {
        let root = parse_ok("a: 1\nb:\n  - x\n  - \"y\"\n");
        let map = root.as_map().unwrap();
        assert_eq!(map[0].0.pos, Pos { line: 1, col: 1 });
        assert_eq!(map[0].1.pos, Pos { line: 1, col: 4 });
        let Value::Seq(items) = &map[1].1.value else {
            panic!("not a seq")
        };
        assert_eq!(items[0].pos, Pos { line: 3, col: 5 });
        assert_eq!(items[1].pos, Pos { line: 4, col: 5 });
        assert!(items[1].scalar().unwrap().quoted);
        assert!(!items[0].scalar().unwrap().quoted);
    }

    #[test]
    fn nulls_are_recognised_only_when_plain() {
        let root = parse_ok("a: ~\nb:\nc: 'null'\n");
        let map = root.as_map().unwrap();
        assert!(map[0].1.is_null());
        assert!(map[1].1.is_null());
        assert!(!map[2].1.is_null());
    }

    #[test]
    fn duplicate_keys_are_reported_at_the_second() {
        let mut errs = Errors::new("t.yaml");
        parse("a: 1\nb: 2\na: 3\n", &no_env, &mut errs).unwrap();
        assert_eq!(errs.list.len(), 1);
        assert_eq!(
            errs.list[0].to_string(),
            "t.yaml:3:1: duplicate key `a` (first at line 1, column 1): expected each key once per mapping"
        );
    }

    #[test]
    fn syntax_error_has_position() {
        let mut errs = Errors::new("t.yaml");
        assert!(parse("a: [1, 2\nb: 3\n", &no_env, &mut errs).is_err());
        assert_eq!(errs.list.len(), 1);
        assert!(
            errs.list[0].message.starts_with("invalid YAML: "),
            "{}",
            errs.list[0]
        );
        assert!(errs.list[0].location.line >= 1);
    }

    #[test]
    fn empty_text_is_no_document() {
        let mut errs = Errors::new("t.yaml");
        assert_eq!(parse("# only a comment\n", &no_env, &mut errs), Ok(None));
        assert_eq!(parse("", &no_env, &mut errs), Ok(None));
        assert!(errs.list.is_empty());
    }

    #[test]
    fn second_document_is_rejected() {
        let mut errs = Errors::new("t.yaml");
        assert!(parse("a: 1\n---\nb: 2\n", &no_env, &mut errs).is_err());
        assert_eq!(errs.list[0].location.line, 2);
        assert!(errs.list[0].message.contains("second YAML document"));
    }

    #[test]
    fn aliases_are_rejected_without_expansion() {
        let mut errs = Errors::new("t.yaml");
        parse("a: &x [1]\nb: *x\n", &no_env, &mut errs).unwrap();
        assert_eq!(errs.list.len(), 1);
        assert_eq!(errs.list[0].location.line, 2);
        assert!(errs.list[0].message.contains("alias"));
    }

    #[test]
    fn deep_nesting_is_capped_not_overflowed() {
        for text in [
            "[".repeat(10_000),
            "{a: ".repeat(10_000),
            (0..10_000)
                .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
                .collect::<String>(),
            "- ".repeat(10_000) + "x",
        ] {
            let mut errs = Errors::new("t.yaml");
            assert!(parse(&text, &no_env, &mut errs).is_err());
            assert_eq!(errs.list.len(), 1, "{:?}", errs.list);
        }
    }

    #[test]
    fn unset_variable_points_at_its_dollar() {
        let mut errs = Errors::new("t.yaml");
        let root = parse("path: x/${NOPE}/y\n", &no_env, &mut errs)
            .unwrap()
            .unwrap();
        assert_eq!(errs.list.len(), 1);
        assert_eq!(
            (errs.list[0].location.line, errs.list[0].location.col),
            (1, 9)
        );
        assert_eq!(root.as_map().unwrap()[0].1.value, Value::Invalid);
    }

    #[test]
    fn keys_are_not_expanded() {
        let root = parse_ok("${K}: v\n");
        assert_eq!(root.as_map().unwrap()[0].0.key_str(), Some("${K}"));
    }
}

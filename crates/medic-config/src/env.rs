//! `${VAR}` and `${VAR:-default}` expansion in scalar values.

/// How variables are looked up: the CLI passes the process environment, tests a map.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment, for callers that want the usual behaviour.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// A failed expansion: the character offset of the offending `${` inside the scalar, and why.
#[derive(Debug, PartialEq)]
pub(crate) struct ExpandError {
    pub char_offset: usize,
    pub message: String,
}

/// Expands `${NAME}` (an error when unset) and `${NAME:-default}` (the default when unset or
/// empty, as in the shell). `$${` is a literal `${`; any other `$` is kept as written.
pub(crate) fn expand(raw: &str, env: EnvLookup<'_>) -> Result<String, ExpandError> {
    if !raw.contains('$') {
        return Ok(raw.to_string());
    }
    let chars: Vec<char> = raw.chars().collect();
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '$' && chars.get(i + 1) == Some(&'$') && chars.get(i + 2) == Some(&'{') {
            out.push_str("${");
            i += 3;
            continue;
        }
        if c != '$' || chars.get(i + 1) != Some(&'{') {
            out.push(c);
            i += 1;
            continue;
        }
        let start = i;
        let Some(close) = chars[i + 2..].iter().position(|&c| c == '}') else {
            return Err(ExpandError {
                char_offset: start,
                message: "unterminated `${`: expected `${NAME}` or `${NAME:-default}`".into(),
            });
        };
        let inner: String = chars[i + 2..i + 2 + close].iter().collect();
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (inner.as_str(), None),
        };
        if !is_var_name(name) {
            return Err(ExpandError {
                char_offset: start,
                message: format!(
                    "invalid variable reference `${{{}}}`: expected `${{NAME}}` or `${{NAME:-default}}` with NAME made of letters, digits and `_`",
                    crate::node::excerpt(&inner)
                ),
            });
        }
        match (env(name), default) {
            (Some(v), Some(d)) if v.is_empty() => out.push_str(d),
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => {
                return Err(ExpandError {
                    char_offset: start,
                    message: format!(
                        "environment variable `{name}` is not set: set it, or give a default with `${{{name}:-default}}`"
                    ),
                });
            }
        }
        i += 2 + close + 1;
    }
    Ok(out)
}

fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "DIR" => Some("/srv/estate".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_set_variables_and_defaults() {
        assert_eq!(
            expand("${DIR}/logs/*.log", &env).unwrap(),
            "/srv/estate/logs/*.log"
        );
        assert_eq!(expand("${NOPE:-x}-${DIR}", &env).unwrap(), "x-/srv/estate");
        assert_eq!(expand("${EMPTY:-fallback}", &env).unwrap(), "fallback");
        assert_eq!(expand("${EMPTY}", &env).unwrap(), "");
        assert_eq!(expand("${NOPE:-}", &env).unwrap(), "");
    }

    #[test]
    fn keeps_plain_dollars_and_escapes() {
        assert_eq!(expand("cost $5", &env).unwrap(), "cost $5");
        assert_eq!(expand("$${DIR}", &env).unwrap(), "${DIR}");
        assert_eq!(expand("end$", &env).unwrap(), "end$");
    }

    #[test]
    fn unset_variable_names_it_and_its_offset() {
        let e = expand("ab${MISSING}", &env).unwrap_err();
        assert_eq!(e.char_offset, 2);
        assert!(e.message.contains("`MISSING` is not set"), "{}", e.message);
    }

    #[test]
    fn malformed_references_are_errors() {
        assert!(
            expand("${DIR", &env)
                .unwrap_err()
                .message
                .contains("unterminated")
        );
        assert!(
            expand("${1X}", &env)
                .unwrap_err()
                .message
                .contains("invalid variable")
        );
        assert!(
            expand("${}", &env)
                .unwrap_err()
                .message
                .contains("invalid variable")
        );
    }
}

//! Rewrites a mined template into Loghub's canonical template form (the rules the corrected
//! Loghub ground truth was normalised with: path-like strings, digits, booleans, words glued to
//! a variable, dot-joined and adjacent variables). Applied when a template is shown, never on
//! the hot path.

const PATH_DELIMS: &[u8] = b" \t,!;:=|\"'[](){}";
const TOKEN_DELIMS: &[u8] = b" \t,!;:=|\"'[](){}.-+@#$%&";

fn split_keep(s: &str, delims: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for ch in s.chars() {
        if ch.is_ascii() && delims.contains(&(ch as u8)) {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            out.push(ch.to_string());
        } else {
            cur.push(ch);
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn is_path_like(t: &str) -> bool {
    // ^(/[^/]+)+$
    t.starts_with('/') && !t.ends_with('/') && !t.contains("//")
}

/// The canonical form of a template (see the module comment).
pub fn canonical_template(template: &str) -> String {
    let collapsed = template.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut s = String::with_capacity(collapsed.len());
    for t in split_keep(&collapsed, PATH_DELIMS) {
        if is_path_like(&t) {
            s.push_str("<*>");
        } else {
            s.push_str(&t);
        }
    }
    let mut out = String::with_capacity(s.len());
    for t in split_keep(&s, TOKEN_DELIMS) {
        let lower = t.to_ascii_lowercase();
        if matches!(lower.as_str(), "true" | "false" | "null")
            || (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
            || (t.contains("<*>") && !t.contains('/'))
        {
            out.push_str("<*>");
        } else {
            out.push_str(&t);
        }
    }
    for pat in ["<*>.<*>", "<*><*>", "<*>:<*>"] {
        while out.contains(pat) {
            out = out.replace(pat, "<*>");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::canonical_template as c;

    #[test]
    fn loghub_rules() {
        assert_eq!(c("Served block blk_<*> to /<*>"), "Served block <*> to <*>");
        assert_eq!(c("state 6"), "state <*>");
        assert_eq!(c("ok /etc/httpd/conf/workers2.properties"), "ok <*>");
        assert_eq!(c("request /<*>:<*>"), "request <*>");
        assert_eq!(c("ip <*>.<*>.<*>.<*>"), "ip <*>");
        assert_eq!(c("x  is  true"), "x is <*>");
        assert_eq!(c("(uid=<*>)"), "(uid=<*>)");
        assert_eq!(c("MININT-<*>"), "MININT-<*>");
        assert_eq!(c("a <*>/<*>"), "a <*>/<*>");
    }
}

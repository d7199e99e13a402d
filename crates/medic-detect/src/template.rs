//! Log message templates: the message with its variable parts masked, so that
//! "timeout after 30ms talking to 10.0.0.7:5432" and "timeout after 12ms talking to
//! 10.0.0.9:5432" are the same kind of error.

/// Longest message prefix considered; the rest of a huge line adds cost, not meaning.
pub const MAX_MESSAGE_CHARS: usize = 512;

/// The template of a log message: numbers, hex ids, UUIDs, ip[:port], quoted strings and
/// durations become placeholders, and runs of whitespace become one space.
pub fn template_of(message: &str) -> String {
    let chars: Vec<char> = message.chars().take(MAX_MESSAGE_CHARS).collect();
    let mut out = String::with_capacity(chars.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            while i < chars.len() && chars[i].is_whitespace() {
                i += 1;
            }
            if !out.is_empty() && i < chars.len() {
                out.push(' ');
            }
            continue;
        }
        if (c == '"' || c == '`' || (c == '\'' && !prev_is_word(&chars, i)))
            && let Some(end) = chars[i + 1..].iter().position(|&q| q == c)
        {
            out.push_str("<str>");
            i += end + 2;
            continue;
        }
        if is_word_char(c) {
            let start = i;
            while i < chars.len() && is_word_char(chars[i]) {
                i += 1;
            }
            // Trailing punctuation ("failed:", "done.") belongs to the sentence, not the token.
            let mut end = i;
            while end > start && matches!(chars[end - 1], '.' | ':' | '-') {
                end -= 1;
            }
            let word: String = chars[start..end].iter().collect();
            out.push_str(&mask_word(&word));
            out.extend(&chars[end..i]);
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

fn prev_is_word(chars: &[char], i: usize) -> bool {
    i > 0 && chars[i - 1].is_alphanumeric()
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '.' | ':' | '-')
}

fn mask_word(w: &str) -> String {
    if w.is_empty() {
        return String::new();
    }
    if is_uuid(w) {
        return "<uuid>".into();
    }
    if is_ip_port(w) {
        return "<ip>".into();
    }
    if is_duration(w) {
        return "<dur>".into();
    }
    if is_number(w) {
        return "<num>".into();
    }
    if is_hex_id(w) {
        return "<hex>".into();
    }
    // Anything else keeps its letters but not its digits ("worker-12" → "worker-<num>").
    let mut out = String::with_capacity(w.len());
    let mut in_digits = false;
    for c in w.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push_str("<num>");
                in_digits = true;
            }
        } else {
            in_digits = false;
            out.push(c);
        }
    }
    out
}

fn is_uuid(w: &str) -> bool {
    let parts: Vec<&str> = w.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

fn is_ip_port(w: &str) -> bool {
    let (host, port) = match w.rsplit_once(':') {
        Some((h, p)) if h.contains('.') => (h, Some(p)),
        _ => (w, None),
    };
    let octets: Vec<&str> = host.split('.').collect();
    let host_ok = octets.len() == 4
        && octets
            .iter()
            .all(|o| !o.is_empty() && o.len() <= 3 && o.chars().all(|c| c.is_ascii_digit()));
    host_ok && port.is_none_or(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

fn is_number(w: &str) -> bool {
    let w = w.strip_prefix('-').unwrap_or(w);
    !w.is_empty()
        && w.starts_with(|c: char| c.is_ascii_digit())
        && w.chars().all(|c| c.is_ascii_digit() || c == '.')
}

fn is_duration(w: &str) -> bool {
    let Some(unit_at) = w.find(|c: char| !(c.is_ascii_digit() || c == '.')) else {
        return false;
    };
    unit_at > 0
        && is_number(&w[..unit_at])
        && matches!(
            &w[unit_at..],
            "ns" | "us" | "µs" | "ms" | "s" | "m" | "h" | "sec" | "secs" | "min"
        )
}

fn is_hex_id(w: &str) -> bool {
    if let Some(rest) = w.strip_prefix("0x").or_else(|| w.strip_prefix("0X")) {
        return !rest.is_empty() && rest.chars().all(|c| c.is_ascii_hexdigit());
    }
    w.len() >= 8
        && w.chars().all(|c| c.is_ascii_hexdigit())
        && w.chars().any(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variable_parts_are_masked() {
        assert_eq!(
            template_of("timeout after 30ms talking to 10.0.0.7:5432"),
            "timeout after <dur> talking to <ip>"
        );
        assert_eq!(
            template_of(
                "user 42 not found: \"bob\" request 7f3a9c2e11 id 123e4567-e89b-12d3-a456-426614174000"
            ),
            "user <num> not found: <str> request <hex> id <uuid>"
        );
        assert_eq!(
            template_of("worker-12 at 0xdeadBEEF took 1.5s."),
            "worker-<num> at <hex> took <dur>."
        );
    }

    #[test]
    fn same_shape_same_template() {
        assert_eq!(
            template_of("payment 981 failed: card declined (code 51)"),
            template_of("payment 12  failed: card declined (code 05)")
        );
        assert_ne!(
            template_of("payment failed: card declined"),
            template_of("payment failed: upstream timeout")
        );
    }

    #[test]
    fn words_and_apostrophes_survive() {
        assert_eq!(template_of("can't connect to db"), "can't connect to db");
        assert_eq!(template_of("  spaced\t\tout  "), "spaced out");
        assert_eq!(
            template_of("unterminated \"quote here"),
            "unterminated \"quote here"
        );
    }

    #[test]
    fn hostile_input_is_bounded() {
        let huge = "9".repeat(1_000_000);
        assert_eq!(template_of(&huge), "<num>");
        let weird: String = "\u{0}\u{202e}'\"`::--..".repeat(10_000);
        assert!(template_of(&weird).chars().count() <= 3 * MAX_MESSAGE_CHARS);
        assert_eq!(template_of(""), "");
        assert_eq!(template_of("µs 5µs"), "µs <dur>");
    }
}

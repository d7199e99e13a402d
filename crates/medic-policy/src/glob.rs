//! Service-name globs: `*` matches any run of characters (including none); everything else
//! matches itself.

/// Whether `name` matches `pattern`. Linear in practice and at worst O(len × len): greedy
/// matching that only ever backtracks to the most recent `*`, so hostile patterns such as
/// `*a*a*a*b` cannot blow up.
pub fn glob_matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    // Where the last `*` was, and where in `name` it currently stops matching.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if pi < p.len() && p[pi] == n[ni] {
            pi += 1;
            ni += 1;
        } else if let Some((star_pi, star_ni)) = star {
            // Let the `*` swallow one more character and retry.
            pi = star_pi + 1;
            ni = star_ni + 1;
            star = Some((star_pi, star_ni + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::glob_matches;

    #[test]
    fn literal_and_wildcards() {
        assert!(glob_matches("checkout", "checkout"));
        assert!(!glob_matches("checkout", "checkout-2"));
        assert!(!glob_matches("checkout", "check"));
        assert!(glob_matches("*", "anything"));
        assert!(glob_matches("*", ""));
        assert!(glob_matches("check*", "checkout"));
        assert!(glob_matches("*out", "checkout"));
        assert!(glob_matches("c*k*t", "checkout"));
        assert!(!glob_matches("c*z*t", "checkout"));
        assert!(glob_matches("**", "x"));
        assert!(!glob_matches("", "x"));
        assert!(glob_matches("", ""));
        assert!(glob_matches("pay*-*", "payment-eu-1"));
        assert!(glob_matches("é*", "équipe"));
    }

    #[test]
    fn hostile_pattern_is_fast() {
        let name = "a".repeat(5_000);
        let pattern = format!("{}b", "*a".repeat(50));
        let started = std::time::Instant::now();
        assert!(!glob_matches(&pattern, &name));
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }
}

//! Kubernetes resource quantities for memory (`64Mi`, `1Gi`, `1G`, `128974848`, `129e6`):
//! one parser for the config, the planner and the actuators.

/// A quantity's value in base units (bytes for memory, cores for cpu: `500m` is 0.5);
/// `None` when it is not one (negative, junk, not finite).
pub fn parse(s: &str) -> Option<f64> {
    let s = s.trim();
    if s.is_empty() || s.len() > 64 {
        return None;
    }
    const SUFFIXES: [(&str, f64); 15] = [
        ("Ki", 1024.0),
        ("Mi", 1048576.0),
        ("Gi", 1073741824.0),
        ("Ti", 1099511627776.0),
        ("Pi", 1125899906842624.0),
        ("Ei", 1152921504606846976.0),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    let (num, mult) = SUFFIXES
        .iter()
        .find_map(|(suf, m)| s.strip_suffix(suf).map(|n| (n, *m)))
        .unwrap_or((s, 1.0));
    if num.is_empty()
        || !num
            .bytes()
            .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
    {
        return None;
    }
    let v: f64 = num.parse().ok()?;
    let v = v * mult;
    (v.is_finite() && v >= 0.0).then_some(v)
}

/// Bytes in a memory quantity, rounded up; `None` when it is not one or beyond u64.
pub fn parse_bytes(s: &str) -> Option<u64> {
    let bytes = parse(s)?.ceil();
    (bytes <= u64::MAX as f64).then_some(bytes as u64)
}

/// The shortest exact binary form (`96Mi`, `1Gi`), else plain bytes.
pub fn format_bytes(b: u64) -> String {
    for (suf, m) in [("Gi", 1u64 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)] {
        if b >= m && b.is_multiple_of(m) {
            return format!("{}{suf}", b / m);
        }
    }
    b.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(parse_bytes("64Mi"), Some(64 << 20));
        assert_eq!(parse_bytes("1Gi"), Some(1 << 30));
        assert_eq!(parse_bytes("1G"), Some(1_000_000_000));
        assert_eq!(parse_bytes("128974848"), Some(128_974_848));
        assert_eq!(parse_bytes("129e6"), Some(129_000_000));
        assert_eq!(parse_bytes("1.5Gi"), Some(3 << 29));
        for bad in ["", "Mi", "-1Mi", "abc", "1Zi", "1e400", "0x10"] {
            assert_eq!(parse_bytes(bad), None, "{bad}");
        }
        assert_eq!(parse("500m"), Some(0.5));
        assert_eq!(parse("2"), Some(2.0));
        assert_eq!(format_bytes(96 << 20), "96Mi");
        assert_eq!(format_bytes(1 << 30), "1Gi");
        assert_eq!(format_bytes(1000), "1000");
    }
}

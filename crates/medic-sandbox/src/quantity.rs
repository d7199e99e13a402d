//! Kubernetes resource quantities ("64Mi", "1.5G", "500m", "129e6") as numbers.

/// Parses a quantity to its value in base units (bytes for memory, cores for cpu).
pub fn parse(s: &str) -> Option<f64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    const SUFFIXES: [(&str, f64); 14] = [
        ("Ki", 1024.0),
        ("Mi", 1_048_576.0),
        ("Gi", 1_073_741_824.0),
        ("Ti", 1_099_511_627_776.0),
        ("Pi", 1_125_899_906_842_624.0),
        ("Ei", 1_152_921_504_606_846_976.0),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
    ];
    for (suffix, factor) in SUFFIXES {
        if let Some(num) = s.strip_suffix(suffix) {
            return number(num).map(|n| n * factor);
        }
    }
    if let Some(num) = s.strip_suffix('E') {
        return number(num).map(|n| n * 1e18);
    }
    // Plain numbers and decimal exponents ("129e6") parse as floats.
    number(s)
}

fn number(s: &str) -> Option<f64> {
    if s.is_empty() || s.starts_with('+') && s.len() == 1 {
        return None;
    }
    let v: f64 = s.parse().ok()?;
    (v.is_finite() && v >= 0.0).then_some(v)
}

/// Memory quantity in bytes, rounded up.
pub fn bytes(s: &str) -> Option<u64> {
    parse(s).map(|v| v.ceil() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_binary_decimal_and_milli() {
        assert_eq!(bytes("64Mi"), Some(64 * 1024 * 1024));
        assert_eq!(bytes("1G"), Some(1_000_000_000));
        assert_eq!(bytes("129e6"), Some(129_000_000));
        assert_eq!(bytes("1024"), Some(1024));
        assert_eq!(parse("500m"), Some(0.5));
        assert_eq!(parse("2"), Some(2.0));
        assert_eq!(parse(""), None);
        assert_eq!(parse("Mi"), None);
        assert_eq!(parse("-1"), None);
        assert_eq!(parse("lots"), None);
    }
}

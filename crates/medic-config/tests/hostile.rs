//! Hostile and broken input: never a panic, always at least one error with a position.

mod common;
use common::{errors, test_env};
use medic_config::{load_str, validate_files};
use std::path::Path;

fn example_text() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/medic.yaml");
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn every_truncation_of_a_valid_file_is_handled() {
    let text = example_text();
    let mut outcomes = (0, 0);
    for cut in (0..text.len()).filter(|&i| text.is_char_boundary(i)) {
        // Policy files are not on disk relative to /base; those errors are expected too.
        match load_str(&text[..cut], "m.yaml", Path::new("/base"), &test_env) {
            Ok(_) => outcomes.0 += 1,
            Err(errs) => {
                assert!(!errs.is_empty());
                for e in &errs {
                    assert!(e.location.line >= 1 && e.location.col >= 1, "{e}");
                    assert!(
                        e.location.line <= text[..cut].lines().count().max(1) + 1,
                        "{e}"
                    );
                }
                outcomes.1 += 1;
            }
        }
    }
    assert!(outcomes.1 > 0);
}

/// A small deterministic generator: the same "random" inputs on every run.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn random_bytes_and_yaml_punctuation_do_not_panic() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    const ALPHABET: &[u8] = b"{}[]:-,?*&!|>'\"#%@` \n\t\\ab1.$~";
    for round in 0..3000 {
        let len = (rng.next() % 200) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                let r = rng.next();
                if round % 2 == 0 {
                    r as u8
                } else {
                    ALPHABET[(r as usize) % ALPHABET.len()]
                }
            })
            .collect();
        let text = String::from_utf8_lossy(&bytes);
        let _ = load_str(&text, "r.yaml", Path::new("/"), &test_env);
    }
}

#[test]
fn random_bytes_on_disk_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = XorShift(42);
    for i in 0..50 {
        let bytes: Vec<u8> = (0..(rng.next() % 300)).map(|_| rng.next() as u8).collect();
        let p = dir.path().join(format!("{i}.yaml"));
        std::fs::write(&p, &bytes).unwrap();
        let errs = validate_files(std::slice::from_ref(&p), &test_env);
        assert!(!errs.is_empty(), "random file {i} validated");
    }
}

#[test]
fn one_megabyte_scalar_is_handled() {
    let big = "x".repeat(1024 * 1024);
    let errs = errors(&format!(
        "store: {{ sqlite: {big} }}\nserver: {{ listen: {big} }}\n"
    ));
    assert_eq!(errs.len(), 1, "only the listen address is wrong");
    assert!(
        errs[0].message.len() < 300,
        "messages quote a bounded excerpt"
    );
    assert_eq!(errors(&format!("agent: {{ tick: \"{big}\" }}\n")).len(), 1);
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    for text in [
        format!("a: {}", "[".repeat(10_000)),
        format!("a: {}1{}", "[".repeat(10_000), "]".repeat(10_000)),
        "{a: ".repeat(10_000),
        (0..10_000)
            .map(|i| format!("{}k:\n", " ".repeat(i)))
            .collect(),
        format!("{}x", "- ".repeat(10_000)),
    ] {
        let errs = errors(&text);
        assert_eq!(errs.len(), 1, "{errs:#?}");
    }
    let e = &errors(&format!("a: {}1{}", "[".repeat(100), "]".repeat(100)))[0];
    assert_eq!(
        e.message,
        "nesting deeper than 64 levels: expected a shallower document"
    );
    assert_eq!((e.location.line, e.location.col), (1, 67));
}

#[test]
fn many_documents_and_odd_tags_do_not_panic() {
    for text in [
        "---\n---\n",
        "a: !!binary aGk=\n",
        "%YAML 1.2\n---\na: 1\n",
        "? [a]\n: b\n",
        "\u{feff}agent: {}\n",
        "a: 1\n...\n",
    ] {
        let _ = errors(text);
    }
    assert!(
        errors("\u{feff}agent: {}\n").is_empty(),
        "a byte-order mark is allowed"
    );
    assert_eq!(
        errors("? [a]\n: b\n")[0].message,
        "invalid key in the top level of the config: expected a plain name, found a list"
    );
}

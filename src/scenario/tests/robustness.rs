//! No input panics: seeded garbage, token soup, mutations of valid files, and hostile YAML
//! (deep nesting, alias bombs, huge numbers) all end in `Ok` or in well-formed problems.

use crate::scenario::*;

/// xorshift64*: enough randomness for input generation, seeded so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Parses `text` and checks the shape of whatever comes back.
fn check_no_panic(text: &str) {
    match parse("fuzz.yaml", text) {
        Ok(_) => {}
        Err(errors) => {
            assert!(
                !errors.0.is_empty(),
                "an error without problems for {text:?}"
            );
            for p in &errors.0 {
                assert!(p.line >= 1 && p.column >= 1, "no place: {p} for {text:?}");
                let line = p.to_string();
                assert!(
                    !line.contains('\n'),
                    "multi-line problem {line:?} for {text:?}"
                );
                assert!(!p.message.is_empty());
                assert!(
                    !p.message.starts_with(|c: char| c.is_ascii_uppercase()),
                    "not lowercase: {line:?}"
                );
            }
        }
    }
}

const TOKENS: &[&str] = &[
    "name",
    "users",
    "count",
    "id",
    "profile",
    "token",
    "ttl",
    "mode",
    "load",
    "ramp",
    "to",
    "over",
    "hold",
    "arrival",
    "rate",
    "for",
    "max",
    "timeline",
    "at",
    "drop_sockets",
    "fraction",
    "side",
    "server",
    "client",
    "close",
    "abrupt",
    "thresholds",
    "connect.p99",
    "\"< 500ms\"",
    "target",
    "url",
    "behaviour",
    "typing",
    "every",
    "conformance",
    "watch",
    ":",
    ": ",
    "\n",
    "\n  ",
    "\n    ",
    "- ",
    "{",
    "}",
    "[",
    "]",
    ",",
    " ",
    "&a",
    "*a",
    "!!str",
    "|",
    ">",
    "'",
    "\"",
    "#",
    "%",
    "@",
    "?",
    "~",
    "null",
    "true",
    "10",
    "-1",
    "0.5",
    "1e400",
    "30s",
    "5m",
    "50/s",
    "user-{index}",
    "{index}",
    "js",
    "android",
    "---",
    "...",
    "\t",
    "\u{feff}",
    "é",
    "\u{0}",
];

#[test]
fn random_bytes() {
    let mut rng = Rng(0x00C0_FFEE);
    for _ in 0..300 {
        let len = rng.below(200);
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        check_no_panic(&String::from_utf8_lossy(&bytes));
    }
}

#[test]
fn token_soup() {
    let mut rng = Rng(42);
    for _ in 0..1000 {
        let n = rng.below(60);
        let text: String = (0..n).map(|_| TOKENS[rng.below(TOKENS.len())]).collect();
        check_no_panic(&text);
    }
}

#[test]
fn mutations_of_valid_files() {
    let dir =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/scenarios/valid");
    let mut originals = Vec::new();
    for entry in std::fs::read_dir(dir).expect("valid fixtures") {
        let path = entry.expect("entry").path();
        originals.push(std::fs::read_to_string(path).expect("readable"));
    }
    originals.sort();
    let mut rng = Rng(7);
    for round in 0..400 {
        let original = &originals[round % originals.len()];
        let mut chars: Vec<char> = original.chars().collect();
        for _ in 0..1 + rng.below(4) {
            if chars.is_empty() {
                break;
            }
            let at = rng.below(chars.len());
            match rng.below(4) {
                0 => {
                    let end = (at + rng.below(12)).min(chars.len());
                    chars.drain(at..end);
                }
                1 => {
                    let token = TOKENS[rng.below(TOKENS.len())];
                    for (i, c) in token.chars().enumerate() {
                        chars.insert(at + i, c);
                    }
                }
                2 => {
                    chars[at] = TOKENS[rng.below(TOKENS.len())]
                        .chars()
                        .next()
                        .unwrap_or('x')
                }
                _ => {
                    let other = rng.below(chars.len());
                    chars.swap(at, other);
                }
            }
        }
        check_no_panic(&chars.into_iter().collect::<String>());
    }
}

#[test]
fn hostile_yaml() {
    check_no_panic(&"[".repeat(20_000));
    check_no_panic(&"{a: ".repeat(5_000));
    let mut deep = String::new();
    for depth in 0..500 {
        deep.push_str(&"  ".repeat(depth));
        deep.push_str("k:\n");
    }
    check_no_panic(&deep);
    let bomb = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: [*f, *f, *f, *f, *f, *f, *f, *f, *f]\n";
    check_no_panic(bomb);
    check_no_panic(
        "users: { count: 99999999999999999999999999999999999999 }\nload: [{hold: 1s}]\n",
    );
    check_no_panic("users: { count: 10 }\nload: [{hold: 99999999999999999999years}]\n");
    check_no_panic("users: { count: 10 }\nload: [{arrival: {rate: 1e308/s, for: 365days}}]\n");
    check_no_panic(
        "users: { count: 10 }\nload: [{hold: 1s}]\ntimeline: [{at: .inf, drop_sockets: {fraction: .nan}}]\n",
    );
    check_no_panic(&format!("name: {}\n", "x".repeat(MAX_SCENARIO_BYTES + 1)));
}

#[test]
fn a_bound_on_problems_keeps_garbage_cheap() {
    let mut text = String::from("users: { count: 10 }\nload: [{hold: 1s}]\n");
    for i in 0..500 {
        text.push_str(&format!("unknown_{i}: 1\n"));
    }
    let err = parse("many.yaml", &text).expect_err("unknown keys");
    assert!(err.0.len() <= 64, "{} problems", err.0.len());
    assert!(err.0.len() >= 60);
}

#[test]
fn aliases_keep_working_and_point_at_their_use() {
    let text = "users: { count: &n 10 }\nchannels: { members: *n }\nload: [{hold: 1s}]\n";
    let s = parse("alias.yaml", text).expect("aliases are plain YAML");
    assert_eq!(s.channels.members, 10);
    let bad = "users: { count: &n 10 }\nchannels: { members: *n, count: 0 }\nload: [{hold: 1s}]\n";
    let err = parse("alias.yaml", bad).expect_err("count 0");
    assert_eq!(
        err.to_string(),
        "alias.yaml:2:33: channels.count: must be 1 to 10000000"
    );
}

#[test]
fn nesting_is_bounded_with_a_clear_problem() {
    let deep = format!("name: {}1{}\n", "[".repeat(40), "]".repeat(40));
    let err = parse("deep.yaml", &deep).expect_err("too deep");
    assert_eq!(
        err.to_string(),
        "deep.yaml:1:22: invalid yaml: nested deeper than 16 levels"
    );
}

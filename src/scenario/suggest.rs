//! "Did you mean" hints for misspelt keys and values.

/// The closest of `known` to `word`, when it is close enough to be a plausible typo (the
/// first written, when several are equally close).
pub(crate) fn closest<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    candidates(word, known).first().copied()
}

/// Every entry of `known` at the smallest plausible-typo distance from `word`.
fn candidates<'a>(word: &str, known: &[&'a str]) -> Vec<&'a str> {
    let word_lower = word.to_lowercase();
    let limit = (word.chars().count() / 3).clamp(1, 3);
    let scored: Vec<(usize, &str)> = known
        .iter()
        .map(|k| (distance(&word_lower, k), *k))
        .filter(|(d, _)| *d <= limit)
        .collect();
    let Some(best) = scored.iter().map(|(d, _)| *d).min() else {
        return Vec::new();
    };
    scored
        .into_iter()
        .filter(|(d, _)| *d == best)
        .map(|(_, k)| k)
        .collect()
}

/// The tail of an "unknown X" message: a suggestion, or the list of what is allowed.
pub(crate) fn hint(word: &str, known: &[&str]) -> String {
    let close = candidates(word, known);
    match close.as_slice() {
        [] if known.is_empty() => "nothing is allowed here".to_owned(),
        [] => format!("expected one of: {}", known.join(", ")),
        [one] => format!("did you mean `{one}`?"),
        [init @ .., last] => format!(
            "did you mean {} or `{last}`?",
            init.iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Levenshtein distance over chars; inputs are short keys, so the simple table is fine.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_only_close_words() {
        let keys = ["profile", "token", "privacy", "fallback"];
        assert_eq!(closest("profle", &keys), Some("profile"));
        assert_eq!(closest("Token", &keys), Some("token"));
        assert_eq!(closest("zzz", &keys), None);
        assert_eq!(hint("zzz", &["a", "b"]), "expected one of: a, b");
        assert_eq!(hint("tokn", &keys), "did you mean `token`?");
        assert_eq!(
            hint("p98", &["p50", "p90", "p99", "max"]),
            "did you mean `p90` or `p99`?"
        );
    }
}

//! "Did you mean" hints for misspelt keys and values.

/// The closest of `known` to `word`, when it is close enough to be a plausible typo.
pub(crate) fn closest<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    let word_lower = word.to_lowercase();
    let limit = (word.chars().count() / 3).clamp(1, 3);
    known
        .iter()
        .map(|k| (distance(&word_lower, k), *k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// The tail of an "unknown X" message: a suggestion, or the list of what is allowed.
pub(crate) fn hint(word: &str, known: &[&str]) -> String {
    match closest(word, known) {
        Some(k) => format!("did you mean `{k}`?"),
        None if known.is_empty() => "nothing is allowed here".to_owned(),
        None => format!("expected one of: {}", known.join(", ")),
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
    }
}

//! The `users.id` pattern (`user-{index}`), checked against the protocol crate's user-id rule
//! (only `a-z 0-9 @ _ -`, not empty, at most 255 characters) for every index it will produce.

use super::check::Check;
use super::de::Sp;
use super::model::IdPattern;
use super::tree::shorten;

pub use chatstorm_protocol::limits::MAX_USER_ID_LEN;
use chatstorm_protocol::limits::{USER_ID_ALLOWED, UserIdError, validate_user_id};

const PLACEHOLDER: &str = "{index}";

/// Why a user id breaks the protocol's rule, phrased for a scenario author.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadUserId {
    /// The id is empty.
    #[error("a user id must not be empty")]
    Empty,
    /// The id is longer than [`MAX_USER_ID_LEN`].
    #[error("a user id is at most {MAX_USER_ID_LEN} characters, this one has {0}")]
    TooLong(usize),
    /// The first character outside the allowed set.
    #[error("`{}` is not allowed in a user id; use only {USER_ID_ALLOWED}", .0.escape_default())]
    BadCharacter(char),
}

/// Checks one user id against the protocol crate's rule.
///
/// # Errors
/// [`BadUserId`]: the first offending character or the length.
pub fn check_user_id(id: &str) -> Result<(), BadUserId> {
    validate_user_id(id).map_err(|e| match e {
        UserIdError::Empty => BadUserId::Empty,
        UserIdError::TooLong(len) => BadUserId::TooLong(len),
        UserIdError::BadCharacter { ch, .. } => BadUserId::BadCharacter(ch),
    })
}

/// Splits and checks the pattern: exactly one `{index}`, and the id of every index in
/// `0..count` valid (the highest index has the longest id, and the characters of all ids are
/// those of the pattern's text plus digits, so checking that one id is enough).
pub(crate) fn pattern(check: &mut Check<'_>, sp: &Sp<String>, count: Option<u64>) -> Option<IdPattern> {
    let text = &sp.value;
    let Some((prefix, suffix)) = text.split_once(PLACEHOLDER) else {
        check.report(
            &sp.at,
            format!(
                "\"{}\" has no `{{index}}`; every user needs its own id, e.g. \"user-{{index}}\"",
                shorten(text)
            ),
        );
        return None;
    };
    if suffix.contains(PLACEHOLDER) {
        check.report(&sp.at, "`{index}` may appear only once");
        return None;
    }
    if prefix.contains(['{', '}']) || suffix.contains(['{', '}']) {
        check.report(
            &sp.at,
            "unknown placeholder; the only one is `{index}` (and braces are not allowed in user ids)",
        );
        return None;
    }
    let pattern = IdPattern {
        prefix: prefix.to_owned(),
        suffix: suffix.to_owned(),
    };
    let max_index = count.map_or(0, |c| c.saturating_sub(1));
    let longest = pattern.id(max_index);
    if let Err(reason) = check_user_id(&longest) {
        check.report(
            &sp.at,
            format!(
                "gives invalid user id \"{}\" (index {max_index}): {reason}",
                shorten(&longest)
            ),
        );
        return None;
    }
    Some(pattern)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule() {
        assert!(check_user_id("user-1").is_ok());
        assert!(check_user_id("a@b_c-9").is_ok());
        assert!(check_user_id("").is_err());
        assert_eq!(
            check_user_id("User-1").unwrap_err().to_string(),
            "`U` is not allowed in a user id; use only a-z, 0-9, @, _ and -"
        );
        assert!(check_user_id("a|b").is_err());
        assert!(check_user_id(&"a".repeat(255)).is_ok());
        assert!(check_user_id(&"a".repeat(256)).is_err());
    }
}

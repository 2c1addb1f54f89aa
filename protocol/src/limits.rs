//! Limits the protocol imposes (the user-id rule, the 5 KB user object) and the WebSocket buffer
//! and size constants both sides build their `WebSocketConfig` from.
//!
//! Why small buffers: tungstenite's default read buffer is 128 KiB, allocated eagerly for every
//! connection, so 10,000 users would cost 1.2 GiB per side before a message is sent (STYLE.md).
//! Frames here are small JSON objects; a buffer grows on demand for the rare large one.

/// The longest user id accepted.
pub const MAX_USER_ID_LEN: usize = 255;
/// The documented limit on a user object's serialized size ("5 KB").
pub const MAX_USER_BYTES: usize = 5 * 1024;
/// The characters a user id may use, as error messages name them.
pub const USER_ID_ALLOWED: &str = "a-z, 0-9, @, _ and -";

// tungstenite asserts max_write_buffer_size > write_buffer_size: check it at compile time.
const _: () = assert!(MAX_WRITE_BUFFER > WRITE_BUFFER);

/// Initial read buffer of a harness (client) connection: an idle user only ever reads health checks
/// (about 100 bytes); a larger frame grows it on demand.
pub const CLIENT_READ_BUFFER: usize = 512;
/// Initial read buffer of a mock-server connection.
pub const SERVER_READ_BUFFER: usize = 4 * 1024;
/// Write buffering threshold: 0 writes every message at once, so nothing lingers per connection.
pub const WRITE_BUFFER: usize = 0;
/// The most a connection may have queued for writing before sends fail (a slow consumer).
pub const MAX_WRITE_BUFFER: usize = 256 * 1024;
/// Largest message a client accepts from a server (events carry at most a few users and a message).
pub const CLIENT_MAX_MESSAGE: usize = 1 << 20;
/// Largest message a server accepts from a client: clients send only health checks. Beyond it the
/// server closes with 1009.
pub const SERVER_MAX_MESSAGE: usize = 64 * 1024;

/// The server's keep-alive `health.check` period.
pub const SERVER_HEALTH_INTERVAL_SECS: u64 = 30;
/// How long a long-poll request is held when no event is pending.
pub const LONGPOLL_HOLD_SECS: u64 = 20;
/// Events buffered per long-poll connection between polls before the oldest are dropped.
pub const LONGPOLL_BUFFER: usize = 1000;

/// WebSocket close codes with protocol meaning.
pub mod close {
    /// Normal closure: from the server after an error frame, final for JS and Swift.
    pub const NORMAL: u16 = 1000;
    /// Going away: "please reconnect".
    pub const GOING_AWAY: u16 = 1001;
    /// Abnormal closure (no close frame); never sent on the wire.
    pub const ABNORMAL: u16 = 1006;
    /// Message too big.
    pub const TOO_BIG: u16 = 1009;
    /// Internal error: "please reconnect"; also Unity's health timeout.
    pub const INTERNAL: u16 = 1011;
}

/// Why a user id is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserIdError {
    /// The id is empty.
    #[error("user id is empty: it must contain 1 to 255 of {USER_ID_ALLOWED}")]
    Empty,
    /// The id is longer than 255 characters.
    #[error("user id is {0} characters long; at most 255 are allowed")]
    TooLong(usize),
    /// The id has a character outside the allowed set.
    #[error("user id {id:?} contains {ch:?}; only {USER_ID_ALLOWED} are allowed")]
    BadCharacter {
        /// The id.
        id: String,
        /// The first offending character.
        ch: char,
    },
}

/// Checks the documented user-id rule: 1 to 255 of `a-z 0-9 @ _ -`.
///
/// # Errors
/// [`UserIdError`] naming what is wrong.
pub fn validate_user_id(id: &str) -> Result<(), UserIdError> {
    if id.is_empty() {
        return Err(UserIdError::Empty);
    }
    if let Some(ch) = id
        .chars()
        .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '@' | '_' | '-'))
    {
        return Err(UserIdError::BadCharacter {
            id: id.chars().take(64).collect(),
            ch,
        });
    }
    if id.len() > MAX_USER_ID_LEN {
        return Err(UserIdError::TooLong(id.len()));
    }
    Ok(())
}

/// The message for a user object over the size limit.
pub fn user_size_error(size: usize, limit: usize) -> String {
    format!("user object is {size} bytes; the limit is {limit} bytes (5 KB)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_id_rule() {
        for ok in ["a", "user-1", "luke_skywalker", "x@y", &"a".repeat(255)] {
            assert_eq!(validate_user_id(ok), Ok(()), "{ok}");
        }
        assert_eq!(validate_user_id(""), Err(UserIdError::Empty));
        assert_eq!(validate_user_id(&"a".repeat(256)), Err(UserIdError::TooLong(256)));
        for (bad, ch) in [("a|b", '|'), ("Alice", 'A'), ("a b", ' '), ("é", 'é'), ("a.b", '.')] {
            assert!(
                matches!(validate_user_id(bad), Err(UserIdError::BadCharacter { ch: c, .. }) if c == ch),
                "{bad}"
            );
        }
        let msg = validate_user_id("a|b").unwrap_err().to_string();
        assert!(msg.contains("'|'") && msg.contains(USER_ID_ALLOWED), "{msg}");
    }
}

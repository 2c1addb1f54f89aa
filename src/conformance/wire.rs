//! The per-case wire log: every frame, request and response a scripted user saw, timestamped
//! from the start of the case, with tokens redacted before anything is stored.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One line of a wire log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WireEntry {
    /// Milliseconds since the case started.
    pub t_ms: u64,
    /// The scripted user that saw it.
    pub user: String,
    /// `>` sent by the harness, `<` received from the target, `!` a local note (timeout, error).
    pub dir: char,
    /// What it was: `ws-text`, `ws-ping`, `ws-close`, `http-req`, `http-resp`, `note`...
    pub kind: String,
    /// The content, tokens redacted, long texts cut.
    pub text: String,
}

/// A shared, append-only log for all users of one case.
#[derive(Debug, Clone)]
pub struct WireLog {
    start: Instant,
    entries: Arc<Mutex<Vec<WireEntry>>>,
}

/// Texts beyond this many bytes are cut in the log (a 5 KB user object stays readable).
const MAX_TEXT: usize = 8 * 1024;

impl WireLog {
    /// An empty log whose clock starts now.
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
            entries: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Appends an entry, redacting tokens.
    pub fn push(&self, user: &str, dir: char, kind: &str, text: &str) {
        let mut text = redact(text);
        if text.len() > MAX_TEXT {
            let mut cut = MAX_TEXT;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push_str("…(cut)");
        }
        let entry = WireEntry {
            t_ms: u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX),
            user: user.to_owned(),
            dir,
            kind: kind.to_owned(),
            text,
        };
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).push(entry);
    }

    /// A copy of every entry so far, in order.
    pub fn snapshot(&self) -> Vec<WireEntry> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Default for WireLog {
    fn default() -> Self {
        Self::new()
    }
}

/// Replaces every JWT-looking run (`eyJ…` with two dots) and every `.devtoken` with
/// `<token:…last 4>`, so wire logs can be attached to CI output.
pub fn redact(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(b"eyJ") {
            let mut j = i;
            let mut dots = 0;
            while j < bytes.len() && is_token_byte(bytes[j]) {
                if bytes[j] == b'.' {
                    dots += 1;
                }
                j += 1;
            }
            if dots >= 2 {
                let tail_start = j.saturating_sub(4).max(i);
                out.push_str("<token:…");
                out.push_str(&text[tail_start..j]);
                out.push('>');
                i = j;
                continue;
            }
        }
        // Advance one whole UTF-8 character.
        let ch_len = text[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&text[i..i + ch_len]);
        i += ch_len;
    }
    out
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'=' | b'+' | b'/' | b'%')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_jwts_everywhere_and_keeps_other_text() {
        let t = "authorization=eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyX2lkIjoiYSJ9.c2lnbmF0dXJl&x=1 é";
        let r = redact(t);
        assert!(!r.contains("eyJ1c2Vy"), "{r}");
        assert!(r.starts_with("authorization=<token:…"));
        assert!(r.ends_with("&x=1 é"));
        assert_eq!(redact("eyJ not a token"), "eyJ not a token");
        assert_eq!(redact(r#"{"type":"health.check"}"#), r#"{"type":"health.check"}"#);
    }

    #[test]
    fn log_cuts_long_texts_on_a_char_boundary() {
        let log = WireLog::new();
        log.push("u", '<', "ws-text", &"é".repeat(MAX_TEXT));
        let e = &log.snapshot()[0];
        assert!(e.text.ends_with("…(cut)"));
        assert_eq!(e.user, "u");
    }
}

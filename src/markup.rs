//! Escaping text for XML and HTML: one function, used by every renderer that writes markup
//! (`report::junit`, `report::html`, `report::chart`).
//! A leaf module, so a lower layer can escape without importing `report`.

/// Escapes text for XML (and HTML) attributes and content, dropping the characters XML 1.0
/// forbids even when escaped (most control characters, U+FFFE, U+FFFF).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' | '\t' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

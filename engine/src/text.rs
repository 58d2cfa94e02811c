//! Text that comes from outside the engine — a plugin's reason, error, panic
//! message or log line, a message's subject or sender — made safe to keep,
//! log and print.
//!
//! Two rules, applied once at the boundary where such text enters:
//! - **Bounded.** [`bounded`] cuts text to a byte cap (on a character
//!   boundary) and says how much was cut, so a plugin that returns 60 MB of
//!   text costs the store and the log a few hundred bytes.
//! - **Inert.** [`neutralize`] shows C0 controls (tabs and newlines
//!   included) in caret notation (`^[` for ESC, `^J` for a newline), DEL as
//!   `^?`, and C1 controls and the Unicode bidirectional overrides as
//!   U+FFFD, so text cannot clear an operator's screen, move the cursor,
//!   fake log lines or reorder what a terminal shows. The command line
//!   prints every outside field through it too.

use std::borrow::Cow;

/// Longest text a plugin may leave in a reason, error or panic message that
/// the engine keeps (bytes, before escaping).
pub const MAX_PLUGIN_TEXT: usize = intake_plugin_sdk::rules::MAX_TEXT_BYTES;

/// True for characters that must never reach a terminal or a log raw.
fn is_hazard(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `text` with control characters and bidirectional overrides made
/// visible; borrowed when there is nothing to replace.
pub fn neutralize(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_hazard) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\0'..='\x1f' => {
                out.push('^');
                out.push(char::from(c as u8 + 0x40));
            }
            '\x7f' => out.push_str("^?"),
            c if is_hazard(c) => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// `text` cut to at most `cap` bytes (on a character boundary, with a note
/// of how much was cut), then neutralized.
pub fn bounded(text: &str, cap: usize) -> String {
    let (kept, cut) = if text.len() > cap {
        let mut end = cap;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        (&text[..end], text.len() - end)
    } else {
        (text, 0)
    };
    let mut out = neutralize(kept).into_owned();
    if cut > 0 {
        out.push_str(&format!("… ({cut} more bytes cut)"));
    }
    out
}

/// [`bounded`] with the plugin-text cap.
pub fn from_plugin(text: &str) -> String {
    bounded(text, MAX_PLUGIN_TEXT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        assert!(matches!(neutralize("Björn: hello"), Cow::Borrowed(_)));
    }

    #[test]
    fn escapes_and_overrides_become_visible() {
        let shown = neutralize("a\x1b[2Jb\r\nc\u{202e}d\u{9b}e\x7f");
        assert_eq!(shown, "a^[[2Jb^M^Jc\u{FFFD}d\u{FFFD}e^?");
        assert!(!shown.chars().any(is_hazard));
    }

    #[test]
    fn cuts_on_a_character_boundary_and_says_so() {
        let long = "é".repeat(1000); // 2000 bytes
        let cut = bounded(&long, 1001);
        assert!(cut.starts_with(&"é".repeat(500)));
        assert!(cut.ends_with("… (1000 more bytes cut)"), "{cut}");
        assert_eq!(bounded("short", 10), "short");
    }

    #[test]
    fn a_huge_text_stays_small() {
        let huge = "\x1b".repeat(10 << 20);
        let kept = from_plugin(&huge);
        // Each escape is two bytes, plus the note.
        assert!(kept.len() < 2 * MAX_PLUGIN_TEXT + 64, "{}", kept.len());
    }
}

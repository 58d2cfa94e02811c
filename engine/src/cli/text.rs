//! Text from plugins and from mail on the operator's terminal.
//!
//! Subjects, addresses, names, quarantine reasons and plugin error messages
//! are written by senders and plugin authors. Printed raw, an ESC sequence
//! can clear the screen, move the cursor or recolour what follows, and a
//! newline can fake a line of the table. Every such field goes through
//! [`safe`] before it is printed.

use std::borrow::Cow;

/// `text` with control characters made visible: C0 controls (tabs and
/// newlines included) in caret notation (`^[` for ESC), DEL as `^?`, C1
/// controls and bidirectional overrides as U+FFFD. Everything else,
/// non-ASCII letters included, is kept.
pub(crate) fn safe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(unsafe_char) {
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
            c if unsafe_char(c) => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn unsafe_char(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// An optional field, made safe; empty when absent.
pub(crate) fn safe_opt(text: Option<&str>) -> Cow<'_, str> {
    text.map_or(Cow::Borrowed(""), safe)
}

/// `s` cut to `n` characters (with an ellipsis), made safe first so the
/// cut counts what is shown.
pub(crate) fn clip(s: &str, n: usize) -> String {
    let s = safe(s);
    if s.chars().count() <= n {
        s.into_owned()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}

/// Whether `err` is a write to a closed pipe (`intake inbox | head`): the
/// reader has what it wanted, so the command ends quietly, as Unix tools do.
pub(crate) fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_not_obeyed() {
        assert_eq!(safe("plain Jürgen"), "plain Jürgen");
        assert!(matches!(safe("plain"), Cow::Borrowed(_)));
        assert_eq!(safe("\x1b[2Jcleared"), "^[[2Jcleared");
        assert_eq!(safe("a\nb\tc\r"), "a^Jb^Ic^M");
        assert_eq!(safe("del\x7f"), "del^?");
        assert_eq!(safe("c1\u{9b}31m"), "c1\u{FFFD}31m");
        assert_eq!(safe("bidi\u{202E}txt"), "bidi\u{FFFD}txt");
        assert_eq!(clip("\x1b\x1b\x1b", 4), "^[^…");
    }

    #[test]
    fn broken_pipes_are_recognised_through_context() {
        use anyhow::Context;
        let err: anyhow::Result<()> =
            Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe)).context("writing");
        assert!(is_broken_pipe(&err.unwrap_err()));
        assert!(!is_broken_pipe(&anyhow::anyhow!("other")));
    }
}

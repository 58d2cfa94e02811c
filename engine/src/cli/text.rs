//! Text from plugins and from mail on the operator's terminal.
//!
//! Subjects, addresses, names, quarantine reasons and plugin error messages
//! are written by senders and plugin authors. Printed raw, an ESC sequence
//! can clear the screen, move the cursor or recolour what follows, and a
//! newline can fake a line of the table. Every such field goes through
//! [`safe`] before it is printed.

use std::borrow::Cow;

/// `text` with control characters made visible: the engine's one rule,
/// [`crate::text::neutralize`] (caret notation for C0 and DEL, U+FFFD for
/// C1 controls and bidirectional overrides).
pub(crate) fn safe(text: &str) -> Cow<'_, str> {
    crate::text::neutralize(text)
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

//! Text from elsewhere (a peer's control frames, a results file), made
//! safe to print: whatever a receiver, a sender or a copied file says
//! reaches a terminal or a log line only through [`printable`].

use std::borrow::Cow;

/// `text` with every character that steers a terminal or forges a log line
/// escaped as Rust writes it (`\u{1b}`, `\n`): control characters (C0, DEL
/// and C1: ESC and CSI start every ANSI sequence, CR and LF start lines),
/// bidirectional formatting (it reorders what is shown) and the Unicode
/// line and paragraph separators. Everything else, printable text in any
/// script and backslashes too, stays as it is, so escaping twice changes
/// nothing.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(steers) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if steers(c) {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Whether `c` acts on the terminal rather than showing as itself.
fn steers(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
        || matches!(c, '\u{2028}' | '\u{2029}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ansi_escapes_and_control_characters_are_escaped() {
        assert_eq!(printable("\x1b[2Jgone"), "\\u{1b}[2Jgone");
        // CSI as one C1 character, and OSC 8 (a hidden link) ending in BEL.
        assert_eq!(printable("\u{9b}31m"), "\\u{9b}31m");
        assert_eq!(printable("\x1b]8;;x\x07y"), "\\u{1b}]8;;x\\u{7}y");
        assert_eq!(
            printable("ok\nerror: forged\r\tx\0\x7f"),
            "ok\\nerror: forged\\r\\tx\\0\\u{7f}"
        );
        let escaped = printable("\x1b\x00\x1f\u{80}\u{9f}");
        assert!(escaped.chars().all(|c| !c.is_control()), "{escaped}");
    }

    #[test]
    fn text_that_reorders_or_breaks_lines_is_escaped() {
        assert_eq!(printable("a\u{202e}cba"), "a\\u{202e}cba");
        assert_eq!(printable("\u{2066}x\u{2069}"), "\\u{2066}x\\u{2069}");
        assert_eq!(printable("a\u{2028}b"), "a\\u{2028}b");
    }

    #[test]
    fn printable_text_stays_as_it_is() {
        for text in [
            "tcp+tls-1: send_lag p99 1.2 ms",
            "größe, 日本語, ελληνικά",
            "👍🏽 👨‍👩‍👧",
            r"C:\path\u{1b} stays",
            "",
        ] {
            assert!(matches!(printable(text), Cow::Borrowed(t) if t == text), "{text}");
        }
    }

    #[test]
    fn escaping_twice_changes_nothing() {
        let once = printable("\x1b[2J\nx\u{202e}").into_owned();
        assert_eq!(printable(&once), once);
    }
}

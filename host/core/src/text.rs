//! Text that came from somewhere berth does not control — a plugin's answer, a record on disk,
//! a component's export names — made safe to keep and to print.
//!
//! Two separate steps, because they belong to different places: whatever keeps such text
//! (an error, the decision log) bounds it with [`truncated`], so no answer can grow a message or
//! a file without limit; whatever prints it to a terminal escapes it with [`escaped`], so no
//! answer can move the cursor, retitle the window or fake a line of berth's own output. JSON
//! output is neither: it carries the text exactly, in JSON's own escaping.

use std::borrow::Cow;
use std::fmt::Write;

/// `text` if it is at most `max` bytes, else its first `max` bytes (cut on a character
/// boundary) followed by a marker saying how long it was: `…[truncated: 1048576 bytes]`.
/// The result is at most `max` + [`MARKER_MAX`] bytes.
pub fn truncated(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!(
        "{}…[truncated: {} bytes]",
        &text[..end],
        text.len()
    ))
}

/// The longest marker [`truncated`] appends (a `usize` of bytes has at most 20 digits).
pub const MARKER_MAX: usize = "…[truncated:  bytes]".len() + 20;

/// `text` with every character a terminal would act on written out instead: C0 controls
/// (including newline and tab, so no text can fake a line of its own), DEL, C1 controls, and
/// the Unicode bidirectional overrides that reorder what a reader sees. Common ones read as
/// in Rust (`\n`, `\r`, `\t`), the others as `\x1b` or `\u{202e}`; a backslash stays as it is.
pub fn escaped(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x100 && needs_escape(c) => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_on_a_character_boundary_and_marked() {
        assert_eq!(truncated("short", 5), "short");
        let cut = truncated("ééé", 3);
        assert_eq!(cut, "é…[truncated: 6 bytes]");
        let huge = "x".repeat(1 << 20);
        let cut = truncated(&huge, 4096);
        assert!(cut.len() <= 4096 + MARKER_MAX, "{}", cut.len());
        assert!(cut.ends_with("…[truncated: 1048576 bytes]"));
        let widest = format!("{}…[truncated: {} bytes]", "", usize::MAX);
        assert_eq!(widest.len(), MARKER_MAX);
    }

    #[test]
    fn terminal_controls_are_written_out() {
        assert!(matches!(escaped("plain text ü"), Cow::Borrowed(_)));
        assert_eq!(
            escaped("a\x1b[2J\x1b]0;title\x07b\rc\x08\nd\te\x7f"),
            "a\\x1b[2J\\x1b]0;title\\x07b\\rc\\x08\\nd\\te\\x7f"
        );
        assert_eq!(escaped("\u{9b}31m"), "\\x9b31m");
        assert_eq!(escaped("abc\u{202e}fed"), "abc\\u{202e}fed");
        assert_eq!(escaped("C:\\path"), "C:\\path");
        // Escaping the escaped changes nothing: no control survives the first pass.
        let once = escaped("\x1b\u{9b}\u{2066}").into_owned();
        assert_eq!(escaped(&once), once);
    }
}

//! Text a peer sends that this process keeps (error messages, thread names)
//! is cut to a bound: otherwise a peer decides how much memory it takes, for
//! as long as we keep it, and how long every log line that shows it is.

/// The most bytes of an error message from a peer (an exception's reason,
/// an `Abort`'s) an [`Error`](crate::Error) keeps; the rest is cut, and the
/// message ends with `…`.
pub const MAX_ERROR_MESSAGE: usize = 4096;

/// The longest prefix of `text` that is at most `max` bytes long and ends on
/// a character boundary.
pub fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Cuts `text` in place to at most `max` bytes, ending it with `…` if
/// anything was cut.
pub fn truncate(text: &mut String, max: usize) {
    const MARK: &str = "…";
    if text.len() <= max {
        return;
    }
    let keep = cut(text, max.saturating_sub(MARK.len())).len();
    text.truncate(keep);
    if max >= MARK.len() {
        text.push_str(MARK);
    }
}

/// Text a peer sent as Cap'n Proto `Text` (which may not be UTF-8), cut to
/// at most `max` bytes on a character boundary; invalid bytes become
/// U+FFFD (whose three bytes count against `max`).
pub fn text_from_peer(bytes: &[u8], max: usize) -> String {
    let head = &bytes[..bytes.len().min(max)];
    let text = match std::str::from_utf8(head) {
        Ok(text) => return text.to_string(),
        // Cut in the middle of a character: keep what precedes it.
        Err(e) if e.error_len().is_none() => {
            return String::from_utf8_lossy(&head[..e.valid_up_to()]).into_owned();
        }
        Err(_) => String::from_utf8_lossy(head).into_owned(),
    };
    cut(&text, max).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_cut_on_a_character_boundary() {
        assert_eq!(cut("short", 128), "short");
        // "é" is two bytes: a cut at 3 would split the second one.
        assert_eq!(cut("éé", 3), "é");
        let mut long = "x".repeat(10_000);
        truncate(&mut long, MAX_ERROR_MESSAGE);
        assert!(
            long.len() <= MAX_ERROR_MESSAGE && long.ends_with('…'),
            "{}",
            long.len()
        );
        assert_eq!(text_from_peer("éé".as_bytes(), 3), "é");
        assert_eq!(text_from_peer(b"ok", 128), "ok");
        let invalid = text_from_peer(&[b'a', 0xff, b'b'], 128);
        assert_eq!(invalid, "a\u{fffd}b");
        assert!(text_from_peer(&[0xff; 1000], 128).len() <= 128);
    }
}

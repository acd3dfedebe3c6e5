//! JSON string text written by hand, for the lines written on every request
//! (log and audit lines): a few fixed fields, where a serializer costs more
//! than the line.

/// `s` as a quoted JSON string.
pub fn push_str(out: &mut String, s: &str) {
    out.push('"');
    push_str_body(out, s);
    out.push('"');
}

/// `s` escaped as JSON string content: quotes, backslashes and control
/// characters; the rest (UTF-8 included) as it is, in runs.
pub fn push_str_body(out: &mut String, s: &str) {
    // Paths, names and ids almost never need escaping: find that out a
    // chunk at a time (no early exit, so the check vectorises).
    if s.as_bytes().chunks(16).all(|c| {
        !c.iter().fold(false, |any, &b| {
            any | (b < 0x20) | (b == b'"') | (b == b'\\')
        })
    }) {
        out.push_str(s);
        return;
    }
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let esc = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if esc.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 0xf)] as char);
        } else {
            out.push_str(esc);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
}

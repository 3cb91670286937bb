//! Text helpers shared by the web tools: charset decoding, cutting on
//! character boundaries, snippet clean-up and number formatting.

/// Decodes by the declared charset; returns a note when the charset could
/// not be honoured.
pub(super) fn decode(bytes: &[u8], charset: Option<&str>) -> (String, Option<String>) {
    match charset {
        None | Some("utf-8" | "utf8" | "unicode-1-1-utf-8") => {
            (String::from_utf8_lossy(bytes).into_owned(), None)
        }
        Some(label) if WINDOWS_1252_LABELS.contains(&label) => (decode_windows_1252(bytes), None),
        Some(other) => (
            String::from_utf8_lossy(bytes).into_owned(),
            Some(format!(
                "charset {other} is not supported; the body was decoded as UTF-8"
            )),
        ),
    }
}

/// Labels the WHATWG Encoding Standard maps to windows-1252.
const WINDOWS_1252_LABELS: &[&str] = &[
    "windows-1252",
    "cp1252",
    "x-cp1252",
    "iso-8859-1",
    "iso8859-1",
    "iso88591",
    "iso_8859-1",
    "iso_8859-1:1987",
    "latin1",
    "l1",
    "cp819",
    "ibm819",
    "csisolatin1",
    "iso-ir-100",
    "us-ascii",
    "ascii",
    "ansi_x3.4-1968",
];

/// windows-1252 bytes 0x80–0x9F; the rest of the range equals Latin-1.
const WINDOWS_1252_HIGH: [char; 32] = [
    '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8D}', 'Ž', '\u{8F}',
    '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9D}', 'ž', 'Ÿ',
];

fn decode_windows_1252(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&byte| match byte {
            0x80..=0x9F => WINDOWS_1252_HIGH[usize::from(byte - 0x80)],
            _ => char::from(byte),
        })
        .collect()
}

/// The first `max_chars` characters and how many were left out.
pub(super) fn cut_chars(text: &str, max_chars: usize) -> (&str, usize) {
    match text.char_indices().nth(max_chars) {
        Some((boundary, _)) => (&text[..boundary], text[boundary..].chars().count()),
        None => (text, 0),
    }
}

/// Strips highlight markup (`<b>`, `<strong>`…), decodes the common HTML
/// entities and collapses whitespace.
pub(super) fn normalise_snippet(raw: &str) -> String {
    let mut text = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(start) = rest.find('<') {
        text.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let is_tag = after
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '/' || c == '!');
        match after.find('>') {
            Some(end) if is_tag => rest = &after[end + 1..],
            _ => {
                text.push('<');
                rest = after;
            }
        }
    }
    text.push_str(rest);
    decode_entities(&text)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('&') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let decoded = after
            .find(';')
            .filter(|&end| end <= 8)
            .and_then(|end| entity(&after[..end]).map(|c| (c, end)));
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &after[end + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn entity(name: &str) -> Option<char> {
    match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        "nbsp" => Some(' '),
        _ => {
            let code = name.strip_prefix('#')?;
            let value = match code.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => code.parse().ok()?,
            };
            char::from_u32(value)
        }
    }
}

/// `1234567` → `1,234,567`.
pub(super) fn group_digits(n: usize) -> String {
    let digits = n.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_honours_simple_charsets() {
        assert_eq!(decode(b"caf\xE9 \x80", Some("iso-8859-1")).0, "café €");
        assert_eq!(decode("café".as_bytes(), None), ("café".to_owned(), None));
        let (text, note) = decode(b"ok", Some("shift_jis"));
        assert_eq!(text, "ok");
        assert!(note.unwrap().contains("shift_jis"));
    }

    #[test]
    fn cut_chars_respects_char_boundaries() {
        assert_eq!(cut_chars("héllo", 2), ("hé", 3));
        assert_eq!(cut_chars("héllo", 5), ("héllo", 0));
        assert_eq!(cut_chars("日本語", 1), ("日", 2));
    }

    #[test]
    fn snippets_lose_markup_and_extra_whitespace() {
        let check = |raw: &str, expected: &str| assert_eq!(normalise_snippet(raw), expected);
        check("The <b>Rust</b>  book", "The Rust book");
        check("<strong>fast</strong>\n\tand safe", "fast and safe");
        check("1 < 2 and 3 > 2", "1 < 2 and 3 > 2");
        check(
            "Tom &amp; Jerry &lt;3 &#39;x&#x27; &quot;q&quot;",
            "Tom & Jerry <3 'x' \"q\"",
        );
        check("&bogus; & alone &", "&bogus; & alone &");
        check("a<br/>b", "ab");
        check("unterminated <b", "unterminated <b");
    }

    #[test]
    fn digits_are_grouped_by_thousands() {
        assert_eq!(group_digits(0), "0");
        assert_eq!(group_digits(999), "999");
        assert_eq!(group_digits(1000), "1,000");
        assert_eq!(group_digits(65_536), "65,536");
        assert_eq!(group_digits(1_234_567), "1,234,567");
    }
}

//! JSON scalars as APM Server's encoder writes them: strings with Go's escaping, floats and
//! integers in Go's formats, any free-form value, and `@timestamp`.

use crate::model::json::{Object, Value, civil_from_days};

/// Writes `s` as a JSON string.
pub fn write_str(buf: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    buf.reserve(bytes.len() + 2);
    buf.push(b'"');
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Most strings need no escape: skip eight plain bytes at a time.
        if let Some(word) = bytes.get(i..i + 8) {
            let word = u64::from_le_bytes([
                word[0], word[1], word[2], word[3], word[4], word[5], word[6], word[7],
            ]);
            if !needs_escape(word) {
                i += 8;
                continue;
            }
        }
        let b = bytes[i];
        let esc: Option<&[u8]> = match b {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            b'\n' => Some(b"\\n"),
            b'\r' => Some(b"\\r"),
            b'\t' => Some(b"\\t"),
            0..=0x1f => None,
            _ => {
                i += 1;
                continue;
            }
        };
        buf.extend_from_slice(&bytes[start..i]);
        match esc {
            Some(e) => buf.extend_from_slice(e),
            None => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                buf.extend_from_slice(b"\\u00");
                buf.push(HEX[(b >> 4) as usize]);
                buf.push(HEX[(b & 0xf) as usize]);
            }
        }
        i += 1;
        start = i;
    }
    buf.extend_from_slice(&bytes[start..]);
    buf.push(b'"');
}

/// Whether any of the eight bytes of `word` is a control character, a quote or a backslash
/// (the bytes a JSON string escapes), with the word-at-a-time tests "has a zero byte" and "has
/// a byte less than n" (exact for n up to 128).
fn needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS != 0;
    let below_space = word.wrapping_sub(ONES * 0x20) & !word & HIGHS != 0;
    below_space
        || has_zero(word ^ (ONES * u64::from(b'"')))
        || has_zero(word ^ (ONES * u64::from(b'\\')))
}

/// Writes a float64 as Go's JSON encoders do: shortest round-trip digits, integral values
/// without a fraction, exponent notation below 1e-6 and from 1e21.
pub fn write_f64(buf: &mut Vec<u8>, f: f64) {
    use std::io::Write;
    if !f.is_finite() {
        // Go refuses to encode these; APM Server would fail the document. Write 0 rather than
        // producing invalid JSON.
        buf.push(b'0');
        return;
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let _ = write!(buf, "{f:e}");
    } else {
        let _ = write!(buf, "{f}");
    }
}

pub(super) fn write_u64(buf: &mut Vec<u8>, v: u64) {
    let mut b = itoa::Buffer::new();
    buf.extend_from_slice(b.format(v).as_bytes());
}

pub(super) fn write_i64(buf: &mut Vec<u8>, v: i64) {
    let mut b = itoa::Buffer::new();
    buf.extend_from_slice(b.format(v).as_bytes());
}

/// Writes a free-form value; numbers are float64 in APM Server's model.
pub fn write_value(buf: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => buf.extend_from_slice(b"null"),
        Value::Bool(b) => buf.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(n) => write_f64(buf, n.as_f64().unwrap_or(0.0)),
        Value::String(s) => write_str(buf, s),
        Value::Array(a) => {
            write_list(buf, a, write_value);
        }
        Value::Object(m) => write_object(buf, m),
    }
}

/// A JSON array of `items`, each written by `item`.
pub(super) fn write_list<T>(b: &mut Vec<u8>, items: &[T], item: impl Fn(&mut Vec<u8>, &T)) {
    b.push(b'[');
    for (j, x) in items.iter().enumerate() {
        if j > 0 {
            b.push(b',');
        }
        item(b, x);
    }
    b.push(b']');
}

pub(super) fn write_object(buf: &mut Vec<u8>, m: &Object) {
    buf.push(b'{');
    for (i, (k, v)) in m.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        write_str(buf, k);
        buf.push(b':');
        write_value(buf, v);
    }
    buf.push(b'}');
}

/// Formats nanoseconds since the epoch as `2006-01-02T15:04:05.000Z`.
pub fn write_timestamp(buf: &mut Vec<u8>, ns: i64) {
    use std::io::Write;
    let secs = ns.div_euclid(1_000_000_000);
    let ms = ns.rem_euclid(1_000_000_000) / 1_000_000;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let _ = write!(
        buf,
        "\"{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z\"",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    );
}

#[cfg(test)]
mod tests {
    use super::write_str;
    use proptest::prelude::*;

    /// The byte-by-byte escaping `write_str` must equal.
    fn reference(s: &str) -> Vec<u8> {
        let mut out = vec![b'"'];
        for &b in s.as_bytes() {
            match b {
                b'"' => out.extend_from_slice(b"\\\""),
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                0..=0x1f => out.extend_from_slice(format!("\\u{:04x}", b).as_bytes()),
                _ => out.push(b),
            }
        }
        out.push(b'"');
        out
    }

    fn written(s: &str) -> Vec<u8> {
        let mut buf = Vec::new();
        write_str(&mut buf, s);
        buf
    }

    #[test]
    fn every_byte_that_needs_an_escape_is_escaped_at_every_offset() {
        let specials = [
            '"', '\\', '\n', '\r', '\t', '\u{0}', '\u{1f}', '\u{7f}', 'é', '€',
        ];
        for c in specials {
            for at in 0..20 {
                let s: String = "abcdefghijklmnopqrstuvwxyz"[..at]
                    .chars()
                    .chain([c])
                    .chain("tail-of-it".chars())
                    .collect();
                assert_eq!(written(&s), reference(&s), "{s:?}");
            }
        }
    }

    proptest! {
        #[test]
        fn escapes_as_the_byte_by_byte_reference(s in "\\PC*|[\\x00-\\x7f]{0,40}") {
            prop_assert_eq!(written(&s), reference(&s));
        }
    }
}

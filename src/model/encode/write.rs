//! JSON scalars as APM Server's encoder writes them: strings with Go's escaping, floats and
//! integers in Go's formats, any free-form value, and `@timestamp`.

use crate::model::json::{Object, Value, civil_from_days};

/// Writes `s` as a JSON string.
pub fn write_str(buf: &mut Vec<u8>, s: &str) {
    buf.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: Option<&[u8]> = match b {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            b'\n' => Some(b"\\n"),
            b'\r' => Some(b"\\r"),
            b'\t' => Some(b"\\t"),
            0..=0x1f => None,
            _ => continue,
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
        start = i + 1;
    }
    buf.extend_from_slice(&bytes[start..]);
    buf.push(b'"');
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

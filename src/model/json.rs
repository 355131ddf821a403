//! JSON decoding primitives shared by the v2 and RUM v3 intake types.
//!
//! APM Server decodes intake lines with jsoniter into generated "nullable" structs: `null` means
//! "not set" everywhere, unknown keys are ignored, a repeated key keeps its last value, and a
//! decoding error is reported with the Go type and field path (`v2.transaction.ID: ReadString:
//! expects " or n,`). The types and the [`json_struct!`] macro here reproduce those semantics on
//! top of serde, borrowing strings from the input line whenever they carry no escapes.
//!
//! This module never allocates for an unescaped string and never interprets what it decodes:
//! validation lives beside each intake type, mapping lives in the decoders.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// A string borrowed from the input line, or owned when the JSON text had escapes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct JStr<'a>(pub Cow<'a, str>);

impl<'a> JStr<'a> {
    /// The string value.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// Number of Unicode scalar values, as Go's `utf8.RuneCountInString` counts them.
    pub fn runes(&self) -> usize {
        self.0.chars().count()
    }
}

impl std::ops::Deref for JStr<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

struct JStrVisitor;

impl<'de> Visitor<'de> for JStrVisitor {
    type Value = JStr<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(JStr(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(JStr(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(JStr(Cow::Owned(v)))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Err(E::custom(READ_STRING))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Err(E::custom(READ_STRING))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Err(E::custom(READ_STRING))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Err(E::custom(READ_STRING))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(de::Error::custom(READ_STRING))
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(de::Error::custom(READ_STRING))
    }
}

// jsoniter's wording, after APM Server strips the " but found ..." tail that quotes the input.
const READ_STRING: &str = "ReadString: expects \" or n,";
const READ_INT: &str = "ReadInt64: unexpected character,";
const READ_FLOAT: &str = "ReadFloat64: unexpected character,";
const READ_BOOL: &str = "ReadBool: expect t or f,";
const FLOAT_AS_INT: &str = "assertInteger: can not decode float as int,";
const READ_OBJECT: &str = "readObjectStart: expect { or n,";
const READ_ARRAY: &str = "ReadArray: expect [ or , or ] or n,";

impl<'de> Deserialize<'de> for JStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JStrVisitor)
    }
}

/// A JSON integer (Go `nullable.Int`): floats are rejected like jsoniter's `ReadInt`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JInt(pub i64);

impl<'de> Deserialize<'de> for JInt {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = JInt;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an integer")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<JInt, E> {
                Ok(JInt(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<JInt, E> {
                i64::try_from(v)
                    .map(JInt)
                    .map_err(|_| E::custom("ReadInt64: overflow,"))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<JInt, E> {
                Err(E::custom(FLOAT_AS_INT))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<JInt, E> {
                Err(E::custom(READ_INT))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<JInt, E> {
                Err(E::custom(READ_INT))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<JInt, A::Error> {
                Err(de::Error::custom(READ_INT))
            }
            fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<JInt, A::Error> {
                Err(de::Error::custom(READ_INT))
            }
        }
        d.deserialize_any(V)
    }
}

/// A JSON number read as float64 (Go `nullable.Float64`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct JFloat(pub f64);

impl<'de> Deserialize<'de> for JFloat {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = JFloat;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<JFloat, E> {
                Ok(JFloat(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<JFloat, E> {
                Ok(JFloat(v as f64))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<JFloat, E> {
                Ok(JFloat(v))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<JFloat, E> {
                Err(E::custom(READ_FLOAT))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<JFloat, E> {
                Err(E::custom(READ_FLOAT))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<JFloat, A::Error> {
                Err(de::Error::custom(READ_FLOAT))
            }
            fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<JFloat, A::Error> {
                Err(de::Error::custom(READ_FLOAT))
            }
        }
        d.deserialize_any(V)
    }
}

/// A JSON boolean (Go `nullable.Bool`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JBool(pub bool);

impl<'de> Deserialize<'de> for JBool {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = JBool;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a boolean")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<JBool, E> {
                Ok(JBool(v))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<JBool, E> {
                Err(E::custom(READ_BOOL))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<JBool, E> {
                Err(E::custom(READ_BOOL))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<JBool, E> {
                Err(E::custom(READ_BOOL))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<JBool, E> {
                Err(E::custom(READ_BOOL))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<JBool, A::Error> {
                Err(de::Error::custom(READ_BOOL))
            }
            fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<JBool, A::Error> {
                Err(de::Error::custom(READ_BOOL))
            }
        }
        d.deserialize_any(V)
    }
}

/// Event time (Go `nullable.TimeMicrosUnix`): integer microseconds since the epoch, or an RFC
/// 3339 string (offsets `Z07:00`, `Z0700` or `Z07`). Stored as nanoseconds since the epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JTime(pub i64);

impl<'de> Deserialize<'de> for JTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = JTime;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a timestamp")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<JTime, E> {
                Ok(JTime(v.saturating_mul(1000)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<JTime, E> {
                let v = i64::try_from(v).map_err(|_| E::custom("ReadInt64: overflow,"))?;
                Ok(JTime(v.saturating_mul(1000)))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<JTime, E> {
                Err(E::custom(FLOAT_AS_INT))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<JTime, E> {
                parse_rfc3339(v)
                    .map(JTime)
                    .ok_or_else(|| E::custom("failed to parse the provided time string"))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<JTime, E> {
                Err(E::custom("invalid input type for timestamp"))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<JTime, A::Error> {
                Err(de::Error::custom("invalid input type for timestamp"))
            }
            fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<JTime, A::Error> {
                Err(de::Error::custom("invalid input type for timestamp"))
            }
        }
        d.deserialize_any(V)
    }
}

/// Parses the RFC 3339 variants APM Server accepts into nanoseconds since the epoch.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(r)?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || min > 59
        || sec > 59
    {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0i64;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        let mut end = start;
        while end < b.len() && b[end].is_ascii_digit() {
            end += 1;
        }
        if end == start || end - start > 9 {
            return None;
        }
        nanos = num(start..end)? * 10i64.pow(9 - (end - start) as u32);
        i = end;
    }
    let offset = match b.get(i)? {
        b'Z' if i + 1 == b.len() => 0,
        c @ (b'+' | b'-') => {
            let sign = if *c == b'-' { -1 } else { 1 };
            let rest = &s[i + 1..];
            let (h, m) = match rest.len() {
                5 if rest.as_bytes()[2] == b':' => (num(i + 1..i + 3)?, num(i + 4..i + 6)?),
                4 => (num(i + 1..i + 3)?, num(i + 3..i + 5)?),
                2 => (num(i + 1..i + 3)?, 0),
                _ => return None,
            };
            if h > 23 || m > 59 {
                return None;
            }
            sign * (h * 3600 + m * 60)
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + min * 60 + sec - offset;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A free-form JSON value (custom context, env, cookies, vars, bodies, OTel attributes).
pub type Value = serde_json::Value;
/// A free-form JSON object.
pub type Object = serde_json::Map<String, Value>;

/// A free-form object field (`map[string]any` in Go): `null` leaves it unset.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JObject(pub Object);

impl<'de> Deserialize<'de> for JObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = JObject;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_unit<E: de::Error>(self) -> Result<JObject, E> {
                Ok(JObject::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JObject, A::Error> {
                let mut out = Object::new();
                while let Some((k, v)) = map.next_entry::<String, Value>()? {
                    out.insert(k, v);
                }
                Ok(JObject(out))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<JObject, E> {
                Err(E::custom(READ_OBJECT))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<JObject, E> {
                Err(E::custom(READ_OBJECT))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<JObject, E> {
                Err(E::custom(READ_OBJECT))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<JObject, E> {
                Err(E::custom(READ_OBJECT))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<JObject, E> {
                Err(E::custom(READ_OBJECT))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<JObject, A::Error> {
                Err(de::Error::custom(READ_OBJECT))
            }
        }
        d.deserialize_any(V)
    }
}

/// A free-form value field (Go `nullable.Interface`): `null` leaves it unset.
#[derive(Clone, Debug, PartialEq)]
pub struct JAny(pub Value);

impl<'de> Deserialize<'de> for JAny {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Value::deserialize(d).map(JAny)
    }
}

/// A label value as sent (`tags`, `labels`): validation rejects anything but these scalars.
#[derive(Clone, Debug, PartialEq)]
pub enum LabelIn<'a> {
    /// `null`: the label is dropped.
    Null,
    /// A string label.
    Str(Cow<'a, str>),
    /// A boolean label (written as a string label).
    Bool(bool),
    /// A numeric label.
    Num(f64),
    /// An array or object: a validation error.
    Other,
}

impl<'de> Deserialize<'de> for LabelIn<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = LabelIn<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a label value")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(LabelIn::Null)
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(LabelIn::Bool(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(LabelIn::Num(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(LabelIn::Num(v as f64))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(LabelIn::Num(v))
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(LabelIn::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(LabelIn::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(LabelIn::Str(Cow::Owned(v)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(LabelIn::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(LabelIn::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// A JSON object kept as ordered key/value pairs; a repeated key keeps its last value, like a Go
/// map. `null` leaves it unset.
#[derive(Clone, Debug, PartialEq)]
pub struct JMap<'a, T>(pub Vec<(Cow<'a, str>, T)>);

impl<T> Default for JMap<'_, T> {
    fn default() -> Self {
        JMap(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for JMap<'de, T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = JMap<'de, T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(JMap(Vec::new()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out: Vec<(Cow<'de, str>, T)> = Vec::new();
                while let Some(k) = map.next_key::<JStr<'de>>()? {
                    let v = map.next_value::<T>()?;
                    if let Some(slot) = out.iter_mut().find(|(ek, _)| *ek == k.0) {
                        slot.1 = v;
                    } else {
                        out.push((k.0, v));
                    }
                }
                Ok(JMap(out))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Err(E::custom(READ_OBJECT))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Err(E::custom(READ_OBJECT))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Err(E::custom(READ_OBJECT))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Err(E::custom(READ_OBJECT))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Err(E::custom(READ_OBJECT))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
                Err(de::Error::custom(READ_OBJECT))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// A JSON array (Go slice): `null` leaves it unset (empty).
#[derive(Clone, Debug, PartialEq)]
pub struct JVec<T>(pub Vec<T>);

impl<T> Default for JVec<T> {
    fn default() -> Self {
        JVec(Vec::new())
    }
}

impl<T> std::ops::Deref for JVec<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.0
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for JVec<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = JVec<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(JVec(Vec::new()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
                while let Some(v) = seq.next_element::<T>()? {
                    out.push(v);
                }
                Ok(JVec(out))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Err(E::custom(READ_ARRAY))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Err(E::custom(READ_ARRAY))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Err(E::custom(READ_ARRAY))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Err(E::custom(READ_ARRAY))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Err(E::custom(READ_ARRAY))
            }
            fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
                Err(de::Error::custom(READ_ARRAY))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// An HTTP header map (Go `nullable.HTTPHeader`): values are strings or arrays of strings; keys
/// are canonicalised like Go's `http.Header.Add`, and repeated keys accumulate values.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JHeaders<'a> {
    /// Whether the field was present and not `null`.
    pub set: bool,
    /// Canonical key and values, in first-seen order.
    pub values: Vec<(Cow<'a, str>, Vec<Cow<'a, str>>)>,
}

impl<'a> JHeaders<'a> {
    /// All values of a header, looked up by its canonical name.
    pub fn get(&self, canonical: &str) -> Option<&[Cow<'a, str>]> {
        self.values
            .iter()
            .find(|(k, _)| k == canonical)
            .map(|(_, v)| v.as_slice())
    }
}

/// Go's `textproto.CanonicalMIMEHeaderKey`: the first letter and letters after '-' upper case,
/// the rest lower case; keys with a space or a byte outside the token set are left unchanged.
pub fn canonical_header_key(k: &str) -> Cow<'_, str> {
    let valid = k
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c));
    if !valid {
        return Cow::Borrowed(k);
    }
    let mut upper = true;
    let mut changed = false;
    let mut out = String::with_capacity(k.len());
    for c in k.chars() {
        let n = if upper {
            c.to_ascii_uppercase()
        } else {
            c.to_ascii_lowercase()
        };
        changed |= n != c;
        out.push(n);
        upper = c == '-';
    }
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(k)
    }
}

impl<'de> Deserialize<'de> for JHeaders<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        enum One<'a> {
            S(Cow<'a, str>),
            Many(Vec<Cow<'a, str>>),
        }
        impl<'de> Deserialize<'de> for One<'de> {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = One<'de>;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str("a header value")
                    }
                    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<One<'de>, E> {
                        Ok(One::S(Cow::Borrowed(v)))
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<One<'de>, E> {
                        Ok(One::S(Cow::Owned(v.to_owned())))
                    }
                    fn visit_seq<A: SeqAccess<'de>>(
                        self,
                        mut seq: A,
                    ) -> Result<One<'de>, A::Error> {
                        let mut all = Vec::new();
                        while let Some(v) = seq.next_element::<Value>()? {
                            all.push(v);
                        }
                        // Since APM Server 8.10 (apm-data #140) null and other non-string
                        // header values are rejected, inside arrays too.
                        if all.iter().all(Value::is_string) {
                            Ok(One::Many(
                                all.into_iter()
                                    .map(|v| match v {
                                        Value::String(s) => Cow::Owned(s),
                                        _ => Cow::Borrowed(""),
                                    })
                                    .collect(),
                            ))
                        } else {
                            Err(header_error(&Value::Array(all)))
                        }
                    }
                    fn visit_unit<E: de::Error>(self) -> Result<One<'de>, E> {
                        Err(header_error(&Value::Null))
                    }
                    fn visit_bool<E: de::Error>(self, v: bool) -> Result<One<'de>, E> {
                        Err(header_error(&Value::Bool(v)))
                    }
                    fn visit_i64<E: de::Error>(self, v: i64) -> Result<One<'de>, E> {
                        Err(header_error(&Value::from(v)))
                    }
                    fn visit_u64<E: de::Error>(self, v: u64) -> Result<One<'de>, E> {
                        Err(header_error(&Value::from(v)))
                    }
                    fn visit_f64<E: de::Error>(self, v: f64) -> Result<One<'de>, E> {
                        Err(header_error(&Value::from(v)))
                    }
                    fn visit_map<A: MapAccess<'de>>(
                        self,
                        mut map: A,
                    ) -> Result<One<'de>, A::Error> {
                        let mut m = Object::new();
                        while let Some((k, v)) = map.next_entry::<String, Value>()? {
                            m.insert(k, v);
                        }
                        Err(header_error(&Value::Object(m)))
                    }
                }
                d.deserialize_any(V)
            }
        }
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = JHeaders<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of headers")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(JHeaders::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                // Go decodes the object into a map first (the last repeated key wins), then adds
                // each entry under its canonical key.
                let mut raw: Vec<(Cow<'de, str>, One<'de>)> = Vec::new();
                while let Some(k) = map.next_key::<JStr<'de>>()? {
                    let v = map.next_value::<One<'de>>()?;
                    if let Some(slot) = raw.iter_mut().find(|(ek, _)| *ek == k.0) {
                        slot.1 = v;
                    } else {
                        raw.push((k.0, v));
                    }
                }
                let mut out = JHeaders {
                    set: true,
                    values: Vec::with_capacity(raw.len()),
                };
                for (k, v) in raw {
                    let key = match canonical_header_key(&k) {
                        Cow::Borrowed(_) => k,
                        Cow::Owned(s) => Cow::Owned(s),
                    };
                    let vals = match v {
                        One::S(s) => vec![s],
                        One::Many(m) => m,
                    };
                    if let Some(slot) = out.values.iter_mut().find(|(ek, _)| *ek == key) {
                        slot.1.extend(vals);
                    } else if !vals.is_empty() {
                        out.values.push((key, vals));
                    }
                }
                Ok(out)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Err(E::custom("invalid input type for HTTPHeader"))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Err(E::custom("invalid input type for HTTPHeader"))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Err(E::custom("invalid input type for HTTPHeader"))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Err(E::custom("invalid input type for HTTPHeader"))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Err(E::custom("invalid input type for HTTPHeader"))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Err(de::Error::custom("invalid input type for HTTPHeader"))
            }
        }
        d.deserialize_any(V)
    }
}

fn header_error<E: de::Error>(v: &Value) -> E {
    E::custom(format_args!(
        "invalid input for HTTPHeader: {}",
        go_print(v)
    ))
}

/// Go's `%v` of a decoded JSON value.
fn go_print(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(a) => format!("[{}]", a.iter().map(go_print).collect::<Vec<_>>().join(" ")),
        Value::Object(m) => {
            let mut kv: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{k}:{}", go_print(v)))
                .collect();
            kv.sort();
            format!("map[{}]", kv.join(" "))
        }
    }
}

/// Whether a decoded field counts as "set" (Go's generated `IsSet`): present and not `null`,
/// non-empty for maps and arrays, any field set for objects.
pub trait IsSet {
    /// See the trait documentation.
    fn is_set(&self) -> bool;
}

impl<T> IsSet for Option<T> {
    fn is_set(&self) -> bool {
        self.is_some()
    }
}
impl<T> IsSet for JVec<T> {
    fn is_set(&self) -> bool {
        !self.0.is_empty()
    }
}
impl<T> IsSet for JMap<'_, T> {
    fn is_set(&self) -> bool {
        !self.0.is_empty()
    }
}
impl IsSet for JObject {
    fn is_set(&self) -> bool {
        !self.0.is_empty()
    }
}
impl IsSet for JHeaders<'_> {
    fn is_set(&self) -> bool {
        self.set
    }
}

/// Removes the ` at line N column M` position serde_json appends, so that wrapped messages carry
/// one position at most (and the final message none).
pub fn strip_position(msg: &str) -> &str {
    if let Some(idx) = msg.rfind(" at line ") {
        let tail = &msg[idx + " at line ".len()..];
        let mut parts = tail.splitn(3, ' ');
        let line_ok = parts
            .next()
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()));
        let col_kw = parts.next() == Some("column");
        let col_ok = parts
            .next()
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()));
        if line_ok && col_kw && col_ok {
            return &msg[..idx];
        }
    }
    msg
}

/// Wraps an error raised while decoding the value of field `go_field` of struct `go_type`, as
/// jsoniter does: `<go_type>.<go_field>: <inner>`.
pub fn wrap_field<E: de::Error>(e: E, go_type: &str, go_field: &str) -> E {
    let msg = e.to_string();
    E::custom(format_args!(
        "{go_type}.{go_field}: {}",
        strip_position(&msg)
    ))
}

/// Wraps an error raised while reading the keys of struct `go_type` (a syntax error between
/// fields), translating serde_json's wording of the common cases into jsoniter's.
pub fn wrap_struct<E: de::Error>(e: E, go_type: &str, fields: usize) -> E {
    let msg = e.to_string();
    let inner = strip_position(&msg);
    let translated = if inner == "expected `:`" {
        // jsoniter decodes structs of up to ten fields with hashed keys (readFieldHash), larger
        // ones field by field (ReadObjectCB).
        if fields <= 10 {
            "readFieldHash: expect :,"
        } else {
            "ReadObjectCB: expect : after object field,"
        }
    } else if inner == "key must be a string" {
        if fields <= 10 {
            "readFieldHash: expect \","
        } else {
            "ReadObjectCB: expect \" after object field,"
        }
    } else {
        inner
    };
    E::custom(format_args!("{go_type}.{translated}"))
}

/// Declares an intake struct: the fields, the JSON key of each and the Go names APM Server's
/// decoder reports in error paths; derives `Deserialize` (last repeated key wins, unknown keys
/// ignored, `null` = unset) and [`IsSet`].
macro_rules! json_struct {
    (
        $(#[$meta:meta])*
        pub struct $name:ident<$lt:lifetime> : $go:literal {
            $(
                $(#[$fmeta:meta])*
                $field:ident : $ty:ty = $key:literal / $gofield:literal,
            )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, Default, ::schemars::JsonSchema)]
        // `null` is accepted for every object and means "not set".
        #[schemars(extend("type" = ["object", "null"]))]
        pub struct $name<$lt> {
            $( $(#[$fmeta])* #[serde(rename = $key, default)] pub $field: $ty, )*
            #[doc(hidden)]
            #[serde(skip)]
            pub _p: ::std::marker::PhantomData<&$lt ()>,
        }

        impl<$lt> ::serde::Deserialize<$lt> for $name<$lt> {
            fn deserialize<D: ::serde::Deserializer<$lt>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<$lt> ::serde::de::Visitor<$lt> for V {
                    type Value = $name<$lt>;
                    fn expecting(&self, f: &mut ::std::fmt::Formatter) -> ::std::fmt::Result {
                        f.write_str(concat!("an object (", $go, ")"))
                    }
                    fn visit_unit<E: ::serde::de::Error>(self) -> Result<Self::Value, E> {
                        Ok(Default::default())
                    }
                    #[allow(unused_mut)]
                    fn visit_map<A: ::serde::de::MapAccess<$lt>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                        const FIELDS: usize = [$($key),*].len();
                        let mut out: $name<$lt> = Default::default();
                        loop {
                            let key = match map.next_key::<$crate::model::json::JStr<$lt>>() {
                                Ok(Some(k)) => k,
                                Ok(None) => break,
                                Err(e) => return Err($crate::model::json::wrap_struct(e, $go, FIELDS)),
                            };
                            match key.as_str() {
                                $( $key => {
                                    out.$field = map.next_value::<$ty>()
                                        .map_err(|e| $crate::model::json::wrap_field(e, $go, $gofield))?;
                                } )*
                                _ => {
                                    map.next_value::<::serde::de::IgnoredAny>()
                                        .map_err(|e| $crate::model::json::wrap_struct(e, $go, FIELDS))?;
                                }
                            }
                        }
                        Ok(out)
                    }
                    fn visit_bool<E: ::serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
                        Err(E::custom("readObjectStart: expect { or n,"))
                    }
                    fn visit_i64<E: ::serde::de::Error>(self, _: i64) -> Result<Self::Value, E> {
                        Err(E::custom("readObjectStart: expect { or n,"))
                    }
                    fn visit_u64<E: ::serde::de::Error>(self, _: u64) -> Result<Self::Value, E> {
                        Err(E::custom("readObjectStart: expect { or n,"))
                    }
                    fn visit_f64<E: ::serde::de::Error>(self, _: f64) -> Result<Self::Value, E> {
                        Err(E::custom("readObjectStart: expect { or n,"))
                    }
                    fn visit_str<E: ::serde::de::Error>(self, _: &str) -> Result<Self::Value, E> {
                        Err(E::custom("readObjectStart: expect { or n,"))
                    }
                    fn visit_seq<A: ::serde::de::SeqAccess<$lt>>(self, _: A) -> Result<Self::Value, A::Error> {
                        Err(::serde::de::Error::custom("readObjectStart: expect { or n,"))
                    }
                }
                d.deserialize_any(V)
            }
        }

        impl $crate::model::json::IsSet for $name<'_> {
            fn is_set(&self) -> bool {
                false $( || $crate::model::json::IsSet::is_set(&self.$field) )*
            }
        }
    };
}
pub(crate) use json_struct;

/// Validation helpers producing APM Server's messages.
pub mod rules {
    use super::{IsSet, JStr, LabelIn};
    use std::borrow::Cow;

    /// A validation failure message (without the `validation error: ` prefix).
    pub type VResult = Result<(), String>;

    /// `'<key>': validation rule 'maxLength(<n>)' violated`
    pub fn max_len(v: &Option<JStr<'_>>, n: usize, key: &str) -> VResult {
        match v {
            Some(s) if s.len() > n && s.runes() > n => Err(format!(
                "'{key}': validation rule 'maxLength({n})' violated"
            )),
            _ => Ok(()),
        }
    }

    /// `'<key>': validation rule 'minLength(1)' violated`
    pub fn min_len1(v: &Option<JStr<'_>>, key: &str) -> VResult {
        match v {
            Some(s) if s.is_empty() => {
                Err(format!("'{key}': validation rule 'minLength(1)' violated"))
            }
            _ => Ok(()),
        }
    }

    /// `'<key>' required`
    pub fn required<T: IsSet>(v: &T, key: &str) -> VResult {
        if v.is_set() {
            Ok(())
        } else {
            Err(format!("'{key}' required"))
        }
    }

    /// Runs a nested struct's validation when it is set, prefixing its path.
    pub fn nested<T: IsSet>(v: &T, key: &str, f: impl FnOnce(&T) -> VResult) -> VResult {
        if v.is_set() {
            f(v).map_err(|e| format!("{key}: {e}"))
        } else {
            Ok(())
        }
    }

    /// Validates each element of a slice of structs.
    pub fn each<T: IsSet>(v: &[T], key: &str, f: impl Fn(&T) -> VResult) -> VResult {
        for elem in v {
            if !elem.is_set() {
                return Err(format!("{key} slice element required"));
            }
            f(elem).map_err(|e| format!("{key}: {e}"))?;
        }
        Ok(())
    }

    /// `requires at least one of the fields '<a>;<b>'`
    pub fn any_of(set: bool, names: &str) -> VResult {
        if set {
            Ok(())
        } else {
            Err(format!("requires at least one of the fields '{names}'"))
        }
    }

    /// `'<key>': validation rule 'pattern(patternAlphaNumericExt)' violated` (`^[a-zA-Z0-9 _-]+$`),
    /// checked only on a non-empty value.
    pub fn alnum_ext(v: &Option<JStr<'_>>, key: &str) -> VResult {
        match v {
            Some(s)
                if !s.is_empty()
                    && !s
                        .bytes()
                        .all(|c| c.is_ascii_alphanumeric() || b" _-".contains(&c)) =>
            {
                Err(format!(
                    "'{key}': validation rule 'pattern(patternAlphaNumericExt)' violated"
                ))
            }
            _ => Ok(()),
        }
    }

    /// `'outcome': validation rule 'enum(enumOutcome)' violated`, checked on a non-empty value.
    pub fn outcome(v: &Option<JStr<'_>>, key: &str) -> VResult {
        match v {
            Some(s)
                if !s.is_empty() && !matches!(s.as_str(), "success" | "failure" | "unknown") =>
            {
                Err(format!(
                    "'{key}': validation rule 'enum(enumOutcome)' violated"
                ))
            }
            _ => Ok(()),
        }
    }

    /// `'<key>': validation rule 'min(<n>)' violated` for numbers.
    pub fn min_f(v: Option<f64>, n: f64, key: &str, shown: &str) -> VResult {
        match v {
            Some(x) if x < n => Err(format!("'{key}': validation rule 'min({shown})' violated")),
            _ => Ok(()),
        }
    }

    /// Label values: strings (at most 1024 runes), booleans, numbers, null.
    pub fn labels(v: &[(Cow<'_, str>, LabelIn<'_>)], key: &str) -> VResult {
        for (k, val) in v {
            match val {
                LabelIn::Str(s) if s.len() > 1024 && s.chars().count() > 1024 => {
                    return Err(format!(
                        "'{key}': validation rule 'maxLengthVals(1024)' violated"
                    ));
                }
                LabelIn::Other => {
                    return Err(format!(
                        "'{key}': validation rule 'inputTypesVals(string;bool;number)' violated for key {k}"
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// A value that may be a string or an integer (`id`, `code`, `port`).
    pub fn string_or_int(
        v: &Option<super::JAny>,
        key: &str,
        max: usize,
        target_int: bool,
    ) -> VResult {
        use serde_json::Value;
        match v.as_ref().map(|a| &a.0) {
            None | Some(Value::Null) => Ok(()),
            Some(Value::String(s)) => {
                if s.chars().count() > max {
                    return Err(format!(
                        "'{key}': validation rule 'maxLength({max})' violated"
                    ));
                }
                if target_int && s.parse::<i64>().is_err() {
                    return Err(format!(
                        "'{key}': validation rule 'targetType(int)' violated"
                    ));
                }
                Ok(())
            }
            Some(Value::Number(n)) => {
                if n.is_i64() || n.is_u64() && n.as_u64().is_some_and(|u| i64::try_from(u).is_ok())
                {
                    Ok(())
                } else {
                    Err(format!(
                        "'{key}': validation rule 'inputTypes(string;int)' violated"
                    ))
                }
            }
            // Go's generated code has a trailing space in this one message.
            Some(_) => Err(format!(
                "'{key}': validation rule 'inputTypes(string;int)' violated "
            )),
        }
    }
}

// JSON Schemas of the primitives, as apmgate accepts them (used by `schema`).

macro_rules! simple_schema {
    ($t:ty, $name:literal, $schema:tt) => {
        impl JsonSchema for $t {
            fn schema_name() -> Cow<'static, str> {
                Cow::Borrowed($name)
            }
            fn inline_schema() -> bool {
                true
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!($schema)
            }
        }
    };
}

simple_schema!(JStr<'_>, "String", {"type": "string"});
simple_schema!(JInt, "Integer", {"type": "integer"});
simple_schema!(JFloat, "Number", {"type": "number"});
simple_schema!(JBool, "Boolean", {"type": "boolean"});
simple_schema!(JTime, "Timestamp", {
    "description": "Microseconds since the Unix epoch, or an RFC 3339 time string.",
    "type": ["integer", "string"]
});
simple_schema!(JObject, "FreeFormObject", {"type": ["object", "null"]});
simple_schema!(JAny, "Any", true);
simple_schema!(LabelIn<'_>, "LabelValue", {"type": ["string", "boolean", "number", "null"], "maxLength": 1024});
simple_schema!(JHeaders<'_>, "Headers", {
    "type": ["object", "null"],
    "additionalProperties": {
        "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]
    }
});

impl<T: JsonSchema> JsonSchema for JMap<'_, T> {
    fn schema_name() -> Cow<'static, str> {
        Cow::Owned(format!("MapOf{}", T::schema_name()))
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let values = generator.subschema_for::<T>();
        json_schema!({"type": ["object", "null"], "additionalProperties": values})
    }
}

impl<T: JsonSchema> JsonSchema for JVec<T> {
    fn schema_name() -> Cow<'static, str> {
        Cow::Owned(format!("ArrayOf{}", T::schema_name()))
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let items = generator.subschema_for::<T>();
        json_schema!({"type": ["array", "null"], "items": items})
    }
}

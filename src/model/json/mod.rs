//! JSON decoding primitives shared by the v2 and RUM v3 intake types.
//!
//! APM Server decodes intake lines with jsoniter into generated "nullable" structs: `null` means
//! "not set" everywhere, unknown keys are ignored, a repeated key keeps its last value, and a
//! decoding error is reported with the Go type and field path (`v2.transaction.ID: ReadString:
//! expects " or n,`). The types here and the [`json_struct!`] macro (`declare.rs`, with the
//! [`Protocol`] markers that let one declaration serve v2 and RUM v3) reproduce those semantics
//! on top of serde, borrowing strings from the input line whenever they carry no escapes.
//!
//! This module never allocates for an unescaped string and never interprets what it decodes:
//! validation lives beside each intake type, mapping lives in the decoders.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

mod declare;
mod headers;
pub mod rules;
mod schema;
mod time;

pub use self::declare::{Protocol, RumV3, V2};
pub(crate) use self::declare::{field_schema, json_struct, object_schema};
pub use self::headers::{JHeaders, canonical_header_key};
pub use self::time::{JTime, civil_from_days, days_from_civil, parse_rfc3339};

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
pub(super) const FLOAT_AS_INT: &str = "assertInteger: can not decode float as int,";
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

//! HTTP header maps as agents report them ([`JHeaders`], Go's `nullable.HTTPHeader`): string or
//! array values, keys canonicalised like Go's `http.Header`.

use std::borrow::Cow;
use std::fmt;

use super::{JStr, Object, Value};
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

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

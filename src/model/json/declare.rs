//! Declaring intake objects: the [`json_struct!`] macro, and the [`Protocol`] markers that let
//! one declaration serve both intake protocols.
//!
//! RUM v3 is intake v2 with abbreviated keys (`service` is `se`, `name` is `n`) and a few fields
//! left out. An object both protocols share is declared once, generic over `P: Protocol`, each
//! field naming its v2 key and its RUM v3 key (or `_` where RUM v3 has no such field): the
//! declaration yields the v2 decoder as `T<'a, V2>` (the default) and the RUM v3 decoder as
//! `T<'a, RumV3>`, with the Go type names APM Server reports for each in error paths.
//!
//! Nothing here validates or maps: a declaration only says which keys a decoder reads into which
//! fields, and how APM Server words a decoding error.

use schemars::{JsonSchema, Schema, SchemaGenerator};

/// An intake protocol: which of a field's two keys a decoder reads.
pub trait Protocol: Clone + Copy + std::fmt::Debug + Default + Send + Sync + 'static {
    /// RUM v3's abbreviated keys rather than v2's.
    const RUM_V3: bool;
}

/// Intake v2 (`/intake/v2/events`, `/intake/v2/rum/events`): full key names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct V2;

/// RUM v3 (`/intake/v3/rum/events`): abbreviated key names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RumV3;

impl Protocol for V2 {
    const RUM_V3: bool = false;
}

impl Protocol for RumV3 {
    const RUM_V3: bool = true;
}

/// A doc comment as schemars writes it into a schema: one leading space off each line, the
/// lines joined, the whole trimmed.
fn doc_text(lines: &[&str]) -> String {
    lines
        .iter()
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_owned()
}

/// The schema of one field of a protocol-generic object: its type's, described by the field's
/// doc comment (what `#[derive(JsonSchema)]` writes for the single-protocol objects).
pub(crate) fn field_schema<T: JsonSchema>(generator: &mut SchemaGenerator, doc: &[&str]) -> Schema {
    let mut schema = generator.subschema_for::<T>();
    let doc = doc_text(doc);
    if !doc.is_empty() {
        schema.insert("description".into(), doc.into());
    }
    schema
}

/// The schema of a protocol-generic object: its properties under the protocol's keys, `null`
/// allowed (it means "not set"), described by the object's doc comment.
pub(crate) fn object_schema(
    doc: &[&str],
    properties: serde_json::Map<String, serde_json::Value>,
) -> Schema {
    let mut schema = schemars::json_schema!({"type": ["object", "null"]});
    schema.insert("properties".into(), properties.into());
    let doc = doc_text(doc);
    if !doc.is_empty() {
        schema.insert("description".into(), doc.into());
    }
    schema
}

/// Declares an intake struct: the fields, the JSON key of each and the Go names APM Server's
/// decoder reports in error paths; derives `Deserialize` (last repeated key wins, unknown keys
/// ignored, `null` = unset), `JsonSchema` and [`IsSet`](super::IsSet).
///
/// Two forms:
/// - `pub struct T<'a>: "v2.goType" { field: Type = "key" / "GoField", ... }` for an object of
///   one protocol;
/// - `pub struct T<'a, P>: "v2.goType" | "rumv3.goType" { field: Type = "key" | "k" / "GoField",
///   ... }` for an object both protocols share (see the module documentation); `_` in place of a
///   key leaves the field out of that protocol. Each field's wire key under `P` is also an
///   associated constant of the same name (`T::<P>::field`), for validation messages; it is
///   empty where `P` has no such field.
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
                    $crate::model::json::json_struct!(@not_an_object $lt);
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

    (
        $(#[doc = $doc:literal])*
        pub struct $name:ident<$lt:lifetime, P> : $go2:literal | $go3:literal {
            $(
                $(#[doc = $fdoc:literal])*
                $field:ident : $ty:ty = $key2:tt | $key3:tt / $gofield:literal,
            )*
        }
    ) => {
        $(#[doc = $doc])*
        #[derive(Clone, Debug, Default)]
        pub struct $name<$lt, P = $crate::model::json::V2> {
            $( $(#[doc = $fdoc])* pub $field: $ty, )*
            #[doc(hidden)]
            pub _p: ::std::marker::PhantomData<(&$lt (), P)>,
        }

        #[allow(non_upper_case_globals, dead_code)]
        impl<$lt, P: $crate::model::json::Protocol> $name<$lt, P> {
            $(
                pub(crate) const $field: &'static str =
                    if P::RUM_V3 {
                        $crate::model::json::json_struct!(@key $key3)
                    } else {
                        $crate::model::json::json_struct!(@key $key2)
                    };
            )*
        }

        impl<$lt, P: $crate::model::json::Protocol> ::serde::Deserialize<$lt> for $name<$lt, P> {
            fn deserialize<D: ::serde::Deserializer<$lt>>(d: D) -> Result<Self, D::Error> {
                struct V<P>(::std::marker::PhantomData<P>);
                impl<$lt, P: $crate::model::json::Protocol> ::serde::de::Visitor<$lt> for V<P> {
                    type Value = $name<$lt, P>;
                    fn expecting(&self, f: &mut ::std::fmt::Formatter) -> ::std::fmt::Result {
                        f.write_str(if P::RUM_V3 {
                            concat!("an object (", $go3, ")")
                        } else {
                            concat!("an object (", $go2, ")")
                        })
                    }
                    fn visit_unit<E: ::serde::de::Error>(self) -> Result<Self::Value, E> {
                        Ok(Default::default())
                    }
                    #[allow(unused_mut)]
                    fn visit_map<A: ::serde::de::MapAccess<$lt>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                        let (go, fields): (&str, usize) = if P::RUM_V3 {
                            ($go3, 0 $( + $crate::model::json::json_struct!(@count $key3) )*)
                        } else {
                            ($go2, 0 $( + $crate::model::json::json_struct!(@count $key2) )*)
                        };
                        let mut out: $name<$lt, P> = Default::default();
                        loop {
                            let key = match map.next_key::<$crate::model::json::JStr<$lt>>() {
                                Ok(Some(k)) => k,
                                Ok(None) => break,
                                Err(e) => return Err($crate::model::json::wrap_struct(e, go, fields)),
                            };
                            let key = key.as_str();
                            $(
                                let here = if P::RUM_V3 {
                                    $crate::model::json::json_struct!(@is key, $key3)
                                } else {
                                    $crate::model::json::json_struct!(@is key, $key2)
                                };
                                if here {
                                    out.$field = map.next_value::<$ty>()
                                        .map_err(|e| $crate::model::json::wrap_field(e, go, $gofield))?;
                                    continue;
                                }
                            )*
                            map.next_value::<::serde::de::IgnoredAny>()
                                .map_err(|e| $crate::model::json::wrap_struct(e, go, fields))?;
                        }
                        Ok(out)
                    }
                    $crate::model::json::json_struct!(@not_an_object $lt);
                }
                d.deserialize_any(V(::std::marker::PhantomData))
            }
        }

        impl<P> $crate::model::json::IsSet for $name<'_, P> {
            fn is_set(&self) -> bool {
                false $( || $crate::model::json::IsSet::is_set(&self.$field) )*
            }
        }

        impl<$lt, P: $crate::model::json::Protocol> ::schemars::JsonSchema for $name<$lt, P> {
            fn schema_name() -> ::std::borrow::Cow<'static, str> {
                ::std::borrow::Cow::Borrowed(stringify!($name))
            }
            fn schema_id() -> ::std::borrow::Cow<'static, str> {
                ::std::borrow::Cow::Borrowed(if P::RUM_V3 {
                    concat!(module_path!(), "::", stringify!($name), "<RumV3>")
                } else {
                    concat!(module_path!(), "::", stringify!($name), "<V2>")
                })
            }
            fn json_schema(generator: &mut ::schemars::SchemaGenerator) -> ::schemars::Schema {
                let mut properties = ::serde_json::Map::new();
                $(
                    let key: &str = if P::RUM_V3 {
                        $crate::model::json::json_struct!(@key $key3)
                    } else {
                        $crate::model::json::json_struct!(@key $key2)
                    };
                    if !key.is_empty() {
                        let schema = $crate::model::json::field_schema::<$ty>(generator, &[$($fdoc),*]);
                        properties.insert(key.into(), schema.into());
                    }
                )*
                $crate::model::json::object_schema(&[$($doc),*], properties)
            }
        }
    };

    // A field's key under one protocol: empty where the protocol has no such field.
    (@key _) => { "" };
    (@key $key:literal) => { $key };
    // How many fields one protocol's object has (jsoniter's decoding, hence its error wording,
    // depends on it).
    (@count _) => { 0 };
    (@count $key:literal) => { 1 };
    // Whether a key read from the input is a field's key under one protocol.
    (@is $read:ident, _) => { false };
    (@is $read:ident, $key:literal) => { $read == $key };
    // jsoniter's error for anything but an object (or `null`) where an object is expected.
    (@not_an_object $lt:lifetime) => {
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
    };
}
pub(crate) use json_struct;

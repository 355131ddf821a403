//! The JSON Schemas of the decoding primitives, as apmgate accepts them (used by
//! `model::schema` to publish the intake schemas).

use std::borrow::Cow;

use super::headers::JHeaders;
use super::rules::KEYWORD_MAX_LENGTH;
use super::time::JTime;
use super::{JAny, JBool, JFloat, JInt, JMap, JObject, JStr, JVec, LabelIn};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

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
simple_schema!(LabelIn<'_>, "LabelValue", {"type": ["string", "boolean", "number", "null"], "maxLength": KEYWORD_MAX_LENGTH});
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

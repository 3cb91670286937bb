//! Tool declarations and the subset of JSON Schema they use. The types
//! serialise to standard JSON Schema, so providers can forward them as-is
//! (or convert them, as Gemini requires) and `jsonschema` can validate
//! arguments against them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A function the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionDecl {
    pub name: String,
    pub description: String,
    pub parameters: JsonSchema,
}

/// A JSON Schema node: object, string, integer, number, boolean or array.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum JsonSchema {
    Object {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        #[serde(default)]
        properties: BTreeMap<String, JsonSchema>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        required: Vec<String>,
        #[serde(
            default,
            rename = "additionalProperties",
            skip_serializing_if = "Option::is_none"
        )]
        additional_properties: Option<bool>,
    },
    String {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        #[serde(default, rename = "enum", skip_serializing_if = "Option::is_none")]
        allowed: Option<Vec<String>>,
    },
    Integer {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        minimum: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        maximum: Option<i64>,
    },
    Number {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
    },
    Boolean {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
    },
    Array {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        items: Box<JsonSchema>,
    },
}

impl JsonSchema {
    pub fn string() -> Self {
        Self::String {
            description: None,
            allowed: None,
        }
    }

    pub fn integer() -> Self {
        Self::Integer {
            description: None,
            minimum: None,
            maximum: None,
        }
    }

    pub fn number() -> Self {
        Self::Number { description: None }
    }

    pub fn boolean() -> Self {
        Self::Boolean { description: None }
    }

    pub fn array(items: JsonSchema) -> Self {
        Self::Array {
            description: None,
            items: Box::new(items),
        }
    }

    /// An object that rejects properties it does not declare.
    pub fn object(properties: BTreeMap<String, JsonSchema>, required: Vec<String>) -> Self {
        Self::Object {
            description: None,
            properties,
            required,
            additional_properties: Some(false),
        }
    }

    /// An integer node with a lower bound; other nodes are returned as they
    /// are (bounds only apply to integers).
    pub fn with_minimum(mut self, value: i64) -> Self {
        if let Self::Integer { minimum, .. } = &mut self {
            *minimum = Some(value);
        }
        self
    }

    /// An integer node with an upper bound; other nodes are unchanged.
    pub fn with_maximum(mut self, value: i64) -> Self {
        if let Self::Integer { maximum, .. } = &mut self {
            *maximum = Some(value);
        }
        self
    }

    /// The same node with its description set.
    pub fn with_description(mut self, text: impl Into<String>) -> Self {
        let text = Some(text.into());
        match &mut self {
            Self::Object { description, .. }
            | Self::String { description, .. }
            | Self::Integer { description, .. }
            | Self::Number { description }
            | Self::Boolean { description }
            | Self::Array { description, .. } => *description = text,
        }
        self
    }

    pub fn description(&self) -> Option<&str> {
        match self {
            Self::Object { description, .. }
            | Self::String { description, .. }
            | Self::Integer { description, .. }
            | Self::Number { description }
            | Self::Boolean { description }
            | Self::Array { description, .. } => description.as_deref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::round_trip;
    use serde_json::json;

    fn sample() -> FunctionDecl {
        FunctionDecl {
            name: "file_read".into(),
            description: "Read a UTF-8 text file.".into(),
            parameters: JsonSchema::object(
                BTreeMap::from([
                    (
                        "path".into(),
                        JsonSchema::string().with_description("Workspace path"),
                    ),
                    ("start_line".into(), JsonSchema::integer()),
                    ("globs".into(), JsonSchema::array(JsonSchema::string())),
                    (
                        "mode".into(),
                        JsonSchema::String {
                            description: None,
                            allowed: Some(vec!["text".into(), "lines".into()]),
                        },
                    ),
                    ("ratio".into(), JsonSchema::number()),
                    ("recursive".into(), JsonSchema::boolean()),
                ]),
                vec!["path".into()],
            ),
        }
    }

    #[test]
    fn function_decl_round_trips() {
        round_trip(&sample());
    }

    #[test]
    fn serialises_to_standard_json_schema() {
        let value = serde_json::to_value(sample().parameters).unwrap();
        assert_eq!(
            value,
            json!({
                "type": "object",
                "properties": {
                    "globs": {"type": "array", "items": {"type": "string"}},
                    "mode": {"type": "string", "enum": ["text", "lines"]},
                    "path": {"type": "string", "description": "Workspace path"},
                    "ratio": {"type": "number"},
                    "recursive": {"type": "boolean"},
                    "start_line": {"type": "integer"}
                },
                "required": ["path"],
                "additionalProperties": false
            })
        );
    }

    #[test]
    fn unsupported_schema_type_is_a_clear_error() {
        let err = serde_json::from_str::<JsonSchema>(r#"{"type":"null"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown variant `null`"), "{err}");
    }

    #[test]
    fn integer_bounds() {
        let node = JsonSchema::integer().with_minimum(1).with_maximum(20);
        assert_eq!(
            serde_json::to_value(&node).unwrap(),
            json!({"type": "integer", "minimum": 1, "maximum": 20})
        );
        assert_eq!(JsonSchema::string().with_minimum(1), JsonSchema::string());
    }

    #[test]
    fn description_accessor_matches_builder() {
        let node = JsonSchema::boolean().with_description("flag");
        assert_eq!(node.description(), Some("flag"));
        assert_eq!(JsonSchema::integer().description(), None);
    }
}

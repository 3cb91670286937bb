//! Conversion of tool parameter schemas to Gemini's accepted subset.

use std::collections::BTreeMap;

use serde::Serialize;
use types::JsonSchema;

/// Gemini's `Schema`: an OpenAPI 3.0 subset. `additionalProperties` is not
/// part of it (sending it is a 400), so the conversion drops it.
#[derive(Debug, Serialize)]
pub(super) struct GeminiSchema<'a> {
    #[serde(rename = "type")]
    kind: SchemaType,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    /// `enum` for strings restricted to `allowed`, as Gemini documents it.
    #[serde(skip_serializing_if = "Option::is_none")]
    format: Option<&'static str>,
    #[serde(rename = "enum", skip_serializing_if = "Option::is_none")]
    allowed: Option<&'a [String]>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    properties: BTreeMap<&'a str, GeminiSchema<'a>>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    required: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    items: Option<Box<GeminiSchema<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    minimum: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    maximum: Option<i64>,
}

#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "UPPERCASE")]
enum SchemaType {
    Object,
    String,
    Integer,
    Number,
    Boolean,
    Array,
}

impl<'a> GeminiSchema<'a> {
    fn bare(kind: SchemaType, description: &'a Option<String>) -> Self {
        Self {
            kind,
            description: description.as_deref(),
            format: None,
            allowed: None,
            properties: BTreeMap::new(),
            required: &[],
            items: None,
            minimum: None,
            maximum: None,
        }
    }

    /// A function's parameters; `None` when it takes none.
    pub(super) fn parameters(schema: &'a JsonSchema) -> Option<Self> {
        match schema {
            JsonSchema::Object { properties, .. } if properties.is_empty() => None,
            schema => Some(schema.into()),
        }
    }
}

impl<'a> From<&'a JsonSchema> for GeminiSchema<'a> {
    fn from(schema: &'a JsonSchema) -> Self {
        match schema {
            JsonSchema::Object {
                description,
                properties,
                required,
                additional_properties: _,
            } => Self {
                properties: properties
                    .iter()
                    .map(|(name, schema)| (name.as_str(), schema.into()))
                    .collect(),
                required,
                ..Self::bare(SchemaType::Object, description)
            },
            JsonSchema::String {
                description,
                allowed,
            } => Self {
                format: allowed.is_some().then_some("enum"),
                allowed: allowed.as_deref(),
                ..Self::bare(SchemaType::String, description)
            },
            JsonSchema::Integer {
                description,
                minimum,
                maximum,
            } => Self {
                minimum: *minimum,
                maximum: *maximum,
                ..Self::bare(SchemaType::Integer, description)
            },
            JsonSchema::Number { description } => Self::bare(SchemaType::Number, description),
            JsonSchema::Boolean { description } => Self::bare(SchemaType::Boolean, description),
            JsonSchema::Array { description, items } => Self {
                items: Some(Box::new(items.as_ref().into())),
                ..Self::bare(SchemaType::Array, description)
            },
        }
    }
}

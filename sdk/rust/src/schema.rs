//! JSON Schema helpers for tool specs, so every plugin's schemas have one shape: objects close
//! their properties (`additionalProperties: false`) and list what is required, scalars carry a
//! description the model reads, bounds are stated where the upstream has them.

use serde_json::{Map, Value, json};

/// An object with these `properties` (a JSON object of schemas), `required` ones, and no other.
pub fn object(properties: Value, required: &[&str]) -> Value {
    let mut schema = Map::new();
    schema.insert("type".into(), "object".into());
    schema.insert("properties".into(), properties);
    if !required.is_empty() {
        schema.insert("required".into(), json!(required));
    }
    schema.insert("additionalProperties".into(), false.into());
    Value::Object(schema)
}

/// A string.
pub fn string(description: &str) -> Value {
    json!({"type": "string", "description": description})
}

/// A non-empty string of at most `max` characters.
pub fn text(description: &str, max: u32) -> Value {
    json!({"type": "string", "description": description, "minLength": 1, "maxLength": max})
}

/// One of these strings.
pub fn one_of(description: &str, values: &[&str]) -> Value {
    json!({"type": "string", "description": description, "enum": values})
}

/// An integer in `min..=max`.
pub fn integer(description: &str, min: i64, max: i64) -> Value {
    json!({"type": "integer", "description": description, "minimum": min, "maximum": max})
}

/// A number in `min..=max`.
pub fn number(description: &str, min: f64, max: f64) -> Value {
    json!({"type": "number", "description": description, "minimum": min, "maximum": max})
}

/// A number, or null when the upstream did not say (output schemas).
pub fn nullable_number(description: &str) -> Value {
    json!({"type": ["number", "null"], "description": description})
}

/// A string, or null (output schemas).
pub fn nullable_string(description: &str) -> Value {
    json!({"type": ["string", "null"], "description": description})
}

/// An array of `items`.
pub fn array(description: &str, items: Value) -> Value {
    json!({"type": "array", "description": description, "items": items})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_closed_and_list_what_is_required() {
        let schema = object(json!({"city": string("A city")}), &["city"]);
        assert_eq!(schema["type"], "object");
        assert_eq!(schema["required"], json!(["city"]));
        assert_eq!(schema["additionalProperties"], false);
        let optional = object(json!({"limit": integer("How many", 1, 20)}), &[]);
        assert!(optional.get("required").is_none());
        assert_eq!(optional["properties"]["limit"]["maximum"], 20);
    }
}

//! A tool's argument schema, compiled once when the toolbox is built (a plugin whose schema
//! does not compile is refused at load), and the check every call's arguments pass before any
//! upstream is called. A refusal names the field at fault (`location.city`, `days`), as an
//! OpenAI 400 names its `param`.

use std::sync::Arc;

use jsonschema::Validator;
use jsonschema::error::ValidationErrorKind;
use serde_json::Value;

/// A compiled argument schema.
#[derive(Clone)]
pub struct ArgumentSchema {
    validator: Arc<Validator>,
}

impl std::fmt::Debug for ArgumentSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ArgumentSchema")
    }
}

/// Arguments that do not fit the schema: the field (dotted, `""` for the whole object) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidArguments {
    pub field: String,
    pub message: String,
}

impl ArgumentSchema {
    /// Compiles `schema`. A schema that is not one (or refers to documents elsewhere, which the
    /// gateway never fetches) is refused with the reason.
    pub fn compile(schema: &Value) -> Result<ArgumentSchema, String> {
        if !schema.is_object() {
            return Err("the parameters schema is not a JSON object".into());
        }
        let validator = jsonschema::validator_for(schema).map_err(|e| e.to_string())?;
        Ok(ArgumentSchema {
            validator: Arc::new(validator),
        })
    }

    /// Checks `arguments`: `Ok`, or the first error found, naming its field.
    pub fn check(&self, arguments: &Value) -> Result<(), InvalidArguments> {
        let Some(error) = self.validator.iter_errors(arguments).next() else {
            return Ok(());
        };
        let mut field = dotted(error.instance_path().as_str());
        // A missing property is reported at its parent object: name the property itself.
        if let ValidationErrorKind::Required { property } = error.kind() {
            let name = property
                .as_str()
                .map_or_else(|| property.to_string(), str::to_owned);
            field = if field.is_empty() {
                name
            } else {
                format!("{field}.{name}")
            };
        }
        let message = if field.is_empty() {
            format!("the arguments do not fit the tool's schema: {error}")
        } else {
            format!("argument `{field}`: {error}")
        };
        Err(InvalidArguments { field, message })
    }
}

/// A JSON pointer (`/location/city`, `/items/0`) as a dotted field name (`location.city`,
/// `items[0]`), as OpenAI's `param` names nested fields.
fn dotted(pointer: &str) -> String {
    let mut out = String::new();
    for segment in pointer.split('/').skip(1) {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        if !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
            out.push('[');
            out.push_str(&segment);
            out.push(']');
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&segment);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use serde_json::json;

    use super::*;

    fn weather() -> ArgumentSchema {
        ArgumentSchema::compile(&json!({
            "type": "object",
            "properties": {
                "city": {"type": "string", "minLength": 1},
                "days": {"type": "integer", "minimum": 1, "maximum": 16},
                "at": {"type": "object", "properties": {"lat": {"type": "number"}}, "required": ["lat"]},
                "tags": {"type": "array", "items": {"type": "string"}}
            },
            "required": ["city"],
            "additionalProperties": false
        }))
        .unwrap()
    }

    #[test]
    fn arguments_that_fit_pass() {
        let schema = weather();
        assert!(schema.check(&json!({"city": "Paris", "days": 3})).is_ok());
    }

    #[test]
    fn each_misfit_names_its_field() {
        let schema = weather();
        let cases = [
            (json!({}), "city"),
            (json!({"city": "Paris", "days": 40}), "days"),
            (json!({"city": 5}), "city"),
            (json!({"city": "x", "at": {}}), "at.lat"),
            (json!({"city": "x", "tags": ["a", 3]}), "tags[1]"),
            (json!("Paris"), ""),
        ];
        for (arguments, field) in cases {
            let error = schema.check(&arguments).unwrap_err();
            assert_eq!(error.field, field, "{arguments}: {error:?}");
            if !field.is_empty() {
                assert!(error.message.contains(&format!("`{field}`")), "{error:?}");
            }
        }
    }

    #[test]
    fn a_schema_that_is_not_one_is_refused_with_the_reason() {
        let error = ArgumentSchema::compile(&json!({"type": "no-such-type"})).unwrap_err();
        assert!(!error.is_empty());
        assert!(ArgumentSchema::compile(&json!("object")).is_err());
        // A reference to another document would need a fetch: refused, never fetched.
        assert!(ArgumentSchema::compile(&json!({"$ref": "https://example.com/s.json"})).is_err());
    }

    #[test]
    fn pointers_become_dotted_fields() {
        assert_eq!(dotted(""), "");
        assert_eq!(dotted("/a/b"), "a.b");
        assert_eq!(dotted("/a/0/b"), "a[0].b");
        assert_eq!(dotted("/a~1b"), "a/b");
    }
}

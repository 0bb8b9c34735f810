//! Reading a tool's arguments. The host validates them against the tool's schema first, so these
//! checks are a second line: a wrong type or a value out of range is still an
//! `invalid-request` naming the field, never a panic nor a silently ignored argument.

use serde_json::Value;

use crate::types::Failure;

/// The arguments object of one call.
#[derive(Debug, Clone, Copy)]
pub struct Args<'a>(pub &'a Value);

impl<'a> Args<'a> {
    fn invalid(field: &str, what: &str) -> Failure {
        Failure::InvalidRequest(format!("argument {field:?} must be {what}"))
    }

    /// A string argument, if given (null counts as absent); an empty or blank one is refused.
    pub fn string(&self, field: &str) -> Result<Option<&'a str>, Failure> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) if text.trim().is_empty() => {
                Err(Args::invalid(field, "a non-empty string"))
            }
            Some(Value::String(text)) => Ok(Some(text.trim())),
            Some(_) => Err(Args::invalid(field, "a string")),
        }
    }

    /// A string argument that must be there.
    pub fn required_string(&self, field: &str) -> Result<&'a str, Failure> {
        self.string(field)?
            .ok_or_else(|| Failure::InvalidRequest(format!("argument {field:?} is required")))
    }

    /// An integer argument in `min..=max`, if given.
    pub fn integer(&self, field: &str, min: i64, max: i64) -> Result<Option<i64>, Failure> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => match value.as_i64() {
                Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
                _ => Err(Args::invalid(
                    field,
                    &format!("an integer from {min} to {max}"),
                )),
            },
        }
    }

    /// A number argument in `min..=max`, if given.
    pub fn number(&self, field: &str, min: f64, max: f64) -> Result<Option<f64>, Failure> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => match value.as_f64() {
                Some(n) if n >= min && n <= max => Ok(Some(n)),
                _ => Err(Args::invalid(
                    field,
                    &format!("a number from {min} to {max}"),
                )),
            },
        }
    }

    /// A string argument that must be one of `allowed`, if given.
    pub fn one_of(&self, field: &str, allowed: &[&str]) -> Result<Option<&'a str>, Failure> {
        match self.string(field)? {
            Some(value) if allowed.contains(&value) => Ok(Some(value)),
            Some(_) => Err(Args::invalid(
                field,
                &format!("one of {}", allowed.join(", ")),
            )),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn wrong_types_and_ranges_name_the_field() {
        let value =
            json!({"city": "Berlin", "blank": "  ", "days": 20, "n": "3", "unit": "kelvin"});
        let args = Args(&value);
        assert_eq!(args.required_string("city"), Ok("Berlin"));
        assert_eq!(args.string("missing"), Ok(None));
        let blank = args.string("blank").unwrap_err();
        assert!(blank.message().contains("\"blank\""), "{blank:?}");
        let days = args.integer("days", 1, 16).unwrap_err();
        assert!(days.message().contains("from 1 to 16"), "{days:?}");
        assert!(args.integer("n", 1, 5).is_err());
        assert_eq!(args.integer("missing", 1, 5), Ok(None));
        let unit = args.one_of("unit", &["celsius", "fahrenheit"]).unwrap_err();
        assert!(unit.message().contains("celsius, fahrenheit"), "{unit:?}");
        let missing = args.required_string("query").unwrap_err();
        assert_eq!(
            missing,
            Failure::InvalidRequest("argument \"query\" is required".into())
        );
    }
}

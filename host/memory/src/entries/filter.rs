//! Search filters, LangGraph's: `{"field": value}` (equality) or `{"field": {"$op": value}}`
//! with `$eq $ne $gt $gte $lt $lte`, on the value's top-level fields, every condition holding.
//! Each becomes SQL over the stored JSON with its operand bound, never spliced: equality
//! compares JSON types as well as values (`1` is not `true`, `"1"` is not `1`), a missing field
//! equals `null` and is unequal to anything else (as LangGraph's in-memory store has it), and the
//! order operators take numbers or strings.

use libsql::Value as Sql;
use serde_json::{Map, Value};

use super::EntryError;

/// The most fields one filter may name.
pub const MAX_FILTER_FIELDS: usize = 32;
/// The longest field name a filter may name, in bytes.
pub const MAX_FILTER_FIELD_BYTES: usize = 256;

/// How a condition compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
}

impl Op {
    fn parse(name: &str) -> Option<Op> {
        Some(match name {
            "$eq" => Op::Eq,
            "$ne" => Op::Ne,
            "$gt" => Op::Gt,
            "$gte" => Op::Gte,
            "$lt" => Op::Lt,
            "$lte" => Op::Lte,
            _ => return None,
        })
    }

    fn sql(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "<>",
            Op::Gt => ">",
            Op::Gte => ">=",
            Op::Lt => "<",
            Op::Lte => "<=",
        }
    }
}

/// One condition of a filter: `field op value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub field: String,
    pub op: Op,
    pub value: Value,
}

/// Parses a LangGraph filter; errors name `{param}.{field}`.
pub fn parse_filter(
    filter: &Map<String, Value>,
    param: &str,
) -> Result<Vec<Condition>, EntryError> {
    if filter.len() > MAX_FILTER_FIELDS {
        return Err(EntryError::invalid(
            param,
            &format!("a filter may name at most {MAX_FILTER_FIELDS} fields"),
        ));
    }
    let mut conditions = Vec::new();
    for (field, wanted) in filter {
        let at = format!("{param}.{field}");
        if field.is_empty()
            || field.len() > MAX_FILTER_FIELD_BYTES
            || field.chars().any(|c| c == '"' || c.is_control())
        {
            return Err(EntryError::invalid(
                &at,
                &format!(
                    "a filter field is 1 to {MAX_FILTER_FIELD_BYTES} bytes, without `\"` or \
                     control characters"
                ),
            ));
        }
        let operators = match wanted {
            Value::Object(map) if map.keys().any(|k| k.starts_with('$')) => map,
            plain => {
                conditions.push(Condition {
                    field: field.clone(),
                    op: Op::Eq,
                    value: plain.clone(),
                });
                continue;
            }
        };
        for (name, operand) in operators {
            let Some(op) = Op::parse(name) else {
                return Err(EntryError::invalid(
                    &at,
                    &format!(
                        "unknown operator {name:?} (use $eq, $ne, $gt, $gte, $lt or $lte; an \
                         object compared for equality has no `$` keys)"
                    ),
                ));
            };
            let ordered = !matches!(op, Op::Eq | Op::Ne);
            if ordered && !matches!(operand, Value::Number(_) | Value::String(_)) {
                return Err(EntryError::invalid(
                    &at,
                    &format!("{name} compares numbers or strings"),
                ));
            }
            conditions.push(Condition {
                field: field.clone(),
                op,
                value: operand.clone(),
            });
        }
    }
    Ok(conditions)
}

/// SQL text with its positional parameters, built up clause by clause.
#[derive(Debug, Default)]
pub(crate) struct Statement {
    pub text: String,
    pub params: Vec<Sql>,
}

impl Statement {
    /// Binds `value`, returning its placeholder.
    pub fn bind(&mut self, value: impl Into<Sql>) -> String {
        self.params.push(value.into());
        format!("?{}", self.params.len())
    }

    /// Appends ` AND (condition)` for `condition` on the value column `column`.
    pub fn condition(&mut self, column: &str, condition: &Condition) {
        let path = self.bind(format!("$.\"{}\"", condition.field));
        let kind = format!("coalesce(json_type({column}, {path}), 'missing')");
        let clause = match (condition.op, &condition.value) {
            (Op::Eq | Op::Ne, value) => {
                let equal = self.equal(column, &path, &kind, value);
                if condition.op == Op::Eq {
                    equal
                } else {
                    format!("NOT ({equal})")
                }
            }
            (op, Value::Number(n)) => {
                let operand = self.number(n);
                format!(
                    "{kind} IN ('integer', 'real') AND json_extract({column}, {path}) {} {operand}",
                    op.sql()
                )
            }
            (op, value) => {
                let operand = self.bind(value.as_str().unwrap_or_default().to_owned());
                format!(
                    "{kind} = 'text' AND json_extract({column}, {path}) {} {operand}",
                    op.sql()
                )
            }
        };
        self.text.push_str(" AND (");
        self.text.push_str(&clause);
        self.text.push(')');
    }

    fn equal(&mut self, column: &str, path: &str, kind: &str, value: &Value) -> String {
        match value {
            Value::Null => format!("{kind} IN ('missing', 'null')"),
            Value::Bool(true) => format!("{kind} = 'true'"),
            Value::Bool(false) => format!("{kind} = 'false'"),
            Value::Number(n) => {
                let operand = self.number(n);
                format!(
                    "{kind} IN ('integer', 'real') AND json_extract({column}, {path}) = {operand}"
                )
            }
            Value::String(s) => {
                let operand = self.bind(s.clone());
                format!("{kind} = 'text' AND json_extract({column}, {path}) = {operand}")
            }
            Value::Array(_) | Value::Object(_) => {
                let json_kind = if value.is_array() { "array" } else { "object" };
                // Values are stored as serde_json writes them (object keys in one order), and
                // SQLite re-renders both sides minified: equal JSON, equal text.
                let operand = self.bind(value.to_string());
                format!("{kind} = '{json_kind}' AND ({column} -> {path}) = json({operand})")
            }
        }
    }

    fn number(&mut self, n: &serde_json::Number) -> String {
        match n.as_i64() {
            Some(i) => self.bind(i),
            None => self.bind(n.as_f64().unwrap_or(f64::NAN)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use serde_json::json;

    use super::*;

    fn filter(v: Value) -> Result<Vec<Condition>, EntryError> {
        match v {
            Value::Object(map) => parse_filter(&map, "filter"),
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn operators_and_plain_equality_parse() {
        let conditions =
            filter(json!({"a": 1, "b": {"$gt": 2, "$lte": 5}, "c": {"x": 1}})).unwrap();
        assert_eq!(conditions.len(), 4);
        assert_eq!(conditions[0].op, Op::Eq);
        assert_eq!(conditions[1].op, Op::Gt);
        assert_eq!(conditions[2].op, Op::Lte);
        assert_eq!(conditions[3].value, json!({"x": 1}));
    }

    #[test]
    fn bad_filters_name_the_field() {
        for (bad, param) in [
            (json!({"a": {"$like": 1}}), "filter.a"),
            (json!({"a": {"$gt": true}}), "filter.a"),
            (json!({"a\"b": 1}), "filter.a\"b"),
            (json!({"": 1}), "filter."),
        ] {
            let error = filter(bad.clone()).unwrap_err();
            assert!(
                matches!(&error, EntryError::Invalid { param: p, .. } if p == param),
                "{bad}: {error:?}"
            );
        }
    }
}

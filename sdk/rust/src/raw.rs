//! JSON edited as text: values read as slices of the text they came in (`serde_json`'s
//! `RawValue`) and replaced, or fields added, where they lie. A plugin that changes one field of
//! a large object (the model of a request, the usage of a stream's last frame) then builds no
//! tree of the object and does not write it again; the rest goes on byte for byte.

use std::ops::Range;

use serde_json::value::RawValue;

/// For `#[serde(default, borrow, deserialize_with = "raw::field")]`: a field's value as its
/// text, `null` included (an `Option`'s own reading would make a `null` `None`).
pub(crate) fn field<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue as serde::Deserialize>::deserialize(deserializer).map(Some)
}

/// A field that was there with a value other than `null`.
pub(crate) fn non_null(field: Option<&RawValue>) -> Option<&RawValue> {
    field.filter(|value| value.get() != "null")
}

/// Whether `text` holds an object. Checked before a derived struct reads it: such a struct also
/// reads a JSON array, its fields in order.
pub(crate) fn is_object(text: &str) -> bool {
    text.trim_start().starts_with('{')
}

/// Whether the object `text` (one [`is_object`] said yes to) has no fields.
pub(crate) fn is_empty_object(text: &str) -> bool {
    text.trim_start()
        .strip_prefix('{')
        .is_some_and(|rest| rest.trim_start().starts_with('}'))
}

/// Where `value`, read from `text` (or from a slice of it), lies in `text`.
pub(crate) fn span(text: &str, value: &RawValue) -> Option<Range<usize>> {
    let value = value.get();
    let start = (value.as_ptr() as usize).checked_sub(text.as_ptr() as usize)?;
    let end = start.checked_add(value.len())?;
    text.get(start..end).map(|_| start..end)
}

/// `text` with each range replaced by its string (an empty range inserts). `None` if two ranges
/// overlap or one is not within `text`.
pub(crate) fn edited(text: &str, mut edits: Vec<(Range<usize>, &str)>) -> Option<String> {
    edits.sort_by_key(|(range, _)| (range.start, range.end));
    let added: usize = edits.iter().map(|(_, with)| with.len()).sum();
    let mut out = String::with_capacity(text.len() + added);
    let mut at = 0;
    for (range, with) in edits {
        out.push_str(text.get(at..range.start)?);
        out.push_str(with);
        at = range.end;
    }
    out.push_str(text.get(at..)?);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_apply_in_order_and_refuse_overlaps() {
        let text = r#"{"a":1,"b":[2]}"#;
        let value = |json: &'static str| -> &'static RawValue {
            serde_json::from_str::<&RawValue>(json).unwrap()
        };
        assert_eq!(
            edited(text, vec![(11..14, "null"), (1..1, "x")]).as_deref(),
            Some(r#"{x"a":1,"b":null}"#)
        );
        assert_eq!(edited(text, vec![(1..5, ""), (3..6, "")]), None);
        assert_eq!(edited(text, vec![(14..20, "")]), None);
        // A value read from another text has no place in this one.
        assert_eq!(span(text, value("1")), None);
        assert!(is_empty_object(" { } ") && !is_empty_object(text) && !is_object("[{}]"));
    }
}

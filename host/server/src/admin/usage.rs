//! `GET /admin/usage`: usage and spend per key, target and UTC day, from the shared usage ledger
//! (every process on the store adds to it). Query parameters, all optional: `key` (a key id;
//! `-` for requests without a key), `model` (a target label, `provider/model`), `from` and `to`
//! (`YYYY-MM-DD`, inclusive, UTC), `group_by` (a comma-separated subset of `date`, `key`,
//! `model`: the columns kept apart; the others are summed over and answered as `null`; default
//! all three). A bad parameter is a 400 naming it.

use aigw_access::prices::usd;
use aigw_access::usage::{Counts, Day, Grouping, UsageQuery, UsageRow};
use bytes::Bytes;
use http::{Response, StatusCode};
use serde_json::{Value, json};

use crate::Body;
use crate::error::ApiError;
use crate::gateway::Gateway;
use crate::memory::entries::percent_decode;
use crate::memory::store_error;
use crate::routes::Route;

/// The path this module answers.
pub(crate) const PATH: &str = "/admin/usage";
/// Its route: a read-only view.
pub(crate) const ROUTE: Route = Route::new(PATH, "GET, HEAD");

/// Answers `GET /admin/usage?{query}`.
pub(crate) async fn usage(gateway: &Gateway, query: Option<&str>) -> Response<Body> {
    let query = match parse(query.unwrap_or_default()) {
        Ok(query) => query,
        Err(error) => return error.response(),
    };
    let Some(ledger) = &gateway.usage else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "usage is not available: this gateway has no store",
        )
        .code("usage_unavailable")
        .response();
    };
    match ledger.query(query).await {
        Ok((rows, total)) => {
            let data: Vec<Value> = rows.iter().map(row).collect();
            let body = json!({ "object": "list", "data": data, "total": counts(&total) });
            crate::service::json(StatusCode::OK, Bytes::from(body.to_string()))
        }
        Err(error) => store_error(error).response(),
    }
}

fn counts(counts: &Counts) -> Value {
    json!({
        "requests": counts.requests,
        "input_tokens": counts.input_tokens,
        "output_tokens": counts.output_tokens,
        "spend_usd": usd(counts.spend_micro_usd),
    })
}

fn row(row: &UsageRow) -> Value {
    let mut value = json!({ "date": row.date, "key_id": row.key_id, "model": row.model });
    if let (Value::Object(object), Value::Object(counts)) = (&mut value, counts(&row.counts)) {
        object.extend(counts);
    }
    value
}

fn invalid(param: &'static str, message: String) -> ApiError {
    ApiError::invalid_request(message)
        .param(param)
        .code("invalid_query")
}

/// The query string's filters and grouping; an unknown or repeated parameter, a bad day or a
/// `from` after `to` is an error naming the parameter.
fn parse(query: &str) -> Result<UsageQuery, ApiError> {
    let mut parsed = UsageQuery::default();
    let mut seen: Vec<&str> = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let param: &'static str = match name {
            "key" => "key",
            "model" => "model",
            "from" => "from",
            "to" => "to",
            "group_by" => "group_by",
            other => {
                let shown = percent_decode(other).unwrap_or_else(|| other.to_owned());
                return Err(invalid(
                    "query",
                    format!(
                        "unknown query parameter `{shown}`; known: key, model, from, to, group_by"
                    ),
                ));
            }
        };
        if seen.contains(&param) {
            return Err(invalid(param, format!("`{param}` is given twice")));
        }
        seen.push(param);
        let value = percent_decode(value)
            .ok_or_else(|| invalid(param, format!("`{param}` has a bad percent-encoding")))?;
        let day = |value: &str| {
            Day::parse(value).ok_or_else(|| {
                invalid(
                    param,
                    format!("`{param}` must be a date written YYYY-MM-DD (UTC), not {value:?}"),
                )
            })
        };
        match param {
            "key" => parsed.key_id = Some(nonempty(param, value)?),
            "model" => parsed.model = Some(nonempty(param, value)?),
            "from" => parsed.from = Some(day(&value)?),
            "to" => parsed.to = Some(day(&value)?),
            _ => parsed.group_by = grouping(&value)?,
        }
    }
    if let (Some(from), Some(to)) = (&parsed.from, &parsed.to)
        && from > to
    {
        return Err(invalid(
            "from",
            format!("`from` ({from}) is after `to` ({to})"),
        ));
    }
    Ok(parsed)
}

fn nonempty(param: &'static str, value: String) -> Result<String, ApiError> {
    if value.is_empty() {
        return Err(invalid(param, format!("`{param}` is empty")));
    }
    Ok(value)
}

/// `group_by`: a comma-separated subset of `date`, `key`, `model` (empty: sum everything).
fn grouping(value: &str) -> Result<Grouping, ApiError> {
    let mut grouping = Grouping {
        date: false,
        key_id: false,
        model: false,
    };
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part {
            "date" => grouping.date = true,
            "key" | "key_id" => grouping.key_id = true,
            "model" => grouping.model = true,
            other => {
                return Err(invalid(
                    "group_by",
                    format!(
                        "`group_by` takes date, key and model (comma-separated), not {other:?}"
                    ),
                ));
            }
        }
    }
    Ok(grouping)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn param_of(query: &str) -> String {
        let error = parse(query).unwrap_err();
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
        let body: Value = serde_json::from_slice(&error.json()).unwrap();
        body["error"]["param"].as_str().unwrap().to_owned()
    }

    #[test]
    fn filters_and_grouping_are_read() {
        let q =
            parse("key=key_1&model=groq%2Fllama&from=2026-03-01&to=2026-03-31&group_by=model,date")
                .unwrap();
        assert_eq!(q.key_id.as_deref(), Some("key_1"));
        assert_eq!(q.model.as_deref(), Some("groq/llama"));
        assert_eq!(q.from.unwrap().as_str(), "2026-03-01");
        assert_eq!(q.to.unwrap().as_str(), "2026-03-31");
        assert_eq!(
            q.group_by,
            Grouping {
                date: true,
                key_id: false,
                model: true
            }
        );
        assert_eq!(parse("").unwrap(), UsageQuery::default());
        // A literal `/` in the model is fine too.
        assert_eq!(parse("model=a/b").unwrap().model.as_deref(), Some("a/b"));
    }

    #[test]
    fn a_bad_parameter_is_a_400_naming_it() {
        assert_eq!(param_of("from=2026-02-30"), "from");
        assert_eq!(param_of("to=yesterday"), "to");
        assert_eq!(param_of("from=2026-03-02&to=2026-03-01"), "from");
        assert_eq!(param_of("group_by=team"), "group_by");
        assert_eq!(param_of("key="), "key");
        assert_eq!(param_of("model=%zz"), "model");
        assert_eq!(param_of("key=a&key=b"), "key");
        assert_eq!(param_of("limit=3"), "query");
    }
}

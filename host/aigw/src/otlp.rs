//! The OTLP trace exporter: `[tracing]` and the standard `OTEL_*` variables resolved into one
//! setting (the file wins), and the OpenTelemetry tracer provider that batches finished spans
//! and posts them as protobuf to the collector's `/v1/traces`.
//!
//! The export goes through the workspace's own reqwest + rustls (no second HTTP or TLS stack):
//! [`Poster`] is opentelemetry-http's client over it. The SDK's batch processor runs on a thread
//! of its own and blocks on each export; the post itself is spawned on the gateway's tokio
//! runtime, so it never needs a reactor on that thread. The queue is bounded and drops when full
//! (a slow or absent collector never holds a request up), and it is flushed at shutdown.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use opentelemetry_http::{HttpClient, HttpError};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider,
};

use crate::config::{DEFAULT_SAMPLE_RATIO, DEFAULT_SERVICE_NAME, DEFAULT_TIMEOUT, TracingOptions};

/// Spans waiting for export; past this, new ones are dropped (and counted by the SDK).
const MAX_QUEUED_SPANS: usize = 8192;
/// Spans per export request.
const MAX_EXPORT_BATCH: usize = 512;
/// How long spans wait before a batch goes even if it is not full.
const EXPORT_DELAY: Duration = Duration::from_secs(1);

/// Where and how traces are exported, resolved from the config and the environment.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Export {
    /// The full traces URL (`…/v1/traces`).
    pub endpoint: String,
    pub service_name: String,
    pub sampler: SamplerChoice,
    pub headers: BTreeMap<String, String>,
    pub timeout: Duration,
}

/// The sampler, as resolved (kept plain so it can be compared and logged).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum SamplerChoice {
    AlwaysOn,
    AlwaysOff,
    Ratio(f64),
    /// Follow a client's sampled flag; new traces by the inner choice.
    ParentBased(Root),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Root {
    AlwaysOn,
    AlwaysOff,
    Ratio(f64),
}

impl SamplerChoice {
    fn sampler(self) -> Sampler {
        let root = |root: Root| match root {
            Root::AlwaysOn => Sampler::AlwaysOn,
            Root::AlwaysOff => Sampler::AlwaysOff,
            Root::Ratio(r) => Sampler::TraceIdRatioBased(r),
        };
        match self {
            SamplerChoice::AlwaysOn => Sampler::AlwaysOn,
            SamplerChoice::AlwaysOff => Sampler::AlwaysOff,
            SamplerChoice::Ratio(r) => Sampler::TraceIdRatioBased(r),
            SamplerChoice::ParentBased(r) => Sampler::ParentBased(Box::new(root(r))),
        }
    }
}

/// The export `[tracing]` and the environment ask for; `None`: tracing is off (no endpoint
/// anywhere). A variable that cannot be read is an error naming it.
pub(crate) fn resolve(
    options: &TracingOptions,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Export>, String> {
    let env = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let endpoint = match (
        &options.otlp_endpoint,
        env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
        env("OTEL_EXPORTER_OTLP_ENDPOINT"),
    ) {
        (Some(base), _, _) => traces_url(base),
        // The signal's own variable is the full URL, as the specification says.
        (None, Some(full), _) => full,
        (None, None, Some(base)) => traces_url(&base),
        (None, None, None) => return Ok(None),
    };
    if url::Url::parse(&endpoint)
        .map(|u| !matches!(u.scheme(), "http" | "https"))
        .unwrap_or(true)
    {
        return Err(format!(
            "the OTLP traces endpoint {endpoint:?} is not an http(s) URL"
        ));
    }
    let service_name = options
        .service_name
        .clone()
        .or_else(|| env("OTEL_SERVICE_NAME"))
        .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_owned());
    let sampler = match options.sample_ratio {
        Some(ratio) => SamplerChoice::ParentBased(Root::Ratio(ratio)),
        None => match env("OTEL_TRACES_SAMPLER") {
            None => SamplerChoice::ParentBased(Root::Ratio(DEFAULT_SAMPLE_RATIO)),
            Some(name) => sampler_from_env(&name, env("OTEL_TRACES_SAMPLER_ARG").as_deref())?,
        },
    };
    let mut headers = BTreeMap::new();
    if let Some(list) =
        env("OTEL_EXPORTER_OTLP_TRACES_HEADERS").or_else(|| env("OTEL_EXPORTER_OTLP_HEADERS"))
    {
        headers = headers_from_env(&list)?;
    }
    // The file's headers win over the variables' same names.
    headers.extend(options.headers.clone());
    let timeout = match options.timeout {
        Some(timeout) => timeout,
        None => match env("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT")
            .or_else(|| env("OTEL_EXPORTER_OTLP_TIMEOUT"))
        {
            None => DEFAULT_TIMEOUT,
            Some(ms) => ms
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|ms| *ms > 0)
                .map(Duration::from_millis)
                .ok_or_else(|| {
                    format!("OTEL_EXPORTER_OTLP_TIMEOUT={ms:?} is not a positive number of ms")
                })?,
        },
    };
    Ok(Some(Export {
        endpoint,
        service_name,
        sampler,
        headers,
        timeout,
    }))
}

/// `base` + `/v1/traces`, one slash between them.
fn traces_url(base: &str) -> String {
    format!("{}/v1/traces", base.trim_end_matches('/'))
}

/// `OTEL_TRACES_SAMPLER` (+ `_ARG`), the specification's names.
fn sampler_from_env(name: &str, arg: Option<&str>) -> Result<SamplerChoice, String> {
    let ratio = || -> Result<f64, String> {
        match arg {
            None => Ok(1.0),
            Some(arg) => arg
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or_else(|| {
                    format!("OTEL_TRACES_SAMPLER_ARG={arg:?} is not a ratio between 0 and 1")
                }),
        }
    };
    Ok(match name.trim() {
        "always_on" => SamplerChoice::AlwaysOn,
        "always_off" => SamplerChoice::AlwaysOff,
        "traceidratio" => SamplerChoice::Ratio(ratio()?),
        "parentbased_always_on" => SamplerChoice::ParentBased(Root::AlwaysOn),
        "parentbased_always_off" => SamplerChoice::ParentBased(Root::AlwaysOff),
        "parentbased_traceidratio" => SamplerChoice::ParentBased(Root::Ratio(ratio()?)),
        other => {
            return Err(format!(
                "OTEL_TRACES_SAMPLER={other:?} is not one of always_on, always_off, \
                 traceidratio, parentbased_always_on, parentbased_always_off, \
                 parentbased_traceidratio"
            ));
        }
    })
}

/// `OTEL_EXPORTER_OTLP_HEADERS`: `name=value` pairs separated by commas, values
/// percent-encoded.
fn headers_from_env(list: &str) -> Result<BTreeMap<String, String>, String> {
    let mut headers = BTreeMap::new();
    for pair in list.split(',').filter(|p| !p.trim().is_empty()) {
        let Some((name, value)) = pair.split_once('=') else {
            return Err(format!(
                "OTEL_EXPORTER_OTLP_HEADERS: {pair:?} is not name=value"
            ));
        };
        let name = name.trim().to_ascii_lowercase();
        let value: String = url::form_urlencoded::parse(format!("v={}", value.trim()).as_bytes())
            .map(|(_, v)| v.into_owned())
            .next()
            .unwrap_or_default();
        if http::HeaderName::from_bytes(name.as_bytes()).is_err()
            || http::HeaderValue::from_str(&value).is_err()
        {
            return Err(format!(
                "OTEL_EXPORTER_OTLP_HEADERS: {name:?} is not a valid header"
            ));
        }
        headers.insert(name, value);
    }
    Ok(headers)
}

/// The tracer provider exporting to `export`, its posts spawned on `runtime`.
pub(crate) fn provider(
    export: &Export,
    runtime: tokio::runtime::Handle,
) -> Result<SdkTracerProvider, String> {
    let client = reqwest::Client::builder()
        .timeout(export.timeout)
        .build()
        .map_err(|e| format!("the OTLP exporter's HTTP client: {e}"))?;
    let headers = export
        .headers
        .iter()
        .filter_map(|(name, value)| {
            Some((
                http::HeaderName::from_bytes(name.as_bytes()).ok()?,
                http::HeaderValue::from_str(value).ok()?,
            ))
        })
        .collect();
    let poster = Poster {
        client,
        runtime,
        headers: Arc::new(headers),
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(poster)
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(&export.endpoint)
        .with_timeout(export.timeout)
        .build()
        .map_err(|e| format!("the OTLP exporter: {e}"))?;
    let processor = BatchSpanProcessor::builder(exporter)
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_max_queue_size(MAX_QUEUED_SPANS)
                .with_max_export_batch_size(MAX_EXPORT_BATCH)
                .with_scheduled_delay(EXPORT_DELAY)
                .build(),
        )
        .build();
    Ok(SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_sampler(export.sampler.sampler())
        .with_resource(
            Resource::builder_empty()
                .with_service_name(export.service_name.clone())
                .build(),
        )
        .build())
}

/// opentelemetry-http's client over the workspace's reqwest, posting on the gateway's runtime.
#[derive(Debug, Clone)]
struct Poster {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
    /// Put on every export, over any of the same name the exporter set from the environment.
    headers: Arc<Vec<(http::HeaderName, http::HeaderValue)>>,
}

#[async_trait::async_trait]
impl HttpClient for Poster {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, HttpError> {
        let (parts, body) = request.into_parts();
        let mut headers = parts.headers;
        for (name, value) in self.headers.iter() {
            headers.insert(name.clone(), value.clone());
        }
        let sent = self
            .client
            .request(parts.method, parts.uri.to_string())
            .headers(headers)
            .body(body);
        let posted = self.runtime.spawn(async move {
            let response = sent.send().await?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, headers, body))
        });
        let (status, headers, body) = posted.await??;
        let mut response = http::Response::new(body);
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn env(pairs: &[(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        let pairs = pairs.to_vec();
        move |name| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn without_an_endpoint_anywhere_tracing_is_off() {
        let off = resolve(
            &TracingOptions::default(),
            &env(&[("OTEL_SERVICE_NAME", "x")]),
        );
        assert_eq!(off, Ok(None));
    }

    #[test]
    fn the_environment_fills_what_the_file_leaves_out() {
        let export = resolve(
            &TracingOptions::default(),
            &env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
                ("OTEL_SERVICE_NAME", "gw-eu"),
                ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=s%3Dcret, x-team=ops"),
                ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
            ]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(export.endpoint, "http://collector:4318/v1/traces");
        assert_eq!(export.service_name, "gw-eu");
        assert_eq!(
            export.sampler,
            SamplerChoice::ParentBased(Root::Ratio(0.25))
        );
        assert_eq!(export.headers["api-key"], "s=cret");
        assert_eq!(export.headers["x-team"], "ops");
        assert_eq!(export.timeout, Duration::from_millis(2500));
        // The signal's own variable is taken whole, before the general one.
        let export = resolve(
            &TracingOptions::default(),
            &env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://general:4318"),
                (
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                    "http://traces:4318/custom",
                ),
            ]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(export.endpoint, "http://traces:4318/custom");
        assert_eq!(export.service_name, DEFAULT_SERVICE_NAME);
        assert_eq!(export.sampler, SamplerChoice::ParentBased(Root::Ratio(1.0)));
        assert_eq!(export.timeout, DEFAULT_TIMEOUT);
    }

    #[test]
    fn the_file_wins_over_the_environment() {
        let options = TracingOptions {
            otlp_endpoint: Some("https://file:4318".to_owned()),
            service_name: Some("from-file".to_owned()),
            sample_ratio: Some(0.5),
            headers: BTreeMap::from([("api-key".to_owned(), "file".to_owned())]),
            timeout: Some(Duration::from_millis(700)),
        };
        let export = resolve(
            &options,
            &env(&[
                (
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                    "http://env:4318/v1/traces",
                ),
                ("OTEL_SERVICE_NAME", "from-env"),
                ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=env,other=kept"),
                ("OTEL_TRACES_SAMPLER", "always_off"),
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "9"),
            ]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(export.endpoint, "https://file:4318/v1/traces");
        assert_eq!(export.service_name, "from-file");
        assert_eq!(export.sampler, SamplerChoice::ParentBased(Root::Ratio(0.5)));
        assert_eq!(export.headers["api-key"], "file");
        assert_eq!(export.headers["other"], "kept");
        assert_eq!(export.timeout, Duration::from_millis(700));
    }

    #[test]
    fn bad_variables_are_errors_naming_them() {
        let with = |pairs: &[(&'static str, &'static str)]| {
            resolve(&TracingOptions::default(), &env(pairs))
        };
        let endpoint = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")];
        let err = with(&[endpoint[0], ("OTEL_TRACES_SAMPLER", "sometimes")]).unwrap_err();
        assert!(err.contains("OTEL_TRACES_SAMPLER=\"sometimes\""), "{err}");
        let err = with(&[
            endpoint[0],
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "2"),
        ])
        .unwrap_err();
        assert!(err.contains("OTEL_TRACES_SAMPLER_ARG"), "{err}");
        let err = with(&[endpoint[0], ("OTEL_EXPORTER_OTLP_HEADERS", "novalue")]).unwrap_err();
        assert!(err.contains("OTEL_EXPORTER_OTLP_HEADERS"), "{err}");
        let err = with(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318")]).unwrap_err();
        assert!(err.contains("not an http(s) URL"), "{err}");
    }
}

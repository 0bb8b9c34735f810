//! The component boundary of tool plugins: implements the generated `tool` `Guest` trait for any
//! [`Tool`] and converts between the generated types and the SDK's plain ones. Used by
//! [`crate::export_tool!`].

use std::marker::PhantomData;

use serde_json::Value;

use crate::Failure;
use crate::bindings::aigw::plugin::types as wit;
use crate::export::{failure_to_wit, placement_to_wit};
use crate::tool::{NamedUrl, Tool, ToolDescriptor, ToolSpec, ToolTarget, Upstream};
use crate::tool_bindings::exports::aigw::plugin::tool as wit_tool;

/// Compiles only for a [`Tool`]; what `export_tool!` checks in native builds.
pub const fn assert_tool<T: Tool>() {}

/// The type the export macro is pointed at for tool plugin `T`.
pub struct Export<T>(PhantomData<T>);

impl<T: Tool> wit_tool::Guest for Export<T> {
    fn describe() -> wit_tool::Descriptor {
        descriptor_to_wit(T::describe())
    }

    fn invoke(
        name: String,
        args_json: String,
        target: wit_tool::Target,
    ) -> Result<String, wit::Failure> {
        invoke::<T>(&name, &args_json, &target_from_wit(target)).map_err(failure_to_wit)
    }
}

/// One call in plain types: the arguments parsed, the tool run, its result as compact JSON.
pub fn invoke<T: Tool>(
    name: &str,
    args_json: &str,
    target: &ToolTarget,
) -> Result<String, Failure> {
    let args: Value = if args_json.trim().is_empty() {
        Value::Object(serde_json::Map::new())
    } else {
        serde_json::from_str(args_json)
            .map_err(|e| Failure::InvalidRequest(format!("the arguments are not JSON: {e}")))?
    };
    let result = T::invoke(name, args, target)?;
    Ok(crate::json::text(&result))
}

fn named_url_to_wit(url: NamedUrl) -> wit::NamedUrl {
    wit::NamedUrl {
        name: url.name,
        url: url.url,
    }
}

fn target_from_wit(target: wit_tool::Target) -> ToolTarget {
    ToolTarget {
        upstream: target.upstream,
        endpoints: target
            .endpoints
            .into_iter()
            .map(|endpoint| NamedUrl::new(endpoint.name, endpoint.url))
            .collect(),
    }
}

fn spec_to_wit(spec: ToolSpec) -> wit_tool::ToolSpec {
    wit_tool::ToolSpec {
        name: spec.name,
        title: spec.title,
        description: spec.description,
        parameters_schema: spec.parameters.to_string(),
        output_schema: spec.output.map(|schema| schema.to_string()),
        cache_ttl_seconds: spec.cache_ttl_seconds,
    }
}

fn upstream_to_wit(upstream: Upstream) -> wit_tool::Upstream {
    wit_tool::Upstream {
        name: upstream.name,
        endpoints: upstream
            .endpoints
            .into_iter()
            .map(named_url_to_wit)
            .collect(),
        credential: placement_to_wit(upstream.credential),
        credential_required: upstream.credential_required,
    }
}

fn descriptor_to_wit(descriptor: ToolDescriptor) -> wit_tool::Descriptor {
    wit_tool::Descriptor {
        name: descriptor.name,
        version: descriptor.version,
        tools: descriptor.tools.into_iter().map(spec_to_wit).collect(),
        upstreams: descriptor
            .upstreams
            .into_iter()
            .map(upstream_to_wit)
            .collect(),
    }
}

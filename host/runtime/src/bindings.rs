//! The one place that generates host bindings for the `aigw:plugin` WIT package: one module per
//! supported package version ([`v0_1`] for `aigw:plugin@0.1.0`), one submodule per world inside
//! it. Everything outside this crate sees the plain Rust types of [`crate::types`]; conversions
//! live in [`crate::convert`]. How a second version would be added: [`crate::versions`].
//!
//! Two `bindgen!` invocations per version instead of one combined world: a combined world would
//! make every plugin export both `provider` and `tool`, and its typed `…Pre` would refuse either
//! kind alone. The tool world reuses the provider world's `types` and `log` through `with:`, so a
//! shared interface has one Rust type and one `Host` trait, implemented once in
//! [`crate::imports`]. Both read the `wit/` directory, so they work whether the package is one
//! file or several.

/// `aigw:plugin@0.1.0`, the version `wit/` holds.
pub(crate) mod v0_1 {
    /// `world provider-plugin`: imports `log`, exports `provider`.
    pub(crate) mod provider {
        wasmtime::component::bindgen!({
            world: "provider-plugin",
            path: "../../wit",
            imports: { default: async },
            exports: { default: async },
        });
    }

    /// `world tool-plugin`: imports `log`, `outbound` and `memory`, exports `tool`.
    pub(crate) mod tool {
        wasmtime::component::bindgen!({
            world: "tool-plugin",
            path: "../../wit",
            imports: { default: async },
            exports: { default: async },
            with: {
                "aigw:plugin/types": crate::bindings::v0_1::provider::aigw::plugin::types,
                "aigw:plugin/log": crate::bindings::v0_1::provider::aigw::plugin::log,
            },
        });
    }

    /// The interfaces both worlds share, under their short names.
    pub(crate) use provider::aigw::plugin::{log, types};
}

/// The version the host's own types, conversions and imports are written against (the newest).
/// An older version kept for old plugins would get its own conversions into the same host types.
pub(crate) use v0_1::{log, provider, tool, types};

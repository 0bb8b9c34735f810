//! The one place that generates host bindings for the `aigw:plugin` WIT package. Everything outside
//! this module sees the plain Rust types of [`crate::types`]; conversions live in [`crate::convert`].

wasmtime::component::bindgen!({
    world: "provider-plugin",
    path: "../../wit",
    imports: { default: async },
    exports: { default: async },
});

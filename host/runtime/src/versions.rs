//! Which versions of the `aigw:plugin` WIT package this gateway serves, and how a plugin built
//! against one is matched to its bindings.
//!
//! # The rule
//!
//! The package follows semver as the component model reads it: while the major version is 0,
//! **a new minor version is a breaking change** (`0.1.x` → `0.2.0`), and a patch version only
//! adds (`@since`-marked items; a `0.1.1` host still runs `0.1.0` plugins, wasmtime links them
//! by semver compatibility). From `1.0.0` on, the major version breaks. A plugin names the
//! version it was built against in its export (`aigw:plugin/provider@0.1.0`), so [`inspect`]
//! reads it from the bytes, and a version the gateway does not serve is refused before anything
//! is compiled, with the message "built against aigw:plugin@0.2.0; this gateway supports 0.1.0".
//!
//! WASI imports are accepted at any `0.2.x` version: wasmtime-wasi links a plugin built against
//! an older or newer 0.2 patch release to the host's 0.2 implementation. A `wasi:*@0.3` import is
//! refused by [`inspect`].
//!
//! # Serving two versions when a breaking change comes
//!
//! The bindings are generated per version ([`crate::bindings::v0_1`]); the loader picks them by
//! [`ComponentFacts::wit_version`]. To add `0.2.0` while keeping `0.1.0` plugins running:
//!
//! 1. Freeze the current WIT: copy `wit/*.wit` to `wit/deps/aigw-plugin-0.1.0/` (unchanged), then
//!    make the breaking change in `wit/` with `package aigw:plugin@0.2.0;` and record it in
//!    `wit/PENDING_CHANGES.md`.
//! 2. In `bindings.rs`, add `mod v0_2` generated from `wit/` and point `v0_1`'s `path:` at the
//!    frozen copy; the crate-level `use` moves to `v0_2` (the host's own types follow the newest).
//! 3. Give `v0_1` its conversions into the host types in `convert.rs` (the old shapes → the new
//!    ones; a field the old version lacks gets its documented default) and its linker in
//!    `engine.rs` (its own `log`/`memory`/`outbound` host traits, delegating to the new ones).
//! 4. Add `"0.2.0"` to [`SUPPORTED_WIT_VERSIONS`] (newest last) and a `match` arm per version in
//!    the world's loader (`Plugin::from_bytes`, `ToolPlugin::from_bytes`), each building its own
//!    `…Pre` and pool.
//! 5. Add the row to `docs/plugins/compatibility.md`, and a test loading a plugin of each version.
//!
//! Until then the match has one arm, and [`inspect`] already refuses every other version.
//!
//! [`inspect`]: crate::inspect
//! [`ComponentFacts::wit_version`]: crate::ComponentFacts::wit_version

/// The `aigw:plugin` versions this gateway loads plugins of, oldest first.
pub const SUPPORTED_WIT_VERSIONS: &[&str] = &["0.1.0"];

/// The WIT package every plugin exports one interface of.
pub const WIT_PACKAGE: &str = "aigw:plugin";

/// The WASI release line whose imports the host provides (any `0.2.x`).
pub(crate) const WASI_LINE: &str = "0.2.";

/// Whether plugins built against `version` are served.
pub fn is_supported(version: &str) -> bool {
    SUPPORTED_WIT_VERSIONS.contains(&version)
}

/// "0.1.0" or "0.1.0, 0.2.0": the supported versions, for messages.
pub(crate) fn supported_list() -> String {
    SUPPORTED_WIT_VERSIONS.join(", ")
}

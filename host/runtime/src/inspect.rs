//! What a component is, read from its bytes without compiling it: which `aigw:plugin` world it
//! implements, against which version of the package, what it imports and exports, its size and
//! digest. Reading the import and export sections of the outer component takes microseconds;
//! compiling takes tens of milliseconds (seconds for Python or JS guests), so a wrong world or
//! an unsupported version is refused here, before the compiler is ever asked.

use std::fmt::Write;

use sha2::{Digest, Sha256};
use wasmparser::{Chunk, Encoding, Parser, Payload};

use crate::versions::{self, WASI_LINE, WIT_PACKAGE};

/// The two worlds of the `aigw:plugin` package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WorldKind {
    /// `provider-plugin`: exports `provider`, imports only `log`.
    Provider,
    /// `tool-plugin`: exports `tool`, imports `log`, `outbound`, `memory`.
    Tool,
}

impl WorldKind {
    /// `"provider"` | `"tool"`: the kind's name in the admin API and `aigw-plugin.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            WorldKind::Provider => "provider",
            WorldKind::Tool => "tool",
        }
    }

    /// `"provider-plugin"` | `"tool-plugin"`: the WIT world's name.
    pub fn world(self) -> &'static str {
        match self {
            WorldKind::Provider => "provider-plugin",
            WorldKind::Tool => "tool-plugin",
        }
    }

    /// The interface the world exports (`provider` | `tool`).
    pub fn interface(self) -> &'static str {
        self.as_str()
    }

    /// The `aigw:plugin` interfaces the world may import. `types` holds only type definitions;
    /// a component imports it whenever it uses one of them.
    fn importable(self) -> &'static [&'static str] {
        match self {
            WorldKind::Provider => &["types", "log"],
            WorldKind::Tool => &["types", "log", "outbound", "memory"],
        }
    }
}

impl std::fmt::Display for WorldKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A component's facts, read from its bytes without compiling (see [`inspect`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentFacts {
    pub world: WorldKind,
    /// The `aigw:plugin` version it exports, e.g. `"0.1.0"`.
    pub wit_version: String,
    /// The outer component's imports, e.g. `"aigw:plugin/log@0.1.0"`, `"wasi:cli/stdin@0.2.9"`.
    pub imports: Vec<String>,
    /// The outer component's exports, e.g. `"aigw:plugin/provider@0.1.0"`.
    pub exports: Vec<String>,
    pub size_bytes: usize,
    /// `"sha256:<64 hex>"` of the bytes.
    pub digest: String,
}

/// Reads a component's world, WIT version, imports and exports. The error is one line for the
/// operator, saying what the bytes are and, where it helps, how to make them what is wanted.
pub fn inspect(bytes: &[u8]) -> Result<ComponentFacts, String> {
    let (imports, exports) = outer_names(bytes)?;
    let (world, wit_version) = world_of(&exports)?;
    if !versions::is_supported(&wit_version) {
        return Err(format!(
            "built against {WIT_PACKAGE}@{wit_version}; this gateway supports {}",
            versions::supported_list()
        ));
    }
    check_imports(world, &wit_version, &imports)?;
    Ok(ComponentFacts {
        world,
        wit_version,
        imports,
        exports,
        size_bytes: bytes.len(),
        digest: digest(bytes),
    })
}

/// `"sha256:<64 hex>"` of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for byte in hash {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// The names the outer component imports and exports. Nested modules and components are
/// skipped whole: their imports are satisfied inside the component, not by the host.
fn outer_names(bytes: &[u8]) -> Result<(Vec<String>, Vec<String>), String> {
    if bytes.is_empty() {
        return Err("not a WebAssembly component: the file is empty".into());
    }
    if !bytes.starts_with(b"\0asm") {
        return Err("not a WebAssembly component: no wasm header (is it a .wasm file?)".into());
    }
    let malformed = |e: wasmparser::BinaryReaderError| {
        format!("not a valid WebAssembly component: {}", e.message())
    };
    let mut parser = Parser::new(0);
    let mut at = 0;
    let mut imports = Vec::new();
    let mut exports = Vec::new();
    loop {
        let rest = bytes.get(at..).unwrap_or_default();
        let (payload, consumed) = match parser.parse(rest, true).map_err(malformed)? {
            Chunk::Parsed { payload, consumed } => (payload, consumed),
            // Not reachable with `eof = true`; a truncated file is an error instead.
            Chunk::NeedMoreData(_) => {
                return Err("not a valid WebAssembly component: truncated".into());
            }
        };
        at += consumed;
        match payload {
            Payload::Version {
                encoding: Encoding::Module,
                ..
            } => {
                return Err("not a WebAssembly component (a core module: build for \
                            wasm32-wasip2 / componentize it)"
                    .into());
            }
            Payload::ComponentImportSection(section) => {
                for import in section {
                    imports.push(import.map_err(malformed)?.name.name.to_owned());
                }
            }
            Payload::ComponentExportSection(section) => {
                for export in section {
                    exports.push(export.map_err(malformed)?.name.name.to_owned());
                }
            }
            // The outer parser has already stepped over the nested body: go on after it.
            Payload::ModuleSection {
                unchecked_range, ..
            }
            | Payload::ComponentSection {
                unchecked_range, ..
            } => at = unchecked_range.end,
            Payload::End(_) => return Ok((imports, exports)),
            _ => {}
        }
    }
}

/// Splits `"aigw:plugin/log@0.1.0"` into `("aigw:plugin", "log", Some("0.1.0"))`.
fn interface_name(name: &str) -> Option<(&str, &str, Option<&str>)> {
    let (package, rest) = name.split_once('/')?;
    match rest.split_once('@') {
        Some((interface, version)) => Some((package, interface, Some(version))),
        None => Some((package, rest, None)),
    }
}

/// The world a component implements, from the `aigw:plugin` interface it exports.
fn world_of(exports: &[String]) -> Result<(WorldKind, String), String> {
    let mut found: Vec<(WorldKind, &str)> = Vec::new();
    for name in exports {
        let Some((package, interface, version)) = interface_name(name) else {
            continue;
        };
        if package != WIT_PACKAGE {
            continue;
        }
        let world = match interface {
            "provider" => WorldKind::Provider,
            "tool" => WorldKind::Tool,
            _ => continue,
        };
        let Some(version) = version else {
            return Err(format!(
                "exports {name} without a version: rebuild it against {WIT_PACKAGE}@{}",
                versions::supported_list()
            ));
        };
        found.push((world, version));
    }
    match found.as_slice() {
        [] => Err(format!(
            "exports neither {WIT_PACKAGE}/provider nor {WIT_PACKAGE}/tool (exports: {})",
            if exports.is_empty() {
                "nothing".to_owned()
            } else {
                exports.join(", ")
            }
        )),
        [(world, version)] => Ok((*world, (*version).to_owned())),
        _ => Err(format!(
            "exports both {WIT_PACKAGE}/provider and {WIT_PACKAGE}/tool: a plugin implements \
             one world"
        )),
    }
}

/// Refuses imports the world's linker would not satisfy, with a message naming the import
/// (the linker's own error, after a compile, names a missing instance less plainly).
fn check_imports(world: WorldKind, version: &str, imports: &[String]) -> Result<(), String> {
    for name in imports {
        let Some((package, interface, imported)) = interface_name(name) else {
            continue;
        };
        if package == WIT_PACKAGE {
            if imported != Some(version) {
                return Err(format!(
                    "imports {name} but exports {WIT_PACKAGE}/{}@{version}: one package version \
                     per plugin",
                    world.interface()
                ));
            }
            if !world.importable().contains(&interface) {
                return Err(format!(
                    "a {} plugin may import only {WIT_PACKAGE}/{{{}}} and WASI; it imports {name}",
                    world.as_str(),
                    world.importable().join(",")
                ));
            }
        } else if package.starts_with("wasi:") {
            if !imported.is_some_and(|v| v.starts_with(WASI_LINE)) {
                return Err(format!(
                    "imports {name}; this gateway provides WASI {WASI_LINE}x"
                ));
            }
        } else {
            return Err(format!(
                "imports {name}, which this gateway does not provide (only {WIT_PACKAGE} and WASI \
                 {WASI_LINE}x)"
            ));
        }
    }
    Ok(())
}

//! The files `aigw plugin new` writes, embedded in the binary by `host/aigw/build.rs`: the
//! templates (`sdk/templates/<lang>/<kind>/`), the WIT (`wit/*.wit`) and the vendored guest SDKs
//! of the languages that need a copy in each project (Python's `aigw_plugin` package, the JS
//! `aigw-plugin.js` module), and the pins of the JS toolchain. A language whose templates were not in the source tree the binary
//! was built from is unavailable.

use super::{Kind, Lang};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded.rs"));
}

/// One file of a project: where it goes (relative to the project) and its bytes.
pub type ProjectFile = (String, &'static [u8]);

/// The embedded files under `prefix` (a folder, `/`-terminated), with the prefix stripped.
fn under(prefix: &str) -> impl Iterator<Item = (&'static str, &'static [u8])> + '_ {
    embedded::FILES
        .iter()
        .filter_map(move |(path, bytes)| Some((path.strip_prefix(prefix)?, *bytes)))
}

/// The template of `lang`/`kind`, relative to the template's folder; empty when this binary was
/// built without it.
pub fn template(lang: Lang, kind: Kind) -> Vec<ProjectFile> {
    let prefix = format!("sdk/templates/{}/{}/", lang.as_str(), kind.as_str());
    under(&prefix)
        .map(|(path, bytes)| (path.to_owned(), bytes))
        .collect()
}

/// The languages with a template of `kind` in this binary.
pub fn languages(kind: Kind) -> Vec<Lang> {
    Lang::ALL
        .into_iter()
        .filter(|lang| !template(*lang, kind).is_empty())
        .collect()
}

/// The WIT package as a project's `wit/` folder holds it.
pub fn wit() -> Vec<ProjectFile> {
    under("wit/")
        .filter(|(path, _)| path.ends_with(".wit"))
        .map(|(path, bytes)| (format!("wit/{path}"), bytes))
        .collect()
}

/// The SDK a project in `lang` carries a copy of (none for Rust, which depends on `sdk/rust` by
/// path): Python's `aigw_plugin/` package; the JS `aigw-plugin.js` module (and `src/`, the
/// modules it imports, when it has them). Empty when this binary was built without it.
pub fn sdk(lang: Lang) -> Vec<ProjectFile> {
    let prefix = match lang {
        Lang::Rust => return Vec::new(),
        Lang::Python => "sdk/python/",
        Lang::Js => "sdk/js/",
    };
    under(prefix)
        .filter(|(path, _)| !path.starts_with("toolchain/"))
        .map(|(path, bytes)| (path.to_owned(), bytes))
        .collect()
}

/// The JS toolchain aigw pins (`sdk/js/toolchain/package.json`'s dependencies), as `npm
/// install` arguments: `@bytecodealliance/jco@1.35.0 componentize-qjs@0.4.5`.
pub fn js_toolchain() -> Option<String> {
    let (_, bytes) = embedded::FILES
        .iter()
        .find(|(path, _)| *path == "sdk/js/toolchain/package.json")?;
    let manifest: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let pins: Vec<String> = manifest["dependencies"]
        .as_object()?
        .iter()
        .filter_map(|(name, version)| Some(format!("{name}@{}", version.as_str()?)))
        .collect();
    (!pins.is_empty()).then(|| pins.join(" "))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_rust_templates_and_the_wit_are_embedded() {
        for kind in [Kind::Provider, Kind::Tool] {
            let files = template(Lang::Rust, kind);
            let names: Vec<&str> = files.iter().map(|(path, _)| path.as_str()).collect();
            for expected in ["Cargo.toml", "aigw-plugin.toml", "README.md", "src/lib.rs"] {
                assert!(names.contains(&expected), "{kind:?}: {names:?}");
            }
            assert!(languages(kind).contains(&Lang::Rust));
        }
        let wit = wit();
        let names: Vec<&str> = wit.iter().map(|(path, _)| path.as_str()).collect();
        assert!(names.contains(&"wit/worlds.wit"), "{names:?}");
        assert!(names.iter().all(|name| name.ends_with(".wit")), "{names:?}");
        assert!(sdk(Lang::Rust).is_empty());
    }

    /// `docs/plugins/rust.md` shows each Rust template's `src/lib.rs` filled in (`acme` the
    /// provider, `temperature` the tool): it must show what `new` writes.
    #[test]
    fn the_rust_guide_shows_the_templates_as_written() {
        let guide = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/plugins/rust.md"),
        )
        .unwrap();
        for (kind, name, class) in [
            (Kind::Provider, "acme", "Acme"),
            (Kind::Tool, "temperature", "Temperature"),
        ] {
            let lib = template(Lang::Rust, kind)
                .into_iter()
                .find(|(path, _)| path == "src/lib.rs")
                .map(|(_, bytes)| String::from_utf8_lossy(bytes).into_owned())
                .unwrap();
            let filled = lib
                .replace("{{name}}", name)
                .replace("{{crate}}", name)
                .replace("{{class}}", class);
            assert!(
                guide.contains(filled.trim_end()),
                "docs/plugins/rust.md does not show the {kind:?} template as `new` writes it"
            );
        }
    }

    #[test]
    fn the_js_toolchain_pins_jco_and_stay_out_of_projects() {
        let pins = js_toolchain().unwrap();
        assert!(pins.contains("@bytecodealliance/jco@"), "{pins}");
        assert!(
            sdk(Lang::Js)
                .iter()
                .all(|(path, _)| !path.starts_with("toolchain")),
            "the toolchain is not part of a project"
        );
    }

    #[test]
    fn every_embedded_template_declares_its_kind_and_language() {
        for kind in [Kind::Provider, Kind::Tool] {
            for lang in languages(kind) {
                let files = template(lang, kind);
                let manifest = files
                    .iter()
                    .find(|(path, _)| path == super::super::MANIFEST)
                    .map(|(_, bytes)| String::from_utf8_lossy(bytes).into_owned())
                    .unwrap_or_default();
                assert!(
                    manifest.contains(&format!("kind = \"{}\"", kind.as_str()))
                        && manifest.contains(&format!("lang = \"{}\"", lang.as_str()))
                        && manifest.contains("name = \"{{name}}\""),
                    "{lang:?}/{kind:?}: {manifest}"
                );
                if lang != Lang::Rust {
                    assert!(!sdk(lang).is_empty(), "{lang:?} has templates but no SDK");
                }
            }
        }
    }
}

//! `aigw plugin new <name> --kind provider|tool --lang rust|python|js`: a project written from
//! the embedded template, with its placeholders filled (`{{name}}` the plugin's name, `{{crate}}`
//! the name with `_`, `{{class}}` its PascalCase form, `{{sdk}}` the Rust SDK's path); a Python
//! or JS project also gets the WIT in `wit/` and its copy of the guest SDK, since its toolchain
//! builds from them.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::templates::{self, ProjectFile};
use super::{Kind, Lang, MANIFEST};

/// The longest plugin name: it also names the tool of a tool template and the `.wasm` file.
const MAX_NAME: usize = 64;

/// Checks a plugin name: `a-z`, `0-9` and `-`, starting with a letter, at most 64 characters
/// (a Cargo package, a Python module with `_`, a file name and a tool name all accept it).
pub fn check_name(name: &str) -> Result<(), String> {
    let rule = "lowercase letters, digits and `-`, starting with a letter, at most 64 characters";
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(format!(
            "invalid plugin name {name:?}: it must be 1 to {MAX_NAME} characters ({rule})"
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(format!(
            "invalid plugin name {name:?}: it must start with a lowercase letter ({rule})"
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(format!(
            "invalid plugin name {name:?}: {bad:?} is not allowed ({rule})"
        ));
    }
    if name.ends_with('-') || name.contains("--") {
        return Err(format!(
            "invalid plugin name {name:?}: `-` separates words; it cannot end the name or repeat"
        ));
    }
    Ok(())
}

/// The name's PascalCase form: `my-provider` → `MyProvider`.
fn class_of(name: &str) -> String {
    name.split('-')
        .map(|word| {
            let mut chars = word.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// What the placeholders of a template become.
struct Placeholders {
    name: String,
    crate_name: String,
    class: String,
    /// Rust only: the SDK's path, quoted for a TOML basic string.
    sdk: Option<String>,
}

impl Placeholders {
    fn fill(&self, text: &str) -> String {
        let mut filled = text
            .replace("{{name}}", &self.name)
            .replace("{{crate}}", &self.crate_name)
            .replace("{{class}}", &self.class);
        if let Some(sdk) = &self.sdk {
            filled = filled.replace("{{sdk}}", sdk);
        }
        filled
    }
}

/// The Rust SDK a new Rust project depends on: `--sdk`, else the `sdk/rust` of the source tree
/// this binary was built from, when it is still there.
fn rust_sdk(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let (path, origin) = match given {
        Some(path) => (path, "--sdk"),
        None => (
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdk/rust"),
            "the source tree of this aigw binary",
        ),
    };
    if !path.join("Cargo.toml").is_file() {
        anyhow::bail!(
            "the Rust plugin SDK is not at {} ({origin}): pass `--sdk PATH`, the `sdk/rust` \
             folder of an aigw checkout",
            path.display()
        );
    }
    path.canonicalize()
        .with_context(|| format!("cannot resolve {}", path.display()))
}

/// Refuses a target that exists and is not an empty folder.
fn check_target(dir: &Path) -> anyhow::Result<()> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                anyhow::bail!(
                    "{} already exists and is not empty: choose another name or `--dir`",
                    dir.display()
                );
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(_) if dir.exists() => anyhow::bail!(
            "{} already exists and is not a folder: choose another name or `--dir`",
            dir.display()
        ),
        Err(e) => anyhow::bail!("cannot read {}: {e}", dir.display()),
    }
}

/// Quotes a path for the inside of a TOML basic string.
fn toml_inner(path: &Path) -> String {
    path.to_string_lossy()
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
}

pub fn run(
    name: &str,
    kind: Kind,
    lang: Lang,
    dir: Option<PathBuf>,
    sdk: Option<PathBuf>,
) -> anyhow::Result<()> {
    check_name(name).map_err(anyhow::Error::msg)?;
    let template = templates::template(lang, kind);
    if template.is_empty() {
        let available: Vec<&str> = templates::languages(kind)
            .into_iter()
            .map(Lang::as_str)
            .collect();
        anyhow::bail!(
            "no {} template for {} in this aigw build (it was built from a tree without \
             sdk/templates/{}/{}); available: {}",
            kind.as_str(),
            lang.as_str(),
            lang.as_str(),
            kind.as_str(),
            if available.is_empty() {
                "none".to_owned()
            } else {
                available.join(", ")
            }
        );
    }
    let mut files: Vec<ProjectFile> = template;
    let sdk = match lang {
        Lang::Rust => Some(toml_inner(&rust_sdk(sdk)?)),
        Lang::Python | Lang::Js => {
            let vendored = templates::sdk(lang);
            if vendored.is_empty() {
                anyhow::bail!(
                    "the {} SDK is not in this aigw build (it was built from a tree without it)",
                    lang.as_str()
                );
            }
            files.extend(templates::wit());
            files.extend(vendored);
            None
        }
    };
    if !files.iter().any(|(path, _)| path == MANIFEST) {
        anyhow::bail!(
            "the {} {} template has no {MANIFEST}: this aigw build is broken",
            lang.as_str(),
            kind.as_str()
        );
    }
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    check_target(&dir)?;
    let placeholders = Placeholders {
        name: name.to_owned(),
        crate_name: name.replace('-', "_"),
        class: class_of(name),
        sdk,
    };

    let mut written = Vec::with_capacity(files.len());
    for (relative, bytes) in &files {
        let relative = placeholders.fill(relative);
        let path = dir.join(&relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        // Only text is a template; anything else is copied byte for byte.
        let contents = match std::str::from_utf8(bytes) {
            Ok(text) => placeholders.fill(text).into_bytes(),
            Err(_) => bytes.to_vec(),
        };
        std::fs::write(&path, contents)
            .with_context(|| format!("cannot write {}", path.display()))?;
        written.push(relative);
    }
    written.sort();

    let mut out = format!(
        "wrote a {} {} plugin `{name}` in {}:\n",
        lang.as_str(),
        kind.as_str(),
        dir.display()
    );
    for relative in &written {
        out.push_str(&format!("  {relative}\n"));
    }
    let section = match kind {
        Kind::Provider => "providers",
        Kind::Tool => "tools",
    };
    out.push_str(&format!(
        "next:\n  aigw plugin build {dir}\n  aigw plugin check {dir}/{name}.wasm\nthen name it \
         in the gateway's config: [{section}.{name}] plugin = \"{dir}/{name}.wasm\"\n",
        dir = dir.display()
    ));
    print!("{out}");
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn names_are_checked_with_the_reason() {
        for good in ["a", "my-provider", "weather2", "x-1-y"] {
            assert_eq!(check_name(good), Ok(()), "{good}");
        }
        let long = "a".repeat(65);
        for (bad, why) in [
            ("", "1 to 64"),
            (long.as_str(), "1 to 64"),
            ("2fast", "start with a lowercase letter"),
            ("-x", "start with a lowercase letter"),
            ("My-Plugin", "start with a lowercase letter"),
            ("my_plugin", "'_' is not allowed"),
            ("my plugin", "' ' is not allowed"),
            ("my-", "cannot end"),
            ("my--plugin", "repeat"),
        ] {
            let error = check_name(bad).unwrap_err();
            assert!(error.contains(why), "{bad:?}: {error}");
        }
        assert_eq!(check_name(&"a".repeat(64)), Ok(()));
    }

    #[test]
    fn placeholders_take_the_names_forms() {
        assert_eq!(class_of("my-tool-2"), "MyTool2");
        let placeholders = Placeholders {
            name: "my-tool".to_owned(),
            crate_name: "my_tool".to_owned(),
            class: class_of("my-tool"),
            sdk: Some("/src/sdk/rust".to_owned()),
        };
        assert_eq!(
            placeholders.fill("{{name}} {{crate}} {{class}} {{sdk}}"),
            "my-tool my_tool MyTool /src/sdk/rust"
        );
    }

    #[test]
    fn an_existing_folder_is_refused_unless_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check_target(&dir.path().join("absent")).is_ok());
        assert!(check_target(dir.path()).is_ok());
        std::fs::write(dir.path().join("file"), "x").unwrap();
        let error = check_target(dir.path()).unwrap_err().to_string();
        assert!(error.contains("not empty"), "{error}");
        let error = check_target(&dir.path().join("file"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("not a folder"), "{error}");
    }
}

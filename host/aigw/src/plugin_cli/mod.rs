//! `aigw plugin new|build|check`: the plugin author's three steps from nothing to a component the
//! gateway loads. `new` writes a project from the templates embedded in the binary
//! ([`templates`]), `build` runs the language's toolchain on it, `check` reads a built component
//! and loads it the way the gateway would, printing what it describes.
//!
//! Every project carries an `aigw-plugin.toml` ([`Manifest`]): its name, kind and language, which
//! is all `build` needs to know.

mod build;
mod check;
mod new;
mod templates;

use std::path::{Path, PathBuf};

use clap::{Subcommand, ValueEnum};
use serde::Deserialize;

/// The file every plugin project has at its root.
pub const MANIFEST: &str = "aigw-plugin.toml";

#[derive(Subcommand)]
pub enum PluginCommand {
    /// Write a new plugin project from a template.
    New {
        /// The plugin's name: lowercase letters, digits and `-`, starting with a letter, at most
        /// 64 characters.
        name: String,
        /// What it is: a provider (the `provider-plugin` world) or tools (`tool-plugin`).
        #[arg(long, value_enum)]
        kind: Kind,
        /// The language it is written in.
        #[arg(long, value_enum)]
        lang: Lang,
        /// Where to write it (default: `./<name>`); must not exist or be empty.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Rust only: the `sdk/rust` folder of an aigw checkout, the plugin's `aigw-plugin-sdk`
        /// path dependency (default: the one of the tree this binary was built from).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Build the plugin project in DIR (default: the current folder) into `<DIR>/<name>.wasm`,
    /// then check it.
    Build {
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Validate a component: its world, WIT version and imports, then load it and print what it
    /// describes. Exit 1 with the reason when the gateway would refuse it.
    Check {
        file: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs one `aigw plugin` command.
pub async fn run(command: PluginCommand) -> anyhow::Result<()> {
    match command {
        PluginCommand::New {
            name,
            kind,
            lang,
            dir,
            sdk,
        } => new::run(&name, kind, lang, dir, sdk),
        PluginCommand::Build { dir } => build::run(&dir).await,
        PluginCommand::Check { file, json } => check::run(&file, json).await,
    }
}

/// A plugin's kind: which world of `aigw:plugin` it exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Provider,
    Tool,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Provider => "provider",
            Kind::Tool => "tool",
        }
    }

    /// The WIT world a plugin of this kind exports.
    pub fn world(self) -> &'static str {
        match self {
            Kind::Provider => "provider-plugin",
            Kind::Tool => "tool-plugin",
        }
    }
}

/// The languages the templates exist for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    Rust,
    Python,
    Js,
}

impl Lang {
    pub const ALL: [Lang; 3] = [Lang::Rust, Lang::Python, Lang::Js];

    pub fn as_str(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Js => "js",
        }
    }
}

/// `aigw-plugin.toml`: what `aigw plugin build` reads.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub kind: Kind,
    pub lang: Lang,
}

impl Manifest {
    /// Reads `<dir>/aigw-plugin.toml`.
    pub fn read(dir: &Path) -> anyhow::Result<Manifest> {
        let path = dir.join(MANIFEST);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => anyhow::bail!(
                "{} has no {MANIFEST}: it is not an aigw plugin project (make one with \
                 `aigw plugin new <name> --kind provider|tool --lang rust|python|js`)",
                dir.display()
            ),
            Err(e) => anyhow::bail!("cannot read {}: {e}", path.display()),
        };
        let manifest: Manifest =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        new::check_name(&manifest.name).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(manifest)
    }
}

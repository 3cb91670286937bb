//! The model catalog: a pinned JSON snapshot compiled into the binary, so
//! model ids, limits and prices are known without any network call. Lookups
//! by (provider type, model id) are O(1).

use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::error::ProviderError;
use crate::ids::ModelId;
use crate::message::UsageUpdate;

/// The pinned snapshot. Regenerating it is an operator task (spec 08); the
/// runtime and the model can never modify it.
const PINNED_CATALOG_JSON: &str = include_str!("../catalog/models.json");

/// The wire API a provider entry speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderType {
    /// OpenAI chat completions (and OpenAI-compatible servers).
    Openai,
    /// The OpenAI Responses API.
    OpenaiResponses,
    Anthropic,
    Gemini,
}

impl ProviderType {
    pub const ALL: [ProviderType; 4] = [
        Self::Openai,
        Self::OpenaiResponses,
        Self::Anthropic,
        Self::Gemini,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Openai => "openai",
            Self::OpenaiResponses => "openai_responses",
            Self::Anthropic => "anthropic",
            Self::Gemini => "gemini",
        }
    }

    /// The environment variable holding this type's API key by default.
    pub fn default_api_key_env(self) -> &'static str {
        match self {
            Self::Openai | Self::OpenaiResponses => "OPENAI_API_KEY",
            Self::Anthropic => "ANTHROPIC_API_KEY",
            Self::Gemini => "GEMINI_API_KEY",
        }
    }
}

impl fmt::Display for ProviderType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a model is still offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeprecationState {
    Active,
    /// Still served, with a retirement announced.
    Deprecated,
    /// No longer served; kept so old sessions can still be priced.
    Retired,
}

/// Everything known about one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelDescriptor {
    pub id: ModelId,
    pub provider: ProviderType,
    pub display_name: String,
    pub supports_tools: bool,
    pub supports_streaming: bool,
    pub supports_reasoning_traces: bool,
    pub supports_json_mode: bool,
    pub max_input_tokens: u64,
    pub max_output_tokens: u64,
    /// USD per million input tokens.
    pub input_price_per_million: f64,
    /// USD per million output tokens.
    pub output_price_per_million: f64,
    /// USD per million input tokens read from the vendor's prompt cache;
    /// `None` when the model has no cache discount (they cost the input
    /// price).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_price_per_million: Option<f64>,
    /// USD per million input tokens written to the prompt cache (Anthropic
    /// charges 1.25× input for its five-minute cache); `None` when writes
    /// cost the input price or the vendor caches implicitly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_price_per_million: Option<f64>,
    pub deprecation_state: DeprecationState,
}

impl ModelDescriptor {
    pub fn caps(&self) -> ProviderCaps {
        ProviderCaps {
            supports_streaming: self.supports_streaming,
            supports_tools: self.supports_tools,
            supports_json_mode: self.supports_json_mode,
            supports_reasoning_traces: self.supports_reasoning_traces,
            max_input_tokens: self.max_input_tokens,
            max_output_tokens: self.max_output_tokens,
        }
    }

    /// The estimated cost of `usage` in USD at this model's list prices.
    ///
    /// `usage.input_tokens` includes the cached ones (see `UsageUpdate`):
    /// cache reads are charged at the read price, cache writes at the write
    /// price, and only the rest at the input price, so no token is charged
    /// twice. Counts a vendor reports inconsistently (more cached than
    /// input) are clamped to the input.
    pub fn cost_usd(&self, usage: &UsageUpdate) -> f64 {
        let input = usage.input_tokens;
        let read = usage.cached_input_tokens.unwrap_or(0).min(input);
        let written = usage
            .cache_write_input_tokens
            .unwrap_or(0)
            .min(input - read);
        let plain = input - read - written;
        let read_price = self
            .cache_read_price_per_million
            .unwrap_or(self.input_price_per_million);
        let write_price = self
            .cache_write_price_per_million
            .unwrap_or(self.input_price_per_million);
        (plain as f64 * self.input_price_per_million
            + read as f64 * read_price
            + written as f64 * write_price
            + usage.output_tokens as f64 * self.output_price_per_million)
            / 1_000_000.0
    }
}

/// What a model can do, derived from its descriptor. The runtime uses it to
/// choose `stream` or `complete` and whether to send tool declarations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderCaps {
    pub supports_streaming: bool,
    pub supports_tools: bool,
    pub supports_json_mode: bool,
    pub supports_reasoning_traces: bool,
    pub max_input_tokens: u64,
    pub max_output_tokens: u64,
}

/// A catalog document that breaks an invariant.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CatalogError {
    #[error("model catalog is not valid JSON: {0}")]
    Parse(String),
    #[error("model catalog lists '{model}' twice for provider type {provider}")]
    DuplicateModel {
        provider: ProviderType,
        model: String,
    },
    #[error("model catalog entry '{model}' ({provider}) is invalid: {reason}")]
    InvalidModel {
        provider: ProviderType,
        model: String,
        reason: &'static str,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogDocument {
    snapshot: String,
    #[serde(rename = "source")]
    _source: String,
    models: Vec<ModelDescriptor>,
}

/// Models indexed by provider type, then id.
#[derive(Debug, Clone)]
pub struct ModelCatalog {
    snapshot: String,
    models: HashMap<ProviderType, HashMap<String, ModelDescriptor>>,
}

impl ModelCatalog {
    /// The catalog compiled into this binary.
    pub fn pinned() -> &'static ModelCatalog {
        static PINNED: OnceLock<ModelCatalog> = OnceLock::new();
        PINNED.get_or_init(|| {
            // The snapshot is a compile-time constant; the catalog tests
            // prove it parses and validates, so this cannot fail at run time.
            Self::from_json(PINNED_CATALOG_JSON).expect("pinned model catalog is valid")
        })
    }

    /// Parses and validates a catalog document.
    pub fn from_json(json: &str) -> Result<Self, CatalogError> {
        let document: CatalogDocument =
            serde_json::from_str(json).map_err(|e| CatalogError::Parse(e.to_string()))?;
        let mut catalog = Self {
            snapshot: document.snapshot,
            models: HashMap::new(),
        };
        for model in document.models {
            catalog.insert(model, false)?;
        }
        Ok(catalog)
    }

    /// The snapshot stamp of the document this catalog was built from.
    pub fn snapshot(&self) -> &str {
        &self.snapshot
    }

    fn insert(&mut self, model: ModelDescriptor, replace: bool) -> Result<(), CatalogError> {
        validate_descriptor(&model)?;
        let by_id = self.models.entry(model.provider).or_default();
        if !replace && by_id.contains_key(model.id.as_str()) {
            return Err(CatalogError::DuplicateModel {
                provider: model.provider,
                model: model.id.into_string(),
            });
        }
        by_id.insert(model.id.as_str().to_owned(), model);
        Ok(())
    }

    /// A copy of this catalog with extra models merged in; an extra model
    /// with the id of a pinned one replaces it (the operator knows better).
    pub fn with_extra_models(
        &self,
        extra: impl IntoIterator<Item = ModelDescriptor>,
    ) -> Result<Self, CatalogError> {
        let mut merged = self.clone();
        for model in extra {
            merged.insert(model, true)?;
        }
        Ok(merged)
    }

    pub fn get(&self, provider: ProviderType, model: &str) -> Option<&ModelDescriptor> {
        self.models.get(&provider)?.get(model)
    }

    /// The descriptor, or `ProviderError::UnknownModel`.
    pub fn require(
        &self,
        provider: ProviderType,
        model: &ModelId,
    ) -> Result<&ModelDescriptor, ProviderError> {
        self.get(provider, model.as_str())
            .ok_or_else(|| ProviderError::UnknownModel {
                provider_type: provider.to_string(),
                model: model.to_string(),
            })
    }

    pub fn caps(
        &self,
        provider: ProviderType,
        model: &ModelId,
    ) -> Result<ProviderCaps, ProviderError> {
        self.require(provider, model).map(ModelDescriptor::caps)
    }

    /// All models of one provider type, sorted by id.
    pub fn models_for(&self, provider: ProviderType) -> Vec<&ModelDescriptor> {
        let mut models: Vec<_> = self
            .models
            .get(&provider)
            .map(|by_id| by_id.values().collect())
            .unwrap_or_default();
        models.sort_by(|a, b| a.id.cmp(&b.id));
        models
    }

    pub fn len(&self) -> usize {
        self.models.values().map(HashMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn validate_descriptor(model: &ModelDescriptor) -> Result<(), CatalogError> {
    let invalid = |reason| CatalogError::InvalidModel {
        provider: model.provider,
        model: model.id.to_string(),
        reason,
    };
    if model.id.as_str().trim().is_empty() {
        return Err(invalid("empty model id"));
    }
    if model.max_input_tokens == 0 || model.max_output_tokens == 0 {
        return Err(invalid("token limits must be greater than 0"));
    }
    let prices = [
        Some(model.input_price_per_million),
        Some(model.output_price_per_million),
        model.cache_read_price_per_million,
        model.cache_write_price_per_million,
    ];
    if prices.iter().flatten().any(|p| !p.is_finite() || *p < 0.0) {
        return Err(invalid("prices must be finite and not negative"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_catalog_loads_with_every_provider_type() {
        let catalog = ModelCatalog::pinned();
        assert!(catalog.len() >= 30, "only {} models", catalog.len());
        for provider in ProviderType::ALL {
            assert!(
                catalog.models_for(provider).len() >= 4,
                "too few models for {provider}"
            );
        }
    }

    #[test]
    fn every_pinned_model_has_prices_and_limits() {
        let catalog = ModelCatalog::pinned();
        for provider in ProviderType::ALL {
            for model in catalog.models_for(provider) {
                assert!(model.input_price_per_million > 0.0, "{}", model.id);
                assert!(model.output_price_per_million >= model.input_price_per_million);
                assert!(model.max_input_tokens >= 16_000, "{}", model.id);
                assert!(model.max_output_tokens >= 4_096, "{}", model.id);
                assert!(!model.display_name.is_empty());
            }
        }
    }

    #[test]
    fn pinned_json_has_no_duplicates_even_before_indexing() {
        let document: CatalogDocument = serde_json::from_str(PINNED_CATALOG_JSON).unwrap();
        let mut seen = std::collections::HashSet::new();
        for model in &document.models {
            assert!(
                seen.insert((model.provider, model.id.clone())),
                "{}",
                model.id
            );
        }
        assert_eq!(seen.len(), ModelCatalog::pinned().len());
    }

    #[test]
    fn caps_lookup_is_derived_from_the_descriptor() {
        let catalog = ModelCatalog::pinned();
        let caps = catalog
            .caps(
                ProviderType::Anthropic,
                &"claude-sonnet-4-5-20250929".into(),
            )
            .unwrap();
        assert!(caps.supports_tools && caps.supports_streaming);
        assert!(!caps.supports_json_mode);
        assert_eq!(caps.max_input_tokens, 200_000);
        assert_eq!(caps.max_output_tokens, 64_000);

        let responses = catalog
            .caps(ProviderType::OpenaiResponses, &"o3-pro".into())
            .unwrap();
        assert!(!responses.supports_streaming);
    }

    #[test]
    fn lookup_is_per_provider_type() {
        let catalog = ModelCatalog::pinned();
        assert!(catalog.get(ProviderType::Openai, "gpt-4.1").is_some());
        assert!(catalog.get(ProviderType::Gemini, "gpt-4.1").is_none());
        let err = catalog
            .caps(ProviderType::Gemini, &"gpt-4.1".into())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown model 'gpt-4.1' for provider type 'gemini'"
        );
    }

    #[test]
    fn cost_uses_per_million_prices() {
        let model = ModelCatalog::pinned()
            .get(ProviderType::Openai, "gpt-4.1")
            .unwrap();
        let cost = model.cost_usd(&UsageUpdate::new(1_000_000, 500_000));
        assert!((cost - (2.0 + 4.0)).abs() < 1e-9, "{cost}");
    }

    fn assert_cost(provider: ProviderType, model: &str, usage: UsageUpdate, expected: f64) {
        let cost = ModelCatalog::pinned()
            .get(provider, model)
            .unwrap()
            .cost_usd(&usage);
        assert!(
            (cost - expected).abs() < 1e-12,
            "{model}: {cost} != {expected}"
        );
    }

    #[test]
    fn anthropic_cache_reads_and_writes_are_priced_apart_from_plain_input() {
        // Claude Sonnet 4.5: $3 input, $15 output, cache write 1.25 × 3 =
        // $3.75, cache read 0.1 × 3 = $0.30 per million tokens. Anthropic
        // reported input_tokens 2_000, cache_creation_input_tokens 10_000,
        // cache_read_input_tokens 50_000 and output_tokens 1_000; the wire
        // normalises input to 2_000 + 10_000 + 50_000 = 62_000.
        //   plain  2_000 × $3.00 / 1M = $0.00600
        //   write 10_000 × $3.75 / 1M = $0.03750
        //   read  50_000 × $0.30 / 1M = $0.01500
        //   output 1_000 × $15   / 1M = $0.01500
        //   total                       $0.07350
        let usage = UsageUpdate {
            cached_input_tokens: Some(50_000),
            cache_write_input_tokens: Some(10_000),
            ..UsageUpdate::new(62_000, 1_000)
        };
        assert_cost(
            ProviderType::Anthropic,
            "claude-sonnet-4-5-20250929",
            usage,
            0.0735,
        );
        // Without the cache the same prompt would have cost 62_000 × $3 /
        // 1M + $0.015 = $0.201.
        assert_cost(
            ProviderType::Anthropic,
            "claude-sonnet-4-5-20250929",
            UsageUpdate::new(62_000, 1_000),
            0.201,
        );
    }

    #[test]
    fn openai_cached_input_is_part_of_the_prompt_and_charged_once() {
        // GPT-4.1: $2 input, $0.50 cached input, $8 output per million.
        // OpenAI reported prompt_tokens 10_000 of which cached_tokens 8_000.
        //   plain  2_000 × $2.00 / 1M = $0.004
        //   read   8_000 × $0.50 / 1M = $0.004
        //   output   500 × $8    / 1M = $0.004
        let usage = UsageUpdate {
            cached_input_tokens: Some(8_000),
            ..UsageUpdate::new(10_000, 500)
        };
        assert_cost(ProviderType::Openai, "gpt-4.1", usage, 0.012);
    }

    #[test]
    fn models_without_cache_prices_charge_cached_tokens_as_input() {
        // GPT-4 Turbo has no cache discount: all 1_000 input tokens at $10.
        let usage = UsageUpdate {
            cached_input_tokens: Some(600),
            cache_write_input_tokens: Some(200),
            ..UsageUpdate::new(1_000, 0)
        };
        assert_cost(ProviderType::Openai, "gpt-4-turbo", usage, 0.01);
        // More cached tokens than input (a confused server) never yields a
        // negative or doubled charge: the 1_000 input tokens are all reads.
        let confused = UsageUpdate {
            cached_input_tokens: Some(5_000),
            cache_write_input_tokens: Some(5_000),
            ..UsageUpdate::new(1_000, 0)
        };
        // GPT-4.1: 1_000 × $0.50 / 1M.
        assert_cost(ProviderType::Openai, "gpt-4.1", confused, 0.0005);
    }

    #[test]
    fn pinned_cache_prices_follow_each_vendors_rules() {
        let catalog = ModelCatalog::pinned();
        for model in catalog.models_for(ProviderType::Anthropic) {
            let input = model.input_price_per_million;
            let read = model.cache_read_price_per_million.unwrap();
            let write = model.cache_write_price_per_million.unwrap();
            assert!((read - input * 0.1).abs() < 1e-9, "{}", model.id);
            assert!((write - input * 1.25).abs() < 1e-9, "{}", model.id);
        }
        for provider in [
            ProviderType::Openai,
            ProviderType::OpenaiResponses,
            ProviderType::Gemini,
        ] {
            for model in catalog.models_for(provider) {
                // Implicit caches charge nothing extra to write.
                assert_eq!(model.cache_write_price_per_million, None, "{}", model.id);
                if let Some(read) = model.cache_read_price_per_million {
                    assert!(read < model.input_price_per_million, "{}", model.id);
                }
            }
        }
    }

    #[test]
    fn negative_cache_prices_are_rejected() {
        let mut model = extra("c", 10);
        model.cache_read_price_per_million = Some(-1.0);
        let document = serde_json::json!({"snapshot": "t", "source": "t", "models": [model]});
        let err = ModelCatalog::from_json(&document.to_string()).unwrap_err();
        assert!(err.to_string().contains("prices"), "{err}");
    }

    fn extra(id: &str, max_input_tokens: u64) -> ModelDescriptor {
        ModelDescriptor {
            id: id.into(),
            provider: ProviderType::Openai,
            display_name: id.into(),
            supports_tools: true,
            supports_streaming: true,
            supports_reasoning_traces: false,
            supports_json_mode: false,
            max_input_tokens,
            max_output_tokens: 4096,
            input_price_per_million: 0.0,
            output_price_per_million: 0.0,
            cache_read_price_per_million: None,
            cache_write_price_per_million: None,
            deprecation_state: DeprecationState::Active,
        }
    }

    #[test]
    fn extra_models_merge_and_override() {
        let pinned = ModelCatalog::pinned();
        let merged = pinned
            .with_extra_models([extra("llama3.1:8b", 131_072), extra("gpt-4o", 1_000)])
            .unwrap();
        assert_eq!(merged.len(), pinned.len() + 1);
        assert_eq!(
            merged
                .get(ProviderType::Openai, "llama3.1:8b")
                .unwrap()
                .max_input_tokens,
            131_072
        );
        assert_eq!(
            merged
                .get(ProviderType::Openai, "gpt-4o")
                .unwrap()
                .max_input_tokens,
            1_000
        );
        // The pinned catalog itself is never modified.
        assert!(pinned.get(ProviderType::Openai, "llama3.1:8b").is_none());
    }

    #[test]
    fn invalid_documents_are_rejected_with_reasons() {
        let duplicate = serde_json::json!({
            "snapshot": "t", "source": "t",
            "models": [extra("a", 10), extra("a", 10)]
        });
        let err = ModelCatalog::from_json(&duplicate.to_string()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "model catalog lists 'a' twice for provider type openai"
        );

        let zero = serde_json::json!({"snapshot": "t", "source": "t", "models": [extra("b", 0)]});
        let err = ModelCatalog::from_json(&zero.to_string()).unwrap_err();
        assert!(err.to_string().contains("token limits"), "{err}");

        let err = ModelCatalog::from_json("{\"snapshot\": 1}").unwrap_err();
        assert!(matches!(err, CatalogError::Parse(_)), "{err}");
    }
}

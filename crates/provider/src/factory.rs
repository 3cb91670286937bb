//! Builds providers from configuration: a registry entry plus the pinned
//! catalog plus a resolved credential gives a ready `Provider`; the agent's
//! selection plus its fallbacks gives the `ReliableProvider` the runtime
//! uses.

use std::collections::BTreeMap;
use std::sync::Arc;

use types::config::ProviderEntry;
use types::{
    AgentConfig, ModelCatalog, Provider, ProviderError, ProviderId, ProviderType, SecretString,
};

use crate::http::{HttpEndpoint, StreamTimeouts};
use crate::reliable::{Fallback, ReliableProvider, RetryPolicy};
use crate::wire::HttpProvider;
use crate::{anthropic, gemini, openai, responses};

/// Builds the provider for registry entry `name`.
///
/// `api_key` is the resolved credential (`ProviderEntry::resolve_api_key`).
/// It may be absent only when `base_url` points somewhere other than the
/// vendor's API (a local OpenAI-compatible server needs no key).
pub fn build_provider(
    name: &str,
    entry: &ProviderEntry,
    pinned: &ModelCatalog,
    api_key: Option<&SecretString>,
) -> Result<Arc<dyn Provider>, ProviderError> {
    let catalog = entry
        .catalog(pinned)
        .map_err(|e| ProviderError::Configuration(format!("provider '{name}': {e}")))?;
    let vendor_url = default_base_url(entry.provider_type);
    let base_url = entry.base_url.as_deref().unwrap_or(vendor_url);
    let key = api_key.filter(|key| !key.is_empty());
    if key.is_none() && base_url.trim_end_matches('/') == vendor_url {
        return Err(ProviderError::Configuration(format!(
            "provider '{name}' has no API key: set `api_key` in its entry, or the environment variable {}, or API_KEY",
            entry.api_key_env_name()
        )));
    }
    let mut headers = auth_headers(entry.provider_type, key);
    headers.extend(entry.headers.iter().map(|(k, v)| (k.clone(), v.clone())));
    let endpoint = HttpEndpoint::new(base_url, headers, StreamTimeouts::from_entry(name, entry))?;
    let id = ProviderId::new(name);
    let kind = entry.provider_type;
    Ok(match kind {
        ProviderType::Openai => Arc::new(HttpProvider::from_parts(
            id,
            kind,
            catalog,
            endpoint,
            openai::ChatWire::new(base_url),
        )),
        ProviderType::OpenaiResponses => Arc::new(HttpProvider::from_parts(
            id,
            kind,
            catalog,
            endpoint,
            responses::ResponsesWire::new(),
        )),
        ProviderType::Anthropic => Arc::new(HttpProvider::from_parts(
            id,
            kind,
            catalog,
            endpoint,
            anthropic::MessagesWire::new(),
        )),
        ProviderType::Gemini => Arc::new(HttpProvider::from_parts(
            id,
            kind,
            catalog,
            endpoint,
            gemini::GeminiWire::new(),
        )),
    })
}

fn default_base_url(kind: ProviderType) -> &'static str {
    match kind {
        ProviderType::Openai | ProviderType::OpenaiResponses => openai::DEFAULT_BASE_URL,
        ProviderType::Anthropic => anthropic::DEFAULT_BASE_URL,
        ProviderType::Gemini => gemini::DEFAULT_BASE_URL,
    }
}

/// The authentication (and protocol version) headers of each vendor.
fn auth_headers(kind: ProviderType, key: Option<&SecretString>) -> Vec<(String, String)> {
    let mut headers = Vec::new();
    match kind {
        ProviderType::Openai | ProviderType::OpenaiResponses => {
            if let Some(key) = key {
                headers.push(("authorization".into(), format!("Bearer {}", key.expose())));
            }
        }
        ProviderType::Anthropic => {
            headers.push(("anthropic-version".into(), anthropic::API_VERSION.into()));
            if let Some(key) = key {
                headers.push(("x-api-key".into(), key.expose().to_owned()));
            }
        }
        ProviderType::Gemini => {
            if let Some(key) = key {
                headers.push(("x-goog-api-key".into(), key.expose().to_owned()));
            }
        }
    }
    headers
}

/// Builds the agent's selected provider, wrapped with retries and its
/// fallbacks, resolving credentials through `lookup` (the process
/// environment, or the bootstrap envelope's credentials in a guest).
/// `config` must have passed `AgentConfig::validate`.
pub fn build_selected(
    config: &AgentConfig,
    pinned: &ModelCatalog,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<ReliableProvider, ProviderError> {
    let mut built: BTreeMap<&str, Arc<dyn Provider>> = BTreeMap::new();
    let mut provider = |name: &str| -> Result<Arc<dyn Provider>, ProviderError> {
        let (name, entry) = config.providers.get_key_value(name).ok_or_else(|| {
            ProviderError::Configuration(format!("provider '{name}' is not in the registry"))
        })?;
        if let Some(existing) = built.get(name.as_str()) {
            return Ok(existing.clone());
        }
        let key = entry.resolve_api_key(&lookup).map(|c| c.value);
        let provider = build_provider(name, entry, pinned, key.as_ref())?;
        built.insert(name, provider.clone());
        Ok(provider)
    };
    let primary_name = config
        .selection
        .provider
        .as_deref()
        .ok_or_else(|| ProviderError::Configuration("selection.provider is not set".into()))?;
    let primary = provider(primary_name)?;
    let fallbacks = config
        .reliability
        .fallbacks
        .iter()
        .map(|fallback| {
            Ok(Fallback {
                provider: provider(&fallback.provider)?,
                model: fallback.model.clone(),
            })
        })
        .collect::<Result<Vec<_>, ProviderError>>()?;
    Ok(
        ReliableProvider::new(primary, RetryPolicy::from_config(&config.reliability))
            .with_fallbacks(fallbacks),
    )
}

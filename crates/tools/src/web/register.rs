//! Registering the web tools, with the URL check in front of `web_fetch`.

use std::sync::Arc;

use serde_json::Value;
use types::ToolError;
use url::Url;

use super::{EgressGuard, SearchBackend, WebConfig, WebFetchTool, WebSearchTool};
use crate::registry::{ArgumentPolicy, RegistryError, ToolRegistry};

/// The egress guard applied to `web_fetch`'s `url` argument as a pipeline
/// policy, so a refused URL never reaches the tool. (The tool asks the
/// guard again on every redirect hop.)
#[derive(Debug, Clone)]
pub struct UrlPolicy(pub Arc<dyn EgressGuard>);

impl ArgumentPolicy for UrlPolicy {
    fn check(&self, arguments: &Value) -> Result<(), ToolError> {
        let Some(text) = arguments.get("url").and_then(Value::as_str) else {
            return Err(ToolError::InvalidArguments(
                "missing required field 'url'".into(),
            ));
        };
        let url = Url::parse(text).map_err(|e| {
            ToolError::InvalidArguments(format!("'{text}' is not a valid URL: {e}"))
        })?;
        self.0.check_url(&url)
    }
}

/// Either the registration failed, or a tool could not be built from its
/// configuration.
#[derive(Debug, thiserror::Error)]
pub enum WebToolsError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("web tools are misconfigured: {0}")]
    Config(ToolError),
}

/// Registers `web_fetch`, and `web_search` when a backend is configured,
/// both behind `guard` — in production an [`SsrfGuard`](super::SsrfGuard)
/// built from the runner's egress policy. A self-hosted search backend on an
/// internal address needs an operator exception in that guard
/// ([`EgressException::for_url`](sandbox::egress::EgressException::for_url)).
pub fn register_web_tools(
    registry: &mut ToolRegistry,
    config: WebConfig,
    search: Option<SearchBackend>,
    guard: Arc<dyn EgressGuard>,
) -> Result<(), WebToolsError> {
    let fetch = WebFetchTool::new(config.clone(), guard.clone()).map_err(WebToolsError::Config)?;
    registry.register_with_policy(Arc::new(fetch), Arc::new(UrlPolicy(guard.clone())))?;
    if let Some(backend) = search {
        let search = WebSearchTool::new(config, backend, guard).map_err(WebToolsError::Config)?;
        registry.register(Arc::new(search))?;
    }
    Ok(())
}

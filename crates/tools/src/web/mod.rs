//! `web_fetch` and `web_search`: the only tools that reach the network.
//!
//! Both follow one path: parse the model's arguments into a typed struct, ask
//! the [`EgressGuard`] whether the URL may be contacted, send the request
//! through a client whose redirect policy asks the guard again on every hop
//! and whose resolver ([`GuardedResolver`]) lets the guard judge every
//! address a host name resolves to before connecting to exactly those, read
//! the body as a stream up to a byte cap, and turn it into text the model
//! can read. The guard is the single seam of the SSRF policy: production
//! uses [`SsrfGuard`]; [`SchemeOnlyGuard`] (URL shape only) is for tests
//! against local servers.
//!
//! Environment proxies (`HTTP_PROXY`, …) are deliberately ignored: a proxy
//! would resolve and connect on our behalf, out of the guard's sight. The
//! only proxy ever used is the one the guard names (the strict-allowlist
//! egress mode), which then resolves names itself.

mod fetch;
mod guard;
mod register;
mod resolver;
mod search;
mod text;

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use types::ToolError;
use url::Url;

pub use fetch::WebFetchTool;
pub use guard::{EgressGuard, SchemeOnlyGuard, SsrfGuard};
pub use register::{UrlPolicy, WebToolsError, register_web_tools};
pub use resolver::{GuardedResolver, HostLookup, SystemLookup};
pub use search::{SearchBackend, WebSearchTool};

/// Limits and name resolution shared by both web tools.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// Per request, redirects and body included. Default 20 s.
    pub timeout: Duration,
    /// The body read stops here (streamed, never buffered beyond). Default 2 MiB.
    pub max_response_bytes: usize,
    /// Redirect hops followed before the request fails. Default 5.
    pub max_redirects: usize,
    /// Default `oxydra/<crate version>`.
    pub user_agent: String,
    /// How host names become addresses (before the guard checks them).
    /// Default [`SystemLookup`]; tests inject a stub.
    pub lookup: Arc<dyn HostLookup>,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(20),
            max_response_bytes: 2 * 1024 * 1024,
            max_redirects: 5,
            user_agent: concat!("oxydra/", env!("CARGO_PKG_VERSION")).to_owned(),
            lookup: Arc::new(SystemLookup),
        }
    }
}

/// Extra time the registry grants beyond the HTTP timeout, so the tool's own
/// (more precise) timeout message wins over the registry's generic one.
const TIMEOUT_MARGIN: Duration = Duration::from_secs(5);

/// Parses the model's raw JSON arguments; `example` shows a valid call.
fn parse_args<T: DeserializeOwned>(tool: &str, args: &str, example: &str) -> Result<T, ToolError> {
    serde_json::from_str(args).map_err(|error| {
        ToolError::InvalidArguments(format!(
            "{tool} expects a JSON object like {example}: {error}"
        ))
    })
}

/// One client per tool: timeouts from `config`, no `Referer`, a redirect
/// policy that counts hops and asks `guard` about every one of them, a
/// resolver that lets `guard` judge every resolved address, and no proxy
/// but the one `guard` names.
fn build_client(
    tool: &'static str,
    config: &WebConfig,
    guard: Arc<dyn EgressGuard>,
) -> Result<reqwest::Client, ToolError> {
    if config.timeout.is_zero() || config.max_response_bytes == 0 {
        return Err(ToolError::Execution(format!(
            "{tool} is misconfigured: timeout and max_response_bytes must be greater than 0"
        )));
    }
    let resolver = GuardedResolver::new(Arc::clone(&guard), Arc::clone(&config.lookup));
    // The URL is not quoted: it may carry the proxy's password.
    let proxy = guard
        .proxy()
        .map(|url| reqwest::Proxy::all(url.as_str()))
        .transpose()
        .map_err(|error| {
            ToolError::Execution(format!(
                "{tool}: the egress proxy URL is not usable: {}",
                root_cause(&error)
            ))
        })?;
    let max_redirects = config.max_redirects;
    let policy = reqwest::redirect::Policy::custom(move |attempt| {
        // `previous` holds the original URL plus every hop already followed,
        // so its length is the number of the redirect being decided.
        let hop = attempt.previous().len();
        let from = attempt
            .previous()
            .last()
            .map(display_url)
            .unwrap_or_default();
        let to = display_url(attempt.url());
        if hop > max_redirects {
            return attempt.error(ToolError::Execution(format!(
                "{tool}: stopped after {max_redirects} redirects (the limit); {from} redirects on to {to}"
            )));
        }
        match guard.check_url(attempt.url()) {
            Ok(()) => attempt.follow(),
            Err(ToolError::PolicyViolation { reason }) => {
                attempt.error(ToolError::PolicyViolation {
                    reason: format!("redirect from {from} to {to} refused: {reason}"),
                })
            }
            Err(other) => attempt.error(other),
        }
    });
    let builder = reqwest::Client::builder()
        .user_agent(config.user_agent.clone())
        .timeout(config.timeout)
        .connect_timeout(config.timeout)
        .redirect(policy)
        .referer(false)
        .dns_resolver(Arc::new(resolver))
        // Clears the environment's proxies; only the guard's is added back.
        .no_proxy();
    let builder = match proxy {
        Some(proxy) => builder.proxy(proxy),
        None => builder,
    };
    builder.build().map_err(|error| {
        ToolError::Execution(format!(
            "{tool}: could not build the HTTP client: {}",
            root_cause(&error)
        ))
    })
}

/// Turns a transport failure into a message naming what was attempted and
/// why it failed. Errors our redirect policy raised (guard refusals, the hop
/// limit) travel inside reqwest's error and are returned unchanged.
fn transport_error(
    tool: &str,
    attempted: &str,
    error: &reqwest::Error,
    timeout: Duration,
) -> ToolError {
    let mut source: Option<&(dyn StdError + 'static)> = error.source();
    while let Some(inner) = source {
        if let Some(tool_error) = inner.downcast_ref::<ToolError>() {
            return tool_error.clone();
        }
        source = inner.source();
    }
    let cause = if error.is_timeout() {
        format!("timed out after {}s", timeout.as_secs_f64())
    } else if error.is_connect() {
        format!("could not connect: {}", root_cause(error))
    } else {
        root_cause(error)
    };
    ToolError::Execution(format!("{tool}: {attempted} failed: {cause}"))
}

/// The innermost error's text, e.g. `Connection refused (os error 111)`
/// rather than reqwest's generic `error sending request`.
fn root_cause(error: &(dyn StdError + 'static)) -> String {
    let mut deepest = error;
    while let Some(inner) = deepest.source() {
        deepest = inner;
    }
    deepest.to_string()
}

/// A URL as shown to the model: credentials, if any, removed.
fn display_url(url: &Url) -> String {
    let mut shown = url.clone();
    // Both fail only for URLs that cannot carry credentials in the first place.
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.to_string()
}

/// A response body read up to a byte cap.
#[derive(Debug)]
struct CappedBody {
    bytes: Vec<u8>,
    /// The server had more to send than the cap allowed.
    truncated: bool,
}

/// Reads `response` chunk by chunk and stops as soon as `max_bytes` is
/// exceeded; the rest is never read (dropping the response closes the
/// connection).
async fn read_capped(
    mut response: reqwest::Response,
    max_bytes: usize,
) -> Result<CappedBody, reqwest::Error> {
    let announced = response
        .content_length()
        .and_then(|len| usize::try_from(len).ok())
        .unwrap_or(0);
    let mut bytes = Vec::with_capacity(announced.min(max_bytes));
    while let Some(chunk) = response.chunk().await? {
        let room = max_bytes - bytes.len();
        if chunk.len() > room {
            bytes.extend_from_slice(&chunk[..room]);
            return Ok(CappedBody {
                bytes,
                truncated: true,
            });
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(CappedBody {
        bytes,
        truncated: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_url_drops_credentials() {
        let url = Url::parse("http://user:pw@example.com/x").unwrap();
        assert_eq!(display_url(&url), "http://example.com/x");
    }
}

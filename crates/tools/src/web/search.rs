//! `web_search`: a query in, a numbered list of title/URL/snippet out, from
//! an operator-configured backend (SearXNG or Brave Search).
//!
//! User text only ever reaches the backend as an encoded query pair, and the
//! backend endpoint passes the same [`EgressGuard`] as `web_fetch`. The Brave
//! API key travels in a header marked sensitive and is never printed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, HeaderValue};
use serde::Deserialize;
use types::{FunctionDecl, JsonSchema, SafetyTier, SecretString, Tool, ToolContext, ToolError};
use url::Url;

use super::text::{group_digits, normalise_snippet};
use super::{
    EgressGuard, TIMEOUT_MARGIN, WebConfig, build_client, display_url, parse_args, read_capped,
    transport_error,
};

const TOOL: &str = "web_search";
const EXAMPLE: &str = r#"{"query": "rust async cancellation", "max_results": 5}"#;
const DEFAULT_MAX_RESULTS: u64 = 5;
const MAX_RESULTS_LIMIT: u64 = 20;
/// How much of a backend's error body is quoted back.
const ERROR_EXCERPT_CHARS: usize = 200;

/// Where `web_search` sends queries.
#[derive(Debug, Clone)]
pub enum SearchBackend {
    /// SearXNG JSON API: GET {base_url}/search?q=..&format=json →
    /// {"results":[{"title","url","content"}]}
    Searxng { base_url: String },
    /// Brave Search API: GET {base_url}/res/v1/web/search?q=..&count=N with
    /// header X-Subscription-Token → {"web":{"results":[{"title","url","description"}]}};
    /// default base_url [`SearchBackend::BRAVE_BASE_URL`].
    Brave {
        base_url: String,
        api_key: SecretString,
    },
}

impl SearchBackend {
    /// The public Brave Search API.
    pub const BRAVE_BASE_URL: &str = "https://api.search.brave.com";

    /// Brave Search at its public address.
    pub fn brave(api_key: SecretString) -> Self {
        Self::Brave {
            base_url: Self::BRAVE_BASE_URL.to_owned(),
            api_key,
        }
    }
}

/// The validated form of [`SearchBackend`]: endpoint URL parsed, key in a
/// sensitive header value.
#[derive(Debug)]
enum Endpoint {
    Searxng { search_url: Url },
    Brave { search_url: Url, token: HeaderValue },
}

impl Endpoint {
    fn new(backend: SearchBackend) -> Result<Self, ToolError> {
        match backend {
            SearchBackend::Searxng { base_url } => Ok(Self::Searxng {
                search_url: endpoint_url("SearXNG", &base_url, &["search"])?,
            }),
            SearchBackend::Brave { base_url, api_key } => {
                let search_url =
                    endpoint_url("Brave Search", &base_url, &["res", "v1", "web", "search"])?;
                if api_key.is_empty() {
                    return Err(ToolError::Execution(format!(
                        "{TOOL}: the Brave Search API key is empty; configure a subscription token"
                    )));
                }
                let mut token = HeaderValue::from_str(api_key.expose().trim()).map_err(|_| {
                    ToolError::Execution(format!(
                        "{TOOL}: the Brave Search API key contains characters not allowed in an HTTP header"
                    ))
                })?;
                token.set_sensitive(true);
                Ok(Self::Brave { search_url, token })
            }
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Searxng { .. } => "SearXNG",
            Self::Brave { .. } => "Brave Search",
        }
    }

    fn search_url(&self) -> &Url {
        match self {
            Self::Searxng { search_url } | Self::Brave { search_url, .. } => search_url,
        }
    }

    /// The endpoint with the query pairs appended (encoded by `url`, never
    /// concatenated).
    fn request_url(&self, query: &str, max_results: u64) -> Url {
        let mut url = self.search_url().clone();
        let mut pairs = url.query_pairs_mut();
        pairs.append_pair("q", query);
        match self {
            // SearXNG has no result-count parameter; the list is cut locally.
            Self::Searxng { .. } => pairs.append_pair("format", "json"),
            Self::Brave { .. } => pairs.append_pair("count", &max_results.to_string()),
        };
        drop(pairs);
        url
    }

    fn parse_hits(&self, body: &[u8]) -> Result<Vec<Hit>, serde_json::Error> {
        Ok(match self {
            Self::Searxng { .. } => serde_json::from_slice::<SearxngResponse>(body)?
                .results
                .into_iter()
                .map(|r| Hit::new(r.title, r.url, r.content))
                .collect(),
            Self::Brave { .. } => serde_json::from_slice::<BraveResponse>(body)?
                .web
                .map(|web| web.results)
                .unwrap_or_default()
                .into_iter()
                .map(|r| Hit::new(r.title, r.url, r.description))
                .collect(),
        })
    }
}

/// `base_url` with `segments` appended to its path, query and fragment removed.
fn endpoint_url(backend: &str, base_url: &str, segments: &[&str]) -> Result<Url, ToolError> {
    let invalid =
        |why: String| ToolError::Execution(format!("{TOOL}: invalid {backend} base_url: {why}"));
    let mut url = Url::parse(base_url).map_err(|error| invalid(error.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "scheme {} is not http or https",
            url.scheme()
        )));
    }
    url.path_segments_mut()
        .map_err(|()| invalid("it cannot have a path".to_owned()))?
        .pop_if_empty()
        .extend(segments);
    url.set_query(None);
    url.set_fragment(None);
    Ok(url)
}

/// Searches the web through the configured backend.
#[derive(Debug)]
pub struct WebSearchTool {
    client: reqwest::Client,
    config: WebConfig,
    endpoint: Endpoint,
    guard: Arc<dyn EgressGuard>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchArgs {
    query: String,
    #[serde(default)]
    max_results: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct SearxngResponse {
    #[serde(default)]
    results: Vec<SearxngResult>,
}

#[derive(Debug, Deserialize)]
struct SearxngResult {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    content: Option<String>,
}

#[derive(Debug, Deserialize)]
struct BraveResponse {
    #[serde(default)]
    web: Option<BraveWeb>,
}

#[derive(Debug, Deserialize)]
struct BraveWeb {
    #[serde(default)]
    results: Vec<BraveResult>,
}

#[derive(Debug, Deserialize)]
struct BraveResult {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

/// One result in backend-neutral form.
#[derive(Debug)]
struct Hit {
    title: String,
    url: String,
    snippet: String,
}

impl WebSearchTool {
    pub fn new(
        config: WebConfig,
        backend: SearchBackend,
        guard: Arc<dyn EgressGuard>,
    ) -> Result<Self, ToolError> {
        let endpoint = Endpoint::new(backend)?;
        let client = build_client(TOOL, &config, Arc::clone(&guard))?;
        Ok(Self {
            client,
            config,
            endpoint,
            guard,
        })
    }

    async fn search(&self, query: &str, max_results: u64) -> Result<Vec<Hit>, ToolError> {
        let backend = self.endpoint.name();
        let url = self.endpoint.request_url(query, max_results);
        let shown = display_url(self.endpoint.search_url());
        self.guard.check_url(&url).map_err(|error| match error {
            ToolError::PolicyViolation { reason } => ToolError::PolicyViolation {
                reason: format!("the {backend} endpoint {shown} is not reachable under the egress policy: {reason}"),
            },
            other => other,
        })?;

        let mut request = self.client.get(url).header(ACCEPT, "application/json");
        if let Endpoint::Brave { token, .. } = &self.endpoint {
            request = request.header("X-Subscription-Token", token.clone());
        }
        let timeout = self.config.timeout;
        let attempted = format!("querying {backend} at {shown}");
        let fail = |error: reqwest::Error| transport_error(TOOL, &attempted, &error, timeout);
        let response = request.send().await.map_err(fail)?;
        let status = response.status();
        let body = read_capped(response, self.config.max_response_bytes)
            .await
            .map_err(fail)?;
        if !status.is_success() {
            return Err(self.status_error(status, &body.bytes));
        }
        let parse_error = |error: serde_json::Error| {
            let cut = if body.truncated {
                format!(
                    " (the response was cut at {} bytes)",
                    group_digits(self.config.max_response_bytes)
                )
            } else {
                String::new()
            };
            ToolError::Execution(format!(
                "{TOOL}: could not parse the {backend} response{cut}: {error}"
            ))
        };
        let hits = self.endpoint.parse_hits(&body.bytes).map_err(parse_error)?;
        let limit = usize::try_from(max_results).unwrap_or(usize::MAX);
        Ok(hits.into_iter().take(limit).collect())
    }

    fn status_error(&self, status: StatusCode, body: &[u8]) -> ToolError {
        let backend = self.endpoint.name();
        let message = match (&self.endpoint, status) {
            (Endpoint::Brave { .. }, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => format!(
                "{backend} rejected the API key (HTTP {status}); check the configured subscription token"
            ),
            (Endpoint::Searxng { .. }, StatusCode::FORBIDDEN) => format!(
                "{backend} returned HTTP {status}; the instance may not allow the JSON format \
                 (add `json` to search.formats in its settings.yml)"
            ),
            (_, StatusCode::TOO_MANY_REQUESTS) => {
                format!("{backend} is rate limiting requests (HTTP {status}); try again later")
            }
            _ => {
                let mut excerpt = String::from_utf8_lossy(body).into_owned();
                // Belt and braces: a backend that echoes the key must not get
                // it into the model's context through us. Masked before the
                // excerpt is cut, so no fragment of the key survives.
                if let Endpoint::Brave { token, .. } = &self.endpoint
                    && let Ok(key) = token.to_str()
                {
                    excerpt = excerpt.replace(key, SecretString::MASK);
                }
                let excerpt: String = normalise_snippet(&excerpt)
                    .chars()
                    .take(ERROR_EXCERPT_CHARS)
                    .collect();
                if excerpt.is_empty() {
                    format!("{backend} returned HTTP {status}")
                } else {
                    format!("{backend} returned HTTP {status}: {excerpt}")
                }
            }
        };
        ToolError::Execution(format!("{TOOL}: {message}"))
    }
}

impl Hit {
    fn new(title: Option<String>, url: Option<String>, snippet: Option<String>) -> Self {
        let title = normalise_snippet(title.as_deref().unwrap_or_default());
        Self {
            title: if title.is_empty() {
                "(no title)".to_owned()
            } else {
                title
            },
            url: url.unwrap_or_default().trim().to_owned(),
            snippet: normalise_snippet(snippet.as_deref().unwrap_or_default()),
        }
    }
}

/// `1. <title>\n   <url>\n   <snippet>`, entries separated by a blank line.
fn format_hits(query: &str, hits: &[Hit]) -> String {
    if hits.is_empty() {
        return format!("No results for \"{query}\".");
    }
    let entries: Vec<String> = hits
        .iter()
        .enumerate()
        .map(|(i, hit)| {
            let mut entry = format!("{}. {}", i + 1, hit.title);
            for line in [&hit.url, &hit.snippet] {
                if !line.is_empty() {
                    entry.push_str("\n   ");
                    entry.push_str(line);
                }
            }
            entry
        })
        .collect();
    entries.join("\n\n")
}

#[async_trait]
impl Tool for WebSearchTool {
    fn schema(&self) -> FunctionDecl {
        FunctionDecl {
            name: TOOL.to_owned(),
            description: format!(
                "Search the web ({}) and return a numbered list of results, each with title, URL \
                 and snippet. Read a result with web_fetch.",
                self.endpoint.name()
            ),
            parameters: JsonSchema::object(
                BTreeMap::from([
                    (
                        "query".to_owned(),
                        JsonSchema::string().with_description("What to search for."),
                    ),
                    (
                        "max_results".to_owned(),
                        JsonSchema::Integer {
                            description: Some(format!(
                                "How many results to return, 1 to {MAX_RESULTS_LIMIT} (default {DEFAULT_MAX_RESULTS})."
                            )),
                            minimum: Some(1),
                            maximum: Some(20),
                        },
                    ),
                ]),
                vec!["query".to_owned()],
            ),
        }
    }

    async fn execute(&self, args: &str, _context: &ToolContext) -> Result<String, ToolError> {
        let args: SearchArgs = parse_args(TOOL, args, EXAMPLE)?;
        let query = args.query.trim();
        if query.is_empty() {
            return Err(ToolError::InvalidArguments(
                "query must not be empty".to_owned(),
            ));
        }
        let max_results = args.max_results.unwrap_or(DEFAULT_MAX_RESULTS);
        if !(1..=MAX_RESULTS_LIMIT).contains(&max_results) {
            return Err(ToolError::InvalidArguments(format!(
                "max_results must be between 1 and {MAX_RESULTS_LIMIT}, got {max_results}"
            )));
        }
        let hits = self.search(query, max_results).await?;
        Ok(format_hits(query, &hits))
    }

    fn timeout(&self) -> Duration {
        self.config.timeout + TIMEOUT_MARGIN
    }

    fn safety_tier(&self) -> SafetyTier {
        SafetyTier::SideEffecting
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_urls_keep_base_paths() {
        let url = endpoint_url("SearXNG", "https://host/searx/", &["search"]).unwrap();
        assert_eq!(url.as_str(), "https://host/searx/search");
        let url = endpoint_url(
            "Brave",
            "https://api.search.brave.com",
            &["res", "v1", "web", "search"],
        )
        .unwrap();
        assert_eq!(
            url.as_str(),
            "https://api.search.brave.com/res/v1/web/search"
        );
        assert!(endpoint_url("SearXNG", "ftp://host", &["search"]).is_err());
        assert!(endpoint_url("SearXNG", "not a url", &["search"]).is_err());
    }

    #[test]
    fn empty_brave_key_is_refused_at_construction() {
        let err = Endpoint::new(SearchBackend::brave(SecretString::new("  "))).unwrap_err();
        assert!(err.to_string().contains("API key is empty"), "{err}");
    }

    #[test]
    fn hits_without_title_or_snippet_still_format() {
        let hits = [Hit::new(None, Some("https://a.example/".into()), None)];
        assert_eq!(
            format_hits("q", &hits),
            "1. (no title)\n   https://a.example/"
        );
    }
}

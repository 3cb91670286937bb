//! `web_fetch` and `web_search` against real local HTTP servers (axum on
//! 127.0.0.1:0). No test sends traffic to any other address: refused URLs
//! are refused before a connection is attempted.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use tools::web::{
    EgressGuard, SchemeOnlyGuard, SearchBackend, WebConfig, WebFetchTool, WebSearchTool,
};
use types::{JsonSchema, SafetyTier, SecretString, Tool, ToolContext, ToolError};
use url::Url;

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// A port with nothing listening: bind, note the port, drop the listener.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

const PAGE: &str = r#"<!DOCTYPE html>
<html><head><title>Test page</title>
<style>body { color: hotpink; }</style>
<script>var secretScript = "do not show";</script></head>
<body>
<h1>Main Title</h1>
<p>Intro with a <a href="https://docs.example/guide">guide link</a>.</p>
<h2>Details</h2>
<script>alert("inline script");</script>
<table><tr><th>Name</th><th>Value</th></tr><tr><td>alpha</td><td>42</td></tr></table>
</body></html>"#;

/// Every route of the test site, in one place.
async fn route(Path(path): Path<String>, headers: HeaderMap) -> Response {
    let typed = |content_type: &'static str, body: Body| {
        ([(header::CONTENT_TYPE, content_type)], body).into_response()
    };
    match path.as_str() {
        "page" => Html(PAGE).into_response(),
        "data.json" => typed("application/json", Body::from(r#"{"answer":42}"#)),
        "agent" => format!(
            "user agent: {}",
            headers[header::USER_AGENT].to_str().unwrap()
        )
        .into_response(),
        "hops/0" => "arrived".into_response(),
        hop if hop.starts_with("hops/") => {
            let n: u32 = hop["hops/".len()..].parse().unwrap();
            let next = format!("/hops/{}", n - 1);
            (StatusCode::FOUND, [(header::LOCATION, next)]).into_response()
        }
        "to-file" => (
            StatusCode::FOUND,
            [(header::LOCATION, "file:///etc/passwd")],
        )
            .into_response(),
        "image.png" => typed("image/png", Body::from(&b"\x89PNG\r\n\x1a\n"[..])),
        "big" => typed("text/plain", Body::from(vec![b'a'; 1024 * 1024])),
        "multibyte" => "日本語テキスト".into_response(),
        "latin1" => typed(
            "text/plain; charset=ISO-8859-1",
            Body::from(&b"caf\xE9"[..]),
        ),
        "no-type" => Response::new(Body::from("untyped text")),
        "no-type-binary" => Response::new(Body::from(vec![0xFF, 0x00, 0xFE])),
        "missing" => (StatusCode::NOT_FOUND, "no such page").into_response(),
        "broken" => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            "too late".into_response()
        }
        other => panic!("unexpected request for /{other}"),
    }
}

/// The test site and a `web_fetch` tool pointed at it.
struct Site {
    addr: SocketAddr,
    tool: WebFetchTool,
}

impl Site {
    async fn start(config: WebConfig) -> Self {
        let addr = serve(Router::new().route("/{*path}", get(route))).await;
        let tool = WebFetchTool::new(config, Arc::new(SchemeOnlyGuard)).unwrap();
        Self { addr, tool }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.addr)
    }

    async fn fetch(&self, path: &str) -> Result<String, ToolError> {
        fetch(&self.tool, &self.url(path)).await
    }
}

/// Runs `tool` with `args` serialised as the model would send them.
async fn call(tool: &impl Tool, args: serde_json::Value) -> Result<String, ToolError> {
    tool.execute(&args.to_string(), &ToolContext::new("test"))
        .await
}

async fn fetch(tool: &WebFetchTool, url: &str) -> Result<String, ToolError> {
    call(tool, json!({ "url": url })).await
}

#[track_caller]
fn assert_contains(haystack: &str, needle: &str) {
    assert!(haystack.contains(needle), "{needle:?} not in:\n{haystack}");
}

#[track_caller]
fn assert_invalid_arguments(args: &str, result: Result<String, ToolError>) {
    assert!(
        matches!(result, Err(ToolError::InvalidArguments(_))),
        "{args}: {result:?}"
    );
}

/// The text after the header block.
fn body_of(output: &str) -> &str {
    output.split_once("\n\n").unwrap().1
}

fn execution_message(result: Result<String, ToolError>) -> String {
    match result {
        Err(ToolError::Execution(message)) => message,
        other => panic!("expected an execution error, got {other:?}"),
    }
}

fn policy_reason(result: Result<String, ToolError>) -> String {
    match result {
        Err(ToolError::PolicyViolation { reason }) => reason,
        other => panic!("expected a policy violation, got {other:?}"),
    }
}

#[tokio::test]
async fn html_becomes_readable_text_without_scripts_or_styles() {
    let site = Site::start(WebConfig::default()).await;
    let out = site.fetch("page").await.unwrap();
    let header = format!("URL: {}\nStatus: 200 OK\n", site.url("page"));
    assert!(out.starts_with(&header), "{out}");
    assert_contains(&out, "Content-Type: text/html; charset=utf-8\n");
    let text = body_of(&out);
    for expected in [
        "# Main Title",
        "## Details",
        "[guide link][1]",
        "[1]: https://docs.example/guide",
        "alpha",
        "42",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    for hidden in ["secretScript", "inline script", "hotpink", "<p>", "<table"] {
        assert!(!text.contains(hidden), "{hidden:?} leaked into:\n{text}");
    }
}

#[tokio::test]
async fn json_and_plain_text_pass_through_with_the_configured_user_agent() {
    let site = Site::start(WebConfig::default()).await;
    let out = site.fetch("data.json").await.unwrap();
    assert_contains(&out, "Content-Type: application/json\n");
    assert_eq!(body_of(&out), r#"{"answer":42}"#);
    let out = site.fetch("agent").await.unwrap();
    let expected = format!("user agent: oxydra/{}", env!("CARGO_PKG_VERSION"));
    assert_eq!(body_of(&out), expected);
}

#[tokio::test]
async fn redirect_chain_reports_the_final_url() {
    let site = Site::start(WebConfig::default()).await;
    // 302 → 302 → 200.
    let out = site.fetch("hops/2").await.unwrap();
    let header = format!("URL: {}\nStatus: 200 OK\n", site.url("hops/0"));
    assert!(out.starts_with(&header), "{out}");
    assert_eq!(body_of(&out), "arrived");
    // Exactly the limit is still fine.
    assert!(site.fetch("hops/5").await.is_ok());
}

#[tokio::test]
async fn too_many_redirects_fail_clearly() {
    let site = Site::start(WebConfig::default()).await;
    let message = execution_message(site.fetch("hops/6").await);
    assert_contains(&message, "stopped after 5 redirects");
    assert_contains(&message, &site.url("hops/0"));
}

#[tokio::test]
async fn redirect_to_a_file_url_is_refused_by_the_guard() {
    let site = Site::start(WebConfig::default()).await;
    let reason = policy_reason(site.fetch("to-file").await);
    assert_contains(
        &reason,
        "to file:///etc/passwd refused: only http:// and https://",
    );
}

/// Refuses every URL on one port, standing in for the SSRF guard's blocked
/// addresses.
#[derive(Debug)]
struct RefusePort(u16);

impl EgressGuard for RefusePort {
    fn check_url(&self, url: &Url) -> Result<(), ToolError> {
        SchemeOnlyGuard.check_url(url)?;
        if url.port_or_known_default() == Some(self.0) {
            return Err(ToolError::PolicyViolation {
                reason: format!("port {} is an internal service", self.0),
            });
        }
        Ok(())
    }
}

#[tokio::test]
async fn redirect_to_a_refused_host_fails_with_the_guards_reason() {
    // Models the SSRF case: a public page redirecting to an internal service.
    let internal_hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&internal_hits);
    let internal = serve(Router::new().route(
        "/secret",
        get(move || async move {
            counter.fetch_add(1, Ordering::SeqCst);
            "internal data"
        }),
    ))
    .await;
    let target = format!("http://{internal}/secret");
    let public = serve(Router::new().route(
        "/go",
        get(move || async move { (StatusCode::FOUND, [(header::LOCATION, target)]) }),
    ))
    .await;
    let guard = Arc::new(RefusePort(internal.port()));
    let tool = WebFetchTool::new(WebConfig::default(), guard).unwrap();

    let reason = policy_reason(fetch(&tool, &format!("http://{public}/go")).await);
    let refused = format!("port {} is an internal service", internal.port());
    assert_contains(&reason, &refused);
    let hop = format!("redirect from http://{public}/go to http://{internal}/secret");
    assert_contains(&reason, &hop);

    // The first request is checked too.
    let reason = policy_reason(fetch(&tool, &format!("http://{internal}/secret")).await);
    assert_contains(&reason, &refused);
    assert_eq!(
        internal_hits.load(Ordering::SeqCst),
        0,
        "the internal server was contacted"
    );
}

#[tokio::test]
async fn scheme_only_guard_refuses_non_http_urls_and_credentials() {
    let tool = WebFetchTool::new(WebConfig::default(), Arc::new(SchemeOnlyGuard)).unwrap();
    for url in [
        "file:///etc/passwd",
        "ftp://127.0.0.1/x",
        "javascript:alert(1)",
    ] {
        let reason = policy_reason(fetch(&tool, url).await);
        assert!(
            reason.contains("only http:// and https://"),
            "{url}: {reason}"
        );
    }
    let url = format!("http://user:pw@127.0.0.1:{}/", free_port());
    let reason = policy_reason(fetch(&tool, &url).await);
    assert_contains(&reason, "credentials");
    assert!(!reason.contains("pw"), "the password was echoed: {reason}");
}

#[tokio::test]
async fn binary_content_is_refused() {
    let site = Site::start(WebConfig::default()).await;
    let message = execution_message(site.fetch("image.png").await);
    let expected = "unsupported content type image/png: web_fetch returns text only";
    assert!(message.starts_with(expected), "{message}");
    let message = execution_message(site.fetch("no-type-binary").await);
    assert_contains(&message, "no Content-Type and the body is not UTF-8 text");
}

#[tokio::test]
async fn missing_content_type_is_sniffed_and_charsets_are_decoded() {
    let site = Site::start(WebConfig::default()).await;
    let out = site.fetch("no-type").await.unwrap();
    assert_contains(&out, "Content-Type: (none; sniffed as text/plain)\n");
    assert_eq!(body_of(&out), "untyped text");
    let out = site.fetch("latin1").await.unwrap();
    assert_eq!(body_of(&out), "café");
}

#[tokio::test]
async fn error_statuses_return_the_body_or_fail_when_empty() {
    let site = Site::start(WebConfig::default()).await;
    let out = site.fetch("missing").await.unwrap();
    assert_contains(&out, "Status: 404 Not Found\n");
    assert_eq!(body_of(&out), "no such page");
    let message = execution_message(site.fetch("broken").await);
    let expected = "returned HTTP 500 Internal Server Error with an empty body";
    assert_contains(&message, expected);
}

#[tokio::test]
async fn large_bodies_stop_at_max_response_bytes() {
    let site = Site::start(WebConfig {
        max_response_bytes: 64 * 1024,
        ..WebConfig::default()
    })
    .await;
    let args = json!({ "url": site.url("big"), "max_chars": 10_000_000 });
    let out = call(&site.tool, args).await.unwrap();
    assert!(
        out.contains("only the first 65,536 bytes were read"),
        "{}",
        &out[..300]
    );
    assert_eq!(body_of(&out).len(), 64 * 1024);
}

#[tokio::test]
async fn max_chars_cuts_on_a_character_boundary() {
    let site = Site::start(WebConfig::default()).await;
    let args = json!({ "url": site.url("multibyte"), "max_chars": 3 });
    let out = call(&site.tool, args).await.unwrap();
    assert_eq!(
        body_of(&out),
        "日本語\n\n[4 more characters omitted; call web_fetch again with a larger max_chars to read further]"
    );
}

#[tokio::test]
async fn slow_servers_time_out() {
    let site = Site::start(WebConfig {
        timeout: Duration::from_millis(300),
        ..WebConfig::default()
    })
    .await;
    let started = Instant::now();
    let message = execution_message(site.fetch("slow").await);
    assert!(started.elapsed() < Duration::from_secs(10));
    let expected = format!("fetching {} failed: timed out after 0.3s", site.url("slow"));
    assert_contains(&message, &expected);
    assert_eq!(site.tool.timeout(), Duration::from_millis(5_300));
}

#[tokio::test]
async fn connection_refused_names_the_url_and_the_cause() {
    let url = format!("http://127.0.0.1:{}/x", free_port());
    let tool = WebFetchTool::new(WebConfig::default(), Arc::new(SchemeOnlyGuard)).unwrap();
    let message = execution_message(fetch(&tool, &url).await);
    assert_contains(
        &message,
        &format!("fetching {url} failed: could not connect"),
    );
    assert!(message.to_lowercase().contains("refused"), "{message}");
}

#[tokio::test]
async fn malformed_fetch_arguments_are_invalid_arguments() {
    let tool = WebFetchTool::new(WebConfig::default(), Arc::new(SchemeOnlyGuard)).unwrap();
    let cases = [
        "{}".to_owned(),
        json!({ "url": 3 }).to_string(),
        "not json".to_owned(),
        json!({ "url": "http://127.0.0.1:1/", "extra": true }).to_string(),
        json!({ "url": "http://127.0.0.1:1/", "max_chars": 0 }).to_string(),
        json!({ "url": "http://127.0.0.1:1/", "max_chars": -5 }).to_string(),
        json!({ "url": "no scheme here" }).to_string(),
    ];
    for args in cases {
        assert_invalid_arguments(&args, tool.execute(&args, &ToolContext::new("test")).await);
    }
}

#[test]
fn fetch_schema_and_tier() {
    let tool = WebFetchTool::new(WebConfig::default(), Arc::new(SchemeOnlyGuard)).unwrap();
    let schema = tool.schema();
    assert_eq!(schema.name, "web_fetch");
    assert_eq!(tool.safety_tier(), SafetyTier::SideEffecting);
    assert_eq!(tool.timeout(), Duration::from_secs(25));
    let JsonSchema::Object {
        properties,
        required,
        additional_properties,
        ..
    } = schema.parameters
    else {
        panic!("parameters must be an object");
    };
    assert_eq!(required, ["url"]);
    assert_eq!(additional_properties, Some(false));
    assert!(properties.values().all(|p| p.description().is_some()));
}

// ---- web_search ------------------------------------------------------------

/// What a fake backend saw.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    raw_query: String,
    token: Option<String>,
}

impl Seen {
    /// The decoded query pairs; also checks that user text was encoded.
    fn pairs(&self) -> Vec<(String, String)> {
        let raw = &self.raw_query;
        assert!(!raw.contains([' ', '#', '"']), "unencoded query: {raw}");
        url::form_urlencoded::parse(raw.as_bytes())
            .into_owned()
            .collect()
    }
}

#[derive(Debug)]
struct Fake {
    status: StatusCode,
    body: String,
    seen: Mutex<Vec<Seen>>,
}

async fn record(
    State(fake): State<Arc<Fake>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    fake.seen.lock().unwrap().push(Seen {
        path: uri.path().to_owned(),
        raw_query: uri.query().unwrap_or_default().to_owned(),
        token: headers
            .get("x-subscription-token")
            .map(|v| v.to_str().unwrap().to_owned()),
    });
    let content_type = [(header::CONTENT_TYPE, "application/json")];
    (fake.status, content_type, fake.body.clone()).into_response()
}

async fn fake_backend(path: &str, status: StatusCode, body: String) -> (SocketAddr, Arc<Fake>) {
    let seen = Mutex::new(Vec::new());
    let fake = Arc::new(Fake { status, body, seen });
    let router = Router::new()
        .route(path, get(record))
        .with_state(Arc::clone(&fake));
    (serve(router).await, fake)
}

const TRICKY_QUERY: &str = "rust & \"tokio\" #async ünïcödé 日本 a=b+c%20";
const BRAVE_KEY: &str = "BSA-test-key-123";

/// A `web_search` tool in front of a fake backend of the given kind.
async fn search_tool(brave: bool, status: StatusCode, body: String) -> (WebSearchTool, Arc<Fake>) {
    let path = if brave {
        "/res/v1/web/search"
    } else {
        "/searx/search"
    };
    let (addr, fake) = fake_backend(path, status, body).await;
    let backend = if brave {
        SearchBackend::Brave {
            base_url: format!("http://{addr}"),
            api_key: SecretString::new(BRAVE_KEY),
        }
    } else {
        SearchBackend::Searxng {
            base_url: format!("http://{addr}/searx/"),
        }
    };
    let guard = Arc::new(SchemeOnlyGuard);
    (
        WebSearchTool::new(WebConfig::default(), backend, guard).unwrap(),
        fake,
    )
}

fn only_request(fake: &Fake) -> Seen {
    let seen = fake.seen.lock().unwrap();
    assert_eq!(seen.len(), 1, "{seen:?}");
    seen[0].clone()
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[tokio::test]
async fn searxng_query_is_encoded_and_results_are_formatted() {
    let body = json!({ "results": [
        { "title": "The <b>Tokio</b> runtime", "url": "https://tokio.rs/", "content": "An  <b>async</b>\n runtime &amp; more" },
        { "title": "Second", "url": "https://two.example/", "content": null },
        { "title": "Third (cut by max_results)", "url": "https://three.example/", "content": "x" }
    ]});
    let (tool, fake) = search_tool(false, StatusCode::OK, body.to_string()).await;
    let args = json!({ "query": TRICKY_QUERY, "max_results": 2 });
    let out = call(&tool, args).await.unwrap();
    assert_eq!(
        out,
        "1. The Tokio runtime\n   https://tokio.rs/\n   An async runtime & more\n\n2. Second\n   https://two.example/"
    );
    let seen = only_request(&fake);
    assert_eq!(seen.path, "/searx/search");
    assert_eq!(
        seen.pairs(),
        pairs(&[("q", TRICKY_QUERY), ("format", "json")])
    );
    assert_eq!(seen.token, None);
}

#[tokio::test]
async fn brave_gets_the_token_header_and_count() {
    let body = json!({ "web": { "results": [
        { "title": "Brave result", "url": "https://brave.example/", "description": "with <strong>markup</strong>" }
    ]}});
    let (tool, fake) = search_tool(true, StatusCode::OK, body.to_string()).await;
    let out = call(&tool, json!({ "query": TRICKY_QUERY, "max_results": 3 }))
        .await
        .unwrap();
    assert_eq!(
        out,
        "1. Brave result\n   https://brave.example/\n   with markup"
    );
    let seen = only_request(&fake);
    assert_eq!(seen.path, "/res/v1/web/search");
    assert_eq!(seen.pairs(), pairs(&[("q", TRICKY_QUERY), ("count", "3")]));
    assert_eq!(seen.token.as_deref(), Some(BRAVE_KEY));
    assert!(!format!("{tool:?}").contains(BRAVE_KEY));
}

#[tokio::test]
async fn empty_results_say_so() {
    let (tool, _) = search_tool(false, StatusCode::OK, json!({ "results": [] }).to_string()).await;
    let out = call(&tool, json!({ "query": "zzqx" })).await.unwrap();
    assert_eq!(out, "No results for \"zzqx\".");
    let (tool, fake) = search_tool(
        true,
        StatusCode::OK,
        json!({ "type": "search" }).to_string(),
    )
    .await;
    let out = call(&tool, json!({ "query": "zzqx" })).await.unwrap();
    assert_eq!(out, "No results for \"zzqx\".");
    // The default result count is 5.
    assert_eq!(
        only_request(&fake).pairs(),
        pairs(&[("q", "zzqx"), ("count", "5")])
    );
}

#[tokio::test]
async fn backend_failures_name_the_backend_and_status() {
    let (tool, _) = search_tool(
        false,
        StatusCode::INTERNAL_SERVER_ERROR,
        "engine exploded".into(),
    )
    .await;
    let message = execution_message(call(&tool, json!({ "query": "q" })).await);
    assert_eq!(
        message,
        "web_search: SearXNG returned HTTP 500 Internal Server Error: engine exploded"
    );

    let (tool, _) = search_tool(false, StatusCode::OK, "<html>not json</html>".into()).await;
    let message = execution_message(call(&tool, json!({ "query": "q" })).await);
    assert!(
        message.starts_with("web_search: could not parse the SearXNG response: "),
        "{message}"
    );
}

#[tokio::test]
async fn brave_401_says_the_key_was_rejected_without_printing_it() {
    let body = json!({ "error": { "detail": format!("token {BRAVE_KEY} invalid") } });
    let (tool, _) = search_tool(true, StatusCode::UNAUTHORIZED, body.to_string()).await;
    let message = execution_message(call(&tool, json!({ "query": "q" })).await);
    assert_contains(
        &message,
        "Brave Search rejected the API key (HTTP 401 Unauthorized)",
    );
    assert!(!message.contains(BRAVE_KEY), "{message}");

    // Other failures quote the body, with the key masked.
    let (tool, _) = search_tool(true, StatusCode::BAD_GATEWAY, body.to_string()).await;
    let message = execution_message(call(&tool, json!({ "query": "q" })).await);
    assert_contains(&message, "Brave Search returned HTTP 502 Bad Gateway: ");
    assert_contains(&message, "token **** invalid");
}

#[tokio::test]
async fn refused_backend_is_never_contacted() {
    let (addr, fake) = fake_backend(
        "/search",
        StatusCode::OK,
        json!({ "results": [] }).to_string(),
    )
    .await;
    let backend = SearchBackend::Searxng {
        base_url: format!("http://{addr}"),
    };
    let tool = WebSearchTool::new(
        WebConfig::default(),
        backend,
        Arc::new(RefusePort(addr.port())),
    )
    .unwrap();
    let reason = policy_reason(call(&tool, json!({ "query": "q" })).await);
    assert_contains(&reason, "internal service");
    assert!(fake.seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn malformed_search_arguments_are_invalid_arguments() {
    let (tool, fake) =
        search_tool(false, StatusCode::OK, json!({ "results": [] }).to_string()).await;
    let cases = [
        json!({}),
        json!({ "query": "" }),
        json!({ "query": "   " }),
        json!({ "query": 7 }),
        json!({ "query": "q", "max_results": 0 }),
        json!({ "query": "q", "max_results": 21 }),
        json!({ "query": "q", "page": 2 }),
    ];
    for args in cases
        .iter()
        .map(ToString::to_string)
        .chain(["[".to_owned()])
    {
        assert_invalid_arguments(&args, tool.execute(&args, &ToolContext::new("test")).await);
    }
    assert!(fake.seen.lock().unwrap().is_empty());
    assert_eq!(tool.schema().name, "web_search");
    assert_eq!(tool.safety_tier(), SafetyTier::SideEffecting);
}

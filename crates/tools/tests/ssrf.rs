//! SSRF protection of the web tools with the real guard ([`SsrfGuard`]),
//! against local servers only: every server binds 127.0.0.1:0, and every
//! host name is answered by a stub lookup, never by real DNS. Since every
//! local server is loopback, "allowed" hosts are modelled with operator
//! exceptions, and a request that would leave the machine is impossible
//! by construction: "public" answers are only handed to the resolver
//! directly, never connected to.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use reqwest::dns::{Name, Resolve};
use sandbox::egress::EgressException;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tools::web::{
    EgressGuard, GuardedResolver, HostLookup, SearchBackend, SsrfGuard, WebConfig, WebFetchTool,
    WebSearchTool,
};
use types::protocol::bootstrap::EgressPolicy;
use types::{Tool, ToolContext, ToolError};
use url::Url;

// ---- fakes -----------------------------------------------------------------

/// Answers names from a script: each lookup takes the next answer, the last
/// one repeats. Records every name asked. Unknown names do not exist.
#[derive(Debug, Default)]
struct StubLookup {
    answers: Mutex<HashMap<String, VecDeque<Vec<IpAddr>>>>,
    asked: Mutex<Vec<String>>,
}

impl StubLookup {
    fn new(script: &[(&str, &[&[&str]])]) -> Arc<Self> {
        let answers = script
            .iter()
            .map(|(name, answers)| {
                let answers = answers
                    .iter()
                    .map(|addrs| addrs.iter().map(|a| a.parse().unwrap()).collect())
                    .collect();
                ((*name).to_owned(), answers)
            })
            .collect();
        Arc::new(Self {
            answers: Mutex::new(answers),
            asked: Mutex::default(),
        })
    }

    fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }
}

#[async_trait]
impl HostLookup for StubLookup {
    async fn lookup(&self, host: &str) -> io::Result<Vec<IpAddr>> {
        self.asked.lock().unwrap().push(host.to_owned());
        let mut answers = self.answers.lock().unwrap();
        let script = answers.get_mut(host).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("stub: no such name {host}"),
            )
        })?;
        Ok(if script.len() > 1 {
            script.pop_front().unwrap()
        } else {
            script[0].clone()
        })
    }
}

/// A local HTTP server counting its requests. `redirects` maps a path to
/// the `Location` it answers with; any other path gets a small page.
#[derive(Debug, Clone)]
struct Server {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
}

#[derive(Debug, Clone)]
struct ServerState {
    hits: Arc<AtomicUsize>,
    redirects: Arc<HashMap<String, String>>,
}

async fn answer(State(state): State<ServerState>, uri: Uri) -> Response {
    state.hits.fetch_add(1, Ordering::SeqCst);
    match state.redirects.get(uri.path()) {
        Some(location) => {
            (StatusCode::FOUND, [(header::LOCATION, location.clone())]).into_response()
        }
        None => format!("local page {}", uri.path()).into_response(),
    }
}

impl Server {
    async fn start(redirects: &[(&str, String)]) -> Self {
        let hits = Arc::new(AtomicUsize::new(0));
        let state = ServerState {
            hits: Arc::clone(&hits),
            redirects: Arc::new(
                redirects
                    .iter()
                    .map(|(path, to)| ((*path).to_owned(), to.clone()))
                    .collect(),
            ),
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = Router::new().fallback(answer).with_state(state);
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Self { addr, hits }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    fn port(&self) -> u16 {
        self.addr.port()
    }
}

/// A forward proxy that records each request line. Plain requests get a
/// page (or, for `/hop`, a redirect to an unlisted host); `CONNECT` is
/// refused with 403 after being recorded.
#[derive(Debug, Clone)]
struct FakeProxy {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
}

impl FakeProxy {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&seen);
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                tokio::spawn(Self::serve(stream, Arc::clone(&record)));
            }
        });
        Self { addr, seen }
    }

    async fn serve(stream: tokio::net::TcpStream, seen: Arc<Mutex<Vec<String>>>) {
        let mut stream = BufReader::new(stream);
        let mut request_line = String::new();
        stream.read_line(&mut request_line).await.unwrap();
        let request_line = request_line.trim_end().to_owned();
        loop {
            let mut line = String::new();
            if stream.read_line(&mut line).await.unwrap() == 0 || line == "\r\n" {
                break;
            }
        }
        seen.lock().unwrap().push(request_line.clone());
        let response = if request_line.starts_with("CONNECT ") {
            "HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned()
        } else if request_line.contains("/hop ") {
            "HTTP/1.1 302 Found\r\nlocation: http://unlisted.test/\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned()
        } else {
            let body = "via proxy";
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
        };
        stream
            .get_mut()
            .write_all(response.as_bytes())
            .await
            .unwrap();
        stream.get_mut().shutdown().await.unwrap();
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

// ---- helpers ---------------------------------------------------------------

fn config(lookup: &Arc<StubLookup>) -> WebConfig {
    WebConfig {
        timeout: Duration::from_secs(5),
        lookup: Arc::clone(lookup) as Arc<dyn HostLookup>,
        ..WebConfig::default()
    }
}

fn exceptions(entries: &[String]) -> SsrfGuard {
    let exceptions = entries
        .iter()
        .map(|e| e.parse::<EgressException>().unwrap());
    SsrfGuard::from_policy(&EgressPolicy::DefaultSafe, exceptions).unwrap()
}

fn fetch_tool(guard: SsrfGuard, lookup: &Arc<StubLookup>) -> WebFetchTool {
    WebFetchTool::new(config(lookup), Arc::new(guard)).unwrap()
}

async fn fetch(tool: &WebFetchTool, url: &str) -> Result<String, ToolError> {
    tool.execute(
        &json!({ "url": url }).to_string(),
        &ToolContext::new("test"),
    )
    .await
}

#[track_caller]
fn policy_reason(result: Result<String, ToolError>) -> String {
    match result {
        Err(ToolError::PolicyViolation { reason }) => reason,
        other => panic!("expected a policy violation, got {other:?}"),
    }
}

#[track_caller]
fn assert_contains(haystack: &str, needle: &str) {
    assert!(haystack.contains(needle), "{needle:?} not in:\n{haystack}");
}

const NEVER: &str = "the web tools never contact internal or special-purpose addresses";

// ---- default-safe mode -----------------------------------------------------

#[tokio::test]
async fn loopback_in_any_spelling_is_refused_before_connecting() {
    let server = Server::start(&[]).await;
    let lookup = StubLookup::new(&[("localhost", &[&["127.0.0.1", "::1"]])]);
    let tool = fetch_tool(SsrfGuard::default(), &lookup);
    let port = server.port();
    for url in [
        format!("http://127.0.0.1:{port}/"),
        format!("http://2130706433:{port}/"),
        format!("http://0x7f.1:{port}/"),
        format!("http://0177.0.0.1:{port}/"),
        format!("http://127.1:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
        format!("http://[::1]:{port}/"),
        format!("http://localhost:{port}/"),
    ] {
        let reason = policy_reason(fetch(&tool, &url).await);
        assert_contains(&reason, "is a loopback address");
        assert_contains(&reason, NEVER);
    }
    assert_eq!(server.hits(), 0, "the local server was contacted");
    assert_eq!(lookup.asked(), ["localhost"], "only names are resolved");
}

/// The resolver's refusal travels through hyper's and reqwest's error
/// wrapping and must come out as the guard's own policy violation.
#[tokio::test]
async fn a_refusal_at_resolution_surfaces_as_the_guards_policy_violation() {
    let server = Server::start(&[]).await;
    let lookup = StubLookup::new(&[("internal.test", &[&["127.0.0.1"]])]);
    let tool = fetch_tool(SsrfGuard::default(), &lookup);
    let result = fetch(&tool, &format!("http://internal.test:{}/x", server.port())).await;
    assert_eq!(
        result,
        Err(ToolError::PolicyViolation {
            reason: format!(
                "internal.test resolves to 127.0.0.1; 127.0.0.1 is a loopback address, and {NEVER}"
            ),
        })
    );
    assert_eq!(server.hits(), 0);
    assert_eq!(lookup.asked(), ["internal.test"]);
}

#[tokio::test]
async fn redirect_from_an_allowed_host_to_loopback_is_refused() {
    let internal = Server::start(&[]).await;
    let b = internal.port();
    let allowed = Server::start(&[
        ("/to-literal", format!("http://127.0.0.1:{b}/secret")),
        ("/to-name", format!("http://internal.test:{b}/secret")),
        ("/to-other-port", format!("http://allowed.test:{b}/secret")),
        ("/to-mapped", format!("http://[::ffff:7f00:1]:{b}/secret")),
    ])
    .await;
    let a = allowed.port();
    let lookup = StubLookup::new(&[
        ("allowed.test", &[&["127.0.0.1"]]),
        ("internal.test", &[&["127.0.0.1"]]),
    ]);
    // The operator excepted allowed.test on port A, nothing else.
    let tool = fetch_tool(exceptions(&[format!("allowed.test:{a}")]), &lookup);

    let page = fetch(&tool, &format!("http://allowed.test:{a}/ok"))
        .await
        .unwrap();
    assert_contains(&page, "local page /ok");

    let from = |path: &str| format!("redirect from http://allowed.test:{a}{path} to ");
    let reason = policy_reason(fetch(&tool, &format!("http://allowed.test:{a}/to-literal")).await);
    assert_contains(&reason, &from("/to-literal"));
    assert_contains(&reason, "127.0.0.1 is a loopback address");

    let reason = policy_reason(fetch(&tool, &format!("http://allowed.test:{a}/to-mapped")).await);
    assert_contains(&reason, &from("/to-mapped"));
    assert_contains(
        &reason,
        "IPv4-mapped IPv6 form of 127.0.0.1, which is a loopback address",
    );

    // A name is allowed by the redirect policy and refused at resolution.
    let reason = policy_reason(fetch(&tool, &format!("http://allowed.test:{a}/to-name")).await);
    assert_contains(&reason, "internal.test resolves to 127.0.0.1");

    // The exception is for port A only.
    let reason =
        policy_reason(fetch(&tool, &format!("http://allowed.test:{a}/to-other-port")).await);
    assert_contains(
        &reason,
        &format!(
            "allowed.test is an operator exception for port {a} only, so port {b} may not be contacted"
        ),
    );

    assert_eq!(allowed.hits(), 5);
    assert_eq!(internal.hits(), 0, "the internal server was contacted");
}

/// DNS rebinding: `rebind.test` answers an allowed address first and
/// 127.0.0.1 next. The allowed address is 127.0.0.2 under an operator
/// exception (standing in for a public address, with nothing listening),
/// so no test traffic can leave the machine.
#[tokio::test]
async fn dns_rebinding_never_reaches_the_local_server() {
    let server = Server::start(&[]).await;
    let lookup = StubLookup::new(&[("rebind.test", &[&["127.0.0.2"], &["127.0.0.1"]])]);
    let tool = fetch_tool(exceptions(&["127.0.0.2".to_owned()]), &lookup);
    let url = format!("http://rebind.test:{}/", server.port());

    // First request: the checked answer is the only place it connects to.
    match fetch(&tool, &url).await {
        Err(ToolError::Execution(message)) => {
            assert_contains(&message, "could not connect");
            assert_contains(&message.to_lowercase(), "refused");
        }
        other => panic!("expected a refused connection to 127.0.0.2, got {other:?}"),
    }
    // Second request: the rebound answer is checked as well.
    let reason = policy_reason(fetch(&tool, &url).await);
    assert_contains(&reason, "rebind.test resolves to 127.0.0.1");

    assert_eq!(server.hits(), 0, "the rebound address was connected to");
    // One lookup per connection attempt: none between check and connect.
    assert_eq!(lookup.asked(), ["rebind.test", "rebind.test"]);
}

/// The same at the resolver itself, with a real public address: what the
/// resolver returns is exactly what was checked, and each resolution is
/// one lookup. Nothing connects here.
#[tokio::test]
async fn the_resolver_returns_exactly_the_addresses_it_checked() {
    let lookup = StubLookup::new(&[
        (
            "rebind.test",
            &[&["93.184.215.14", "93.184.215.14"], &["127.0.0.1"]],
        ),
        ("mixed.test", &[&["93.184.215.14", "10.0.0.1"]]),
        ("v6.test", &[&["2606:4700::1111", "::ffff:192.168.0.1"]]),
    ]);
    let resolver = GuardedResolver::new(Arc::new(SsrfGuard::default()), lookup.clone());
    let resolve = |name: &str| resolver.resolve(name.parse::<Name>().unwrap());

    let first: Vec<SocketAddr> = resolve("rebind.test").await.unwrap().collect();
    assert_eq!(first, ["93.184.215.14:0".parse::<SocketAddr>().unwrap()]);
    let refusal =
        |error: Box<dyn std::error::Error + Send + Sync>| match error.downcast_ref::<ToolError>() {
            Some(ToolError::PolicyViolation { reason }) => reason.clone(),
            _ => panic!("expected a policy violation, got {error:?}"),
        };
    let reason = refusal(resolve("rebind.test").await.err().unwrap());
    assert_contains(&reason, "rebind.test resolves to 127.0.0.1");

    // One blocked address refuses the name, whatever else it has.
    let reason = refusal(resolve("mixed.test").await.err().unwrap());
    assert_contains(
        &reason,
        "mixed.test resolves to 93.184.215.14, 10.0.0.1; 10.0.0.1 is a private-network address",
    );
    let reason = refusal(resolve("v6.test").await.err().unwrap());
    assert_contains(&reason, "192.168.0.1, which is a private-network address");
    assert_eq!(lookup.asked().len(), 4);
}

/// End to end: a name with one allowed and one blocked address is refused
/// before any connection (the allowed one is 127.0.0.2 under an exception,
/// so a regression could only reach loopback, and would be counted).
#[tokio::test]
async fn a_name_with_any_blocked_address_is_refused() {
    let server = Server::start(&[]).await;
    let lookup = StubLookup::new(&[("mixed.test", &[&["127.0.0.2", "127.0.0.1"]])]);
    let tool = fetch_tool(exceptions(&["127.0.0.2/32".to_owned()]), &lookup);
    let reason =
        policy_reason(fetch(&tool, &format!("http://mixed.test:{}/", server.port())).await);
    assert_contains(
        &reason,
        "mixed.test resolves to 127.0.0.2, 127.0.0.1; 127.0.0.1 is a loopback address",
    );
    assert_eq!(server.hits(), 0);
}

#[tokio::test]
async fn a_self_hosted_search_backend_needs_an_exception() {
    let server = Server::start(&[]).await;
    let base_url = format!("http://127.0.0.1:{}/searx/", server.port());
    let lookup = StubLookup::new(&[]);
    let backend = SearchBackend::Searxng {
        base_url: base_url.clone(),
    };
    let refused = WebSearchTool::new(
        config(&lookup),
        backend.clone(),
        Arc::new(SsrfGuard::default()),
    )
    .unwrap();
    let reason = policy_reason(
        refused
            .execute(r#"{"query": "q"}"#, &ToolContext::new("test"))
            .await,
    );
    assert_contains(&reason, "SearXNG endpoint");
    assert_contains(&reason, "127.0.0.1 is a loopback address");
    assert_eq!(server.hits(), 0);

    let exception = EgressException::for_url(&Url::parse(&base_url).unwrap()).unwrap();
    let guard = SsrfGuard::from_policy(&EgressPolicy::DefaultSafe, [exception]).unwrap();
    let tool = WebSearchTool::new(config(&lookup), backend, Arc::new(guard)).unwrap();
    // The fake answers with a page, not JSON: reaching it is the point.
    let result = tool
        .execute(r#"{"query": "q"}"#, &ToolContext::new("test"))
        .await;
    assert!(
        matches!(&result, Err(ToolError::Execution(m)) if m.contains("could not parse the SearXNG response")),
        "{result:?}"
    );
    assert_eq!(server.hits(), 1);
}

// ---- strict allowlist mode -------------------------------------------------

fn strict_guard(proxy_url: String) -> SsrfGuard {
    let policy = EgressPolicy::StrictAllowlistProxy {
        allowed_domains: vec!["listed.test".to_owned()],
        proxy_url,
    };
    SsrfGuard::from_policy(&policy, []).unwrap()
}

#[tokio::test]
async fn strict_mode_sends_listed_domains_through_the_proxy_only() {
    let proxy = FakeProxy::start().await;
    let lookup = StubLookup::new(&[]);
    let guard = strict_guard(format!("http://{}", proxy.addr));
    assert_eq!(
        guard.proxy().map(Url::as_str),
        Some(format!("http://{}/", proxy.addr).as_str())
    );
    let tool = fetch_tool(guard, &lookup);

    let page = fetch(&tool, "http://api.listed.test/page").await.unwrap();
    assert_contains(&page, "via proxy");
    // https goes through a CONNECT tunnel, which this proxy refuses.
    assert!(fetch(&tool, "https://listed.test/").await.is_err());
    assert_eq!(
        proxy.seen(),
        [
            "GET http://api.listed.test/page HTTP/1.1",
            "CONNECT listed.test:443 HTTP/1.1"
        ]
    );

    for refused in [
        "http://unlisted.test/",
        "http://notlisted.test/",
        "http://listed.test.evil.example/",
        &format!("http://{}/", proxy.addr),
    ] {
        let reason = policy_reason(fetch(&tool, refused).await);
        assert_contains(&reason, "is not on the egress allowlist; only listed.test");
    }
    // A listed host redirecting to an unlisted one: refused at the hop.
    let reason = policy_reason(fetch(&tool, "http://listed.test/hop").await);
    assert_contains(
        &reason,
        "redirect from http://listed.test/hop to http://unlisted.test/ refused",
    );
    assert_eq!(proxy.seen().len(), 3);
    // Names are resolved by the proxy, never here.
    assert!(lookup.asked().is_empty(), "{:?}", lookup.asked());
}

/// The proxy itself may be named, and internal: its name is the one name
/// strict mode resolves locally.
#[tokio::test]
async fn strict_mode_resolves_only_the_proxys_name() {
    let proxy = FakeProxy::start().await;
    let lookup = StubLookup::new(&[("proxy.test", &[&["127.0.0.1"]])]);
    let tool = fetch_tool(
        strict_guard(format!("http://proxy.test:{}", proxy.addr.port())),
        &lookup,
    );
    let page = fetch(&tool, "http://listed.test/").await.unwrap();
    assert_contains(&page, "via proxy");
    assert_eq!(proxy.seen(), ["GET http://listed.test/ HTTP/1.1"]);
    assert_eq!(lookup.asked(), ["proxy.test"]);
}

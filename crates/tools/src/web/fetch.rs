//! `web_fetch`: one URL in, readable text out.
//!
//! Decisions the model relies on:
//! - **Status.** Any status with a body returns that body, with the status in
//!   the header (an API's 404 text is useful); a non-2xx status with an empty
//!   body is an error, since there is nothing to read.
//! - **Content types.** Text-like types only, refused from the header before
//!   the body is read. A response without `Content-Type` is sniffed: valid
//!   UTF-8 without NUL bytes is text (HTML if it starts like HTML).
//! - **Charset.** UTF-8 by default (invalid bytes become U+FFFD); the
//!   `windows-1252` family (which includes `iso-8859-1` and `us-ascii`, as
//!   browsers treat them) is decoded exactly; any other declared charset is
//!   decoded as UTF-8 with a note. `<meta charset>` is not consulted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue, LOCATION};
use serde::Deserialize;
use types::{FunctionDecl, JsonSchema, SafetyTier, Tool, ToolContext, ToolError};
use url::Url;

use super::text::{cut_chars, decode, group_digits};
use super::{
    CappedBody, EgressGuard, TIMEOUT_MARGIN, WebConfig, build_client, display_url, parse_args,
    read_capped, transport_error,
};

const TOOL: &str = "web_fetch";
const EXAMPLE: &str = r#"{"url": "https://example.com/page", "max_chars": 5000}"#;
/// Sized so header plus text stay under the registry's default 16 KiB
/// output cap for mostly-ASCII pages; the model can ask for more.
const DEFAULT_MAX_CHARS: usize = 12_000;
/// Wrap width for converted HTML.
const HTML_WIDTH: usize = 100;
const ACCEPT_VALUE: &str = "text/html,application/xhtml+xml,application/json;q=0.9,text/*;q=0.8,application/xml;q=0.8,*/*;q=0.1";

/// Fetches one http(s) URL and returns it as text (HTML converted).
#[derive(Debug)]
pub struct WebFetchTool {
    client: reqwest::Client,
    config: WebConfig,
    guard: Arc<dyn EgressGuard>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FetchArgs {
    url: String,
    #[serde(default)]
    max_chars: Option<usize>,
}

/// How a body is turned into text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyKind {
    Html,
    /// Passed through as is (plain text, JSON, XML, JavaScript…).
    Text,
}

/// The parts of a `Content-Type` header we use.
#[derive(Debug, PartialEq, Eq)]
struct ContentType {
    /// Lower-cased `type/subtype` without parameters.
    essence: String,
    charset: Option<String>,
}

impl ContentType {
    fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let raw = headers.get(CONTENT_TYPE)?;
        // A header with non-ASCII bytes is kept but will not classify as text.
        let raw = raw.to_str().unwrap_or("invalid/non-ascii");
        Some(Self::parse(raw))
    }

    fn parse(raw: &str) -> Self {
        let mut parts = raw.split(';');
        let essence = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let charset = parts.find_map(|param| {
            let (name, value) = param.split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("charset")
                .then(|| value.trim().trim_matches('"').to_ascii_lowercase())
        });
        Self { essence, charset }
    }

    fn kind(&self) -> Option<BodyKind> {
        let essence = self.essence.as_str();
        match essence {
            "text/html" | "application/xhtml+xml" => Some(BodyKind::Html),
            "application/json"
            | "application/xml"
            | "application/rss+xml"
            | "application/atom+xml"
            | "application/javascript" => Some(BodyKind::Text),
            _ if essence.starts_with("text/")
                || essence.ends_with("+json")
                || essence.ends_with("+xml") =>
            {
                Some(BodyKind::Text)
            }
            _ => None,
        }
    }
}

impl WebFetchTool {
    pub fn new(config: WebConfig, guard: Arc<dyn EgressGuard>) -> Result<Self, ToolError> {
        let client = build_client(TOOL, &config, Arc::clone(&guard))?;
        Ok(Self {
            client,
            config,
            guard,
        })
    }

    async fn fetch(&self, url: Url, max_chars: usize) -> Result<String, ToolError> {
        let shown = display_url(&url);
        let timeout = self.config.timeout;
        let fail = |error: reqwest::Error| {
            transport_error(TOOL, &format!("fetching {shown}"), &error, timeout)
        };
        let response = self
            .client
            .get(url)
            .header(ACCEPT, ACCEPT_VALUE)
            .send()
            .await
            .map_err(fail)?;
        let final_url = display_url(response.url());
        let status = response.status();
        if status.is_redirection()
            && let Some(location) = response.headers().get(LOCATION)
        {
            return Err(self.unfollowed_redirect(response.url(), location));
        }
        let content_type = ContentType::from_headers(response.headers());
        let declared_kind = match &content_type {
            Some(content_type) => Some(content_type.kind().ok_or_else(|| {
                ToolError::Execution(format!(
                    "unsupported content type {}: web_fetch returns text only (URL: {final_url}, HTTP {status})",
                    content_type.essence
                ))
            })?),
            None => None,
        };
        let CappedBody { bytes, truncated } = read_capped(response, self.config.max_response_bytes)
            .await
            .map_err(fail)?;
        if bytes.is_empty() && !status.is_success() {
            return Err(ToolError::Execution(format!(
                "{TOOL}: {final_url} returned HTTP {status} with an empty body"
            )));
        }
        let kind = match declared_kind {
            Some(kind) => kind,
            None => sniff(&bytes).ok_or_else(|| {
                ToolError::Execution(format!(
                    "{TOOL}: {final_url} sent no Content-Type and the body is not UTF-8 text; web_fetch returns text only"
                ))
            })?,
        };
        let charset = content_type.as_ref().and_then(|ct| ct.charset.as_deref());
        let (decoded, charset_note) = decode(&bytes, charset);
        let text = match kind {
            BodyKind::Text => decoded,
            BodyKind::Html => html_to_text(decoded, &final_url).await?,
        };
        let page = Page {
            final_url,
            status,
            content_type,
            kind,
            charset_note,
            cut_at_bytes: truncated.then_some(self.config.max_response_bytes),
            text,
        };
        Ok(page.render(max_chars))
    }

    /// The redirect policy never saw this hop: the HTTP stack only hands it
    /// http(s) targets. The guard still gets the final word, so a redirect
    /// to `file:` reads like every other refused hop.
    fn unfollowed_redirect(&self, from: &Url, location: &HeaderValue) -> ToolError {
        let from_shown = display_url(from);
        let target = location.to_str().ok().and_then(|loc| from.join(loc).ok());
        let Some(target) = target else {
            return ToolError::Execution(format!(
                "{TOOL}: {from_shown} redirects to an invalid Location; the redirect was not followed"
            ));
        };
        let to = display_url(&target);
        match self.guard.check_url(&target) {
            Err(ToolError::PolicyViolation { reason }) => ToolError::PolicyViolation {
                reason: format!("redirect from {from_shown} to {to} refused: {reason}"),
            },
            Err(other) => other,
            Ok(()) => ToolError::Execution(format!(
                "{TOOL}: {from_shown} redirects to {to}, which was not followed"
            )),
        }
    }
}

/// A fetched and converted response, ready to be shown to the model.
#[derive(Debug)]
struct Page {
    final_url: String,
    status: StatusCode,
    content_type: Option<ContentType>,
    kind: BodyKind,
    charset_note: Option<String>,
    /// Set when the body was cut at `max_response_bytes`.
    cut_at_bytes: Option<usize>,
    text: String,
}

impl Page {
    /// A short header (URL, status, content type, notes), a blank line, then
    /// at most `max_chars` characters of text.
    fn render(&self, max_chars: usize) -> String {
        let mut out = format!(
            "URL: {}\nStatus: {}\n",
            self.final_url,
            status_line(self.status)
        );
        match &self.content_type {
            Some(ContentType {
                essence,
                charset: Some(charset),
            }) => out.push_str(&format!("Content-Type: {essence}; charset={charset}\n")),
            Some(ContentType {
                essence,
                charset: None,
            }) => out.push_str(&format!("Content-Type: {essence}\n")),
            None => out.push_str(&format!(
                "Content-Type: (none; sniffed as {})\n",
                match self.kind {
                    BodyKind::Html => "text/html",
                    BodyKind::Text => "text/plain",
                }
            )),
        }
        if let Some(note) = &self.charset_note {
            out.push_str(&format!("Note: {note}\n"));
        }
        if let Some(limit) = self.cut_at_bytes {
            let limit = group_digits(limit);
            out.push_str(&format!(
                "Note: the response exceeded the {limit}-byte limit; only the first {limit} bytes were read.\n"
            ));
        }
        out.push('\n');
        if self.text.trim().is_empty() {
            out.push_str("(the page has no readable text)");
            return out;
        }
        let (kept, omitted) = cut_chars(&self.text, max_chars);
        out.push_str(kept);
        if omitted > 0 {
            out.push_str(&format!(
                "\n\n[{} more characters omitted; call web_fetch again with a larger max_chars to read further]",
                group_digits(omitted)
            ));
        }
        out
    }
}

#[async_trait]
impl Tool for WebFetchTool {
    fn schema(&self) -> FunctionDecl {
        FunctionDecl {
            name: TOOL.to_owned(),
            description: "Fetch one web page or other text resource over http(s) and return it as \
                readable text. HTML is converted to Markdown-like text (scripts and styles dropped, \
                links listed as numbered references); JSON, XML and plain text come back as they \
                are. Binary content such as images or PDFs is refused. The result starts with the \
                final URL after redirects, the HTTP status and the content type."
                .to_owned(),
            parameters: JsonSchema::object(
                BTreeMap::from([
                    (
                        "url".to_owned(),
                        JsonSchema::string()
                            .with_description("Absolute http:// or https:// URL to fetch."),
                    ),
                    (
                        "max_chars".to_owned(),
                        JsonSchema::Integer {
                            description: Some(format!(
                                "Maximum number of characters of text to return (default {DEFAULT_MAX_CHARS})."
                            )),
                            minimum: Some(1),
                            maximum: None,
                        },
                    ),
                ]),
                vec!["url".to_owned()],
            ),
        }
    }

    async fn execute(&self, args: &str, _context: &ToolContext) -> Result<String, ToolError> {
        let args: FetchArgs = parse_args(TOOL, args, EXAMPLE)?;
        let max_chars = match args.max_chars {
            None => DEFAULT_MAX_CHARS,
            Some(0) => {
                return Err(ToolError::InvalidArguments(
                    "max_chars must be at least 1".to_owned(),
                ));
            }
            Some(n) => n,
        };
        // The raw input is not echoed: it may carry credentials.
        let url = Url::parse(args.url.trim()).map_err(|error| {
            ToolError::InvalidArguments(format!(
                "url is not a valid absolute URL ({error}); pass a full http:// or https:// URL"
            ))
        })?;
        self.guard.check_url(&url)?;
        self.fetch(url, max_chars).await
    }

    fn timeout(&self) -> Duration {
        self.config.timeout + TIMEOUT_MARGIN
    }

    fn safety_tier(&self) -> SafetyTier {
        SafetyTier::SideEffecting
    }
}

fn status_line(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

/// Classifies a body that came without `Content-Type`. A body cut at the
/// byte cap may end inside a character; that still counts as UTF-8.
fn sniff(bytes: &[u8]) -> Option<BodyKind> {
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(error) if error.error_len().is_none() => {
            // `valid_up_to` marks a char boundary by definition.
            std::str::from_utf8(&bytes[..error.valid_up_to()]).ok()?
        }
        Err(_) => return None,
    };
    if text.contains('\0') {
        return None;
    }
    let head: String = text.trim_start().chars().take(14).collect();
    let head = head.to_ascii_lowercase();
    if head.starts_with("<!doctype html") || head.starts_with("<html") {
        Some(BodyKind::Html)
    } else {
        Some(BodyKind::Text)
    }
}

/// Converts HTML on the blocking pool: a 2 MiB page takes a while, and a
/// panic inside the converter becomes an error instead of taking the
/// worker thread down.
async fn html_to_text(html: String, url: &str) -> Result<String, ToolError> {
    let converted = tokio::task::spawn_blocking(move || {
        html2text::config::plain()
            .allow_width_overflow()
            .string_from_read(html.as_bytes(), HTML_WIDTH)
    })
    .await;
    match converted {
        // Table cells are padded to their column width; the padding at line
        // ends only costs the model tokens.
        Ok(Ok(text)) => Ok(text
            .lines()
            .map(str::trim_end)
            .collect::<Vec<_>>()
            .join("\n")),
        Ok(Err(error)) => Err(ToolError::Execution(format!(
            "{TOOL}: could not convert the HTML of {url} to text: {error}"
        ))),
        Err(error) => Err(ToolError::Execution(format!(
            "{TOOL}: converting the HTML of {url} to text failed: {error}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type_parsing_and_classification() {
        let check = |raw: &str, kind: Option<BodyKind>, charset: Option<&str>| {
            let parsed = ContentType::parse(raw);
            assert_eq!(parsed.kind(), kind, "{raw}");
            assert_eq!(parsed.charset.as_deref(), charset, "{raw}");
        };
        check(
            "text/html; charset=UTF-8",
            Some(BodyKind::Html),
            Some("utf-8"),
        );
        check("Application/XHTML+XML", Some(BodyKind::Html), None);
        check(
            "text/plain;charset=\"ISO-8859-1\"",
            Some(BodyKind::Text),
            Some("iso-8859-1"),
        );
        check("application/json", Some(BodyKind::Text), None);
        check("application/problem+json", Some(BodyKind::Text), None);
        check("application/rss+xml", Some(BodyKind::Text), None);
        check("text/csv", Some(BodyKind::Text), None);
        check("image/png", None, None);
        check("application/pdf", None, None);
        check("application/octet-stream", None, None);
    }

    #[test]
    fn sniffing_accepts_utf8_text_and_refuses_binary() {
        assert_eq!(sniff(b"hello"), Some(BodyKind::Text));
        assert_eq!(sniff(b"  <!DOCTYPE html><p>x"), Some(BodyKind::Html));
        assert_eq!(sniff(b"<HTML><body>"), Some(BodyKind::Html));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n"), None);
        assert_eq!(sniff(b"a\0b"), None);
        // Cut inside "é" (0xC3 0xA9) by the byte cap.
        assert_eq!(sniff(b"caf\xC3"), Some(BodyKind::Text));
    }

    #[test]
    fn status_line_includes_reason_when_known() {
        assert_eq!(status_line(StatusCode::NOT_FOUND), "404 Not Found");
        assert_eq!(status_line(StatusCode::from_u16(599).unwrap()), "599");
    }
}

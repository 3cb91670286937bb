//! Credential scrubbing: applied to every tool output before it reaches the
//! model or memory, and to anything logged.
//!
//! A [`Scrubber`] applies four rules in order. Replacements (`[REDACTED]`,
//! `[REDACTED:high-entropy]`) match no later rule — brackets split entropy
//! candidates and a marker is a placeholder to rule 3 — so earlier
//! redactions survive and scrubbing is idempotent.
//!
//! 1. **Configured secrets**, verbatim; values under 8 characters are
//!    ignored so they cannot blank out common words.
//! 2. **Token shapes**: PEM private key blocks (BEGIN through END, or to the
//!    end of truncated output), `sk-…` (OpenAI, Anthropic), `gh[pousr]_…`,
//!    `github_pat_…`, Slack `xox?-…`, AWS `AKIA`/`ASIA` ids, Google `AIza…`,
//!    Stripe `sk_`/`rk_` + `live_`/`test_`, JWTs. A [`RegexSet`] finds in
//!    one pass which patterns of rules 2 and 3 can match at all.
//! 3. **Labelled values**, label kept: after a label *ending* in `api_key`,
//!    `secret`, `password`/`passwd`/`pwd`, `passphrase`, `token`,
//!    `credential(s)` or `private_key` (plus `_key`/`_access_key`:
//!    `SECRET_KEY`, `SecretAccessKey`) directly followed by `=` or `:`
//!    (`k=v`, `k: v`, `"k": "v"`, env files), or by a space after `--flag`;
//!    `Authorization:` values; `scheme://user:PASS@host`. So `max_tokens: 1`
//!    and prose ("the token is in the vault") never match. Kept as not
//!    secret: values under 4 characters or without letters and digits;
//!    placeholders (`<…>`, `{…}`, `${…}`, `$VAR`, `$(…)`, `%VAR%`, `%s`,
//!    `xxx`, `your_…`, `null`, `none`, `true`, …, a keyword itself as in
//!    `user:password@`, and `changeme`, which asks for a value rather than
//!    hiding one); env-var names (`OPENAI_API_KEY`: upper case with `_`, or
//!    letters only); paths; and, if unquoted, code:
//!    letter-only identifiers (`password: String`, `api_key=api_key`),
//!    member paths, calls, indexing, generics, numeric types, values opening
//!    with an operator or bracket. A kept value is searched again.
//! 4. **High entropy**: runs of `[A-Za-z0-9+/=_.-]` (split after a non-padding
//!    `=`, so `NAME=` survives, and at each `/` in paths and URLs, i.e. runs
//!    with a `/` and a `.`), 24–512 long, with upper and lower case and
//!    digits, Shannon entropy ≥ 3.8 bits/char, a mean word-fragment length
//!    under 3 (`mean_fragment_len`) and not three or more separated words
//!    or numbers (`is_structured`). Exempt: hex (hashes, UUIDs),
//!    `data:…;base64,` payloads, `sha512-…` style integrity strings, Go
//!    `h1:` sums, SSH public keys, certificate and public-key PEM blocks.
//!
//! Trade-offs:
//! - Entropy cannot tell `getHttpClientForRegion2Async` (4.0 bits/char) from
//!   a key; fragment length can. It misses about 1.5% of random 24-character
//!   alphanumeric or base64 strings, 0.3% at 32 and ~0 at 64+.
//! - Random-looking public data is redacted: URL segments of reset links,
//!   webhooks and document ids, opaque ids (Stripe `ch_…`, base58 hashes),
//!   base64 test vectors, and dense generated identifiers
//!   (`D3DKMTSetVidPnSourceOwner1`). A dot-less path is judged whole.
//! - Missed: word-like unlabelled secrets (`Summer2024!`), unquoted
//!   letter-only labelled values (read as identifiers), and what follows
//!   `,`, `;` or `&` in a value (they end query and connection strings).
//! - Redacted although maybe public: labelled numbers of 4+ digits
//!   (`"token": 50256`) and labelled URLs (a webhook URL is a credential).

use std::borrow::Cow;
use std::fmt;
use std::ops::{Range, RangeInclusive};
use std::sync::LazyLock;

use regex::{Captures, Regex, RegexSet};
use types::SecretString;

/// Replaces a configured secret, a known token shape or a labelled value.
pub const REDACTED: &str = "[REDACTED]";
/// Replaces an unlabelled string that looks random.
pub const REDACTED_HIGH_ENTROPY: &str = "[REDACTED:high-entropy]";

const MIN_CONFIGURED_SECRET_CHARS: usize = 8;
const MIN_LABELLED_VALUE_LEN: usize = 4;
const ENTROPY_CANDIDATE_LEN: RangeInclusive<usize> = 24..=512;
const MIN_ENTROPY_BITS_PER_CHAR: f64 = 3.8;
/// Random strings break into fragments of about two characters; identifiers,
/// paths and versions into words of three or more.
const MAX_RANDOM_MEAN_FRAGMENT_LEN: f64 = 3.0;
const INTEGRITY_PREFIXES: [&str; 4] = ["sha1-", "sha256-", "sha384-", "sha512-"];
const SSH_KEY_TYPE_PREFIXES: [&str; 4] = ["ssh-", "ecdsa-sha2-", "sk-ssh-", "sk-ecdsa-"];
/// Space-separated, compared case-insensitively. The keywords themselves name
/// a field rather than fill it (`Password = "password"`, `user:password@`).
const PLACEHOLDER_WORDS: &str = "null nil none undefined true false changeme change_me change-me \
    password passwd secret token api_key apikey credential credentials private_key passphrase";
const NUMERIC_TYPES: &str = "u8 u16 u32 u64 u128 usize i8 i16 i32 i64 i128 isize f32 f64";

/// Rule 2.
const TOKEN_SHAPES: [&str; 8] = [
    r"(?s)-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----(?:.*?-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|.*)",
    r"(?-u:\b)sk-[A-Za-z0-9][A-Za-z0-9_\-]{19,}",
    r"(?-u:\b)(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})",
    r"(?-u:\b)xox[abeoprs]-[A-Za-z0-9\-]{10,}",
    r"(?-u:\b)(?:AKIA|ASIA)[A-Z0-9]{16}(?-u:\b)",
    r"(?-u:\b)AIza[A-Za-z0-9_\-]{35}",
    r"(?-u:\b)(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}",
    r"(?-u:\b)eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*",
];

/// Rule 3: what a label ends with.
const KEYWORD: &str = r"(?:api[_-]?key|secret|passw(?:or)?d|pwd|passphrase|token|credentials?|private[_-]?key)(?:[_-]?(?:access[_-]?)?key)?";
/// A labelled value: double-quoted (also `\"…` inside JSON strings),
/// single-quoted or bare. No closing quote is required, so a value cut off
/// by truncation is still found.
const VALUE: &str =
    r#"(?:\\?"(?P<dq>(?:[^"\\\r\n]|\\[^"\r\n])*)|'(?P<sq>[^'\r\n]*)|(?P<bare>[^\s"'`,;&]+))"#;
const URL_USERINFO: &str = r"(?-u:\b)[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@]*:(?P<lit>[^\s/@]+)@";
const AUTHORIZATION: &str = r#"(?i)(?-u:\b)(?:proxy-)?authorization(?:\\?["'])?[ \t]*[:=][ \t]*(?:\\?["'`])?(?:(?:bearer|basic|token|bot)[ \t]+(?P<lit>[^\s"'`,;\\]+)|(?P<bare>[^\s"'`,;\\]+))"#;
/// Rule 4 leaves the bodies of these blocks alone: they are public.
const PUBLIC_PEM: &str = r"(?s)-----BEGIN (?:CERTIFICATE|CERTIFICATE REQUEST|X509 CRL|[A-Z0-9 ]*PUBLIC KEY|PGP PUBLIC KEY BLOCK|PGP SIGNATURE)-----.*?-----END [A-Z0-9 ]+-----";

/// How a labelled value was written; only unquoted values may be code.
#[derive(Debug, Clone, Copy)]
enum ValueSyntax {
    Literal,
    Bare,
}

const VALUE_GROUPS: [(&str, ValueSyntax); 4] = [
    ("dq", ValueSyntax::Literal),
    ("sq", ValueSyntax::Literal),
    ("lit", ValueSyntax::Literal),
    ("bare", ValueSyntax::Bare),
];

/// Picks the byte range to redact from one match, or `None` to keep it.
type Target = fn(&Captures<'_>) -> Option<Range<usize>>;

static RULES: LazyLock<Rules> = LazyLock::new(Rules::compile);

/// The compiled patterns, shared by every [`Scrubber`].
struct Rules {
    /// The patterns of `redactions`, for the quick check.
    any: RegexSet,
    /// Rules 2 and 3, in order.
    redactions: Vec<(Regex, Target)>,
    public_pem: Regex,
}

impl Rules {
    fn compile() -> Self {
        let key_value = format!(
            r#"(?i)[A-Za-z0-9_.\-]*?{KEYWORD}(?:\\?["'])?(?:[ \t]*=|:)[ \t]*(?:Some\(|(?:bearer|basic)[ \t]+)?{VALUE}"#
        );
        let cli_flag = format!(r"(?i)--[A-Za-z0-9_\-]*?{KEYWORD}[ \t]+{VALUE}");
        let whole: Target = |caps| caps.get(0).map(|m| m.range());
        let labelled: Target = labelled_value;
        let patterns: Vec<(&str, Target)> = (TOKEN_SHAPES.iter().map(|p| (*p, whole)))
            .chain([URL_USERINFO, AUTHORIZATION, &key_value, &cli_flag].map(|p| (p, labelled)))
            .collect();
        // Every pattern is a constant, compiled by each test of this module.
        let compile = |pattern: &str| Regex::new(pattern).expect("constant pattern compiles");
        Self {
            // The same constant patterns.
            any: RegexSet::new(patterns.iter().map(|(p, _)| p)).expect("constant patterns compile"),
            redactions: patterns
                .into_iter()
                .map(|(p, target)| (compile(p), target))
                .collect(),
            public_pem: compile(PUBLIC_PEM),
        }
    }

    /// Rules 2 and 3.
    fn redact_shapes_and_labels<'a>(&self, mut text: Cow<'a, str>) -> Cow<'a, str> {
        let hits = self.any.matches(&text);
        for (index, (pattern, target)) in self.redactions.iter().enumerate() {
            if hits.matched(index) {
                let redact = |t: &str| splice(t, &targets(t, pattern, *target), REDACTED);
                text = then(text, redact);
            }
        }
        text
    }
}

impl fmt::Debug for Rules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rules")
            .field("patterns", &self.any.len())
            .finish_non_exhaustive()
    }
}

/// Redacts credentials from text. Build once (the patterns compile once per
/// process), share via `Arc`; cheap to call.
#[derive(Debug, Clone)]
pub struct Scrubber {
    rules: &'static Rules,
    /// Trimmed, at least 8 characters, deduplicated; `SecretString` keeps
    /// them out of `Debug`.
    secrets: Vec<SecretString>,
}

impl Scrubber {
    /// A scrubber with the default rules and no configured secrets.
    pub fn new() -> Self {
        Self {
            rules: &RULES,
            secrets: Vec::new(),
        }
    }

    /// Also redact these exact values wherever they appear (the user's
    /// configured credentials). Values shorter than 8 characters are ignored.
    pub fn with_secrets<'a>(mut self, secrets: impl IntoIterator<Item = &'a SecretString>) -> Self {
        for secret in secrets {
            let value = secret.expose().trim();
            // A value inside a marker would make scrubbing twice differ from once.
            let in_marker = REDACTED.contains(value) || REDACTED_HIGH_ENTROPY.contains(value);
            let known = self.secrets.iter().any(|s| s.expose() == value);
            if value.chars().count() >= MIN_CONFIGURED_SECRET_CHARS && !in_marker && !known {
                self.secrets.push(SecretString::new(value));
            }
        }
        self
    }

    /// The text with every detected secret replaced; borrowed when nothing
    /// changed.
    pub fn scrub<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let text = then(Cow::Borrowed(text), |t| self.redact_configured(t));
        let text = self.rules.redact_shapes_and_labels(text);
        then(text, |t| redact_high_entropy(t, &self.rules.public_pem))
    }

    /// Rule 1. Occurrences of different secrets may overlap; they are merged
    /// so that no fragment of either survives.
    fn redact_configured(&self, text: &str) -> Option<String> {
        let mut spans: Vec<Range<usize>> = Vec::new();
        for needle in self.secrets.iter().map(SecretString::expose) {
            let step = needle.chars().next().map_or(1, char::len_utf8);
            let mut from = 0;
            while let Some(offset) = text[from..].find(needle) {
                spans.push(from + offset..from + offset + needle.len());
                from += offset + step;
            }
        }
        spans.sort_unstable_by_key(|span| span.start);
        let mut merged: Vec<Range<usize>> = Vec::new();
        for span in spans {
            match merged.last_mut() {
                Some(last) if span.start <= last.end => last.end = last.end.max(span.end),
                _ => merged.push(span),
            }
        }
        splice(text, &merged, REDACTED)
    }
}

impl Default for Scrubber {
    fn default() -> Self {
        Self::new()
    }
}

/// Applies one rule to a possibly already rewritten text.
fn then<'a>(text: Cow<'a, str>, rule: impl FnOnce(&str) -> Option<String>) -> Cow<'a, str> {
    match rule(&text) {
        Some(changed) => Cow::Owned(changed),
        None => text,
    }
}

/// `text` with `spans` (sorted, disjoint) replaced by `marker`; `None` when
/// there are none.
fn splice(text: &str, spans: &[Range<usize>], marker: &str) -> Option<String> {
    if spans.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut emitted = 0;
    for span in spans {
        out.push_str(&text[emitted..span.start]);
        out.push_str(marker);
        emitted = span.end;
    }
    out.push_str(&text[emitted..]);
    Some(out)
}

/// The ranges `target` picks from the matches of `pattern`. A kept match is
/// searched again from its value (first capture group), which may itself
/// hold a labelled secret.
fn targets(text: &str, pattern: &Regex, target: Target) -> Vec<Range<usize>> {
    let mut spans = Vec::new();
    let mut at = 0;
    while let Some(caps) = pattern.captures_at(text, at) {
        let Some(whole) = caps.get(0) else { break };
        let value = caps.iter().skip(1).flatten().next();
        at = match target(&caps) {
            Some(span) => {
                spans.push(span);
                whole.end()
            }
            None => value.map_or(whole.end(), |v| v.start()),
        };
        // No pattern matches the empty string, and a value follows its label.
        if at <= whole.start() {
            break;
        }
    }
    spans
}

/// Rule 3 for one match: the range of its value, unless that is not a secret.
fn labelled_value(caps: &Captures<'_>) -> Option<Range<usize>> {
    let (group, syntax) = VALUE_GROUPS
        .iter()
        .find_map(|&(name, syntax)| caps.name(name).map(|g| (g, syntax)))?;
    let value = match syntax {
        ValueSyntax::Bare => trim_code_suffix(group.as_str()),
        ValueSyntax::Literal => group.as_str(),
    };
    (!is_not_a_secret(value, syntax)).then(|| group.start()..group.start() + value.len())
}

/// `Some(abc)`, `f(password=None):`, `$token:tt)*`: a closing bracket
/// without its opening one, and trailing `:.*+?`, belong to the surrounding
/// code or sentence, not to the value.
fn trim_code_suffix(mut value: &str) -> &str {
    while let Some(last) = value.chars().last() {
        let open = match last {
            ')' => '(',
            ']' => '[',
            '}' => '{',
            ':' | '.' | '*' | '+' | '?' => last,
            _ => break,
        };
        if open != last && value.matches(open).count() >= value.matches(last).count() {
            break;
        }
        value = &value[..value.len() - 1];
    }
    value
}

fn is_not_a_secret(value: &str, syntax: ValueSyntax) -> bool {
    let value = value.trim();
    if value == REDACTED || value == REDACTED_HIGH_ENTROPY {
        return true;
    }
    if value.starts_with("[REDACTED") {
        // A configured secret was the start of a longer value.
        return false;
    }
    value.len() < MIN_LABELLED_VALUE_LEN
        || !value.chars().any(char::is_alphanumeric)
        || is_placeholder(value)
        || starts_with_any(value, &["/", "~/", "./", "../"])
        || matches!(syntax, ValueSyntax::Bare) && looks_like_code(value)
}

fn is_placeholder(value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    let wrapped = |open: &str, close: char| value.starts_with(open) && value.ends_with(close);
    PLACEHOLDER_WORDS.split(' ').any(|word| word == lower)
        || wrapped("<", '>')
        || wrapped("{", '}')
        || wrapped("%", '%')
        || value.starts_with("${")
        || value.starts_with("$(")
        || value.starts_with("%(")
        || value
            .strip_prefix('%')
            .is_some_and(|rest| rest.starts_with(char::is_alphabetic))
        || (value.strip_prefix('$')).is_some_and(|name| identifier_len(name) == name.len())
        || lower.bytes().all(|b| b == b'x')
        || starts_with_any(&lower, &["your_", "your-", "your "])
        || is_env_var_name(value)
}

fn starts_with_any(value: &str, prefixes: &[&str]) -> bool {
    prefixes.iter().any(|p| value.starts_with(p))
}

/// `OPENAI_API_KEY`, `TOKEN`: upper case with an underscore, or upper-case
/// letters only (a random upper-case string has digits and no underscore).
fn is_env_var_name(value: &str) -> bool {
    let bytes = value.as_bytes();
    let upper = |b: &u8| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_';
    bytes.first().is_some_and(u8::is_ascii_uppercase)
        && bytes.iter().all(upper)
        && (bytes.contains(&b'_') || !bytes.iter().any(u8::is_ascii_digit))
}

/// The length of the identifier `value` starts with (0 if none).
fn identifier_len(value: &str) -> usize {
    match value.bytes().next() {
        Some(b) if b.is_ascii_alphabetic() || b == b'_' => {
            let word = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
            value.bytes().take_while(word).count()
        }
        _ => 0,
    }
}

/// An unquoted value that reads as code rather than as a literal.
fn looks_like_code(value: &str) -> bool {
    // Operators, brackets, `<T as Trait>::f`, `_private` and `__u32`.
    if value.starts_with(['(', '[', '{', '<', '-', '=', '>', ':', '!', '*', '|', '_']) {
        return true;
    }
    // The identifier path it starts with: `a`, `a.b`, `a::b`.
    let mut end = identifier_len(value);
    let mut separated = false;
    while end > 0 {
        let rest = &value[end..];
        let after = (rest.strip_prefix("::").or_else(|| rest.strip_prefix('.'))).unwrap_or(rest);
        let len = identifier_len(after);
        if after.len() == rest.len() || len == 0 {
            break;
        }
        separated = true;
        end = value.len() - after.len() + len;
    }
    let (path, rest) = value.split_at(end);
    let call_index_generic = rest.starts_with(['(', '[', '<', '!', '?']) || rest.starts_with("::<");
    let plain = rest.is_empty()
        && (separated
            || path.bytes().all(|b| b.is_ascii_alphabetic() || b == b'_')
            || NUMERIC_TYPES.split(' ').any(|t| t == path));
    end > 0 && (call_index_generic || plain)
}

/// Rule 4; `None` when nothing changed.
fn redact_high_entropy(text: &str, public_pem: &Regex) -> Option<String> {
    let public: Vec<Range<usize>> = if text.contains("-----BEGIN ") {
        public_pem.find_iter(text).map(|m| m.range()).collect()
    } else {
        Vec::new()
    };
    let is_candidate = |b: u8| b.is_ascii_alphanumeric() || b"+/=_-.".contains(&b);
    let bytes = text.as_bytes();
    let (mut spans, mut i) = (Vec::new(), 0);
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && is_candidate(bytes[i]) {
            i += 1;
            // Base64 has `=` only as trailing padding; inside a run it
            // separates a name from its value (`NAME=value`): keep the name.
            if bytes[i - 1] == b'=' && bytes.get(i).is_some_and(|&b| b != b'=' && is_candidate(b)) {
                break;
            }
        }
        if i == start {
            i += 1;
            continue;
        }
        // Candidate bytes are ASCII, so all offsets here are char boundaries.
        let run = &text[start..i];
        // A path or URL is judged segment by segment, so a random id does not
        // take the whole URL along. Base64 has no `.`; paths without one are
        // judged whole, which their words survive.
        let path = run.contains('/') && run.contains('.');
        let mut piece_start = start;
        for piece in run.split(|c| path && c == '/') {
            let token = piece.trim_end_matches('.');
            if looks_random(token)
                && !is_public_by_context(&text[..piece_start], token)
                && !public.iter().any(|r| r.contains(&piece_start))
            {
                spans.push(piece_start..piece_start + token.len());
            }
            piece_start += piece.len() + 1;
        }
    }
    splice(text, &spans, REDACTED_HIGH_ENTROPY)
}

fn looks_random(token: &str) -> bool {
    let bytes = token.as_bytes();
    let hex = bytes.strip_prefix(b"0x").unwrap_or(bytes);
    ENTROPY_CANDIDATE_LEN.contains(&bytes.len())
        && !hex.iter().all(|b| b.is_ascii_hexdigit() || *b == b'-')
        && bytes.iter().any(u8::is_ascii_uppercase)
        && bytes.iter().any(u8::is_ascii_lowercase)
        && bytes.iter().any(u8::is_ascii_digit)
        && shannon_entropy(bytes) >= MIN_ENTROPY_BITS_PER_CHAR
        && mean_fragment_len(bytes) < MAX_RANDOM_MEAN_FRAGMENT_LEN
        && !is_structured(bytes)
}

/// `ubi-Darwin-x86_64.tar.gz`, `en-US-u-ca-buddhist`, `NL80211_RATE_INFO_HE`:
/// three or more segments, at least 80% of them one or two fragments long.
/// Random strings have few separators and long, many-fragment segments.
fn is_structured(token: &[u8]) -> bool {
    let segments = token
        .split(|b| !b.is_ascii_alphanumeric())
        .filter(|s| !s.is_empty());
    let (mut all, mut simple) = (0, 0);
    for (count, _) in segments.map(fragments) {
        all += 1;
        simple += usize::from(count <= 2);
    }
    all >= 3 && simple * 5 >= all * 4
}

/// Public high-entropy data recognised by what precedes or starts it.
fn is_public_by_context(before: &str, token: &str) -> bool {
    let ssh_key_type = (before.strip_suffix(' '))
        .and_then(|b| b.rsplit(char::is_whitespace).next())
        .is_some_and(|word| starts_with_any(word, &SSH_KEY_TYPE_PREFIXES));
    starts_with_any(token, &INTEGRITY_PREFIXES)
        || before.ends_with("base64,")
        || before.ends_with("h1:")
        || ssh_key_type
}

fn shannon_entropy(bytes: &[u8]) -> f64 {
    let mut counts = [0_u32; 256];
    for &b in bytes {
        counts[usize::from(b)] += 1;
    }
    let len = bytes.len() as f64;
    let term = |count: u32| -f64::from(count) / len * (f64::from(count) / len).log2();
    counts.iter().filter(|&&c| c > 0).map(|&c| term(c)).sum()
}

/// The mean length of the word fragments of `token`: lower-case runs,
/// capitalised words, upper-case acronyms, numbers (`3.12.1` is one) and
/// lower-case hex runs of 8+ (a SHA inside a URL is one); separators are
/// skipped. Random strings switch class every two characters or so;
/// `camelCaseWithNumbers123` scores 5.5, `cmake-3.28.1-Linux-x86_64` 3.0.
fn mean_fragment_len(token: &[u8]) -> f64 {
    let (count, total) = fragments(token);
    f64::from(total) / f64::from(count.max(1))
}

/// The number and total length of the fragments of `token`.
fn fragments(token: &[u8]) -> (u32, u32) {
    let (mut i, mut count, mut total) = (0, 0_u32, 0_u32);
    while i < token.len() {
        match fragment_len(&token[i..]) {
            0 => i += 1,
            len => {
                count += 1;
                total += u32::try_from(len).unwrap_or(u32::MAX);
                i += len;
            }
        }
    }
    (count, total)
}

fn fragment_len(s: &[u8]) -> usize {
    let run =
        |from: usize, class: fn(&u8) -> bool| s[from..].iter().take_while(|b| class(b)).count();
    let hex = run(0, |b| b.is_ascii_digit() || (b'a'..=b'f').contains(b));
    let hex_run = &s[..hex];
    let mixed =
        hex_run.iter().any(u8::is_ascii_digit) && hex_run.iter().any(u8::is_ascii_lowercase);
    if hex >= 8 && mixed {
        return hex;
    }
    match s.first() {
        Some(b) if b.is_ascii_digit() => {
            let mut len = run(0, u8::is_ascii_digit);
            while s.get(len) == Some(&b'.') && s.get(len + 1).is_some_and(u8::is_ascii_digit) {
                len += 1 + run(len + 1, u8::is_ascii_digit);
            }
            len
        }
        Some(b) if b.is_ascii_lowercase() => run(0, u8::is_ascii_lowercase),
        Some(b) if b.is_ascii_uppercase() => {
            let upper = run(0, u8::is_ascii_uppercase);
            match (upper, run(upper, u8::is_ascii_lowercase)) {
                (1, lower) => 1 + lower,
                (upper, 0) => upper,
                // `HTTPConnection`: the last capital starts the next word.
                (upper, _) => upper - 1,
            }
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Fake values, made up for these tests.
    const RANDOM_40: &str = "Qm7Xk2Lp9Rz4Vn8Wt3Bc6Yd1Hg5Jf0Sa2Pe7Uq4";
    const OPENAI: &str = "sk-proj-Xa7Kd93LqPzW2mVn8RtY5bGc1HfJ4sUe6";

    fn check(input: &str, expected: &str) {
        assert_eq!(Scrubber::new().scrub(input), expected, "input: {input:?}");
    }

    /// One case per line: `input => expected`, or just `input` when it must
    /// come out unchanged. `RANDOM_40` stands for that constant.
    fn check_lines(table: &str) {
        for line in table.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let line = line.replace("RANDOM_40", RANDOM_40);
            let (input, expected) = line.split_once(" => ").unwrap_or((&line, &line));
            check(input, expected);
        }
    }

    #[test]
    fn configured_secrets_are_redacted_verbatim_and_short_ones_ignored() {
        let secrets = ["hunter2-but-longer", "short", " ger-and-more\n", "REDACTED"];
        let scrubber = Scrubber::new().with_secrets(&secrets.map(SecretString::new));
        let scrub = |text| scrubber.scrub(text).into_owned();
        assert_eq!(
            scrub("a hunter2-but-longer b short"),
            "a [REDACTED] b short"
        );
        // Overlapping occurrences of two secrets are merged: no tail survives.
        assert_eq!(scrub("<hunter2-but-longer-and-more>"), "<[REDACTED]>");
        assert_eq!(scrub("[REDACTED]"), "[REDACTED]");
        assert!(!format!("{scrubber:?}").contains("hunter2"));
    }

    #[test]
    fn known_token_shapes_are_redacted() {
        check_lines(&format!(
            r#"
            key {OPENAI}, ok => key [REDACTED], ok
            sk-ant-api03-Zq8Wm2Kx7Lp4Rn9Vt3Bc6Yd1Hg5Jf0Sa-Qe7 => [REDACTED]
            (ghp_8fKq2Lm9Xz3Rv7Wn4Tb6Yc1Hd5Jg0Sa2PeQ) => ([REDACTED])
            github_pat_11ABCDEFG0Qm7Xk2Lp9Rz4_Vn8Wt3Bc6Yd1Hg5Jf0Sa2Pe => [REDACTED]
            xoxb-2849137560-4817263950-Qm7Xk2Lp9Rz4Vn8W => [REDACTED]
            id=AKIAQ7XK2LP9RZ4VN8WT => id=[REDACTED]
            "AIzaSyQ7Xk2Lp9Rz4Vn8Wt3Bc6Yd1Hg5Jf0Sa2P" => "[REDACTED]"
            sk_live_51Hq8Wm2Kx7Lp4Rn9Vt3Bc6Yd => [REDACTED]
            jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NSJ9.Qm7Xk2Lp9Rz4Vn8Wt3Bc6 => jwt [REDACTED]
            "#
        ));
    }

    #[test]
    fn pem_private_key_blocks_are_redacted_whole_even_when_truncated() {
        let block = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkq\n-----END EC PRIVATE KEY-----";
        check(
            &format!("before\n{block}\nafter"),
            "before\n[REDACTED]\nafter",
        );
        let truncated = "x\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNz\n[truncated]";
        check(truncated, "x\n[REDACTED]");
    }

    #[test]
    fn labelled_values_are_redacted_and_labels_kept() {
        check_lines(
            r#"
            password=hunter2x => password=[REDACTED]
            DB_PASSWORD=s3cret-Value => DB_PASSWORD=[REDACTED]
            {"api_key": "abc123def456"} => {"api_key": "[REDACTED]"}
            api-key: abc123def456 => api-key: [REDACTED]
            {\"password\":\"hunter22\"} => {\"password\":\"[REDACTED]\"}
            client_secret: 'xyz98765' => client_secret: '[REDACTED]'
            AWS_SECRET_ACCESS_KEY=abcd1234efgh => AWS_SECRET_ACCESS_KEY=[REDACTED]
            token: Some("abc123def") => token: Some("[REDACTED]")
            --token abc123def456 -v => --token [REDACTED] -v
            --password=abc123def => --password=[REDACTED]
            Authorization: Bearer abc.def-123 => Authorization: Bearer [REDACTED]
            authorization: basic dXNlcjpwYXNz => authorization: basic [REDACTED]
            postgres://app:s3cretpw@db:5432/app => postgres://app:[REDACTED]@db:5432/app
            password: 123456 => password: [REDACTED]
            secret: https://hooks.example.com/x => secret: [REDACTED]
            password: cfg.get(token=abcd1234) => password: cfg.get(token=[REDACTED])
            "#,
        );
    }

    #[test]
    fn labels_in_prose_code_and_placeholders_are_kept() {
        check_lines(
            r#"
            the token is stored in the vault
            let token = parse_token(input);
            password: String,
            token: Option<&str>, n: u64
            api_key_env = "OPENAI_API_KEY"
            "token": "GITHUB_TOKEN"
            max_tokens: 4096, token_type: bearer
            password: ${DB_PASSWORD} token=<your-token> secret: true
            --password-file /run/secrets/db, use the --token flag
            PWD=/home/user/project
            client = OpenAI(api_key=api_key)
            if token == expected {
            Authorization: Bearer $TOKEN
            password: changeme
            let key = self.api_key.as_deref()?;
            "#,
        );
    }

    #[test]
    fn random_strings_are_redacted_as_high_entropy() {
        check_lines(
            "
            key RANDOM_40. => key [REDACTED:high-entropy].
            SIGNATURE=RANDOM_40== => SIGNATURE=[REDACTED:high-entropy]
            ",
        );
    }

    #[test]
    fn hashes_identifiers_and_public_encodings_are_not_high_entropy() {
        check_lines(
            r#"
            e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
            9f86d081884c7d659a2feaa0c55ad015a3bf4f1b 550E8400-E29B-41D4-A716-446655440000
            camelCaseIdentifierWithNumbers123 getHttpClientForRegion2Async
            /usr/lib/x86_64-linux-gnu/libssl.so.3 cmake-3.28.1-Linux-x86_64.tar.gz
            data:image/png;base64,RANDOM_40
            "integrity": "sha512-RANDOM_40=="
            golang.org/x/text v0.14.0 h1:RANDOM_40=
            ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIRANDOM_40 me@host
            "#,
        );
    }

    #[test]
    fn scrubbing_twice_equals_scrubbing_once() {
        let scrubber = Scrubber::new().with_secrets(&[SecretString::new("abcdefgh")]);
        for input in [
            format!("password=abcdefghXYZ {OPENAI} {RANDOM_40}"),
            format!("token: Some({RANDOM_40}) Authorization: Bearer {OPENAI}"),
            format!("{{\"token\": \"Bearer {OPENAI}\"}} key: [{RANDOM_40}]"),
        ] {
            let once = scrubber.scrub(&input).into_owned();
            assert_eq!(scrubber.scrub(&once), once, "input: {input}");
        }
    }

    #[test]
    fn unchanged_text_is_borrowed() {
        for input in ["nothing to see", "password: String", ""] {
            assert!(
                matches!(Scrubber::default().scrub(input), Cow::Borrowed(_)),
                "{input}"
            );
        }
    }

    #[test]
    fn multi_byte_text_around_secrets_survives() {
        check(
            &format!("ключ «{OPENAI}» 日本語 password=пароль123 — {RANDOM_40}…"),
            "ключ «[REDACTED]» 日本語 password=[REDACTED] — [REDACTED:high-entropy]…",
        );
    }

    #[test]
    fn a_megabyte_of_prose_is_scrubbed() {
        let paragraph = "The token budget was 4096; the password manager holds every key. \
            Версия 1.2.3 — ünïcödé, see /usr/lib/x86_64-linux-gnu and https://example.com/a?b=c.\n";
        let mut text = paragraph.repeat(1024 * 1024 / paragraph.len() + 1);
        assert!(matches!(Scrubber::new().scrub(&text), Cow::Borrowed(_)));
        text.push_str(OPENAI);
        assert!(Scrubber::new().scrub(&text).ends_with(REDACTED));
    }
}

//! The SSRF address table: every row of `tests/data/ssrf/addresses.jsonl`
//! is a host spelling (or a host name with the addresses a stub resolver
//! answers for it) and whether the default-safe rules block it.
//!
//! Each row is decided twice — through [`parse_host`] (hosts arriving
//! outside a URL) and through `url::Url` (what the web tools see) — and
//! both paths must reach the same host. Nothing here touches the network.

use std::fmt::Write as _;
use std::net::IpAddr;

use sandbox::egress::{EgressRules, TargetHost, is_blocked, parse_host, parse_ipv4_loose};
use serde::Deserialize;
use url::Url;

const TABLE: &str = include_str!("data/ssrf/addresses.jsonl");
const MIN_BLOCKED_ROWS: usize = 40;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Row {
    host: String,
    expect: Expect,
    /// A substring of the refusal (blocked rows only).
    #[serde(default)]
    reason: Option<String>,
    /// What the stub resolver answers for a host name.
    #[serde(default)]
    resolves_to: Option<Vec<IpAddr>>,
    /// Why the row is there; printed with a mismatch.
    #[serde(default)]
    note: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Expect {
    Blocked,
    Allowed,
}

/// The rules' verdict for a parsed host: `Err` carries the refusal text.
fn decide(rules: &EgressRules, host: &TargetHost, row: &Row) -> Result<(), String> {
    rules.check_target(host, 80).map_err(|e| e.to_string())?;
    match (host, &row.resolves_to) {
        (TargetHost::Domain(name), Some(addrs)) => {
            rules.check_resolved(name, addrs).map_err(|e| e.to_string())
        }
        (TargetHost::Domain(name), None) => Err(format!(
            "TABLE ERROR: {name} is a name, so the row needs resolves_to"
        )),
        (TargetHost::Ip { .. }, Some(_)) => Err(format!(
            "TABLE ERROR: {host} is an address, resolves_to makes no sense"
        )),
        (TargetHost::Ip { .. }, None) => Ok(()),
    }
}

/// Checks one row; `Err` describes the mismatch.
fn check_row(rules: &EgressRules, row: &Row) -> Result<(), String> {
    let loose = parse_host(&row.host);
    let via_url = Url::parse(&format!("http://{}/", row.host))
        .ok()
        .and_then(|url| url.host().map(TargetHost::from_url_host));
    let verdict = match (&loose, &via_url) {
        (Ok(loose), Some(via_url)) if loose != via_url => {
            return Err(format!(
                "parse_host gives {loose:?} but url::Url gives {via_url:?}"
            ));
        }
        (Ok(host), _) => decide(rules, host, row),
        (Err(error), None) => Err(format!("{} is not a valid host: {error}", row.host)),
        (Err(error), Some(via_url)) => {
            return Err(format!(
                "parse_host fails ({error}) but url::Url gives {via_url:?}"
            ));
        }
    };
    // A host url::Url rejects is never fetched; the table must agree.
    if via_url.is_none() && row.expect == Expect::Allowed {
        return Err("url::Url rejects this host, so it cannot be allowed".to_owned());
    }
    match (row.expect, verdict, &row.reason) {
        (Expect::Allowed, Ok(()), None) => Ok(()),
        (Expect::Allowed, Ok(()), Some(_)) => Err("allowed rows take no reason".to_owned()),
        (Expect::Allowed, Err(refusal), _) => Err(format!("expected allowed, got: {refusal}")),
        (Expect::Blocked, Ok(()), _) => Err("expected blocked, but it is allowed".to_owned()),
        (Expect::Blocked, Err(refusal), None) => {
            Err(format!("blocked rows need a reason; refusal: {refusal}"))
        }
        (Expect::Blocked, Err(refusal), Some(reason)) if !refusal.contains(reason.as_str()) => {
            Err(format!("refusal lacks {reason:?}: {refusal}"))
        }
        (Expect::Blocked, Err(_), Some(_)) => Ok(()),
    }
}

#[test]
fn address_table() {
    let rules = EgressRules::default_safe();
    let mut rows = Vec::new();
    let mut mismatches = String::new();
    for (number, line) in TABLE.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Row>(line) {
            Ok(row) => rows.push((number + 1, row)),
            Err(error) => {
                writeln!(mismatches, "line {}: unreadable row: {error}", number + 1).unwrap()
            }
        }
    }
    for (line, row) in &rows {
        if let Err(mismatch) = check_row(&rules, row) {
            let note = row
                .note
                .as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default();
            writeln!(mismatches, "line {line}: {}{note}: {mismatch}", row.host).unwrap();
        }
    }
    let blocked = rows
        .iter()
        .filter(|(_, r)| r.expect == Expect::Blocked)
        .count();
    let allowed = rows.len() - blocked;
    println!("{} rows: {blocked} blocked, {allowed} allowed", rows.len());
    if !mismatches.is_empty() {
        eprint!("{mismatches}");
    }
    assert!(
        mismatches.is_empty(),
        "the address table has mismatches (above)"
    );
    assert!(blocked >= MIN_BLOCKED_ROWS, "only {blocked} blocked rows");
    assert!(allowed >= 10, "only {allowed} allowed rows");
}

/// Every spelling of a few addresses, generated, must parse to the same
/// address through both paths and get the same verdict as the plain form.
#[test]
fn generated_spellings_agree_between_parse_ipv4_loose_and_url() {
    let mut mismatches = Vec::new();
    for plain in [
        "127.0.0.1",
        "10.1.2.3",
        "169.254.169.254",
        "192.168.100.200",
        "8.8.8.8",
        "0.0.0.0",
        "255.255.255.255",
    ] {
        let addr: std::net::Ipv4Addr = plain.parse().unwrap();
        let [a, b, c, d] = addr.octets();
        let whole = u32::from(addr);
        let low24 = whole & 0x00ff_ffff;
        let low16 = whole & 0xffff;
        let spellings = [
            format!("{whole}"),
            format!("0x{whole:x}"),
            format!("0X{whole:08X}"),
            format!("0{whole:o}"),
            format!("{a}.{low24}"),
            format!("{a}.{b}.{low16}"),
            format!("0x{a:x}.0{b:o}.{c}.0x{d:02x}"),
            format!("0{a:o}.0{b:o}.0{c:o}.0{d:o}"),
            format!("00{a:o}.0x0{b:x}.{low16}"),
            format!("{a}.{b}.{c}.{d}."),
        ];
        for spelling in spellings {
            let loose = parse_ipv4_loose(&spelling);
            let url_host =
                Url::parse(&format!("http://{spelling}/"))
                    .ok()
                    .and_then(|url| match url.host() {
                        Some(url::Host::Ipv4(v4)) => Some(v4),
                        _ => None,
                    });
            if loose != Some(addr) || url_host != Some(addr) {
                mismatches.push(format!(
                    "{spelling}: parse_ipv4_loose {loose:?}, url {url_host:?}, expected {addr}"
                ));
            }
            let verdict = is_blocked(IpAddr::V4(addr)).map(|r| r.kind());
            let via_host = match parse_host(&spelling) {
                Ok(TargetHost::Ip { addr, .. }) => is_blocked(addr).map(|r| r.kind()),
                other => {
                    mismatches.push(format!("{spelling}: parse_host gives {other:?}"));
                    continue;
                }
            };
            if via_host != verdict {
                mismatches.push(format!(
                    "{spelling}: {via_host:?} but {plain} is {verdict:?}"
                ));
            }
        }
    }
    for mismatch in &mismatches {
        eprintln!("{mismatch}");
    }
    assert!(
        mismatches.is_empty(),
        "{} spellings disagree",
        mismatches.len()
    );
}

/// `url` maps full-width digits to ASCII (IDNA) before its IPv4 parser
/// runs, so such a host reaches the rules as a plain address.
#[test]
fn full_width_digits_reach_the_rules_as_an_address() {
    let url = Url::parse("http://１２７．０．０．１/").unwrap();
    let host = TargetHost::from_url_host(url.host().unwrap());
    let refusal = EgressRules::default_safe()
        .check_target(&host, 80)
        .unwrap_err();
    assert!(
        refusal
            .to_string()
            .starts_with("127.0.0.1 is a loopback address"),
        "{refusal}"
    );
}

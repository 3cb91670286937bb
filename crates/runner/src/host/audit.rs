//! `oxydra-runner audit`: the user's audit log (spec 10), merged by time
//! from its two sources — the runner's own file
//! (`<workspace_root>/.runner/audit/<user>.jsonl`, which no guest can
//! write) and the guest's memory database (approval requests and
//! decisions). Records hold no secret and no message text.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use types::AuditRecord;

use super::HostError;

/// Where a record was kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditSource {
    /// `.runner/audit/<user>.jsonl`.
    Runner,
    /// The guest's memory database.
    Guest,
}

/// One line of `audit --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub source: AuditSource,
    #[serde(flatten)]
    pub record: AuditRecord,
}

/// `--since`: an RFC 3339 time (`2026-12-07T09:00:00Z`) or how long ago
/// (`90m`, `2h`, `7d`, `1h 30m`), as milliseconds since the epoch.
pub fn parse_since(text: &str, now: SystemTime) -> Result<i64, HostError> {
    let text = text.trim();
    let at = match humantime::parse_rfc3339_weak(text) {
        Ok(at) => at,
        Err(_) => {
            let ago = humantime::parse_duration(text).map_err(|e| {
                HostError::Unsupported(format!(
                    "--since '{text}' is neither an RFC 3339 time (2026-12-07T09:00:00Z) nor a duration (90m, 2h, 7d): {e}"
                ))
            })?;
            now.checked_sub(ago).unwrap_or(UNIX_EPOCH)
        }
    };
    Ok(millis(at))
}

fn millis(at: SystemTime) -> i64 {
    let since_epoch = at.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

/// The runner's records at or after `since_ms`; none when the file does not
/// exist yet. A line that is not a record is an error naming it.
pub fn read_runner_file(path: &Path, since_ms: Option<i64>) -> Result<Vec<AuditRecord>, HostError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => {
            return Err(HostError::Io {
                what: "cannot read the audit log",
                path: path.to_owned(),
                message: error.to_string(),
            });
        }
    };
    let mut records = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let record: AuditRecord = serde_json::from_str(line).map_err(|e| HostError::Io {
            what: "unreadable audit record in",
            path: path.to_owned(),
            message: format!("line {}: {e}", number + 1),
        })?;
        if since_ms.is_none_or(|since| record.at_ms >= since) {
            records.push(record);
        }
    }
    Ok(records)
}

/// Both sources in one list, oldest first (runner first on equal times).
pub fn merge(runner: Vec<AuditRecord>, guest: Vec<AuditRecord>) -> Vec<AuditEntry> {
    let mut entries: Vec<AuditEntry> = runner
        .into_iter()
        .map(|record| AuditEntry {
            source: AuditSource::Runner,
            record,
        })
        .chain(guest.into_iter().map(|record| AuditEntry {
            source: AuditSource::Guest,
            record,
        }))
        .collect();
    // Stable: each source keeps its own order among equal times.
    entries.sort_by_key(|entry| entry.record.at_ms);
    entries
}

/// One record as a line of text.
pub fn render(entry: &AuditEntry) -> String {
    let record = &entry.record;
    let at = u64::try_from(record.at_ms)
        .map(|ms| UNIX_EPOCH + Duration::from_millis(ms))
        .unwrap_or(UNIX_EPOCH);
    let kind = serde_json::to_value(record.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let mut line = format!(
        "{}  {kind:<18} {:<12} by {}",
        humantime::format_rfc3339_seconds(at),
        record.subject,
        record.actor
    );
    if let Some(decision) = record.decision {
        let decision = serde_json::to_value(decision)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        line.push_str(&format!("  → {decision}"));
    }
    if let Some(sender) = &record.sender {
        line.push_str(&format!(
            "  {} sender {} in chat {}",
            sender.channel, sender.sender_id, sender.chat_id
        ));
    }
    if let Some(session) = &record.session_id {
        line.push_str(&format!("  session {session}"));
    }
    if let (Some(hash), Some(bytes)) = (&record.arguments_sha256, record.arguments_bytes) {
        line.push_str(&format!(
            "  args sha256:{} ({bytes} B)",
            &hash[..hash.len().min(12)]
        ));
    }
    if let Some(reason) = &record.reason {
        line.push_str(&format!("  ({reason})"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use types::{AuditDecision, AuditKind};

    fn record(at_ms: i64, subject: &str) -> AuditRecord {
        AuditRecord {
            at_ms,
            user: "alice".into(),
            kind: AuditKind::ApprovalDecided,
            actor: "gateway:alice".into(),
            subject: subject.into(),
            decision: Some(AuditDecision::Approved),
            reason: None,
            session_id: Some("s-1".into()),
            request_id: None,
            arguments_sha256: Some("ab".repeat(32)),
            arguments_bytes: Some(20),
            sender: None,
        }
    }

    #[test]
    fn since_takes_a_time_or_a_duration_ago() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(parse_since("2h", now).unwrap(), (1_000_000 - 7200) * 1000);
        assert_eq!(
            parse_since("1h 30m", now).unwrap(),
            (1_000_000 - 5400) * 1000
        );
        assert_eq!(
            parse_since("1970-01-02T00:00:00Z", now).unwrap(),
            86_400_000
        );
        let err = parse_since("yesterday", now).unwrap_err().to_string();
        assert!(err.contains("--since 'yesterday'"), "{err}");
    }

    #[test]
    fn both_sources_merge_by_time_and_bad_lines_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alice.jsonl");
        assert!(read_runner_file(&path, None).unwrap().is_empty());
        let lines = [record(10, "sender"), record(30, "egress")]
            .iter()
            .map(|r| serde_json::to_string(r).unwrap())
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(&path, lines).unwrap();
        let runner = read_runner_file(&path, Some(20)).unwrap();
        assert_eq!(runner, [record(30, "egress")]);
        let merged = merge(
            read_runner_file(&path, None).unwrap(),
            vec![record(20, "shell_exec"), record(30, "file_write")],
        );
        let order: Vec<(&str, AuditSource)> = merged
            .iter()
            .map(|e| (e.record.subject.as_str(), e.source))
            .collect();
        assert_eq!(
            order,
            [
                ("sender", AuditSource::Runner),
                ("shell_exec", AuditSource::Guest),
                ("egress", AuditSource::Runner),
                ("file_write", AuditSource::Guest),
            ]
        );
        let line = render(&merged[1]);
        assert!(line.starts_with("1970-01-01T00:00:00Z"), "{line}");
        assert!(
            line.contains("shell_exec") && line.contains("→ approved"),
            "{line}"
        );
        assert!(line.contains("args sha256:abababababab (20 B)"), "{line}");
        std::fs::write(&path, "{\"at_ms\": 1}\n").unwrap();
        let err = read_runner_file(&path, None).unwrap_err().to_string();
        assert!(err.contains("line 1"), "{err}");
    }
}

//! The guest side of the audit log: records appended to `audit_events`
//! (migration 0005) and read back in time order by `oxydra-runner audit`.

use async_trait::async_trait;
use types::{AuditLog, AuditRecord, MemoryError};

use crate::db::query_error;
use crate::store::LibsqlMemory;

#[async_trait]
impl AuditLog for LibsqlMemory {
    async fn append_audit(&self, record: &AuditRecord) -> Result<(), MemoryError> {
        let json = serde_json::to_string(record)
            .map_err(|e| MemoryError::Serialization(format!("audit record: {e}")))?;
        let tx = self.pool.begin_write().await?;
        let result = tx
            .execute(
                "INSERT INTO audit_events (at_ms, record_json) VALUES (?1, ?2)",
                (record.at_ms, json),
            )
            .await
            .map(|_| ())
            .map_err(query_error("appending an audit record"));
        tx.finish(result).await
    }
}

impl LibsqlMemory {
    /// The audit records at or after `since_ms` (all when `None`), oldest
    /// first. A record this version cannot read is an error naming it,
    /// never skipped silently.
    pub async fn audit_records(
        &self,
        since_ms: Option<i64>,
    ) -> Result<Vec<AuditRecord>, MemoryError> {
        let conn = self.pool.reader().await?;
        let failed = query_error("reading the audit log");
        let mut rows = conn
            .query(
                "SELECT id, record_json FROM audit_events WHERE at_ms >= ?1 ORDER BY at_ms, id",
                [since_ms.unwrap_or(i64::MIN)],
            )
            .await
            .map_err(&failed)?;
        let mut records = Vec::new();
        while let Some(row) = rows.next().await.map_err(&failed)? {
            let id: i64 = row.get(0).map_err(&failed)?;
            let json: String = row.get(1).map_err(&failed)?;
            records.push(serde_json::from_str(&json).map_err(|e| {
                MemoryError::Serialization(format!("audit record {id} is unreadable: {e}"))
            })?);
        }
        Ok(records)
    }
}

//! Versioned schema migrations: numbered `.sql` files under
//! `crates/memory/migrations`, applied in order, each inside its own
//! `BEGIN IMMEDIATE` transaction together with its row in
//! `memory_migrations`, sent as one batch. A failed migration leaves the database at the
//! previous version. Never edit an applied migration; add a new one.

use libsql::Connection;
use types::MemoryError;

use crate::db::{now_ms, query_error};

/// One schema step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration, in order. Versions are consecutive from 1.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("../migrations/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "fts",
        sql: include_str!("../migrations/0002_fts.sql"),
    },
    Migration {
        version: 3,
        name: "vector_index",
        sql: include_str!("../migrations/0003_vector_index.sql"),
    },
    Migration {
        version: 4,
        name: "fts_session",
        sql: include_str!("../migrations/0004_fts_session.sql"),
    },
    Migration {
        version: 5,
        name: "audit",
        sql: include_str!("../migrations/0005_audit.sql"),
    },
    Migration {
        version: 6,
        name: "index_queue",
        sql: include_str!("../migrations/0006_index_queue.sql"),
    },
    Migration {
        version: 7,
        name: "memory_meta",
        sql: include_str!("../migrations/0007_memory_meta.sql"),
    },
    Migration {
        version: 8,
        name: "exact_vectors",
        sql: include_str!("../migrations/0008_exact_vectors.sql"),
    },
];

const CREATE_TRACKING: &str = "CREATE TABLE IF NOT EXISTS memory_migrations (
    version    INTEGER PRIMARY KEY NOT NULL,
    name       TEXT NOT NULL,
    applied_at INTEGER NOT NULL
)";

/// The highest applied version (0 for a new database).
pub async fn applied_version(conn: &Connection) -> Result<u32, MemoryError> {
    conn.execute(CREATE_TRACKING, ())
        .await
        .map_err(query_error("creating memory_migrations"))?;
    let mut rows = conn
        .query(
            "SELECT COALESCE(MAX(version), 0) FROM memory_migrations",
            (),
        )
        .await
        .map_err(query_error("reading the schema version"))?;
    let version: i64 = match rows
        .next()
        .await
        .map_err(query_error("reading the schema version"))?
    {
        Some(row) => row
            .get(0)
            .map_err(query_error("reading the schema version"))?,
        None => 0,
    };
    u32::try_from(version).map_err(|_| MemoryError::Migration {
        version: 0,
        message: format!("memory_migrations holds an invalid version {version}"),
    })
}

/// Applies the migrations of `set` newer than the database's version.
/// Safe when several processes open a new database at once: a step another
/// process applied first fails on its `memory_migrations` row, and is
/// skipped.
pub async fn apply(conn: &Connection, set: &[Migration]) -> Result<u32, MemoryError> {
    let known = set.last().map_or(0, |m| m.version);
    let current = applied_version(conn).await?;
    if current > known {
        return Err(MemoryError::Migration {
            version: current,
            message: format!(
                "the database is at schema version {current}, newer than this build knows ({known}); upgrade Oxydra"
            ),
        });
    }
    for migration in set.iter().filter(|m| m.version > current) {
        apply_one(conn, migration).await?;
    }
    Ok(known)
}

/// Applies one migration as a single batch: `BEGIN IMMEDIATE`, its row in
/// `memory_migrations`, its statements, `COMMIT`. On a libSQL server that
/// is one request, so the write lock is held only while the server runs it:
/// sqld lets another writer (its own periodic checkpoint included) steal a
/// transaction older than five seconds, and a migration spread over several
/// round trips of a slow link lost its lock half-way ("interrupted").
/// The row goes first: when another process applied the migration since we
/// looked, its primary key stops the batch before any statement runs.
async fn apply_one(conn: &Connection, migration: &Migration) -> Result<(), MemoryError> {
    let statements = migration.sql.trim_end();
    let batch = format!(
        "BEGIN IMMEDIATE;\n\
         INSERT INTO memory_migrations (version, name, applied_at) VALUES ({}, '{}', {});\n\
         {statements}{}\n\
         COMMIT;",
        migration.version,
        migration.name.replace('\'', "''"),
        now_ms(),
        if statements.ends_with(';') { "" } else { ";" },
    );
    let Err(error) = conn.execute_batch(&batch).await else {
        return Ok(());
    };
    // Locally a failed batch stops inside its transaction; a server rolls
    // it back when it closes the request's stream.
    if !conn.is_autocommit()
        && let Err(rollback) = conn.execute("ROLLBACK", ()).await
    {
        tracing::warn!(%rollback, "rolling back a failed migration failed");
    }
    if applied_version(conn).await? >= migration.version {
        return Ok(());
    }
    Err(MemoryError::Migration {
        version: migration.version,
        message: format!("{} ({error})", migration.name),
    })
}

//! Opening the database and handing out connections.
//!
//! Every connection gets `PRAGMA foreign_keys = ON` (SQLite's default is
//! off, per connection); a local one a busy timeout and in-memory temporary
//! storage (no temp files outside the workspace); a local file is put in WAL mode
//! so readers never block the writer. Writes go through one writer
//! connection per process (SQLite allows a single writer anyway) and use
//! `BEGIN IMMEDIATE`, so a writer in another process waits for the lock
//! (busy timeout) instead of failing half-way through a transaction.
//! Readers take a connection from a small pool of idle ones.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use libsql::{Builder, Connection, Database};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use types::config::Durability;
use types::{MemoryError, SecretString};

/// How long a statement waits for another connection's lock.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Read connections open at once; a caller beyond it waits for one. Reads
/// are CPU-bound, and each connection has its own page cache: unbounded,
/// a thousand concurrent searches held a thousand caches.
const MAX_READERS: usize = 4;
/// The size the WAL file is cut back to after a checkpoint, and past
/// which the indexer checkpoints and empties it.
const WAL_LIMIT_BYTES: u64 = 64 << 20;
/// How long emptying the WAL may hold appends back waiting for readers.
const WAL_TRUNCATE_PATIENCE: Duration = Duration::from_millis(20);
/// How much of a local database file is memory-mapped (SQLite caps it at
/// its compile-time maximum, 2 GiB).
const MMAP_BYTES: u64 = 2 << 30;

/// Where the database lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// An embedded libSQL file (created when missing).
    Local(PathBuf),
    /// A libSQL server (sqld / Turso) reached over HTTP(S).
    Remote {
        url: String,
        auth_token: SecretString,
    },
}

impl Location {
    fn is_local(&self) -> bool {
        matches!(self, Self::Local(_))
    }
}

/// A `libsql::Error` as a query failure that says what was being done.
pub(crate) fn query_error(doing: &'static str) -> impl Fn(libsql::Error) -> MemoryError {
    move |error| MemoryError::Query(format!("{doing}: {error}"))
}

/// The database and its connections.
pub(crate) struct Pool {
    database: Database,
    location: Location,
    durability: Durability,
    /// `None` after a failed rollback: the next write opens a fresh one.
    writer: tokio::sync::Mutex<Option<Connection>>,
    readers: Mutex<Vec<Connection>>,
    reader_slots: Arc<Semaphore>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let location = match &self.location {
            Location::Local(path) => path.display().to_string(),
            // The URL is not secret; the token stays out of Debug.
            Location::Remote { url, .. } => url.clone(),
        };
        f.debug_struct("Pool").field("location", &location).finish()
    }
}

impl Pool {
    pub(crate) async fn open(
        location: Location,
        durability: Durability,
    ) -> Result<Self, MemoryError> {
        let database = match &location {
            Location::Local(path) => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        MemoryError::Connection(format!(
                            "cannot create the directory of memory database {}: {e}",
                            path.display()
                        ))
                    })?;
                }
                Builder::new_local(path).build().await.map_err(|e| {
                    MemoryError::Connection(format!(
                        "cannot open memory database {}: {e}",
                        path.display()
                    ))
                })?
            }
            Location::Remote { url, auth_token } => {
                if auth_token.is_empty() {
                    return Err(MemoryError::Connection(format!(
                        "remote memory database {url} needs a non-empty auth_token"
                    )));
                }
                Builder::new_remote(url.clone(), auth_token.expose().to_owned())
                    .build()
                    .await
                    .map_err(|e| {
                        MemoryError::Connection(format!(
                            "cannot reach remote memory database {url}: {e}"
                        ))
                    })?
            }
        };
        let pool = Self {
            database,
            location,
            durability,
            writer: tokio::sync::Mutex::new(None),
            readers: Mutex::new(Vec::new()),
            reader_slots: Arc::new(Semaphore::new(MAX_READERS)),
        };
        if pool.location.is_local() {
            pool.use_wal().await?;
        }
        Ok(pool)
    }

    /// Puts a local file in WAL mode (a property of the file: set once, it
    /// sticks). Switching needs the file to itself, and while another
    /// connection writes a file still in rollback-journal mode (another
    /// process creating the same new database) SQLite answers
    /// `SQLITE_BUSY` at once, without its busy handler; so it retries
    /// within `BUSY_TIMEOUT`.
    async fn use_wal(&self) -> Result<(), MemoryError> {
        let conn = self.reader().await?;
        let deadline = tokio::time::Instant::now() + BUSY_TIMEOUT;
        let mode = loop {
            match journal_mode_wal(&conn).await {
                Err(libsql::Error::SqliteFailure(SQLITE_BUSY, _))
                    if tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                other => break other.map_err(query_error("switching the database to WAL mode"))?,
            }
        };
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(MemoryError::Connection(format!(
                "memory database {} refused WAL mode (journal_mode is '{mode}')",
                self.describe()
            )));
        }
        Ok(())
    }

    pub(crate) fn describe(&self) -> String {
        match &self.location {
            Location::Local(path) => path.display().to_string(),
            Location::Remote { url, .. } => url.clone(),
        }
    }

    /// A new connection with the per-connection settings applied.
    async fn connect(&self) -> Result<Connection, MemoryError> {
        let conn = self.database.connect().map_err(|e| {
            MemoryError::Connection(format!(
                "cannot connect to memory database {}: {e}",
                self.describe()
            ))
        })?;
        if self.location.is_local() {
            conn.busy_timeout(BUSY_TIMEOUT)
                .map_err(query_error("setting the busy timeout"))?;
            // Sorts, transient indices and statement journals stay in
            // memory: a sandboxed guest may not write the temp directory
            // SQLite would pick (it tests it with access(2), which
            // Landlock does not answer, then fails to open the file).
            conn.execute("PRAGMA temp_store = MEMORY", ())
                .await
                .map_err(query_error("keeping temporary storage in memory"))?;
            let synchronous = match self.durability {
                Durability::ProcessCrash => "NORMAL",
                Durability::PowerLoss => "FULL",
            };
            set_pragma(
                &conn,
                &format!("synchronous = {synchronous}"),
                "setting the durability",
            )
            .await?;
            // A checkpoint cannot restart the WAL while readers hold older
            // snapshots (the indexer and searches read all the time), and
            // SQLite never shrinks the file by itself: it stayed at its
            // peak, several times the database. Trimmed after each
            // checkpoint that resets it.
            set_pragma(
                &conn,
                &format!("journal_size_limit = {WAL_LIMIT_BYTES}"),
                "limiting the WAL file",
            )
            .await?;
            // Pages are read from the mapped file instead of being copied
            // in by a `pread` each: a query walks many pages (vectors, FTS5
            // doclists), and at 100k chunks that copying was a third of a
            // hybrid query. Address space only; the kernel's
            // page cache holds the pages either way.
            set_pragma(
                &conn,
                &format!("mmap_size = {MMAP_BYTES}"),
                "mapping the database file",
            )
            .await?;
        }
        // The first statement a server sees: a refused token fails here.
        conn.execute("PRAGMA foreign_keys = ON", ())
            .await
            .map_err(|e| {
                MemoryError::Connection(format!(
                    "cannot use memory database {}: enabling foreign keys: {e}",
                    self.describe()
                ))
            })?;
        Ok(conn)
    }

    /// An idle reader, or a new one.
    pub(crate) async fn reader(&self) -> Result<Reader<'_>, MemoryError> {
        let (conn, _slot) = self.take_reader().await?;
        Ok(Reader {
            pool: self,
            conn,
            _slot,
        })
    }

    /// An idle read connection, or a new one, once one of the
    /// `MAX_READERS` slots is free; owned by the caller: work that may
    /// outlive its caller (a task on the blocking pool) holds it and the
    /// slot, hands the connection back with `release_reader` when done,
    /// then drops the slot.
    pub(crate) async fn take_reader(
        &self,
    ) -> Result<(Connection, OwnedSemaphorePermit), MemoryError> {
        let slot = Arc::clone(&self.reader_slots)
            .acquire_owned()
            .await
            .map_err(|_| MemoryError::Connection("the memory database is closed".into()))?;
        let idle = self
            .readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let conn = match idle {
            Some(conn) => conn,
            None => self.connect().await?,
        };
        Ok((conn, slot))
    }

    /// Keeps `conn` for the next reader; one left inside a transaction (a
    /// cancelled caller) is not reused.
    pub(crate) fn release_reader(&self, conn: Connection) {
        if conn.is_autocommit() {
            self.readers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(conn);
        }
    }

    /// The writer connection, held with the process's write lock.
    async fn writer(
        &self,
    ) -> Result<(tokio::sync::MutexGuard<'_, Option<Connection>>, Connection), MemoryError> {
        let mut slot = self.writer.lock().await;
        let conn = match slot.as_ref() {
            Some(conn) => conn.clone(),
            None => {
                let conn = self.connect().await?;
                *slot = Some(conn.clone());
                conn
            }
        };
        Ok((slot, conn))
    }

    /// Checkpoints and empties the WAL once it outgrew `WAL_LIMIT_BYTES`.
    /// SQLite's automatic checkpoints copy pages back but can only start
    /// the file over when no reader holds an older snapshot, and with
    /// searches and the indexer reading all the time that moment never
    /// came: the WAL grew without bound (gigabytes at 100k chunks). A
    /// `TRUNCATE` checkpoint waits for the readers of the moment to finish
    /// while the write lock holds appends back, so it waits at most
    /// `WAL_TRUNCATE_PATIENCE` (searches take milliseconds) and is tried
    /// again after the next batch when readers kept it out.
    pub(crate) async fn truncate_large_wal(&self) -> Result<(), MemoryError> {
        self.truncate_wal_above(WAL_LIMIT_BYTES).await
    }

    /// `truncate_large_wal` with the limit given.
    async fn truncate_wal_above(&self, limit_bytes: u64) -> Result<(), MemoryError> {
        let Some(wal) = self.wal_path() else {
            return Ok(());
        };
        let size = std::fs::metadata(&wal).map_or(0, |m| m.len());
        if size <= limit_bytes {
            return Ok(());
        }
        let (_slot, conn) = self.writer().await?;
        let failed = query_error("checkpointing the WAL");
        conn.busy_timeout(WAL_TRUNCATE_PATIENCE).map_err(&failed)?;
        let blocked = async {
            let mut rows = conn
                .query("PRAGMA wal_checkpoint(TRUNCATE)", ())
                .await
                .map_err(&failed)?;
            match rows.next().await.map_err(&failed)? {
                Some(row) => Ok(row.get::<i64>(0).map_err(&failed)? != 0),
                None => Ok(false),
            }
        }
        .await;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(&failed)?;
        if blocked? {
            tracing::debug!(
                bytes = size,
                "readers kept the WAL from being emptied; trying later"
            );
        }
        Ok(())
    }

    /// The local database's WAL file (`<db>-wal`).
    fn wal_path(&self) -> Option<std::path::PathBuf> {
        let Location::Local(path) = &self.location else {
            return None;
        };
        let mut wal = path.clone().into_os_string();
        wal.push("-wal");
        Some(wal.into())
    }

    /// Runs `BEGIN IMMEDIATE` on the writer connection; the returned guard
    /// holds the process's write lock until `finish`.
    pub(crate) async fn begin_write(&self) -> Result<WriteTx<'_>, MemoryError> {
        let (slot, conn) = self.writer().await?;
        if !conn.is_autocommit() {
            // A previous writer's future was dropped mid-transaction.
            conn.execute("ROLLBACK", ())
                .await
                .map_err(query_error("rolling back an abandoned transaction"))?;
        }
        conn.execute("BEGIN IMMEDIATE", ())
            .await
            .map_err(query_error("starting a write transaction"))?;
        Ok(WriteTx { slot, conn })
    }
}

/// A pooled read connection, returned to the pool on drop (its slot is
/// freed after that).
pub(crate) struct Reader<'a> {
    pool: &'a Pool,
    conn: Connection,
    _slot: OwnedSemaphorePermit,
}

impl std::ops::Deref for Reader<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.conn
    }
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        self.pool.release_reader(self.conn.clone());
    }
}

/// Runs `work` on tokio's blocking pool and waits for it. libSQL's local
/// calls are synchronous under their async signatures: a search of a large
/// database run inline would hold a runtime worker, and every task queued
/// on it, for milliseconds. `Handle::block_on` still drives a remote
/// database's network I/O from there.
pub(crate) async fn off_runtime<T, F>(work: F) -> Result<T, MemoryError>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || handle.block_on(work))
        .await
        .map_err(|error| MemoryError::Query(format!("a database task failed: {error}")))
}

/// An open write transaction on the writer connection.
pub(crate) struct WriteTx<'a> {
    slot: tokio::sync::MutexGuard<'a, Option<Connection>>,
    conn: Connection,
}

impl std::ops::Deref for WriteTx<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.conn
    }
}

impl WriteTx<'_> {
    /// Commits when `result` is `Ok`, rolls back otherwise, and returns it.
    pub(crate) async fn finish<T>(
        mut self,
        result: Result<T, MemoryError>,
    ) -> Result<T, MemoryError> {
        match result {
            Ok(value) => match self.conn.execute("COMMIT", ()).await {
                Ok(_) => Ok(value),
                Err(error) => {
                    self.abandon().await;
                    Err(MemoryError::Query(format!(
                        "committing a write transaction: {error}"
                    )))
                }
            },
            Err(error) => {
                self.abandon().await;
                Err(error)
            }
        }
    }

    /// Rolls back; a connection that cannot roll back is discarded so the
    /// next write starts clean.
    async fn abandon(&mut self) {
        if self.conn.is_autocommit() {
            return;
        }
        if let Err(error) = self.conn.execute("ROLLBACK", ()).await {
            tracing::warn!(%error, "rollback failed; reopening the writer connection");
            *self.slot = None;
        }
    }
}

/// Runs `PRAGMA {assignment}`, reading whatever rows it answers (some
/// pragmas answer their new value, and a statement left unread keeps
/// its snapshot open).
async fn set_pragma(
    conn: &Connection,
    assignment: &str,
    doing: &'static str,
) -> Result<(), MemoryError> {
    let failed = query_error(doing);
    let mut rows = conn
        .query(&format!("PRAGMA {assignment}"), ())
        .await
        .map_err(&failed)?;
    while rows.next().await.map_err(&failed)?.is_some() {}
    Ok(())
}

/// SQLite's primary result code for a lock held by another connection.
const SQLITE_BUSY: std::ffi::c_int = 5;

/// `PRAGMA journal_mode = WAL`, answering the mode now in force.
async fn journal_mode_wal(conn: &Connection) -> Result<String, libsql::Error> {
    let mut rows = conn.query("PRAGMA journal_mode = WAL", ()).await?;
    match rows.next().await? {
        Some(row) => row.get(0),
        None => Ok(String::new()),
    }
}

/// Milliseconds since the Unix epoch (stored timestamps).
pub(crate) use types::clock::now_ms;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn at_most_max_readers_are_out_at_once_and_a_freed_slot_is_reused() {
        let dir = tempfile::tempdir().unwrap();
        let pool = Arc::new(
            Pool::open(
                Location::Local(dir.path().join("m.db")),
                Durability::default(),
            )
            .await
            .unwrap(),
        );
        let mut taken = Vec::new();
        for _ in 0..MAX_READERS {
            taken.push(pool.take_reader().await.unwrap());
        }
        // One more waits for a slot (it is never refused).
        let waiting = tokio::spawn({
            let pool = Arc::clone(&pool);
            async move { pool.take_reader().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        assert_eq!(pool.reader_slots.available_permits(), 0);

        // Giving one back (connection, then slot) lets it through, on the
        // returned connection rather than a new one.
        let (conn, slot) = taken.pop().unwrap();
        pool.release_reader(conn);
        drop(slot);
        let (conn, _slot) = waiting.await.unwrap().unwrap();
        assert!(pool.readers.lock().unwrap().is_empty());
        let mut rows = conn.query("SELECT 1", ()).await.unwrap();
        assert!(rows.next().await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_wal_over_the_limit_is_emptied_unless_a_reader_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let pool = Pool::open(
            Location::Local(dir.path().join("m.db")),
            Durability::default(),
        )
        .await
        .unwrap();
        let wal = pool.wal_path().unwrap();
        let wal_size = || std::fs::metadata(&wal).map_or(0, |m| m.len());
        let write = |rows: usize| {
            let pool = &pool;
            async move {
                let tx = pool.begin_write().await.unwrap();
                tx.execute("CREATE TABLE IF NOT EXISTS filler (text TEXT)", ())
                    .await
                    .unwrap();
                for _ in 0..rows {
                    tx.execute("INSERT INTO filler VALUES (?1)", ["x".repeat(4096)])
                        .await
                        .unwrap();
                }
                tx.finish(Ok(())).await.unwrap();
            }
        };
        write(64).await;
        let grown = wal_size();
        assert!(grown > 128 << 10, "{grown}");
        // Under the limit: left alone.
        pool.truncate_wal_above(grown).await.unwrap();
        assert_eq!(wal_size(), grown);
        // A reader in the middle of a read keeps it (the call gives up
        // after its patience instead of holding appends back).
        let (reader, _slot) = pool.take_reader().await.unwrap();
        let mut reading = reader.query("SELECT text FROM filler", ()).await.unwrap();
        assert!(reading.next().await.unwrap().is_some());
        write(16).await;
        let started = std::time::Instant::now();
        pool.truncate_wal_above(64 << 10).await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(wal_size() > 0, "a reader's snapshot was truncated away");
        // Once the reader is done, it is emptied.
        drop(reading);
        pool.release_reader(reader);
        pool.truncate_wal_above(64 << 10).await.unwrap();
        assert_eq!(wal_size(), 0);
        // The data survived.
        let (reader, _slot) = pool.take_reader().await.unwrap();
        let mut count = reader
            .query("SELECT count(*) FROM filler", ())
            .await
            .unwrap();
        let row = count.next().await.unwrap().unwrap();
        assert_eq!(row.get::<i64>(0).unwrap(), 80);
    }

    /// SQLite's `synchronous` level on a connection of `pool`.
    async fn synchronous(pool: &Pool) -> i64 {
        let conn = pool.reader().await.unwrap();
        let mut rows = conn.query("PRAGMA synchronous", ()).await.unwrap();
        rows.next().await.unwrap().unwrap().get(0).unwrap()
    }

    #[tokio::test]
    async fn durability_sets_how_often_commits_reach_the_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let crash = Pool::open(Location::Local(path.clone()), Durability::ProcessCrash)
            .await
            .unwrap();
        assert_eq!(synchronous(&crash).await, 1, "NORMAL");
        let power = Pool::open(Location::Local(path), Durability::PowerLoss)
            .await
            .unwrap();
        assert_eq!(synchronous(&power).await, 2, "FULL");
    }
}

//! Durable ladder sessions through sqlx: [`SqliteStore`] (the default, one file in WAL mode) and
//! [`PgStore`] (PostgreSQL, for several workers sharing one database). Both implement
//! [`ladder_runtime::store::Store`] with the same SQL, apart from how each database tells the time; both
//! run their versioned migrations (`migrations/`) when opened.
//!
//! Schema: `sessions` holds each session's state after its last committed turn, the turn begun
//! and not committed (if any) and the lease; `events` is the append-only log of every committed
//! event; `tool_calls` records completed tool calls by idempotency key.

#![warn(missing_docs)]

use async_trait::async_trait;
use ladder_runtime::store::{
    Claim, OpenTurn, RecordedCall, SessionSummary, Store, StoreError, Stored,
};
use ladder_runtime::{Event, SessionState};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, PgPool, QueryBuilder, Row, SqlitePool};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// Where `ladderc` keeps sessions unless told otherwise.
pub const DEFAULT_SQLITE_PATH: &str = ".ladder/sessions.db";

/// Opens the store a URL names: `postgres://…` / `postgresql://…`, or `sqlite:PATH` / a plain
/// path for SQLite (the file and its directory are created on first use).
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PgStore::connect(url).await?))
    } else {
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        Ok(Arc::new(SqliteStore::open(Path::new(path)).await?))
    }
}

fn db(e: sqlx::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn json_err(e: serde_json::Error) -> StoreError {
    StoreError::Backend(format!("a stored record is not valid JSON: {e}"))
}

/// The state as stored: everything but the event log, which has its own table.
fn snapshot(state: &SessionState) -> Result<String, StoreError> {
    // Turns hand their state over with the log already taken out: one pass, no copy.
    if state.events.is_empty() {
        return serde_json::to_string(state).map_err(json_err);
    }
    let mut value = serde_json::to_value(state).map_err(json_err)?;
    if let Some(map) = value.as_object_mut() {
        map.insert("events".into(), serde_json::Value::Array(Vec::new()));
    }
    Ok(value.to_string())
}

/// An update conditioned on holding the lease changed one row, or the lease was lost.
fn held(rows: u64, id: &str) -> Result<(), StoreError> {
    if rows == 1 {
        Ok(())
    } else {
        Err(StoreError::LeaseLost(id.into()))
    }
}

/// The worker part of a lease holder (`worker/turn-token`).
fn worker_of(owner: &str) -> String {
    owner.split('/').next().unwrap_or_default().to_string()
}

/// The open-turn columns as an [`OpenTurn`].
fn open_turn(turn: Option<i64>, text: Option<String>) -> Option<OpenTurn> {
    turn.map(|turn| OpenTurn {
        turn: u32::try_from(turn).unwrap_or(0),
        text: text.unwrap_or_default(),
    })
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Rows of events inserted per statement (4 parameters each, far below either database's limit).
const EVENT_BATCH: usize = 256;

/// One implementation for both databases: `$now` is the SQL for the database's clock in unix
/// milliseconds (leases use the database's clock, so workers' clocks may differ).
macro_rules! sql_store {
    ($store:ident, $db:ty, $now:literal) => {
        #[async_trait]
        impl Store for $store {
            async fn create(&self, state: &SessionState) -> Result<(), StoreError> {
                let done = sqlx::query(concat!(
                    "INSERT INTO sessions (id, state, current, turns, ended, created_at, updated_at) ",
                    "VALUES ($1, $2, $3, $4, $5, ", $now, ", ", $now, ") ON CONFLICT (id) DO NOTHING"
                ))
                .bind(&state.id)
                .bind(snapshot(state)?)
                .bind(&state.current)
                .bind(i64::from(state.turn))
                .bind(i64::from(state.ended))
                .execute(&self.pool)
                .await
                .map_err(db)?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::Exists(state.id.clone()));
                }
                Ok(())
            }

            async fn load(&self, id: &str) -> Result<Option<Stored>, StoreError> {
                let Some(row) =
                    sqlx::query("SELECT state, open_turn, open_text FROM sessions WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&self.read)
                        .await
                        .map_err(db)?
                else {
                    return Ok(None);
                };
                let state: String = row.try_get(0).map_err(db)?;
                Ok(Some(Stored {
                    state: serde_json::from_str(&state).map_err(json_err)?,
                    open_turn: open_turn(row.try_get(1).map_err(db)?, row.try_get(2).map_err(db)?),
                }))
            }

            async fn events(&self, id: &str) -> Result<Vec<Event>, StoreError> {
                let rows = sqlx::query("SELECT event FROM events WHERE session_id = $1 ORDER BY seq")
                    .bind(id)
                    .fetch_all(&self.read)
                    .await
                    .map_err(db)?;
                rows.iter()
                    .map(|row| {
                        let text: String = row.try_get(0).map_err(db)?;
                        serde_json::from_str(&text).map_err(json_err)
                    })
                    .collect()
            }

            async fn list(&self, limit: u32) -> Result<Vec<SessionSummary>, StoreError> {
                let rows = sqlx::query(concat!(
                    "SELECT id, current, turns, ended, created_at, updated_at, open_turn, ",
                    "CASE WHEN lease_expires > ", $now, " THEN lease_owner END ",
                    "FROM sessions ORDER BY updated_at DESC, id LIMIT $1"
                ))
                .bind(i64::from(limit))
                .fetch_all(&self.read)
                .await
                .map_err(db)?;
                rows.iter()
                    .map(|row| {
                        let turns: i64 = row.try_get(2).map_err(db)?;
                        let ended: i64 = row.try_get(3).map_err(db)?;
                        let open_turn: Option<i64> = row.try_get(6).map_err(db)?;
                        Ok(SessionSummary {
                            id: row.try_get(0).map_err(db)?,
                            current: row.try_get(1).map_err(db)?,
                            turns: u32::try_from(turns).unwrap_or(0),
                            ended: ended != 0,
                            created_at: row.try_get(4).map_err(db)?,
                            updated_at: row.try_get(5).map_err(db)?,
                            open_turn: open_turn.and_then(|t| u32::try_from(t).ok()),
                            // `worker/turn-token`: the worker is what a reader wants.
                            leased_by: row
                                .try_get::<Option<String>, _>(7)
                                .map_err(db)?
                                .map(|o| worker_of(&o)),
                        })
                    })
                    .collect()
            }

            async fn acquire(
                &self,
                id: &str,
                owner: &str,
                ttl: Duration,
                text: &str,
            ) -> Result<Claim, StoreError> {
                // SET expressions see the row as it was: a turn already open stays as it is.
                let claimed = sqlx::query(concat!(
                    "UPDATE sessions SET lease_owner = $1, lease_expires = ", $now, " + $2, ",
                    "open_owner = CASE WHEN open_turn IS NULL THEN $1 ELSE open_owner END, ",
                    "open_text = CASE WHEN open_turn IS NULL THEN $3 ELSE open_text END, ",
                    "open_turn = CASE WHEN open_turn IS NULL THEN turns + 1 ELSE open_turn END ",
                    "WHERE id = $4 AND (lease_owner IS NULL OR lease_expires < ", $now, ") ",
                    "RETURNING state, open_turn, open_text, open_owner"
                ))
                .bind(owner)
                .bind(millis(ttl))
                .bind(text)
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(db)?;
                if let Some(row) = claimed {
                    let state: String = row.try_get(0).map_err(db)?;
                    let open_owner: Option<String> = row.try_get(3).map_err(db)?;
                    // A turn this claim began is ours; one begun by another holder was interrupted.
                    let interrupted = open_turn(row.try_get(1).map_err(db)?, row.try_get(2).map_err(db)?)
                        .filter(|_| open_owner.as_deref().is_some_and(|by| by != owner));
                    return Ok(Claim {
                        state: serde_json::from_str(&state).map_err(json_err)?,
                        interrupted,
                    });
                }
                let holder: Option<Option<String>> =
                    sqlx::query_scalar("SELECT lease_owner FROM sessions WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(db)?;
                match holder {
                    None => Err(StoreError::NotFound(id.into())),
                    Some(holder) => Err(StoreError::Busy {
                        id: id.into(),
                        owner: holder
                            .map(|o| worker_of(&o))
                            .unwrap_or_else(|| "another worker".into()),
                    }),
                }
            }

            async fn renew(&self, id: &str, owner: &str, ttl: Duration) -> Result<(), StoreError> {
                let done = sqlx::query(concat!(
                    "UPDATE sessions SET lease_expires = ", $now, " + $1 ",
                    "WHERE id = $2 AND lease_owner = $3"
                ))
                .bind(millis(ttl))
                .bind(id)
                .bind(owner)
                .execute(&self.pool)
                .await
                .map_err(db)?;
                held(done.rows_affected(), id)
            }

            async fn delete(&self, id: &str) -> Result<(), StoreError> {
                let mut tx = self.pool.begin().await.map_err(db)?;
                // The session row first: it is the one a running turn's lease guards.
                let gone = sqlx::query(concat!(
                    "DELETE FROM sessions WHERE id = $1 ",
                    "AND (lease_owner IS NULL OR lease_expires <= ", $now, ")"
                ))
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db)?
                .rows_affected();
                if gone == 0 {
                    tx.rollback().await.map_err(db)?;
                    let owner: Option<Option<String>> =
                        sqlx::query_scalar("SELECT lease_owner FROM sessions WHERE id = $1")
                            .bind(id)
                            .fetch_optional(&self.pool)
                            .await
                            .map_err(db)?;
                    return Err(match owner {
                        None => StoreError::NotFound(id.into()),
                        Some(owner) => StoreError::Busy {
                            id: id.into(),
                            owner: owner.map(|o| worker_of(&o)).unwrap_or_default(),
                        },
                    });
                }
                for table in ["DELETE FROM events WHERE session_id = $1", "DELETE FROM tool_calls WHERE session_id = $1"] {
                    sqlx::query(table).bind(id).execute(&mut *tx).await.map_err(db)?;
                }
                tx.commit().await.map_err(db)?;
                Ok(())
            }

            async fn release(&self, id: &str, owner: &str) -> Result<(), StoreError> {
                sqlx::query(
                    "UPDATE sessions SET lease_owner = NULL, lease_expires = NULL \
                     WHERE id = $1 AND lease_owner = $2",
                )
                .bind(id)
                .bind(owner)
                .execute(&self.pool)
                .await
                .map_err(db)?;
                Ok(())
            }

            async fn begin_turn(
                &self,
                id: &str,
                owner: &str,
                turn: u32,
                text: &str,
            ) -> Result<(), StoreError> {
                let done = sqlx::query(
                    "UPDATE sessions SET open_turn = $1, open_text = $2, open_owner = $3 \
                     WHERE id = $4 AND lease_owner = $3",
                )
                .bind(i64::from(turn))
                .bind(text)
                .bind(owner)
                .bind(id)
                .execute(&self.pool)
                .await
                .map_err(db)?;
                held(done.rows_affected(), id)
            }

            async fn recall(&self, id: &str, key: &str) -> Result<Option<RecordedCall>, StoreError> {
                let Some(row) = sqlx::query(
                    "SELECT tool, arguments, result, ok FROM tool_calls \
                     WHERE session_id = $1 AND idempotency_key = $2",
                )
                .bind(id)
                .bind(key)
                .fetch_optional(&self.read)
                .await
                .map_err(db)?
                else {
                    return Ok(None);
                };
                let arguments: String = row.try_get(1).map_err(db)?;
                let result: String = row.try_get(2).map_err(db)?;
                let ok: i64 = row.try_get(3).map_err(db)?;
                Ok(Some(RecordedCall {
                    tool: row.try_get(0).map_err(db)?,
                    arguments: serde_json::from_str(&arguments).map_err(json_err)?,
                    result: serde_json::from_str(&result).map_err(json_err)?,
                    ok: ok != 0,
                }))
            }

            async fn record(&self, id: &str, key: &str, call: &RecordedCall) -> Result<(), StoreError> {
                sqlx::query(concat!(
                    "INSERT INTO tool_calls ",
                    "(session_id, idempotency_key, tool, arguments, result, ok, created_at) ",
                    "VALUES ($1, $2, $3, $4, $5, $6, ", $now, ") ",
                    "ON CONFLICT (session_id, idempotency_key) DO NOTHING"
                ))
                .bind(id)
                .bind(key)
                .bind(&call.tool)
                .bind(call.arguments.to_string())
                .bind(call.result.to_string())
                .bind(i64::from(call.ok))
                .execute(&self.pool)
                .await
                .map_err(db)?;
                Ok(())
            }

            async fn commit_turn(
                &self,
                id: &str,
                owner: &str,
                state: &SessionState,
                events: &[Event],
                release: bool,
            ) -> Result<(), StoreError> {
                let encoded = events
                    .iter()
                    .map(serde_json::to_string)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(json_err)?;
                let mut tx = self.pool.begin().await.map_err(db)?;
                // The write comes first so that SQLite takes its write lock at once; it also
                // reserves the events' sequence numbers.
                let count = i64::try_from(events.len()).unwrap_or(i64::MAX);
                let reserved: Option<i64> = sqlx::query_scalar(if release {
                    concat!(
                        "UPDATE sessions SET state = $1, current = $2, turns = $3, ended = $4, ",
                        "updated_at = ", $now, ", open_turn = NULL, open_text = NULL, ",
                        "open_owner = NULL, event_count = event_count + $5, ",
                        "lease_owner = NULL, lease_expires = NULL ",
                        "WHERE id = $6 AND lease_owner = $7 RETURNING event_count"
                    )
                } else {
                    concat!(
                        "UPDATE sessions SET state = $1, current = $2, turns = $3, ended = $4, ",
                        "updated_at = ", $now, ", open_turn = NULL, open_text = NULL, ",
                        "open_owner = NULL, event_count = event_count + $5 ",
                        "WHERE id = $6 AND lease_owner = $7 RETURNING event_count"
                    )
                })
                .bind(snapshot(state)?)
                .bind(&state.current)
                .bind(i64::from(state.turn))
                .bind(i64::from(state.ended))
                .bind(count)
                .bind(id)
                .bind(owner)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
                let Some(total) = reserved else {
                    tx.rollback().await.map_err(db)?;
                    return Err(StoreError::LeaseLost(id.into()));
                };
                let last = total - count;
                let turn = i64::from(state.turn);
                for (chunk_no, chunk) in encoded.chunks(EVENT_BATCH).enumerate() {
                    let base = last + 1 + (chunk_no * EVENT_BATCH) as i64;
                    let mut insert: QueryBuilder<'_, $db> =
                        QueryBuilder::new("INSERT INTO events (session_id, seq, turn, event) ");
                    insert.push_values(chunk.iter().enumerate(), |mut row, (i, event)| {
                        row.push_bind(id)
                            .push_bind(base + i as i64)
                            .push_bind(turn)
                            .push_bind(event.as_str());
                    });
                    insert.build().execute(&mut *tx).await.map_err(db)?;
                }
                tx.commit().await.map_err(db)?;
                Ok(())
            }
        }
    };
}

/// Sessions in one SQLite file (WAL mode, synchronous commits).
///
/// SQLite has one writer at a time; a second writer waits in SQLite's busy handler, which sleeps
/// in steps of up to 100 ms. So writes go through a pool of one connection, where they queue in
/// order without sleeping, and reads through a pool of their own (WAL readers never wait).
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    read: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Backend(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let cannot_open =
            |e: sqlx::Error| StoreError::Backend(format!("cannot open {}: {e}", path.display()));
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await
            .map_err(cannot_open)?;
        migrator(SQLITE_MIGRATIONS)
            .await?
            .run(&pool)
            .await
            .map_err(|e| StoreError::Backend(format!("cannot migrate {}: {e}", path.display())))?;
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.read_only(true))
            .await
            .map_err(cannot_open)?;
        Ok(SqliteStore { pool, read })
    }
}

sql_store!(
    SqliteStore,
    sqlx::Sqlite,
    "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)"
);

/// Sessions in a PostgreSQL database, shared by any number of workers.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    /// The same pool: PostgreSQL needs no separate readers.
    read: PgPool,
}

impl PgStore {
    /// Connects and migrates (concurrent workers migrate safely: sqlx takes an advisory lock).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let unreachable =
            |e: sqlx::Error| StoreError::Backend(format!("cannot connect to PostgreSQL: {e}"));
        let options = PgConnectOptions::from_str(url).map_err(unreachable)?;
        // One plain connection first, so that a wrong address or password fails at once instead
        // of after the pool's acquire timeout.
        PgConnection::connect_with(&options)
            .await
            .map_err(unreachable)?
            .close()
            .await
            .map_err(unreachable)?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with(options);
        migrator(POSTGRES_MIGRATIONS)
            .await?
            .run(&pool)
            .await
            .map_err(|e| {
                StoreError::Backend(format!("cannot migrate the PostgreSQL database: {e}"))
            })?;
        Ok(PgStore {
            read: pool.clone(),
            pool,
        })
    }
}

sql_store!(
    PgStore,
    sqlx::Postgres,
    "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT"
);

/// Helpers for tests that need a database of their own (feature `testing`).
#[cfg(feature = "testing")]
pub mod testing {
    use sqlx::Connection;

    /// The PostgreSQL server for tests (`LADDER_TEST_POSTGRES`, an admin URL such as
    /// `postgres://postgres:postgres@127.0.0.1:5432/postgres`). Without it the PostgreSQL tests
    /// are skipped, unless `LADDER_REQUIRE_POSTGRES` is set (as `.ci/run` does): then they fail.
    pub fn postgres_admin_url() -> Option<String> {
        match std::env::var("LADDER_TEST_POSTGRES") {
            Ok(url) if !url.is_empty() => Some(url),
            _ if std::env::var_os("LADDER_REQUIRE_POSTGRES").is_some() => {
                panic!("LADDER_REQUIRE_POSTGRES is set but LADDER_TEST_POSTGRES is not")
            }
            _ => {
                eprintln!("skipped: set LADDER_TEST_POSTGRES to run the PostgreSQL tests");
                None
            }
        }
    }

    /// Creates a fresh, empty database on the test server and returns its URL.
    pub async fn fresh_postgres_database(admin_url: &str) -> String {
        let name = format!("ladder_t_{:016x}", fastrand::u64(..));
        let mut conn = sqlx::PgConnection::connect(admin_url)
            .await
            .expect("connect to the test PostgreSQL server");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create a test database");
        let base = admin_url.rsplit_once('/').map_or(admin_url, |(b, _)| b);
        format!("{base}/{name}")
    }

    /// A fresh store of each kind to test against: a SQLite file, and a PostgreSQL database when
    /// a test server is configured.
    pub async fn fresh_store_urls() -> Vec<String> {
        let mut urls = vec![format!("sqlite:{}", fresh_sqlite_path().display())];
        if let Some(admin) = postgres_admin_url() {
            urls.push(fresh_postgres_database(&admin).await);
        }
        urls
    }

    /// A fresh SQLite file path in the temporary directory.
    pub fn fresh_sqlite_path() -> std::path::PathBuf {
        std::env::temp_dir().join(format!(
            "ladder-test-{}-{:016x}/sessions.db",
            std::process::id(),
            fastrand::u64(..)
        ))
    }
}

/// The migrations of each database, compiled into the binary: `(version, description, SQL)`,
/// as sqlx reads them from `migrations/<db>/<version>_<description>.sql` (so the checksums it
/// records match those of databases migrated by earlier versions). Embedded with `include_str!`
/// instead of sqlx's `migrate!` macro, which would build sqlx's proc-macro crate and a host copy
/// of its dependencies (BENCHMARKS.md, "Cold build").
type Embedded = &'static [(i64, &'static str, &'static str)];

const SQLITE_MIGRATIONS: Embedded = &[(
    1,
    "sessions",
    include_str!("../migrations/sqlite/0001_sessions.sql"),
)];

const POSTGRES_MIGRATIONS: Embedded = &[(
    1,
    "sessions",
    include_str!("../migrations/postgres/0001_sessions.sql"),
)];

#[derive(Debug)]
struct EmbeddedMigrations(Embedded);

impl<'s> sqlx::migrate::MigrationSource<'s> for EmbeddedMigrations {
    fn resolve(
        self,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<
                    Output = Result<Vec<sqlx::migrate::Migration>, sqlx::error::BoxDynError>,
                > + Send
                + 's,
        >,
    > {
        Box::pin(async move {
            Ok(self
                .0
                .iter()
                .map(|&(version, description, sql)| {
                    sqlx::migrate::Migration::new(
                        version,
                        description.into(),
                        sqlx::migrate::MigrationType::Simple,
                        sql.into(),
                        sql.starts_with("-- no-transaction"),
                    )
                })
                .collect())
        })
    }
}

async fn migrator(migrations: Embedded) -> Result<sqlx::migrate::Migrator, StoreError> {
    sqlx::migrate::Migrator::new(EmbeddedMigrations(migrations))
        .await
        .map_err(|e| StoreError::Backend(format!("cannot read the built-in migrations: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The embedded migrations are exactly what sqlx reads from the migration folders (same
    /// versions, descriptions and checksums), so databases migrated by an earlier build, with
    /// sqlx's `migrate!`, open unchanged; a new migration file not listed here fails this test.
    #[tokio::test]
    async fn the_embedded_migrations_are_the_folders() {
        for (embedded, folder) in [
            (SQLITE_MIGRATIONS, "migrations/sqlite"),
            (POSTGRES_MIGRATIONS, "migrations/postgres"),
        ] {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(folder);
            let from_disk = sqlx::migrate::Migrator::new(dir.as_path()).await.unwrap();
            let ours = migrator(embedded).await.unwrap();
            let key = |m: &sqlx::migrate::Migration| {
                (
                    m.version,
                    m.description.to_string(),
                    m.checksum.to_vec(),
                    m.no_tx,
                )
            };
            assert_eq!(
                ours.iter().map(key).collect::<Vec<_>>(),
                from_disk.iter().map(key).collect::<Vec<_>>(),
                "{folder}"
            );
        }
    }
}

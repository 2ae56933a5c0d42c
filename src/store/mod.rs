//! The database: sqlx on SQLite in the data dir (the default: WAL, migrations, busy timeout)
//! or on PostgreSQL (`--database-url postgres://…`, shared by any number of replicas).
//!
//! It holds actual state — what the reconciler has applied — so that a restarted server knows
//! what is in force before it reads a single manifest, and `claw diff` can compare without a
//! server. One file per table family; all SQL lives in this module.
//!
//! One SQL text serves both engines wherever the SQL is portable: [`Store`] holds a [`Db`],
//! and a table module runs its statement through [`with_pool!`] (or [`with_tx!`] inside a
//! transaction), which expands the statement once per engine — no `Any` driver, no boxing.
//! Portable means `$N` placeholders, `ON CONFLICT`, `RETURNING`, `TRUE`/`FALSE`, times computed
//! in Rust and stored as fixed-width RFC 3339 TEXT. Where the dialects differ (prompt search,
//! claims with `FOR UPDATE SKIP LOCKED`) a module matches on the engine itself.

/// Stores a vocabulary enum (task status, delivery status) in a TEXT column as its `as_str`
/// name, and reads it back with its `FromStr`: the column keeps the same values as plain text,
/// and a row with a name the enum does not know fails to decode, naming it. Implemented for
/// both engines. Defined before the table modules so they can use it.
macro_rules! text_column {
    ($t:ty) => {
        text_column!(
            $t,
            sqlx::Sqlite,
            sqlx::sqlite::SqliteTypeInfo,
            sqlx::sqlite::SqliteValueRef<'r>
        );
        text_column!(
            $t,
            sqlx::Postgres,
            sqlx::postgres::PgTypeInfo,
            sqlx::postgres::PgValueRef<'r>
        );
    };
    ($t:ty, $db:ty, $info:ty, $value:ty) => {
        impl sqlx::Type<$db> for $t {
            fn type_info() -> $info {
                <str as sqlx::Type<$db>>::type_info()
            }

            fn compatible(ty: &$info) -> bool {
                <&str as sqlx::Type<$db>>::compatible(ty)
            }
        }

        impl<'q> sqlx::Encode<'q, $db> for $t {
            fn encode_by_ref(
                &self,
                buf: &mut <$db as sqlx::Database>::ArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&str as sqlx::Encode<'q, $db>>::encode(self.as_str(), buf)
            }
        }

        impl<'r> sqlx::Decode<'r, $db> for $t {
            fn decode(value: $value) -> Result<Self, sqlx::error::BoxDynError> {
                Ok(<&str as sqlx::Decode<'r, $db>>::decode(value)?.parse::<$t>()?)
            }
        }
    };
}

/// Runs `$body` once per engine with `$pool` bound to the store's pool (`&SqlitePool` or
/// `&PgPool`) and the type `Engine` naming the engine (`sqlx::Sqlite` / `sqlx::Postgres`, for
/// a `QueryBuilder::<Engine>`). The body is compiled for both; only the store's engine runs.
macro_rules! with_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store.db() {
            $crate::store::Db::Sqlite($pool) => {
                #[allow(dead_code)]
                type Engine = sqlx::Sqlite;
                $body
            }
            $crate::store::Db::Postgres($pool) => {
                #[allow(dead_code)]
                type Engine = sqlx::Postgres;
                $body
            }
        }
    };
}
#[allow(unused_imports)]
pub(crate) use with_pool;

/// [`with_pool!`] for a transaction: `$conn` is the engine's connection (`&mut
/// SqliteConnection` / `&mut PgConnection`) inside the [`Tx`] `$tx` (a `&mut Tx`).
macro_rules! with_tx {
    ($tx:expr, $conn:ident => $body:expr) => {
        match $tx {
            $crate::store::Tx::Sqlite(t) => {
                #[allow(dead_code)]
                type Engine = sqlx::Sqlite;
                let $conn: &mut sqlx::SqliteConnection = &mut *t;
                $body
            }
            $crate::store::Tx::Postgres(t) => {
                #[allow(dead_code)]
                type Engine = sqlx::Postgres;
                let $conn: &mut sqlx::PgConnection = &mut *t;
                $body
            }
        }
    };
}
#[allow(unused_imports)]
pub(crate) use with_tx;

pub mod cluster;
pub mod deliveries;
pub mod idempotency;
pub mod outbox;
pub mod resources;
pub mod schedules;
pub mod secrets;
pub mod stats;
pub mod tasks;
pub mod tokens;
pub mod webhooks;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

/// The database file's name inside the data dir.
pub const DB_FILE: &str = "claw.db";

/// How much of the database file reads map (bytes); SQLite caps it at the file's size.
const MMAP_SIZE: &str = "268435456";

/// Connections per replica to PostgreSQL.
const PG_MAX_CONNECTIONS: u32 = 10;

/// Errors of the store, naming the database (its file, or its URL without the password).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {target}: {source}")]
    Open {
        target: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("database {target}: migration failed: {source}")]
    Migrate {
        target: String,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    #[error("database URL {url}: {reason}")]
    Url { url: String, reason: String },
    #[error("database query failed: {0}")]
    Query(#[from] sqlx::Error),
    #[error(transparent)]
    Secret(#[from] secrets::SecretKeyError),
}

/// The engine and its pool.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A write transaction on either engine (see [`with_tx!`]); dropped without
/// [`Tx::commit`], it rolls back.
pub enum Tx {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

impl Tx {
    /// Commits the transaction.
    pub async fn commit(self) -> Result<(), StoreError> {
        match self {
            Tx::Sqlite(t) => t.commit().await?,
            Tx::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }

    /// Rolls the transaction back (what dropping it does, but awaited and checked).
    pub async fn rollback(self) -> Result<(), StoreError> {
        match self {
            Tx::Sqlite(t) => t.rollback().await?,
            Tx::Postgres(t) => t.rollback().await?,
        }
        Ok(())
    }
}

/// A handle on the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    db: Db,
    /// This process's id among the replicas sharing the database (hostname-pid-random).
    replica_id: Arc<str>,
    /// The key that opens secrets kept in the database, if one was given.
    secret_key: Option<Arc<secrets::SecretKey>>,
    /// Task list totals kept for filters asked again (SQLite; see [`tasks::list`]).
    list_totals: Arc<tasks::ListTotals>,
}

/// Where the database is: the SQLite file in the data dir (the default), or a PostgreSQL URL.
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// `url` with its password replaced by `***`, for errors and logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let mut redacted = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => format!("{scheme}://{userinfo}@{host}"),
        },
        None => format!("{scheme}://{authority}"),
    };
    // A password may also come as a query parameter.
    let mut first = true;
    if let Some((path, query)) = tail.split_once('?') {
        redacted.push_str(path);
        for pair in query.split('&') {
            redacted.push(if first { '?' } else { '&' });
            first = false;
            match pair.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => {
                    redacted.push_str(k);
                    redacted.push_str("=***");
                }
                _ => redacted.push_str(pair),
            }
        }
    } else {
        redacted.push_str(tail);
    }
    redacted
}

/// A random id for this process among replicas: `hostname-pid-random`.
fn new_replica_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "claw".to_owned());
    let random: u32 = rand::random();
    format!("{host}-{}-{random:08x}", std::process::id())
}

impl Store {
    /// Opens (creating if needed) the database in `data_dir` and runs pending migrations.
    pub async fn open(data_dir: &Path) -> Result<Store, StoreError> {
        let path = data_dir.join(DB_FILE);
        prepare_data_dir(data_dir, &path.display().to_string())?;
        let store = Self::connect_sqlite(&path, true).await?;
        restrict_db_files(&path);
        Ok(store)
    }

    /// Opens the database `url` names (PostgreSQL), or without one the SQLite database in
    /// `data_dir`, and runs pending migrations.
    pub async fn open_with(data_dir: &Path, url: Option<&str>) -> Result<Store, StoreError> {
        match url {
            None => Self::open(data_dir).await,
            Some(url) => {
                // The data dir still holds skills, the pull-mode clone and file secrets.
                prepare_data_dir(data_dir, &data_dir.display().to_string())?;
                Self::connect_postgres(url, true).await
            }
        }
    }

    /// Opens an existing database for CLI verbs (SQLite read-only); `None` when there is none
    /// yet (no SQLite file, or a PostgreSQL database no server has migrated).
    pub async fn open_existing(
        data_dir: &Path,
        url: Option<&str>,
    ) -> Result<Option<Store>, StoreError> {
        if let Some(url) = url {
            let store = Self::connect_postgres(url, false).await?;
            let Db::Postgres(pool) = &store.db else {
                return Ok(None);
            };
            let migrated: bool = sqlx::query_scalar("SELECT to_regclass('resources') IS NOT NULL")
                .fetch_one(pool)
                .await?;
            return Ok(migrated.then_some(store));
        }
        let path = data_dir.join(DB_FILE);
        if !path.exists() {
            return Ok(None);
        }
        Self::connect_sqlite(&path, false).await.map(Some)
    }

    fn with_db(db: Db) -> Store {
        Store {
            db,
            replica_id: Arc::from(new_replica_id()),
            secret_key: None,
            list_totals: Arc::default(),
        }
    }

    async fn connect_sqlite(path: &Path, writable: bool) -> Result<Store, StoreError> {
        let err = |source| StoreError::Open {
            target: path.display().to_string(),
            source,
        };
        let options = SqliteConnectOptions::from_str("sqlite:")
            .map_err(err)?
            .filename(path)
            .create_if_missing(writable)
            .read_only(!writable)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true)
            // Reads map the file instead of copying pages through each connection's small
            // private cache: a filtered search visits every match (one b-tree lookup each),
            // and at 100,000 tasks those lookups thrash a 2 MB cache into a syscall apiece.
            // Mapped pages are the OS page cache, shared by every connection.
            .pragma("mmap_size", MMAP_SIZE)
            // Statement journals (each multi-row upsert of a large apply has one) in memory,
            // not in a temp file written page by page: start-up on 100,000 resources spent a
            // fifth of its SQLite time in those writes.
            .pragma("temp_store", "MEMORY")
            // No checkpoint inside a commit: the one that pushed the WAL past its threshold
            // copied it into the database and fsynced both on the committing caller's path (at
            // start-up on 100,000 resources, 56 MB and 0.2-0.8 s before listening). `claw serve`
            // checkpoints from a task of its own ([`Store::checkpoint`]); a process's last
            // connection checkpoints when it closes.
            .pragma("wal_autocheckpoint", "0");
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(err)?;
        if writable {
            sqlx::migrate!("./migrations/sqlite")
                .run(&pool)
                .await
                .map_err(|source| StoreError::Migrate {
                    target: path.display().to_string(),
                    source,
                })?;
        }
        Ok(Self::with_db(Db::Sqlite(pool)))
    }

    async fn connect_postgres(url: &str, migrate: bool) -> Result<Store, StoreError> {
        let target = redact_url(url);
        if !is_postgres_url(url) {
            return Err(StoreError::Url {
                url: target,
                reason: "not a PostgreSQL URL; give postgres://USER:PASSWORD@HOST:PORT/DATABASE \
                         (or leave --database-url unset for SQLite in the data dir)"
                    .into(),
            });
        }
        let mut options = PgConnectOptions::from_str(url).map_err(|e| StoreError::Url {
            url: target.clone(),
            reason: e.to_string().replace(url, &target),
        })?;
        if !migrate {
            // CLI verbs only read.
            options = options.options([("default_transaction_read_only", "on")]);
        }
        let err = |source| StoreError::Open {
            target: target.clone(),
            source,
        };
        // One connection first: its error says why (refused, authentication, no such
        // database), where the pool's would only say it timed out.
        {
            use sqlx::{ConnectOptions as _, Connection as _};
            let first = options.connect().await.map_err(err)?;
            let _ = first.close().await;
        }
        let pool = PgPoolOptions::new()
            .max_connections(PG_MAX_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(err)?;
        if migrate {
            // sqlx holds an advisory lock while it migrates: replicas starting together
            // migrate once.
            sqlx::migrate!("./migrations/postgres")
                .run(&pool)
                .await
                .map_err(|source| StoreError::Migrate {
                    target: target.clone(),
                    source,
                })?;
        }
        Ok(Self::with_db(Db::Postgres(pool)))
    }

    /// The engine and its pool, for the table modules (see [`with_pool!`]).
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// True on PostgreSQL: other replicas may share the database, so work is claimed.
    pub fn is_postgres(&self) -> bool {
        matches!(self.db, Db::Postgres(_))
    }

    /// This process's id among the replicas sharing the database (`hostname-pid-random`); the
    /// `replica` a claimed task records.
    pub fn replica_id(&self) -> &str {
        &self.replica_id
    }

    /// The key that opens secrets kept in the database, if one was given.
    pub fn secret_key(&self) -> Option<&secrets::SecretKey> {
        self.secret_key.as_deref()
    }

    /// Gives the store the key for secrets kept in the database.
    pub fn set_secret_key(&mut self, key: Option<secrets::SecretKey>) {
        self.secret_key = key.map(Arc::new);
    }

    /// SQLite: copies what the WAL holds into the database file, as far as readers allow,
    /// without waiting for them (`wal_checkpoint(PASSIVE)`); the WAL starts over once all of it
    /// is copied. Nothing on PostgreSQL.
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        if let Db::Sqlite(pool) = &self.db {
            sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(pool)
                .await?;
        }
        Ok(())
    }

    /// Begins a transaction (deferred on SQLite).
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        Ok(match &self.db {
            Db::Sqlite(p) => Tx::Sqlite(p.begin().await?),
            Db::Postgres(p) => Tx::Postgres(p.begin().await?),
        })
    }

    /// Begins a transaction that holds SQLite's write lock from its `BEGIN` (`BEGIN
    /// IMMEDIATE`; see `tasks`); a plain transaction on PostgreSQL.
    pub async fn begin_write(&self) -> Result<Tx, StoreError> {
        Ok(match &self.db {
            Db::Sqlite(p) => Tx::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
            Db::Postgres(p) => Tx::Postgres(p.begin().await?),
        })
    }

    /// Waits for open connections to finish and closes them.
    pub async fn close(&self) {
        match &self.db {
            Db::Sqlite(p) => p.close().await,
            Db::Postgres(p) => p.close().await,
        }
    }
}

/// Creates the data dir, owner only: it holds stored secrets and task records.
fn prepare_data_dir(data_dir: &Path, target: &str) -> Result<(), StoreError> {
    std::fs::create_dir_all(data_dir).map_err(|e| StoreError::Open {
        target: target.to_owned(),
        source: sqlx::Error::Io(e),
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700));
    }
    Ok(())
}

/// Makes the database and its WAL / shared-memory files readable by the owner only (SQLite
/// creates them with the umask's mode, usually world-readable).
fn restrict_db_files(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for suffix in ["", "-wal", "-shm"] {
            let mut file = path.as_os_str().to_owned();
            file.push(suffix);
            let _ = std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600));
        }
    }
}

/// The test PostgreSQL cluster (shared with the integration tests).
#[cfg(test)]
#[path = "../../tests/it/postgres.rs"]
pub(crate) mod test_pg;

/// Raw statements for tests, on either engine, and stores of both engines.
#[cfg(test)]
pub(crate) mod test_sql {
    use super::Store;

    /// What keeps a test store alive (its temp dir on SQLite).
    pub type Guard = Option<tempfile::TempDir>;

    /// A fresh store on SQLite, and one on a fresh PostgreSQL database when PostgreSQL is
    /// installed: store tests run on both engines.
    pub async fn stores() -> Vec<(Guard, Store)> {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = Store::open(dir.path()).await.unwrap();
        let mut out = vec![(Some(dir), sqlite)];
        if super::test_pg::bin_dir().is_some() {
            let url = super::test_pg::fresh_database();
            let dir = tempfile::tempdir().unwrap();
            let pg = Store::open_with(dir.path(), Some(&url)).await.unwrap();
            out.push((Some(dir), pg));
        }
        out
    }

    /// Runs `sql`; the number of rows it changed.
    pub async fn exec(store: &Store, sql: &str) -> u64 {
        with_pool!(store, pool => sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).execute(pool).await.unwrap().rows_affected())
    }

    /// The one integer `sql` answers.
    pub async fn int(store: &Store, sql: &str) -> i64 {
        with_pool!(store, pool => sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(pool).await.unwrap())
    }

    /// The one text `sql` answers.
    pub async fn text(store: &Store, sql: &str) -> String {
        with_pool!(store, pool => sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(pool).await.unwrap())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_their_password() {
        assert_eq!(
            redact_url("postgres://claw:s3cret@db:5432/claw"),
            "postgres://claw:***@db:5432/claw"
        );
        assert_eq!(
            redact_url("postgres://db/claw?user=u&password=p&sslmode=require"),
            "postgres://db/claw?user=u&password=***&sslmode=require"
        );
        assert_eq!(redact_url("postgres://u@db/claw"), "postgres://u@db/claw");
        assert_eq!(redact_url("postgresql://db"), "postgresql://db");
    }

    #[tokio::test]
    async fn sqlite_commits_leave_the_wal_to_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_with(dir.path(), None).await.unwrap();
        let Db::Sqlite(pool) = store.db() else {
            panic!("not SQLite")
        };
        sqlx::query("CREATE TABLE filler (x BLOB)")
            .execute(pool)
            .await
            .unwrap();
        // Twice the default autocheckpoint threshold (1,000 pages), in 20 commits.
        for _ in 0..20 {
            let mut tx = pool.begin().await.unwrap();
            for _ in 0..100 {
                sqlx::query("INSERT INTO filler VALUES (randomblob(4000))")
                    .execute(&mut *tx)
                    .await
                    .unwrap();
            }
            tx.commit().await.unwrap();
        }
        let size = |file: &str| std::fs::metadata(dir.path().join(file)).unwrap().len();
        assert!(
            size("claw.db-wal") > 8_000_000,
            "the WAL was checkpointed by a commit"
        );
        assert!(
            size(DB_FILE) < 2_000_000,
            "the WAL was checkpointed by a commit"
        );
        store.checkpoint().await.unwrap();
        assert!(
            size(DB_FILE) > 8_000_000,
            "Store::checkpoint copied the WAL"
        );
    }
}

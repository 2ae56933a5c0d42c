//! The embedded database: sqlx on SQLite in the data dir (WAL, migrations, busy timeout).
//!
//! It holds actual state — what the reconciler has applied — so that a restarted server knows
//! what is in force before it reads a single manifest, and `claw diff` can compare without a
//! server. One file per table family; all SQL lives in this module.

/// Stores a vocabulary enum (task status, delivery status) in a TEXT column as its `as_str`
/// name, and reads it back with its `FromStr`: the column keeps the same values as plain text,
/// and a row with a name the enum does not know fails to decode, naming it. Defined before the
/// table modules so they can use it.
macro_rules! text_column {
    ($t:ty) => {
        impl sqlx::Type<sqlx::Sqlite> for $t {
            fn type_info() -> sqlx::sqlite::SqliteTypeInfo {
                <str as sqlx::Type<sqlx::Sqlite>>::type_info()
            }

            fn compatible(ty: &sqlx::sqlite::SqliteTypeInfo) -> bool {
                <&str as sqlx::Type<sqlx::Sqlite>>::compatible(ty)
            }
        }

        impl<'q> sqlx::Encode<'q, sqlx::Sqlite> for $t {
            fn encode_by_ref(
                &self,
                buf: &mut <sqlx::Sqlite as sqlx::Database>::ArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&str as sqlx::Encode<'q, sqlx::Sqlite>>::encode(self.as_str(), buf)
            }
        }

        impl<'r> sqlx::Decode<'r, sqlx::Sqlite> for $t {
            fn decode(
                value: sqlx::sqlite::SqliteValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                Ok(<&str as sqlx::Decode<'r, sqlx::Sqlite>>::decode(value)?.parse::<$t>()?)
            }
        }
    };
}

pub mod deliveries;
pub mod outbox;
pub mod resources;
pub mod schedules;
pub mod stats;
pub mod tasks;
pub mod tokens;
pub mod webhooks;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

/// The database file's name inside the data dir.
pub const DB_FILE: &str = "claw.db";

/// How much of the database file reads map (bytes); SQLite caps it at the file's size.
const MMAP_SIZE: &str = "268435456";

/// Errors of the store, naming the database file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: sqlx::Error,
    },
    #[error("database {path}: migration failed: {source}")]
    Migrate {
        path: PathBuf,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    #[error("database query failed: {0}")]
    Query(#[from] sqlx::Error),
}

/// A handle on the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
}

impl Store {
    /// Opens (creating if needed) the database in `data_dir` and runs pending migrations.
    pub async fn open(data_dir: &Path) -> Result<Store, StoreError> {
        let path = data_dir.join(DB_FILE);
        std::fs::create_dir_all(data_dir).map_err(|e| StoreError::Open {
            path: path.clone(),
            source: sqlx::Error::Io(e),
        })?;
        // The data dir holds stored secrets and task records: owner only.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700));
        }
        let store = Self::connect(&path, true).await?;
        restrict_db_files(&path);
        Ok(store)
    }

    /// Opens an existing database read-only, for CLI verbs; `None` when there is none yet.
    pub async fn open_existing(data_dir: &Path) -> Result<Option<Store>, StoreError> {
        let path = data_dir.join(DB_FILE);
        if !path.exists() {
            return Ok(None);
        }
        Self::connect(&path, false).await.map(Some)
    }

    async fn connect(path: &Path, writable: bool) -> Result<Store, StoreError> {
        let err = |source| StoreError::Open {
            path: path.to_path_buf(),
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
            .pragma("mmap_size", MMAP_SIZE);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(err)?;
        if writable {
            sqlx::migrate!("./migrations")
                .run(&pool)
                .await
                .map_err(|source| StoreError::Migrate {
                    path: path.to_path_buf(),
                    source,
                })?;
        }
        Ok(Store { pool })
    }

    /// The connection pool, for the table modules.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Waits for open connections to finish and closes them.
    pub async fn close(&self) {
        self.pool.close().await;
    }
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

//! Assembles a running server: store -> (pull mode: the clone) -> live state -> reconciler
//! (first full pass) -> watcher, puller, last-use flusher -> HTTP listener; and takes it down in
//! the reverse order.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::api::{self, ratelimit::RateLimiter, AppState, Limits};
use crate::gitops::pull::{self, PullError, PullOptions, Trigger};
use crate::gitops::watcher;
use crate::live::Live;
use crate::manifest::scaffold;
use crate::manifest::write::WriteError;
use crate::reconcile::{controller, Controller, Scope, Stopped};
use crate::store::{self, Store, StoreError};
use crate::tasks::service::TaskService;
use crate::webhooks::clock::{Clock, SystemClock};
use crate::webhooks::dispatcher::Dispatcher;

/// How to run the server (the `serve` flags).
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub manifests: PathBuf,
    pub data: PathBuf,
    pub listen: String,
    /// Quiet time after a file event before reconciling.
    pub debounce: Duration,
    /// Interval of the full resync.
    pub resync: Duration,
    pub limits: Limits,
    /// Let the first pass delete what vanished with the manifests.
    pub confirm_prune: bool,
    /// Pull mode: the manifests dir is a clone of this remote (`manifests` is not used).
    pub git: Option<PullOptions>,
    /// API write-backs may grant or widen manifest-only settings (SPEC §5a).
    pub allow_api_privileged: bool,
    /// PostgreSQL instead of SQLite in the data dir (`postgres://…`).
    pub database_url: Option<String>,
    /// A file holding the key for secrets kept in the database (else `CLAW_SECRET_KEY`).
    pub secret_key_file: Option<PathBuf>,
    /// The clock schedules fire by (tests drive a manual one).
    pub clock: Arc<dyn Clock>,
}

impl ServeOptions {
    /// The documented defaults for a manifests and data dir.
    pub fn new(manifests: impl Into<PathBuf>, data: impl Into<PathBuf>) -> Self {
        ServeOptions {
            manifests: manifests.into(),
            data: data.into(),
            listen: "127.0.0.1:3000".into(),
            debounce: Duration::from_millis(100),
            resync: Duration::from_secs(300),
            limits: Limits::default(),
            confirm_prune: false,
            git: None,
            allow_api_privileged: false,
            database_url: None,
            secret_key_file: None,
            clock: Arc::new(SystemClock),
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot initialise the manifests dir: {0}")]
    Init(#[from] WriteError),
    #[error("manifests dir {path}: {source}")]
    Manifests {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot watch {path}: {source}")]
    Watch {
        path: PathBuf,
        #[source]
        source: notify::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Stopped(#[from] Stopped),
    #[error(transparent)]
    Pull(#[from] PullError),
    #[error(transparent)]
    Cluster(#[from] crate::cluster::JoinError),
}

/// A running server.
pub struct Server {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// The admin token, when start-up initialised the manifests dir: show it once.
    pub admin_token: Option<String>,
    /// The reconciler, for in-process callers (tests, benchmarks).
    pub controller: Controller,
    pub live: Arc<Live>,
    /// The webhook dispatcher, for in-process callers awaiting delivery progress.
    pub webhooks: Arc<Dispatcher>,
    /// The schedule runner, for in-process callers awaiting its passes.
    pub schedules: Arc<crate::schedules::Runner>,
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    store: Store,
}

/// The key for secrets kept in the database: from `secret_key_file`, else `CLAW_SECRET_KEY`.
/// Required on PostgreSQL (webhook secrets live in the shared database there).
fn secret_key(
    options: &ServeOptions,
    store: &Store,
) -> Result<Option<store::secrets::SecretKey>, StoreError> {
    use store::secrets::{SecretKey, SecretKeyError};
    let key = match &options.secret_key_file {
        Some(path) => Some(SecretKey::from_file(path)?),
        None => match std::env::var("CLAW_SECRET_KEY") {
            Ok(text) if !text.trim().is_empty() => {
                Some(SecretKey::from_base64(&text, "CLAW_SECRET_KEY")?)
            }
            _ => None,
        },
    };
    if key.is_none() && store.is_postgres() {
        return Err(SecretKeyError::Missing.into());
    }
    Ok(key)
}

/// Logs the secrets in the database this replica's key cannot open (sealed with another key),
/// by name: deliveries that need them fail until every replica has the same key.
async fn report_unopenable_secrets(store: &Store) -> Result<(), StoreError> {
    let unopenable: Vec<String> = store::secrets::open_all(store)
        .await?
        .into_iter()
        .filter_map(|(_, value)| value.err())
        .collect();
    for reason in &unopenable {
        tracing::error!("{reason}");
    }
    if !unopenable.is_empty() {
        tracing::error!(
            count = unopenable.len(),
            "this replica cannot open some secrets kept in the database (listed above)"
        );
    }
    Ok(())
}

/// Starts the server and returns once it accepts connections, after the first full reconcile.
pub async fn start(mut options: ServeOptions) -> Result<Server, ServeError> {
    // Until the first pass is done (see `crate::alloc`).
    let purge = crate::alloc::purge_at_once();
    // Before the pass, whose state would otherwise lie under their short-lived allocations.
    let routers = api::Routers::new();
    let mut store = Store::open_with(&options.data, options.database_url.as_deref()).await?;
    store.set_secret_key(secret_key(&options, &store)?);
    if store.is_postgres() {
        report_unopenable_secrets(&store).await?;
    }
    let checkout = match &options.git {
        Some(pull) => {
            // The remote passes the egress policy like every outbound request; before the
            // first clone there is no Config yet, so the built-in policy applies.
            let policy = crate::egress::policy_of(&crate::manifest::kinds::ConfigSpec::default());
            pull::check_remote(&pull.url, policy).await?;
            let (pull, data) = (pull.clone(), options.data.clone());
            let (checkout, manifests) =
                tokio::task::spawn_blocking(move || pull::prepare(&pull, &data))
                    .await
                    .map_err(|e| ServeError::Manifests {
                        path: options.data.clone(),
                        source: std::io::Error::other(e),
                    })??;
            options.manifests = manifests;
            Some(checkout)
        }
        None => None,
    };
    let mut admin_token = None;
    // In pull mode the repository is the source of truth: never scaffold into the clone.
    if checkout.is_none() && scaffold::needs_init(&options.manifests) {
        if store::resources::load_all::<std::hash::RandomState>(&store)
            .await?
            .is_empty()
        {
            let done = scaffold::init(&options.manifests)?;
            admin_token = done.admin_token;
        } else {
            // Resources were applied before: an empty dir here is more likely an unmounted
            // volume than a new install, so leave it to the prune guard.
            tracing::warn!(
                manifests = %options.manifests.display(),
                "the manifests dir declares no Token, but this data dir has applied resources; not initialising it"
            );
        }
    }
    std::fs::create_dir_all(&options.manifests).map_err(|source| ServeError::Manifests {
        path: options.manifests.clone(),
        source,
    })?;

    // Temp files of writes a crash interrupted (manifest write-backs, stored secrets). The
    // manifests tree is walked beside the first pass (it reads no hidden file, and nothing
    // writes before the server listens), not before it: on 100,000 files a walk is ~0.2 s.
    let cleaning = {
        let (manifests, data) = (options.manifests.clone(), options.data.clone());
        tokio::task::spawn_blocking(move || {
            crate::manifest::write::clean_temp_files(&manifests)
                + crate::manifest::secret::clean_temp_files(&data)
        })
    };

    let live = Live::new(options.manifests.clone(), options.data.clone());
    if store.cluster_pool().is_some() {
        // Shared rows are the leader's to write, and whether this replica leads is known
        // once it joins (below): until then it converges without writing them.
        live.cluster.expect_peers();
    }
    let stop = CancellationToken::new();
    let (controller, reconciler) = controller::start(
        controller::Options {
            root: options.manifests.clone(),
            confirm_prune: options.confirm_prune,
            checkout: checkout.clone(),
        },
        store.clone(),
        live.clone(),
        stop.child_token(),
    )
    .await?;
    let report = controller.reconcile_fast(Scope::Full).await?;
    tracing::info!(
        revision = %report.revision,
        files = report.changed_files,
        applied = report.applied.len(),
        errors = report.errors,
        ms = report.duration_ms,
        "initial reconcile done"
    );

    drop(purge);
    match cleaning.await {
        Ok(0) => {}
        Ok(removed) => tracing::info!(removed, "removed temp files left by interrupted writes"),
        Err(e) => tracing::warn!("removing temp files left by interrupted writes: {e}"),
    }
    warn_if_no_model_key(&live);

    let mut tasks = vec![reconciler];
    tasks.push(
        watcher::spawn(
            options.manifests.clone(),
            controller.clone(),
            watcher::Timing {
                debounce: options.debounce,
                resync: options.resync,
            },
            stop.child_token(),
        )
        .map_err(|source| ServeError::Watch {
            path: options.manifests.clone(),
            source,
        })?,
    );
    let git_trigger = match (&options.git, checkout) {
        (Some(pull), Some(checkout)) => {
            let trigger = Arc::new(Trigger::new(pull.webhook_secret.clone()));
            tasks.push(pull::spawn(
                checkout,
                pull.interval,
                trigger.clone(),
                controller.clone(),
                live.clone(),
                stop.child_token(),
            ));
            Some(trigger)
        }
        _ => None,
    };
    tasks.push(spawn_last_used_flusher(
        live.clone(),
        store.clone(),
        stop.child_token(),
    ));
    if !store.is_postgres() {
        tasks.push(spawn_checkpointer(store.clone(), stop.child_token()));
    }
    // Listening before tasks start: with replicas, this one's address is in its first
    // heartbeat, which comes before its first claim.
    let listener = tokio::net::TcpListener::bind(&options.listen)
        .await
        .map_err(|source| ServeError::Listen {
            addr: options.listen.clone(),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Listen {
        addr: options.listen.clone(),
        source,
    })?;
    live.cluster.set_address(addr.to_string());
    let limiter = Arc::new(RateLimiter::new(&live.config.load().spec.rate_limit));
    if let Some(pool) = store.cluster_pool() {
        tasks.extend(
            live.cluster
                .join(
                    store.replica_id(),
                    pool,
                    live.clone(),
                    limiter.clone(),
                    stop.child_token(),
                )
                .await?,
        );
        // Leading from the start: the shared rows hold this replica's picture before it
        // serves (its first pass, before it joined, wrote none).
        controller.take_over().await?;
        if let Some(trigger) = &git_trigger {
            tasks.push(spawn_revision_follower(
                live.clone(),
                trigger.clone(),
                stop.child_token(),
            ));
        }
    }
    let task_service = TaskService::open(store.clone(), live.clone(), &options.data).await?;
    tasks.push(task_service.spawn_dispatcher(stop.child_token()));
    let webhooks = Arc::new(Dispatcher::new(
        store.clone(),
        live.clone(),
        live.secrets(),
        Arc::new(SystemClock),
    ));
    tasks.push(webhooks.clone().spawn(stop.child_token()));
    let schedules = crate::schedules::Runner::new(
        store.clone(),
        task_service.clone(),
        live.clone(),
        options.clock.clone(),
    );
    tasks.push(schedules.clone().spawn(stop.child_token()));

    let app = api::router(
        AppState::new(api::Shared {
            live: live.clone(),
            controller: controller.clone(),
            limiter,
            tasks: task_service.clone(),
            store: store.clone(),
            webhooks: webhooks.clone(),
            schedules: schedules.clone(),
            git_trigger,
            allow_api_privileged: options.allow_api_privileged,
            status_body: Default::default(),
        }),
        options.limits,
        routers,
    );
    tasks.push(tokio::spawn(serve_http(
        listener,
        app,
        options.limits,
        stop.clone(),
    )));
    tracing::info!(%addr, manifests = %options.manifests.display(), data = %options.data.display(), "listening");
    Ok(Server {
        addr,
        admin_token,
        controller,
        live,
        webhooks,
        schedules,
        stop,
        tasks,
        store,
    })
}

impl Server {
    /// Stops accepting requests, lets in-flight ones finish, stops the background tasks and
    /// the MCP servers (their processes are gone when this returns), saves token last-use
    /// times and closes the database.
    pub async fn shutdown(self) {
        self.stop.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
        // After the tasks (none calls a tool any more), before the store closes.
        self.live.mcp.shutdown().await;
        flush_last_used(&self.live, &self.store).await;
        self.store.close().await;
    }

    /// The base URL, e.g. `http://127.0.0.1:3000`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The store (its engine, this replica's id).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// This process's id among replicas sharing a database (see `Store::replica_id`).
    pub fn replica_id(&self) -> &str {
        self.store.replica_id()
    }
}

/// The accept loop (axum::serve has no header-read timeout and no connection cap): at most
/// [`api::Limits::connection_cap`] connections at once — when the cap is reached one log line
/// says so and further connections wait in the listen backlog until one closes — each served
/// by hyper's HTTP/1 with the header-read timeout and a header-size backstop (the exact 431 is
/// `api::header_limits`'). On `stop`, accepting ends and open connections finish their
/// in-flight request (bounded wait; a stream such as SSE is then dropped).
async fn serve_http(
    listener: tokio::net::TcpListener,
    app: api::App,
    limits: api::Limits,
    stop: CancellationToken,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;

    let cap = limits.connection_cap();
    let permits = Arc::new(tokio::sync::Semaphore::new(cap));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_headers(limits.max_headers.saturating_mul(4).max(16))
        .max_buf_size(limits.max_header_bytes.saturating_mul(4).max(8192));
    let mut last_cap_log: Option<std::time::Instant> = None;
    loop {
        let permit = match permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                // One line per minute at most while the cap holds.
                if last_cap_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                    tracing::warn!(
                        cap,
                        "connection cap reached: new connections wait until one closes (raise --max-connections and the descriptor limit if this is legitimate load)"
                    );
                    last_cap_log = Some(std::time::Instant::now());
                }
                tokio::select! {
                    _ = stop.cancelled() => break,
                    permit = permits.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                }
            }
        };
        let stream = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // E.g. out of descriptors: back off instead of spinning.
                    tracing::warn!("accept error: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let service = TowerToHyperService::new(app.clone());
        let conn_stop = stop.clone();
        let http = http.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let conn = http.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = conn_stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(10), conn).await;
                }
            }
        });
    }
    drop(listener);
    // Every permit back: the open connections are done.
    let all = u32::try_from(cap).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(Duration::from_secs(11), permits.acquire_many(all)).await;
}

/// One log line at start when the configured model provider has no usable API key, so a
/// newcomer learns it before the first task fails. Names the reference, never a value.
fn warn_if_no_model_key(live: &Live) {
    use crate::manifest::kinds::Provider;
    let config = live.config.load();
    let model = &config.spec.model;
    let needs_key = match model.provider {
        Provider::Anthropic => true,
        // A local OpenAI-compatible server often needs none.
        Provider::Openai => model.base_url.is_none(),
        Provider::Command => false,
    };
    if !needs_key {
        return;
    }
    let problem = match &model.api_key {
        None => "model.api_key is not set".to_owned(),
        Some(reference) => match live.secrets().resolve(reference) {
            Ok(value) if !value.trim().is_empty() => return,
            Ok(_) => "model.api_key resolves to an empty value".to_owned(),
            Err(e) => format!("model.api_key: {e}"),
        },
    };
    tracing::warn!(
        provider = model.provider.as_str(),
        "{problem}; tasks will fail until the Config gives the model a key (e.g. export ANTHROPIC_API_KEY before `claw serve`)"
    );
}

/// Pull mode with replicas: another replica pushed a write-back, so fetch now.
fn spawn_revision_follower(
    live: Arc<Live>,
    trigger: Arc<Trigger>,
    stop: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let Some(mut notices) = live.cluster.subscribe() else {
            return;
        };
        loop {
            let notice = tokio::select! {
                _ = stop.cancelled() => break,
                notice = notices.recv() => notice,
            };
            match notice {
                Ok(crate::cluster::Notice::Revision { from }) if from != live.cluster.id() => {
                    trigger.fire()
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
    })
}

fn spawn_last_used_flusher(
    live: Arc<Live>,
    store: Store,
    stop: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(15));
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = every.tick() => flush_last_used(&live, &store).await,
            }
        }
    })
}

/// SQLite's WAL checkpoints, off every caller's path (see `Store::checkpoint`): once a second,
/// the first one right away (start-up's first pass leaves its whole write in the WAL).
fn spawn_checkpointer(store: Store, stop: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = every.tick() => {
                    if let Err(e) = store.checkpoint().await {
                        tracing::warn!("cannot checkpoint the database's WAL: {e}");
                    }
                }
            }
        }
    })
}

async fn flush_last_used(live: &Live, store: &Store) {
    let uses = live.tokens.take_dirty_last_used();
    if let Err(e) = store::tokens::record_last_used(store, &uses).await {
        tracing::warn!("cannot record token last use: {e}");
    }
}

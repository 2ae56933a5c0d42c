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
use crate::webhooks::clock::SystemClock;
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
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    store: Store,
}

/// Starts the server and returns once it accepts connections, after the first full reconcile.
pub async fn start(mut options: ServeOptions) -> Result<Server, ServeError> {
    let store = Store::open(&options.data).await?;
    let checkout = match &options.git {
        Some(pull) => {
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
        if store::resources::load_all(&store).await?.is_empty() {
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

    let live = Live::new(options.manifests.clone(), options.data.clone());
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
    let task_service = TaskService::open(store.clone(), live.clone(), &options.data).await?;
    tasks.push(task_service.spawn_dispatcher(stop.child_token()));
    let webhooks = Arc::new(Dispatcher::new(
        store.clone(),
        live.clone(),
        live.secrets(),
        Arc::new(SystemClock),
    ));
    tasks.push(webhooks.clone().spawn(stop.child_token()));

    let limiter = Arc::new(RateLimiter::new(&live.config.load().spec.rate_limit));
    let app = api::router(
        AppState::new(api::Shared {
            live: live.clone(),
            controller: controller.clone(),
            limiter,
            tasks: task_service.clone(),
            store: store.clone(),
            webhooks: webhooks.clone(),
            git_trigger,
        }),
        options.limits,
    );
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
    let http_stop = stop.clone();
    tasks.push(tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(http_stop.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::error!("http server failed: {e}");
        }
    }));
    tracing::info!(%addr, manifests = %options.manifests.display(), data = %options.data.display(), "listening");
    Ok(Server {
        addr,
        admin_token,
        controller,
        live,
        webhooks,
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

async fn flush_last_used(live: &Live, store: &Store) {
    let uses = live.tokens.take_dirty_last_used();
    if let Err(e) = store::tokens::record_last_used(store, &uses).await {
        tracing::warn!("cannot record token last use: {e}");
    }
}

//! The HTTP API (axum): `/api/v1/...` plus `/healthz`, `/readyz`, `/metrics`, and the web
//! dashboard at `/` and `/ui/...` ([`ui`]).
//!
//! Requests pass [`App`]'s front steps (header bounds -> request id -> the request's span ->
//! request timeout and declared body size -> body limit -> the routes -> JSON errors, which
//! log server errors) -> for `/api/v1`, one layer doing metrics, authentication, scope and
//! rate limit ([`auth`]) and `Idempotency-Key` on creating POSTs ([`idempotency`]); other
//! routes have metrics alone (`POST /api/v1/hooks/git` accepts a signature instead of the
//! token, see [`hooks`]) -> one module per
//! resource; each module's routes carry their full paths. The OpenAI-compatible `/v1/...`
//! ([`openai`]) passes its Config switch, then the same authentication; the JSON-errors layer
//! gives its errors OpenAI's shape. Handlers read [`Live`] state and ask the
//! [`Controller`] for writes; they never touch manifest files or the store's tables directly.

pub mod auth;
pub mod config;
pub mod error;
pub mod hooks;
pub mod idempotency;
pub mod mcp;
pub mod metrics;
pub mod openai;
pub mod openapi;
pub mod ratelimit;
pub mod resources;
pub mod schedules;
pub mod skills;
pub mod stats;
pub mod status;
pub mod tasks;
pub mod ui;
pub mod webhooks;
pub mod whoami;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::Instrument;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::live::Live;
use crate::reconcile::Controller;
use crate::tasks::service::TaskService;
use error::{ApiError, ErrorBody};
use ratelimit::RateLimiter;

/// What every handler can reach: one shared allocation, so the clones axum makes for every
/// layer and extractor of every request cost one reference count, not one per part.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> AppState {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The parts of [`AppState`].
pub struct Shared {
    pub live: Arc<Live>,
    pub controller: Controller,
    pub limiter: Arc<RateLimiter>,
    pub tasks: Arc<TaskService>,
    pub store: crate::store::Store,
    pub webhooks: Arc<crate::webhooks::dispatcher::Dispatcher>,
    /// The schedule runner (manual runs, its clock for next run times).
    pub schedules: Arc<crate::schedules::Runner>,
    /// Pull mode's `POST /api/v1/hooks/git` target (`None` outside pull mode).
    pub git_trigger: Option<Arc<crate::gitops::pull::Trigger>>,
    /// `--allow-api-privileged`: writes may grant manifest-only settings (SPEC §5a).
    pub allow_api_privileged: bool,
    /// The last `GET /status` body, served again while nothing in it changed.
    pub status_body: status::BodyCache,
}

impl Shared {
    /// Refuses (403 `manifest_only`) a write of `kind` from spec `old` to spec `new` that
    /// grants a manifest-only setting, unless the server allows it.
    pub fn check_privilege(
        &self,
        kind: crate::manifest::Kind,
        old: &serde_json::Value,
        new: &serde_json::Value,
    ) -> Result<(), ApiError> {
        if self.allow_api_privileged {
            return Ok(());
        }
        match crate::manifest::privilege::widened(kind, old, new) {
            Some(p) => Err(ApiError::manifest_only(&p)),
            None => Ok(()),
        }
    }
}

/// Limits of the HTTP layer (SPEC §4 "HTTP limits"; each a `claw serve` flag).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request body accepted, in bytes (413 beyond).
    pub max_body_bytes: usize,
    /// A connection that has not sent a complete request header within this is closed.
    pub header_read_timeout: Duration,
    /// Largest request header, in bytes: request line plus every field (431 beyond).
    pub max_header_bytes: usize,
    /// Most header fields in one request (431 beyond).
    pub max_headers: usize,
    /// Connections served at once; further ones wait in the listen backlog. 0: derived from
    /// the process's descriptor limit ([`Limits::connection_cap`]).
    pub max_connections: usize,
    /// Longest a handler may take to produce its response head (503 beyond). A streaming
    /// body (SSE) is not cut: its head is sent at once and keep-alive comments follow.
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1024 * 1024,
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 64 * 1024,
            max_headers: 100,
            max_connections: 0,
            request_timeout: Duration::from_secs(120),
        }
    }
}

impl Limits {
    /// The connection cap in force: `max_connections`, or else three quarters of the soft
    /// descriptor limit less a reserve for the database, manifests, skills and clients.
    pub fn connection_cap(&self) -> usize {
        if self.max_connections > 0 {
            return self.max_connections;
        }
        let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map(|(soft, _)| soft)
            .unwrap_or(1024);
        let soft = usize::try_from(soft).unwrap_or(usize::MAX).min(1 << 20);
        (soft.saturating_sub(128) / 4 * 3).max(16)
    }
}

/// Every route, grouped by how it authenticates. Each group is an [`OpenApiRouter`]: a
/// route is registered together with its OpenAPI description ([`openapi`] assembles them).
pub(crate) struct Routes {
    /// Behind [`auth::authenticate`]: `/api/v1/...` and `/metrics`.
    pub bearer: OpenApiRouter<AppState>,
    /// `POST /api/v1/hooks/git`: a signature, or else the bearer token.
    pub hooks: OpenApiRouter<AppState>,
    /// No token: `/healthz`, `/readyz`, `/api/v1/openapi.json`.
    pub public: OpenApiRouter<AppState>,
    /// The OpenAI-compatible `/v1/...` ([`openai`]): the bearer token, behind the Config's
    /// switch; errors in OpenAI's shape.
    pub openai: OpenApiRouter<AppState>,
}

pub(crate) fn routes() -> Routes {
    Routes {
        bearer: OpenApiRouter::new()
            .merge(status::router())
            .merge(config::router())
            .merge(resources::router())
            .merge(tasks::router())
            .merge(webhooks::router())
            .merge(schedules::router())
            .merge(skills::router())
            .merge(mcp::router())
            .merge(stats::router())
            .merge(whoami::router())
            .merge(metrics::router()),
        hooks: hooks::router(),
        public: OpenApiRouter::new()
            .routes(routes!(healthz))
            .routes(routes!(readyz))
            .routes(routes!(openapi::serve)),
        openai: openai::router(),
    }
}

/// The routes as plain axum routers, their OpenAPI descriptions dropped (only
/// [`openapi::document`] reads those). Start-up builds them before its first pass: the
/// descriptions are ~2 MB of short-lived allocations, which built after the pass would sit on
/// top of everything it keeps, at the process's peak RSS.
pub struct Routers {
    bearer: Router<AppState>,
    hooks: Router<AppState>,
    public: Router<AppState>,
    openai: Router<AppState>,
}

impl Routers {
    pub fn new() -> Routers {
        let Routes {
            bearer,
            hooks,
            public,
            openai,
        } = routes();
        Routers {
            bearer: bearer.into(),
            hooks: hooks.into(),
            public: public.into(),
            openai: openai.into(),
        }
    }
}

impl Default for Routers {
    fn default() -> Self {
        Self::new()
    }
}

/// The whole application.
pub fn router(state: AppState, limits: Limits, routers: Routers) -> App {
    let Routers {
        bearer,
        hooks,
        public,
        openai,
    } = routers;
    // One layer for every `/api/v1` route: metrics, authentication and `Idempotency-Key`
    // (inside authentication: a key belongs to the caller's token).
    let bearer = bearer.route_layer(Bearer(state.clone()));
    let hooks = hooks
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            hooks::authenticate_unless_signed,
        ))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ));
    // The switch before authentication: while it is off, `/v1` is not there for anyone.
    let openai = openai
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            openai::enabled,
        ))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ));
    let public = public.route_layer(middleware::from_fn_with_state(
        state.clone(),
        metrics::track,
    ));
    let routes = public
        .merge(bearer)
        .merge(hooks)
        .merge(openai)
        // Without the metrics layer: API metrics count API calls, not page loads.
        .merge(ui::router())
        .fallback(not_found)
        .with_state(state);
    App {
        front: Arc::new(Front {
            limits,
            ids: RequestIds::default(),
        }),
        routes: tower::Layer::layer(&DefaultBodyLimit::max(limits.max_body_bytes), routes),
    }
}

/// The future of [`App`] and [`Bearer`]'s services: one box per request.
pub type Answer =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response, Infallible>> + Send>>;

/// The response of a service that cannot fail.
async fn infallible(
    call: impl std::future::Future<Output = Result<Response, Infallible>>,
) -> Response {
    match call.await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// The whole application as one service: the steps every request passes before the routes
/// ([`front`]) written out by hand rather than stacked as middleware, because each
/// `from_fn` layer boxes its future and a clone of everything below it, and each stacked
/// service moves the request and its future once more: about a fifth of a status call's
/// CPU went to that plumbing (`perf` of `claw serve` under `wrk`).
#[derive(Clone)]
pub struct App {
    front: Arc<Front>,
    /// The routes, with axum's body limit for its extractors.
    routes: DefaultBodyLimitService,
}

type DefaultBodyLimitService = <DefaultBodyLimit as tower::Layer<Router>>::Service;

impl<B> tower::Service<axum::http::Request<B>> for App
where
    B: axum::body::HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Answer;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: axum::http::Request<B>) -> Self::Future {
        let max = self.front.limits.max_body_bytes;
        // Bodies without a declared length are cut as they are read (a declared one over the
        // limit is refused in `front`).
        let req = req.map(|body| axum::body::Body::new(http_body_util::Limited::new(body, max)));
        let front = self.front.clone();
        let routes = self.routes.clone();
        Box::pin(async move { Ok(self::front(front, routes, req).await) })
    }
}

/// Everything a `/api/v1` route passes, in one layer: metrics -> authentication, scope and
/// rate limit ([`auth`]) -> `Idempotency-Key` ([`idempotency`]). Written out as a service
/// rather than `from_fn` for the reason [`App`] is: one boxed future per request, nothing
/// else boxed or cloned but the route.
#[derive(Clone)]
struct Bearer(AppState);

impl<S> tower::Layer<S> for Bearer {
    type Service = BearerService<S>;

    fn layer(&self, route: S) -> BearerService<S> {
        BearerService {
            state: self.0.clone(),
            route,
        }
    }
}

#[derive(Clone)]
struct BearerService<S> {
    state: AppState,
    route: S,
}

impl<S> tower::Service<Request> for BearerService<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Answer;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let state = self.state.clone();
        let mut route = self.route.clone();
        Box::pin(async move {
            let response = metrics::track_then(&state, req, |req| {
                auth::authenticate_then(&state, req, |req| {
                    idempotency::layer(&state, req, move |req| infallible(route.call(req)))
                })
            })
            .await;
            Ok(response)
        })
    }
}

/// What the front layer needs.
struct Front {
    limits: Limits,
    ids: RequestIds,
}

/// What every request passes, in order: the header bounds (a request over them gets our JSON
/// 431 before anything else runs, without a request id), the request id (the client's
/// `X-Request-Id`, or a new one) set on the request, the request's span, the request timeout
/// (503) and a declared oversize body (413) around the routes, then the JSON errors
/// ([`json_errors`]) of the answer, which carries the request id.
async fn front(
    front: Arc<Front>,
    mut routes: DefaultBodyLimitService,
    mut req: Request,
) -> Response {
    if let Some(refused) = header_limits(front.limits, &req) {
        return refused;
    }
    let id = match req.headers().get(&X_REQUEST_ID) {
        Some(id) => id.clone(),
        None => {
            let id = front.ids.next();
            req.headers_mut().insert(X_REQUEST_ID.clone(), id.clone());
            id
        }
    };
    let limits = front.limits;
    drop(front);
    let method = req.method().clone();
    // A `Uri` clone shares its bytes: no allocation on the (usual) path without an error.
    let uri = req.uri().clone();
    // The request's span around the routes (not tower-http's `TraceLayer`, whose response
    // body wrapper costs a boxed body per request). Server errors are logged below, outside
    // it, with the request's method, path and id.
    let span = request_span(&req);
    let started = std::time::Instant::now();
    let mut response = async {
        tracing::debug!("started processing request");
        let response = timeout_and_size(limits, req, |req| {
            use tower::Service;
            infallible(routes.call(req))
        })
        .await;
        tracing::debug!(
            status = response.status().as_u16(),
            latency_ms = started.elapsed().as_millis() as u64,
            "finished processing request"
        );
        response
    }
    .instrument(span)
    .await;
    if !response.headers().contains_key(&X_REQUEST_ID) {
        response.headers_mut().insert(X_REQUEST_ID.clone(), id);
    }
    json_errors(&method, uri.path(), response).await
}

static X_REQUEST_ID: header::HeaderName = header::HeaderName::from_static("x-request-id");

/// The span of a request, which log lines written while serving it carry. Reads get a
/// debug-level span: at the default level they log nothing, and a span costs each request a
/// few allocations (about 5% of a status call's throughput). The path only: a query string
/// could carry a token someone pasted there.
fn request_span(req: &Request) -> tracing::Span {
    let id = req
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (method, path) = (req.method(), req.uri().path());
    if method == Method::GET || method == Method::HEAD {
        tracing::debug_span!("request", %method, path, request_id = id)
    } else {
        tracing::info_span!("request", %method, path, request_id = id)
    }
}

/// Request ids: a random per-process prefix and a counter, so an id costs no system call
/// (a UUID per request reads the OS random source every time).
#[derive(Clone)]
struct RequestIds {
    prefix: Arc<str>,
    next: Arc<std::sync::atomic::AtomicU64>,
}

impl Default for RequestIds {
    fn default() -> Self {
        RequestIds {
            prefix: Arc::from(&uuid::Uuid::new_v4().simple().to_string()[..12]),
            next: Arc::default(),
        }
    }
}

impl RequestIds {
    /// The next id: the prefix, `-`, the counter in hex, written without a `String`.
    fn next(&self) -> HeaderValue {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut buf = [0u8; 64];
        let prefix = self.prefix.as_bytes();
        let mut len = prefix.len().min(40);
        buf[..len].copy_from_slice(&prefix[..len]);
        buf[len] = b'-';
        len += 1;
        let digits = (64 - n.leading_zeros()).div_ceil(4).max(1) as usize;
        for i in 0..digits {
            let nibble = (n >> (4 * (digits - 1 - i))) & 0xf;
            buf[len + i] = b"0123456789abcdef"[nibble as usize];
        }
        len += digits;
        HeaderValue::from_bytes(&buf[..len]).unwrap_or(HeaderValue::from_static("0"))
    }
}

/// The answer of `/healthz` and `/readyz`.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok` (healthz) or `ready` (readyz).
    pub status: &'static str,
}

/// Liveness
///
/// Answers while the process serves HTTP.
#[utoipa::path(get, path = "/healthz", operation_id = "healthz", tag = "system",
    responses((status = 200, description = "Alive", body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness
///
/// Ready once the first full reconcile has finished.
#[utoipa::path(get, path = "/readyz", operation_id = "readyz", tag = "system",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "`not_ready`: the first reconcile has not finished", body = ErrorBody),
    ))]
async fn readyz(axum::extract::State(state): axum::extract::State<AppState>) -> Response {
    if state.live.summary.load().initialised {
        Json(Health { status: "ready" }).into_response()
    } else {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "the first reconcile has not finished",
        )
        .into_response()
    }
}

/// 431 with our JSON body for a request header over [`Limits`]. (The HTTP parser has its own
/// backstop at four times these bounds, where it closes the connection with a bare 431.)
fn header_limits(limits: Limits, req: &Request) -> Option<Response> {
    let fields = req.headers().len();
    let bytes = req.method().as_str().len()
        + req.uri().path_and_query().map_or(1, |p| p.as_str().len())
        + req
            .headers()
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 4)
            .sum::<usize>();
    if fields > limits.max_headers || bytes > limits.max_header_bytes {
        return Some(ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request_header_fields_too_large",
            format!(
                "the request header has {fields} fields and {bytes} bytes; the limits are {} fields and {} bytes",
                limits.max_headers, limits.max_header_bytes
            ),
        )
        .into_response());
    }
    None
}

/// 503 when a handler takes longer than the request timeout to answer (only the response head
/// is timed, so a stream (SSE) that has started is never cut), and 413 for a body declared
/// over the limit ([`refuse_declared_oversize`]), in one layer.
async fn timeout_and_size<F, Fut>(limits: Limits, req: Request, inner: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    let timeout = limits.request_timeout;
    match tokio::time::timeout(
        timeout,
        refuse_declared_oversize(limits.max_body_bytes, req, inner),
    )
    .await
    {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "request_timeout",
            format!(
                "the request took longer than {} s; try again later",
                timeout.as_secs()
            ),
        )
        .into_response(),
    }
}

async fn not_found(req: Request) -> ApiError {
    ApiError::not_found(format!(
        "no route for {} {}",
        req.method(),
        req.uri().path()
    ))
}

/// How much of a body declared over the limit is read and thrown away before the 413, and for
/// how long at most.
const DRAIN_BYTES: u64 = 8 * 1024 * 1024;
const DRAIN_TIME: Duration = Duration::from_secs(2);

/// A body whose `Content-Length` is over the limit gets 413 without reaching a handler — after
/// what the client sends is read and discarded (up to [`DRAIN_BYTES`] / [`DRAIN_TIME`]), as
/// nginx's lingering close does: a client still writing its body when the server closes the
/// connection sees a broken pipe instead of the answer. Bodies without a length are cut by
/// [`App`]'s length limit as they are read.
async fn refuse_declared_oversize<F, Fut>(max: usize, req: Request, inner: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(n) if n > max as u64 => {
            if n <= DRAIN_BYTES {
                use futures_util::StreamExt;
                let mut body = req.into_body().into_data_stream();
                let drain = async { while let Some(Ok(_)) = body.next().await {} };
                let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
            }
            StatusCode::PAYLOAD_TOO_LARGE.into_response()
        }
        _ => inner(req).await,
    }
}

/// Gives errors produced below our handlers (axum's 405, tower-http's 413, ...) our JSON body.
async fn json_errors(method: &Method, path: &str, mut response: Response) -> Response {
    let status = response.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        // The body was refused unread, so the connection cannot carry another request: say
        // so, or a client may send its next request on a connection about to be closed.
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    if status.is_server_error() {
        let id = response.headers().get(&X_REQUEST_ID);
        let id = id.and_then(|v| v.to_str().ok()).unwrap_or("");
        tracing::error!(%method, path, request_id = id, status = status.as_u16(), "request failed");
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    // `/v1/...` speaks OpenAI's error shape, whoever produced the error.
    if openai::is_openai_path(path) {
        let ours = if is_json {
            response
        } else {
            with_json_error(method, path, response)
        };
        return openai::rewrite_error(ours).await;
    }
    if is_json {
        return response;
    }
    with_json_error(method, path, response)
}

/// Our JSON error body for an error answer that has none (axum's 405, tower-http's 413, ...).
fn with_json_error(method: &Method, path: &str, response: Response) -> Response {
    let status = response.status();
    let error = match status {
        StatusCode::METHOD_NOT_ALLOWED => ApiError::new(
            status,
            "method_not_allowed",
            format!("{method} is not allowed on {path}"),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(status, "payload_too_large", "request body is too large")
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(
            status,
            "unsupported_media_type",
            "send a JSON body (Content-Type: application/json)",
        ),
        StatusCode::NOT_FOUND => ApiError::not_found(format!("no route for {method} {path}")),
        s if s.is_server_error() => ApiError::internal(format!("{method} {path} answered {s}")),
        s => ApiError::new(
            s,
            "bad_request",
            s.canonical_reason().unwrap_or("bad request"),
        ),
    };
    let mut out = error.into_response();
    // Keep headers such as Allow and Retry-After.
    for (name, value) in response.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name, value.clone());
        }
    }
    out
}

/// A JSON request body whose every failure is one of our errors (400 / 413), with a message
/// that never quotes the body.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "request body is too large",
                )
            } else {
                ApiError::bad_request("invalid_body", "the request body could not be read")
            }
        })?;
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| {
            ApiError::bad_request(
                "invalid_json",
                format!(
                    "request body is not valid JSON for this call (line {}, column {}: {})",
                    e.line(),
                    e.column(),
                    match e.classify() {
                        serde_json::error::Category::Data => "unexpected field or type",
                        serde_json::error::Category::Eof => "unexpected end",
                        _ => "syntax error",
                    }
                ),
            )
        })
    }
}

/// Quotes an entity tag.
pub fn etag(digest: &[u8]) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{}\"", hex::encode(digest)))
        .unwrap_or(HeaderValue::from_static("\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_the_prefix_and_the_counter_in_hex() {
        let ids = RequestIds::default();
        let prefix = ids.prefix.to_string();
        assert_eq!(prefix.len(), 12);
        assert_eq!(ids.next().to_str().unwrap(), format!("{prefix}-0"));
        assert_eq!(ids.next().to_str().unwrap(), format!("{prefix}-1"));
        ids.next
            .store(0xfedc_ba98_7654_3210, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(
            ids.next().to_str().unwrap(),
            format!("{prefix}-fedcba9876543210")
        );
        ids.next
            .store(u64::MAX, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(
            ids.next().to_str().unwrap(),
            format!("{prefix}-ffffffffffffffff")
        );
    }
}

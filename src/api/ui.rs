//! The web dashboard: `GET /` and `GET /ui/...` serve a single-page app (plain JavaScript
//! modules and CSS from `src/api/ui/`, embedded with `include_bytes!`), a client of `/api/v1`
//! like any other: it signs in with a bearer token kept in `sessionStorage`, no cookies.
//!
//! Rules: every response carries a strict Content-Security-Policy (`default-src 'self'`, no
//! inline script or style, no framing), `X-Frame-Options: DENY` and `nosniff`. Assets live
//! under `/ui/assets/<build>/`, where `<build>` is a digest of all embedded assets (computed
//! once, at the first request), so they are cached for a year (`immutable`) and the relative
//! imports between modules need no rewriting; `index.html` is `no-cache`. Any other path under
//! `/ui/` is a client-side route and gets `index.html`; `/ui/assets/` paths that name no asset
//! and every unknown path outside `/ui/` stay JSON 404s. Only `/`, `/ui` and `/ui/...` are
//! routed here, so the dashboard never shadows `/api`, `/v1`, `/healthz`, `/readyz` or
//! `/metrics`.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{header, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::AppState;

/// The Content-Security-Policy of every dashboard response.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// Where assets are served: `/ui/assets/<build>/<name>`.
const ASSETS_PREFIX: &str = "assets/";

/// Placeholder in `index.html` for the assets' base URL.
const BASE_PLACEHOLDER: &str = "%ASSETS%";

macro_rules! assets {
    ($($name:literal => $mime:literal),* $(,)?) => {
        &[$(($name, $mime, include_bytes!(concat!("ui/", $name)) as &[u8])),*]
    };
}

/// Every embedded asset: (path below the assets dir, content type, bytes).
static ASSETS: &[(&str, &str, &[u8])] = assets! {
    "app.js" => "text/javascript; charset=utf-8",
    "api.js" => "text/javascript; charset=utf-8",
    "dom.js" => "text/javascript; charset=utf-8",
    "chart.js" => "text/javascript; charset=utf-8",
    "pages/overview.js" => "text/javascript; charset=utf-8",
    "pages/tasks.js" => "text/javascript; charset=utf-8",
    "pages/resources.js" => "text/javascript; charset=utf-8",
    "pages/webhooks.js" => "text/javascript; charset=utf-8",
    "pages/catalog.js" => "text/javascript; charset=utf-8",
    "pages/config.js" => "text/javascript; charset=utf-8",
    "style.css" => "text/css; charset=utf-8",
    "icon.svg" => "image/svg+xml",
};

static INDEX_TEMPLATE: &str = include_str!("ui/index.html");

/// The build id and the index page that names it, made once.
struct Build {
    id: String,
    index: String,
}

static BUILD: LazyLock<Build> = LazyLock::new(|| {
    let mut hash = Sha256::new();
    hash.update(INDEX_TEMPLATE.as_bytes());
    for (name, _, bytes) in ASSETS {
        hash.update(name.as_bytes());
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(bytes);
    }
    let id = hex::encode(&hash.finalize()[..8]);
    let index = INDEX_TEMPLATE.replace(BASE_PLACEHOLDER, &format!("/ui/{ASSETS_PREFIX}{id}"));
    Build { id, index }
});

/// The URL path of the current build's assets, e.g. `/ui/assets/0123abcd4567ef89`.
pub fn assets_base() -> String {
    format!("/ui/{ASSETS_PREFIX}{}", BUILD.id)
}

/// The routes of the dashboard.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/ui", get(index))
        .route("/ui/", get(index))
        .route("/ui/{*rest}", get(ui_path))
}

async fn index() -> Response {
    page(
        "text/html; charset=utf-8",
        "no-cache",
        BUILD.index.clone().into_bytes(),
    )
}

async fn ui_path(Path(rest): Path<String>) -> Response {
    let Some(asset) = rest.strip_prefix(ASSETS_PREFIX) else {
        // A client-side route (e.g. /ui/tasks/task_123): the app reads the path itself.
        return index().await;
    };
    let found = asset
        .split_once('/')
        .filter(|(build, _)| *build == BUILD.id)
        .and_then(|(_, name)| ASSETS.iter().find(|(n, _, _)| *n == name));
    match found {
        Some((_, mime, bytes)) => page(mime, "public, max-age=31536000, immutable", bytes.to_vec()),
        None => ApiError::not_found(format!(
            "no dashboard asset /ui/{rest} (asset URLs change with every build; reload the page)"
        ))
        .into_response(),
    }
}

static CSP_HEADER: HeaderName = HeaderName::from_static("content-security-policy");

fn page(mime: &str, cache: &'static str, body: Vec<u8>) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(mime).unwrap_or(HeaderValue::from_static("text/plain")),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(CSP_HEADER.clone(), HeaderValue::from_static(CSP));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_names_the_build_and_every_asset_it_loads_exists() {
        let index = &BUILD.index;
        assert!(!index.contains(BASE_PLACEHOLDER));
        for needed in ["app.js", "style.css", "icon.svg"] {
            assert!(
                index.contains(&format!("{}/{needed}", assets_base())),
                "{needed}"
            );
        }
    }

    #[test]
    fn modules_import_only_embedded_modules() {
        // A relative import of a file that is not embedded would 404 in the browser.
        for (name, _, bytes) in ASSETS.iter().filter(|(n, _, _)| n.ends_with(".js")) {
            let text = std::str::from_utf8(bytes).unwrap();
            let dir = name.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
            for line in text.lines().filter(|l| l.starts_with("import ")) {
                let Some(spec) = line.split(['"', '\'']).nth(1) else {
                    continue;
                };
                let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
                for seg in spec.split('/') {
                    match seg {
                        "." => {}
                        ".." => {
                            parts.pop();
                        }
                        s => parts.push(s),
                    }
                }
                let target = parts.join("/");
                assert!(
                    ASSETS.iter().any(|(n, _, _)| *n == target),
                    "{name} imports {spec} ({target}), which is not embedded"
                );
            }
        }
    }

    #[test]
    fn no_inline_handlers_or_html_sinks_in_the_assets() {
        for (name, _, bytes) in ASSETS {
            let text = String::from_utf8_lossy(bytes);
            for forbidden in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                " onclick=",
                "eval(",
            ] {
                assert!(!text.contains(forbidden), "{name} contains {forbidden}");
            }
        }
        assert!(!INDEX_TEMPLATE.contains("<script>"));
        assert!(!INDEX_TEMPLATE.contains("style="));
    }
}

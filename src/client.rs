//! A Rust client of the claw API (what `claw status` and later `claw task` use).
//!
//! Reads `CLAW_URL` (default `http://127.0.0.1:3000`) and `CLAW_TOKEN` or `OPENCLAW_TOKEN`.

use serde_json::Value;

/// The default server URL.
pub const DEFAULT_URL: &str = "http://127.0.0.1:3000";

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no token: set CLAW_TOKEN (or OPENCLAW_TOKEN) to a token from `claw token create`")]
    NoToken,
    #[error("cannot reach {url}: {source}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{status}: {code}: {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
}

/// A client bound to one server and token.
#[derive(Clone)]
pub struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Client {
    /// A client for `base` (e.g. `http://127.0.0.1:3000`) with `token`.
    pub fn new(base: impl Into<String>, token: impl Into<String>) -> Client {
        Client {
            base: base.into().trim_end_matches('/').to_owned(),
            token: token.into(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
        }
    }

    /// A client from `CLAW_URL` and `CLAW_TOKEN` / `OPENCLAW_TOKEN`; `url` overrides the env.
    pub fn from_env(url: Option<String>) -> Result<Client, ClientError> {
        let base = url
            .or_else(|| std::env::var("CLAW_URL").ok())
            .unwrap_or_else(|| DEFAULT_URL.to_owned());
        let token = std::env::var("CLAW_TOKEN")
            .or_else(|_| std::env::var("OPENCLAW_TOKEN"))
            .map_err(|_| ClientError::NoToken)?;
        Ok(Client::new(base, token))
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `GET /api/v1/status`.
    pub async fn status(&self) -> Result<Value, ClientError> {
        self.get("/api/v1/status").await
    }

    /// A GET of an API path, returning the JSON body or the API's error.
    pub async fn get(&self, path: &str) -> Result<Value, ClientError> {
        let url = format!("{}{path}", self.base);
        let response = self
            .http
            .get(&url)
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|source| ClientError::Http {
                url: url.clone(),
                source,
            })?;
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .map_err(|source| ClientError::Http { url, source })?;
        if status.is_success() {
            Ok(body)
        } else {
            Err(ClientError::Api {
                status: status.as_u16(),
                code: body["error"]["code"]
                    .as_str()
                    .unwrap_or("unknown")
                    .to_owned(),
                message: body["error"]["message"].as_str().unwrap_or("").to_owned(),
            })
        }
    }
}

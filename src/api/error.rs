//! The one error type of the API: every failure answers
//! `{"error": {"code", "message", ...}}` with a stable code, as the tutorial shows.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::manifest::write::WriteError;
use crate::manifest::Diagnostic;

/// One field-level problem of a request.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FieldError {
    /// Dotted path of the field in the request body, e.g. `model.max_context`.
    pub field: String,
    /// JSON pointer of the field in the manifest document.
    pub pointer: String,
    pub message: String,
    /// The manifest file the problem is in (write-backs refused by validation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Its line in that file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
}

/// The body of every error response: `{"error": {"code", "message", ...}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorObject,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorObject {
    /// Stable machine-readable code, e.g. `not_found`, `validation_failed`, `rate_limited`.
    #[schema(example = "not_found")]
    pub code: &'static str,
    /// What happened and what to do, for people.
    pub message: String,
    /// Field-level problems (validation errors).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(required = false)]
    pub details: Vec<FieldError>,
    /// Seconds to wait before retrying (429 only; also the `Retry-After` header).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub retry_after: Option<u64>,
}

/// An API error.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Vec<FieldError>,
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            details: Vec::new(),
            retry_after: None,
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403 `manifest_only`: the write would grant a setting only a manifest commit may grant.
    pub fn manifest_only(p: &crate::manifest::privilege::Privileged) -> Self {
        let mut e = Self::new(StatusCode::FORBIDDEN, "manifest_only", p.to_string());
        e.details = vec![FieldError {
            field: p.field.clone(),
            pointer: format!("/spec/{}", p.field.replace('.', "/")),
            message: p.why.to_owned(),
            file: None,
            line: None,
        }];
        e
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 429 with the tutorial's body and a `Retry-After` of at least one second.
    pub fn rate_limited(retry_after: u64) -> Self {
        let secs = retry_after.max(1);
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "Rate limit exceeded. Try again in {secs} second{}.",
                if secs == 1 { "" } else { "s" }
            ),
        );
        e.retry_after = Some(secs);
        e
    }

    /// 500; the cause is logged, not returned.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!("internal error: {cause}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "internal server error; the server log has the details",
        )
    }

    /// 400 `validation_failed` about one field of a request body (`field` is its dotted path).
    pub fn invalid_field(
        message: impl Into<String>,
        field: &str,
        detail: impl Into<String>,
    ) -> Self {
        let mut e = Self::bad_request("validation_failed", message);
        e.details = vec![FieldError {
            field: field.to_owned(),
            pointer: format!("/{}", field.replace('.', "/")),
            message: detail.into(),
            file: None,
            line: None,
        }];
        e
    }

    /// 400 `validation_failed` with one detail per diagnostic.
    pub fn validation(message: impl Into<String>, diagnostics: &[Diagnostic]) -> Self {
        let mut e = Self::bad_request("validation_failed", message);
        e.details = diagnostics
            .iter()
            .map(|d| FieldError {
                field: d
                    .pointer
                    .strip_prefix("/spec")
                    .unwrap_or(&d.pointer)
                    .trim_start_matches('/')
                    .replace('/', ".")
                    .replace("~1", "/")
                    .replace("~0", "~"),
                pointer: d.pointer.clone(),
                message: d.message.clone(),
                file: (!d.file.as_os_str().is_empty()).then(|| d.file.display().to_string()),
                line: (d.line > 0).then_some(d.line),
            })
            .collect();
        e
    }
}

impl From<WriteError> for ApiError {
    fn from(e: WriteError) -> Self {
        match &e {
            WriteError::NotFound(..) => ApiError::not_found(e.to_string()),
            WriteError::AlreadyExists(..) => {
                ApiError::new(StatusCode::CONFLICT, "already_exists", e.to_string())
            }
            WriteError::Moved(..) => ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string()),
            WriteError::PreconditionFailed(..) => ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "precondition_failed",
                e.to_string(),
            ),
            WriteError::Invalid(diagnostics) => ApiError::validation(
                "the change would make the manifests invalid; nothing was written",
                diagnostics,
            ),
            WriteError::Commit(_) => {
                tracing::error!("{e}");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "git_commit_failed",
                    e.to_string(),
                )
            }
            WriteError::Push(_) => {
                tracing::warn!("{e}");
                ApiError::new(StatusCode::BAD_GATEWAY, "git_push_failed", e.to_string())
            }
            WriteError::Io { .. } => ApiError::internal(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, retry_after) = (self.status, self.retry_after);
        let body = ErrorBody {
            error: ErrorObject {
                code: self.code,
                message: self.message,
                details: self.details,
                retry_after: self.retry_after,
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        if let Some(secs) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"claw\""),
            );
        }
        response
    }
}

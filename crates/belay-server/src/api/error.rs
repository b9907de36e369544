//! One error shape for every route:
//! `{"error": {"kind": "...", "message": "...", "exit": N}}` with a fitting
//! HTTP status. `exit` is the status the CLI ends with (2 bad input, 1 a
//! failure, 130 a submit stopped by the user), so a command behaves the
//! same through the daemon as without it.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use belay_core::CoreError;
use serde::Serialize;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
}

#[derive(Debug, Serialize)]
pub struct ErrorBody {
    pub kind: &'static str,
    pub message: String,
    pub exit: u8,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: String, exit: u8) -> Self {
        Self {
            status,
            body: ErrorBody {
                kind,
                message,
                exit,
            },
        }
    }

    pub fn bad_input(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_input", message.into(), 2)
    }

    /// Another user's job, or what only an admin token may do (the API on
    /// TCP): exit 1.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message.into(), 1)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message.into(), 2)
    }

    /// The host refused what was asked (a forward its sshd does not allow,
    /// a job on another node): exit 1, the refusal's own words.
    pub fn refused(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "refused",
            message.into(),
            1,
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            message.into(),
            1,
        )
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({ "error": self.body })
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        let message = e.message();
        match &e {
            CoreError::UnknownJob(_) => Self::new(StatusCode::NOT_FOUND, "unknown_job", message, 2),
            e if e.is_bad_input() => Self::bad_input(message),
            CoreError::SubmitInterrupted { .. } => {
                Self::new(StatusCode::CONFLICT, "interrupted", message, 130)
            }
            CoreError::Transport(t) => Self::new(StatusCode::BAD_GATEWAY, t.kind(), message, 1),
            _ => Self::new(StatusCode::UNPROCESSABLE_ENTITY, "failed", message, 1),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.json())).into_response()
    }
}

/// A body that is not the JSON a route expects: 400 and one line.
impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(r: axum::extract::rejection::JsonRejection) -> Self {
        Self::bad_input(format!(
            "bad request body: {}",
            r.body_text().replace('\n', " ")
        ))
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(r: axum::extract::rejection::QueryRejection) -> Self {
        Self::bad_input(format!("bad query: {}", r.body_text().replace('\n', " ")))
    }
}

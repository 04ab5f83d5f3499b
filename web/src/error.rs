//! The one mapping from errors to HTTP: every error any service answers is
//! `{"error": {"code", "message", "kind"}}` with the matching status. `kind` is a stable
//! machine word so a service that forwards an error (the front end, a leader) can keep it
//! intact and decide whether a retry elsewhere may help.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::{Deserialize, Serialize};
use std::fmt;
use tradenet_actors::Error;

/// An error as it travels over HTTP.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApiError {
    /// HTTP status.
    pub code: u16,
    /// Human-readable message.
    pub message: String,
    /// Stable machine word: bad_request, not_found, insufficient_quantity, fenced,
    /// not_leader, unavailable, too_large, method_not_allowed, internal.
    pub kind: String,
}

/// Result alias for handlers.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// An error with the given status, kind and message.
    pub fn new(code: u16, kind: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            kind: kind.to_string(),
        }
    }

    /// 400 malformed input.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "bad_request", message)
    }

    /// 404 unknown path, stock or order.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(404, "not_found", message)
    }

    /// 503: a peer or the leader could not be reached; worth a retry.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(503, "unavailable", message)
    }

    /// True when the same request may succeed elsewhere or later.
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind.as_str(), "unavailable" | "not_leader" | "fenced")
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.kind, self.message)
    }
}

impl From<Error> for ApiError {
    fn from(err: Error) -> ApiError {
        let (code, kind) = match &err {
            Error::BadRequest(_) => (400, "bad_request"),
            Error::UnknownStock(_) | Error::UnknownOrder(_) => (404, "not_found"),
            Error::InsufficientQuantity { .. } => (409, "insufficient_quantity"),
            Error::Fenced { .. } => (409, "fenced"),
            Error::NotLeader(_) => (503, "not_leader"),
            Error::Unavailable(_) => (503, "unavailable"),
            Error::Corrupt { .. } | Error::Io(_) => (500, "internal"),
        };
        ApiError::new(code, kind, err.to_string())
    }
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    error: ApiError,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code()).json(Envelope {
            error: self.clone(),
        })
    }
}

/// Reads an error object out of another service's answer; anything else becomes a 503.
pub fn from_body(status: u16, body: &[u8]) -> ApiError {
    match serde_json::from_slice::<Envelope>(body) {
        Ok(env) => env.error,
        Err(_) => ApiError::unavailable(format!(
            "peer answered {status} without an error object: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logic_errors_map_to_the_documented_statuses() {
        let e: ApiError = Error::UnknownStock("X".into()).into();
        assert_eq!((e.code, e.kind.as_str()), (404, "not_found"));
        let e: ApiError = Error::InsufficientQuantity {
            name: "X".into(),
            requested: 2,
            available: 1,
        }
        .into();
        assert_eq!(e.code, 409);
        let e: ApiError = Error::NotLeader("x".into()).into();
        assert!(e.is_retryable());
        assert!(!ApiError::bad_request("x").is_retryable());
    }

    #[test]
    fn error_objects_round_trip() {
        let e = ApiError::not_found("unknown order 7");
        let body = serde_json::to_vec(&Envelope { error: e.clone() }).unwrap();
        assert_eq!(from_body(404, &body), e);
        assert_eq!(from_body(502, b"<html>").code, 503);
    }
}

//! The one mapping from errors to HTTP: every error any service answers is the wire's
//! `ErrorBody`, `{"error": {"code", "message", "kind"}}`, with the matching status. `kind` is
//! a stable machine word (`wire::ErrorKind`) so a service that forwards an error (the front
//! end, a leader) can keep it intact and decide whether a retry elsewhere may help.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use std::fmt;
use tradenet_actors::wire::{ErrorBody, ErrorKind, ErrorObject};
use tradenet_actors::Error;

/// An error as a handler returns it: the wire's `ErrorObject`, which actix can answer with.
/// (A separate type because `ResponseError` cannot be implemented for the logic crate's.)
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    /// HTTP status.
    pub code: u16,
    /// Human-readable message.
    pub message: String,
    /// Stable machine word.
    pub kind: ErrorKind,
}

/// Result alias for handlers.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// An error of `kind`, with that kind's HTTP status.
    pub fn with_kind(kind: ErrorKind, message: impl Into<String>) -> ApiError {
        ErrorObject::new(kind, message).into()
    }

    /// 400 malformed input.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::with_kind(ErrorKind::BadRequest, message)
    }

    /// 404 unknown path, stock or order.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::with_kind(ErrorKind::NotFound, message)
    }

    /// 503: this replica does not serve as leader; worth a retry at the new one.
    pub fn not_leader(message: impl Into<String>) -> ApiError {
        ApiError::with_kind(ErrorKind::NotLeader, message)
    }

    /// 503: a peer or the leader could not be reached; worth a retry.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::with_kind(ErrorKind::Unavailable, message)
    }

    /// True when the same request may succeed elsewhere or later.
    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.kind, self.message)
    }
}

impl From<Error> for ApiError {
    fn from(err: Error) -> ApiError {
        ApiError::with_kind(err.kind(), err.to_string())
    }
}

/// An error another service answered, as the logic crate's error: fenced and not-leader keep
/// their meaning (the replication machine acts on them), the rest travel on unchanged.
impl From<ApiError> for Error {
    fn from(e: ApiError) -> Error {
        let number_after = |word: &str| {
            e.message.split(word).nth(1).and_then(|rest| {
                rest.split(|c: char| !c.is_ascii_digit())
                    .next()
                    .and_then(|d| d.parse().ok())
            })
        };
        match e.kind {
            ErrorKind::Fenced => Error::Fenced {
                got: number_after("fenced: epoch ").unwrap_or(0),
                known: number_after("known epoch ").unwrap_or(0),
            },
            ErrorKind::NotLeader => Error::NotLeader(e.message),
            _ => Error::Answered(e.into()),
        }
    }
}

impl From<ErrorObject> for ApiError {
    fn from(e: ErrorObject) -> ApiError {
        ApiError {
            code: e.code,
            message: e.message,
            kind: e.kind,
        }
    }
}

impl From<ApiError> for ErrorObject {
    fn from(e: ApiError) -> ErrorObject {
        ErrorObject {
            code: e.code,
            message: e.message,
            kind: e.kind,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code()).json(ErrorBody {
            error: self.clone().into(),
        })
    }
}

/// Reads an error object out of another service's answer; anything else (including an
/// unknown kind) becomes a 503.
pub fn from_body(status: u16, body: &[u8]) -> ApiError {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(body) => body.error.into(),
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
        assert_eq!((e.code, e.kind), (404, ErrorKind::NotFound));
        let e: ApiError = Error::InsufficientQuantity {
            name: "X".into(),
            requested: 2,
            available: 1,
        }
        .into();
        assert_eq!((e.code, e.kind), (409, ErrorKind::InsufficientQuantity));
        let e: ApiError = Error::Fenced { got: 1, known: 2 }.into();
        assert_eq!((e.code, e.kind), (409, ErrorKind::Fenced));
        let e: ApiError = Error::Io("disk".into()).into();
        assert_eq!((e.code, e.kind), (500, ErrorKind::Internal));
        let e: ApiError = Error::NotLeader("x".into()).into();
        assert_eq!(e.code, 503);
        assert!(e.is_retryable());
        assert!(!ApiError::bad_request("x").is_retryable());
    }

    #[test]
    fn error_objects_round_trip() {
        let e = ApiError::not_found("unknown order 7");
        let body = serde_json::to_vec(&ErrorBody {
            error: e.clone().into(),
        })
        .unwrap();
        assert_eq!(from_body(404, &body), e);
        assert_eq!(from_body(502, b"<html>").code, 503);
    }
}

//! The one error type of the logic crate. Every failure a client or a peer can see is a
//! variant here, with the wire's `ErrorKind` it travels as (`Error::kind`); the web crate
//! answers each with that kind's HTTP status.

use crate::wire::ErrorKind;
use std::path::PathBuf;

/// Result alias used across the logic crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the exchange's logic.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum Error {
    /// The input was malformed (bad name, zero quantity, unparsable id).
    #[error("{0}")]
    BadRequest(String),
    /// No stock of that name is listed.
    #[error("unknown stock '{0}'")]
    UnknownStock(String),
    /// No order carries that number (yet).
    #[error("unknown order {0}")]
    UnknownOrder(u64),
    /// A buy asked for more than the stock has left.
    #[error("not enough {name}: asked to buy {requested}, {available} left")]
    InsufficientQuantity {
        /// Stock name.
        name: String,
        /// Quantity asked for.
        requested: u64,
        /// Quantity left at the time of the trade.
        available: u64,
    },
    /// A write or replication came from a leader whose epoch is older than the one known.
    #[error("fenced: epoch {got} is older than the known epoch {known}")]
    Fenced {
        /// Epoch carried by the request.
        got: u64,
        /// Newest epoch this service knows.
        known: u64,
    },
    /// This replica is not the leader (or not yet ready to serve as one).
    #[error("not the leader: {0}")]
    NotLeader(String),
    /// A peer or the disk could not be reached in time; worth a retry.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A durable file is damaged in a way that must not be skipped.
    #[error("{}:{line}: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// An I/O error, with what was being done.
    #[error("I/O error: {0}")]
    Io(String),
    /// An error another service answered, passed on as it came (a leader forwards the
    /// catalog's refusal of a trade to the front end this way).
    #[error("{}", .0.message)]
    Answered(crate::wire::ErrorObject),
}

impl Error {
    /// The kind this error travels as between services.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::BadRequest(_) => ErrorKind::BadRequest,
            Error::UnknownStock(_) | Error::UnknownOrder(_) => ErrorKind::NotFound,
            Error::InsufficientQuantity { .. } => ErrorKind::InsufficientQuantity,
            Error::Fenced { .. } => ErrorKind::Fenced,
            Error::NotLeader(_) => ErrorKind::NotLeader,
            Error::Unavailable(_) => ErrorKind::Unavailable,
            Error::Corrupt { .. } | Error::Io(_) => ErrorKind::Internal,
            Error::Answered(e) => e.kind,
        }
    }

    /// True when the same request may succeed if tried again (possibly elsewhere).
    pub fn is_retryable(&self) -> bool {
        self.kind().is_retryable()
    }

    /// Wraps an I/O error with a short note on what was being done.
    pub fn io(context: impl std::fmt::Display, err: std::io::Error) -> Error {
        Error::Io(format!("{context}: {err}"))
    }
}

impl From<actix::MailboxError> for Error {
    fn from(err: actix::MailboxError) -> Self {
        Error::Unavailable(format!("actor mailbox: {err}"))
    }
}

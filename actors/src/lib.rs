//! Trade-Net's logic: the pure state machines (catalog table, order log, LRU cache) and the
//! actix actors that own them with their durable files. Nothing here speaks HTTP, so every
//! rule of the design can be tested without a socket; the `tradenet` crate puts these behind
//! routes.

pub mod cache;
pub mod catalog;
pub mod catalog_actor;
pub mod catalog_follow;
pub mod catalog_node;
mod error;
pub mod journal;
pub mod orderlog;
pub mod replication;
pub mod sim;
#[cfg(feature = "tls")]
pub mod tls;
pub mod types;
pub mod wire;

pub use error::{Error, Result};

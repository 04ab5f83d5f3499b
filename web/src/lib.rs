//! Trade-Net's HTTP layer and processes: the catalog service, the order replicas, the front
//! end with its cache and supervisor, and the launcher. The logic they serve lives in
//! `tradenet-actors`; this crate maps it to routes, JSON and calls between services.

pub mod batch;
pub mod catalog;
pub mod catalog_group;
pub mod catalog_link;
pub mod config;
pub mod dirlock;
pub mod error;
pub mod frontend;
pub mod http;
pub mod launcher;
pub mod metrics;
pub mod openapi;
pub mod replica;
pub mod status;
pub mod supervisor;

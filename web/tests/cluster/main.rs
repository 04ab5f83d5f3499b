//! Cluster tests: real `tradenet` processes on ports chosen per test, killed with SIGKILL
//! where the point is a crash. One test binary made of modules, so it links once.

mod auth;
mod batching;
mod cache;
mod catalog;
mod catalog_failover;
mod commands;
mod failover_client;
mod fencing;
mod frontends;
mod guards;
mod harness;
mod input;
mod lag;
mod launcher;
mod leadership;
mod metrics;
mod netns;
mod openapi;
mod order_log;
mod orders;
mod partition;
mod staleness;
mod tls;

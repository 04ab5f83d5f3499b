//! `tradenet-client`: drives load at a Trade-Net front end, verifies every order it placed,
//! measures latency per request type, runs the course's experiments and draws their plots.

pub mod control;
pub mod experiments;
pub mod plot;
pub mod run;
pub mod stats;

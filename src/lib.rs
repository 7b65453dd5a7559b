//! kapauth: InfluxDB Enterprise-style authentication and authorization in front of
//! Kapacitor. Two programs share this library: the gateway (`kapauth serve`, `gateway/`) and
//! the meta server (`kapauth meta`, `meta_server/`); they never import each other, and
//! `serve.rs` is the one place that wires the embedded meta store into the gateway. A third,
//! `kapauth user|role` (`admin/`), manages users and roles over any meta API's HTTP side. A
//! fourth, `kapauth explain` (`explain/`), says what the gateway would answer a user's request
//! and why; like `serve.rs` it uses both (the store file, and the gateway's pure decisions).
#![forbid(unsafe_code)]

pub mod admin;
pub mod cli;
pub mod config;
pub mod explain;
pub mod gateway;
pub mod http;
pub mod lifecycle;
pub mod log;
pub mod meta_api;
pub mod meta_server;
pub mod metrics;
pub mod query;
pub mod resolve;
pub mod secret;
pub mod serve;
pub mod signals;
pub mod tls;

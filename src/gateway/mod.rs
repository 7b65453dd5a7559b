//! `kapauth serve`'s request path: credentials, authentication, authorization and
//! forwarding, sequenced by `handle.rs`. Never imports the meta server.

pub mod authenticate;
pub mod authorize;
pub mod credentials;
pub mod forward;
pub mod forward_auth;
pub mod handle;
pub mod metrics;
pub mod request_path;
pub mod respond;

//! Authorization (SPEC §2): decides whether an authenticated user's `Grants` allow a request,
//! from its method and its decoded, canonical path, and for writes from the `db` it names.
//!
//! Every function here is a pure function of plain values: no I/O, no clock, no logging, and it
//! never writes a response (the exact client texts are rendered in `respond.rs` from `Denial`).
//! Deny is what you get by not deciding: `Decision` defaults to a denial and is `#[must_use]`.
//! `OPTIONS` never reaches this module: the caller forwards it before looking at credentials.

pub mod grants;

pub use grants::{Grants, Privilege, PrivilegeSet, Rule, RuleResource, database_resource, rules};

use std::borrow::Cow;
use std::fmt;

/// The outcome of an authorization step.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The request must not be forwarded; the denial says what to answer.
    Deny(Denial),
    /// The step lets the request through.
    Allow,
}

/// Why a request was denied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// The method maps to no privilege (403 `unknown method "TRACE"`); `method` is upper-cased.
    UnknownMethod { method: String },
    /// The walk found no entry allowing `privilege` (403 naming the privilege and the path);
    /// `path` is the decoded request path to name in the answer, or the rewritten preview path
    /// when the second preview check denied.
    Missing { privilege: Privilege, path: String },
    /// The user may not write to database `db` (401, Kapacitor's plain-text answer).
    Database { db: String },
}

/// The upper-cased method maps to no privilege.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownMethod(pub String);

impl Default for Decision {
    /// A denial, so that a decision nobody made never lets a request through. No function here
    /// returns it; it names `all` and no path so that a log line shows the slip at once.
    fn default() -> Decision {
        Decision::Deny(Denial::Missing {
            privilege: Privilege::All,
            path: String::new(),
        })
    }
}

impl fmt::Display for UnknownMethod {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "unknown method {:?}", self.0)
    }
}

impl std::error::Error for UnknownMethod {}

/// The privilege a method needs, on the upper-cased method name as Kapacitor does: `HEAD` →
/// none, `GET` → read, `POST`/`PATCH`/`PUT` → write, `DELETE` → delete.
///
/// Upper-casing is ASCII only (kapauth): Go's `strings.ToUpper` also maps some non-ASCII letters
/// onto ASCII ones (`ſ` → `S`), but Go's server refuses such methods before any handler, so
/// mapping them here could only turn an odd method into a known one. `OPTIONS` is answered by the
/// caller before credentials are read; should it ever arrive here it is an unknown method, so a
/// caller that forgot it denies instead of allowing.
pub fn required_privilege(method: &str) -> Result<Privilege, UnknownMethod> {
    let method = method.to_ascii_uppercase();
    match method.as_str() {
        "HEAD" => Ok(Privilege::None),
        "GET" => Ok(Privilege::Read),
        "POST" | "PATCH" | "PUT" => Ok(Privilege::Write),
        "DELETE" => Ok(Privilege::Delete),
        _ => Err(UnknownMethod(method)),
    }
}

/// The resource of a decoded request path: one leading `/kapacitor/v1` removed as plain text,
/// the rest joined under `/api` and cleaned as Go's `path.Join("/api", rest)` does.
///
/// `/kapacitor/v1/tasks/t1` → `/api/tasks/t1`, `/kapacitor/v1/` → `/api`, `/write` →
/// `/api/write`, `/kapacitor/v1preview/x` → `/api/preview/x`. Cleaning resolves `..` too, even
/// above `/api`, as Go does; `canonical_path` refuses such paths before they get here.
pub fn resource_for_path(decoded_path: &str) -> String {
    // A plain text prefix, as Go's strings.TrimPrefix: `/kapacitor/v1preview` keeps `preview`.
    let rest = decoded_path
        .strip_prefix(API_PREFIX)
        .unwrap_or(decoded_path);
    // Joined without a doubled `/`, so a path that is already clean stays on the fast path
    // of `clean_rooted` and is returned as it is; cleaning makes both joins the same.
    let joined = if rest.starts_with('/') {
        format!("{API_RESOURCE}{rest}")
    } else {
        format!("{API_RESOURCE}/{rest}")
    };
    match clean_rooted(&joined) {
        Cow::Borrowed(_) => joined,
        Cow::Owned(cleaned) => cleaned,
    }
}

/// Kapacitor's walk: whether `grants` allow `privilege` on `resource`.
///
/// From the resource up through its parents (`/api/tasks/t1`, `/api/tasks`, `/api`, `/`), the
/// first resource that has an entry decides: allow if the entry holds the privilege or `all`.
/// No entry up to `/` denies, and so does a resource that does not start with `/`.
///
/// Privilege none (`HEAD`) is allowed without a walk: Kapacitor's `AuthorizeAction` returns
/// before walking for it, which is SPEC §2's "any authenticated user". The walk alone would
/// deny it wherever the first entry is, say, `{read}`, which Kapacitor never does.
pub fn check(grants: &Grants, privilege: Privilege, resource: &str) -> bool {
    check_traced(grants, privilege, resource, &mut NoTrace)
}

/// The decision for a request: the method's privilege on the resource of its path.
///
/// A path starting with `/kapacitor/v1preview` is checked twice, as Kapacitor's preview rewrite
/// checks it: as it is, then with that prefix replaced by `/kapacitor/v1`. Both must allow; a
/// denial by the second check names the rewritten path.
pub fn authorize(grants: &Grants, method: &str, decoded_path: &str) -> Decision {
    authorize_traced(grants, method, decoded_path, &mut NoTrace)
}

/// The whole decision for a request (SPEC §2): the method's privilege on the path, then,
/// for a write that names a database, write on that database. The one call the gateway makes.
pub fn authorize_request(
    grants: &Grants,
    method: &str,
    decoded_path: &str,
    db: Option<&str>,
) -> Decision {
    authorize_request_traced(grants, method, decoded_path, db, &mut NoTrace)
}

/// `authorize_request`, telling `trace` each step it takes: the code the gateway decides with
/// is the code `kapauth explain` shows, so the two cannot drift. The gateway's `NoTrace` does
/// nothing and costs nothing: each call is compiled for its trace.
pub fn authorize_request_traced(
    grants: &Grants,
    method: &str,
    decoded_path: &str,
    db: Option<&str>,
    trace: &mut impl Trace,
) -> Decision {
    match authorize_traced(grants, method, decoded_path, trace) {
        Decision::Allow => authorize_write_database(grants, method, decoded_path, db, trace),
        denied => denied,
    }
}

/// Receives the steps of a decision as they are taken.
pub trait Trace {
    fn step(&mut self, step: Step<'_>);
}

/// The gateway's trace: drops every step.
pub struct NoTrace;

impl Trace for NoTrace {
    #[inline(always)]
    fn step(&mut self, _: Step<'_>) {}
}

/// Keeps the text of every step, in order (`kapauth explain`, tests).
impl Trace for Vec<String> {
    fn step(&mut self, step: Step<'_>) {
        self.push(step.to_string());
    }
}

/// One step of a decision, borrowing what the decision already holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step<'a> {
    /// The method needs `privilege`.
    Method {
        method: &'a str,
        privilege: Privilege,
    },
    /// The method maps to no privilege: denied.
    UnknownMethod { method: &'a str },
    /// A preview path is checked as it is, then as `rewritten`.
    Preview { rewritten: &'a str },
    /// The path's resource, about to be walked.
    Resource { path: &'a str, resource: &'a str },
    /// Privilege none is allowed without a walk.
    NoWalk,
    /// The resource does not start with `/`: denied.
    NotRooted { resource: &'a str },
    /// A resource of the walk without an entry: the walk goes up.
    NoEntry { resource: &'a str },
    /// The first entry of the walk decides.
    Entry {
        resource: &'a str,
        held: PrivilegeSet,
        privilege: Privilege,
        allows: bool,
    },
    /// No entry up to `/`: denied.
    NothingUpToRoot,
    /// A write naming a database also needs write on its resource, walked next.
    Database { db: &'a str, resource: &'a str },
    /// `db` is given but the request is not a write to the write endpoint: not checked.
    DatabaseNotChecked { db: &'a str },
}

impl fmt::Display for Step<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Method { method, privilege } => {
                write!(
                    formatter,
                    "method {method} needs privilege {}",
                    privilege.as_str()
                )
            }
            Step::UnknownMethod { method } => write!(
                formatter,
                "method {method} maps to no privilege (HEAD, GET, POST, PATCH, PUT, DELETE do): denied"
            ),
            Step::Preview { rewritten } => write!(
                formatter,
                "a preview path is checked as it is, then as {rewritten}; both must allow"
            ),
            Step::Resource { path, resource } => {
                write!(formatter, "path {path} → resource {resource}")
            }
            Step::NoWalk => formatter.write_str("privilege none needs no walk: allowed"),
            Step::NotRooted { resource } => {
                write!(
                    formatter,
                    "resource {resource:?} does not start with /: denied"
                )
            }
            Step::NoEntry { resource } => {
                write!(formatter, "{resource}: no entry, up to the parent")
            }
            Step::Entry {
                resource,
                held,
                privilege,
                allows,
            } => {
                let (verb, outcome) = if *allows {
                    ("holds", "allowed")
                } else {
                    ("lacks", "denied; a parent never overrides it")
                };
                write!(
                    formatter,
                    "{resource}: {held:?} {verb} {}: {outcome}",
                    privilege.as_str()
                )
            }
            Step::NothingUpToRoot => formatter.write_str("no entry up to /: denied"),
            Step::Database { db, resource } => write!(
                formatter,
                "a POST to the write endpoint with db={db:?} also needs write on {resource}"
            ),
            Step::DatabaseNotChecked { db } => write!(
                formatter,
                "db={db:?} is not checked: only a POST to /write or /kapacitor/v1/write is"
            ),
        }
    }
}

/// Kapacitor's API prefix, removed from a path to find its resource.
const API_PREFIX: &str = "/kapacitor/v1";
/// Kapacitor's preview prefix, rewritten to `API_PREFIX` for the second check.
const PREVIEW_PREFIX: &str = "/kapacitor/v1preview";
/// The resource every API path lives under.
const API_RESOURCE: &str = "/api";
/// The paths Kapacitor routes to its write handler.
const WRITE_PATHS: [&str; 2] = ["/write", "/kapacitor/v1/write"];

fn authorize_traced(
    grants: &Grants,
    method: &str,
    decoded_path: &str,
    trace: &mut impl Trace,
) -> Decision {
    let privilege = match required_privilege(method) {
        Ok(privilege) => privilege,
        Err(UnknownMethod(method)) => {
            trace.step(Step::UnknownMethod { method: &method });
            return Decision::Deny(Denial::UnknownMethod { method });
        }
    };
    trace.step(Step::Method { method, privilege });
    let Some(rewritten) = preview_rewrite(decoded_path) else {
        return check_path(grants, privilege, decoded_path, trace);
    };
    trace.step(Step::Preview {
        rewritten: &rewritten,
    });
    match check_path(grants, privilege, decoded_path, trace) {
        Decision::Allow => check_path(grants, privilege, &rewritten, trace),
        denied => denied,
    }
}

/// The extra check of a write: `POST` to Kapacitor's write endpoint with a non-empty `db` also
/// needs write on that database's resource (same walk), else `Denial::Database`.
///
/// The write endpoint is `/write` or `/kapacitor/v1/write`, also when reached through the preview
/// rewrite (`/kapacitor/v1preview/write`): Kapacitor routes the rewritten path to the same write
/// handler, which checks the database there too. Any other request is not this check's concern
/// and passes: it adds a requirement on top of `authorize`, which the caller runs first.
fn authorize_write_database(
    grants: &Grants,
    method: &str,
    decoded_path: &str,
    db: Option<&str>,
    trace: &mut impl Trace,
) -> Decision {
    let Some(db) = db.filter(|db| !db.is_empty()) else {
        return Decision::Allow;
    };
    let routed_path = preview_rewrite(decoded_path);
    let routed_path = routed_path.as_deref().unwrap_or(decoded_path);
    let is_write = method.eq_ignore_ascii_case("POST") && WRITE_PATHS.contains(&routed_path);
    if !is_write {
        trace.step(Step::DatabaseNotChecked { db });
        return Decision::Allow;
    }
    let resource = database_resource(db);
    trace.step(Step::Database {
        db,
        resource: &resource,
    });
    if check_traced(grants, Privilege::Write, &resource, trace) {
        Decision::Allow
    } else {
        Decision::Deny(Denial::Database { db: db.to_owned() })
    }
}

fn check_traced(
    grants: &Grants,
    privilege: Privilege,
    resource: &str,
    trace: &mut impl Trace,
) -> bool {
    if privilege == Privilege::None {
        trace.step(Step::NoWalk);
        return true;
    }
    // Kapacitor refuses a relative resource and cleans the others before walking.
    if !resource.starts_with('/') {
        trace.step(Step::NotRooted { resource });
        return false;
    }
    let resource = clean_rooted(resource);
    let mut candidate: &str = &resource;
    loop {
        // Stop at the first entry: a parent never overrides a child (SPEC §2).
        if let Some(held) = grants.get(candidate) {
            let allows = held.allows(privilege);
            trace.step(Step::Entry {
                resource: candidate,
                held,
                privilege,
                allows,
            });
            return allows;
        }
        trace.step(Step::NoEntry {
            resource: candidate,
        });
        match parent(candidate) {
            Some(next) => candidate = next,
            None => {
                trace.step(Step::NothingUpToRoot);
                return false;
            }
        }
    }
}

/// One check of the walk for a path, naming that path if it denies.
fn check_path(
    grants: &Grants,
    privilege: Privilege,
    path: &str,
    trace: &mut impl Trace,
) -> Decision {
    let resource = resource_for_path(path);
    trace.step(Step::Resource {
        path,
        resource: &resource,
    });
    if check_traced(grants, privilege, &resource, trace) {
        Decision::Allow
    } else {
        Decision::Deny(Denial::Missing {
            privilege,
            path: path.to_owned(),
        })
    }
}

/// The path with its leading `/kapacitor/v1preview` replaced by `/kapacitor/v1`, or `None` for a
/// path that does not start with it. The prefix is the first occurrence, which is the one Go's
/// `strings.Replace(path, preview, base, 1)` replaces.
fn preview_rewrite(path: &str) -> Option<String> {
    path.strip_prefix(PREVIEW_PREFIX)
        .map(|rest| format!("{API_PREFIX}{rest}"))
}

/// Go's `path.Clean` for a path starting with `/`: empty and `.` segments go, `..` removes the
/// segment before it (never above `/`), and no trailing slash is kept except for `/` itself.
fn clean_rooted(path: &str) -> Cow<'_, str> {
    // Most resources are clean already (the gateway refuses `.`, `..` and `//` in paths):
    // they are borrowed as they are, without splitting, joining or copying them.
    let clean = path == "/"
        || (path.starts_with('/')
            && !path.ends_with('/')
            && path[1..]
                .split('/')
                .all(|segment| !matches!(segment, "" | "." | "..")));
    if clean {
        return Cow::Borrowed(path);
    }
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    Cow::Owned(format!("/{}", segments.join("/")))
}

/// The parent of a cleaned resource, as Go's `path.Dir`; `None` above `/`. Each parent is
/// shorter than its child, so the walk always ends.
fn parent(resource: &str) -> Option<&str> {
    if resource == "/" {
        return None;
    }
    match resource.rfind('/')? {
        0 => Some("/"),
        index => resource.get(..index),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Privilege::{All, Delete, None as NoPrivilege, Read, Write};

    /// Allowed, in the grid below.
    const Y: bool = true;
    /// Denied, in the grid below.
    const N: bool = false;
    /// The methods of the grid, in the order of its columns.
    const METHODS: [&str; 10] = [
        "GET", "get", "HEAD", "POST", "PATCH", "PUT", "DELETE", "TRACE", "CONNECT", "FOO",
    ];
    /// The path every grid row asks for; its resource is `/api/tasks/t1`.
    const TASK_PATH: &str = "/kapacitor/v1/tasks/t1";

    fn check_method(method: &str, expected: Result<Privilege, &str>) {
        let expected = expected.map_err(|method| UnknownMethod(method.to_owned()));
        assert_eq!(required_privilege(method), expected, "method {method:?}");
    }

    fn check_resource(decoded_path: &str, expected: &str) {
        assert_eq!(
            resource_for_path(decoded_path),
            expected,
            "path {decoded_path:?}"
        );
    }

    fn check_walk(
        entries: &[(&str, &[Privilege])],
        privilege: Privilege,
        resource: &str,
        expected: bool,
    ) {
        let grants = Grants::from_entries(entries);
        assert_eq!(
            check(&grants, privilege, resource),
            expected,
            "{privilege:?} on {resource:?} with {entries:?}"
        );
    }

    /// One grid row: the outcome of every method of `METHODS`, in order, on `TASK_PATH`.
    fn check_grid(entries: &[(&str, &[Privilege])], expected: [bool; 10]) {
        let grants = Grants::from_entries(entries);
        for (method, allowed) in METHODS.into_iter().zip(expected) {
            let decision = authorize(&grants, method, TASK_PATH);
            assert_eq!(
                decision == Decision::Allow,
                allowed,
                "{method} {TASK_PATH} with {entries:?}: {decision:?}"
            );
        }
    }

    fn check_authorize(grants: &Grants, method: &str, decoded_path: &str, expected: Decision) {
        assert_eq!(
            authorize(grants, method, decoded_path),
            expected,
            "{method} {decoded_path} with {grants:?}"
        );
    }

    fn check_write(
        grants: &Grants,
        method: &str,
        decoded_path: &str,
        db: Option<&str>,
        expected: Decision,
    ) {
        assert_eq!(
            authorize_write_database(grants, method, decoded_path, db, &mut NoTrace),
            expected,
            "{method} {decoded_path} db {db:?} with {grants:?}"
        );
    }

    fn missing(privilege: Privilege, path: &str) -> Decision {
        Decision::Deny(Denial::Missing {
            privilege,
            path: path.to_owned(),
        })
    }

    fn database(db: &str) -> Decision {
        Decision::Deny(Denial::Database { db: db.to_owned() })
    }

    fn permissions(scoped: &[(&str, &str)]) -> Grants {
        Grants::from_permissions(scoped.iter().copied())
    }

    /// The steps `kapauth explain` prints, joined by ` | `; the traced decision must be the
    /// gateway's own.
    fn check_trace(
        entries: &[(&str, &[Privilege])],
        method: &str,
        target: (&str, Option<&str>),
        expected: &str,
    ) {
        let (path, db) = target;
        let grants = Grants::from_entries(entries);
        let mut steps: Vec<String> = Vec::new();
        let decision = authorize_request_traced(&grants, method, path, db, &mut steps);
        let untraced = authorize_request(&grants, method, path, db);
        assert_eq!(decision, untraced, "{method} {path} db {db:?}");
        assert_eq!(steps.join(" | "), expected, "{method} {path} db {db:?}");
    }

    // One case a line: the expected steps are the text kapauth explain prints.
    #[rustfmt::skip]
    #[test]
    fn the_trace_tells_each_step_of_the_walk() {
        let api: &[(&str, &[Privilege])] = &[("/api", &[All]), ("/api/config", &[NoPrivilege])];
        let writer: &[(&str, &[Privilege])] =
            &[("/api/write", &[Write]), ("/database/db1_clean", &[Write])];
        check_trace(api, "GET", (TASK_PATH, None), "method GET needs privilege read | path /kapacitor/v1/tasks/t1 → resource /api/tasks/t1 | /api/tasks/t1: no entry, up to the parent | /api/tasks: no entry, up to the parent | /api: {all} holds read: allowed");
        check_trace(api, "GET", ("/kapacitor/v1/config/smtp", None), "method GET needs privilege read | path /kapacitor/v1/config/smtp → resource /api/config/smtp | /api/config/smtp: no entry, up to the parent | /api/config: {none} lacks read: denied; a parent never overrides it");
        check_trace(&[], "delete", ("/kapacitor/v1", None), "method delete needs privilege delete | path /kapacitor/v1 → resource /api | /api: no entry, up to the parent | /: no entry, up to the parent | no entry up to /: denied");
        check_trace(&[], "HEAD", (TASK_PATH, None), "method HEAD needs privilege none | path /kapacitor/v1/tasks/t1 → resource /api/tasks/t1 | privilege none needs no walk: allowed");
        check_trace(api, "trace", (TASK_PATH, None), "method TRACE maps to no privilege (HEAD, GET, POST, PATCH, PUT, DELETE do): denied");
        check_trace(api, "GET", ("/kapacitor/v1preview/x", None), "method GET needs privilege read | a preview path is checked as it is, then as /kapacitor/v1/x; both must allow | path /kapacitor/v1preview/x → resource /api/preview/x | /api/preview/x: no entry, up to the parent | /api/preview: no entry, up to the parent | /api: {all} holds read: allowed | path /kapacitor/v1/x → resource /api/x | /api/x: no entry, up to the parent | /api: {all} holds read: allowed");
        check_trace(&[("/api/x", &[All])], "GET", ("/kapacitor/v1preview/x", None), "method GET needs privilege read | a preview path is checked as it is, then as /kapacitor/v1/x; both must allow | path /kapacitor/v1preview/x → resource /api/preview/x | /api/preview/x: no entry, up to the parent | /api/preview: no entry, up to the parent | /api: no entry, up to the parent | /: no entry, up to the parent | no entry up to /: denied");
        check_trace(writer, "POST", ("/write", Some("db1")), "method POST needs privilege write | path /write → resource /api/write | /api/write: {write} holds write: allowed | a POST to the write endpoint with db=\"db1\" also needs write on /database/db1_clean | /database/db1_clean: {write} holds write: allowed");
        check_trace(writer, "POST", ("/write", Some("db2")), "method POST needs privilege write | path /write → resource /api/write | /api/write: {write} holds write: allowed | a POST to the write endpoint with db=\"db2\" also needs write on /database/db2_clean | /database/db2_clean: no entry, up to the parent | /database: no entry, up to the parent | /: no entry, up to the parent | no entry up to /: denied");
        check_trace(writer, "POST", ("/write", Some("")), "method POST needs privilege write | path /write → resource /api/write | /api/write: {write} holds write: allowed");
        check_trace(api, "GET", ("/kapacitor/v1/tasks", Some("db1")), "method GET needs privilege read | path /kapacitor/v1/tasks → resource /api/tasks | /api/tasks: no entry, up to the parent | /api: {all} holds read: allowed | db=\"db1\" is not checked: only a POST to /write or /kapacitor/v1/write is");
        check_trace(writer, "GET", ("/write", Some("db1")), "method GET needs privilege read | path /write → resource /api/write | /api/write: {write} lacks read: denied; a parent never overrides it");
    }

    #[test]
    fn the_trace_names_a_resource_that_is_not_rooted() {
        let mut steps: Vec<String> = Vec::new();
        assert!(!check_traced(&Grants::default(), Read, "api", &mut steps));
        assert_eq!(steps, [r#"resource "api" does not start with /: denied"#]);
    }

    #[test]
    fn methods_map_to_privileges_on_their_upper_cased_name() {
        check_method("HEAD", Ok(NoPrivilege));
        check_method("head", Ok(NoPrivilege));
        check_method("GET", Ok(Read));
        check_method("get", Ok(Read));
        check_method("Get", Ok(Read));
        check_method("POST", Ok(Write));
        check_method("post", Ok(Write));
        check_method("PATCH", Ok(Write));
        check_method("PUT", Ok(Write));
        check_method("DELETE", Ok(Delete));
        check_method("delete", Ok(Delete));
    }

    #[test]
    fn other_methods_are_unknown_and_named_upper_cased() {
        check_method("TRACE", Err("TRACE"));
        check_method("trace", Err("TRACE"));
        check_method("CONNECT", Err("CONNECT"));
        check_method("FOO", Err("FOO"));
        check_method("OPTIONS", Err("OPTIONS"));
        check_method("", Err(""));
        check_method("GET ", Err("GET "));
        check_method("POſT", Err("POſT"));
    }

    #[test]
    fn unknown_method_displays_the_quoted_method() {
        assert_eq!(
            UnknownMethod("TRACE".to_owned()).to_string(),
            r#"unknown method "TRACE""#
        );
    }

    #[test]
    fn paths_map_to_resources_under_api() {
        check_resource("/kapacitor/v1/tasks/t1", "/api/tasks/t1");
        check_resource("/kapacitor/v1/tasks/t1/", "/api/tasks/t1");
        check_resource("/kapacitor/v1/", "/api");
        check_resource("/kapacitor/v1", "/api");
        check_resource("/write", "/api/write");
        check_resource("/kapacitor/v1/write", "/api/write");
        check_resource("/kapacitor/v1preview/x", "/api/preview/x");
        check_resource("/kapacitor/v1preview", "/api/preview");
        check_resource("/", "/api");
        check_resource("", "/api");
        check_resource("/kapacitor", "/api/kapacitor");
        check_resource("/kapacitor/v2/tasks", "/api/kapacitor/v2/tasks");
        check_resource("/kapacitor/v1/config/smtp", "/api/config/smtp");
    }

    #[test]
    fn only_one_leading_prefix_is_removed() {
        check_resource("/kapacitor/v1/kapacitor/v1/x", "/api/kapacitor/v1/x");
        check_resource("/x/kapacitor/v1/y", "/api/x/kapacitor/v1/y");
    }

    #[test]
    fn resources_are_cleaned_like_go_path_join() {
        check_resource("/kapacitor/v1//tasks", "/api/tasks");
        check_resource("/kapacitor/v1/./tasks", "/api/tasks");
        check_resource("/kapacitor/v1/a/../b", "/api/b");
        check_resource("/kapacitor/v1/..", "/");
        check_resource("/kapacitor/v1/../../etc", "/etc");
        check_resource("/kapacitor/v1/tasks/my task", "/api/tasks/my task");
    }

    #[test]
    fn the_walk_stops_at_the_first_entry() {
        let child_denies: &[(&str, &[Privilege])] = &[("/api", &[All]), ("/api/tasks", &[Read])];
        check_walk(child_denies, Write, "/api/tasks/t1", false);
        check_walk(child_denies, Read, "/api/tasks/t1", true);
        check_walk(child_denies, Write, "/api/templates", true);
        let closed_config: &[(&str, &[Privilege])] =
            &[("/api", &[All]), ("/api/config", &[NoPrivilege])];
        check_walk(closed_config, Read, "/api/config", false);
        check_walk(closed_config, Read, "/api/config/smtp", false);
        check_walk(closed_config, Read, "/api/configs", true);
    }

    #[test]
    fn the_walk_denies_without_an_entry_up_to_the_root() {
        check_walk(&[], Read, "/api/tasks/t1", false);
        check_walk(&[("/api/templates", &[All])], Read, "/api/tasks/t1", false);
        check_walk(&[("/api/tasks/t1/x", &[All])], Read, "/api/tasks/t1", false);
        check_walk(&[("/database", &[All])], Read, "/api", false);
        check_walk(&[("/", &[All])], Delete, "/database/db_clean", true);
    }

    #[test]
    fn the_walk_denies_a_resource_that_is_not_rooted() {
        check_walk(&[("/", &[All])], Read, "api/tasks", false);
        check_walk(&[("/", &[All])], Read, "", false);
        check_walk(&[("api", &[All])], Read, "api", false);
    }

    #[test]
    fn the_walk_cleans_the_resource_before_looking() {
        check_walk(&[("/api/tasks", &[Read])], Read, "/api/tasks/", true);
        check_walk(&[("/api/tasks", &[Read])], Read, "/api//tasks", true);
        check_walk(&[("/api/tasks", &[All])], Read, "/api/tasks/../x", false);
    }

    #[test]
    fn privilege_none_is_allowed_without_a_walk() {
        check_walk(&[], NoPrivilege, "/api/tasks", true);
        check_walk(&[("/api/tasks", &[Read])], NoPrivilege, "/api/tasks", true);
        check_walk(&[("/api", &[NoPrivilege])], NoPrivilege, "/api/tasks", true);
        check_walk(&[], NoPrivilege, "not/rooted", true);
    }

    #[test]
    fn every_method_against_an_entry_at_the_resource() {
        // The columns are METHODS: GET get HEAD POST PATCH PUT DELETE TRACE CONNECT FOO.
        let at = "/api/tasks/t1";
        check_grid(&[(at, &[Read])], [Y, Y, Y, N, N, N, N, N, N, N]);
        check_grid(&[(at, &[Write])], [N, N, Y, Y, Y, Y, N, N, N, N]);
        check_grid(&[(at, &[Delete])], [N, N, Y, N, N, N, Y, N, N, N]);
        check_grid(&[(at, &[All])], [Y, Y, Y, Y, Y, Y, Y, N, N, N]);
        check_grid(&[(at, &[NoPrivilege])], [N, N, Y, N, N, N, N, N, N, N]);
    }

    #[test]
    fn every_method_against_an_entry_at_a_parent() {
        // The columns are METHODS: GET get HEAD POST PATCH PUT DELETE TRACE CONNECT FOO.
        let at = "/api/tasks";
        check_grid(&[(at, &[Read])], [Y, Y, Y, N, N, N, N, N, N, N]);
        check_grid(&[(at, &[Write])], [N, N, Y, Y, Y, Y, N, N, N, N]);
        check_grid(&[(at, &[Delete])], [N, N, Y, N, N, N, Y, N, N, N]);
        check_grid(&[(at, &[All])], [Y, Y, Y, Y, Y, Y, Y, N, N, N]);
        check_grid(&[(at, &[NoPrivilege])], [N, N, Y, N, N, N, N, N, N, N]);
    }

    #[test]
    fn every_method_against_an_entry_at_api() {
        // The columns are METHODS: GET get HEAD POST PATCH PUT DELETE TRACE CONNECT FOO.
        let at = "/api";
        check_grid(&[(at, &[Read])], [Y, Y, Y, N, N, N, N, N, N, N]);
        check_grid(&[(at, &[Write])], [N, N, Y, Y, Y, Y, N, N, N, N]);
        check_grid(&[(at, &[Delete])], [N, N, Y, N, N, N, Y, N, N, N]);
        check_grid(&[(at, &[All])], [Y, Y, Y, Y, Y, Y, Y, N, N, N]);
        check_grid(&[(at, &[NoPrivilege])], [N, N, Y, N, N, N, N, N, N, N]);
    }

    #[test]
    fn every_method_against_an_entry_at_the_root() {
        // The columns are METHODS: GET get HEAD POST PATCH PUT DELETE TRACE CONNECT FOO.
        let at = "/";
        check_grid(&[(at, &[Read])], [Y, Y, Y, N, N, N, N, N, N, N]);
        check_grid(&[(at, &[Write])], [N, N, Y, Y, Y, Y, N, N, N, N]);
        check_grid(&[(at, &[Delete])], [N, N, Y, N, N, N, Y, N, N, N]);
        check_grid(&[(at, &[All])], [Y, Y, Y, Y, Y, Y, Y, N, N, N]);
        check_grid(&[(at, &[NoPrivilege])], [N, N, Y, N, N, N, N, N, N, N]);
    }

    #[test]
    fn every_method_against_no_entry_on_the_walk() {
        // The columns are METHODS: GET get HEAD POST PATCH PUT DELETE TRACE CONNECT FOO.
        check_grid(&[], [N, N, Y, N, N, N, N, N, N, N]);
        check_grid(
            &[("/api/templates", &[All])],
            [N, N, Y, N, N, N, N, N, N, N],
        );
        check_grid(&[("/database", &[All])], [N, N, Y, N, N, N, N, N, N, N]);
    }

    #[test]
    fn a_mixed_entry_allows_exactly_its_members() {
        // The columns are METHODS: GET get HEAD POST PATCH PUT DELETE TRACE CONNECT FOO.
        let at = "/api/tasks";
        check_grid(&[(at, &[Read, Delete])], [Y, Y, Y, N, N, N, Y, N, N, N]);
        check_grid(&[(at, &[Read, Write])], [Y, Y, Y, Y, Y, Y, N, N, N, N]);
    }

    #[test]
    fn a_child_entry_denies_although_a_parent_allows() {
        // The columns are METHODS: GET get HEAD POST PATCH PUT DELETE TRACE CONNECT FOO.
        let child_reads = [("/api", &[All][..]), ("/api/tasks", &[Read][..])];
        check_grid(&child_reads, [Y, Y, Y, N, N, N, N, N, N, N]);
        let leaf_closed = [("/", &[All][..]), ("/api/tasks/t1", &[NoPrivilege][..])];
        check_grid(&leaf_closed, [N, N, Y, N, N, N, N, N, N, N]);
    }

    #[test]
    fn denials_name_the_method_or_the_privilege_and_the_request_path() {
        let grants = Grants::from_entries(&[("/api/tasks", &[Read])]);
        let unknown = |method: &str| {
            Decision::Deny(Denial::UnknownMethod {
                method: method.to_owned(),
            })
        };
        check_authorize(&grants, "trace", TASK_PATH, unknown("TRACE"));
        check_authorize(&grants, "OPTIONS", TASK_PATH, unknown("OPTIONS"));
        check_authorize(&grants, "POST", TASK_PATH, missing(Write, TASK_PATH));
        check_authorize(&grants, "patch", TASK_PATH, missing(Write, TASK_PATH));
        check_authorize(&grants, "DELETE", TASK_PATH, missing(Delete, TASK_PATH));
        check_authorize(
            &grants,
            "GET",
            "/kapacitor/v1/",
            missing(Read, "/kapacitor/v1/"),
        );
        check_authorize(&grants, "GET", TASK_PATH, Decision::Allow);
    }

    #[test]
    fn an_unknown_method_is_denied_even_with_every_privilege() {
        let grants = Grants::from_entries(&[("/", &[All])]);
        let trace = Decision::Deny(Denial::UnknownMethod {
            method: "TRACE".to_owned(),
        });
        check_authorize(&grants, "TRACE", "/kapacitor/v1/ping", trace);
    }

    #[test]
    fn bare_write_is_the_api_write_resource() {
        let grants = permissions(&[("db1", "WriteData")]);
        check_authorize(&grants, "POST", "/write", Decision::Allow);
        check_authorize(&grants, "POST", "/kapacitor/v1/write", Decision::Allow);
        check_authorize(&grants, "GET", "/write", missing(Read, "/write"));
        check_authorize(&grants, "POST", "/writes", missing(Write, "/writes"));
        check_authorize(&grants, "GET", "/kapacitor/v1/ping", Decision::Allow);
        check_authorize(&grants, "GET", TASK_PATH, missing(Read, TASK_PATH));
    }

    #[test]
    fn preview_paths_are_checked_as_they_are_and_rewritten() {
        let everything = Grants::from_entries(&[("/api", &[All])]);
        check_authorize(
            &everything,
            "GET",
            "/kapacitor/v1preview/x",
            Decision::Allow,
        );
        check_authorize(&everything, "GET", "/kapacitor/v1preview", Decision::Allow);
        let preview_only = Grants::from_entries(&[("/api/preview", &[All])]);
        check_authorize(
            &preview_only,
            "GET",
            "/kapacitor/v1preview/x",
            missing(Read, "/kapacitor/v1/x"),
        );
        check_authorize(
            &preview_only,
            "DELETE",
            "/kapacitor/v1preview/alerts/topics/t",
            missing(Delete, "/kapacitor/v1/alerts/topics/t"),
        );
        let rewritten_only = Grants::from_entries(&[("/api/x", &[All])]);
        check_authorize(
            &rewritten_only,
            "GET",
            "/kapacitor/v1preview/x",
            missing(Read, "/kapacitor/v1preview/x"),
        );
        check_authorize(&rewritten_only, "GET", "/kapacitor/v1/x", Decision::Allow);
    }

    #[test]
    fn a_preview_prefix_without_a_slash_is_rewritten_as_plain_text() {
        let previewfoo = Grants::from_entries(&[("/api/previewfoo", &[All])]);
        check_authorize(
            &previewfoo,
            "GET",
            "/kapacitor/v1previewfoo",
            missing(Read, "/kapacitor/v1foo"),
        );
        let both = Grants::from_entries(&[("/api/previewfoo", &[All]), ("/api/foo", &[All])]);
        check_authorize(&both, "GET", "/kapacitor/v1previewfoo", Decision::Allow);
    }

    #[test]
    fn paths_that_only_contain_the_preview_prefix_are_checked_once() {
        let grants = Grants::from_entries(&[("/api/x/kapacitor/v1preview", &[All])]);
        check_authorize(&grants, "GET", "/x/kapacitor/v1preview", Decision::Allow);
    }

    #[test]
    fn config_is_closed_to_kapacitor_api_alone() {
        let api = permissions(&[("", "KapacitorAPI")]);
        check_authorize(&api, "GET", "/kapacitor/v1/tasks", Decision::Allow);
        check_authorize(&api, "DELETE", TASK_PATH, Decision::Allow);
        check_authorize(
            &api,
            "GET",
            "/kapacitor/v1/config",
            missing(Read, "/kapacitor/v1/config"),
        );
        let smtp = "/kapacitor/v1/config/smtp";
        check_authorize(&api, "POST", smtp, missing(Write, smtp));
        check_authorize(&api, "HEAD", smtp, Decision::Allow);
        check_authorize(&api, "GET", "/kapacitor/v1/ping", Decision::Allow);
    }

    #[test]
    fn config_opens_with_kapacitor_config_api_in_either_order() {
        let smtp = "/kapacitor/v1/config/smtp";
        for scoped in [
            [("", "KapacitorAPI"), ("", "KapacitorConfigAPI")],
            [("", "KapacitorConfigAPI"), ("", "KapacitorAPI")],
        ] {
            let grants = permissions(&scoped);
            check_authorize(&grants, "GET", "/kapacitor/v1/config", Decision::Allow);
            check_authorize(&grants, "POST", smtp, Decision::Allow);
            check_authorize(&grants, "GET", TASK_PATH, Decision::Allow);
        }
        let config_only = permissions(&[("", "KapacitorConfigAPI")]);
        check_authorize(&config_only, "POST", smtp, Decision::Allow);
        check_authorize(&config_only, "GET", "/kapacitor/v1/ping", Decision::Allow);
        check_authorize(&config_only, "GET", TASK_PATH, missing(Read, TASK_PATH));
    }

    #[test]
    fn read_data_and_write_data_open_ping_and_no_other_api() {
        for permission in ["ReadData", "WriteData"] {
            let grants = permissions(&[("db1", permission)]);
            check_authorize(&grants, "GET", "/kapacitor/v1/ping", Decision::Allow);
            check_authorize(&grants, "HEAD", "/kapacitor/v1/ping", Decision::Allow);
            check_authorize(&grants, "GET", TASK_PATH, missing(Read, TASK_PATH));
        }
        let read = permissions(&[("db1", "ReadData")]);
        check_authorize(&read, "POST", "/write", missing(Write, "/write"));
    }

    #[test]
    fn head_is_allowed_for_any_authenticated_user() {
        check_authorize(&Grants::default(), "HEAD", TASK_PATH, Decision::Allow);
        let read = Grants::from_entries(&[("/api/tasks", &[Read])]);
        check_authorize(&read, "HEAD", TASK_PATH, Decision::Allow);
        check_authorize(&read, "head", "/kapacitor/v1preview/x", Decision::Allow);
    }

    #[test]
    fn a_request_is_allowed_only_when_both_the_path_and_the_database_allow_it() {
        let writer = permissions(&[("db1", "WriteData")]);
        let api = permissions(&[("", "KapacitorAPI")]);
        let both = permissions(&[("", "KapacitorAPI"), ("db1", "WriteData")]);
        let cases: &[(&Grants, &str, &str, Option<&str>, Decision)] = &[
            (&writer, "POST", "/write", Some("db1"), Decision::Allow),
            (&writer, "POST", "/write", Some("db2"), database("db2")),
            (
                &writer,
                "POST",
                "/kapacitor/v1/write",
                Some("db1"),
                Decision::Allow,
            ),
            (
                &writer,
                "POST",
                "/kapacitor/v1/tasks",
                None,
                missing(Write, "/kapacitor/v1/tasks"),
            ),
            (
                &api,
                "POST",
                "/kapacitor/v1/write",
                Some("db1"),
                database("db1"),
            ),
            (&api, "POST", "/kapacitor/v1/write", None, Decision::Allow),
            (
                &both,
                "POST",
                "/kapacitor/v1/write",
                Some("db1"),
                Decision::Allow,
            ),
            (
                &both,
                "POST",
                "/kapacitor/v1/write",
                Some("db2"),
                database("db2"),
            ),
            (
                &both,
                "GET",
                "/kapacitor/v1/tasks",
                Some("db2"),
                Decision::Allow,
            ),
            (
                &writer,
                "GET",
                "/kapacitor/v1/tasks",
                None,
                missing(Read, "/kapacitor/v1/tasks"),
            ),
            (
                &both,
                "TRACE",
                "/write",
                Some("db1"),
                Decision::Deny(Denial::UnknownMethod {
                    method: "TRACE".to_owned(),
                }),
            ),
        ];
        for (grants, method, path, db, expected) in cases {
            assert_eq!(
                authorize_request(grants, method, path, *db),
                *expected,
                "{method} {path} db {db:?}"
            );
        }
    }

    #[test]
    fn write_database_needs_write_on_the_database_named_by_db() {
        let grants = permissions(&[("db1", "WriteData")]);
        check_write(&grants, "POST", "/write", Some("db1"), Decision::Allow);
        check_write(&grants, "POST", "/write", Some("db2"), database("db2"));
        check_write(
            &grants,
            "POST",
            "/kapacitor/v1/write",
            Some("db1"),
            Decision::Allow,
        );
        check_write(
            &grants,
            "POST",
            "/kapacitor/v1/write",
            Some("db2"),
            database("db2"),
        );
        check_write(&grants, "post", "/write", Some("db2"), database("db2"));
        check_write(
            &grants,
            "Post",
            "/kapacitor/v1/write",
            Some("db2"),
            database("db2"),
        );
    }

    #[test]
    fn write_database_follows_the_preview_rewrite_to_the_write_handler() {
        let grants = permissions(&[("", "KapacitorAPI"), ("db1", "WriteData")]);
        let preview = "/kapacitor/v1preview/write";
        check_write(&grants, "POST", preview, Some("db1"), Decision::Allow);
        check_write(&grants, "POST", preview, Some("db2"), database("db2"));
    }

    #[test]
    fn write_database_passes_requests_it_does_not_concern() {
        let grants = Grants::default();
        check_write(&grants, "GET", "/write", Some("db2"), Decision::Allow);
        check_write(&grants, "PUT", "/write", Some("db2"), Decision::Allow);
        check_write(
            &grants,
            "HEAD",
            "/kapacitor/v1/write",
            Some("db2"),
            Decision::Allow,
        );
        check_write(&grants, "POST", "/write", None, Decision::Allow);
        check_write(&grants, "POST", "/write", Some(""), Decision::Allow);
        check_write(
            &grants,
            "POST",
            "/kapacitor/v1/write",
            None,
            Decision::Allow,
        );
        check_write(&grants, "POST", "/write/", Some("db2"), Decision::Allow);
        check_write(
            &grants,
            "POST",
            "/kapacitor/v1/write/x",
            Some("db2"),
            Decision::Allow,
        );
        check_write(
            &grants,
            "POST",
            "/kapacitor/v1/tasks",
            Some("db2"),
            Decision::Allow,
        );
        check_write(&grants, "POST", "/api/write", Some("db2"), Decision::Allow);
        check_write(&grants, "POST", "/x/write", Some("db2"), Decision::Allow);
    }

    #[test]
    fn write_on_all_databases_covers_every_database() {
        let grants = permissions(&[("", "WriteData")]);
        check_write(&grants, "POST", "/write", Some("db1"), Decision::Allow);
        check_write(&grants, "POST", "/write", Some("my/db"), Decision::Allow);
        let read_all = permissions(&[("", "ReadData")]);
        check_write(&read_all, "POST", "/write", Some("db1"), database("db1"));
    }

    #[test]
    fn read_on_one_database_hides_write_on_all_databases_as_in_kapacitor() {
        let grants = permissions(&[("", "WriteData"), ("db1", "ReadData")]);
        check_write(&grants, "POST", "/write", Some("db1"), database("db1"));
        check_write(&grants, "POST", "/write", Some("db2"), Decision::Allow);
    }

    #[test]
    fn database_names_with_slashes_are_kept_apart() {
        let grants = permissions(&[("my/db", "WriteData")]);
        check_write(&grants, "POST", "/write", Some("my/db"), Decision::Allow);
        check_write(&grants, "POST", "/write", Some("my_db"), database("my_db"));
        let clean = permissions(&[("my_db", "WriteData")]);
        check_write(&clean, "POST", "/write", Some("my_db"), Decision::Allow);
        check_write(&clean, "POST", "/write", Some("my/db"), database("my/db"));
    }

    #[test]
    fn kapacitor_api_alone_cannot_write_to_a_database() {
        let grants = permissions(&[("", "KapacitorAPI")]);
        check_authorize(&grants, "POST", "/write", Decision::Allow);
        check_write(&grants, "POST", "/write", Some("db1"), database("db1"));
    }

    #[test]
    fn the_default_decision_is_a_denial() {
        assert_ne!(Decision::default(), Decision::Allow);
        assert!(matches!(Decision::default(), Decision::Deny(_)));
    }
}

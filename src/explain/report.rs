//! What `kapauth explain` prints (SPEC §1–§3, §6, §7): one request of one user taken through
//! the gateway's steps in `handle.rs`'s order, each by a call into the gateway's own code
//! (`split_target`, `canonical_path`, `grants_of`, `authorize_request_traced`, `respond`), and
//! the answer a client would get. Only the order of the steps before authentication is
//! repeated here; the walk and every client text come from the code the gateway runs.
//!
//! Pure: the lookup comes in as a function, the text goes out. It shows names and permissions
//! only: a user document's hash is never read, so no hash or password can be printed.

use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::gateway::authenticate::{
    AuthError, Held, MetaUser, Origin, Unavailable, grants_of, permissions_held,
};
use crate::gateway::authorize::{self, Decision, Rule, rules};
use crate::gateway::credentials::parse_credentials;
use crate::gateway::forward::forward_target;
use crate::gateway::handle::is_own_path;
use crate::gateway::request_path::{canonical_path, split_target};
use crate::gateway::respond::{self, Reply, go_quote};
use crate::http::head::reason_phrase;
use crate::query::query_value;
use crate::secret::{SecretText, basic_header};

/// The request to explain.
#[derive(Debug, Clone, Copy)]
pub struct Question<'a> {
    pub user: &'a str,
    pub method: &'a str,
    pub target: &'a str,
}

/// What the gateway's configuration says about the request.
#[derive(Debug, Clone, Copy)]
pub struct Setup<'a> {
    /// `[http] auth-enabled` and `[auth] enabled`.
    pub auth_on: bool,
    /// `[auth] resolve-roles`.
    pub resolve_roles: bool,
    /// `[gateway] upstream`.
    pub upstream: &'a str,
    /// Where users come from, as a sentence's object: `the embedded store /d/meta.json`.
    pub source: &'a str,
}

/// Whether the request would reach Kapacitor.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Forwarded to Kapacitor (or answered by kapauth's own endpoints without a refusal).
    Allowed,
    /// Answered by kapauth with a refusal.
    Denied,
}

/// The text to print and the outcome it describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub text: String,
    pub outcome: Outcome,
}

/// One row of SPEC §3's table applied to one held permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source<'a> {
    pub rule: Rule,
    pub held: Held<'a>,
}

/// Explains `question`: the steps of `handle.rs`, in its order, up to the answer. `look_up`
/// is called only when the gateway would look the user up; its failure is returned.
pub fn explain(
    question: Question<'_>,
    setup: Setup<'_>,
    look_up: impl FnOnce(&str) -> Result<Option<MetaUser>, Unavailable>,
) -> Result<Report, Unavailable> {
    let Question {
        user,
        method,
        target,
    } = question;
    let mut out = Text::default();
    out.line(&format!(
        "request: {method} {target} as user {}",
        name(user)
    ));
    // The order of handle.rs's decide: the path, kapauth's own endpoints, OPTIONS, auth off,
    // then credentials, the user and the walk.
    out.section("path");
    let split = split_target(target);
    let canonical = split.and_then(|(raw_path, raw_query)| {
        canonical_path(raw_path).map(|path| (raw_path, raw_query, path))
    });
    let (raw_path, raw_query, path) = match canonical {
        Ok(parts) => parts,
        Err(problem) => {
            out.item(&format!("{problem}: refused before any user is looked up"));
            return Ok(out.refused(respond::non_canonical_path()));
        }
    };
    out.item(&format!("canonical; decoded, the path is {}", shown(&path)));
    if is_own_path(&path) {
        out.item("kapauth answers its own /kapauth/ paths itself, without credentials; they never reach Kapacitor");
        return Ok(out.finish(Outcome::Allowed));
    }
    if method == "OPTIONS" {
        out.item("OPTIONS is forwarded without looking at credentials, as Kapacitor answers preflights before authentication");
        return Ok(out.forwarded(setup.upstream, method, raw_path, raw_query));
    }
    if !setup.auth_on {
        out.item("authentication is off ([http] auth-enabled or [auth] enabled is false): every request is forwarded unchecked");
        return Ok(out.forwarded(setup.upstream, method, raw_path, raw_query));
    }

    out.section("user");
    // The gateway reads credentials before any lookup: a username its Basic reading refuses
    // (Kapacitor's subscription token) is refused there, whatever meta holds.
    let as_basic = basic_header(user, &SecretText::new("-"));
    if let Err(error) = parse_credentials(Some(&as_basic), None) {
        out.item(&format!(
            "as a Basic username it gets 401 {:?} before any lookup; below is the answer for ?u=&p= or a token",
            error.to_string()
        ));
    }
    let Some(meta_user) = look_up(user)? else {
        out.item(&format!("{} is not in {}", name(user), setup.source));
        return Ok(out.refused(respond::unauthorized(&AuthError::Failed.to_string())));
    };
    out.item(&format!("{} found in {}", name(user), setup.source));
    out.item("the answer below is for its right password or token; a wrong one gets 401 \"authorization failed\"");

    out.section("permissions");
    let held = held_permissions(&meta_user, setup.resolve_roles);
    if held.is_empty() {
        out.item("none");
    }
    for permission in &held {
        let ignored = if rules(permission.permission).is_empty() {
            ": grants nothing in Kapacitor"
        } else {
            ""
        };
        out.item(&format!(
            "{} on {} ({}){ignored}",
            name(permission.permission),
            scope(permission.scope),
            origin(permission.origin)
        ));
    }
    if !setup.resolve_roles {
        let listing = meta_user.roles.iter();
        for role in listing.filter(|role| role.users.iter().any(|member| member == user)) {
            out.item(&format!(
                "role {} lists {} but [auth] resolve-roles = false: its permissions are not merged",
                name(&role.name),
                name(user)
            ));
        }
    }

    out.section("grants (resource: privileges, from)");
    let grants = grants_of(&meta_user.user, &meta_user.roles, setup.resolve_roles);
    let sources = sources(&held);
    if grants.iter().next().is_none() {
        out.item("none: every request but HEAD is denied");
    }
    for (resource, privileges) in grants.iter() {
        out.item(&format!("{}: {privileges:?}", shown(resource)));
        for source in sources.get(resource).into_iter().flatten() {
            out.detail(&describe(source));
        }
    }

    out.section("walk");
    let db = raw_query.and_then(|query| query_value(query, "db"));
    let mut steps: Vec<String> = Vec::new();
    let decision =
        authorize::authorize_request_traced(&grants, method, &path, db.as_deref(), &mut steps);
    for (number, step) in steps.iter().enumerate() {
        out.item(&format!("{}. {step}", number + 1));
    }
    Ok(match decision {
        Decision::Allow => out.forwarded(setup.upstream, method, raw_path, raw_query),
        Decision::Deny(denial) => out.refused(respond::denied(user, &denial)),
    })
}

/// The permissions that reach the user's grants, from the gateway's own `permissions_held`,
/// which `grants_of` merges.
pub fn held_permissions(meta_user: &MetaUser, resolve_roles: bool) -> Vec<Held<'_>> {
    permissions_held(&meta_user.user, &meta_user.roles, resolve_roles).collect()
}

/// Resource → the rows of SPEC §3's table that wrote to it, and the permission each came from:
/// the same `rules` that `Grants::from_permissions` applies, so a grant's source cannot be
/// another rule than the one that made it.
pub fn sources<'a>(held: &[Held<'a>]) -> BTreeMap<String, Vec<Source<'a>>> {
    let mut sources: BTreeMap<String, Vec<Source<'a>>> = BTreeMap::new();
    for held in held {
        for rule in rules(held.permission) {
            let resource = rule.resource.of(held.scope).into_owned();
            sources.entry(resource).or_default().push(Source {
                rule: *rule,
                held: *held,
            });
        }
    }
    sources
}

/// `write from WriteData on database "db1" (role writers)`.
fn describe(source: &Source<'_>) -> String {
    let Source { rule, held } = source;
    let unless = if rule.only_if_absent {
        ", only where nothing else grants it"
    } else {
        ""
    };
    format!(
        "{} from {} on {} ({}){unless}",
        rule.privilege.as_str(),
        name(held.permission),
        scope(held.scope),
        origin(held.origin)
    )
}

fn scope(scope: &str) -> String {
    if scope.is_empty() {
        "all databases".to_string()
    } else {
        format!("database {}", go_quote(scope))
    }
}

fn origin(origin: Origin<'_>) -> String {
    match origin {
        Origin::Direct => "direct".to_string(),
        Origin::Role(role) => format!("role {}", name(role)),
    }
}

/// A user, role or permission name as it is when it cannot be misread, else Go-quoted: an
/// external meta's names are data, and a control character in one must not reach the terminal.
fn name(text: &str) -> Cow<'_, str> {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_alphanumeric() || "-_.~@+".contains(c));
    if plain {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(go_quote(text))
    }
}

/// A resource as it is, unless a character in it would not print as itself.
fn shown(resource: &str) -> Cow<'_, str> {
    if resource.chars().any(|c| c.is_control()) {
        Cow::Owned(go_quote(resource))
    } else {
        Cow::Borrowed(resource)
    }
}

/// The report's text: a first line, then sections of indented items.
#[derive(Default)]
struct Text {
    text: String,
}

impl Text {
    fn line(&mut self, line: &str) {
        self.text.push_str(line);
        self.text.push('\n');
    }

    fn section(&mut self, title: &str) {
        self.text.push('\n');
        self.line(title);
    }

    fn item(&mut self, item: &str) {
        self.line(&format!("  {item}"));
    }

    fn detail(&mut self, detail: &str) {
        self.line(&format!("      {detail}"));
    }

    /// The decision to forward, and where to.
    fn forwarded(
        mut self,
        upstream: &str,
        method: &str,
        raw_path: &str,
        raw_query: Option<&str>,
    ) -> Report {
        self.section("decision");
        self.item(&format!(
            "allowed: forwarded to {upstream} as {method} {}",
            forward_target(raw_path, raw_query)
        ));
        self.item("(without Authorization, u and p); the client gets Kapacitor's answer");
        self.finish(Outcome::Allowed)
    }

    /// The refusal, and the answer exactly as the gateway writes it.
    fn refused(mut self, reply: Reply) -> Report {
        self.section("decision");
        self.item(&format!("refused with {}", reply.status));
        self.section("answer");
        self.item(&format!(
            "HTTP/1.1 {} {}",
            reply.status,
            reason_phrase(reply.status)
        ));
        for (field, value) in &reply.headers {
            self.item(&format!("{field}: {value}"));
        }
        self.item("Request-Id: (a new one per request)");
        self.line("");
        for line in reply.body.lines() {
            self.item(line);
        }
        self.finish(Outcome::Denied)
    }

    fn finish(self, outcome: Outcome) -> Report {
        Report {
            text: self.text,
            outcome,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::authorize::Grants;
    use crate::meta_api::{Permissions, RoleDoc, UserDoc};

    const SETUP: Setup<'static> = Setup {
        auth_on: true,
        resolve_roles: true,
        upstream: "http://127.0.0.1:9093",
        source: "the test store",
    };

    fn question<'a>(user: &'a str, method: &'a str, target: &'a str) -> Question<'a> {
        Question {
            user,
            method,
            target,
        }
    }

    fn permissions(scoped: &[(&str, &[&str])]) -> Permissions {
        scoped
            .iter()
            .map(|(scope, names)| {
                let names = names.iter().map(|name| name.to_string()).collect();
                (scope.to_string(), names)
            })
            .collect()
    }

    /// alice: KapacitorAPI on all databases, and WriteData on db1 through role writers;
    /// role other holds ReadData on db2 but does not list alice.
    fn alice() -> MetaUser {
        MetaUser {
            user: UserDoc {
                name: "alice".to_string(),
                hash: "$2a$04$secret-hash-never-printed".to_string(),
                permissions: permissions(&[("", &["KapacitorAPI", "ViewAdmin"])]),
            },
            roles: vec![
                RoleDoc {
                    name: "writers".to_string(),
                    permissions: permissions(&[("db1", &["WriteData"])]),
                    users: vec!["alice".to_string()],
                },
                RoleDoc {
                    name: "other".to_string(),
                    permissions: permissions(&[("db2", &["ReadData"])]),
                    users: vec!["bob".to_string()],
                },
            ],
        }
    }

    /// The outcome and the lines of the report for alice's request (each expected line must
    /// be in the text, whole); the hash never is.
    fn check(setup: Setup<'_>, method: &str, target: &str, outcome: Outcome, lines: &[&str]) {
        let question = question("alice", method, target);
        let report = explain(question, setup, |_| Ok(Some(alice()))).expect("no meta to fail");
        assert_eq!(report.outcome, outcome, "{}", report.text);
        let text_lines: Vec<&str> = report.text.lines().collect();
        for line in lines {
            assert!(
                text_lines.contains(line),
                "{method} {target}: no line {line:?} in\n{}",
                report.text
            );
        }
        assert!(!report.text.contains("secret-hash"), "{}", report.text);
    }

    #[rustfmt::skip]
    #[test]
    fn reports_say_each_step_and_the_exact_answer() {
        let no_roles = Setup { resolve_roles: false, ..SETUP };
        let auth_off = Setup { auth_on: false, ..SETUP };
        check(SETUP, "GET", "/kapacitor/v1/tasks", Outcome::Allowed, &["  KapacitorAPI on all databases (direct)", "  WriteData on database \"db1\" (role writers)", "  ViewAdmin on all databases (direct): grants nothing in Kapacitor", "  /api: {all}", "      all from KapacitorAPI on all databases (direct)", "  4. /api: {all} holds read: allowed", "  allowed: forwarded to http://127.0.0.1:9093 as GET /kapacitor/v1/tasks"]);
        check(SETUP, "GET", "/kapacitor/v1/config", Outcome::Denied, &["      none from KapacitorAPI on all databases (direct), only where nothing else grants it", "  3. /api/config: {none} lacks read: denied; a parent never overrides it", "  HTTP/1.1 403 Forbidden", "  Content-Type: application/json; charset=utf-8", r#"  {"error":"user alice does not have \"read\" privilege for API endpoint \"/kapacitor/v1/config\""}"#]);
        check(SETUP, "POST", "/write?db=db1&u=alice&p=x", Outcome::Allowed, &["  /database/db1_clean: {write}", "      write from WriteData on database \"db1\" (role writers)", "  allowed: forwarded to http://127.0.0.1:9093 as POST /write?db=db1"]);
        check(SETUP, "POST", "/write?db=db2", Outcome::Denied, &["  HTTP/1.1 401 Unauthorized", "  WWW-Authenticate: Basic realm=\"kapacitor\"", "  \"alice\" user is not authorized to write to database \"db2\""]);
        check(no_roles, "POST", "/write?db=db1", Outcome::Denied, &["  role writers lists alice but [auth] resolve-roles = false: its permissions are not merged", "  3. /api/write: no entry, up to the parent", "  4. /api: {all} holds write: allowed", "  9. no entry up to /: denied", "  HTTP/1.1 401 Unauthorized"]);
        check(SETUP, "GET", "/kapacitor/v1/../x", Outcome::Denied, &["  request path has a \".\" or \"..\" segment: refused before any user is looked up", "  HTTP/1.1 400 Bad Request", r#"  {"error":"non-canonical request path"}"#]);
        check(SETUP, "TRACE", "/kapacitor/v1/tasks", Outcome::Denied, &["  1. method TRACE maps to no privilege (HEAD, GET, POST, PATCH, PUT, DELETE do): denied", r#"  {"error":"unknown method \"TRACE\""}"#]);
        check(SETUP, "OPTIONS", "/kapacitor/v1/tasks", Outcome::Allowed, &["  allowed: forwarded to http://127.0.0.1:9093 as OPTIONS /kapacitor/v1/tasks"]);
        check(auth_off, "DELETE", "/kapacitor/v1/tasks/t", Outcome::Allowed, &["  authentication is off ([http] auth-enabled or [auth] enabled is false): every request is forwarded unchecked"]);
        check(SETUP, "GET", "/kapauth/health", Outcome::Allowed, &["  kapauth answers its own /kapauth/ paths itself, without credentials; they never reach Kapacitor"]);
    }

    #[test]
    fn only_roles_that_list_the_user_are_named() {
        let question = question("alice", "GET", "/kapacitor/v1/tasks");
        for resolve_roles in [true, false] {
            let setup = Setup {
                resolve_roles,
                ..SETUP
            };
            let report = explain(question, setup, |_| Ok(Some(alice()))).expect("no meta");
            assert!(report.text.contains("role writers"), "{}", report.text);
            assert!(!report.text.contains("role other"), "{}", report.text);
        }
    }

    #[test]
    fn the_subscription_token_is_named_as_basic_refuses_it() {
        let subscriber = question("~subscriber", "GET", "/kapacitor/v1/tasks");
        let report = explain(subscriber, SETUP, |_| Ok(None)).expect("no meta to fail");
        let note = "  as a Basic username it gets 401 \"subscription tokens are not supported; give the subscription a meta user\" before any lookup; below is the answer for ?u=&p= or a token\n";
        assert!(report.text.contains(note), "{}", report.text);
        let alice = question("alice", "GET", "/kapacitor/v1/tasks");
        let report = explain(alice, SETUP, |_| Ok(None)).expect("no meta to fail");
        assert!(
            !report.text.contains("as a Basic username"),
            "{}",
            report.text
        );
    }

    #[test]
    fn an_unknown_user_gets_the_gateways_401() {
        let question = question("nobody", "GET", "/kapacitor/v1/tasks");
        let report = explain(question, SETUP, |_| Ok(None)).expect("no meta to fail");
        assert_eq!(report.outcome, Outcome::Denied);
        assert!(report.text.contains("  nobody is not in the test store\n"));
        assert!(
            report
                .text
                .contains("  {\"error\":\"authorization failed\"}\n")
        );
        assert!(
            report
                .text
                .contains("  WWW-Authenticate: Basic realm=\"kapacitor\"\n")
        );
    }

    #[test]
    fn a_failed_lookup_is_returned_and_a_refused_path_looks_nobody_up() {
        let question = |target| question("alice", "GET", target);
        let failed = explain(question("/kapacitor/v1/tasks"), SETUP, |_| {
            Err(Unavailable("meta is down".to_string()))
        });
        assert_eq!(failed, Err(Unavailable("meta is down".to_string())));
        let refused = explain(question("/a#b"), SETUP, |_| panic!("looked up"));
        assert_eq!(refused.map(|report| report.outcome), Ok(Outcome::Denied));
    }

    #[test]
    fn sources_name_every_resource_of_the_gateways_grants_and_no_other() {
        for resolve_roles in [true, false] {
            let meta_user = alice();
            let grants = grants_of(&meta_user.user, &meta_user.roles, resolve_roles);
            let held = held_permissions(&meta_user, resolve_roles);
            let sources = sources(&held);
            let granted: Vec<&str> = grants.iter().map(|(resource, _)| resource).collect();
            let sourced: Vec<&str> = sources.keys().map(String::as_str).collect();
            assert_eq!(granted, sourced, "resolve-roles {resolve_roles}");
            let pairs = held.iter().map(|held| (held.scope, held.permission));
            assert_eq!(Grants::from_permissions(pairs), grants);
        }
    }
}

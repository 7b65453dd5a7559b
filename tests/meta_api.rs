//! Black-box tests of `kapauth meta` (SPEC §8): the real binary on an ephemeral port over
//! a temporary store directory, spoken to over raw HTTP/1.1. Covers the user and role
//! workflows of the seed documents and of the InfluxDB Enterprise meta API, who may do
//! what, the first-user bootstrap, bad requests, durability across restarts, corrupt
//! files and `kill -9`, reads during a slow bcrypt, and what reaches the log.
//!
//! Every body kapauth writes is asserted whole. Hashes are random, so documents are
//! compared with each hash checked for bcrypt's shape at the configured cost and then
//! replaced by `<bcrypt>`.

mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kapauth::secret::jwt::{Secret, sign_hs512};
use support::{Kapauth, Launch, Response, TempDir, basic, request, send, try_request};

const ADMIN: (&str, &str) = ("admin", "changeit");

/// `ADMIN` as a header (`support::basic` computes the same; its unit test says so).
const ADMIN_AUTH: Header = ("Authorization", "Basic YWRtaW46Y2hhbmdlaXQ=");

/// The store's 18 bootstrap permissions (every token after `NoPermissions`), in the
/// order documents list them.
const ALL_18: &str = r#"["AddRemoveNode","CopyShard","CreateDatabase","CreateUserAndRole","DropData","DropDatabase","KapacitorAPI","KapacitorConfigAPI","ManageContinuousQuery","ManageQuery","ManageShard","ManageSubscription","Monitor","ReadData","Rebalance","ViewAdmin","ViewChronograf","WriteData"]"#;

/// One request header, name and value.
type Header<'a> = (&'a str, &'a str);

/// What curl's `--data`/`-d` sends as the content type.
const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");

// ---------------------------------------------------------------------------------------
// The seed documents' curl sequences
// ---------------------------------------------------------------------------------------

#[test]
fn seed_user_workflow_creates_johndoe_and_grants_kapacitor_permissions_as_printed() {
    let meta = Meta::with_admin();
    // The seed's `--user "username:password"` is a placeholder for an administrator; here
    // it is a real one, so the command runs exactly as printed.
    meta.create_user_with(
        ADMIN,
        "username",
        "password",
        r#"{"":["CreateUserAndRole"]}"#,
    );

    let created = meta.post_as(
        ADMIN,
        "/user",
        &[FORM],
        "{\n    \"action\":\"create\",\n    \"user\": {\n      \"name\":\"johndoe\",\n      \"password\":\"pa5sw0Rd\"\n    }\n  }",
    );
    assert_ok(&created);
    let granted = meta.post_as(
        ("username", "password"),
        "/user",
        &[FORM],
        "{\n    \"action\": \"add-permissions\",\n    \"user\":{\n      \"name\": \"johndoe\",\n      \"permissions\": {\n        \"\":[\n          \"KapacitorAPI\",\n          \"KapacitorConfigAPI\"\n        ]\n      }\n    }\n  }",
    );
    assert_ok(&granted);

    let johndoe = meta.get_as(ADMIN, "/user?name=johndoe");
    assert_users(
        &johndoe,
        4,
        r#"{"users":[{"name":"johndoe","hash":"<bcrypt>","permissions":{"":["KapacitorAPI","KapacitorConfigAPI"]}}]}"#,
    );
    assert_ok(&meta.authorized("johndoe", "pa5sw0Rd", "KapacitorAPI", ""));
    meta.assert_no_secrets_logged(&["changeit", "pa5sw0Rd"]);
}

#[test]
fn seed_role_creation_example_is_refused_naming_the_trailing_comma_and_the_user_key() {
    let meta = Meta::with_admin();
    let printed =
        "{\n    \"action\":\"create\",\n    \"user\": {\n      \"name\":\"kapacitor\",\n    }\n  }";
    meta.assert_refused(
        ADMIN,
        "/role",
        printed,
        400,
        r#"{"error":"malformed JSON: trailing comma at line 5 column 5; also, /role takes the role under \"role\", not \"user\""}"#,
    );
    // With the comma gone, the other mistake is still named on its own.
    let comma_fixed =
        "{\n    \"action\":\"create\",\n    \"user\": {\n      \"name\":\"kapacitor\"\n    }\n  }";
    meta.assert_refused(
        ADMIN,
        "/role",
        comma_fixed,
        400,
        r#"{"error":"/role takes the role under \"role\", not \"user\"; write e.g. {\"action\":\"create\",\"role\":{\"name\":\"…\"}}"}"#,
    );
}

#[test]
fn seed_role_workflow_works_as_printed_once_the_role_is_created_correctly() {
    let meta = Meta::with_admin();
    meta.create_user_with(
        ADMIN,
        "username",
        "password",
        r#"{"":["CreateUserAndRole"]}"#,
    );
    // The seed's role creation is broken (see the test above); these are the corrected
    // forms for the two role names the seed goes on to use.
    for role in ["kapacitor", "example-role"] {
        let body = format!(
            "{{\n    \"action\":\"create\",\n    \"role\": {{\n      \"name\":\"{role}\"\n    }}\n  }}"
        );
        assert_ok(&meta.post_as(ADMIN, "/role", &[FORM], &body));
    }

    let role_permissions = "{\n    \"action\": \"add-permissions\",\n    \"role\":{\n      \"name\": \"kapacitor\",\n      \"permissions\": {\n        \"\":[\n          \"KapacitorAPI\",\n          \"KapacitorConfigAPI\"\n        ]\n      }\n    }\n  }";
    // The seed posts this role body to /user; /user names the misplaced key and changes
    // nothing. Sent to /role, the same bytes work.
    meta.assert_refused(
        ("username", "password"),
        "/user",
        role_permissions,
        400,
        r#"{"error":"/user takes the user under \"user\", not \"role\"; write e.g. {\"action\":\"create\",\"user\":{\"name\":\"…\"}}"}"#,
    );
    assert_ok(&meta.post_as(("username", "password"), "/role", &[FORM], role_permissions));

    assert_ok(&meta.post_as(
        ADMIN,
        "/user",
        &[FORM],
        "{\n    \"action\":\"create\",\n    \"user\": {\n      \"name\":\"johndoe\",\n      \"password\":\"pa5sw0Rd\"\n    }\n  }",
    ));
    assert_ok(&meta.post_as(
        ("username", "password"),
        "/role",
        &[FORM],
        "{\n    \"action\": \"add-users\",\n    \"role\": {\n      \"name\": \"example-role\",\n      \"users\": [\n        \"johndoe\"\n      ]\n    }\n  }",
    ));

    assert_json(
        &meta.get_as(ADMIN, "/role"),
        200,
        r#"{"roles":[{"name":"example-role","users":["johndoe"]},{"name":"kapacitor","permissions":{"":["KapacitorAPI","KapacitorConfigAPI"]}}]}"#,
    );
    meta.assert_no_secrets_logged(&["changeit", "pa5sw0Rd"]);
}

#[test]
fn seed_one_line_curl_forms_with_credentials_in_the_url_work() {
    let meta = Meta::with_admin();
    // What the seed's later commands act on must exist first.
    meta.create_user("straka", "straka-old-1");
    meta.create_user("sova", "sova-pass-1");
    meta.create_user("tucnak", "tucnak-pass-1");
    for role in ["delete-me-role", "test-role"] {
        meta.post_ok(
            "/role",
            &format!(r#"{{"action":"create","role":{{"name":"{role}"}}}}"#),
        );
    }
    meta.post_ok(
        "/role",
        r#"{"action":"add-users","role":{"name":"test-role","users":["tucnak"]}}"#,
    );

    // `curl -d BODY http://admin:changeit@HOST:8091/PATH` sends Basic credentials and a
    // form content type; the first add-users replaces it with `-H` by a JSON one.
    let json = ("Content-Type", "application/json");
    let commands: [(&str, &str, &[Header]); 9] = [
        (
            "/user",
            r#"{"action":"create","user":{"name":"tux","password":"changeit"}}"#,
            &[FORM],
        ),
        (
            "/user",
            r#"{"action":"add-permissions","user":{"name":"tux","permissions":{"":["KapacitorAPI","KapacitorConfigAPI"]}}}"#,
            &[FORM],
        ),
        (
            "/role",
            r#"{"action":"create","role":{"name":"penguin"}}"#,
            &[FORM],
        ),
        (
            "/role",
            r#"{"action":"add-permissions","role":{"name":"penguin","permissions":{"":["KapacitorAPI","KapacitorConfigAPI"]}}}"#,
            &[FORM],
        ),
        (
            "/user",
            r#"{"action":"change-password","user":{"name":"straka","password":"noname"}}"#,
            &[FORM],
        ),
        (
            "/user",
            r#"{"action":"delete","user":{"name":"straka"}}"#,
            &[FORM],
        ),
        (
            "/role",
            r#"{"action":"delete","role":{"name":"delete-me-role"}}"#,
            &[FORM],
        ),
        (
            "/role",
            r#"{"action":"add-users","role":{"name":"test-role","users":["sova"]}}"#,
            &[json],
        ),
        (
            "/role",
            r#"{"action":"remove-users","role":{"name":"test-role","users":["tucnak"]}}"#,
            &[FORM],
        ),
    ];
    for (path, body, headers) in commands {
        let response = meta.post_as(ADMIN, path, headers, body);
        assert_eq!(response.status, 200, "{body}: {response:?}");
        assert_eq!(response.body, b"", "{body}");
    }

    assert_users(
        &meta.get_as(ADMIN, "/user"),
        4,
        &format!(
            r#"{{"users":[{{"name":"admin","hash":"<bcrypt>","permissions":{{"":{ALL_18}}}}},{{"name":"sova","hash":"<bcrypt>"}},{{"name":"tucnak","hash":"<bcrypt>"}},{{"name":"tux","hash":"<bcrypt>","permissions":{{"":["KapacitorAPI","KapacitorConfigAPI"]}}}}]}}"#
        ),
    );
    assert_json(
        &meta.get_as(ADMIN, "/role"),
        200,
        r#"{"roles":[{"name":"penguin","permissions":{"":["KapacitorAPI","KapacitorConfigAPI"]}},{"name":"test-role","users":["sova"]}]}"#,
    );
    assert_ok(&meta.authorized("tux", "changeit", "KapacitorAPI", ""));
    meta.assert_no_secrets_logged(&[
        "changeit",
        "straka-old-1",
        "sova-pass-1",
        "tucnak-pass-1",
        "noname",
    ]);
}

// ---------------------------------------------------------------------------------------
// The Enterprise meta API's user and role endpoints
// ---------------------------------------------------------------------------------------

#[test]
fn ping_answers_204_with_an_empty_body_without_credentials() {
    let meta = Meta::start();
    for method in ["GET", "HEAD"] {
        let response = request(meta.addr(), method, "/ping", &[], b"");
        assert_eq!(response.status, 204, "{method}");
        assert_eq!(response.body, b"", "{method}");
    }
}

#[test]
fn ping_answers_204_whatever_credentials_come_with_it() {
    let meta = Meta::with_admin();
    for credentials in [("admin", "not-it"), ("nobody", "x")] {
        let response = meta.get_as(credentials, "/ping");
        assert_eq!(response.status, 204, "{credentials:?}: {response:?}");
    }
}

#[test]
fn listing_users_shows_name_hash_and_permissions_and_omits_empty_permissions() {
    let meta = Meta::with_admin();
    meta.create_user("alice", "alice-pass-1");
    meta.create_user("bob", "bob-pass-1");
    meta.grant_user("bob", r#"{"db1":["ReadData"]}"#);
    assert_users(
        &meta.get_as(ADMIN, "/user"),
        4,
        &format!(
            r#"{{"users":[{{"name":"admin","hash":"<bcrypt>","permissions":{{"":{ALL_18}}}}},{{"name":"alice","hash":"<bcrypt>"}},{{"name":"bob","hash":"<bcrypt>","permissions":{{"db1":["ReadData"]}}}}]}}"#
        ),
    );
}

#[test]
fn getting_one_user_by_name_returns_a_list_of_that_user_and_an_unknown_name_is_404() {
    let meta = Meta::with_admin();
    meta.create_user("alice", "alice-pass-1");
    assert_users(
        &meta.get_as(ADMIN, "/user?name=alice"),
        4,
        r#"{"users":[{"name":"alice","hash":"<bcrypt>"}]}"#,
    );
    assert_json(
        &meta.get_as(ADMIN, "/user?name=nobody"),
        404,
        r#"{"error":"user not found"}"#,
    );
}

#[test]
fn permissions_are_added_and_removed_on_all_databases_and_on_one_database() {
    let meta = Meta::with_admin();
    meta.create_user("alice", "alice-pass-1");
    let alice = |permissions: &str| {
        assert_users(
            &meta.get_as(ADMIN, "/user?name=alice"),
            4,
            &format!(r#"{{"users":[{{"name":"alice","hash":"<bcrypt>"{permissions}}}]}}"#),
        );
    };

    meta.grant_user(
        "alice",
        r#"{"":["KapacitorAPI"],"db1":["ReadData","WriteData"]}"#,
    );
    alice(r#","permissions":{"":["KapacitorAPI"],"db1":["ReadData","WriteData"]}"#);
    // Adding what is held changes nothing.
    meta.grant_user("alice", r#"{"":["KapacitorAPI"]}"#);
    alice(r#","permissions":{"":["KapacitorAPI"],"db1":["ReadData","WriteData"]}"#);

    meta.post_ok(
        "/user",
        r#"{"action":"remove-permissions","user":{"name":"alice","permissions":{"db1":["WriteData"]}}}"#,
    );
    alice(r#","permissions":{"":["KapacitorAPI"],"db1":["ReadData"]}"#);
    // Emptying a scope removes it; emptying every scope removes "permissions".
    meta.post_ok(
        "/user",
        r#"{"action":"remove-permissions","user":{"name":"alice","permissions":{"db1":["ReadData"]}}}"#,
    );
    alice(r#","permissions":{"":["KapacitorAPI"]}"#);
    meta.post_ok(
        "/user",
        r#"{"action":"remove-permissions","user":{"name":"alice","permissions":{"":["KapacitorAPI"],"db2":["ReadData"]}}}"#,
    );
    alice("");
}

#[test]
fn every_change_is_audited_with_actor_action_target_permissions_and_outcome() {
    let meta = Meta::with_admin();
    meta.create_user("bob", "bob-pass");
    meta.grant_user("bob", r#"{"":["KapacitorAPI"],"db1":["WriteData"]}"#);
    meta.post_ok(
        "/user",
        r#"{"action":"change-password","user":{"name":"bob","password":"bob-new-pass"}}"#,
    );
    meta.post_ok("/role", r#"{"action":"create","role":{"name":"ops"}}"#);
    meta.post_ok(
        "/role",
        r#"{"action":"add-users","role":{"name":"ops","users":["bob"]}}"#,
    );
    // Refused (no credentials), invalid, and a change that does not fit the store.
    let anonymous = request(
        meta.addr(),
        "POST",
        "/user",
        &[],
        br#"{"action":"delete","user":{"name":"bob"}}"#,
    );
    assert_eq!(anonymous.status, 401, "{anonymous:?}");
    let invalid = meta.post_as(
        ADMIN,
        "/user",
        &[],
        r#"{"action":"create","user":{"name":"x","password":12345}}"#,
    );
    assert_eq!(invalid.status, 400, "{invalid:?}");
    let missing = meta.post_as(
        ADMIN,
        "/role",
        &[],
        r#"{"action":"delete","role":{"name":"nosuch"}}"#,
    );
    assert_eq!(missing.status, 404, "{missing:?}");

    let audit = meta
        .server
        .wait_for_log_lines(9, |line| line.contains("msg=\"meta change\""));
    let expected = [
        "actor=- action=create user=admin permissions=\"(every permission: first user)\" outcome=ok",
        "actor=admin action=create user=bob outcome=ok",
        "actor=admin action=add-permissions user=bob permissions=KapacitorAPI@*,WriteData@db1 outcome=ok",
        "actor=admin action=change-password user=bob outcome=ok",
        "actor=admin action=create role=ops outcome=ok",
        "actor=admin action=add-users role=ops users=bob outcome=ok",
        "actor=- path=/user outcome=\"refused (401)\"",
        "actor=admin path=/user outcome=\"invalid (400)\"",
        "actor=admin action=delete role=nosuch outcome=\"refused (404): role \\\"nosuch\\\" not found\"",
    ];
    for (line, expected) in audit.iter().zip(expected) {
        assert!(
            line.ends_with(&format!("msg=\"meta change\" service=meta {expected}")),
            "expected {expected:?} in {line}"
        );
    }
    meta.assert_no_secrets_logged(&["changeit", "bob-pass", "bob-new-pass", "12345"]);
}

#[test]
fn change_password_makes_the_old_password_fail_and_the_new_one_work() {
    let meta = Meta::with_admin();
    meta.create_user("bob", "bob-old-pass");
    meta.grant_user("bob", r#"{"":["ViewAdmin"]}"#);
    let hash_before = hashes(meta.get_as(ADMIN, "/user?name=bob").text());
    assert_eq!(
        meta.get_as(("bob", "bob-old-pass"), "/user?name=bob")
            .status,
        200
    );

    meta.post_ok(
        "/user",
        r#"{"action":"change-password","user":{"name":"bob","password":"bob-new-pass"}}"#,
    );

    assert_json(
        &meta.get_as(("bob", "bob-old-pass"), "/user?name=bob"),
        401,
        r#"{"error":"authorization failed"}"#,
    );
    assert_eq!(
        meta.get_as(("bob", "bob-new-pass"), "/user?name=bob")
            .status,
        200
    );
    assert_json(
        &meta.authorized("bob", "bob-old-pass", "NoPermissions", "_"),
        401,
        r#"{"error":"authorization failed"}"#,
    );
    assert_ok(&meta.authorized("bob", "bob-new-pass", "NoPermissions", "_"));
    let hash_after = hashes(meta.get_as(ADMIN, "/user?name=bob").text());
    assert_ne!(hash_before, hash_after);
    meta.assert_no_secrets_logged(&["changeit", "bob-old-pass", "bob-new-pass"]);
}

#[test]
fn a_deleted_user_is_gone_from_the_list_its_roles_and_its_password_no_longer_works() {
    let meta = Meta::with_admin();
    meta.create_user("bob", "bob-pass-1");
    meta.grant_user("bob", r#"{"":["ViewAdmin"]}"#);
    meta.post_ok("/role", r#"{"action":"create","role":{"name":"ops"}}"#);
    meta.post_ok(
        "/role",
        r#"{"action":"add-users","role":{"name":"ops","users":["bob","admin"]}}"#,
    );

    meta.post_ok("/user", r#"{"action":"delete","user":{"name":"bob"}}"#);

    assert_json(
        &meta.get_as(ADMIN, "/user?name=bob"),
        404,
        r#"{"error":"user not found"}"#,
    );
    assert_json(
        &meta.get_as(("bob", "bob-pass-1"), "/user"),
        401,
        r#"{"error":"authorization failed"}"#,
    );
    assert_json(
        &meta.get_as(ADMIN, "/role?name=ops"),
        200,
        r#"{"roles":[{"name":"ops","users":["admin"]}]}"#,
    );
    // A new user of the same name starts with nothing of the old one's.
    meta.create_user("bob", "bob-pass-2");
    assert_users(
        &meta.get_as(ADMIN, "/user?name=bob"),
        4,
        r#"{"users":[{"name":"bob","hash":"<bcrypt>"}]}"#,
    );
}

#[test]
fn a_role_is_created_granted_given_users_stripped_and_deleted() {
    let meta = Meta::with_admin();
    meta.create_user("alice", "alice-pass-1");
    meta.create_user("bob", "bob-pass-1");
    let role =
        |expected: &str| assert_json(&meta.get_as(ADMIN, "/role?name=kapacitor"), 200, expected);

    meta.post_ok(
        "/role",
        r#"{"action":"create","role":{"name":"kapacitor"}}"#,
    );
    role(r#"{"roles":[{"name":"kapacitor"}]}"#);

    meta.post_ok(
        "/role",
        r#"{"action":"add-permissions","role":{"name":"kapacitor","permissions":{"":["KapacitorAPI","KapacitorConfigAPI"],"db1":["WriteData"]}}}"#,
    );
    role(
        r#"{"roles":[{"name":"kapacitor","permissions":{"":["KapacitorAPI","KapacitorConfigAPI"],"db1":["WriteData"]}}]}"#,
    );

    meta.post_ok(
        "/role",
        r#"{"action":"add-users","role":{"name":"kapacitor","users":["bob","alice"]}}"#,
    );
    role(
        r#"{"roles":[{"name":"kapacitor","permissions":{"":["KapacitorAPI","KapacitorConfigAPI"],"db1":["WriteData"]},"users":["alice","bob"]}]}"#,
    );
    // Role permissions count for /authorized.
    assert_ok(&meta.authorized("alice", "alice-pass-1", "WriteData", "db1"));

    meta.post_ok(
        "/role",
        r#"{"action":"remove-users","role":{"name":"kapacitor","users":["alice"]}}"#,
    );
    role(
        r#"{"roles":[{"name":"kapacitor","permissions":{"":["KapacitorAPI","KapacitorConfigAPI"],"db1":["WriteData"]},"users":["bob"]}]}"#,
    );
    assert_json(
        &meta.authorized("alice", "alice-pass-1", "WriteData", "db1"),
        403,
        r#"{"error":"user \"alice\" does not hold WriteData on \"db1\""}"#,
    );

    meta.post_ok(
        "/role",
        r#"{"action":"remove-permissions","role":{"name":"kapacitor","permissions":{"":["KapacitorConfigAPI"],"db1":["WriteData"]}}}"#,
    );
    role(r#"{"roles":[{"name":"kapacitor","permissions":{"":["KapacitorAPI"]},"users":["bob"]}]}"#);

    meta.post_ok(
        "/role",
        r#"{"action":"delete","role":{"name":"kapacitor"}}"#,
    );
    assert_json(
        &meta.get_as(ADMIN, "/role?name=kapacitor"),
        404,
        r#"{"error":"role not found"}"#,
    );
    assert_json(&meta.get_as(ADMIN, "/role"), 200, r#"{"roles":[]}"#);
    // The users themselves are untouched by the role's life.
    assert_users(
        &meta.get_as(ADMIN, "/user?name=bob"),
        4,
        r#"{"users":[{"name":"bob","hash":"<bcrypt>"}]}"#,
    );
}

#[test]
fn listing_roles_shows_every_role_in_name_order_and_an_unknown_role_is_404() {
    let meta = Meta::with_admin();
    meta.create_user("alice", "alice-pass-1");
    for role in ["zeta", "alpha"] {
        meta.post_ok(
            "/role",
            &format!(r#"{{"action":"create","role":{{"name":"{role}"}}}}"#),
        );
    }
    meta.post_ok(
        "/role",
        r#"{"action":"add-users","role":{"name":"zeta","users":["alice"]}}"#,
    );
    assert_json(
        &meta.get_as(ADMIN, "/role"),
        200,
        r#"{"roles":[{"name":"alpha"},{"name":"zeta","users":["alice"]}]}"#,
    );
    assert_json(
        &meta.get_as(ADMIN, "/role?name=zeta"),
        200,
        r#"{"roles":[{"name":"zeta","users":["alice"]}]}"#,
    );
    assert_json(
        &meta.get_as(ADMIN, "/role?name=nobody"),
        404,
        r#"{"error":"role not found"}"#,
    );
}

#[test]
fn authorized_checks_the_password_and_the_permission_on_the_resource_or_everywhere() {
    let meta = Meta::with_admin();
    meta.create_user("bob", "bob-pass-1");
    meta.grant_user("bob", r#"{"":["KapacitorAPI"],"db1":["ReadData"]}"#);

    assert_ok(&meta.authorized("bob", "bob-pass-1", "NoPermissions", "_"));
    assert_ok(&meta.authorized("bob", "bob-pass-1", "KapacitorAPI", "anything"));
    assert_ok(&meta.authorized("bob", "bob-pass-1", "ReadData", "db1"));
    assert_json(
        &meta.authorized("bob", "bob-pass-1", "ReadData", "db2"),
        403,
        r#"{"error":"user \"bob\" does not hold ReadData on \"db2\""}"#,
    );
    assert_json(
        &meta.authorized("bob", "wrong-pass", "NoPermissions", "_"),
        401,
        r#"{"error":"authorization failed"}"#,
    );
    assert_json(
        &meta.authorized("nobody", "bob-pass-1", "NoPermissions", "_"),
        401,
        r#"{"error":"authorization failed"}"#,
    );
    assert_json(
        &meta.get_as(
            ADMIN,
            "/authorized?name=bob&password=bob-pass-1&permission=Everything",
        ),
        400,
        &format!(
            r#"{{"error":"unknown permission \"Everything\"; known: {}"}}"#,
            known_permissions()
        ),
    );
    assert_json(
        &meta.get_as(ADMIN, "/authorized?name=bob&password=bob-pass-1"),
        400,
        r#"{"error":"/authorized needs name, password and permission query parameters"}"#,
    );
    meta.assert_no_secrets_logged(&["changeit", "bob-pass-1", "wrong-pass"]);
}

// ---------------------------------------------------------------------------------------
// Who may do what
// ---------------------------------------------------------------------------------------

#[test]
fn a_user_without_create_user_and_role_is_denied_every_post_with_403() {
    let meta = Meta::with_admin();
    meta.create_user("viewer", "viewer-pass-1");
    meta.grant_user(
        "viewer",
        r#"{"":["ViewAdmin","KapacitorAPI"],"db1":["CreateUserAndRole"]}"#,
    );
    let denied =
        r#"{"error":"user \"viewer\" needs the CreateUserAndRole permission for this request"}"#;
    meta.assert_refused(
        ("viewer", "viewer-pass-1"),
        "/user",
        r#"{"action":"create","user":{"name":"eve","password":"eve-pass-1"}}"#,
        403,
        denied,
    );
    meta.assert_refused(
        ("viewer", "viewer-pass-1"),
        "/user",
        r#"{"action":"add-permissions","user":{"name":"viewer","permissions":{"":["CreateUserAndRole"]}}}"#,
        403,
        denied,
    );
    meta.assert_refused(
        ("viewer", "viewer-pass-1"),
        "/role",
        r#"{"action":"create","role":{"name":"mine"}}"#,
        403,
        denied,
    );
    // ViewAdmin is enough to read.
    assert_eq!(
        meta.get_as(("viewer", "viewer-pass-1"), "/user").status,
        200
    );
    assert_eq!(
        meta.get_as(("viewer", "viewer-pass-1"), "/role").status,
        200
    );
}

#[test]
fn a_user_without_view_admin_or_create_user_and_role_is_denied_reads_with_403() {
    let meta = Meta::with_admin();
    meta.create_user("bob", "bob-pass-1");
    // Held only on one database, ViewAdmin does not count: the meta API is not a database.
    meta.grant_user(
        "bob",
        r#"{"":["KapacitorAPI","KapacitorConfigAPI"],"db1":["ViewAdmin"]}"#,
    );
    let denied = r#"{"error":"user \"bob\" needs the ViewAdmin or CreateUserAndRole permission for this request"}"#;
    for target in [
        "/user",
        "/user?name=bob",
        "/role",
        "/authorized?name=bob&password=bob-pass-1&permission=NoPermissions&resource=_",
        "/show-cluster",
    ] {
        assert_json(&meta.get_as(("bob", "bob-pass-1"), target), 403, denied);
    }
    // Ping needs nothing.
    assert_eq!(
        request(
            meta.addr(),
            "GET",
            "/ping",
            &[("Authorization", &basic("bob", "bob-pass-1"))],
            b""
        )
        .status,
        204
    );
}

#[test]
fn create_user_and_role_held_through_a_role_grants_management() {
    let meta = Meta::with_admin();
    meta.create_user("carol", "carol-pass-1");
    meta.post_ok("/role", r#"{"action":"create","role":{"name":"admins"}}"#);
    meta.post_ok(
        "/role",
        r#"{"action":"add-permissions","role":{"name":"admins","permissions":{"":["CreateUserAndRole"]}}}"#,
    );
    let carol = ("carol", "carol-pass-1");
    let denied = meta.post_as(
        carol,
        "/user",
        &[],
        r#"{"action":"create","user":{"name":"dave","password":"dave-pass-1"}}"#,
    );
    assert_eq!(denied.status, 403, "{denied:?}");

    meta.post_ok(
        "/role",
        r#"{"action":"add-users","role":{"name":"admins","users":["carol"]}}"#,
    );
    assert_ok(&meta.post_as(
        carol,
        "/user",
        &[],
        r#"{"action":"create","user":{"name":"dave","password":"dave-pass-1"}}"#,
    ));
    assert_eq!(meta.get_as(carol, "/user?name=dave").status, 200);
}

#[test]
fn requests_without_credentials_are_401() {
    let meta = Meta::with_admin();
    let missing = r#"{"error":"unable to parse authentication credentials"}"#;
    for target in [
        "/user",
        "/user?name=admin",
        "/role",
        "/authorized?name=admin&password=changeit&permission=NoPermissions",
        "/show-cluster",
    ] {
        assert_json(&request(meta.addr(), "GET", target, &[], b""), 401, missing);
    }
    meta.assert_refused_without_credentials(
        "/user",
        r#"{"action":"create","user":{"name":"eve","password":"eve-pass-1"}}"#,
        401,
        missing,
    );
    meta.assert_refused_without_credentials(
        "/role",
        r#"{"action":"create","role":{"name":"mine"}}"#,
        401,
        missing,
    );
    // A scheme that is neither Basic nor Bearer carries no usable credentials either.
    assert_json(
        &request(
            meta.addr(),
            "GET",
            "/user",
            &[("Authorization", "Token abc")],
            b"",
        ),
        401,
        missing,
    );
}

#[test]
fn a_wrong_password_or_an_unknown_user_is_401_without_saying_which() {
    let meta = Meta::with_admin();
    let failed = r#"{"error":"authorization failed"}"#;
    assert_json(&meta.get_as(("admin", "not-it"), "/user"), 401, failed);
    assert_json(&meta.get_as(("nobody", "changeit"), "/user"), 401, failed);
    meta.assert_refused(
        ("admin", "not-it"),
        "/user",
        r#"{"action":"create","user":{"name":"eve","password":"eve-pass-1"}}"#,
        401,
        failed,
    );
    meta.assert_no_secrets_logged(&["changeit", "not-it", "eve-pass-1"]);
}

#[test]
fn the_internal_shared_secret_jwt_grants_reads_and_writes() {
    let meta = Meta::start_with(|launch| launch.set("meta.internal-shared-secret", SECRET));
    let token = internal_token(SECRET, 300);
    let bearer = format!("Bearer {token}");
    let auth = [("Authorization", bearer.as_str())];
    // Even on an empty store, the token is a principal of its own, not a bootstrap.
    let created = request(
        meta.addr(),
        "POST",
        "/user",
        &auth,
        br#"{"action":"create","user":{"name":"svc","password":"svc-pass-1"}}"#,
    );
    assert_ok(&created);
    assert_users(
        &request(meta.addr(), "GET", "/user", &auth, b""),
        4,
        r#"{"users":[{"name":"svc","hash":"<bcrypt>"}]}"#,
    );
    assert_json(
        &request(meta.addr(), "GET", "/role", &auth, b""),
        200,
        r#"{"roles":[]}"#,
    );
    assert_ok(&request(
        meta.addr(),
        "GET",
        "/authorized?name=svc&password=svc-pass-1&permission=NoPermissions&resource=_",
        &auth,
        b"",
    ));
    meta.assert_no_secrets_logged(&["svc-pass-1", SECRET, &token]);
}

#[test]
fn an_expired_or_foreign_or_unexpiring_internal_jwt_is_401() {
    let meta = Meta::start_with(|launch| launch.set("meta.internal-shared-secret", SECRET));
    let get = |token: &str| {
        request(
            meta.addr(),
            "GET",
            "/user",
            &[("Authorization", &format!("Bearer {token}"))],
            b"",
        )
    };
    assert_json(
        &get(&internal_token(SECRET, -60)),
        401,
        r#"{"error":"invalid token: Token is expired"}"#,
    );
    assert_json(
        &get(&internal_token("another-secret", 300)),
        401,
        r#"{"error":"invalid token: signature is invalid"}"#,
    );
    let unexpiring = sign_hs512(&serde_json::json!({"username": ""}), &Secret::new(SECRET));
    assert_json(
        &get(&unexpiring),
        401,
        r#"{"error":"token expiration required"}"#,
    );
    assert_json(
        &get("not-a-token"),
        401,
        r#"{"error":"invalid token: token contains an invalid number of segments"}"#,
    );
    // SPEC §8: internal tokens are HS512; an HS256 one with the right secret is refused.
    let url = |bytes: &[u8]| {
        support::base64(bytes)
            .replace('+', "-")
            .replace('/', "_")
            .trim_end_matches('=')
            .to_string()
    };
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 300;
    let signing_input = format!(
        "{}.{}",
        url(br#"{"alg":"HS256","typ":"JWT"}"#),
        url(format!(r#"{{"username":"","exp":{exp}}}"#).as_bytes())
    );
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
    let tag = ring::hmac::sign(&key, signing_input.as_bytes());
    let hs256 = format!("{signing_input}.{}", url(tag.as_ref()));
    assert_json(
        &get(&hs256),
        401,
        r#"{"error":"invalid token: unexpected signing method: HS256"}"#,
    );
}

#[test]
fn without_an_internal_shared_secret_every_bearer_token_is_401() {
    let meta = Meta::with_admin();
    let token = internal_token(SECRET, 300);
    assert_json(
        &request(
            meta.addr(),
            "GET",
            "/user",
            &[("Authorization", &format!("Bearer {token}"))],
            b"",
        ),
        401,
        r#"{"error":"invalid token: no internal shared secret is configured on this meta server"}"#,
    );
}

// ---------------------------------------------------------------------------------------
// The first user
// ---------------------------------------------------------------------------------------

#[test]
fn the_first_unauthenticated_create_is_accepted_and_gets_all_18_permissions() {
    let meta = Meta::start();
    let created = request(
        meta.addr(),
        "POST",
        "/user",
        &[],
        br#"{"action":"create","user":{"name":"root","password":"root-pass-1"}}"#,
    );
    assert_ok(&created);
    assert_users(
        &meta.get_as(("root", "root-pass-1"), "/user"),
        4,
        &format!(
            r#"{{"users":[{{"name":"root","hash":"<bcrypt>","permissions":{{"":{ALL_18}}}}}]}}"#
        ),
    );
    let permissions: Vec<String> = serde_json::from_str(ALL_18).unwrap();
    assert_eq!(permissions.len(), 18);
    assert!(!permissions.contains(&"NoPermissions".to_string()));
    meta.assert_no_secrets_logged(&["root-pass-1"]);
}

#[test]
fn a_second_unauthenticated_create_is_401() {
    let meta = Meta::with_admin();
    meta.assert_refused_without_credentials(
        "/user",
        r#"{"action":"create","user":{"name":"eve","password":"eve-pass-1"}}"#,
        401,
        r#"{"error":"unable to parse authentication credentials"}"#,
    );
}

#[test]
fn on_an_empty_store_only_create_is_accepted_without_credentials() {
    let meta = Meta::start();
    meta.assert_refused_without_credentials(
        "/user",
        r#"{"action":"add-permissions","user":{"name":"eve","permissions":{"":["ViewAdmin"]}}}"#,
        401,
        r#"{"error":"the meta store has no users yet: create the first one with {\"action\":\"create\",\"user\":{\"name\":\"…\",\"password\":\"…\"}}"}"#,
    );
    meta.assert_refused_without_credentials(
        "/role",
        r#"{"action":"create","role":{"name":"mine"}}"#,
        401,
        r#"{"error":"unable to parse authentication credentials"}"#,
    );
    assert_json(
        &request(meta.addr(), "GET", "/user", &[], b""),
        401,
        r#"{"error":"unable to parse authentication credentials"}"#,
    );
}

#[test]
fn only_one_of_many_concurrent_unauthenticated_creates_becomes_the_first_user() {
    let meta = Meta::start();
    let addr = meta.addr();
    let answers: Vec<Response> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..8)
            .map(|i| {
                scope.spawn(move || {
                    let body = format!(r#"{{"action":"create","user":{{"name":"root{i}","password":"root-pass-{i}"}}}}"#);
                    request(addr, "POST", "/user", &[], body.as_bytes())
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|thread| thread.join().unwrap())
            .collect()
    });
    let accepted = answers.iter().filter(|answer| answer.status == 200).count();
    assert_eq!(accepted, 1, "{answers:?}");
    for answer in answers.iter().filter(|answer| answer.status != 200) {
        assert_eq!(answer.status, 401, "{answer:?}");
        assert!(
            [
                r#"{"error":"unable to parse authentication credentials"}"#,
                r#"{"error":"the store has users now; send the credentials of one holding CreateUserAndRole"}"#,
            ]
            .contains(&answer.text()),
            "{answer:?}"
        );
    }
    assert_eq!(meta.stored_user_count(), 1);
}

#[test]
fn the_empty_store_warning_is_logged_at_start_and_on_every_request_until_a_user_exists() {
    let mut meta = Meta::start();
    let warning = |line: &str| {
        line.contains("lvl=warn") && line.contains("msg=\"the meta store has no users")
    };
    assert_eq!(
        meta.server.count_log_lines(warning),
        1,
        "{:#?}",
        meta.server.log_lines()
    );
    assert!(meta.server.log_lines().iter().any(|line| line.contains(
        "lvl=warn msg=\"the meta store has no users: the first unauthenticated create becomes an administrator; create it now\""
    )));

    request(meta.addr(), "GET", "/ping", &[], b"");
    meta.server
        .wait_for_log_lines(1, |line| line.contains("path=/ping"));
    assert_eq!(meta.server.count_log_lines(warning), 2);

    meta.bootstrap_admin();
    meta.server
        .wait_for_log_lines(1, |line| line.contains("method=POST path=/user status=200"));
    assert_eq!(meta.server.count_log_lines(warning), 3);

    // Once a user exists: no warning for a request, nor at the next start.
    request(meta.addr(), "GET", "/ping", &[], b"");
    meta.server
        .wait_for_log_lines(2, |line| line.contains("path=/ping"));
    assert_eq!(meta.server.count_log_lines(warning), 3);
    meta.server.restart();
    assert_eq!(
        meta.server.count_log_lines(warning),
        3,
        "{:#?}",
        meta.server.log_lines()
    );
}

// ---------------------------------------------------------------------------------------
// Bad requests: each is a 4xx naming the problem, changes nothing, and the server goes on
// ---------------------------------------------------------------------------------------

#[test]
fn malformed_json_is_400_naming_the_line_and_column() {
    let meta = Meta::with_admin();
    meta.assert_refused(
        ADMIN,
        "/user",
        "{\"action\":\"create\",\n \"user\":{\"name\":\"eve\" \"password\":\"eve-pass-1\"}}",
        400,
        r#"{"error":"malformed JSON: expected `,` or `}` at line 2 column 23"}"#,
    );
    meta.assert_refused(
        ADMIN,
        "/user",
        "",
        400,
        r#"{"error":"malformed JSON: EOF while parsing a value at line 1 column 0"}"#,
    );
    meta.assert_refused(
        ADMIN,
        "/role",
        "{\"action\":\"create\",\"role\":{\"name\":\"ops\"}",
        400,
        r#"{"error":"malformed JSON: EOF while parsing an object at line 1 column 40"}"#,
    );
    // Valid JSON of the wrong shape is named as such, with its position.
    meta.assert_refused(
        ADMIN,
        "/user",
        r#"{"action":"create","user":{"name":"eve","password":7}}"#,
        400,
        r#"{"error":"invalid request body: invalid type: integer `7`, expected a string at line 1 column 52"}"#,
    );
}

#[test]
fn an_unknown_action_is_400_listing_the_actions_of_that_endpoint() {
    let meta = Meta::with_admin();
    meta.assert_refused(
        ADMIN,
        "/user",
        r#"{"action":"rename","user":{"name":"admin"}}"#,
        400,
        r#"{"error":"unknown action \"rename\" for /user; one of create, delete, change-password, add-permissions, remove-permissions"}"#,
    );
    meta.assert_refused(
        ADMIN,
        "/role",
        r#"{"action":"change-password","role":{"name":"ops"}}"#,
        400,
        r#"{"error":"unknown action \"change-password\" for /role; one of create, delete, add-permissions, remove-permissions, add-users, remove-users"}"#,
    );
    meta.assert_refused(
        ADMIN,
        "/user",
        r#"{"user":{"name":"admin"}}"#,
        400,
        r#"{"error":"missing \"action\"; one of create, delete, change-password, add-permissions, remove-permissions"}"#,
    );
}

#[test]
fn an_unknown_permission_name_is_400_naming_it() {
    let meta = Meta::with_admin();
    meta.post_ok("/role", r#"{"action":"create","role":{"name":"ops"}}"#);
    let refused = format!(
        r#"{{"error":"unknown permission \"KapacitorApi\"; known: {}"}}"#,
        known_permissions()
    );
    meta.assert_refused(
        ADMIN,
        "/user",
        r#"{"action":"add-permissions","user":{"name":"admin","permissions":{"db1":["ReadData","KapacitorApi"]}}}"#,
        400,
        &refused,
    );
    meta.assert_refused(
        ADMIN,
        "/role",
        r#"{"action":"add-permissions","role":{"name":"ops","permissions":{"":["KapacitorApi"]}}}"#,
        400,
        &refused,
    );
    meta.assert_refused(
        ADMIN,
        "/user",
        r#"{"action":"create","user":{"name":"eve","password":"eve-pass-1","permissions":{"":["KapacitorApi"]}}}"#,
        400,
        &refused,
    );
}

#[test]
fn a_missing_name_is_400() {
    let meta = Meta::with_admin();
    for (path, body, kind) in [
        (
            "/user",
            r#"{"action":"create","user":{"password":"eve-pass-1"}}"#,
            "user",
        ),
        ("/user", r#"{"action":"delete","user":{"name":""}}"#, "user"),
        ("/role", r#"{"action":"create","role":{}}"#, "role"),
    ] {
        meta.assert_refused(
            ADMIN,
            path,
            body,
            400,
            &format!(r#"{{"error":"missing {kind} name; write \"{kind}\":{{\"name\":\"…\"}}"}}"#),
        );
    }
    meta.assert_refused(
        ADMIN,
        "/user",
        r#"{"action":"create"}"#,
        400,
        r#"{"error":"missing \"user\" object in the request body"}"#,
    );
}

#[test]
fn a_missing_or_unusable_password_is_400() {
    let meta = Meta::with_admin();
    meta.assert_refused(
        ADMIN,
        "/user",
        r#"{"action":"create","user":{"name":"eve"}}"#,
        400,
        r#"{"error":"missing password for user \"eve\""}"#,
    );
    meta.assert_refused(
        ADMIN,
        "/user",
        r#"{"action":"change-password","user":{"name":"admin"}}"#,
        400,
        r#"{"error":"missing password for user \"admin\""}"#,
    );
    meta.assert_refused(
        ADMIN,
        "/user",
        r#"{"action":"create","user":{"name":"eve","password":""}}"#,
        400,
        r#"{"error":"empty password for user \"eve\""}"#,
    );
    let long = "x".repeat(73);
    meta.assert_refused(
        ADMIN,
        "/user",
        &format!(r#"{{"action":"create","user":{{"name":"eve","password":"{long}"}}}}"#),
        400,
        r#"{"error":"password for user \"eve\" is longer than 72 bytes, bcrypt's limit"}"#,
    );
}

#[test]
fn a_password_over_72_bytes_is_refused_with_400_and_one_of_72_bytes_works() {
    let meta = Meta::with_admin();
    let create = |password: &str| {
        meta.post_as(
            ADMIN,
            "/user",
            &[],
            &format!(r#"{{"action":"create","user":{{"name":"eve","password":"{password}"}}}}"#),
        )
    };
    let before = meta.state();
    let refused = create(&"x".repeat(73));
    assert_eq!(refused.status, 400, "{refused:?}");
    assert_eq!(
        refused.text(),
        r#"{"error":"password for user \"eve\" is longer than 72 bytes, bcrypt's limit"}"#
    );
    assert_eq!(meta.state(), before);
    assert_ok(&create(&"x".repeat(72)));
    assert_ok(&meta.authorized("eve", &"x".repeat(72), "NoPermissions", "_"));
}

#[test]
fn a_missing_permissions_or_users_list_is_400_naming_what_is_missing() {
    let meta = Meta::with_admin();
    meta.post_ok("/role", r#"{"action":"create","role":{"name":"ops"}}"#);
    meta.assert_refused(
        ADMIN,
        "/user",
        r#"{"action":"add-permissions","user":{"name":"admin"}}"#,
        400,
        r#"{"error":"missing \"permissions\" for user \"admin\""}"#,
    );
    meta.assert_refused(
        ADMIN,
        "/role",
        r#"{"action":"remove-permissions","role":{"name":"ops"}}"#,
        400,
        r#"{"error":"missing \"permissions\" for role \"ops\""}"#,
    );
    meta.assert_refused(
        ADMIN,
        "/role",
        r#"{"action":"add-users","role":{"name":"ops"}}"#,
        400,
        r#"{"error":"missing \"users\" for role \"ops\""}"#,
    );
}

#[test]
fn creating_an_existing_user_is_409() {
    let meta = Meta::with_admin();
    meta.create_user("alice", "alice-pass-1");
    meta.assert_refused(
        ADMIN,
        "/user",
        r#"{"action":"create","user":{"name":"alice","password":"other-pass-1"}}"#,
        409,
        r#"{"error":"user \"alice\" already exists"}"#,
    );
    // The first password still holds.
    assert_ok(&meta.authorized("alice", "alice-pass-1", "NoPermissions", "_"));
}

#[test]
fn creating_an_existing_role_is_409() {
    let meta = Meta::with_admin();
    meta.post_ok("/role", r#"{"action":"create","role":{"name":"ops"}}"#);
    meta.grant_role("ops", r#"{"":["KapacitorAPI"]}"#);
    meta.assert_refused(
        ADMIN,
        "/role",
        r#"{"action":"create","role":{"name":"ops"}}"#,
        409,
        r#"{"error":"role \"ops\" already exists"}"#,
    );
}

#[test]
fn acting_on_an_unknown_user_is_404() {
    let meta = Meta::with_admin();
    meta.post_ok("/role", r#"{"action":"create","role":{"name":"ops"}}"#);
    let not_found = r#"{"error":"user \"ghost\" not found"}"#;
    for body in [
        r#"{"action":"delete","user":{"name":"ghost"}}"#,
        r#"{"action":"change-password","user":{"name":"ghost","password":"ghost-pass-1"}}"#,
        r#"{"action":"add-permissions","user":{"name":"ghost","permissions":{"":["ViewAdmin"]}}}"#,
        r#"{"action":"remove-permissions","user":{"name":"ghost","permissions":{"":["ViewAdmin"]}}}"#,
    ] {
        meta.assert_refused(ADMIN, "/user", body, 404, not_found);
    }
    // A role cannot gain a user that does not exist, even alongside one that does.
    meta.assert_refused(
        ADMIN,
        "/role",
        r#"{"action":"add-users","role":{"name":"ops","users":["admin","ghost"]}}"#,
        404,
        not_found,
    );
}

#[test]
fn acting_on_an_unknown_role_is_404() {
    let meta = Meta::with_admin();
    let not_found = r#"{"error":"role \"ghost\" not found"}"#;
    for body in [
        r#"{"action":"delete","role":{"name":"ghost"}}"#,
        r#"{"action":"add-permissions","role":{"name":"ghost","permissions":{"":["ViewAdmin"]}}}"#,
        r#"{"action":"remove-permissions","role":{"name":"ghost","permissions":{"":["ViewAdmin"]}}}"#,
        r#"{"action":"add-users","role":{"name":"ghost","users":["admin"]}}"#,
        r#"{"action":"remove-users","role":{"name":"ghost","users":["admin"]}}"#,
    ] {
        meta.assert_refused(ADMIN, "/role", body, 404, not_found);
    }
}

#[test]
fn a_body_over_1_mib_is_413_and_a_body_of_exactly_1_mib_is_read() {
    let meta = Meta::with_admin();
    const MIB: usize = 1024 * 1024;
    let padded = |name: &str, size: usize| {
        let mut body =
            format!(r#"{{"action":"create","user":{{"name":"{name}","password":"big-pass-1"}}}}"#)
                .into_bytes();
        body.resize(size, b' ');
        body
    };
    let too_large = r#"{"error":"request body is larger than 1 MiB"}"#;

    let exact = request(
        meta.addr(),
        "POST",
        "/user",
        &[ADMIN_AUTH],
        &padded("exact", MIB),
    );
    assert_ok(&exact);

    let before = meta.state();
    let over = request(
        meta.addr(),
        "POST",
        "/user",
        &[ADMIN_AUTH],
        &padded("over", MIB + 1),
    );
    assert_json(&over, 413, too_large);
    // Without a declared length the server stops reading at the limit all the same.
    let mut chunked = format!("{:x}\r\n", MIB + 1).into_bytes();
    chunked.extend(padded("chunked", MIB + 1));
    chunked.extend_from_slice(b"\r\n0\r\n\r\n");
    let over_chunked = request(
        meta.addr(),
        "POST",
        "/user",
        &[ADMIN_AUTH, ("Transfer-Encoding", "chunked")],
        &chunked,
    );
    assert_json(&over_chunked, 413, too_large);
    assert_eq!(meta.state(), before);
    meta.assert_still_serving();
}

#[test]
fn a_role_body_holding_user_instead_of_role_is_400_saying_so() {
    let meta = Meta::with_admin();
    for action in ["create", "delete", "add-users"] {
        meta.assert_refused(
            ADMIN,
            "/role",
            &format!(r#"{{"action":"{action}","user":{{"name":"ops","users":["admin"]}}}}"#),
            400,
            r#"{"error":"/role takes the role under \"role\", not \"user\"; write e.g. {\"action\":\"create\",\"role\":{\"name\":\"…\"}}"}"#,
        );
    }
    meta.assert_refused(
        ADMIN,
        "/role",
        r#"{"action":"create"}"#,
        400,
        r#"{"error":"missing \"role\" object in the request body"}"#,
    );
}

#[test]
fn a_wrong_method_is_405_with_allow() {
    let meta = Meta::with_admin();
    for (method, path, allow) in [
        ("PUT", "/user", "GET, POST"),
        ("DELETE", "/user", "GET, POST"),
        ("PATCH", "/role", "GET, POST"),
        ("HEAD", "/role", "GET, POST"),
        ("POST", "/ping", "GET, HEAD"),
        ("POST", "/authorized", "GET"),
    ] {
        let before = meta.state();
        let response = request(
            meta.addr(),
            method,
            path,
            &[ADMIN_AUTH],
            br#"{"action":"delete","user":{"name":"admin"}}"#,
        );
        assert_eq!(response.status, 405, "{method} {path}: {response:?}");
        assert_eq!(response.header("Allow"), Some(allow), "{method} {path}");
        if method != "HEAD" {
            assert_json(
                &response,
                405,
                &format!(r#"{{"error":"method {method} is not allowed on {path}; use {allow}"}}"#),
            );
        }
        assert_eq!(meta.state(), before, "{method} {path}");
    }
    meta.assert_still_serving();
}

#[test]
fn show_cluster_lists_this_meta_node_at_its_bound_address_for_a_viewer() {
    let meta = Meta::with_admin();
    meta.create_user_with(ADMIN, "viewer", "viewer-pass-1", r#"{"":["ViewAdmin"]}"#);
    // Chronograf asks this before it manages users through an Enterprise meta URL.
    let expected = format!(
        r#"{{"data":[],"meta":[{{"id":1,"addr":"{}","httpScheme":"http","tcpAddr":""}}]}}"#,
        meta.addr()
    );
    assert_json(&meta.get_as(ADMIN, "/show-cluster"), 200, &expected);
    assert_json(
        &meta.get_as(("viewer", "viewer-pass-1"), "/show-cluster"),
        200,
        &expected,
    );
    assert_json(
        &meta.post_as(ADMIN, "/show-cluster", &[], ""),
        405,
        r#"{"error":"method POST is not allowed on /show-cluster; use GET"}"#,
    );
}

#[test]
fn an_unknown_path_is_404_naming_the_endpoints() {
    let meta = Meta::with_admin();
    assert_json(
        &meta.get_as(ADMIN, "/users"),
        404,
        r#"{"error":"no such endpoint \"/users\"; the meta API serves /ping, /user, /role, /authorized, /show-cluster and /metrics"}"#,
    );
    meta.assert_still_serving();
}

// ---------------------------------------------------------------------------------------
// What the real peers needed (issue 10's interop suite, tests/interop)
// ---------------------------------------------------------------------------------------

#[test]
fn an_empty_name_lists_every_user_and_role_as_kapacitors_meta_client_expects() {
    // Kapacitor's services/auth/meta Client.Users("") sends `GET /user?name=` to list every
    // user; kapauth answered 404 `user not found`, so the client retried until its timeout.
    let meta = Meta::with_admin();
    meta.create_user("alice", "alice-pass-1");
    meta.post_ok("/role", r#"{"action":"create","role":{"name":"ops"}}"#);
    assert_users(
        &meta.get_as(ADMIN, "/user?name="),
        4,
        r#"{"users":[{"name":"admin","hash":"<bcrypt>","permissions":{"":ALL}},{"name":"alice","hash":"<bcrypt>"}]}"#
            .replace("ALL", ALL_18)
            .as_str(),
    );
    assert_json(
        &meta.get_as(ADMIN, "/role?name="),
        200,
        r#"{"roles":[{"name":"ops"}]}"#,
    );
}

#[test]
fn a_null_permission_list_is_read_as_empty_as_chronograf_sends_it() {
    // Chronograf's SetUserPerms/SetRolePerms send a null list for a scope with nothing to
    // change; kapauth answered 400 `invalid type: null, expected a sequence`.
    let meta = Meta::with_admin();
    meta.create_user("alice", "alice-pass-1");
    meta.grant_user("alice", r#"{"":["KapacitorAPI","ReadData"]}"#);
    meta.post_ok(
        "/user",
        r#"{"action":"remove-permissions","user":{"name":"alice","permissions":{"":["ReadData"],"db1":null}}}"#,
    );
    meta.post_ok(
        "/user",
        r#"{"action":"add-permissions","user":{"name":"alice","permissions":{"":null}}}"#,
    );
    meta.post_ok("/role", r#"{"action":"create","role":{"name":"ops"}}"#);
    meta.post_ok(
        "/role",
        r#"{"action":"add-permissions","role":{"name":"ops","permissions":{"":["Monitor"],"db1":null}}}"#,
    );
    assert_users(
        &meta.get_as(ADMIN, "/user?name=alice"),
        4,
        r#"{"users":[{"name":"alice","hash":"<bcrypt>","permissions":{"":["KapacitorAPI"]}}]}"#,
    );
    assert_json(
        &meta.get_as(ADMIN, "/role?name=ops"),
        200,
        r#"{"roles":[{"name":"ops","permissions":{"":["Monitor"]}}]}"#,
    );
}

// ---------------------------------------------------------------------------------------
// Durability
// ---------------------------------------------------------------------------------------

#[test]
fn a_restart_keeps_users_hashes_permissions_and_roles() {
    let mut meta = Meta::with_admin();
    meta.create_user("alice", "alice-pass-1");
    meta.grant_user(
        "alice",
        r#"{"":["KapacitorAPI"],"my/db":["ReadData","WriteData"]}"#,
    );
    meta.create_user("bob", "bob-pass-1");
    meta.post_ok("/role", r#"{"action":"create","role":{"name":"ops"}}"#);
    meta.grant_role("ops", r#"{"db1":["WriteData"]}"#);
    meta.post_ok(
        "/role",
        r#"{"action":"add-users","role":{"name":"ops","users":["bob"]}}"#,
    );
    meta.post_ok("/role", r#"{"action":"create","role":{"name":"empty"}}"#);
    let before = meta.state();

    meta.server.restart();

    assert_eq!(meta.state(), before);
    assert_ok(&meta.authorized("alice", "alice-pass-1", "ReadData", "my/db"));
    assert_ok(&meta.authorized("bob", "bob-pass-1", "WriteData", "db1"));
    // And the restarted server takes changes on top of what it read.
    meta.create_user("carol", "carol-pass-1");
    meta.server.restart();
    assert_eq!(meta.get_as(ADMIN, "/user?name=carol").status, 200);
}

#[test]
fn passwords_are_stored_only_as_bcrypt_hashes_at_the_configured_cost() {
    let meta = Meta::start_with(|launch| launch.set("meta.bcrypt-cost", "5"));
    let dir = &meta.dir;
    meta.bootstrap_admin();
    meta.create_user("alice", "alice-pass-1");
    assert_users(
        &meta.get_as(ADMIN, "/user?name=alice"),
        5,
        r#"{"users":[{"name":"alice","hash":"<bcrypt>"}]}"#,
    );
    let store = std::fs::read_to_string(dir.join("meta.json")).unwrap();
    assert!(
        !store.contains("alice-pass-1") && !store.contains("changeit"),
        "{store}"
    );
    for hash in hashes(meta.get_as(ADMIN, "/user").text()) {
        assert!(store.contains(&hash), "{store}");
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.join("meta.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "the store file is readable by its owner only"
    );
}

#[test]
fn a_corrupt_store_file_stops_startup_naming_the_file_and_the_position() {
    let dir = TempDir::new("meta-corrupt");
    let corrupt = "{\n  \"format\": \"kapauth-meta/1\",\n  \"users\": [,\n  \"roles\": []\n}\n";
    std::fs::write(dir.join("meta.json"), corrupt).unwrap();

    let exit = Launch::meta(dir.path()).run_to_exit();

    assert_ne!(exit.code, Some(0), "{exit:?}");
    assert!(
        exit.code.is_some(),
        "exited by itself, not by a signal: {exit:?}"
    );
    let path = dir.join("meta.json");
    let expected = format!(
        "lvl=error msg=\"cannot open the meta store\" error=\"store file {} is unreadable: expected value at line 3 column 13; kapauth will not start over it (restore it from a backup, or move it away to start empty)\"",
        path.display()
    );
    assert!(
        exit.stderr.iter().any(|line| line.ends_with(&expected)),
        "{expected}\n{:#?}",
        exit.stderr
    );
    assert!(
        !exit
            .stderr
            .iter()
            .any(|line| line.contains("msg=listening")),
        "{:#?}",
        exit.stderr
    );
    // The file is left as it was for the operator.
    assert_eq!(std::fs::read_to_string(&path).unwrap(), corrupt);
}

#[test]
fn a_second_meta_server_on_the_same_dir_exits_saying_it_is_locked() {
    let meta = Meta::with_admin();
    let exit = Launch::meta(meta.dir.path()).run_to_exit();
    assert_eq!(exit.code, Some(1), "{exit:?}");
    let expected = format!(
        "lvl=error msg=\"cannot open the meta store\" error=\"{} is locked by another kapauth process; stop it, or give this one another [meta] dir\"",
        meta.dir.join("LOCK").display()
    );
    assert!(
        exit.stderr.iter().any(|line| line.ends_with(&expected)),
        "{expected}\n{:#?}",
        exit.stderr
    );
    // The first one is unaffected.
    meta.create_user("alice", "alice-pass-1");
    meta.assert_still_serving();
}

#[test]
fn a_temp_file_left_by_a_crash_is_discarded_and_the_last_saved_store_loads() {
    let mut meta = Meta::with_admin();
    meta.create_user("alice", "alice-pass-1");
    let before = meta.state();
    meta.server.kill_9();
    std::fs::write(
        meta.dir.join("meta.json.tmp"),
        "{\"format\": \"kapauth-meta/1\", \"users\": [",
    )
    .unwrap();

    meta.server.restart();

    assert_eq!(meta.state(), before);
    assert!(!meta.dir.join("meta.json.tmp").exists());
}

#[test]
fn acknowledged_creates_survive_kill_9_in_the_middle_of_a_concurrent_burst() {
    let mut meta = Meta::start_with(|launch| launch.set("meta.internal-shared-secret", SECRET));
    let addr = meta.addr();
    let bearer = format!("Bearer {}", internal_token(SECRET, 300));
    let acknowledged = Arc::new((Mutex::new(Vec::<String>::new()), Condvar::new()));
    let stop = Arc::new(AtomicBool::new(false));
    const THREADS: usize = 4;
    const BEFORE_KILL: usize = 40;

    let writers: Vec<_> = (0..THREADS)
        .map(|thread| {
            let (acknowledged, stop, bearer) = (Arc::clone(&acknowledged), Arc::clone(&stop), bearer.clone());
            std::thread::spawn(move || {
                // Bounded: at most this many creates per thread, and any error ends it.
                for i in 0..2_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let name = format!("burst-{thread}-{i}");
                    let body = format!(r#"{{"action":"create","user":{{"name":"{name}","password":"burst-pass"}}}}"#);
                    match try_request(addr, "POST", "/user", &[("Authorization", &bearer)], body.as_bytes()) {
                        Ok(response) if response.status == 200 => {
                            let (names, changed) = &*acknowledged;
                            names.lock().unwrap().push(name);
                            changed.notify_all();
                        }
                        Ok(response) => panic!("create {name} before the kill: {response:?}"),
                        Err(_) => break,
                    }
                }
            })
        })
        .collect();

    // Kill while every writer is busy: once enough creates were acknowledged.
    {
        let (names, changed) = &*acknowledged;
        let (names, timeout) = changed
            .wait_timeout_while(names.lock().unwrap(), Duration::from_secs(20), |names| {
                names.len() < BEFORE_KILL
            })
            .unwrap();
        assert!(
            !timeout.timed_out(),
            "only {} creates acknowledged in 20 s",
            names.len()
        );
    }
    meta.server.kill_9();
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.join().expect("a writer thread panicked");
    }
    let acknowledged = acknowledged.0.lock().unwrap().clone();

    meta.server.restart();

    let listed = request(
        meta.addr(),
        "GET",
        "/user",
        &[("Authorization", &bearer)],
        b"",
    );
    assert_eq!(listed.status, 200, "{listed:?}");
    let users: serde_json::Value = serde_json::from_slice(&listed.body).unwrap();
    let stored: BTreeSet<&str> = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|user| user["name"].as_str().unwrap())
        .collect();
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|name| !stored.contains(name.as_str()))
        .collect();
    assert!(
        lost.is_empty(),
        "acknowledged but lost after kill -9: {lost:?}"
    );
    assert!(stored.len() >= acknowledged.len());
}

// ---------------------------------------------------------------------------------------
// Concurrency and logging
// ---------------------------------------------------------------------------------------

#[test]
fn reads_proceed_while_a_slow_bcrypt_create_runs() {
    // Cost 12 makes the create's hash take hundreds of milliseconds or more; the reads
    // use the internal token, so they run no bcrypt themselves.
    let meta = Meta::start_with(|launch| {
        launch
            .set("meta.internal-shared-secret", SECRET)
            .set("meta.bcrypt-cost", "12")
    });
    let bearer = format!("Bearer {}", internal_token(SECRET, 300));
    let auth = [("Authorization", bearer.as_str())];

    let create_done = Arc::new(AtomicBool::new(false));
    let pending = send(
        meta.addr(),
        "POST",
        "/user",
        &auth,
        br#"{"action":"create","user":{"name":"slow","password":"slow-pass-1"}}"#,
    )
    .unwrap();
    // From here the server holds the whole create.
    let creator = {
        let create_done = Arc::clone(&create_done);
        std::thread::spawn(move || {
            let response = pending.response();
            create_done.store(true, Ordering::SeqCst);
            response
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    // A read counts when it saw the store without the new user (its snapshot came before
    // the create was published) and completed before the create's response arrived.
    let mut reads_during_create = 0;
    while !create_done.load(Ordering::SeqCst) && Instant::now() < deadline {
        let read = request(meta.addr(), "GET", "/user", &auth, b"");
        assert_eq!(read.status, 200, "{read:?}");
        if read.text() == r#"{"users":[]}"# && !create_done.load(Ordering::SeqCst) {
            reads_during_create += 1;
        }
    }
    let created = creator.join().unwrap().unwrap();
    assert_ok(&created);
    assert!(
        reads_during_create >= 10,
        "only {reads_during_create} reads completed while the create ran"
    );
    assert_users(
        &request(meta.addr(), "GET", "/user", &auth, b""),
        12,
        r#"{"users":[{"name":"slow","hash":"<bcrypt>"}]}"#,
    );
}

#[test]
fn no_password_token_or_hash_ever_appears_in_the_log() {
    let meta = Meta::start_with(|launch| launch.set("meta.internal-shared-secret", SECRET));
    meta.bootstrap_admin();
    let token = internal_token(SECRET, 300);
    let secrets = [
        "changeit",
        "alice-pass-1",
        "alice-pass-2",
        "wrong-pass-1",
        "bad-json-pass",
        SECRET,
        &token,
    ];
    meta.create_user("alice", "alice-pass-1");
    meta.grant_user("alice", r#"{"":["ViewAdmin"]}"#);
    meta.post_ok(
        "/user",
        r#"{"action":"change-password","user":{"name":"alice","password":"alice-pass-2"}}"#,
    );
    meta.get_as(("alice", "alice-pass-2"), "/user");
    meta.get_as(("alice", "wrong-pass-1"), "/user");
    meta.get_as(
        ADMIN,
        "/authorized?name=alice&password=alice-pass-2&permission=NoPermissions&resource=_",
    );
    meta.get_as(
        ADMIN,
        "/authorized?name=alice&password=wrong-pass-1&permission=NoPermissions&resource=_",
    );
    meta.post_as(
        ADMIN,
        "/user",
        &[],
        r#"{"action":"create","user":{"name":"x","password":"bad-json-pass",}}"#,
    );
    request(
        meta.addr(),
        "GET",
        "/user",
        &[("Authorization", &format!("Bearer {token}"))],
        b"",
    );
    // Headers are never logged wholesale.
    request(
        meta.addr(),
        "GET",
        "/ping",
        &[("X-Password", "alice-pass-2")],
        b"",
    );
    meta.assert_no_secrets_logged(&secrets);
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

const SECRET: &str = "meta-internal-secret";

/// A meta server over its own temporary directory. The server is declared first so it is
/// dropped (killed) before its directory is removed.
struct Meta {
    server: Kapauth,
    dir: TempDir,
}

impl Meta {
    /// A meta server over an empty store.
    fn start() -> Meta {
        Meta::start_with(|launch| launch)
    }

    /// Same, with extra flags.
    fn start_with(adjust: impl FnOnce(Launch) -> Launch) -> Meta {
        let dir = TempDir::new("meta");
        let server = adjust(Launch::meta(dir.path())).start();
        Meta { server, dir }
    }

    /// A meta server whose first user is `admin:changeit`, created by the bootstrap.
    fn with_admin() -> Meta {
        let meta = Meta::start();
        meta.bootstrap_admin();
        meta
    }

    fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    fn bootstrap_admin(&self) {
        let created = request(
            self.addr(),
            "POST",
            "/user",
            &[],
            br#"{"action":"create","user":{"name":"admin","password":"changeit"}}"#,
        );
        assert_ok(&created);
    }

    fn get_as(&self, (user, password): (&str, &str), target: &str) -> Response {
        request(
            self.addr(),
            "GET",
            target,
            &[("Authorization", &basic(user, password))],
            b"",
        )
    }

    fn post_as(
        &self,
        (user, password): (&str, &str),
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Response {
        let authorization = basic(user, password);
        let mut all = vec![("Authorization", authorization.as_str())];
        all.extend_from_slice(headers);
        request(self.addr(), "POST", path, &all, body.as_bytes())
    }

    /// POSTs as the admin and requires 200 with an empty body.
    fn post_ok(&self, path: &str, body: &str) {
        let response = self.post_as(ADMIN, path, &[], body);
        assert_eq!(response.status, 200, "{path} {body}: {response:?}");
        assert_eq!(response.body, b"", "{path} {body}");
    }

    fn create_user(&self, name: &str, password: &str) {
        self.post_ok(
            "/user",
            &format!(r#"{{"action":"create","user":{{"name":"{name}","password":"{password}"}}}}"#),
        );
    }

    /// Creates a user as `admin_credentials` and grants it `permissions` (wire JSON).
    fn create_user_with(
        &self,
        admin_credentials: (&str, &str),
        name: &str,
        password: &str,
        permissions: &str,
    ) {
        for body in [
            format!(r#"{{"action":"create","user":{{"name":"{name}","password":"{password}"}}}}"#),
            format!(
                r#"{{"action":"add-permissions","user":{{"name":"{name}","permissions":{permissions}}}}}"#
            ),
        ] {
            assert_ok(&self.post_as(admin_credentials, "/user", &[], &body));
        }
    }

    fn grant_user(&self, name: &str, permissions: &str) {
        self.post_ok(
            "/user",
            &format!(r#"{{"action":"add-permissions","user":{{"name":"{name}","permissions":{permissions}}}}}"#),
        );
    }

    fn grant_role(&self, name: &str, permissions: &str) {
        self.post_ok(
            "/role",
            &format!(r#"{{"action":"add-permissions","role":{{"name":"{name}","permissions":{permissions}}}}}"#),
        );
    }

    /// `GET /authorized` as the admin.
    fn authorized(&self, name: &str, password: &str, permission: &str, resource: &str) -> Response {
        self.get_as(
            ADMIN,
            &format!("/authorized?name={name}&password={password}&permission={permission}&resource={resource}"),
        )
    }

    /// The whole store as the API shows it (users with hashes, and roles), read as the
    /// admin.
    fn state(&self) -> (String, String) {
        let read = |path: &str| {
            let response = self.get_as(ADMIN, path);
            assert_eq!(response.status, 200, "{path}: {response:?}");
            response.text().to_string()
        };
        (read("/user"), read("/role"))
    }

    /// How many users the store file holds; for the bootstrap race, where no test
    /// credentials are known in advance.
    fn stored_user_count(&self) -> usize {
        let store = std::fs::read_to_string(self.dir.join("meta.json")).unwrap();
        let file: serde_json::Value = serde_json::from_str(&store).unwrap();
        file["users"].as_array().unwrap().len()
    }

    /// Posts `body` as `credentials` and requires exactly `status` and `expected`; then
    /// requires that nothing changed and that the server still answers.
    fn assert_refused(
        &self,
        credentials: (&str, &str),
        path: &str,
        body: &str,
        status: u16,
        expected: &str,
    ) {
        let before = self.state();
        let response = self.post_as(credentials, path, &[], body);
        assert_json(&response, status, expected);
        assert_eq!(self.state(), before, "{path} {body} changed the store");
        self.assert_still_serving();
    }

    fn assert_refused_without_credentials(
        &self,
        path: &str,
        body: &str,
        status: u16,
        expected: &str,
    ) {
        let before = std::fs::read(self.dir.join("meta.json")).ok();
        let response = request(self.addr(), "POST", path, &[], body.as_bytes());
        assert_json(&response, status, expected);
        assert_eq!(
            std::fs::read(self.dir.join("meta.json")).ok(),
            before,
            "{path} {body} changed the store"
        );
        assert_eq!(request(self.addr(), "GET", "/ping", &[], b"").status, 204);
    }

    fn assert_still_serving(&self) {
        assert_eq!(request(self.addr(), "GET", "/ping", &[], b"").status, 204);
        assert_eq!(self.get_as(ADMIN, "/user?name=admin").status, 200);
    }

    /// Requires that no line the server has logged so far holds any of `secrets` or any
    /// hash it stores. Waits for the access line of a last request first, so every earlier
    /// line has been captured.
    fn assert_no_secrets_logged(&self, secrets: &[&str]) {
        let marker = format!("/ping-log-check-{}", self.server.count_log_lines(|_| true));
        request(self.addr(), "GET", &marker, &[], b"");
        self.server
            .wait_for_log_lines(1, |line| line.contains(&marker));
        let stored: Vec<String> = std::fs::read_to_string(self.dir.join("meta.json"))
            .map(|store| hashes(&store))
            .unwrap_or_default();
        let lines = self.server.log_lines();
        for line in &lines {
            for secret in secrets
                .iter()
                .copied()
                .chain(stored.iter().map(String::as_str))
            {
                assert!(!line.contains(secret), "the log holds {secret:?}: {line}");
            }
            assert!(
                !line.contains("$2a$"),
                "the log holds a bcrypt hash: {line}"
            );
        }
        assert!(
            lines
                .iter()
                .any(|line| line.contains("msg=\"meta request\"")),
            "no access lines captured: {lines:#?}"
        );
    }
}

fn assert_ok(response: &Response) {
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.body, b"", "{response:?}");
}

/// Exact status, exact body, and the JSON content type.
fn assert_json(response: &Response, status: u16, body: &str) {
    assert_eq!(
        (response.status, response.text()),
        (status, body),
        "{response:?}"
    );
    assert_eq!(
        response.header("Content-Type"),
        Some("application/json"),
        "{response:?}"
    );
}

/// A 200 users document, exact once every hash is checked to be a bcrypt hash at `cost`
/// and replaced by `<bcrypt>`.
fn assert_users(response: &Response, cost: u32, expected: &str) {
    assert_eq!(response.status, 200, "{response:?}");
    let text = response.text();
    let mut redacted = text.to_string();
    for hash in hashes(text) {
        let prefix = format!("$2a${cost:02}$");
        assert!(
            hash.len() == 60
                && hash.starts_with(&prefix)
                && hash[7..]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/'),
            "not a bcrypt hash at cost {cost}: {hash:?}"
        );
        redacted = redacted.replacen(&hash, "<bcrypt>", 1);
    }
    assert_eq!(redacted, expected, "{response:?}");
    assert_eq!(response.header("Content-Type"), Some("application/json"));
}

/// Every `"hash":"…"` value in a users document or store file, in order.
fn hashes(text: &str) -> Vec<String> {
    let value: serde_json::Value = serde_json::from_str(text).expect("a JSON document");
    value["users"]
        .as_array()
        .map(|users| {
            users
                .iter()
                .filter_map(|user| user["hash"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The 19 permission tokens of InfluxDB Enterprise as the server lists them in errors,
/// written out here so a wrong list in the code cannot agree with itself.
fn known_permissions() -> String {
    [
        "NoPermissions",
        "ViewAdmin",
        "ViewChronograf",
        "CreateDatabase",
        "CreateUserAndRole",
        "AddRemoveNode",
        "DropDatabase",
        "DropData",
        "ReadData",
        "WriteData",
        "Rebalance",
        "ManageShard",
        "ManageContinuousQuery",
        "ManageQuery",
        "ManageSubscription",
        "Monitor",
        "CopyShard",
        "KapacitorAPI",
        "KapacitorConfigAPI",
    ]
    .join(", ")
}

/// An internal-shared-secret token as the gateway would send it: HS512, empty username,
/// expiring `expires_in` seconds from now (negative: already expired).
fn internal_token(secret: &str, expires_in: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    sign_hs512(
        &serde_json::json!({"username": "", "exp": now + expires_in}),
        &Secret::new(secret),
    )
}

//! `meta_docs`: the meta API's user and role documents (SPEC §3, §4, §8) as the gateway
//! reads a meta answer: `meta_api.rs`'s serde types from arbitrary bytes, then
//! `grants_of`, the password check against the document's `hash`, and the meta server's
//! `State::from_docs`; and the meta client's own reading of an answer,
//! `user_from_answer` (the one user of the asked name out of a `200`, the meta API's own
//! `user not found` out of a `404`) and `roles_listing`.
//!
//! Input: `users_json \0 roles_json` (a NUL never stands in JSON outside a string's
//! escape). `users_json` is read as `UsersDoc` and as `ErrorDoc`, `roles_json` as
//! `RolesDoc`.
//!
//! Asserts, besides "no panic":
//! - a document that decodes encodes to JSON that decodes to the same document;
//! - `grants_of` does not depend on the order of roles, of the permissions in a scope, or
//!   of a role's users, nor on roles that do not list the user; without role resolution it
//!   is the user's own grants;
//! - a `hash` that is not bcrypt's exact shape is a `MalformedHash` and never reaches
//!   bcrypt (checked with cost 04 hashes only, to stay fast);
//! - `from_docs` then `user_docs`/`role_docs` reaches a fixed point after one round;
//! - `user_from_answer` finds a user exactly when the `200` body decodes and lists the
//!   asked name once (that very document), says unknown exactly when it lists it never or
//!   the `404` body is the meta API's `user not found`, and is unusable otherwise;
//!   `roles_listing` returns exactly the decoded roles whose `users` hold the name.
#![no_main]

use kapauth::gateway::authenticate::grants_of;
use kapauth::gateway::authenticate::meta_client::{UserAnswer, roles_listing, user_from_answer};
use kapauth::meta_api::{ErrorDoc, RoleDoc, RolesDoc, UserDoc, UsersDoc};
use kapauth::meta_server::store::State;
use kapauth::secret::password::{MalformedHash, Password, verify_bcrypt};
use kapauth_fuzz::split_at_byte;
use libfuzzer_sys::fuzz_target;
use serde::{Serialize, de::DeserializeOwned};

fuzz_target!(|data: &[u8]| {
    let (users_json, roles_json) = split_at_byte(data, 0);
    let users: Option<UsersDoc> = round_trip(users_json);
    let _: Option<ErrorDoc> = round_trip(users_json);
    let roles: Option<RolesDoc> = round_trip(roles_json.unwrap_or_default());
    let users = users.unwrap_or_default().users;
    let roles = roles.unwrap_or_default().roles;

    for user in users.iter().take(8) {
        check_grants(user, &roles);
        check_hash(user);
    }

    let asked = users.first().map_or("alice", |user| user.name.as_str());
    check_answers(users_json, roles_json.unwrap_or_default(), asked);

    let state = State::from_docs(&users, &roles);
    let (user_docs, role_docs) = (state.user_docs(), state.role_docs());
    let again = State::from_docs(&user_docs, &role_docs);
    assert_eq!(again, state, "from_docs of its own documents");
    assert_eq!(again.user_docs(), user_docs);
    assert_eq!(again.role_docs(), role_docs);
});

/// The meta client's reading of the same bytes as a `200`, a `404` and a `/role` answer,
/// against what the documents say.
fn check_answers(users_json: &[u8], roles_json: &[u8], asked: &str) {
    let expected = match serde_json::from_slice::<UsersDoc>(users_json) {
        Err(_) => None,
        Ok(doc) => {
            let named: Vec<UserDoc> = doc.users.into_iter().filter(|u| u.name == asked).collect();
            Some(named)
        }
    };
    match (user_from_answer(200, users_json, asked), expected) {
        (UserAnswer::Found(user), Some(named)) if named.len() == 1 => assert_eq!(user, named[0]),
        (UserAnswer::Unknown, Some(named)) if named.is_empty() => {}
        (UserAnswer::Unusable(_), Some(named)) if named.len() > 1 => {}
        (UserAnswer::Unusable(_), None) => {}
        (seen, expected) => panic!("200 {asked:?}: {seen:?}, documents say {expected:?}"),
    }
    let not_found = serde_json::from_slice::<ErrorDoc>(users_json)
        .is_ok_and(|doc| doc.error == "user not found");
    match user_from_answer(404, users_json, asked) {
        UserAnswer::Unknown => assert!(not_found, "404 read as unknown"),
        UserAnswer::Unusable(_) => assert!(!not_found, "404 user not found refused"),
        UserAnswer::Found(user) => panic!("a 404 found {user:?}"),
    }
    let roles: Option<Vec<RoleDoc>> =
        serde_json::from_slice::<RolesDoc>(roles_json)
            .ok()
            .map(|doc| {
                doc.roles
                    .into_iter()
                    .filter(|r| r.users.iter().any(|u| u == asked))
                    .collect()
            });
    assert_eq!(
        roles_listing(roles_json, asked).ok(),
        roles,
        "roles of {asked:?}"
    );
}

/// The document `json` decodes to, after checking that it encodes back to itself.
fn round_trip<T>(json: &[u8]) -> Option<T>
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let doc: T = serde_json::from_slice(json).ok()?;
    let encoded = serde_json::to_vec(&doc).expect("a decoded document encodes");
    let decoded: T = serde_json::from_slice(&encoded).expect("an encoded document decodes");
    assert_eq!(
        decoded,
        doc,
        "round trip through {:?}",
        String::from_utf8_lossy(&encoded)
    );
    Some(doc)
}

fn check_grants(user: &UserDoc, roles: &[RoleDoc]) {
    let grants = grants_of(user, roles, true);
    let mut shuffled: Vec<RoleDoc> = roles.iter().rev().cloned().collect();
    for role in &mut shuffled {
        role.users.reverse();
        for tokens in role.permissions.values_mut() {
            tokens.reverse();
        }
    }
    let mut own = user.clone();
    for tokens in own.permissions.values_mut() {
        tokens.reverse();
    }
    assert_eq!(
        grants_of(&own, &shuffled, true),
        grants,
        "order changed the grants"
    );
    let listing: Vec<RoleDoc> = roles
        .iter()
        .filter(|role| role.users.contains(&user.name))
        .cloned()
        .collect();
    assert_eq!(
        grants_of(user, &listing, true),
        grants,
        "a role without the user counted"
    );
    assert_eq!(
        grants_of(user, roles, false),
        grants_of(user, &[], true),
        "roles unresolved"
    );
}

/// bcrypt's shape: `$2a$`, `$2b$` or `$2y$`, cost 04 to 31, `$`, 53 characters of
/// `./A-Za-z0-9`: 60 in all.
fn is_bcrypt_shape(hash: &str) -> bool {
    let bytes = hash.as_bytes();
    let alphabet = |b: &u8| b.is_ascii_alphanumeric() || *b == b'.' || *b == b'/';
    bytes.len() == 60
        && matches!(&bytes[..4], b"$2a$" | b"$2b$" | b"$2y$")
        && std::str::from_utf8(&bytes[4..6])
            .ok()
            .filter(|cost| cost.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|cost| cost.parse::<u32>().ok())
            .is_some_and(|cost| (4..=31).contains(&cost))
        && bytes[6] == b'$'
        && bytes[7..].iter().all(alphabet)
}

fn check_hash(user: &UserDoc) {
    let cheap = user.hash.get(4..7) == Some("04$");
    if is_bcrypt_shape(&user.hash) && !cheap {
        return;
    }
    let outcome = verify_bcrypt(&Password::new(user.name.clone()), &user.hash);
    if !is_bcrypt_shape(&user.hash) {
        assert_eq!(outcome, Err(MalformedHash), "a malformed hash was checked");
    }
}

//! `meta_actions`: the meta server's `POST /user` and `POST /role` bodies (SPEC §8) read by
//! `meta_server/actions.rs`: `action` for either path and `first_user` for the anonymous
//! bootstrap create.
//!
//! Input: `[mode, flags, action, bytes...]`. With `mode` bit 7 the bytes are the body as
//! they are. Otherwise a body is built from them: `bytes` (lossy UTF-8) split at `\n` gives
//! the name, the password, then permission tokens and user names (a piece is both; even
//! pieces in scope `""`, odd ones in `db/x`); `flags` bit 0 picks `/role` over `/user`;
//! bits 1 to 7 put in the object under the path's key, one under the other key, the
//! action, the name, the password, the permissions, the users; `action` picks one of the
//! seven action names or `rename`; `mode` bits 0 and 1 make the password empty or 73 bytes.
//!
//! Asserts, besides "no panic":
//! - a built body comes out as the reference says: the entity's object (else `WrongKey`
//!   or `MissingEntity`), an action, a name, then per action its permissions (known
//!   tokens, the first unknown one named), password (present, non-empty, at most 72 bytes)
//!   or users; the mutation holds the body's name, permissions and users and the hash of
//!   exactly its password;
//! - no error text and no `Action` debug output holds the password;
//! - every error text is one line without control characters;
//! - on any body: a malformed-JSON answer only for text that is not JSON, an accepted
//!   action only for a JSON object; `first_user` accepts a `create` exactly when `action`
//!   for `/user` does, or refuses only its permissions.
#![no_main]

use std::collections::{BTreeMap, BTreeSet};

use kapauth::meta_api::is_permission;
use kapauth::meta_server::actions::{Action, ActionError, Entity, action, first_user};
use kapauth::meta_server::store::{Grants, Mutation};
use kapauth_fuzz::password_is;
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};

/// Every action of either path (each is unknown on the other path where it is not
/// shared), and one neither has.
const ACTIONS: [&str; 8] = [
    "create",
    "delete",
    "change-password",
    "add-permissions",
    "remove-permissions",
    "add-users",
    "remove-users",
    "rename",
];

/// What a built body holds.
struct Built {
    entity: Entity,
    found: bool,
    other: bool,
    action: Option<&'static str>,
    name: Option<String>,
    password: Option<String>,
    permissions: Option<BTreeMap<String, Vec<String>>>,
    users: Option<Vec<String>>,
}

fuzz_target!(|data: &[u8]| {
    let [mode, flags, action_index, bytes @ ..] = data else {
        return;
    };
    if mode & 0x80 != 0 {
        check_any_body(bytes);
        return;
    }
    let text = String::from_utf8_lossy(bytes);
    let pieces: Vec<&str> = text.split('\n').collect();
    let name = pieces.first().copied().unwrap_or_default().to_string();
    let password = match mode & 3 {
        1 => String::new(),
        2 => "p".repeat(73),
        _ => format!("pw-{}", pieces.get(1).copied().unwrap_or_default()),
    };
    let mut permissions: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (index, piece) in pieces.iter().skip(2).enumerate() {
        let scope = if index % 2 == 0 { "" } else { "db/x" };
        permissions
            .entry(scope.to_string())
            .or_default()
            .push(piece.to_string());
    }
    let users: Vec<String> = pieces
        .iter()
        .skip(2)
        .map(|piece| piece.to_string())
        .collect();
    let bit = |n: u8| flags & (1 << n) != 0;
    let built = Built {
        entity: if bit(0) { Entity::Role } else { Entity::User },
        found: bit(1),
        other: bit(2),
        action: bit(3).then(|| ACTIONS[usize::from(*action_index) % ACTIONS.len()]),
        name: bit(4).then(|| name.clone()),
        password: bit(5).then(|| password.clone()),
        permissions: bit(6).then(|| permissions.clone()),
        users: bit(7).then(|| users.clone()),
    };
    let body = body_of(&built);
    let outcome = action(built.entity, &body);
    let expected = expected(&built);
    // A password that is also part of a name, token or user name may be printed as one.
    let leaks = |printed: &str| {
        password.len() >= 4
            && printed.contains(&password)
            && !pieces.iter().any(|piece| piece.contains(&password))
    };
    match (outcome, expected) {
        (Err(error), Err(want)) => {
            assert_eq!(error, want, "{}", String::from_utf8_lossy(&body));
            let printed = error.to_string();
            assert!(!leaks(&printed), "{printed:?} holds the password");
            assert!(!printed.chars().any(char::is_control), "{printed:?}");
        }
        (Ok(action), Ok(want)) => {
            let printed = format!("{action:?}");
            assert!(!leaks(&printed), "{printed:?} holds the password");
            let hashed = action
                .into_mutation(|given| {
                    Ok::<_, ()>(
                        if password_is(given, &password) {
                            "hash"
                        } else {
                            "wrong"
                        }
                        .into(),
                    )
                })
                .expect("the stand-in hash never fails");
            assert!(hashed == want, "{hashed:?}, expected {want:?}");
        }
        (outcome, want) => panic!(
            "{}: {outcome:?}, expected {want:?}",
            String::from_utf8_lossy(&body)
        ),
    }
    check_any_body(&body);
});

fn body_of(built: &Built) -> Vec<u8> {
    let mut object = Map::new();
    if let Some(name) = &built.name {
        object.insert("name".into(), json!(name));
    }
    if let Some(password) = &built.password {
        object.insert("password".into(), json!(password));
    }
    if let Some(permissions) = &built.permissions {
        object.insert("permissions".into(), json!(permissions));
    }
    if let Some(users) = &built.users {
        object.insert("users".into(), json!(users));
    }
    let (key, other) = match built.entity {
        Entity::User => ("user", "role"),
        Entity::Role => ("role", "user"),
    };
    let mut body = Map::new();
    if let Some(action) = built.action {
        body.insert("action".into(), json!(action));
    }
    if built.found {
        body.insert(key.into(), Value::Object(object.clone()));
    }
    if built.other {
        body.insert(other.into(), Value::Object(object));
    }
    serde_json::to_vec(&Value::Object(body)).expect("a JSON value encodes")
}

/// SPEC §8's rules in the order the answer reports them.
fn expected(built: &Built) -> Result<Mutation, ActionError> {
    let entity = built.entity;
    if !built.found {
        return Err(if built.other {
            ActionError::WrongKey(entity)
        } else {
            ActionError::MissingEntity(entity)
        });
    }
    let action = built.action.ok_or(ActionError::MissingAction(entity))?;
    let name = built
        .name
        .clone()
        .filter(|name| !name.is_empty())
        .ok_or(ActionError::MissingName(entity))?;
    let known = |required: bool| -> Result<Grants, ActionError> {
        let Some(permissions) = &built.permissions else {
            return if required {
                Err(ActionError::MissingPermissions {
                    entity,
                    name: name.clone(),
                })
            } else {
                Ok(Grants::new())
            };
        };
        if let Some(unknown) = permissions
            .values()
            .flatten()
            .find(|token| !is_permission(token))
        {
            return Err(ActionError::UnknownPermission(unknown.clone()));
        }
        Ok(permissions
            .iter()
            .map(|(scope, tokens)| {
                (
                    scope.clone(),
                    tokens.iter().cloned().collect::<BTreeSet<_>>(),
                )
            })
            .collect())
    };
    let password = || -> Result<String, ActionError> {
        let user = name.clone();
        match built.password.as_deref() {
            None => Err(ActionError::MissingPassword { user }),
            Some("") => Err(ActionError::EmptyPassword { user }),
            Some(password) if password.len() > 72 => Err(ActionError::PasswordTooLong { user }),
            Some(_) => Ok("hash".to_string()),
        }
    };
    let users = || {
        built
            .users
            .clone()
            .ok_or_else(|| ActionError::MissingUsers { role: name.clone() })
    };
    Ok(match (entity, action) {
        (Entity::User, "create") => {
            let permissions = known(false)?;
            Mutation::CreateUser {
                hash: password()?,
                name,
                permissions,
            }
        }
        (Entity::User, "change-password") => Mutation::ChangePassword {
            hash: password()?,
            name,
        },
        (Entity::User, "delete") => Mutation::DeleteUser { name },
        (Entity::User, "add-permissions") => Mutation::AddUserPermissions {
            permissions: known(true)?,
            name,
        },
        (Entity::User, "remove-permissions") => Mutation::RemoveUserPermissions {
            permissions: known(true)?,
            name,
        },
        (Entity::Role, "create") => Mutation::CreateRole {
            permissions: known(false)?,
            name,
        },
        (Entity::Role, "delete") => Mutation::DeleteRole { name },
        (Entity::Role, "add-permissions") => Mutation::AddRolePermissions {
            permissions: known(true)?,
            name,
        },
        (Entity::Role, "remove-permissions") => Mutation::RemoveRolePermissions {
            permissions: known(true)?,
            name,
        },
        (Entity::Role, "add-users") => Mutation::AddRoleUsers {
            users: users()?,
            name,
        },
        (Entity::Role, "remove-users") => Mutation::RemoveRoleUsers {
            users: users()?,
            name,
        },
        _ => {
            return Err(ActionError::UnknownAction {
                entity,
                action: action.to_string(),
            });
        }
    })
}

/// The properties that hold for any body, JSON or not.
fn check_any_body(body: &[u8]) {
    let json = serde_json::from_slice::<Value>(body);
    let results = [
        action(Entity::User, body),
        action(Entity::Role, body),
        first_user(body),
    ];
    for result in &results {
        match result {
            Err(error @ ActionError::MalformedJson { .. }) => {
                assert!(json.is_err(), "{error} for JSON");
            }
            Err(error) => {
                let printed = error.to_string();
                assert!(!printed.chars().any(char::is_control), "{printed:?}");
            }
            // serde_json's `Value` refuses numbers past f64 that a skipped field may hold,
            // so only the shape is checked.
            Ok(_) => assert!(body.trim_ascii_start().starts_with(b"{"), "a non-object"),
        }
    }
    let [user, _, first] = results;
    match (&first, &user) {
        (Ok(_), Ok(_) | Err(ActionError::UnknownPermission(_))) => {}
        (Ok(_), other) => panic!("first_user accepted what /user answers {other:?}"),
        (Err(_), _) => {}
    }
    let create = json
        .ok()
        .and_then(|value| {
            value
                .get("action")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .is_some_and(|action| action == "create");
    if create && matches!(user, Ok(Action::Hash { .. })) {
        assert!(
            first.is_ok(),
            "/user accepted a create that first_user refused"
        );
    }
}

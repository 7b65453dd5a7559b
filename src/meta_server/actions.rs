//! The body of `POST /user` and `POST /role` as a validated `Action` (SPEC §8). The JSON is
//! read into the wire `ActionDoc`, then every rule is checked here and nowhere else: the
//! entity under its path's key, a known action, a name, the fields that action needs, known
//! permission tokens, a password bcrypt can hash whole. Each failure is an `ActionError`
//! whose `Display` is the text of the answer. Pure: no lock, no store, no bcrypt; a password
//! stays a `Password` until the caller hashes it outside every lock and
//! `Action::into_mutation` builds the store's `Mutation`. No message ever quotes a password.

use std::fmt;

use super::store::{Grants, Mutation, from_wire};
use crate::meta_api::{self, ActionDoc, EntityDoc, Permissions};
use crate::secret::password::{MAX_PASSWORD_BYTES, Password};

/// What a `POST` acts on, by its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    /// `/user`, with the user under `"user"`.
    User,
    /// `/role`, with the role under `"role"`.
    Role,
}

/// What a valid body asks for.
#[derive(Debug)]
pub enum Action {
    /// A change that stores no password.
    Mutate(Mutation),
    /// A change that stores the bcrypt hash of `password`; `then` says which.
    Hash { password: Password, then: WithHash },
}

/// The changes that store a password's hash, waiting for it.
#[derive(Debug)]
pub enum WithHash {
    /// The first user, created without credentials; it gets every permission.
    Bootstrap {
        name: String,
    },
    CreateUser {
        name: String,
        permissions: Grants,
    },
    ChangePassword {
        name: String,
    },
}

/// Why a body is not a valid action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionError {
    /// The body is not JSON; `detail` is serde_json's, with line and column.
    MalformedJson {
        detail: String,
        user_key_on_role: bool,
    },
    /// The body is JSON of the wrong shape, e.g. a number where a password belongs.
    InvalidBody {
        detail: String,
        user_key_on_role: bool,
    },
    /// The entity is under the other path's key, e.g. `"user"` in a `/role` body.
    WrongKey(Entity),
    /// Neither `"user"` nor `"role"` is there.
    MissingEntity(Entity),
    /// No `"action"`.
    MissingAction(Entity),
    /// No name, or an empty one.
    MissingName(Entity),
    /// An action that changes permissions came without them.
    MissingPermissions { entity: Entity, name: String },
    /// `add-users` or `remove-users` came without `"users"`.
    MissingUsers { role: String },
    /// `create` or `change-password` came without a password.
    MissingPassword { user: String },
    /// The password is `""`.
    EmptyPassword { user: String },
    /// The password is longer than bcrypt can hash without dropping its end.
    PasswordTooLong { user: String },
    /// An action the path does not have.
    UnknownAction { entity: Entity, action: String },
    /// A permission that is not one of the 19 tokens.
    UnknownPermission(String),
    /// An anonymous request on an empty store asked for something other than `create`.
    NotFirstUser,
}

/// The body of a `POST /user` or `POST /role` from a principal that may manage both.
pub fn action(entity: Entity, body: &[u8]) -> Result<Action, ActionError> {
    let (action, doc) = document(entity, body)?;
    let name = name(entity, &doc)?;
    let mutation = match (entity, action.as_str()) {
        (Entity::User, "create") => {
            let permissions = optional_permissions(&doc)?;
            let password = password(&name, &doc)?;
            let then = WithHash::CreateUser { name, permissions };
            return Ok(Action::Hash { password, then });
        }
        (Entity::User, "change-password") => {
            let password = password(&name, &doc)?;
            let then = WithHash::ChangePassword { name };
            return Ok(Action::Hash { password, then });
        }
        (Entity::User, "delete") => Mutation::DeleteUser { name },
        (Entity::User, "add-permissions") => Mutation::AddUserPermissions {
            permissions: permissions(entity, &name, &doc)?,
            name,
        },
        (Entity::User, "remove-permissions") => Mutation::RemoveUserPermissions {
            permissions: permissions(entity, &name, &doc)?,
            name,
        },
        (Entity::Role, "create") => Mutation::CreateRole {
            permissions: optional_permissions(&doc)?,
            name,
        },
        (Entity::Role, "delete") => Mutation::DeleteRole { name },
        (Entity::Role, "add-permissions") => Mutation::AddRolePermissions {
            permissions: permissions(entity, &name, &doc)?,
            name,
        },
        (Entity::Role, "remove-permissions") => Mutation::RemoveRolePermissions {
            permissions: permissions(entity, &name, &doc)?,
            name,
        },
        (Entity::Role, "add-users") => Mutation::AddRoleUsers {
            users: users(&name, &doc)?,
            name,
        },
        (Entity::Role, "remove-users") => Mutation::RemoveRoleUsers {
            users: users(&name, &doc)?,
            name,
        },
        _ => return Err(ActionError::UnknownAction { entity, action }),
    };
    Ok(Action::Mutate(mutation))
}

/// The body of an anonymous `POST /user` while the store has no users: a `create` and
/// nothing else. The first user gets every permission (SPEC §8), so `"permissions"` in the
/// body are not read.
pub fn first_user(body: &[u8]) -> Result<Action, ActionError> {
    let (action, doc) = document(Entity::User, body)?;
    let name = name(Entity::User, &doc)?;
    if action != "create" {
        return Err(ActionError::NotFirstUser);
    }
    let password = password(&name, &doc)?;
    let then = WithHash::Bootstrap { name };
    Ok(Action::Hash { password, then })
}

impl Action {
    /// The store's mutation, hashing the password with `hash` first where there is one.
    pub fn into_mutation<E>(
        self,
        hash: impl FnOnce(&Password) -> Result<String, E>,
    ) -> Result<Mutation, E> {
        let (password, then) = match self {
            Action::Mutate(mutation) => return Ok(mutation),
            Action::Hash { password, then } => (password, then),
        };
        let hash = hash(&password)?;
        Ok(match then {
            WithHash::Bootstrap { name } => Mutation::Bootstrap { name, hash },
            WithHash::CreateUser { name, permissions } => Mutation::CreateUser {
                name,
                hash,
                permissions,
            },
            WithHash::ChangePassword { name } => Mutation::ChangePassword { name, hash },
        })
    }
}

impl fmt::Display for ActionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActionError::MalformedJson {
                detail,
                user_key_on_role,
            } => {
                write!(f, "malformed JSON: {detail}")?;
                user_key_hint(f, *user_key_on_role)
            }
            ActionError::InvalidBody {
                detail,
                user_key_on_role,
            } => {
                write!(f, "invalid request body: {detail}")?;
                user_key_hint(f, *user_key_on_role)
            }
            ActionError::WrongKey(entity) => {
                let (path, key, other) = (entity.path(), entity.key(), entity.other().key());
                write!(
                    f,
                    "{path} takes the {key} under \"{key}\", not \"{other}\"; write e.g. {{\"action\":\"create\",\"{key}\":{{\"name\":\"…\"}}}}"
                )
            }
            ActionError::MissingEntity(entity) => {
                write!(f, "missing \"{}\" object in the request body", entity.key())
            }
            ActionError::MissingAction(entity) => {
                write!(f, "missing \"action\"; one of {}", entity.actions())
            }
            ActionError::MissingName(entity) => {
                let key = entity.key();
                write!(f, "missing {key} name; write \"{key}\":{{\"name\":\"…\"}}")
            }
            ActionError::MissingPermissions { entity, name } => {
                write!(f, "missing \"permissions\" for {} {name:?}", entity.key())
            }
            ActionError::MissingUsers { role } => write!(f, "missing \"users\" for role {role:?}"),
            ActionError::MissingPassword { user } => {
                write!(f, "missing password for user {user:?}")
            }
            ActionError::EmptyPassword { user } => write!(f, "empty password for user {user:?}"),
            ActionError::PasswordTooLong { user } => write!(
                f,
                "password for user {user:?} is longer than {MAX_PASSWORD_BYTES} bytes, bcrypt's limit"
            ),
            ActionError::UnknownAction { entity, action } => write!(
                f,
                "unknown action {action:?} for {}; one of {}",
                entity.path(),
                entity.actions()
            ),
            ActionError::UnknownPermission(permission) => write!(
                f,
                "unknown permission {permission:?}; known: {}",
                meta_api::PERMISSIONS.join(", ")
            ),
            ActionError::NotFirstUser => f.write_str(
                "the meta store has no users yet: create the first one with {\"action\":\"create\",\"user\":{\"name\":\"…\",\"password\":\"…\"}}",
            ),
        }
    }
}

impl std::error::Error for ActionError {}

impl Entity {
    /// The key the entity goes under in a body: `"user"` or `"role"`.
    fn key(self) -> &'static str {
        match self {
            Entity::User => "user",
            Entity::Role => "role",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Entity::User => "/user",
            Entity::Role => "/role",
        }
    }

    fn other(self) -> Entity {
        match self {
            Entity::User => Entity::Role,
            Entity::Role => Entity::User,
        }
    }

    /// The actions of the entity's path, as a refusal lists them.
    fn actions(self) -> &'static str {
        match self {
            Entity::User => "create, delete, change-password, add-permissions, remove-permissions",
            Entity::Role => {
                "create, delete, add-permissions, remove-permissions, add-users, remove-users"
            }
        }
    }
}

/// The action's name and the entity's object, from a body that must be an `ActionDoc`.
fn document(entity: Entity, body: &[u8]) -> Result<(String, EntityDoc), ActionError> {
    let doc: ActionDoc = serde_json::from_slice(body).map_err(|error| {
        // The seed's role example puts the role under "user"; say so even when the JSON
        // itself is broken, so one answer names both mistakes.
        let user_key_on_role =
            entity == Entity::Role && String::from_utf8_lossy(body).contains("\"user\"");
        let detail = error.to_string();
        if error.is_syntax() || error.is_eof() {
            ActionError::MalformedJson {
                detail,
                user_key_on_role,
            }
        } else {
            ActionError::InvalidBody {
                detail,
                user_key_on_role,
            }
        }
    })?;
    let (found, wrong) = match entity {
        Entity::User => (doc.user, doc.role),
        Entity::Role => (doc.role, doc.user),
    };
    let found = match (found, wrong) {
        (Some(found), _) => found,
        (None, Some(_)) => return Err(ActionError::WrongKey(entity)),
        (None, None) => return Err(ActionError::MissingEntity(entity)),
    };
    let action = doc.action.ok_or(ActionError::MissingAction(entity))?;
    Ok((action, found))
}

fn name(entity: Entity, doc: &EntityDoc) -> Result<String, ActionError> {
    doc.name
        .clone()
        .filter(|name| !name.is_empty())
        .ok_or(ActionError::MissingName(entity))
}

/// The password of `user`, if bcrypt can hash all of it.
fn password(user: &str, doc: &EntityDoc) -> Result<Password, ActionError> {
    let user = user.to_string();
    match doc.password.as_deref() {
        None => Err(ActionError::MissingPassword { user }),
        Some("") => Err(ActionError::EmptyPassword { user }),
        Some(password) if password.len() > MAX_PASSWORD_BYTES => {
            Err(ActionError::PasswordTooLong { user })
        }
        Some(password) => Ok(Password::new(password.to_string())),
    }
}

/// The permissions an action that changes them must carry.
fn permissions(entity: Entity, name: &str, doc: &EntityDoc) -> Result<Grants, ActionError> {
    let wire = doc
        .permissions
        .as_ref()
        .ok_or_else(|| ActionError::MissingPermissions {
            entity,
            name: name.to_string(),
        })?;
    known_permissions(wire)
}

/// The permissions a `create` may carry; none is none.
fn optional_permissions(doc: &EntityDoc) -> Result<Grants, ActionError> {
    doc.permissions
        .as_ref()
        .map_or(Ok(Grants::new()), known_permissions)
}

fn known_permissions(wire: &Permissions) -> Result<Grants, ActionError> {
    match wire
        .values()
        .flatten()
        .find(|token| !meta_api::is_permission(token))
    {
        Some(unknown) => Err(ActionError::UnknownPermission(unknown.clone())),
        None => Ok(from_wire(wire)),
    }
}

fn users(role: &str, doc: &EntityDoc) -> Result<Vec<String>, ActionError> {
    doc.users.clone().ok_or_else(|| ActionError::MissingUsers {
        role: role.to_string(),
    })
}

fn user_key_hint(f: &mut fmt::Formatter<'_>, user_key_on_role: bool) -> fmt::Result {
    if user_key_on_role {
        f.write_str("; also, /role takes the role under \"role\", not \"user\"")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: &str = "NoPermissions, ViewAdmin, ViewChronograf, CreateDatabase, CreateUserAndRole, AddRemoveNode, DropDatabase, DropData, ReadData, WriteData, Rebalance, ManageShard, ManageContinuousQuery, ManageQuery, ManageSubscription, Monitor, CopyShard, KapacitorAPI, KapacitorConfigAPI";

    fn check(
        parse: fn(&[u8]) -> Result<Action, ActionError>,
        body: &str,
        expected: Result<Mutation, &str>,
    ) {
        // A stand-in for bcrypt that shows which password was hashed.
        let fake_hash = |password: &Password| Ok::<_, ()>(format!("hash of {}", password.as_str()));
        let got = parse(body.as_bytes())
            .map(|action| action.into_mutation(fake_hash).unwrap())
            .map_err(|action_error| action_error.to_string());
        let expected = expected.map_err(str::to_string);
        // Mutation's Debug hides hashes, so a wrong one is named here first.
        assert_eq!(hash_of(&got), hash_of(&expected), "{body}");
        assert_eq!(got, expected, "{body}");
    }

    fn hash_of(result: &Result<Mutation, String>) -> Option<&str> {
        match result {
            Ok(
                Mutation::Bootstrap { hash, .. }
                | Mutation::CreateUser { hash, .. }
                | Mutation::ChangePassword { hash, .. },
            ) => Some(hash),
            _ => None,
        }
    }

    fn user(body: &[u8]) -> Result<Action, ActionError> {
        action(Entity::User, body)
    }

    fn role(body: &[u8]) -> Result<Action, ActionError> {
        action(Entity::Role, body)
    }

    fn s(text: &str) -> String {
        text.to_string()
    }

    /// One scope's permissions; `grants("", &[])` is none at all.
    fn grants(scope: &str, tokens: &[&str]) -> Grants {
        match tokens {
            [] => Grants::new(),
            _ => Grants::from([(s(scope), tokens.iter().map(|token| s(token)).collect())]),
        }
    }

    fn names(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| s(name)).collect()
    }

    fn hashed(password: &str) -> String {
        format!("hash of {password}")
    }

    fn unknown_permission(token: &str) -> String {
        format!("unknown permission {token:?}; known: {KNOWN}")
    }

    fn create(password: &str) -> String {
        format!(r#"{{"action":"create","user":{{"name":"eve","password":"{password}"}}}}"#)
    }

    // One line per case, so rustfmt is told to leave the rows as written.
    #[rustfmt::skip]
    #[test]
    fn every_action_of_both_paths_becomes_its_mutation() {
        use Mutation::*;
        let x72 = "x".repeat(72);
        check(user, &create("pw"), Ok(CreateUser { name: s("eve"), hash: hashed("pw"), permissions: grants("", &[]) }));
        check(user, r#"{"action":"create","user":{"name":"eve","password":"pw","permissions":{"":["ViewAdmin"]}}}"#, Ok(CreateUser { name: s("eve"), hash: hashed("pw"), permissions: grants("", &["ViewAdmin"]) }));
        // Exactly 72 bytes is bcrypt's whole input, and is taken.
        check(user, &create(&x72), Ok(CreateUser { name: s("eve"), hash: hashed(&x72), permissions: grants("", &[]) }));
        check(user, r#"{"action":"delete","user":{"name":"eve"}}"#, Ok(DeleteUser { name: s("eve") }));
        check(user, r#"{"action":"change-password","user":{"name":"eve","password":"new"}}"#, Ok(ChangePassword { name: s("eve"), hash: hashed("new") }));
        check(user, r#"{"action":"add-permissions","user":{"name":"eve","permissions":{"db1":["ReadData"]}}}"#, Ok(AddUserPermissions { name: s("eve"), permissions: grants("db1", &["ReadData"]) }));
        check(user, r#"{"action":"remove-permissions","user":{"name":"eve","permissions":{"":["KapacitorAPI"]}}}"#, Ok(RemoveUserPermissions { name: s("eve"), permissions: grants("", &["KapacitorAPI"]) }));
        // A null list is an empty one, as Go reads it: Chronograf sends one for a scope with nothing to change.
        check(user, r#"{"action":"remove-permissions","user":{"name":"eve","permissions":{"":null,"db1":["ReadData"]}}}"#, Ok(RemoveUserPermissions { name: s("eve"), permissions: Grants::from([(s(""), Default::default()), (s("db1"), [s("ReadData")].into())]) }));
        check(role, r#"{"action":"add-permissions","role":{"name":"ops","permissions":{"":null}}}"#, Ok(AddRolePermissions { name: s("ops"), permissions: Grants::from([(s(""), Default::default())]) }));
        check(user, r#"{"action":"add-permissions","user":{"name":"eve","permissions":null}}"#, Err("missing \"permissions\" for user \"eve\""));
        check(role, r#"{"action":"create","role":{"name":"ops"}}"#, Ok(CreateRole { name: s("ops"), permissions: grants("", &[]) }));
        check(role, r#"{"action":"create","role":{"name":"ops","permissions":{"":["Monitor"]}}}"#, Ok(CreateRole { name: s("ops"), permissions: grants("", &["Monitor"]) }));
        check(role, r#"{"action":"delete","role":{"name":"ops"}}"#, Ok(DeleteRole { name: s("ops") }));
        // A /role body may carry a stray "user" beside its "role"; the role is what counts.
        check(role, r#"{"action":"delete","role":{"name":"ops"},"user":{"name":"eve"}}"#, Ok(DeleteRole { name: s("ops") }));
        check(role, r#"{"action":"add-permissions","role":{"name":"ops","permissions":{"db1":["WriteData"]}}}"#, Ok(AddRolePermissions { name: s("ops"), permissions: grants("db1", &["WriteData"]) }));
        check(role, r#"{"action":"remove-permissions","role":{"name":"ops","permissions":{"db1":["WriteData"]}}}"#, Ok(RemoveRolePermissions { name: s("ops"), permissions: grants("db1", &["WriteData"]) }));
        check(role, r#"{"action":"add-users","role":{"name":"ops","users":["eve","bob"]}}"#, Ok(AddRoleUsers { name: s("ops"), users: names(&["eve", "bob"]) }));
        check(role, r#"{"action":"remove-users","role":{"name":"ops","users":[]}}"#, Ok(RemoveRoleUsers { name: s("ops"), users: names(&[]) }));
        check(first_user, r#"{"action":"create","user":{"name":"root","password":"pw"}}"#, Ok(Bootstrap { name: s("root"), hash: hashed("pw") }));
        // The first user gets every permission, so what the body asks for is not read.
        check(first_user, r#"{"action":"create","user":{"name":"root","password":"pw","permissions":{"":["Bogus"]}}}"#, Ok(Bootstrap { name: s("root"), hash: hashed("pw") }));
    }

    #[rustfmt::skip]
    #[test]
    fn every_invalid_body_is_refused_with_the_words_of_the_answer() {
        let x73 = "x".repeat(73);
        // 37 two-byte characters: under 72 characters, but 74 bytes.
        let e74 = "é".repeat(37);
        check(user, "{\"action\":\"create\",\n \"user\":{\"name\":\"eve\" \"password\":\"eve-pass-1\"}}", Err("malformed JSON: expected `,` or `}` at line 2 column 23"));
        check(user, "", Err("malformed JSON: EOF while parsing a value at line 1 column 0"));
        check(role, r#"{"action":"create","role":{"name":"ops"}"#, Err("malformed JSON: EOF while parsing an object at line 1 column 40"));
        check(role, "{\n    \"action\":\"create\",\n    \"user\": {\n      \"name\":\"kapacitor\",\n    }\n  }", Err(r#"malformed JSON: trailing comma at line 5 column 5; also, /role takes the role under "role", not "user""#));
        check(user, r#"{"action":"create","user":{"name":"eve","password":7}}"#, Err("invalid request body: invalid type: integer `7`, expected a string at line 1 column 52"));
        check(role, r#"{"action":"create","role":{"name":7},"user":{}}"#, Err(r#"invalid request body: invalid type: integer `7`, expected a string at line 1 column 35; also, /role takes the role under "role", not "user""#));
        check(role, r#"{"action":"create","user":{"name":"ops"}}"#, Err(r#"/role takes the role under "role", not "user"; write e.g. {"action":"create","role":{"name":"…"}}"#));
        check(user, r#"{"action":"add-permissions","role":{"name":"ops","permissions":{"":["KapacitorAPI"]}}}"#, Err(r#"/user takes the user under "user", not "role"; write e.g. {"action":"create","user":{"name":"…"}}"#));
        check(user, r#"{"action":"create"}"#, Err(r#"missing "user" object in the request body"#));
        check(role, r#"{"action":"create"}"#, Err(r#"missing "role" object in the request body"#));
        check(user, r#"{"user":{"name":"admin"}}"#, Err(r#"missing "action"; one of create, delete, change-password, add-permissions, remove-permissions"#));
        check(role, r#"{"role":{"name":"ops"}}"#, Err(r#"missing "action"; one of create, delete, add-permissions, remove-permissions, add-users, remove-users"#));
        check(user, r#"{"action":"create","user":{"password":"eve-pass-1"}}"#, Err(r#"missing user name; write "user":{"name":"…"}"#));
        check(user, r#"{"action":"delete","user":{"name":""}}"#, Err(r#"missing user name; write "user":{"name":"…"}"#));
        check(role, r#"{"action":"create","role":{}}"#, Err(r#"missing role name; write "role":{"name":"…"}"#));
        // The name is checked before the action, as it always was.
        check(user, r#"{"action":"rename","user":{}}"#, Err(r#"missing user name; write "user":{"name":"…"}"#));
        check(user, r#"{"action":"rename","user":{"name":"admin"}}"#, Err(r#"unknown action "rename" for /user; one of create, delete, change-password, add-permissions, remove-permissions"#));
        check(role, r#"{"action":"change-password","role":{"name":"ops"}}"#, Err(r#"unknown action "change-password" for /role; one of create, delete, add-permissions, remove-permissions, add-users, remove-users"#));
        check(user, r#"{"action":"add-permissions","user":{"name":"admin"}}"#, Err(r#"missing "permissions" for user "admin""#));
        check(user, r#"{"action":"remove-permissions","user":{"name":"admin"}}"#, Err(r#"missing "permissions" for user "admin""#));
        check(role, r#"{"action":"add-permissions","role":{"name":"ops"}}"#, Err(r#"missing "permissions" for role "ops""#));
        check(role, r#"{"action":"remove-permissions","role":{"name":"ops"}}"#, Err(r#"missing "permissions" for role "ops""#));
        check(role, r#"{"action":"add-users","role":{"name":"ops"}}"#, Err(r#"missing "users" for role "ops""#));
        check(role, r#"{"action":"remove-users","role":{"name":"ops"}}"#, Err(r#"missing "users" for role "ops""#));
        check(user, r#"{"action":"create","user":{"name":"eve"}}"#, Err(r#"missing password for user "eve""#));
        check(user, r#"{"action":"change-password","user":{"name":"admin"}}"#, Err(r#"missing password for user "admin""#));
        check(user, &create(""), Err(r#"empty password for user "eve""#));
        check(user, r#"{"action":"change-password","user":{"name":"eve","password":""}}"#, Err(r#"empty password for user "eve""#));
        check(user, &create(&x73), Err(r#"password for user "eve" is longer than 72 bytes, bcrypt's limit"#));
        check(user, &create(&e74), Err(r#"password for user "eve" is longer than 72 bytes, bcrypt's limit"#));
        check(user, r#"{"action":"add-permissions","user":{"name":"admin","permissions":{"db1":["ReadData","KapacitorApi"]}}}"#, Err(&unknown_permission("KapacitorApi")));
        check(user, r#"{"action":"remove-permissions","user":{"name":"admin","permissions":{"":["Everything"]}}}"#, Err(&unknown_permission("Everything")));
        check(user, r#"{"action":"create","user":{"name":"eve","password":"pw","permissions":{"":["KapacitorApi"]}}}"#, Err(&unknown_permission("KapacitorApi")));
        // Permissions are checked before the password, as they always were.
        check(user, r#"{"action":"create","user":{"name":"eve","permissions":{"":["KapacitorApi"]}}}"#, Err(&unknown_permission("KapacitorApi")));
        check(role, r#"{"action":"create","role":{"name":"ops","permissions":{"":["kapacitorapi"]}}}"#, Err(&unknown_permission("kapacitorapi")));
        check(role, r#"{"action":"add-permissions","role":{"name":"ops","permissions":{"":["KapacitorApi"]}}}"#, Err(&unknown_permission("KapacitorApi")));
        check(role, r#"{"action":"remove-permissions","role":{"name":"ops","permissions":{"":[""]}}}"#, Err(&unknown_permission("")));
    }

    #[rustfmt::skip]
    #[test]
    fn an_empty_store_takes_the_first_users_create_and_nothing_else() {
        let x73 = "x".repeat(73);
        let not_first_user = r#"the meta store has no users yet: create the first one with {"action":"create","user":{"name":"…","password":"…"}}"#;
        check(first_user, r#"{"action":"add-permissions","user":{"name":"eve","permissions":{"":["ViewAdmin"]}}}"#, Err(not_first_user));
        check(first_user, r#"{"action":"delete","user":{"name":"eve"}}"#, Err(not_first_user));
        check(first_user, r#"{"action":"rename","user":{"name":"eve"}}"#, Err(not_first_user));
        check(first_user, r#"{"action":"create","user":{"name":"eve"}}"#, Err(r#"missing password for user "eve""#));
        check(first_user, &create(""), Err(r#"empty password for user "eve""#));
        check(first_user, &create(&x73), Err(r#"password for user "eve" is longer than 72 bytes, bcrypt's limit"#));
        check(first_user, r#"{"action":"create","user":{"password":"pw"}}"#, Err(r#"missing user name; write "user":{"name":"…"}"#));
        check(first_user, r#"{"action":"create","role":{"name":"root"}}"#, Err(r#"/user takes the user under "user", not "role"; write e.g. {"action":"create","user":{"name":"…"}}"#));
        check(first_user, r#"{"user":{"name":"root"}}"#, Err(r#"missing "action"; one of create, delete, change-password, add-permissions, remove-permissions"#));
        check(first_user, "{", Err("malformed JSON: EOF while parsing an object at line 1 column 1"));
    }

    #[test]
    fn a_hashing_failure_makes_no_mutation_and_a_passwordless_action_never_hashes() {
        let failing = |_: &Password| Err("no randomness");
        let create = user(create("pw").as_bytes()).unwrap();
        assert_eq!(create.into_mutation(failing), Err("no randomness"));
        let delete = user(br#"{"action":"delete","user":{"name":"eve"}}"#).unwrap();
        assert_eq!(
            delete.into_mutation(failing),
            Ok(Mutation::DeleteUser { name: s("eve") })
        );
    }

    #[test]
    fn debug_output_never_shows_a_password() {
        let create = user(create("sesame-1").as_bytes()).unwrap();
        assert!(!format!("{create:?}").contains("sesame-1"), "{create:?}");
    }
}

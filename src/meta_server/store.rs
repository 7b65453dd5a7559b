//! The meta server's users and roles as plain values, and every change to them as a pure
//! function from one state to the next (SPEC §8). Never touches a disk or a lock: `disk.rs`
//! persists a state, `mod.rs` decides when it becomes the current one. Holds bcrypt hashes
//! only, never a password.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::meta_api::{self, Permissions, RoleDoc, UserDoc};

/// Permissions by scope (`""` for every database), each scope a set of tokens.
pub type Grants = BTreeMap<String, BTreeSet<String>>;

/// One user: a bcrypt hash and direct permissions. Its `Debug` never shows the hash.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct User {
    pub hash: String,
    pub permissions: Grants,
}

/// One role: permissions and the names of its users.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Role {
    pub permissions: Grants,
    pub users: BTreeSet<String>,
}

/// Every user and role.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    pub users: BTreeMap<String, User>,
    pub roles: BTreeMap<String, Role>,
}

/// One change the API can ask for. Hashes are computed before a mutation is built, so
/// applying one is fast and never runs bcrypt. Its `Debug` shows the change and the name,
/// never a hash.
#[derive(Clone, PartialEq, Eq)]
pub enum Mutation {
    /// The first user, created without credentials; refused once any user exists.
    Bootstrap {
        name: String,
        hash: String,
    },
    CreateUser {
        name: String,
        hash: String,
        permissions: Grants,
    },
    DeleteUser {
        name: String,
    },
    ChangePassword {
        name: String,
        hash: String,
    },
    AddUserPermissions {
        name: String,
        permissions: Grants,
    },
    RemoveUserPermissions {
        name: String,
        permissions: Grants,
    },
    CreateRole {
        name: String,
        permissions: Grants,
    },
    DeleteRole {
        name: String,
    },
    AddRolePermissions {
        name: String,
        permissions: Grants,
    },
    RemoveRolePermissions {
        name: String,
        permissions: Grants,
    },
    AddRoleUsers {
        name: String,
        users: Vec<String>,
    },
    RemoveRoleUsers {
        name: String,
        users: Vec<String>,
    },
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("hash", &"***")
            .field("permissions", &self.permissions)
            .finish()
    }
}

impl fmt::Debug for Mutation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (change, name) = match self {
            Mutation::Bootstrap { name, .. } => ("Bootstrap", name),
            Mutation::CreateUser { name, .. } => ("CreateUser", name),
            Mutation::DeleteUser { name } => ("DeleteUser", name),
            Mutation::ChangePassword { name, .. } => ("ChangePassword", name),
            Mutation::AddUserPermissions { name, .. } => ("AddUserPermissions", name),
            Mutation::RemoveUserPermissions { name, .. } => ("RemoveUserPermissions", name),
            Mutation::CreateRole { name, .. } => ("CreateRole", name),
            Mutation::DeleteRole { name } => ("DeleteRole", name),
            Mutation::AddRolePermissions { name, .. } => ("AddRolePermissions", name),
            Mutation::RemoveRolePermissions { name, .. } => ("RemoveRolePermissions", name),
            Mutation::AddRoleUsers { name, .. } => ("AddRoleUsers", name),
            Mutation::RemoveRoleUsers { name, .. } => ("RemoveRoleUsers", name),
        };
        write!(f, "{change}({name:?})")
    }
}

/// A mutation that does not fit the current state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// `create` of a user name that is taken.
    UserExists(String),
    /// A user name that does not exist.
    UserNotFound(String),
    /// `create` of a role name that is taken.
    RoleExists(String),
    /// A role name that does not exist.
    RoleNotFound(String),
    /// A bootstrap `create` after another request created the first user.
    NotEmpty,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::UserExists(name) => write!(f, "user {name:?} already exists"),
            StoreError::UserNotFound(name) => write!(f, "user {name:?} not found"),
            StoreError::RoleExists(name) => write!(f, "role {name:?} already exists"),
            StoreError::RoleNotFound(name) => write!(f, "role {name:?} not found"),
            StoreError::NotEmpty => f.write_str(
                "the store has users now; send the credentials of one holding CreateUserAndRole",
            ),
        }
    }
}

impl State {
    /// The state after `mutation`, or why it does not apply; `self` is left as it was.
    pub fn apply(&self, mutation: &Mutation) -> Result<State, StoreError> {
        let mut next = self.clone();
        match mutation {
            Mutation::Bootstrap { name, hash } => {
                if !next.users.is_empty() {
                    return Err(StoreError::NotEmpty);
                }
                let user = User {
                    hash: hash.clone(),
                    permissions: bootstrap_grants(),
                };
                next.users.insert(name.clone(), user);
            }
            Mutation::CreateUser {
                name,
                hash,
                permissions,
            } => {
                if next.users.contains_key(name) {
                    return Err(StoreError::UserExists(name.clone()));
                }
                let user = User {
                    hash: hash.clone(),
                    permissions: permissions.clone(),
                };
                next.users.insert(name.clone(), user);
            }
            Mutation::DeleteUser { name } => {
                next.users
                    .remove(name)
                    .ok_or_else(|| StoreError::UserNotFound(name.clone()))?;
                // A deleted user leaves no trace in roles, so a later user of the same name
                // does not inherit them.
                for role in next.roles.values_mut() {
                    role.users.remove(name);
                }
            }
            Mutation::ChangePassword { name, hash } => {
                next.user_mut(name)?.hash = hash.clone();
            }
            Mutation::AddUserPermissions { name, permissions } => {
                add_grants(&mut next.user_mut(name)?.permissions, permissions);
            }
            Mutation::RemoveUserPermissions { name, permissions } => {
                remove_grants(&mut next.user_mut(name)?.permissions, permissions);
            }
            Mutation::CreateRole { name, permissions } => {
                if next.roles.contains_key(name) {
                    return Err(StoreError::RoleExists(name.clone()));
                }
                let role = Role {
                    permissions: permissions.clone(),
                    users: BTreeSet::new(),
                };
                next.roles.insert(name.clone(), role);
            }
            Mutation::DeleteRole { name } => {
                next.roles
                    .remove(name)
                    .ok_or_else(|| StoreError::RoleNotFound(name.clone()))?;
            }
            Mutation::AddRolePermissions { name, permissions } => {
                add_grants(&mut next.role_mut(name)?.permissions, permissions);
            }
            Mutation::RemoveRolePermissions { name, permissions } => {
                remove_grants(&mut next.role_mut(name)?.permissions, permissions);
            }
            Mutation::AddRoleUsers { name, users } => {
                if let Some(missing) = users.iter().find(|user| !next.users.contains_key(*user)) {
                    return Err(StoreError::UserNotFound(missing.clone()));
                }
                next.role_mut(name)?.users.extend(users.iter().cloned());
            }
            Mutation::RemoveRoleUsers { name, users } => {
                let role = next.role_mut(name)?;
                for user in users {
                    role.users.remove(user);
                }
            }
        }
        Ok(next)
    }

    /// The users whose password or grants may differ between `self` and `after`: each
    /// user added, removed or changed, and every user a changed role lists before or after
    /// the change. A name no user holds is included too, so a remembered "unknown user"
    /// of that name is dropped when it is created.
    pub fn affected_users(&self, after: &State) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        for name in self.users.keys().chain(after.users.keys()) {
            if self.users.get(name) != after.users.get(name) {
                names.insert(name.clone());
            }
        }
        for name in self.roles.keys().chain(after.roles.keys()) {
            let (before, now) = (self.roles.get(name), after.roles.get(name));
            if before != now {
                for role in before.into_iter().chain(now) {
                    names.extend(role.users.iter().cloned());
                }
            }
        }
        names
    }

    /// Whether `user` holds `permission` on `resource` or on `""`, directly or through a
    /// role; `NoPermissions` is held by every user (SPEC §8 `/authorized`).
    pub fn holds(&self, user: &str, permission: &str, resource: &str) -> bool {
        let Some(found) = self.users.get(user) else {
            return false;
        };
        if permission == "NoPermissions" {
            return true;
        }
        let in_grants = |grants: &Grants| {
            [resource, ""].iter().any(|scope| {
                grants
                    .get(*scope)
                    .is_some_and(|set| set.contains(permission))
            })
        };
        in_grants(&found.permissions)
            || self
                .roles
                .values()
                .any(|role| role.users.contains(user) && in_grants(&role.permissions))
    }

    /// The user as the meta API shows it.
    pub fn user_doc(&self, name: &str) -> Option<UserDoc> {
        self.users.get(name).map(|user| UserDoc {
            name: name.to_string(),
            hash: user.hash.clone(),
            permissions: to_wire(&user.permissions),
        })
    }

    /// Every user, in name order.
    pub fn user_docs(&self) -> Vec<UserDoc> {
        self.users
            .keys()
            .filter_map(|name| self.user_doc(name))
            .collect()
    }

    /// The role as the meta API shows it.
    pub fn role_doc(&self, name: &str) -> Option<RoleDoc> {
        self.roles.get(name).map(|role| RoleDoc {
            name: name.to_string(),
            permissions: to_wire(&role.permissions),
            users: role.users.iter().cloned().collect(),
        })
    }

    /// The roles whose `users` list holds `user`, in name order, as the meta API shows them.
    pub fn roles_of(&self, user: &str) -> Vec<RoleDoc> {
        self.roles
            .iter()
            .filter(|(_, role)| role.users.contains(user))
            .filter_map(|(name, _)| self.role_doc(name))
            .collect()
    }

    /// Every role, in name order.
    pub fn role_docs(&self) -> Vec<RoleDoc> {
        self.roles
            .keys()
            .filter_map(|name| self.role_doc(name))
            .collect()
    }

    /// The state the documents describe; the reverse of `user_docs` and `role_docs`.
    pub fn from_docs(users: &[UserDoc], roles: &[RoleDoc]) -> State {
        State {
            users: users
                .iter()
                .map(|doc| {
                    let user = User {
                        hash: doc.hash.clone(),
                        permissions: from_wire(&doc.permissions),
                    };
                    (doc.name.clone(), user)
                })
                .collect(),
            roles: roles
                .iter()
                .map(|doc| {
                    let role = Role {
                        permissions: from_wire(&doc.permissions),
                        users: doc.users.iter().cloned().collect(),
                    };
                    (doc.name.clone(), role)
                })
                .collect(),
        }
    }

    fn user_mut(&mut self, name: &str) -> Result<&mut User, StoreError> {
        self.users
            .get_mut(name)
            .ok_or_else(|| StoreError::UserNotFound(name.to_string()))
    }

    fn role_mut(&mut self, name: &str) -> Result<&mut Role, StoreError> {
        self.roles
            .get_mut(name)
            .ok_or_else(|| StoreError::RoleNotFound(name.to_string()))
    }
}

/// What the first user gets while the store is empty: every permission after
/// `NoPermissions`, on every database (SPEC §8).
pub fn bootstrap_grants() -> Grants {
    let all = meta_api::PERMISSIONS
        .iter()
        .skip(1)
        .map(|p| p.to_string())
        .collect();
    BTreeMap::from([(String::new(), all)])
}

/// Wire permissions as sets; the caller has checked every token.
pub fn from_wire(permissions: &Permissions) -> Grants {
    permissions
        .iter()
        .map(|(scope, tokens)| (scope.clone(), tokens.iter().cloned().collect()))
        .collect()
}

fn to_wire(grants: &Grants) -> Permissions {
    grants
        .iter()
        .map(|(scope, tokens)| (scope.clone(), tokens.iter().cloned().collect()))
        .collect()
}

fn add_grants(into: &mut Grants, added: &Grants) {
    for (scope, tokens) in added {
        into.entry(scope.clone())
            .or_default()
            .extend(tokens.iter().cloned());
    }
    into.retain(|_, tokens| !tokens.is_empty());
}

fn remove_grants(from: &mut Grants, removed: &Grants) {
    for (scope, tokens) in removed {
        if let Some(held) = from.get_mut(scope) {
            held.retain(|token| !tokens.contains(token));
        }
    }
    // An emptied scope disappears, so documents never show `"db": []`.
    from.retain(|_, tokens| !tokens.is_empty());
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Grants from `(scope, tokens)` pairs; also used by `audit.rs`'s tests.
    pub(in crate::meta_server) fn grants(pairs: &[(&str, &[&str])]) -> Grants {
        pairs
            .iter()
            .map(|(scope, tokens)| {
                (
                    scope.to_string(),
                    tokens.iter().map(|t| t.to_string()).collect(),
                )
            })
            .collect()
    }

    fn s(text: &str) -> String {
        text.to_string()
    }

    fn run(mutations: &[Mutation]) -> Result<State, StoreError> {
        mutations
            .iter()
            .try_fold(State::default(), |state, m| state.apply(m))
    }

    #[test]
    fn affected_users_are_those_whose_password_or_grants_may_change() {
        let base = run(&[
            create_user("alice"),
            create_user("bob"),
            create_user("carol"),
            Mutation::CreateRole {
                name: s("ops"),
                permissions: grants(&[("", &["KapacitorAPI"])]),
            },
            Mutation::AddRoleUsers {
                name: s("ops"),
                users: vec![s("alice"), s("bob")],
            },
        ])
        .unwrap();
        let check = |mutation: Mutation, expected: &[&str]| {
            let after = base.apply(&mutation).unwrap();
            let names = base.affected_users(&after);
            assert_eq!(
                names.iter().map(String::as_str).collect::<Vec<_>>(),
                expected,
                "{mutation:?}"
            );
        };
        check(create_user("dave"), &["dave"]);
        check(Mutation::DeleteUser { name: s("carol") }, &["carol"]);
        check(
            Mutation::ChangePassword {
                name: s("bob"),
                hash: s("h2"),
            },
            &["bob"],
        );
        check(
            Mutation::AddUserPermissions {
                name: s("carol"),
                permissions: grants(&[("", &["KapacitorAPI"])]),
            },
            &["carol"],
        );
        check(
            Mutation::RemoveRolePermissions {
                name: s("ops"),
                permissions: grants(&[("", &["KapacitorAPI"])]),
            },
            &["alice", "bob"],
        );
        check(Mutation::DeleteRole { name: s("ops") }, &["alice", "bob"]);
        check(
            Mutation::RemoveRoleUsers {
                name: s("ops"),
                users: vec![s("bob")],
            },
            &["alice", "bob"],
        );
        check(
            Mutation::AddRoleUsers {
                name: s("ops"),
                users: vec![s("carol")],
            },
            &["alice", "bob", "carol"],
        );
        check(
            Mutation::CreateRole {
                name: s("empty"),
                permissions: Grants::new(),
            },
            &[],
        );
        // Re-adding a permission a user holds changes nothing.
        assert!(base.affected_users(&base.clone()).is_empty());
    }

    fn create_user(name: &str) -> Mutation {
        Mutation::CreateUser {
            name: s(name),
            hash: s("h"),
            permissions: Grants::new(),
        }
    }

    fn create_role(name: &str) -> Mutation {
        Mutation::CreateRole {
            name: s(name),
            permissions: Grants::new(),
        }
    }

    #[test]
    fn mutations_that_do_not_fit_are_refused_and_named() {
        let cases: Vec<(Vec<Mutation>, StoreError)> = vec![
            (
                vec![create_user("a"), create_user("a")],
                StoreError::UserExists(s("a")),
            ),
            (
                vec![Mutation::DeleteUser { name: s("x") }],
                StoreError::UserNotFound(s("x")),
            ),
            (
                vec![Mutation::ChangePassword {
                    name: s("x"),
                    hash: s("h"),
                }],
                StoreError::UserNotFound(s("x")),
            ),
            (
                vec![Mutation::AddUserPermissions {
                    name: s("x"),
                    permissions: Grants::new(),
                }],
                StoreError::UserNotFound(s("x")),
            ),
            (
                vec![create_role("r"), create_role("r")],
                StoreError::RoleExists(s("r")),
            ),
            (
                vec![Mutation::DeleteRole { name: s("r") }],
                StoreError::RoleNotFound(s("r")),
            ),
            (
                vec![Mutation::AddRoleUsers {
                    name: s("r"),
                    users: vec![],
                }],
                StoreError::RoleNotFound(s("r")),
            ),
            (
                vec![
                    create_role("r"),
                    Mutation::AddRoleUsers {
                        name: s("r"),
                        users: vec![s("ghost")],
                    },
                ],
                StoreError::UserNotFound(s("ghost")),
            ),
        ];
        for (mutations, expected) in cases {
            assert_eq!(run(&mutations), Err(expected), "{mutations:?}");
        }
        let bootstrap = |name: &str| Mutation::Bootstrap {
            name: s(name),
            hash: s("h"),
        };
        assert_eq!(
            run(&[bootstrap("a"), bootstrap("b")]),
            Err(StoreError::NotEmpty)
        );
        assert_eq!(
            run(&[bootstrap("a")]).unwrap().users["a"].permissions,
            bootstrap_grants()
        );
        assert_eq!(
            StoreError::UserNotFound(s("x")).to_string(),
            "user \"x\" not found"
        );
        assert_eq!(
            StoreError::RoleNotFound(s("x")).to_string(),
            "role \"x\" not found"
        );
        assert_eq!(
            StoreError::UserExists(s("x")).to_string(),
            "user \"x\" already exists"
        );
    }

    #[test]
    fn permissions_are_added_and_removed_per_scope_and_empty_scopes_vanish() {
        let state = run(&[
            create_user("u"),
            Mutation::AddUserPermissions {
                name: s("u"),
                permissions: grants(&[
                    ("", &["KapacitorAPI", "KapacitorConfigAPI"]),
                    ("db1", &["ReadData"]),
                ]),
            },
            Mutation::RemoveUserPermissions {
                name: s("u"),
                permissions: grants(&[
                    ("", &["KapacitorConfigAPI"]),
                    ("db1", &["ReadData"]),
                    ("nope", &["X"]),
                ]),
            },
        ])
        .unwrap();
        assert_eq!(
            state.users["u"].permissions,
            grants(&[("", &["KapacitorAPI"])])
        );
    }

    #[test]
    fn holds_checks_direct_and_role_permissions_on_the_resource_or_everywhere() {
        let state = run(&[
            create_user("u"),
            create_user("v"),
            Mutation::AddUserPermissions {
                name: s("u"),
                permissions: grants(&[("db1", &["ReadData"])]),
            },
            create_role("r"),
            Mutation::AddRolePermissions {
                name: s("r"),
                permissions: grants(&[("", &["WriteData"])]),
            },
            Mutation::AddRoleUsers {
                name: s("r"),
                users: vec![s("u")],
            },
        ])
        .unwrap();
        let cases = [
            ("u", "NoPermissions", "_", true),
            ("ghost", "NoPermissions", "_", false),
            ("u", "ReadData", "db1", true),
            ("u", "ReadData", "db2", false),
            ("u", "WriteData", "db2", true),
            ("v", "WriteData", "db2", false),
            ("v", "ReadData", "db1", false),
        ];
        for (user, permission, resource, expected) in cases {
            assert_eq!(
                state.holds(user, permission, resource),
                expected,
                "{user} {permission} {resource}"
            );
        }
    }

    #[test]
    fn deleting_a_user_removes_it_from_every_role() {
        let state = run(&[
            create_user("u"),
            create_role("r"),
            Mutation::AddRoleUsers {
                name: s("r"),
                users: vec![s("u")],
            },
            Mutation::DeleteUser { name: s("u") },
            create_user("u"),
        ])
        .unwrap();
        assert!(state.roles["r"].users.is_empty());
    }

    #[test]
    fn documents_round_trip_through_the_state() {
        let state = run(&[
            create_user("u"),
            Mutation::AddUserPermissions {
                name: s("u"),
                permissions: grants(&[("", &["KapacitorAPI"])]),
            },
            create_role("r"),
            Mutation::AddRoleUsers {
                name: s("r"),
                users: vec![s("u")],
            },
        ])
        .unwrap();
        let back = State::from_docs(&state.user_docs(), &state.role_docs());
        assert_eq!(back, state);
    }

    #[test]
    fn bootstrap_grants_every_permission_but_no_permissions() {
        let granted = bootstrap_grants();
        assert_eq!(granted[""].len(), 18);
        assert!(!granted[""].contains("NoPermissions"));
        assert!(granted[""].contains("CreateUserAndRole"));
    }

    #[test]
    fn debug_output_never_shows_a_hash() {
        let hash = "$2a$04$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234";
        let mutation = Mutation::CreateUser {
            name: s("u"),
            hash: s(hash),
            permissions: Grants::new(),
        };
        let state = State::default().apply(&mutation).unwrap();
        let user_doc = state.user_doc("u").unwrap();
        for shown in [
            format!("{mutation:?}"),
            format!("{state:?}"),
            format!("{user_doc:?}"),
        ] {
            assert!(!shown.contains("$2a$"), "{shown}");
        }
        assert_eq!(format!("{mutation:?}"), "CreateUser(\"u\")");
    }
}

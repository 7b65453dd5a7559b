//! The audit trail of the meta API (kapauth): one `msg="meta change"` line for every
//! `POST /user` or `/role`, saying who asked (the actor), the action, the user or role it
//! named, the permissions or role members it added or removed, and the outcome. Built from
//! the validated `Mutation`, which holds a bcrypt hash but never shows it here; a body that
//! was refused or invalid is logged by its outcome alone, since what it held is unchecked
//! and might be a password in the wrong place. `describe` is pure; `emit` writes the line.

use super::store::{Grants, Mutation};
use crate::log;

/// What a mutation did, as the audit line names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The meta API's action word: `create`, `delete`, `change-password`, ...
    pub action: &'static str,
    /// `user` or `role`.
    pub entity: &'static str,
    pub name: String,
    /// `KapacitorAPI@*` for the every-database scope, `WriteData@mydb` for a database.
    pub permissions: Vec<String>,
    /// Role members added or removed.
    pub users: Vec<String>,
}

/// The change a mutation makes, without its hash.
pub fn describe(mutation: &Mutation) -> Change {
    let change = |action, entity, name: &String| Change {
        action,
        entity,
        name: name.clone(),
        permissions: Vec::new(),
        users: Vec::new(),
    };
    let with_permissions = |action, entity, name: &String, grants: &Grants| Change {
        permissions: permissions(grants),
        ..change(action, entity, name)
    };
    let with_users = |action, name: &String, users: &[String]| Change {
        users: users.to_vec(),
        ..change(action, "role", name)
    };
    match mutation {
        // The first user gets every permission; the line says so rather than listing 18.
        Mutation::Bootstrap { name, .. } => Change {
            permissions: vec!["(every permission: first user)".to_string()],
            ..change("create", "user", name)
        },
        Mutation::CreateUser {
            name, permissions, ..
        } => with_permissions("create", "user", name, permissions),
        Mutation::DeleteUser { name } => change("delete", "user", name),
        Mutation::ChangePassword { name, .. } => change("change-password", "user", name),
        Mutation::AddUserPermissions { name, permissions } => {
            with_permissions("add-permissions", "user", name, permissions)
        }
        Mutation::RemoveUserPermissions { name, permissions } => {
            with_permissions("remove-permissions", "user", name, permissions)
        }
        Mutation::CreateRole { name, permissions } => {
            with_permissions("create", "role", name, permissions)
        }
        Mutation::DeleteRole { name } => change("delete", "role", name),
        Mutation::AddRolePermissions { name, permissions } => {
            with_permissions("add-permissions", "role", name, permissions)
        }
        Mutation::RemoveRolePermissions { name, permissions } => {
            with_permissions("remove-permissions", "role", name, permissions)
        }
        Mutation::AddRoleUsers { name, users } => with_users("add-users", name, users),
        Mutation::RemoveRoleUsers { name, users } => with_users("remove-users", name, users),
    }
}

/// Writes the audit line of a change that was asked for. `change` is `None` when the
/// request never became a valid mutation (refused, or an invalid body); `outcome` is
/// `ok` or what went wrong, with the answer's status.
pub fn emit(actor: &str, entity_path: &str, change: Option<&Change>, outcome: &str) {
    let mut line = log::info("meta change")
        .field("service", "meta")
        .field("actor", actor);
    match change {
        Some(change) => {
            line = line
                .field("action", change.action)
                .field(change.entity, &change.name);
            if !change.permissions.is_empty() {
                line = line.field("permissions", change.permissions.join(","));
            }
            if !change.users.is_empty() {
                line = line.field("users", change.users.join(","));
            }
        }
        None => line = line.field("path", entity_path),
    }
    line.field("outcome", outcome).emit();
}

fn permissions(grants: &Grants) -> Vec<String> {
    grants
        .iter()
        .flat_map(|(scope, tokens)| {
            let scope = if scope.is_empty() {
                "*"
            } else {
                scope.as_str()
            };
            tokens.iter().map(move |token| format!("{token}@{scope}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta_server::store::tests::grants;

    fn check(mutation: Mutation, expected: (&str, &str, &str, &[&str], &[&str])) {
        let change = describe(&mutation);
        let (action, entity, name, permissions, users) = expected;
        assert_eq!(
            (
                change.action,
                change.entity,
                change.name.as_str(),
                change
                    .permissions
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>(),
                change.users.iter().map(String::as_str).collect::<Vec<_>>(),
            ),
            (action, entity, name, permissions.to_vec(), users.to_vec()),
            "{mutation:?}"
        );
        let shown = format!("{change:?}");
        assert!(!shown.contains("$2a$"), "a hash in {shown}");
    }

    #[test]
    fn every_mutation_is_described_without_its_hash() {
        let s = |text: &str| text.to_string();
        let hash = s("$2a$04$abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123");
        let kapacitor = grants(&[("", &["KapacitorAPI"]), ("db1", &["WriteData"])]);
        let both: &[&str] = &["KapacitorAPI@*", "WriteData@db1"];
        let none: &[&str] = &[];
        check(
            Mutation::Bootstrap {
                name: s("admin"),
                hash: hash.clone(),
            },
            (
                "create",
                "user",
                "admin",
                &["(every permission: first user)"],
                none,
            ),
        );
        check(
            Mutation::CreateUser {
                name: s("bob"),
                hash: hash.clone(),
                permissions: kapacitor.clone(),
            },
            ("create", "user", "bob", both, none),
        );
        check(
            Mutation::DeleteUser { name: s("bob") },
            ("delete", "user", "bob", none, none),
        );
        check(
            Mutation::ChangePassword {
                name: s("bob"),
                hash,
            },
            ("change-password", "user", "bob", none, none),
        );
        check(
            Mutation::AddUserPermissions {
                name: s("bob"),
                permissions: kapacitor.clone(),
            },
            ("add-permissions", "user", "bob", both, none),
        );
        check(
            Mutation::RemoveUserPermissions {
                name: s("bob"),
                permissions: kapacitor.clone(),
            },
            ("remove-permissions", "user", "bob", both, none),
        );
        check(
            Mutation::CreateRole {
                name: s("ops"),
                permissions: kapacitor.clone(),
            },
            ("create", "role", "ops", both, none),
        );
        check(
            Mutation::DeleteRole { name: s("ops") },
            ("delete", "role", "ops", none, none),
        );
        check(
            Mutation::AddRolePermissions {
                name: s("ops"),
                permissions: kapacitor.clone(),
            },
            ("add-permissions", "role", "ops", both, none),
        );
        check(
            Mutation::RemoveRolePermissions {
                name: s("ops"),
                permissions: kapacitor,
            },
            ("remove-permissions", "role", "ops", both, none),
        );
        check(
            Mutation::AddRoleUsers {
                name: s("ops"),
                users: vec![s("bob"), s("carol")],
            },
            ("add-users", "role", "ops", none, &["bob", "carol"]),
        );
        check(
            Mutation::RemoveRoleUsers {
                name: s("ops"),
                users: vec![s("bob")],
            },
            ("remove-users", "role", "ops", none, &["bob"]),
        );
    }
}

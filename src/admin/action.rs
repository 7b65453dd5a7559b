//! What one `kapauth user` or `kapauth role` command asks of the meta API (SPEC §8): an
//! `Operation` read from the command line, validated on construction (a `Permission` is
//! one of the 19 tokens), and the exact `POST /user` or `POST /role` body it sends, in the
//! InfluxDB Enterprise meta API's shape. Pure: no I/O; the password comes in as an
//! argument. The seed documents' curl examples get three things wrong (a role created
//! under `"user"`, a trailing comma in that body, a role's `add-permissions` posted to
//! `/user`); the bodies here are built by serde_json, so each goes under its own key, to
//! its own path, as valid JSON.

use serde_json::{Value, json};

use crate::meta_api::PERMISSIONS;
use crate::secret::SecretText;
use crate::secret::password::Password;

/// Users or roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    User,
    Role,
}

impl Kind {
    /// The word in the meta API's paths, bodies and in messages.
    pub fn word(self) -> &'static str {
        match self {
            Kind::User => "user",
            Kind::Role => "role",
        }
    }
}

/// One of the 19 permission tokens; the only way to build one is `Permission::parse`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permission(&'static str);

impl Permission {
    /// The token named exactly (tokens are case-sensitive in the meta API), or an error
    /// that lists every token and suggests the one meant when only the case differs.
    pub fn parse(text: &str) -> Result<Permission, UnknownPermission> {
        PERMISSIONS
            .iter()
            .find(|token| **token == text)
            .map(|token| Permission(token))
            .ok_or_else(|| UnknownPermission(text.to_string()))
    }

    pub fn as_str(self) -> &'static str {
        self.0
    }
}

/// A permission name that is not one of the 19 tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownPermission(pub String);

impl std::fmt::Display for UnknownPermission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = &self.0;
        write!(f, "unknown permission {name:?}")?;
        if let Some(token) = PERMISSIONS
            .iter()
            .find(|token| token.eq_ignore_ascii_case(name))
        {
            write!(f, " (did you mean {token}?)")?;
        }
        write!(f, "; the permissions are {}", PERMISSIONS.join(", "))
    }
}

/// Adding or taking away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Add,
    Remove,
}

/// What a command asks for, as read from the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// `user add NAME`: create a user with a password read at run time.
    CreateUser { name: String },
    /// `user passwd NAME`: set a password read at run time.
    ChangePassword { name: String },
    /// `role add NAME`.
    CreateRole { name: String },
    /// `user rm NAME`, `role rm NAME`.
    Delete { kind: Kind, name: String },
    /// `user|role grant|revoke NAME PERMISSION [--db DB]`; an empty database is every
    /// database (the meta API's `""` scope).
    Permissions {
        change: Change,
        kind: Kind,
        name: String,
        permission: Permission,
        database: String,
    },
    /// `role add-user ROLE USER`, `role remove-user ROLE USER`.
    Members {
        change: Change,
        role: String,
        user: String,
    },
    /// `user list`, `role list`.
    List(Kind),
}

/// What an operation sends: a read of every user or role, or one change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `GET /user` (with `GET /role` for the roles column) or `GET /role`.
    List(Kind),
    /// A `POST` of `body`, JSON, to `path`. The body may hold a password, so its `Debug`
    /// prints `***`.
    Post {
        path: &'static str,
        body: SecretText,
    },
}

impl Operation {
    /// The user whose password the command reads before it sends anything, if any.
    pub fn password_for(&self) -> Option<&str> {
        match self {
            Operation::CreateUser { name } | Operation::ChangePassword { name } => Some(name),
            _ => None,
        }
    }

    /// The request this operation makes. `password` is sent by the two operations that
    /// need one (`password_for`) and ignored by the others.
    pub fn request(&self, password: Option<&Password>) -> Request {
        let password = password.map(Password::as_str).unwrap_or_default();
        let (kind, action, object) = match self {
            Operation::CreateUser { name } => (
                Kind::User,
                "create",
                json!({"name": name, "password": password}),
            ),
            Operation::ChangePassword { name } => (
                Kind::User,
                "change-password",
                json!({"name": name, "password": password}),
            ),
            Operation::CreateRole { name } => (Kind::Role, "create", json!({"name": name})),
            Operation::Delete { kind, name } => (*kind, "delete", json!({"name": name})),
            Operation::Permissions {
                change,
                kind,
                name,
                permission,
                database,
            } => (
                *kind,
                match change {
                    Change::Add => "add-permissions",
                    Change::Remove => "remove-permissions",
                },
                json!({"name": name, "permissions": {database: [permission.as_str()]}}),
            ),
            Operation::Members { change, role, user } => (
                Kind::Role,
                match change {
                    Change::Add => "add-users",
                    Change::Remove => "remove-users",
                },
                json!({"name": role, "users": [user]}),
            ),
            Operation::List(kind) => return Request::List(*kind),
        };
        let mut body = serde_json::Map::new();
        body.insert("action".to_string(), Value::from(action));
        body.insert(kind.word().to_string(), object);
        Request::Post {
            path: match kind {
                Kind::User => "/user",
                Kind::Role => "/role",
            },
            body: SecretText::new(Value::Object(body).to_string()),
        }
    }

    /// What was attempted, for an error: `create user "johndoe"`.
    pub fn attempt(&self) -> String {
        let ((verb, _), rest) = self.phrase();
        format!("{verb} {rest}")
    }

    /// What was done, printed on success: `created user "johndoe"`.
    pub fn outcome(&self) -> String {
        let ((_, verb), rest) = self.phrase();
        format!("{verb} {rest}")
    }

    /// A message's verb, present and past, and the words after it.
    fn phrase(&self) -> ((&'static str, &'static str), String) {
        const CREATE: (&str, &str) = ("create", "created");
        const DELETE: (&str, &str) = ("delete", "deleted");
        match self {
            Operation::CreateUser { name } => (CREATE, format!("user {name:?}")),
            Operation::ChangePassword { name } => (
                ("change", "changed"),
                format!("the password of user {name:?}"),
            ),
            Operation::CreateRole { name } => (CREATE, format!("role {name:?}")),
            Operation::Delete { kind, name } => (DELETE, format!("{} {name:?}", kind.word())),
            Operation::Permissions {
                change,
                kind,
                name,
                permission,
                database,
            } => {
                let permission = permission.as_str();
                let scope = if database.is_empty() {
                    "on all databases".to_string()
                } else {
                    format!("on database {database:?}")
                };
                let kind = kind.word();
                match change {
                    Change::Add => (
                        ("grant", "granted"),
                        format!("{permission} {scope} to {kind} {name:?}"),
                    ),
                    Change::Remove => (
                        ("revoke", "revoked"),
                        format!("{permission} {scope} from {kind} {name:?}"),
                    ),
                }
            }
            Operation::Members { change, role, user } => match change {
                Change::Add => (("add", "added"), format!("user {user:?} to role {role:?}")),
                Change::Remove => (
                    ("remove", "removed"),
                    format!("user {user:?} from role {role:?}"),
                ),
            },
            Operation::List(kind) => (("list", "listed"), format!("{}s", kind.word())),
        }
    }
}

/// Operations built in a line, for the table tests here and in `args.rs`.
#[cfg(test)]
pub(super) mod examples {
    use super::*;

    pub fn create_user(name: &str) -> Operation {
        Operation::CreateUser {
            name: name.to_string(),
        }
    }

    pub fn passwd(name: &str) -> Operation {
        Operation::ChangePassword {
            name: name.to_string(),
        }
    }

    pub fn create_role(name: &str) -> Operation {
        Operation::CreateRole {
            name: name.to_string(),
        }
    }

    pub fn delete(kind: Kind, name: &str) -> Operation {
        Operation::Delete {
            kind,
            name: name.to_string(),
        }
    }

    pub fn grant(kind: Kind, name: &str, token: &str, database: &str) -> Operation {
        permissions(Change::Add, kind, name, token, database)
    }

    pub fn revoke(kind: Kind, name: &str, token: &str, database: &str) -> Operation {
        permissions(Change::Remove, kind, name, token, database)
    }

    pub fn members(change: Change, role: &str, user: &str) -> Operation {
        Operation::Members {
            change,
            role: role.to_string(),
            user: user.to_string(),
        }
    }

    fn permissions(
        change: Change,
        kind: Kind,
        name: &str,
        token: &str,
        database: &str,
    ) -> Operation {
        Operation::Permissions {
            change,
            kind,
            name: name.to_string(),
            permission: Permission::parse(token).expect("a known token"),
            database: database.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::examples::*;
    use super::*;

    /// The POST an operation makes with the password `pa5sw0Rd`, as path and body, or
    /// `None` for a list.
    fn check(operation: Operation, expected: Option<(&str, &str)>) {
        let password = Password::new("pa5sw0Rd".to_string());
        let actual = match operation.request(Some(&password)) {
            Request::Post { path, body } => Some((path, body)),
            Request::List(kind) => {
                assert_eq!(operation, Operation::List(kind));
                None
            }
        };
        let actual = actual.as_ref().map(|(path, body)| (*path, body.expose()));
        assert_eq!(actual, expected, "{operation:?}");
        if let Some((_, body)) = expected {
            serde_json::from_str::<Value>(body).expect("every body is valid JSON");
        }
    }

    #[test]
    #[rustfmt::skip]
    fn each_operation_posts_the_enterprise_body_to_its_own_path() {
        use Kind::*;
        check(create_user("johndoe"), Some(("/user", r#"{"action":"create","user":{"name":"johndoe","password":"pa5sw0Rd"}}"#)));
        check(passwd("straka"), Some(("/user", r#"{"action":"change-password","user":{"name":"straka","password":"pa5sw0Rd"}}"#)));
        check(delete(User, "straka"), Some(("/user", r#"{"action":"delete","user":{"name":"straka"}}"#)));
        check(grant(User, "johndoe", "KapacitorAPI", ""), Some(("/user", r#"{"action":"add-permissions","user":{"name":"johndoe","permissions":{"":["KapacitorAPI"]}}}"#)));
        check(revoke(User, "johndoe", "WriteData", "telegraf"), Some(("/user", r#"{"action":"remove-permissions","user":{"name":"johndoe","permissions":{"telegraf":["WriteData"]}}}"#)));
        // The seed creates a role under "user", with a trailing comma: here it is a role.
        check(create_role("kapacitor"), Some(("/role", r#"{"action":"create","role":{"name":"kapacitor"}}"#)));
        check(delete(Role, "delete-me-role"), Some(("/role", r#"{"action":"delete","role":{"name":"delete-me-role"}}"#)));
        // The seed posts a role's add-permissions to /user: here it goes to /role.
        check(grant(Role, "kapacitor", "KapacitorConfigAPI", ""), Some(("/role", r#"{"action":"add-permissions","role":{"name":"kapacitor","permissions":{"":["KapacitorConfigAPI"]}}}"#)));
        check(revoke(Role, "kapacitor", "ReadData", "db1"), Some(("/role", r#"{"action":"remove-permissions","role":{"name":"kapacitor","permissions":{"db1":["ReadData"]}}}"#)));
        check(members(Change::Add, "test-role", "sova"), Some(("/role", r#"{"action":"add-users","role":{"name":"test-role","users":["sova"]}}"#)));
        check(members(Change::Remove, "test-role", "tucnak"), Some(("/role", r#"{"action":"remove-users","role":{"name":"test-role","users":["tucnak"]}}"#)));
        check(Operation::List(User), None);
        check(Operation::List(Role), None);
    }

    #[test]
    fn names_and_passwords_are_json_escaped_not_pasted() {
        let tricky = Operation::CreateUser {
            name: "a\"b\\c\n".to_string(),
        };
        let password = Password::new("p\"w}".to_string());
        let Request::Post { body, .. } = tricky.request(Some(&password)) else {
            panic!("a create is a change");
        };
        let body: Value = serde_json::from_str(body.expose()).expect("valid JSON");
        assert_eq!(body["user"]["name"], "a\"b\\c\n");
        assert_eq!(body["user"]["password"], "p\"w}");
    }

    #[test]
    fn only_create_and_passwd_read_a_password() {
        let cases = [
            (Operation::CreateUser { name: "a".into() }, Some("a")),
            (Operation::ChangePassword { name: "b".into() }, Some("b")),
            (Operation::CreateRole { name: "a".into() }, None),
            (
                Operation::Delete {
                    kind: Kind::User,
                    name: "a".into(),
                },
                None,
            ),
            (grant(Kind::User, "a", "ReadData", ""), None),
            (members(Change::Add, "r", "a"), None),
            (Operation::List(Kind::User), None),
        ];
        for (operation, expected) in cases {
            assert_eq!(operation.password_for(), expected, "{operation:?}");
        }
    }

    #[test]
    fn permissions_are_the_19_tokens_exactly() {
        fn check_parse(text: &str, expected: Result<&str, &str>) {
            let actual = Permission::parse(text)
                .map(Permission::as_str)
                .map_err(|error| error.to_string());
            assert_eq!(actual, expected.map_err(str::to_string), "{text:?}");
        }
        let all = PERMISSIONS.join(", ");
        for token in PERMISSIONS {
            check_parse(token, Ok(token));
        }
        check_parse(
            "kapacitorapi",
            Err(&format!(
                "unknown permission \"kapacitorapi\" (did you mean KapacitorAPI?); the permissions are {all}"
            )),
        );
        check_parse(
            "Admin",
            Err(&format!(
                "unknown permission \"Admin\"; the permissions are {all}"
            )),
        );
        check_parse(
            "",
            Err(&format!(
                "unknown permission \"\"; the permissions are {all}"
            )),
        );
    }

    #[test]
    fn messages_name_the_operation_and_its_scope() {
        let cases = [
            (
                grant(Kind::User, "johndoe", "KapacitorAPI", ""),
                "grant KapacitorAPI on all databases to user \"johndoe\"",
                "granted KapacitorAPI on all databases to user \"johndoe\"",
            ),
            (
                revoke(Kind::Role, "r", "WriteData", "db1"),
                "revoke WriteData on database \"db1\" from role \"r\"",
                "revoked WriteData on database \"db1\" from role \"r\"",
            ),
            (
                members(Change::Add, "penguin", "tux"),
                "add user \"tux\" to role \"penguin\"",
                "added user \"tux\" to role \"penguin\"",
            ),
            (
                Operation::ChangePassword {
                    name: "straka".into(),
                },
                "change the password of user \"straka\"",
                "changed the password of user \"straka\"",
            ),
            (
                Operation::Delete {
                    kind: Kind::Role,
                    name: "r".into(),
                },
                "delete role \"r\"",
                "deleted role \"r\"",
            ),
        ];
        for (operation, attempt, outcome) in cases {
            assert_eq!(operation.attempt(), attempt);
            assert_eq!(operation.outcome(), outcome);
        }
    }
}

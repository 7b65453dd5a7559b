//! The tables `kapauth user list` and `kapauth role list` print: one row per name and
//! database scope, columns aligned, the meta API's order kept. Pure. Never prints a hash:
//! a user's `hash` is not read here at all. A name that could be mistaken for another
//! cell (empty, holding blanks, control characters or quotes, or spelling a placeholder)
//! is printed quoted and escaped, so every name reads back unambiguously.

use crate::meta_api::{Permissions, RoleDoc, UserDoc};

/// What the `""` scope (every database) prints as.
const ALL_DATABASES: &str = "(all)";

/// What an empty cell prints as.
const NONE: &str = "-";

/// USER, ROLES, DATABASE, PERMISSIONS: the roles column lists every role whose users
/// hold the user, since kapauth merges their permissions in (SPEC §3, `resolve-roles`).
pub fn users(users: &[UserDoc], roles: &[RoleDoc]) -> String {
    let mut rows = vec![header(["USER", "ROLES", "DATABASE", "PERMISSIONS"])];
    for user in users {
        let member_of: Vec<&str> = roles
            .iter()
            .filter(|role| role.users.contains(&user.name))
            .map(|role| role.name.as_str())
            .collect();
        rows.extend(scoped_rows(
            &user.name,
            &names(&member_of),
            &user.permissions,
        ));
    }
    render(rows, users.is_empty().then_some("(no users)"))
}

/// ROLE, USERS, DATABASE, PERMISSIONS.
pub fn roles(roles: &[RoleDoc]) -> String {
    let mut rows = vec![header(["ROLE", "USERS", "DATABASE", "PERMISSIONS"])];
    for role in roles {
        let users: Vec<&str> = role.users.iter().map(String::as_str).collect();
        rows.extend(scoped_rows(&role.name, &names(&users), &role.permissions));
    }
    render(rows, roles.is_empty().then_some("(no roles)"))
}

type Row = [String; 4];

fn header(titles: [&str; 4]) -> Row {
    titles.map(str::to_string)
}

/// The first row names the user or role and its members; each further scope gets a row of
/// its own with those two cells blank.
fn scoped_rows(name: &str, members: &str, permissions: &Permissions) -> Vec<Row> {
    let mut scopes = permissions.iter().filter(|(_, tokens)| !tokens.is_empty());
    let mut rows = Vec::new();
    let first = scopes.next();
    let (database, tokens) = match first {
        Some((database, tokens)) => (database_cell(database), tokens.join(",")),
        None => (NONE.to_string(), NONE.to_string()),
    };
    rows.push([cell(name), members.to_string(), database, tokens]);
    for (database, tokens) in scopes {
        rows.push([
            String::new(),
            String::new(),
            database_cell(database),
            tokens.join(","),
        ]);
    }
    rows
}

/// Names joined by commas, or `-` for none.
fn names(names: &[&str]) -> String {
    if names.is_empty() {
        return NONE.to_string();
    }
    names
        .iter()
        .map(|name| cell(name))
        .collect::<Vec<_>>()
        .join(",")
}

fn database_cell(database: &str) -> String {
    if database.is_empty() {
        ALL_DATABASES.to_string()
    } else {
        cell(database)
    }
}

/// A name as printed: as it is, or quoted and escaped when it could be misread.
fn cell(name: &str) -> String {
    let ambiguous = name.is_empty()
        || name == NONE
        || name == ALL_DATABASES
        || name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | ',' | '\\'));
    if ambiguous {
        format!("{name:?}")
    } else {
        name.to_string()
    }
}

/// Columns padded to the widest cell, two spaces apart, no trailing blanks.
fn render(rows: Vec<Row>, empty: Option<&str>) -> String {
    let mut widths = [0usize; 4];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (column, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if column + 1 < row.len() {
                let pad = widths[column] - cell.chars().count() + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    if let Some(empty) = empty {
        out.push_str(empty);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, permissions: &[(&str, &[&str])]) -> UserDoc {
        UserDoc {
            name: name.to_string(),
            hash: "$2a$04$SECRETHASHSECRETHASHSEuH6Lf6Iu8J0YxA1f5kSx1aYbKw6Y1yW".to_string(),
            permissions: scopes(permissions),
        }
    }

    fn role(name: &str, permissions: &[(&str, &[&str])], users: &[&str]) -> RoleDoc {
        RoleDoc {
            name: name.to_string(),
            permissions: scopes(permissions),
            users: users.iter().map(|u| u.to_string()).collect(),
        }
    }

    fn scopes(permissions: &[(&str, &[&str])]) -> Permissions {
        permissions
            .iter()
            .map(|(scope, tokens)| {
                (
                    scope.to_string(),
                    tokens.iter().map(|t| t.to_string()).collect(),
                )
            })
            .collect()
    }

    fn check_users(users: &[UserDoc], roles: &[RoleDoc], expected: &str) {
        let table = super::users(users, roles);
        assert_eq!(table, expected);
        assert!(!table.contains("SECRETHASH"), "a hash was printed");
    }

    fn check_roles(roles: &[RoleDoc], expected: &str) {
        assert_eq!(super::roles(roles), expected);
    }

    #[test]
    fn users_table_lists_scopes_row_by_row_with_roles_and_no_hash() {
        check_users(&[], &[], "USER  ROLES  DATABASE  PERMISSIONS\n(no users)\n");
        check_users(
            &[
                user("admin", &[("", &["CreateUserAndRole", "ViewAdmin"])]),
                user(
                    "johndoe",
                    &[
                        ("", &["KapacitorAPI", "KapacitorConfigAPI"]),
                        ("telegraf", &["WriteData"]),
                    ],
                ),
                user("tux", &[]),
            ],
            &[
                role("penguin", &[("", &["KapacitorAPI"])], &["tux", "johndoe"]),
                role("readers", &[], &["johndoe"]),
                role("empty", &[], &[]),
            ],
            "USER     ROLES            DATABASE  PERMISSIONS\n\
             admin    -                (all)     CreateUserAndRole,ViewAdmin\n\
             johndoe  penguin,readers  (all)     KapacitorAPI,KapacitorConfigAPI\n\
             \x20                         telegraf  WriteData\n\
             tux      penguin          -         -\n",
        );
    }

    #[test]
    fn roles_table_lists_members_and_scopes() {
        check_roles(&[], "ROLE  USERS  DATABASE  PERMISSIONS\n(no roles)\n");
        check_roles(
            &[
                role(
                    "kapacitor",
                    &[("", &["KapacitorAPI", "KapacitorConfigAPI"])],
                    &[],
                ),
                role(
                    "penguin",
                    &[("db1", &["ReadData"]), ("db2", &["WriteData"])],
                    &["tux", "sova"],
                ),
            ],
            "ROLE       USERS     DATABASE  PERMISSIONS\n\
             kapacitor  -         (all)     KapacitorAPI,KapacitorConfigAPI\n\
             penguin    tux,sova  db1       ReadData\n\
             \x20                    db2       WriteData\n",
        );
    }

    #[test]
    fn names_that_could_be_misread_are_quoted() {
        let cases = [
            ("johndoe", "johndoe"),
            ("", "\"\""),
            ("-", "\"-\""),
            ("(all)", "\"(all)\""),
            ("two words", "\"two words\""),
            ("a,b", "\"a,b\""),
            ("tab\there", "\"tab\\there\""),
            ("esc\u{1b}[31m", "\"esc\\u{1b}[31m\""),
            ("quote\"d", "\"quote\\\"d\""),
            ("ünïcode", "ünïcode"),
        ];
        for (name, expected) in cases {
            assert_eq!(cell(name), expected, "{name:?}");
        }
    }

    #[test]
    fn an_empty_scope_list_is_not_a_row() {
        check_users(
            &[user("a", &[("db1", &[]), ("db2", &["ReadData"])])],
            &[],
            "USER  ROLES  DATABASE  PERMISSIONS\na     -      db2       ReadData\n",
        );
    }
}

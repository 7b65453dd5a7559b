//! Wire types of the InfluxDB Enterprise meta API's user and role endpoints (SPEC §4, §8),
//! shared by the gateway's meta client and the meta server, and the permission tokens.
//! Serde lives here and nowhere deeper: both sides turn these into their own types.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

/// Permissions by scope: a database name, or `""` for every database.
pub type Permissions = BTreeMap<String, Vec<String>>;

/// `GET /user` and `GET /user?name=N`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsersDoc {
    #[serde(default)]
    pub users: Vec<UserDoc>,
}

/// One user as the meta API shows it. Unknown fields are ignored (SPEC §4). Its `Debug`
/// never shows the hash.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserDoc {
    pub name: String,
    /// A bcrypt hash; empty when the meta node delegates the password to LDAP.
    #[serde(default)]
    pub hash: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub permissions: Permissions,
}

impl std::fmt::Debug for UserDoc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserDoc")
            .field("name", &self.name)
            .field("hash", &"***")
            .field("permissions", &self.permissions)
            .finish()
    }
}

/// `GET /role` and `GET /role?name=N`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolesDoc {
    #[serde(default)]
    pub roles: Vec<RoleDoc>,
}

/// One role as the meta API shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleDoc {
    pub name: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub permissions: Permissions,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
}

/// `GET /show-cluster`: the cluster as InfluxDB Enterprise's meta API lists it, which
/// Chronograf reads to accept a meta URL as an Enterprise source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterDoc {
    /// kapauth stores no data, so it lists no data nodes: always `[]`.
    pub data: [NodeDoc; 0],
    pub meta: Vec<NodeDoc>,
}

/// One meta node of `GET /show-cluster`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeDoc {
    pub id: u64,
    /// The HTTP address of the meta API.
    pub addr: String,
    /// `http` or `https`.
    #[serde(rename = "httpScheme")]
    pub http_scheme: String,
    /// Enterprise's Raft address; kapauth has none, so it is empty.
    #[serde(rename = "tcpAddr")]
    pub tcp_addr: String,
}

/// `{"error":"…"}`, the meta API's error body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDoc {
    pub error: String,
}

/// The 19 permission tokens of InfluxDB Enterprise, `NoPermissions` first (SPEC §8).
pub const PERMISSIONS: [&str; 19] = [
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
];

/// Whether `name` is one of the 19 tokens.
pub fn is_permission(name: &str) -> bool {
    PERMISSIONS.contains(&name)
}

/// The body of `POST /user` and `POST /role`: `{"action":…,"user":{…}}` or
/// `{"action":…,"role":{…}}`. Both objects are optional here so the server can say which
/// one was expected when the wrong one is sent.
#[derive(Clone, Default, Deserialize)]
pub struct ActionDoc {
    pub action: Option<String>,
    pub user: Option<EntityDoc>,
    pub role: Option<EntityDoc>,
}

/// The `user` or `role` object of an action; which fields an action needs is checked by
/// the meta server.
#[derive(Clone, Default, Deserialize)]
pub struct EntityDoc {
    pub name: Option<String>,
    pub password: Option<String>,
    #[serde(default, deserialize_with = "null_lists_as_empty")]
    pub permissions: Option<Permissions>,
    pub users: Option<Vec<String>>,
}

/// Reads a scope's `null` list as an empty one, as Go's encoding/json (and so the meta
/// API) does: Chronograf's `SetUserPerms` and `SetRolePerms` send `{"db":null}` for a scope
/// with nothing to add or remove.
fn null_lists_as_empty<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Permissions>, D::Error> {
    let wire: Option<BTreeMap<String, Option<Vec<String>>>> = Option::deserialize(deserializer)?;
    Ok(wire.map(|scopes| {
        scopes
            .into_iter()
            .map(|(scope, tokens)| (scope, tokens.unwrap_or_default()))
            .collect()
    }))
}

/// A 307's `Location` resolved against the URL that answered: absolute URLs as they are,
/// paths on the same scheme and host. Both meta clients (the gateway's and `kapauth
/// user|role`) follow redirects by hand with it, so the credentials go along.
pub fn resolve_location(current: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        return location.to_string();
    }
    let after_scheme = current.find("://").map_or(0, |i| i + 3);
    let origin_end = current[after_scheme..]
        .find('/')
        .map_or(current.len(), |i| after_scheme + i);
    format!("{}{location}", &current[..origin_end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_resolve_against_the_answering_url() {
        let cases = [
            (
                "http://m1:8091/user?name=a",
                "http://m2:8091/user?name=a",
                "http://m2:8091/user?name=a",
            ),
            (
                "http://m1:8091/user?name=a",
                "/user?name=a",
                "http://m1:8091/user?name=a",
            ),
            ("https://m1:8091/role", "/role", "https://m1:8091/role"),
            ("http://m1:8091", "/user", "http://m1:8091/user"),
        ];
        for (current, location, expected) in cases {
            assert_eq!(resolve_location(current, location), expected);
        }
    }
}

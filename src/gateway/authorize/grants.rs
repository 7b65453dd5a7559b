//! Meta permissions → privileges (SPEC §3): turns the (scope, permission) pairs a user holds,
//! directly or through roles, into `Grants`, the map resource → privilege set that the walk in
//! `authorize` reads. The rows of SPEC §3's table are data (`rules`), so `kapauth explain` can say
//! which permission each grant came from by reading the same rows.
//!
//! It never decides a request, never looks a user up and never reads the wire format of the meta
//! API: callers hand it plain pairs. The result never depends on the order of the pairs, so a user
//! whose permissions the meta node lists in another order keeps the same access.

use std::collections::BTreeMap;
use std::fmt;

/// One privilege, as Kapacitor names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Privilege {
    /// Needed by `HEAD`; every authenticated user has it (SPEC §2).
    None,
    /// Needed by `GET`.
    Read,
    /// Needed by `POST`, `PATCH` and `PUT`, and by a write to a database.
    Write,
    /// Needed by `DELETE`.
    Delete,
    /// Held on a resource, allows every privilege there.
    All,
}

/// A set of privileges held on one resource.
///
/// A set that holds `All` is stored as `{all}` alone: `All` allows everything, so the other
/// members could never change a decision, and one representation keeps equal grants equal.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PrivilegeSet {
    bits: u8,
}

/// The privileges of one user: resource → privilege set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    entries: BTreeMap<String, PrivilegeSet>,
}

impl Privilege {
    /// Kapacitor's name of the privilege, as client-visible texts show it.
    pub fn as_str(self) -> &'static str {
        match self {
            Privilege::None => "none",
            Privilege::Read => "read",
            Privilege::Write => "write",
            Privilege::Delete => "delete",
            Privilege::All => "all",
        }
    }

    /// The privilege's bit in a `PrivilegeSet`, in Kapacitor's order.
    const fn bit(self) -> u8 {
        match self {
            Privilege::None => 1,
            Privilege::Read => 2,
            Privilege::Write => 4,
            Privilege::Delete => 8,
            Privilege::All => 16,
        }
    }
}

impl PrivilegeSet {
    /// The set holding only `privilege`.
    pub const fn only(privilege: Privilege) -> PrivilegeSet {
        PrivilegeSet {
            bits: privilege.bit(),
        }
    }

    /// Every privilege of both sets.
    pub fn union(self, other: PrivilegeSet) -> PrivilegeSet {
        PrivilegeSet::normalized(self.bits | other.bits)
    }

    /// This set plus `privilege`.
    pub fn with(self, privilege: Privilege) -> PrivilegeSet {
        self.union(PrivilegeSet::only(privilege))
    }

    /// Whether `privilege` is a member of the set, `All` not counting for the others.
    pub fn contains(self, privilege: Privilege) -> bool {
        self.bits & privilege.bit() != 0
    }

    /// Kapacitor's test at the first resource of the walk that has an entry: the set holds the
    /// privilege, or holds `All`.
    pub fn allows(self, privilege: Privilege) -> bool {
        self.contains(privilege) || self.contains(Privilege::All)
    }

    /// The members, in Kapacitor's order.
    pub fn iter(self) -> impl Iterator<Item = Privilege> {
        EVERY_PRIVILEGE
            .into_iter()
            .filter(move |privilege| self.contains(*privilege))
    }

    /// Stores a set holding `All` as `{all}` alone, so equal grants compare equal.
    fn normalized(bits: u8) -> PrivilegeSet {
        if bits & Privilege::All.bit() != 0 {
            PrivilegeSet::only(Privilege::All)
        } else {
            PrivilegeSet { bits }
        }
    }
}

impl FromIterator<Privilege> for PrivilegeSet {
    fn from_iter<I: IntoIterator<Item = Privilege>>(privileges: I) -> PrivilegeSet {
        privileges
            .into_iter()
            .fold(PrivilegeSet { bits: 0 }, PrivilegeSet::with)
    }
}

impl fmt::Debug for PrivilegeSet {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("{")?;
        for (index, privilege) in self.iter().enumerate() {
            if index > 0 {
                formatter.write_str(", ")?;
            }
            formatter.write_str(privilege.as_str())?;
        }
        formatter.write_str("}")
    }
}

impl Grants {
    /// The grants of the (scope, permission) pairs: scope is a database name, or `""` for all
    /// databases; permission is a meta permission name such as `KapacitorAPI`. Each pair adds
    /// the rows `rules` gives its permission.
    ///
    /// Every rule adds privileges to an entry (a set union), and unions give the same result in
    /// any order. The one rule that is not a union is `KapacitorAPI`'s `/api/config`: none, which
    /// only fills an absent entry. It meets one other rule on that resource, `KapacitorConfigAPI`'s
    /// `/api/config`: all, and both orders end in `{all}`: config first leaves an entry that the
    /// default does not touch, default first gives `{none} ∪ {all}`, stored as `{all}`. Kapacitor
    /// itself replaces entries (`/api/ping`, `/api/write`, `/api/config` are set, not added to);
    /// every rule that replaces a resource writes the same set there, so its result equals ours.
    pub fn from_permissions<'a>(scoped: impl IntoIterator<Item = (&'a str, &'a str)>) -> Grants {
        let mut grants = Grants::default();
        for (scope, permission) in scoped {
            for rule in rules(permission) {
                let resource = rule.resource.of(scope);
                if rule.only_if_absent {
                    grants.add_if_absent(&resource, rule.privilege);
                } else {
                    grants.add(&resource, rule.privilege);
                }
            }
        }
        grants
    }

    /// Every entry, in resource order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, PrivilegeSet)> {
        self.entries
            .iter()
            .map(|(resource, privileges)| (resource.as_str(), *privileges))
    }

    /// The privilege set held on exactly `resource`, without looking at its parents.
    pub fn get(&self, resource: &str) -> Option<PrivilegeSet> {
        self.entries.get(resource).copied()
    }

    /// Grants holding exactly the given entries, for tests that need a walk Kapacitor's rules
    /// cannot produce.
    #[cfg(test)]
    pub(crate) fn from_entries(entries: &[(&str, &[Privilege])]) -> Grants {
        let entries = entries
            .iter()
            .map(|(resource, privileges)| {
                let privileges = privileges.iter().copied().collect::<PrivilegeSet>();
                ((*resource).to_owned(), privileges)
            })
            .collect();
        Grants { entries }
    }

    /// Adds `privilege` to the entry of `resource`, creating it if needed.
    fn add(&mut self, resource: &str, privilege: Privilege) {
        let privileges = match self.get(resource) {
            Some(held) => held.with(privilege),
            None => PrivilegeSet::only(privilege),
        };
        self.entries.insert(resource.to_owned(), privileges);
    }

    /// Creates the entry of `resource` holding only `privilege`, unless it already has one.
    fn add_if_absent(&mut self, resource: &str, privilege: Privilege) {
        self.entries
            .entry(resource.to_owned())
            .or_insert(PrivilegeSet::only(privilege));
    }
}

/// The resource of database `db`: `/database` for `""` (every database); otherwise the name with
/// every `/` replaced by `_`, then `_clean` if nothing was replaced or `_dirty` if something was,
/// under `/database/`.
///
/// The suffix keeps the mapping one-to-one (`my/db` and `my_db` stay apart) and makes the name a
/// single path element that is never `.` or `..`, so no cleaning is needed after joining.
pub fn database_resource(db: &str) -> String {
    if db.is_empty() {
        return DATABASE_RESOURCE.to_owned();
    }
    let element = db.replace('/', "_");
    let suffix = if element == db { "_clean" } else { "_dirty" };
    format!("{DATABASE_RESOURCE}/{element}{suffix}")
}

/// One row of SPEC §3's table: what a permission adds, and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub resource: RuleResource,
    pub privilege: Privilege,
    /// Creates the entry only when it has none: a default that any grant of its own replaces.
    pub only_if_absent: bool,
}

/// The resource a rule grants on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleResource {
    /// Always this resource, whatever the scope.
    Fixed(&'static str),
    /// The database resource of the permission's scope (`database_resource`).
    ScopeDatabase,
}

impl RuleResource {
    /// The resource for a permission held on `scope`.
    pub fn of(self, scope: &str) -> std::borrow::Cow<'static, str> {
        match self {
            RuleResource::Fixed(resource) => resource.into(),
            RuleResource::ScopeDatabase => database_resource(scope).into(),
        }
    }
}

/// The rules of a meta permission (SPEC §3); none for a permission Kapacitor ignores (the meta
/// node also holds InfluxDB permissions). `Grants::from_permissions` applies them, and `kapauth
/// explain` reads the same rows to say which permission each grant came from.
pub fn rules(permission: &str) -> &'static [Rule] {
    match permission {
        "KapacitorAPI" => &KAPACITOR_API,
        "KapacitorConfigAPI" => &KAPACITOR_CONFIG_API,
        "WriteData" => &WRITE_DATA,
        "ReadData" => &READ_DATA,
        _ => &[],
    }
}

const fn add(resource: RuleResource, privilege: Privilege) -> Rule {
    Rule {
        resource,
        privilege,
        only_if_absent: false,
    }
}

const KAPACITOR_API: [Rule; 2] = [
    add(RuleResource::Fixed(API_RESOURCE), Privilege::All),
    // The config API stays closed unless it is granted on its own, because `/api`: all would
    // otherwise reach it as a parent.
    Rule {
        resource: RuleResource::Fixed(CONFIG_RESOURCE),
        privilege: Privilege::None,
        only_if_absent: true,
    },
];

const KAPACITOR_CONFIG_API: [Rule; 2] = [
    add(RuleResource::Fixed(PING_RESOURCE), Privilege::All),
    add(RuleResource::Fixed(CONFIG_RESOURCE), Privilege::All),
];

const WRITE_DATA: [Rule; 3] = [
    add(RuleResource::ScopeDatabase, Privilege::Write),
    // Kapacitor sets `/api/write` to {write}; WriteData is the only rule that touches it, so
    // adding gives the same set and keeps every rule a union.
    add(RuleResource::Fixed(WRITE_RESOURCE), Privilege::Write),
    add(RuleResource::Fixed(PING_RESOURCE), Privilege::All),
];

const READ_DATA: [Rule; 2] = [
    add(RuleResource::Fixed(PING_RESOURCE), Privilege::All),
    add(RuleResource::ScopeDatabase, Privilege::Read),
];

/// Kapacitor's whole API.
const API_RESOURCE: &str = "/api";
/// Kapacitor's config API, closed to `KapacitorAPI` alone.
const CONFIG_RESOURCE: &str = "/api/config";
/// Kapacitor's ping endpoint.
const PING_RESOURCE: &str = "/api/ping";
/// Kapacitor's write endpoints, `/write` and `/kapacitor/v1/write`.
const WRITE_RESOURCE: &str = "/api/write";
/// Every database; each database is a child of it.
const DATABASE_RESOURCE: &str = "/database";

/// Every privilege, in Kapacitor's order.
const EVERY_PRIVILEGE: [Privilege; 5] = [
    Privilege::None,
    Privilege::Read,
    Privilege::Write,
    Privilege::Delete,
    Privilege::All,
];

#[cfg(test)]
mod tests {
    use super::*;
    use Privilege::{All, Delete, None as NoPrivilege, Read, Write};

    fn check(scoped: &[(&str, &str)], expected: &[(&str, &[Privilege])]) {
        let grants = Grants::from_permissions(scoped.iter().copied());
        assert_eq!(grants, Grants::from_entries(expected), "pairs {scoped:?}");
    }

    fn check_database(db: &str, expected: &str) {
        assert_eq!(database_resource(db), expected, "database {db:?}");
    }

    fn check_set(privileges: &[Privilege], expected: &[Privilege]) {
        let set = privileges.iter().copied().collect::<PrivilegeSet>();
        assert_eq!(set.iter().collect::<Vec<_>>(), expected, "{privileges:?}");
    }

    #[test]
    fn no_permissions_give_no_grants() {
        check(&[], &[]);
        check(&[("", "ViewAdmin"), ("db1", "CreateDatabase")], &[]);
        check(&[("", "kapacitorapi"), ("", "readdata"), ("", "")], &[]);
        check(&[("", "NoPermissions")], &[]);
    }

    #[test]
    fn kapacitor_api_opens_the_api_but_not_its_config() {
        check(
            &[("", "KapacitorAPI")],
            &[("/api", &[All]), ("/api/config", &[NoPrivilege])],
        );
        check(
            &[("db1", "KapacitorAPI")],
            &[("/api", &[All]), ("/api/config", &[NoPrivilege])],
        );
    }

    #[test]
    fn kapacitor_config_api_opens_the_config_and_ping() {
        check(
            &[("", "KapacitorConfigAPI")],
            &[("/api/ping", &[All]), ("/api/config", &[All])],
        );
    }

    #[test]
    fn config_api_wins_over_the_closed_default_in_either_order() {
        let both = [
            ("/api", &[All][..]),
            ("/api/config", &[All][..]),
            ("/api/ping", &[All][..]),
        ];
        check(&[("", "KapacitorAPI"), ("", "KapacitorConfigAPI")], &both);
        check(&[("", "KapacitorConfigAPI"), ("", "KapacitorAPI")], &both);
        check(
            &[("db1", "KapacitorAPI"), ("", "KapacitorConfigAPI")],
            &both,
        );
        check(
            &[("", "KapacitorConfigAPI"), ("db1", "KapacitorAPI")],
            &both,
        );
    }

    #[test]
    fn write_data_grants_write_on_its_database_and_the_write_endpoints() {
        check(
            &[("", "WriteData")],
            &[
                ("/database", &[Write]),
                ("/api/write", &[Write]),
                ("/api/ping", &[All]),
            ],
        );
        check(
            &[("mydb", "WriteData")],
            &[
                ("/database/mydb_clean", &[Write]),
                ("/api/write", &[Write]),
                ("/api/ping", &[All]),
            ],
        );
    }

    #[test]
    fn read_data_grants_read_on_its_database_and_ping() {
        check(
            &[("", "ReadData")],
            &[("/database", &[Read]), ("/api/ping", &[All])],
        );
        check(
            &[("mydb", "ReadData")],
            &[("/database/mydb_clean", &[Read]), ("/api/ping", &[All])],
        );
    }

    #[test]
    fn read_and_write_on_one_database_add_up() {
        check(
            &[("mydb", "WriteData"), ("mydb", "ReadData")],
            &[
                ("/database/mydb_clean", &[Read, Write]),
                ("/api/write", &[Write]),
                ("/api/ping", &[All]),
            ],
        );
        check(
            &[("", "ReadData"), ("", "WriteData"), ("", "WriteData")],
            &[
                ("/database", &[Read, Write]),
                ("/api/write", &[Write]),
                ("/api/ping", &[All]),
            ],
        );
    }

    #[test]
    fn each_scope_grants_its_own_database() {
        check(
            &[("mydb", "WriteData"), ("otherdb", "ReadData")],
            &[
                ("/database/mydb_clean", &[Write]),
                ("/database/otherdb_clean", &[Read]),
                ("/api/write", &[Write]),
                ("/api/ping", &[All]),
            ],
        );
        check(
            &[("", "ReadData"), ("db1", "ReadData")],
            &[
                ("/database", &[Read]),
                ("/database/db1_clean", &[Read]),
                ("/api/ping", &[All]),
            ],
        );
    }

    #[test]
    fn database_names_with_slashes_get_their_own_dirty_resource() {
        check(
            &[("mydb/slash/in/name", "WriteData"), ("my_db", "ReadData")],
            &[
                ("/database/mydb_slash_in_name_dirty", &[Write]),
                ("/database/my_db_clean", &[Read]),
                ("/api/write", &[Write]),
                ("/api/ping", &[All]),
            ],
        );
    }

    #[test]
    fn every_kapacitor_permission_together() {
        check(
            &[
                ("", "KapacitorAPI"),
                ("", "KapacitorConfigAPI"),
                ("", "WriteData"),
                ("", "ReadData"),
            ],
            &[
                ("/api", &[All]),
                ("/api/config", &[All]),
                ("/api/ping", &[All]),
                ("/api/write", &[Write]),
                ("/database", &[Read, Write]),
            ],
        );
    }

    #[test]
    fn every_order_of_the_permissions_gives_identical_grants() {
        let scoped = [
            ("", "KapacitorAPI"),
            ("", "KapacitorConfigAPI"),
            ("db1", "WriteData"),
            ("db1", "ReadData"),
            ("", "WriteData"),
            ("my/db", "ReadData"),
            ("", "ViewAdmin"),
        ];
        let expected = Grants::from_entries(&[
            ("/api", &[All]),
            ("/api/config", &[All]),
            ("/api/ping", &[All]),
            ("/api/write", &[Write]),
            ("/database", &[Write]),
            ("/database/db1_clean", &[Read, Write]),
            ("/database/my_db_dirty", &[Read]),
        ]);
        let mut count = 0;
        for_each_permutation(&mut scoped.clone(), scoped.len(), &mut |order| {
            count += 1;
            let grants = Grants::from_permissions(order.iter().copied());
            assert_eq!(grants, expected, "order {order:?}");
        });
        assert_eq!(count, 5040, "7! orders");
    }

    #[test]
    fn database_resources_follow_kapacitor_naming() {
        check_database("", "/database");
        check_database("db1", "/database/db1_clean");
        check_database("my/db", "/database/my_db_dirty");
        check_database("my_db", "/database/my_db_clean");
        check_database("/db", "/database/_db_dirty");
        check_database("a//b/", "/database/a__b__dirty");
        check_database("/", "/database/__dirty");
        check_database("..", "/database/.._clean");
        check_database(".", "/database/._clean");
        check_database("my db", "/database/my db_clean");
        check_database("café", "/database/café_clean");
    }

    #[test]
    fn a_set_holding_all_is_stored_as_all_alone() {
        check_set(&[], &[]);
        check_set(&[Read], &[Read]);
        check_set(&[Write, Read, Write], &[Read, Write]);
        check_set(&[NoPrivilege, Delete], &[NoPrivilege, Delete]);
        check_set(&[NoPrivilege, All], &[All]);
        check_set(&[All, NoPrivilege], &[All]);
        check_set(&[Read, Write, Delete, All], &[All]);
    }

    #[test]
    fn a_set_allows_its_members_and_all_allows_everything() {
        let read = PrivilegeSet::only(Read);
        assert!(read.allows(Read));
        assert!(!read.allows(Write));
        assert!(!read.allows(NoPrivilege));
        let none = PrivilegeSet::only(NoPrivilege);
        assert!(none.allows(NoPrivilege));
        assert!(!none.allows(Read));
        let all = PrivilegeSet::only(All);
        for privilege in EVERY_PRIVILEGE {
            assert!(all.allows(privilege), "{privilege:?}");
        }
        assert!(!all.contains(Read));
    }

    #[test]
    fn privilege_names_are_kapacitors() {
        let names = EVERY_PRIVILEGE.map(Privilege::as_str);
        assert_eq!(names, ["none", "read", "write", "delete", "all"]);
    }

    #[test]
    fn a_set_debug_prints_its_member_names() {
        let set = [Write, Read].into_iter().collect::<PrivilegeSet>();
        assert_eq!(format!("{set:?}"), "{read, write}");
    }

    /// Heap's algorithm: calls `visit` once with every order of `items[..length]`.
    fn for_each_permutation<T: Copy>(items: &mut [T], length: usize, visit: &mut impl FnMut(&[T])) {
        if length <= 1 {
            visit(items);
            return;
        }
        for index in 0..length - 1 {
            for_each_permutation(items, length - 1, visit);
            let swap_with = if length.is_multiple_of(2) { index } else { 0 };
            items.swap(swap_with, length - 1);
        }
        for_each_permutation(items, length - 1, visit);
    }
}

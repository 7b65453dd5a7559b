//! Who may do what on the meta API (SPEC §8): a principal, what the route needs and whether
//! the store is waiting for its first user go in; `Access` comes out. A pure function of
//! plain values: it never reads a header, a clock, the store or a password, and it never
//! writes an answer (`routes.rs` does both). Deny by default: every way through that is
//! not an explicit grant below is a refusal.

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// No credentials were sent.
    Anonymous,
    /// A meta user whose Basic password verified.
    User(String),
    /// A holder of `[meta] internal-shared-secret`.
    Internal,
}

/// What a route requires of the principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// `/ping`, which answers whoever asks.
    Nothing,
    /// `ViewAdmin` or `CreateUserAndRole`: reading users and roles shows hashes.
    View,
    /// `CreateUserAndRole`: every change to users and roles.
    Manage,
}

/// The outcome of `access`. What lets a request on is a variant the caller must match.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// The principal may do what the route needs.
    Granted,
    /// An anonymous request while the store has no users: it may create the first user and
    /// nothing else, which the caller's action step enforces (SPEC §8).
    Bootstrap,
    /// Why the request is refused.
    Refused(Refusal),
}

/// Why `access` refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The route needs credentials and none came (401).
    Unauthenticated,
    /// `user` holds none of the permissions that meet `need` (403).
    Lacks { user: String, need: Need },
}

impl Need {
    /// The permissions that meet this need, any one of them enough, each held on `""`.
    pub fn permissions(self) -> &'static [&'static str] {
        match self {
            Need::Nothing => &[],
            Need::View => &["ViewAdmin", "CreateUserAndRole"],
            Need::Manage => &["CreateUserAndRole"],
        }
    }
}

/// Whether `principal` may make a request that needs `need`. `bootstrap` says the request
/// is a `POST /user` while the store has no users; `holds(user, permission)` says whether a
/// user holds a permission on every database, directly or through a role.
pub fn access(
    principal: &Principal,
    need: Need,
    bootstrap: bool,
    holds: impl Fn(&str, &str) -> bool,
) -> Access {
    match (principal, need) {
        // `/ping` answers whoever asks, as the meta API's does.
        (_, Need::Nothing) => Access::Granted,
        // The shared secret is the cluster's own credential: it may read and change anything.
        (Principal::Internal, Need::View | Need::Manage) => Access::Granted,
        (Principal::Anonymous, Need::Manage) if bootstrap => Access::Bootstrap,
        (Principal::Anonymous, Need::View | Need::Manage) => {
            Access::Refused(Refusal::Unauthenticated)
        }
        (Principal::User(user), Need::View | Need::Manage) => {
            if need
                .permissions()
                .iter()
                .any(|permission| holds(user, permission))
            {
                Access::Granted
            } else {
                Access::Refused(Refusal::Lacks {
                    user: user.clone(),
                    need,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    const NEITHER: &[&str] = &[];
    const VIEW_ADMIN: &[&str] = &["ViewAdmin"];
    const CREATE_USER_AND_ROLE: &[&str] = &["CreateUserAndRole"];
    const BOTH: &[&str] = &["ViewAdmin", "CreateUserAndRole"];

    const GRANTED: Access = Access::Granted;
    const BOOTSTRAP: Access = Access::Bootstrap;
    const UNAUTHENTICATED: Access = Access::Refused(Refusal::Unauthenticated);

    fn alice() -> Principal {
        Principal::User("alice".to_string())
    }

    fn alice_lacks(need: Need) -> Access {
        Access::Refused(Refusal::Lacks {
            user: "alice".to_string(),
            need,
        })
    }

    #[test]
    fn every_principal_need_bootstrap_and_holding_has_the_outcome_written_here() {
        use Need::{Manage, Nothing, View};
        use Principal::{Anonymous, Internal};
        let mut seen = BTreeSet::new();
        let mut check =
            |principal: Principal, need: Need, bootstrap: bool, held: &[&str], expected: Access| {
                // Only alice holds anything, so a grant shows `access` asked about the principal's own name.
                let holds =
                    |user: &str, permission: &str| user == "alice" && held.contains(&permission);
                let case = format!("{principal:?} {need:?} bootstrap={bootstrap} held={held:?}");
                assert_eq!(
                    access(&principal, need, bootstrap, holds),
                    expected,
                    "{case}"
                );
                assert!(seen.insert(case.clone()), "listed twice: {case}");
            };

        check(Anonymous, Nothing, false, NEITHER, GRANTED);
        check(Anonymous, Nothing, false, VIEW_ADMIN, GRANTED);
        check(Anonymous, Nothing, false, CREATE_USER_AND_ROLE, GRANTED);
        check(Anonymous, Nothing, false, BOTH, GRANTED);
        check(Anonymous, Nothing, true, NEITHER, GRANTED);
        check(Anonymous, Nothing, true, VIEW_ADMIN, GRANTED);
        check(Anonymous, Nothing, true, CREATE_USER_AND_ROLE, GRANTED);
        check(Anonymous, Nothing, true, BOTH, GRANTED);
        check(Anonymous, View, false, NEITHER, UNAUTHENTICATED);
        check(Anonymous, View, false, VIEW_ADMIN, UNAUTHENTICATED);
        check(
            Anonymous,
            View,
            false,
            CREATE_USER_AND_ROLE,
            UNAUTHENTICATED,
        );
        check(Anonymous, View, false, BOTH, UNAUTHENTICATED);
        check(Anonymous, View, true, NEITHER, UNAUTHENTICATED);
        check(Anonymous, View, true, VIEW_ADMIN, UNAUTHENTICATED);
        check(Anonymous, View, true, CREATE_USER_AND_ROLE, UNAUTHENTICATED);
        check(Anonymous, View, true, BOTH, UNAUTHENTICATED);
        check(Anonymous, Manage, false, NEITHER, UNAUTHENTICATED);
        check(Anonymous, Manage, false, VIEW_ADMIN, UNAUTHENTICATED);
        check(
            Anonymous,
            Manage,
            false,
            CREATE_USER_AND_ROLE,
            UNAUTHENTICATED,
        );
        check(Anonymous, Manage, false, BOTH, UNAUTHENTICATED);
        check(Anonymous, Manage, true, NEITHER, BOOTSTRAP);
        check(Anonymous, Manage, true, VIEW_ADMIN, BOOTSTRAP);
        check(Anonymous, Manage, true, CREATE_USER_AND_ROLE, BOOTSTRAP);
        check(Anonymous, Manage, true, BOTH, BOOTSTRAP);

        check(alice(), Nothing, false, NEITHER, GRANTED);
        check(alice(), Nothing, false, VIEW_ADMIN, GRANTED);
        check(alice(), Nothing, false, CREATE_USER_AND_ROLE, GRANTED);
        check(alice(), Nothing, false, BOTH, GRANTED);
        check(alice(), Nothing, true, NEITHER, GRANTED);
        check(alice(), Nothing, true, VIEW_ADMIN, GRANTED);
        check(alice(), Nothing, true, CREATE_USER_AND_ROLE, GRANTED);
        check(alice(), Nothing, true, BOTH, GRANTED);
        check(alice(), View, false, NEITHER, alice_lacks(View));
        check(alice(), View, false, VIEW_ADMIN, GRANTED);
        check(alice(), View, false, CREATE_USER_AND_ROLE, GRANTED);
        check(alice(), View, false, BOTH, GRANTED);
        check(alice(), View, true, NEITHER, alice_lacks(View));
        check(alice(), View, true, VIEW_ADMIN, GRANTED);
        check(alice(), View, true, CREATE_USER_AND_ROLE, GRANTED);
        check(alice(), View, true, BOTH, GRANTED);
        check(alice(), Manage, false, NEITHER, alice_lacks(Manage));
        check(alice(), Manage, false, VIEW_ADMIN, alice_lacks(Manage));
        check(alice(), Manage, false, CREATE_USER_AND_ROLE, GRANTED);
        check(alice(), Manage, false, BOTH, GRANTED);
        check(alice(), Manage, true, NEITHER, alice_lacks(Manage));
        check(alice(), Manage, true, VIEW_ADMIN, alice_lacks(Manage));
        check(alice(), Manage, true, CREATE_USER_AND_ROLE, GRANTED);
        check(alice(), Manage, true, BOTH, GRANTED);

        check(Internal, Nothing, false, NEITHER, GRANTED);
        check(Internal, Nothing, false, VIEW_ADMIN, GRANTED);
        check(Internal, Nothing, false, CREATE_USER_AND_ROLE, GRANTED);
        check(Internal, Nothing, false, BOTH, GRANTED);
        check(Internal, Nothing, true, NEITHER, GRANTED);
        check(Internal, Nothing, true, VIEW_ADMIN, GRANTED);
        check(Internal, Nothing, true, CREATE_USER_AND_ROLE, GRANTED);
        check(Internal, Nothing, true, BOTH, GRANTED);
        check(Internal, View, false, NEITHER, GRANTED);
        check(Internal, View, false, VIEW_ADMIN, GRANTED);
        check(Internal, View, false, CREATE_USER_AND_ROLE, GRANTED);
        check(Internal, View, false, BOTH, GRANTED);
        check(Internal, View, true, NEITHER, GRANTED);
        check(Internal, View, true, VIEW_ADMIN, GRANTED);
        check(Internal, View, true, CREATE_USER_AND_ROLE, GRANTED);
        check(Internal, View, true, BOTH, GRANTED);
        check(Internal, Manage, false, NEITHER, GRANTED);
        check(Internal, Manage, false, VIEW_ADMIN, GRANTED);
        check(Internal, Manage, false, CREATE_USER_AND_ROLE, GRANTED);
        check(Internal, Manage, false, BOTH, GRANTED);
        check(Internal, Manage, true, NEITHER, GRANTED);
        check(Internal, Manage, true, VIEW_ADMIN, GRANTED);
        check(Internal, Manage, true, CREATE_USER_AND_ROLE, GRANTED);
        check(Internal, Manage, true, BOTH, GRANTED);

        // 3 principals × 3 needs × bootstrap or not × 4 holdings: every combination, once.
        assert_eq!(seen.len(), 3 * 3 * 2 * 4);
    }

    #[test]
    fn a_permission_held_by_another_user_grants_nothing() {
        let bob_holds_everything = |user: &str, _: &str| user == "bob";
        for need in [Need::View, Need::Manage] {
            assert_eq!(
                access(&alice(), need, false, bob_holds_everything),
                alice_lacks(need)
            );
        }
    }
}

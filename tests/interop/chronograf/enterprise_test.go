// Package chronograf drives Chronograf's InfluxDB Enterprise meta client (the code behind
// Chronograf's admin pages for an Enterprise source) against `kapauth meta`: the cluster
// it asks for first, users, passwords, permissions and roles, through both the MetaClient
// and the user and role stores the admin pages call.
package chronograf

import (
	"context"
	"net/url"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/influxdata/chronograf"
	"github.com/influxdata/chronograf/enterprise"
	"github.com/influxdata/chronograf/influx"

	"kapauth.test/interop/harness"
)

const (
	adminName      = "admin"
	adminPassword  = "admin-pass-1"
	internalSecret = "interop-internal-secret"
)

// setup starts `kapauth meta`, makes its first user and returns its address and a
// MetaClient speaking as that user with Basic credentials.
func setup(t *testing.T) (string, *enterprise.MetaClient) {
	t.Helper()
	process := harness.Start(t, harness.Meta(t).WithEnv("KAPAUTH_META_INTERNAL_SHARED_SECRET="+internalSecret))
	addr := process.Addr("meta")
	harness.Bootstrap(t, addr, adminName, adminPassword)
	return addr, metaClient(t, addr, &influx.BasicAuth{Username: adminName, Password: adminPassword})
}

func metaClient(t *testing.T, addr string, authorizer influx.Authorizer) *enterprise.MetaClient {
	t.Helper()
	return enterprise.NewMetaClient(&url.URL{Scheme: "http", Host: addr}, false, authorizer)
}

func context5s(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestShowClusterListsKapauthAsTheOneMetaNode(t *testing.T) {
	addr, client := setup(t)
	ctx := context5s(t)

	cluster, err := client.ShowCluster(ctx)
	if err != nil {
		t.Fatalf("ShowCluster: %v", err)
	}
	if len(cluster.DataNodes) != 0 {
		t.Errorf("data nodes = %+v, want none", cluster.DataNodes)
	}
	if len(cluster.MetaNodes) != 1 || cluster.MetaNodes[0].Addr != addr || cluster.MetaNodes[0].HTTPScheme != "http" {
		t.Errorf("meta nodes = %+v, want one at %s over http", cluster.MetaNodes, addr)
	}

	// Chronograf's Enterprise client connects by asking for the cluster.
	source := &chronograf.Source{URL: "http://" + addr, MetaURL: "http://" + addr, Username: adminName, Password: adminPassword}
	enterpriseClient, err := enterprise.NewClientWithURL("http://"+addr, influx.DefaultAuthorization(source), false, false, nil)
	if err != nil {
		t.Fatalf("NewClientWithURL: %v", err)
	}
	if err := enterpriseClient.Connect(ctx, source); err != nil {
		t.Errorf("Connect: %v", err)
	}
}

func TestShowClusterNeedsAnAdministrator(t *testing.T) {
	addr, client := setup(t)
	ctx := context5s(t)
	create(t, client, "bob", "bob-pass-1")

	_, err := metaClient(t, addr, &influx.BasicAuth{Username: "bob", Password: "bob-pass-1"}).ShowCluster(ctx)
	harness.AssertError(t, err, `user "bob" needs the ViewAdmin or CreateUserAndRole permission for this request`)
	_, err = metaClient(t, addr, &influx.BasicAuth{Username: adminName, Password: "wrong"}).ShowCluster(ctx)
	harness.AssertError(t, err, "authorization failed")
	_, err = metaClient(t, addr, &influx.NoAuthorization{}).ShowCluster(ctx)
	harness.AssertError(t, err, "unable to parse authentication credentials")
}

func TestUsersAreListedCreatedAndDeleted(t *testing.T) {
	_, client := setup(t)
	ctx := context5s(t)
	create(t, client, "alice", "alice-pass-1")
	create(t, client, "bob", "bob-pass-1")

	users, err := client.Users(ctx, nil)
	if err != nil {
		t.Fatalf("Users: %v", err)
	}
	if names := userNames(users.Users); !slices.Equal(names, []string{adminName, "alice", "bob"}) {
		t.Errorf("users = %v, want admin, alice, bob", names)
	}
	alice, err := client.User(ctx, "alice")
	if err != nil || alice.Name != "alice" || len(alice.Permissions) != 0 {
		t.Errorf("User(alice) = %+v, %v", alice, err)
	}

	if err := client.DeleteUser(ctx, "bob"); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	_, err = client.User(ctx, "bob")
	// The UserStore's retry loop compares this text exactly (enterprise/users.go).
	harness.AssertError(t, err, "user not found")
	harness.AssertError(t, client.DeleteUser(ctx, "bob"), `user "bob" not found`)
	harness.AssertError(t, client.CreateUser(ctx, "alice", "again-pass-1"), `user "alice" already exists`)
}

func TestChangedPasswordReplacesTheOldOne(t *testing.T) {
	addr, client := setup(t)
	ctx := context5s(t)
	create(t, client, "alice", "alice-pass-1")
	if err := client.AddUserPerms(ctx, "alice", enterprise.Permissions{"": {"ViewAdmin"}}); err != nil {
		t.Fatalf("AddUserPerms: %v", err)
	}

	if err := client.ChangePassword(ctx, "alice", "alice-pass-2"); err != nil {
		t.Fatalf("ChangePassword: %v", err)
	}
	_, err := metaClient(t, addr, &influx.BasicAuth{Username: "alice", Password: "alice-pass-1"}).Users(ctx, nil)
	harness.AssertError(t, err, "authorization failed")
	if _, err := metaClient(t, addr, &influx.BasicAuth{Username: "alice", Password: "alice-pass-2"}).Users(ctx, nil); err != nil {
		t.Errorf("the new password was refused: %v", err)
	}
}

func TestUserPermissionsAreAddedRemovedAndSet(t *testing.T) {
	_, client := setup(t)
	ctx := context5s(t)
	create(t, client, "alice", "alice-pass-1")

	step := func(what string, err error, want enterprise.Permissions) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		user, err := client.User(ctx, "alice")
		if err != nil {
			t.Fatalf("User(alice) after %s: %v", what, err)
		}
		assertPermissions(t, what, user.Permissions, want)
	}
	step("AddUserPerms", client.AddUserPerms(ctx, "alice", enterprise.Permissions{"": {"KapacitorAPI", "ReadData"}, "db1": {"WriteData"}}),
		enterprise.Permissions{"": {"KapacitorAPI", "ReadData"}, "db1": {"WriteData"}})
	step("RemoveUserPerms", client.RemoveUserPerms(ctx, "alice", enterprise.Permissions{"": {"ReadData"}}),
		enterprise.Permissions{"": {"KapacitorAPI"}, "db1": {"WriteData"}})
	// SetUserPerms sends the difference: a scope with nothing to change travels as a null
	// list, and a scope to drop as its whole list.
	step("SetUserPerms", client.SetUserPerms(ctx, "alice", enterprise.Permissions{"": {"KapacitorAPI", "KapacitorConfigAPI"}}),
		enterprise.Permissions{"": {"KapacitorAPI", "KapacitorConfigAPI"}})
	step("SetUserPerms unchanged", client.SetUserPerms(ctx, "alice", enterprise.Permissions{"": {"KapacitorAPI", "KapacitorConfigAPI"}}),
		enterprise.Permissions{"": {"KapacitorAPI", "KapacitorConfigAPI"}})
	step("SetUserPerms to none", client.SetUserPerms(ctx, "alice", enterprise.Permissions{}),
		enterprise.Permissions{})

	harness.AssertError(t, client.AddUserPerms(ctx, "alice", enterprise.Permissions{"": {"Everything"}}),
		`unknown permission "Everything"; known: NoPermissions, ViewAdmin, ViewChronograf, CreateDatabase, CreateUserAndRole, AddRemoveNode, DropDatabase, DropData, ReadData, WriteData, Rebalance, ManageShard, ManageContinuousQuery, ManageQuery, ManageSubscription, Monitor, CopyShard, KapacitorAPI, KapacitorConfigAPI`)
}

func TestRolesHoldUsersAndPermissions(t *testing.T) {
	_, client := setup(t)
	ctx := context5s(t)
	create(t, client, "alice", "alice-pass-1")
	create(t, client, "bob", "bob-pass-1")

	if err := client.CreateRole(ctx, "ops"); err != nil {
		t.Fatalf("CreateRole: %v", err)
	}
	if err := client.SetRolePerms(ctx, "ops", enterprise.Permissions{"": {"KapacitorAPI"}, "db1": {"ReadData"}}); err != nil {
		t.Fatalf("SetRolePerms: %v", err)
	}
	if err := client.SetRoleUsers(ctx, "ops", []string{"alice", "bob"}); err != nil {
		t.Fatalf("SetRoleUsers: %v", err)
	}
	role := getRole(t, client, "ops")
	assertPermissions(t, "ops", role.Permissions, enterprise.Permissions{"": {"KapacitorAPI"}, "db1": {"ReadData"}})
	if !slices.Equal(sorted(role.Users), []string{"alice", "bob"}) {
		t.Errorf("ops users = %v, want alice, bob", role.Users)
	}

	if err := client.SetRoleUsers(ctx, "ops", []string{"bob"}); err != nil {
		t.Fatalf("SetRoleUsers(bob): %v", err)
	}
	if err := client.RemoveRolePerms(ctx, "ops", enterprise.Permissions{"db1": {"ReadData"}}); err != nil {
		t.Fatalf("RemoveRolePerms: %v", err)
	}
	if err := client.SetRolePerms(ctx, "ops", enterprise.Permissions{"": {"KapacitorAPI", "KapacitorConfigAPI"}}); err != nil {
		t.Fatalf("SetRolePerms again: %v", err)
	}
	role = getRole(t, client, "ops")
	assertPermissions(t, "ops", role.Permissions, enterprise.Permissions{"": {"KapacitorAPI", "KapacitorConfigAPI"}})
	if !slices.Equal(role.Users, []string{"bob"}) {
		t.Errorf("ops users = %v, want bob", role.Users)
	}
	userRoles, err := client.UserRoles(ctx)
	if err != nil {
		t.Fatalf("UserRoles: %v", err)
	}
	if len(userRoles["bob"].Roles) != 1 || len(userRoles["alice"].Roles) != 0 {
		t.Errorf("UserRoles = %+v, want bob in ops and alice in none", userRoles)
	}

	if err := client.DeleteRole(ctx, "ops"); err != nil {
		t.Fatalf("DeleteRole: %v", err)
	}
	_, err = client.Role(ctx, "ops")
	harness.AssertError(t, err, "role not found")
}

// The admin pages go through the user and role stores, which chain the calls above.
func TestChronografsUserAndRoleStoresManageKapauthsUsers(t *testing.T) {
	addr, client := setup(t)
	ctx := context5s(t)
	source := &chronograf.Source{MetaURL: "http://" + addr, Username: adminName, Password: adminPassword}
	store, err := enterprise.NewClientWithURL(source.MetaURL, influx.DefaultAuthorization(source), false, false, nil)
	if err != nil {
		t.Fatalf("NewClientWithURL: %v", err)
	}
	roles, err := store.Roles(ctx)
	if err != nil {
		t.Fatalf("Roles: %v", err)
	}
	allScope := func(allowed ...string) chronograf.Permissions {
		return chronograf.Permissions{{Scope: chronograf.AllScope, Allowed: allowed}}
	}

	if _, err := roles.Add(ctx, &chronograf.Role{Name: "ops", Permissions: allScope("KapacitorAPI")}); err != nil {
		t.Fatalf("add role ops (no users): %v", err)
	}
	added, err := store.Users(ctx).Add(ctx, &chronograf.User{
		Name:        "carol",
		Passwd:      "carol-pass-1",
		Permissions: allScope("ReadData"),
		Roles:       []chronograf.Role{{Name: "ops"}},
	})
	if err != nil {
		t.Fatalf("add user carol: %v", err)
	}
	if len(added.Roles) != 1 || added.Roles[0].Name != "ops" || len(added.Permissions) != 1 {
		t.Errorf("carol as added = %+v", added)
	}

	carol := "carol"
	if err := store.Users(ctx).Update(ctx, &chronograf.User{Name: carol, Permissions: allScope("ReadData", "WriteData"), Roles: []chronograf.Role{}}); err != nil {
		t.Fatalf("update carol's permissions and roles: %v", err)
	}
	got, err := store.Users(ctx).Get(ctx, chronograf.UserQuery{Name: &carol})
	if err != nil {
		t.Fatalf("get carol: %v", err)
	}
	if len(got.Roles) != 0 || len(got.Permissions) != 1 || !slices.Equal(sorted(got.Permissions[0].Allowed), []string{"ReadData", "WriteData"}) {
		t.Errorf("carol after update = %+v", got)
	}
	if err := store.Users(ctx).Update(ctx, &chronograf.User{Name: carol, Passwd: "carol-pass-2"}); err != nil {
		t.Fatalf("change carol's password: %v", err)
	}

	if err := roles.Update(ctx, &chronograf.Role{Name: "ops", Permissions: allScope("KapacitorAPI", "KapacitorConfigAPI"), Users: []chronograf.User{{Name: carol}}}); err != nil {
		t.Fatalf("update role ops: %v", err)
	}
	ops, err := roles.Get(ctx, "ops")
	if err != nil {
		t.Fatalf("get role ops: %v", err)
	}
	if len(ops.Users) != 1 || ops.Users[0].Name != carol {
		t.Errorf("ops after update = %+v", ops)
	}
	all, err := store.Users(ctx).All(ctx)
	if err != nil || len(all) != 2 {
		t.Errorf("all users = %+v, %v", all, err)
	}
	if err := roles.Delete(ctx, &chronograf.Role{Name: "ops"}); err != nil {
		t.Errorf("delete role ops: %v", err)
	}
	if err := store.Users(ctx).Delete(ctx, &chronograf.User{Name: carol}); err != nil {
		t.Errorf("delete carol: %v", err)
	}
	if n, err := store.Users(ctx).Num(ctx); err != nil || n != 1 {
		t.Errorf("users left = %d, %v; want the admin alone", n, err)
	}
	if _, err := client.User(ctx, carol); err == nil {
		t.Error("carol is still there after delete")
	}
}

func TestTheInternalSharedSecretJWTManagesUsers(t *testing.T) {
	addr, _ := setup(t)
	ctx := context5s(t)
	// Chronograf signs an HS512 token with the source's shared secret and username.
	client := metaClient(t, addr, &influx.BearerJWT{Username: adminName, SharedSecret: internalSecret})
	if err := client.CreateUser(ctx, "dave", "dave-pass-1"); err != nil {
		t.Fatalf("CreateUser with the JWT: %v", err)
	}
	if _, err := client.ShowCluster(ctx); err != nil {
		t.Errorf("ShowCluster with the JWT: %v", err)
	}
	foreign := metaClient(t, addr, &influx.BearerJWT{Username: adminName, SharedSecret: "another-secret"})
	_, err := foreign.Users(ctx, nil)
	harness.AssertError(t, err, "invalid token: signature is invalid")
}

func create(t *testing.T, client *enterprise.MetaClient, name, password string) {
	t.Helper()
	if err := client.CreateUser(context5s(t), name, password); err != nil {
		t.Fatalf("CreateUser(%s): %v", name, err)
	}
}

func getRole(t *testing.T, client *enterprise.MetaClient, name string) *enterprise.Role {
	t.Helper()
	role, err := client.Role(context5s(t), name)
	if err != nil {
		t.Fatalf("Role(%s): %v", name, err)
	}
	return role
}

func userNames(users []enterprise.User) []string {
	var names []string
	for _, user := range users {
		names = append(names, user.Name)
	}
	return names
}

func sorted(values []string) []string {
	values = slices.Clone(values)
	sort.Strings(values)
	return values
}

func assertPermissions(t *testing.T, what string, got, want enterprise.Permissions) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: permissions = %v, want %v", what, got, want)
		return
	}
	for scope, permissions := range want {
		if !slices.Equal(sorted(got[scope]), sorted(permissions)) {
			t.Errorf("%s: permissions on %q = %v, want %v", what, scope, got[scope], permissions)
		}
	}
}

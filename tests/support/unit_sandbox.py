#!/usr/bin/python3
"""Runs a program under the seccomp-based restrictions of a systemd unit, as systemd would
apply them, for a machine where systemd is not PID 1 (tests/systemd.rs).

    unit_sandbox.py [--root DIR] UNIT -- PROGRAM [ARG]...

Reads from UNIT: SystemCallFilter= (groups expanded with `systemd-analyze syscall-filter`,
a `~` line removing calls from the list), RestrictAddressFamilies=, RestrictNamespaces=yes,
MemoryDenyWriteExecute=yes, LockPersonality=yes and NoNewPrivileges=yes. Each becomes a
seccomp filter with the action systemd gives it: a call outside SystemCallFilter= kills the
process (SIGSYS), the others fail with the errno systemd uses. Filters stack in the kernel,
the strictest answer winning, as systemd stacks its own. Then PROGRAM is exec'd in place of
this process, so its pid is the one the caller started. With --root, the process first
changes its root to DIR (as RootDirectory= would; chroot itself is a call the filter
refuses, so it comes before), and PROGRAM is a path inside DIR.

Needs python3-seccomp (libseccomp's Python binding, Debian package python3-seccomp).
Exits 3 with a message when the unit asks for something this script does not reproduce,
so a new directive cannot pass unnoticed.
"""

import errno
import os
import subprocess
import sys

import seccomp

# Seccomp-based directives this script does not reproduce: their presence is an error, so a
# change to the unit cannot pass unchecked. (RestrictRealtime= is left out: the calls it
# limits are in @resources, which the unit's filter removes whole; SystemCallArchitectures=
# native is libseccomp's own default.)
UNSUPPORTED = {"SystemCallErrorNumber", "SystemCallLog", "RestrictFileSystems"}

ADDRESS_FAMILIES = {"AF_UNIX": 1, "AF_INET": 2, "AF_INET6": 10}
# CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET, NEWTIME.
NAMESPACE_FLAGS = [
    0x00020000,
    0x02000000,
    0x04000000,
    0x08000000,
    0x10000000,
    0x20000000,
    0x40000000,
    0x00000080,
]
PROT_WRITE = 0x2
PROT_EXEC = 0x4
SHM_EXEC = 0o100000


def fail(message):
    print(f"unit_sandbox: {message}", file=sys.stderr)
    sys.exit(3)


def read_service_section(path):
    """The [Service] section's assignments, in order, as (key, value) pairs."""
    entries = []
    section = None
    with open(path, encoding="utf-8") as unit:
        for raw in unit:
            line = raw.strip()
            if not line or line.startswith(("#", ";")):
                continue
            if line.startswith("["):
                section = line
                continue
            if section == "[Service]" and "=" in line:
                key, value = line.split("=", 1)
                entries.append((key.strip(), value.strip()))
    return entries


def expand(name, seen=None):
    """The system calls of one name: a call, or a group expanded by systemd-analyze."""
    if not name.startswith("@"):
        return {name}
    seen = set() if seen is None else seen
    if name in seen:
        return set()
    seen.add(name)
    listing = subprocess.run(
        ["systemd-analyze", "syscall-filter", name],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    calls = set()
    for line in listing.splitlines()[1:]:
        word = line.strip()
        if word and not word.startswith("#"):
            calls |= expand(word, seen)
    return calls


def allowed_calls(entries):
    """SystemCallFilter= as systemd reads it: the first list allows, `~` lines remove."""
    allowed = None
    for key, value in entries:
        if key != "SystemCallFilter":
            continue
        deny = value.startswith("~")
        names = value.lstrip("~").split()
        calls = set().union(*(expand(name) for name in names)) if names else set()
        if allowed is None:
            if deny:
                fail("a SystemCallFilter= that starts with ~ is not reproduced here")
            allowed = calls
        elif deny:
            allowed -= calls
        else:
            allowed |= calls
    return allowed


def add(filter_, action, call, *args):
    """Adds a rule, unless the call does not exist on this architecture (systemd skips
    those too); any other failure stops the script rather than leave a filter weaker."""
    if seccomp.resolve_syscall(seccomp.Arch.NATIVE, call) < 0:
        return
    filter_.add_rule(action, call, *args)


def main():
    args = sys.argv[1:]
    root = None
    if args[:1] == ["--root"] and len(args) > 1:
        root, args = args[1], args[2:]
    if len(args) < 3 or args[1] != "--":
        fail("usage: unit_sandbox.py [--root DIR] UNIT -- PROGRAM [ARG]...")
    unit, program = args[0], args[2:]
    entries = read_service_section(unit)
    settings = dict(entries)
    for key in settings:
        if key in UNSUPPORTED:
            fail(f"{key}= is not reproduced by this script; extend it")
    filters = []

    families = settings.get("RestrictAddressFamilies")
    if families:
        wanted = set()
        for name in families.split():
            if name not in ADDRESS_FAMILIES:
                fail(f"RestrictAddressFamilies={name} is not known to this script")
            wanted.add(ADDRESS_FAMILIES[name])
        refuse = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
        for family in range(0, 64):
            if family not in wanted:
                add(refuse, seccomp.ERRNO(errno.EAFNOSUPPORT), "socket", seccomp.Arg(0, seccomp.EQ, family))
        add(refuse, seccomp.ERRNO(errno.EAFNOSUPPORT), "socket", seccomp.Arg(0, seccomp.GE, 64))
        filters.append(refuse)

    if settings.get("RestrictNamespaces") == "yes":
        refuse = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
        add(refuse, seccomp.ERRNO(errno.EPERM), "unshare")
        add(refuse, seccomp.ERRNO(errno.EPERM), "setns")
        for flag in NAMESPACE_FLAGS:
            add(refuse, seccomp.ERRNO(errno.EPERM), "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
        # clone3 passes its flags in memory a filter cannot read: systemd answers ENOSYS,
        # and the C library falls back to clone.
        add(refuse, seccomp.ERRNO(errno.ENOSYS), "clone3")
        filters.append(refuse)
    elif "RestrictNamespaces" in settings:
        fail("only RestrictNamespaces=yes is reproduced by this script")

    if settings.get("MemoryDenyWriteExecute") == "yes":
        refuse = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
        both = PROT_WRITE | PROT_EXEC
        add(refuse, seccomp.ERRNO(errno.EPERM), "mmap", seccomp.Arg(2, seccomp.MASKED_EQ, both, both))
        add(refuse, seccomp.ERRNO(errno.EPERM), "mprotect", seccomp.Arg(2, seccomp.MASKED_EQ, PROT_EXEC, PROT_EXEC))
        add(refuse, seccomp.ERRNO(errno.EPERM), "pkey_mprotect", seccomp.Arg(2, seccomp.MASKED_EQ, PROT_EXEC, PROT_EXEC))
        add(refuse, seccomp.ERRNO(errno.EPERM), "shmat", seccomp.Arg(2, seccomp.MASKED_EQ, SHM_EXEC, SHM_EXEC))
        filters.append(refuse)

    if settings.get("LockPersonality") == "yes":
        refuse = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
        # Only PER_LINUX (0) passes; systemd also lets the query 0xffffffff through, so
        # this is stricter, never looser.
        add(refuse, seccomp.ERRNO(errno.EPERM), "personality", seccomp.Arg(0, seccomp.NE, 0))
        filters.append(refuse)

    allowed = allowed_calls(entries)
    if allowed is not None:
        allowlist = seccomp.SyscallFilter(defaction=seccomp.KILL_PROCESS)
        for call in sorted(allowed):
            add(allowlist, seccomp.ALLOW, call)
        # The allowlist goes last: loading the others needs calls it may not hold.
        filters.append(allowlist)

    if settings.get("NoNewPrivileges") != "yes":
        fail("the unit does not set NoNewPrivileges=yes, which these filters need unprivileged")
    if root is not None:
        os.chroot(root)
        os.chdir("/")
    for filter_ in filters:
        # libseccomp sets no_new_privs before loading (its CTL_NNP default), as the unit asks.
        filter_.load()
    os.execv(program[0], program)


if __name__ == "__main__":
    main()

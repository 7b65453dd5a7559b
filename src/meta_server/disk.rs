//! The only file that writes files: the meta store as one human-readable JSON file in
//! `[meta] dir`, replaced atomically (temp file, fsync, rename, fsync of the directory)
//! before a mutation is acknowledged, and an exclusive lock so one process owns the
//! directory (SPEC §8 durability). A file it cannot read stops startup; it never starts
//! empty over existing data.

use std::collections::BTreeSet;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::store::State;
use crate::meta_api::{RoleDoc, UserDoc, is_permission};

/// The store file's name inside `[meta] dir`.
pub const STORE_FILE: &str = "meta.json";
const TEMP_FILE: &str = "meta.json.tmp";
const LOCK_FILE: &str = "LOCK";
const FORMAT: &str = "kapauth-meta/1";

/// The store file as written.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreFile {
    format: String,
    users: Vec<UserDoc>,
    roles: Vec<RoleDoc>,
}

/// The open store directory; holds the lock for as long as it lives.
#[derive(Debug)]
pub struct Disk {
    dir: PathBuf,
    _lock: File,
}

/// The store directory could not be opened, read or written.
#[derive(Debug)]
pub enum DiskError {
    /// A file system call failed; `action` says which, `path` on what.
    Io {
        action: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
    /// Another process holds the directory's lock.
    Locked { path: PathBuf },
    /// The store file is not a store: not JSON, the wrong shape, or inconsistent.
    Corrupt { path: PathBuf, problem: String },
    /// The operating system's random source failed while the store was being opened.
    Random,
}

impl fmt::Display for DiskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiskError::Io {
                action,
                path,
                error,
            } => {
                write!(f, "cannot {action} {}: {error}", path.display())
            }
            DiskError::Locked { path } => write!(
                f,
                "{} is locked by another kapauth process; stop it, or give this one another [meta] dir",
                path.display()
            ),
            DiskError::Random => f.write_str("the operating system's random source failed"),
            DiskError::Corrupt { path, problem } => write!(
                f,
                "store file {} is unreadable: {problem}; kapauth will not start over it (restore it from a backup, or move it away to start empty)",
                path.display()
            ),
        }
    }
}

impl std::error::Error for DiskError {}

impl Disk {
    /// Creates the directory if needed, takes its lock and reads the store (empty when no
    /// store file exists yet).
    pub fn open(dir: &Path) -> Result<(Disk, State), DiskError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|error| io("create directory", dir, error))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|error| io("open", &lock_path, error))?;
        lock.try_lock().map_err(|error| match error {
            fs::TryLockError::WouldBlock => DiskError::Locked {
                path: lock_path.clone(),
            },
            fs::TryLockError::Error(error) => io("lock", &lock_path, error),
        })?;
        // A temp file left by a crash was never acknowledged: the renamed file is the truth.
        let temp = dir.join(TEMP_FILE);
        match fs::remove_file(&temp) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(io("remove", &temp, error)),
        }
        let state = read_store(dir)?.unwrap_or_default();
        Ok((
            Disk {
                dir: dir.to_path_buf(),
                _lock: lock,
            },
            state,
        ))
    }

    /// Makes `state` the store on disk; returns only once it would survive a crash.
    pub fn save(&self, state: &State) -> Result<(), DiskError> {
        let bytes = render_store(state);
        let temp = self.dir.join(TEMP_FILE);
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&temp)
            .map_err(|error| io("create", &temp, error))?;
        file.write_all(&bytes)
            .map_err(|error| io("write", &temp, error))?;
        file.sync_all().map_err(|error| io("fsync", &temp, error))?;
        drop(file);
        let path = self.dir.join(STORE_FILE);
        fs::rename(&temp, &path).map_err(|error| io("rename into place", &path, error))?;
        // The rename is durable only once the directory entry is.
        File::open(&self.dir)
            .and_then(|dir| dir.sync_all())
            .map_err(|error| io("fsync directory", &self.dir, error))
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(STORE_FILE)
    }
}

/// Reads the store file of `dir` without taking its lock and without changing anything there
/// (`kapauth explain`, while `kapauth serve` may hold the lock); `None` when no store file
/// exists. The file is only ever replaced by a rename of a whole fsynced file (`save`), so a
/// read sees one acknowledged state, whole, and never a write in progress.
pub fn read_store(dir: &Path) -> Result<Option<State>, DiskError> {
    let path = dir.join(STORE_FILE);
    match fs::read(&path) {
        Ok(bytes) => parse_store(&bytes)
            .map(Some)
            .map_err(|problem| DiskError::Corrupt { path, problem }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(io("read", &path, error)),
    }
}

/// The store file's text for `state`: pretty JSON, users and roles in name order.
pub fn render_store(state: &State) -> Vec<u8> {
    let file = StoreFile {
        format: FORMAT.to_string(),
        users: state.user_docs(),
        roles: state.role_docs(),
    };
    let mut bytes = serde_json::to_vec_pretty(&file).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// Reads store file bytes; the error names the position or the inconsistency.
pub fn parse_store(bytes: &[u8]) -> Result<State, String> {
    let file: StoreFile = serde_json::from_slice(bytes).map_err(|error| error.to_string())?;
    if file.format != FORMAT {
        return Err(format!("format is {:?}, expected {FORMAT:?}", file.format));
    }
    let mut names = BTreeSet::new();
    for user in &file.users {
        if !names.insert(&user.name) {
            return Err(format!("user {:?} appears twice", user.name));
        }
        check_tokens("user", &user.name, &user.permissions)?;
    }
    let mut role_names = BTreeSet::new();
    for role in &file.roles {
        if !role_names.insert(&role.name) {
            return Err(format!("role {:?} appears twice", role.name));
        }
        check_tokens("role", &role.name, &role.permissions)?;
    }
    Ok(State::from_docs(&file.users, &file.roles))
}

fn check_tokens(
    kind: &str,
    name: &str,
    permissions: &crate::meta_api::Permissions,
) -> Result<(), String> {
    for token in permissions.values().flatten() {
        if !is_permission(token) {
            return Err(format!("{kind} {name:?} has unknown permission {token:?}"));
        }
    }
    Ok(())
}

fn io(action: &'static str, path: &Path, error: std::io::Error) -> DiskError {
    DiskError::Io {
        action,
        path: path.to_path_buf(),
        error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta_server::store::Mutation;

    fn check_corrupt(text: &str, expected: &str) {
        assert_eq!(
            parse_store(text.as_bytes()).err().as_deref(),
            Some(expected),
            "{text}"
        );
    }

    #[test]
    fn corrupt_store_files_are_named_with_their_position_or_problem() {
        check_corrupt("", "EOF while parsing a value at line 1 column 0");
        check_corrupt(
            "{\"format\":\"kapauth-meta/1\",\n\"users\":[}",
            "expected value at line 2 column 10",
        );
        check_corrupt(
            "{\"format\":\"other\",\"users\":[],\"roles\":[]}",
            "format is \"other\", expected \"kapauth-meta/1\"",
        );
        check_corrupt(
            "{\"format\":\"kapauth-meta/1\",\"users\":[{\"name\":\"a\"},{\"name\":\"a\"}],\"roles\":[]}",
            "user \"a\" appears twice",
        );
        check_corrupt(
            "{\"format\":\"kapauth-meta/1\",\"users\":[{\"name\":\"a\",\"permissions\":{\"\":[\"Bogus\"]}}],\"roles\":[]}",
            "user \"a\" has unknown permission \"Bogus\"",
        );
        check_corrupt(
            "{\"format\":\"kapauth-meta/1\",\"users\":[],\"roles\":[],\"extra\":1}",
            "unknown field `extra`, expected one of `format`, `users`, `roles` at line 1 column 56",
        );
    }

    #[test]
    fn a_saved_state_reopens_identically_and_the_lock_is_exclusive() {
        let dir = std::env::temp_dir().join(format!("kapauth-disk-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let (disk, empty) = Disk::open(&dir).unwrap();
        assert_eq!(empty, State::default());
        let state = empty
            .apply(&Mutation::CreateUser {
                name: "u".into(),
                hash: "h".into(),
                permissions: Default::default(),
            })
            .unwrap();
        disk.save(&state).unwrap();
        assert!(matches!(Disk::open(&dir), Err(DiskError::Locked { .. })));
        drop(disk);
        let (_disk, reopened) = Disk::open(&dir).unwrap();
        assert_eq!(reopened, state);
        fs::remove_dir_all(&dir).unwrap();
    }
}

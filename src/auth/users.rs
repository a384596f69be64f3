//! The user store: `<data>/users.json`, written by `spendql user add|remove` and read by
//! the server at each connection (so users added while it runs can log in at once).
//!
//! A user is a name, a [`Role`] and a SCRAM-SHA-256 verifier in PostgreSQL's format
//! (`SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`): the server can check a
//! client's proof with it, but neither it nor a stolen copy can log in or recover the
//! password. The file also holds a random key from which made-up salts for unknown names
//! are derived, so an unknown user sees the same exchange as a known one.
//!
//! The data directory's LOCK belongs to the server, so writers take `users.lock` instead,
//! and replace the file atomically (0600, fsynced) so the server never reads half of it.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use pgwire::api::auth::sasl::scram::{ScramSecret, gen_salted_password};
use rand::RngCore;
use ring::{digest, hmac};
use serde::{Deserialize, Serialize};

use super::Role;
use crate::error::{Error, Result};
use crate::storage::durable;

/// The user store's file name inside the data directory.
pub const USERS_FILE: &str = "users.json";
/// Taken by writers of [`USERS_FILE`].
const USERS_LOCK: &str = "users.lock";
/// PBKDF2 iterations of new verifiers (PostgreSQL's default).
const ITERATIONS: usize = 4096;
const SALT_BYTES: usize = 16;
const MECHANISM: &str = "SCRAM-SHA-256";

/// A user: a role and the SCRAM verifier of their password.
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub role: Role,
    verifier: Verifier,
}

/// What the server keeps of a password: enough to check a SCRAM proof, nothing more.
#[derive(Clone, PartialEq, Eq)]
struct Verifier {
    iterations: usize,
    salt: Vec<u8>,
    stored_key: Vec<u8>,
    server_key: Vec<u8>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// RFC 5802: StoredKey = H(HMAC(SaltedPassword, "Client Key")),
    /// ServerKey = HMAC(SaltedPassword, "Server Key").
    fn from_password(password: &str) -> Self {
        let mut salt = vec![0u8; SALT_BYTES];
        rand::rng().fill_bytes(&mut salt);
        let salted = gen_salted_password(password, &salt, ITERATIONS);
        let key = hmac::Key::new(hmac::HMAC_SHA256, &salted);
        let client_key = hmac::sign(&key, b"Client Key");
        Verifier {
            iterations: ITERATIONS,
            salt,
            stored_key: digest::digest(&digest::SHA256, client_key.as_ref())
                .as_ref()
                .to_vec(),
            server_key: hmac::sign(&key, b"Server Key").as_ref().to_vec(),
        }
    }

    /// PostgreSQL's text form, as in `pg_authid.rolpassword`.
    fn encode(&self) -> String {
        format!(
            "{MECHANISM}${}:{}${}:{}",
            self.iterations,
            BASE64.encode(&self.salt),
            BASE64.encode(&self.stored_key),
            BASE64.encode(&self.server_key)
        )
    }

    fn decode(text: &str) -> Option<Self> {
        let rest = text.strip_prefix(MECHANISM)?.strip_prefix('$')?;
        let (params, keys) = rest.split_once('$')?;
        let (iterations, salt) = params.split_once(':')?;
        let (stored_key, server_key) = keys.split_once(':')?;
        let verifier = Verifier {
            iterations: iterations.parse().ok().filter(|i| *i >= ITERATIONS)?,
            salt: BASE64.decode(salt).ok().filter(|s| !s.is_empty())?,
            stored_key: BASE64.decode(stored_key).ok().filter(|k| k.len() == 32)?,
            server_key: BASE64.decode(server_key).ok().filter(|k| k.len() == 32)?,
        };
        Some(verifier)
    }

    fn secret(&self) -> ScramSecret {
        ScramSecret::Verifier {
            salt: self.salt.clone(),
            iterations: self.iterations,
            stored_key: self.stored_key.clone(),
            server_key: self.server_key.clone(),
        }
    }
}

/// The file's shape.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    /// Base64 key for the made-up salts of unknown names.
    mock_key: String,
    users: Vec<UserEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserEntry {
    name: String,
    role: String,
    verifier: String,
}

/// All users of a data directory.
#[derive(Debug, Default)]
pub struct Users {
    users: BTreeMap<String, User>,
    mock_key: Vec<u8>,
}

impl Users {
    /// Read the store; a directory without one has no users.
    pub fn load(dir: &Path) -> Result<Users> {
        let path = dir.join(USERS_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Users::default()),
            Err(e) => return Err(Error::io(path, e)),
        };
        let file: UsersFile = serde_json::from_str(&text).map_err(|e| Error::corrupt(&path, e))?;
        let mock_key = BASE64
            .decode(&file.mock_key)
            .map_err(|e| Error::corrupt(&path, format!("mock_key: {e}")))?;
        let mut users = BTreeMap::new();
        for entry in file.users {
            let role = entry
                .role
                .parse()
                .map_err(|e| Error::corrupt(&path, format!("user {}: {e}", entry.name)))?;
            let verifier = Verifier::decode(&entry.verifier).ok_or_else(|| {
                Error::corrupt(&path, format!("user {}: not a SCRAM verifier", entry.name))
            })?;
            let user = User {
                name: entry.name.clone(),
                role,
                verifier,
            };
            users.insert(entry.name, user);
        }
        if !users.is_empty() && mock_key.len() < 32 {
            return Err(Error::corrupt(&path, "mock_key is shorter than 32 bytes"));
        }
        Ok(Users { users, mock_key })
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &User> {
        self.users.values()
    }

    /// The SCRAM secret to run the exchange with, and the user's role. An unknown name
    /// gets a made-up secret (stable per name, so retries look alike) and no role: the
    /// exchange runs to the end and then fails as a wrong password would.
    pub fn scram_secret(&self, name: &str) -> (ScramSecret, Option<Role>) {
        if let Some(user) = self.users.get(name) {
            return (user.verifier.secret(), Some(user.role.clone()));
        }
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.mock_key);
        let derive = |label: &str| {
            hmac::sign(&key, format!("{label}\0{name}").as_bytes())
                .as_ref()
                .to_vec()
        };
        let mut salt = derive("salt");
        salt.truncate(SALT_BYTES);
        let secret = ScramSecret::Verifier {
            salt,
            iterations: ITERATIONS,
            stored_key: derive("stored"),
            server_key: derive("server"),
        };
        (secret, None)
    }

    fn save(&self, dir: &Path) -> Result<()> {
        let file = UsersFile {
            mock_key: BASE64.encode(&self.mock_key),
            users: self
                .users
                .values()
                .map(|u| UserEntry {
                    name: u.name.clone(),
                    role: u.role.to_string(),
                    verifier: u.verifier.encode(),
                })
                .collect(),
        };
        let mut bytes = serde_json::to_vec_pretty(&file)
            .map_err(|e| Error::Invalid(format!("cannot encode users: {e}")))?;
        bytes.push(b'\n');
        write_private(&dir.join(USERS_FILE), &bytes)
    }
}

/// Add a user, or replace the role and password of an existing one. Returns whether the
/// user existed.
pub fn add_user(dir: &Path, name: &str, role: &Role, password: &str) -> Result<bool> {
    validate_name(name)?;
    if password.is_empty() {
        return Err(Error::Invalid("the password must not be empty".into()));
    }
    let _lock = lock(dir)?;
    let mut users = Users::load(dir)?;
    if users.mock_key.len() < 32 {
        users.mock_key = vec![0u8; 32];
        rand::rng().fill_bytes(&mut users.mock_key);
    }
    let user = User {
        name: name.to_owned(),
        role: role.clone(),
        verifier: Verifier::from_password(password),
    };
    let existed = users.users.insert(name.to_owned(), user).is_some();
    users.save(dir)?;
    Ok(existed)
}

/// Remove a user. Returns whether the user existed.
pub fn remove_user(dir: &Path, name: &str) -> Result<bool> {
    let _lock = lock(dir)?;
    let mut users = Users::load(dir)?;
    let existed = users.users.remove(name).is_some();
    if existed {
        users.save(dir)?;
    }
    Ok(existed)
}

/// PostgreSQL's identifier limit, and no control characters (they would end up in logs).
fn validate_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 63 || name.chars().any(char::is_control) {
        return Err(Error::Invalid(format!(
            "invalid user name {name:?}: 1 to 63 bytes, no control characters"
        )));
    }
    Ok(())
}

/// Serialise writers of the user store (blocks until the lock is free).
fn lock(dir: &Path) -> Result<File> {
    durable::create_dir_durable(dir)?;
    let path = dir.join(USERS_LOCK);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    file.lock().map_err(|e| Error::io(&path, e))?;
    Ok(file)
}

/// Like [`durable::write_atomic`], but the file is readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp: PathBuf = durable::tmp_path(path);
    let mut options = OpenOptions::new();
    options.create(true).write(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp).map_err(|e| Error::io(&tmp, e))?;
    file.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
    drop(file);
    durable::publish(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifiers_round_trip_and_never_hold_the_password() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(Users::load(dir.path()).expect("no file").is_empty());
        assert!(!add_user(dir.path(), "ana", &Role::Analyst, "s3cret pass").expect("add"));
        assert!(add_user(dir.path(), "ana", &Role::Team("search".into()), "other").expect("add"));
        let text = std::fs::read_to_string(dir.path().join(USERS_FILE)).expect("read");
        assert!(
            !text.contains("s3cret") && !text.contains("other"),
            "{text}"
        );
        assert!(text.contains("SCRAM-SHA-256$4096:"), "{text}");
        let users = Users::load(dir.path()).expect("load");
        let ana = users.iter().next().expect("one user");
        assert_eq!(ana.role, Role::Team("search".into()));
        assert_eq!(
            Verifier::decode(&ana.verifier.encode()),
            Some(ana.verifier.clone())
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(USERS_FILE))
                .expect("stat")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(remove_user(dir.path(), "ana").expect("remove"));
        assert!(!remove_user(dir.path(), "ana").expect("remove again"));
        assert!(Users::load(dir.path()).expect("load").is_empty());
    }

    #[test]
    fn unknown_names_get_a_stable_made_up_salt() {
        let dir = tempfile::tempdir().expect("tempdir");
        add_user(dir.path(), "admin", &Role::Admin, "pw").expect("add");
        let users = Users::load(dir.path()).expect("load");
        let salt = |name: &str| match users.scram_secret(name) {
            (ScramSecret::Verifier { salt, .. }, role) => (salt, role),
            (ScramSecret::SaltedPassword { .. }, _) => panic!("verifier expected"),
        };
        let (first, role) = salt("mallory");
        assert_eq!(role, None);
        assert_eq!(first.len(), SALT_BYTES);
        assert_eq!(salt("mallory").0, first);
        assert_ne!(salt("eve").0, first);
        assert_eq!(salt("admin").1, Some(Role::Admin));
    }

    #[test]
    fn damaged_stores_and_bad_input_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(USERS_FILE), "{not json").expect("write");
        assert!(matches!(
            Users::load(dir.path()),
            Err(Error::Corrupt { .. })
        ));
        std::fs::write(
            dir.path().join(USERS_FILE),
            r#"{"mock_key":"","users":[{"name":"a","role":"admin","verifier":"md5abc"}]}"#,
        )
        .expect("write");
        let err = Users::load(dir.path()).expect_err("bad verifier");
        assert!(err.to_string().contains("not a SCRAM verifier"), "{err}");
        let fresh = tempfile::tempdir().expect("tempdir");
        assert!(add_user(fresh.path(), "", &Role::Admin, "pw").is_err());
        assert!(add_user(fresh.path(), "a\nb", &Role::Admin, "pw").is_err());
        assert!(add_user(fresh.path(), "bob", &Role::Admin, "").is_err());
    }
}

//! rcluster's own state on the host: the generated password of each group, kept outside
//! any repository, readable only by the user. (`RCLUSTER_STATE_DIR` overrides the place,
//! for tests and for users who want it elsewhere.)

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use anyhow::Context;

use crate::secret::Secret;
use crate::topology::Loaded;
use crate::topology::validate::password_problem;

pub fn state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("RCLUSTER_STATE_DIR") {
        return PathBuf::from(dir);
    }
    dirs::state_dir()
        .or_else(|| dirs::home_dir().map(|h| h.join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("/tmp"))
        .join("rcluster")
}

/// A group's directory in the state directory. The name is checked here too, because a
/// name that is not one plain path component (`..`, `/`, empty) would point elsewhere.
fn group_dir(cluster: &str) -> anyhow::Result<PathBuf> {
    let mut parts = Path::new(cluster).components();
    match (parts.next(), parts.next()) {
        (Some(Component::Normal(_)), None) => Ok(state_dir().join(cluster)),
        _ => anyhow::bail!("`{cluster}` is not a group name"),
    }
}

/// Where a group's generated password lives.
pub fn password_path(cluster: &str) -> PathBuf {
    state_dir().join(cluster).join("password")
}

/// Where `rcluster env` keeps the password of an `[acl]` user for applications.
pub fn user_password_path(cluster: &str, user: &str) -> PathBuf {
    state_dir().join(cluster).join("users").join(user)
}

/// Where the password of this group comes from, for `status` to tell the user.
pub fn password_origin(loaded: &Loaded, cluster: &str) -> String {
    use crate::topology::AuthSource;
    match &loaded.topology.auth {
        AuthSource::Literal => "`auth.password` in the topology file".to_string(),
        AuthSource::Env(name) => format!("environment variable `{name}`"),
        AuthSource::File(path) => format!("file `{}`", path.display()),
        AuthSource::Generated => format!("generated, in `{}`", password_path(cluster).display()),
    }
}

/// The group's password: the topology's, else the stored generated one. `None` when the
/// topology has none and nothing was generated yet (the group was never `up`).
pub fn password(loaded: &Loaded, cluster: &str) -> anyhow::Result<Option<Secret>> {
    if let Some(p) = &loaded.password {
        return Ok(Some(p.clone()));
    }
    let path = group_dir(cluster)?.join("password");
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(e)
                .with_context(|| format!("cannot read the password file `{}`", path.display()));
        }
    };
    let password = text.trim_end();
    // An empty file would configure `requirepass ""`: no authentication at all.
    if let Some(problem) = password_problem(password) {
        anyhow::bail!(
            "the stored password in `{}` {problem}; delete the file, then `rcluster down` and `rcluster up` make a new one",
            path.display()
        );
    }
    Ok(Some(Secret::new(password.to_string())))
}

/// The group's password; on first use a new one, generated in memory and put in `host`
/// to be stored (0600, never over an existing file) by the plan's host steps.
pub fn password_or_new(
    loaded: &Loaded,
    cluster: &str,
    host: &mut crate::host_files::HostFiles,
) -> anyhow::Result<Secret> {
    if let Some(p) = password(loaded, cluster)? {
        return Ok(p);
    }
    let path = group_dir(cluster)?.join("password");
    let secret = generate();
    host.add(
        "the generated group password",
        vec![(path, Secret::new(format!("{}\n", secret.expose())))],
        true,
    );
    Ok(secret)
}

/// Write a file only its owner can read (0600, also when it already existed), synced.
pub fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create `{}`", path.display()))?;
    f.set_permissions(fs::Permissions::from_mode(0o600))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write `{}`", path.display()))
}

/// 32 random bytes as 64 hex characters: 256 bits, and no character that needs quoting
/// in a config file, a URL or a shell.
fn generate() -> Secret {
    let bytes: [u8; 32] = rand::random();
    Secret::new(hex::encode(bytes))
}

/// Forget the generated password (after `down --volumes`: the data it protected is gone).
pub fn forget(cluster: &str) -> anyhow::Result<()> {
    let dir = group_dir(cluster)?;
    match fs::remove_dir_all(&dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot remove `{}`", dir.display())),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_plain_names_get_a_state_directory() {
        for bad in ["", "..", "/", "a/b", "/etc", "."] {
            assert!(super::group_dir(bad).is_err(), "{bad:?}");
        }
        assert!(super::group_dir("demo").is_ok());
    }

    #[test]
    fn generated_passwords_are_long_and_distinct() {
        let a = super::generate();
        let b = super::generate();
        assert_eq!(a.expose().len(), 64);
        assert_ne!(a.expose(), b.expose());
    }
}

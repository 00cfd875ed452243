//! rcluster's own state on the host: the generated password of each group, kept outside
//! any repository, readable only by the user. (`RCLUSTER_STATE_DIR` overrides the place,
//! for tests and for users who want it elsewhere.)

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

use anyhow::Context;

use crate::secret::Secret;
use crate::topology::Loaded;

pub fn state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("RCLUSTER_STATE_DIR") {
        return PathBuf::from(dir);
    }
    dirs::state_dir()
        .or_else(|| dirs::home_dir().map(|h| h.join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("/tmp"))
        .join("rcluster")
}

/// Where a group's generated password lives.
pub fn password_path(cluster: &str) -> PathBuf {
    state_dir().join(cluster).join("password")
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
    let path = password_path(cluster);
    match fs::read_to_string(&path) {
        Ok(text) => Ok(Some(Secret::new(text.trim_end().to_string()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => {
            Err(e).with_context(|| format!("cannot read the password file `{}`", path.display()))
        }
    }
}

/// The group's password, generating and storing one (mode 0600) on first use.
pub fn password_or_generate(loaded: &Loaded, cluster: &str) -> anyhow::Result<Secret> {
    if let Some(p) = password(loaded, cluster)? {
        return Ok(p);
    }
    let path = password_path(cluster);
    let dir = path.parent().context("password path has no parent")?;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create the state directory `{}`", dir.display()))?;
    let secret = generate();
    // create_new: two concurrent `up`s must not overwrite each other's password.
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
    {
        Ok(mut f) => {
            f.write_all(format!("{}\n", secret.expose()).as_bytes())
                .with_context(|| format!("cannot write `{}`", path.display()))?;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600))?;
            Ok(secret)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => password(loaded, cluster)?
            .with_context(|| format!("`{}` vanished while being read", path.display())),
        Err(e) => Err(e).with_context(|| format!("cannot create `{}`", path.display())),
    }
}

/// 32 random bytes as 64 hex characters: 256 bits, and no character that needs quoting
/// in a config file, a URL or a shell.
fn generate() -> Secret {
    let bytes: [u8; 32] = rand::random();
    Secret::new(hex::encode(bytes))
}

/// Forget the generated password (after `down --volumes`: the data it protected is gone).
pub fn forget(cluster: &str) -> anyhow::Result<()> {
    let dir = state_dir().join(cluster);
    match fs::remove_dir_all(&dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot remove `{}`", dir.display())),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn generated_passwords_are_long_and_distinct() {
        let a = super::generate();
        let b = super::generate();
        assert_eq!(a.expose().len(), 64);
        assert_ne!(a.expose(), b.expose());
    }
}

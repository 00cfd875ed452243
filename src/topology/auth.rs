//! Resolving `[auth]` to the password itself.
//!
//! The environment and the file system come in as functions so that tests can feed them;
//! `load` passes the real ones. Messages never contain the password.

use std::io;
use std::path::{Path, PathBuf};

use super::raw::RawDocument;
use super::validate::password_problem;
use super::{AuthSource, Diagnostic, Severity, Topology, UserPassword};
use crate::secret::Secret;

/// The password `source` names, or the problem with it (located at its key).
/// `base` is the topology file's directory: relative password files are read from there.
pub fn resolve(
    doc: &RawDocument,
    source: &AuthSource,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    read_file: &dyn Fn(&Path) -> io::Result<String>,
) -> Result<Option<Secret>, Diagnostic> {
    match source {
        AuthSource::Generated => Ok(None),
        // Its shape was checked by validation.
        AuthSource::Literal => Ok(doc.topology.auth.password.clone()),
        AuthSource::Env(var) => from_env(doc, "auth.password_env", var, env).map(Some),
        AuthSource::File(path) => {
            from_file(doc, "auth.password_file", path, base, read_file).map(Some)
        }
    }
}

/// Read every `[acl]` user's password from its `password_env` / `password_file` into
/// `AclUser::secret`; the problems, one per user. Users with a key in `wrong_keys` (already
/// reported) are skipped.
pub fn resolve_users(
    doc: &RawDocument,
    topology: &mut Topology,
    wrong_keys: &[String],
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    read_file: &dyn Fn(&Path) -> io::Result<String>,
) -> Vec<Diagnostic> {
    let mut problems = Vec::new();
    for user in topology.acl.iter_mut().flat_map(|acl| acl.users.iter_mut()) {
        let key = format!("acl.users.{}", user.name);
        let wrong = wrong_keys
            .iter()
            .any(|k| k == &key || k.starts_with(&format!("{key}.")));
        if wrong {
            continue;
        }
        let read = match &user.password {
            UserPassword::Generated => continue,
            UserPassword::Env(var) => from_env(doc, &format!("{key}.password_env"), var, env),
            UserPassword::File(path) => {
                from_file(doc, &format!("{key}.password_file"), path, base, read_file)
            }
        };
        match read {
            Ok(secret) => user.secret = Some(secret),
            Err(e) => problems.push(e),
        }
    }
    problems
}

fn error(doc: &RawDocument, key: &str, message: String) -> Diagnostic {
    let p = doc.position(key);
    Diagnostic {
        severity: Severity::Error,
        key: key.to_string(),
        line: p.map(|p| p.line),
        column: p.map(|p| p.column),
        message,
    }
}

/// The password in the environment variable `var`, which the topology names at `key`.
fn from_env(
    doc: &RawDocument,
    key: &str,
    var: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Secret, Diagnostic> {
    let value = env(var).ok_or_else(|| {
        error(
            doc,
            key,
            format!(
                "`{key}` names `{var}`, which is not set; export it, or use another password source"
            ),
        )
    })?;
    if value.is_empty() {
        return Err(error(
            doc,
            key,
            format!("`{key}` names `{var}`, which is set but empty; put the password in it"),
        ));
    }
    if let Some(problem) = password_problem(&value) {
        return Err(error(
            doc,
            key,
            format!("the password in `{var}` (from `{key}`) {problem}"),
        ));
    }
    Ok(Secret::new(value))
}

/// The password in the file `path` (relative to `base`), which the topology names at `key`.
fn from_file(
    doc: &RawDocument,
    key: &str,
    path: &Path,
    base: &Path,
    read_file: &dyn Fn(&Path) -> io::Result<String>,
) -> Result<Secret, Diagnostic> {
    let full: PathBuf = if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    };
    let text = read_file(&full).map_err(|e| {
        error(
            doc,
            key,
            format!(
                "`{key}` is `{}`, which cannot be read: {}; create it or fix the path (relative paths start at the topology file's directory)",
                full.display(),
                lowercase_first(&e.to_string())
            ),
        )
    })?;
    // Editors add a final newline; it is not part of the password.
    let password = text.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        return Err(error(
            doc,
            key,
            format!(
                "`{key}` is `{}`, which is empty; write the password in it",
                full.display()
            ),
        ));
    }
    if let Some(problem) = password_problem(password) {
        return Err(error(
            doc,
            key,
            format!(
                "the password in `{}` (from `{key}`) {problem}",
                full.display()
            ),
        ));
    }
    Ok(Secret::new(password))
}

fn lowercase_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

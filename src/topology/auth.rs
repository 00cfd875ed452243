//! Resolving `[auth]` to the password itself.
//!
//! The environment and the file system come in as functions so that tests can feed them;
//! `load` passes the real ones. Messages never contain the password.

use std::io;
use std::path::{Path, PathBuf};

use super::raw::RawDocument;
use super::validate::password_problem;
use super::{AuthSource, Diagnostic, Severity};
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
    let error = |key: &str, message: String| {
        let p = doc.position(key);
        Diagnostic {
            severity: Severity::Error,
            key: key.to_string(),
            line: p.map(|p| p.line),
            column: p.map(|p| p.column),
            message,
        }
    };
    match source {
        AuthSource::Generated => Ok(None),
        // Its shape was checked by validation.
        AuthSource::Literal => Ok(doc.topology.auth.password.clone()),
        AuthSource::Env(var) => {
            let key = "auth.password_env";
            let value = env(var).ok_or_else(|| {
                error(
                    key,
                    format!("`{key}` names `{var}`, which is not set; export it, or use another password source"),
                )
            })?;
            if value.is_empty() {
                return Err(error(
                    key,
                    format!(
                        "`{key}` names `{var}`, which is set but empty; put the password in it"
                    ),
                ));
            }
            if let Some(problem) = password_problem(&value) {
                return Err(error(
                    key,
                    format!("the password in `{var}` (from `{key}`) {problem}"),
                ));
            }
            Ok(Some(Secret::new(value)))
        }
        AuthSource::File(path) => {
            let key = "auth.password_file";
            let full: PathBuf = if path.is_absolute() {
                path.clone()
            } else {
                base.join(path)
            };
            let text = read_file(&full).map_err(|e| {
                error(
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
                    key,
                    format!(
                        "`{key}` is `{}`, which is empty; write the password in it",
                        full.display()
                    ),
                ));
            }
            if let Some(problem) = password_problem(password) {
                return Err(error(
                    key,
                    format!(
                        "the password in `{}` (from `{key}`) {problem}",
                        full.display()
                    ),
                ));
            }
            Ok(Some(Secret::new(password)))
        }
    }
}

fn lowercase_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

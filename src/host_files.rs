//! The files `up` writes on this machine, prepared before anything is written: the
//! generated password, the `[acl]` users' password files, the CA and certificates. Each
//! becomes a plan step (`Step::CreateHostDir`, `Step::WriteHostFiles`), so `--dry-run`
//! lists them and writes nothing, and the executor writes them like any other step.
//!
//! Side effects: only [`HostFiles::create_dir`] and [`HostFiles::write`] touch the disk;
//! preparing reads what exists, to plan only what is missing or changed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::plan::Step;
use crate::secret::Secret;

/// One file to write, its contents never shown.
struct HostFile {
    text: Secret,
    /// Created only if it does not exist (the generated password: when two `up`s race, the
    /// first one's password wins and the other stops instead of overwriting it).
    exclusive: bool,
}

/// A group of files written in order by one step (a key before its certificate).
struct Group {
    what: String,
    reason: String,
    paths: Vec<PathBuf>,
}

/// The files to write, by path, and the steps that write them.
#[derive(Default)]
pub struct HostFiles {
    files: BTreeMap<PathBuf, HostFile>,
    groups: Vec<Group>,
    dirs: Vec<PathBuf>,
}

impl HostFiles {
    /// `files` (path, contents) as one step, when any of them is missing or differs from
    /// what is on disk; `exclusive` files are written only where none exists.
    pub fn add(&mut self, what: impl Into<String>, files: Vec<(PathBuf, Secret)>, exclusive: bool) {
        let stale = files.iter().any(|(path, text)| {
            std::fs::read_to_string(path).map_or(true, |now| now != text.expose())
        });
        if !stale {
            return;
        }
        let existed = files.iter().all(|(path, _)| path.exists());
        let mut paths = Vec::new();
        for (path, text) in files {
            if let Some(dir) = path.parent()
                && !dir.exists()
                && !self.dirs.iter().any(|d| d == dir)
            {
                self.dirs.push(dir.to_path_buf());
            }
            paths.push(path.clone());
            self.files.insert(path, HostFile { text, exclusive });
        }
        self.groups.push(Group {
            what: what.into(),
            reason: if existed { "changed" } else { "missing" }.to_string(),
            paths,
        });
    }

    /// The steps, in the order they must run: directories, then files.
    pub fn steps(&self) -> (Vec<Step>, Vec<Step>) {
        let dirs = self
            .dirs
            .iter()
            .map(|path| Step::CreateHostDir { path: path.clone() })
            .collect();
        let files = self
            .groups
            .iter()
            .map(|g| Step::WriteHostFiles {
                what: g.what.clone(),
                paths: g.paths.clone(),
                reason: g.reason.clone(),
            })
            .collect();
        (dirs, files)
    }

    /// A private directory (0700) and its parents.
    pub fn create_dir(&self, path: &Path) -> anyhow::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .with_context(|| format!("cannot create the directory `{}`", path.display()))
    }

    /// Write `paths` in order, each private (0600).
    pub fn write(&self, paths: &[PathBuf]) -> anyhow::Result<()> {
        for path in paths {
            let file = self.files.get(path).with_context(|| {
                format!(
                    "nothing prepared for `{}`; this is a bug in rcluster",
                    path.display()
                )
            })?;
            if file.exclusive {
                write_new(path, file.text.expose())?;
            } else {
                crate::password_store::write_private(path, file.text.expose())?;
            }
        }
        Ok(())
    }

    /// Every step at once, outside a plan (for `render`, which has none).
    pub fn write_all(&self) -> anyhow::Result<()> {
        for dir in &self.dirs {
            self.create_dir(dir)?;
        }
        for group in &self.groups {
            self.write(&group.paths)?;
        }
        Ok(())
    }
}

/// Written whole to a private temporary file, then linked into place: nobody ever reads
/// a half-written file, and a file that appeared meanwhile is never replaced.
fn write_new(path: &Path, text: &str) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}", std::process::id()));
    crate::password_store::write_private(&tmp, text)?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => anyhow::bail!(
            "`{}` was created by another `rcluster up` meanwhile; run `rcluster up` again",
            path.display()
        ),
        Err(e) => Err(e).with_context(|| format!("cannot create `{}`", path.display())),
    }
}

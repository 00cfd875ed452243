//! The image every pod runs, "like the official one": Debian files with `sh` and Redis,
//! built without a registry from the host's own Debian packages (dash as /bin/sh, coreutils,
//! sed, grep, mawk, findutils, getent, procps, redis-server, redis-tools and every library
//! `ldd` lists), imported as a root filesystem so ownership and modes are exact. Like the
//! official image it runs as root by default and has a `redis` user (uid/gid 999) owning
//! /data. Tagged by a hash of its content: built once per machine.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use super::engine::Engine;

/// Debian packages whose programs the image holds.
const PACKAGES: [&str; 10] = [
    "dash",
    "coreutils",
    "sed",
    "grep",
    "mawk",
    "findutils",
    "libc-bin",
    "procps",
    "redis-server",
    "redis-tools",
];
const REPO: &str = "rcluster-kube-test/redis";

enum Entry {
    File { bytes: Vec<u8>, mode: u32 },
    Link(String),
    Dir { mode: u32, uid: u64 },
}

/// Image files: /usr/bin etc. from the packages (merged /usr: /bin is a link), libraries at
/// the paths the loader looks for them.
fn rootfs() -> BTreeMap<String, Entry> {
    let mut out = BTreeMap::new();
    let listing = Command::new("dpkg")
        .arg("-L")
        .args(PACKAGES)
        .output()
        .expect("run dpkg -L");
    assert!(
        listing.status.success(),
        "the image needs these Debian packages: `apt-get install -y {}`:\n{}",
        PACKAGES.join(" "),
        String::from_utf8_lossy(&listing.stderr)
    );
    let mut binaries = Vec::new();
    for line in String::from_utf8_lossy(&listing.stdout).lines() {
        let path = Path::new(line.trim());
        let Some(name) = path.file_name() else {
            continue;
        };
        let dir = path.parent().map(|p| p.to_string_lossy().into_owned());
        let inside = match dir.as_deref() {
            Some("/bin" | "/usr/bin") => format!("usr/bin/{}", name.to_string_lossy()),
            Some("/sbin" | "/usr/sbin") => format!("usr/sbin/{}", name.to_string_lossy()),
            _ => continue,
        };
        let Ok(meta) = std::fs::symlink_metadata(path) else {
            continue;
        };
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(path).expect("read a symlink");
            out.insert(inside, Entry::Link(target.to_string_lossy().into_owned()));
        } else if meta.is_file() {
            let bytes = std::fs::read(path).expect("read a package file");
            out.insert(
                inside,
                Entry::File {
                    bytes,
                    mode: meta.permissions().mode() & 0o7777,
                },
            );
            binaries.push(path.to_path_buf());
        }
    }
    // Debian points these at the chosen alternative through /etc/alternatives.
    out.insert("usr/bin/sh".into(), Entry::Link("dash".into()));
    out.insert("usr/bin/awk".into(), Entry::Link("mawk".into()));
    let mut libraries: Vec<PathBuf> = Vec::new();
    for binary in &binaries {
        let Ok(ldd) = Command::new("ldd").arg(binary).output() else {
            continue;
        };
        if ldd.status.success() {
            libraries.extend(rcluster::docker::image::parse_ldd(
                &String::from_utf8_lossy(&ldd.stdout),
            ));
        }
    }
    libraries.sort();
    libraries.dedup();
    for lib in libraries {
        let bytes = std::fs::read(&lib).expect("read a library");
        let inside = lib.to_string_lossy().trim_start_matches('/').to_string();
        out.insert(inside, Entry::File { bytes, mode: 0o755 });
    }
    let text = |s: &str| Entry::File {
        bytes: s.as_bytes().to_vec(),
        mode: 0o644,
    };
    out.insert("bin".into(), Entry::Link("usr/bin".into()));
    out.insert("sbin".into(), Entry::Link("usr/sbin".into()));
    out.insert(
        "etc/passwd".into(),
        text("root:x:0:0:root:/root:/bin/sh\nredis:x:999:999::/home/redis:/usr/sbin/nologin\n"),
    );
    out.insert("etc/group".into(), text("root:x:0:\nredis:x:999:\n"));
    out.insert(
        "etc/nsswitch.conf".into(),
        text("passwd: files\ngroup: files\nhosts: files dns\n"),
    );
    for (dir, mode, uid) in [
        ("tmp", 0o1777, 0),
        ("data", 0o755, 999),
        ("root", 0o700, 0),
        ("proc", 0o755, 0),
        ("dev", 0o755, 0),
        ("sys", 0o755, 0),
        ("etc/redis", 0o755, 999),
        ("home/redis", 0o755, 999),
        ("var/run", 0o755, 0),
    ] {
        out.insert(dir.into(), Entry::Dir { mode, uid });
    }
    out
}

fn tar_of(files: &BTreeMap<String, Entry>) -> (Vec<u8>, String) {
    let mut hash = Sha256::new();
    let mut tar = tar::Builder::new(Vec::new());
    let mut dirs_done = std::collections::BTreeSet::new();
    for (path, entry) in files {
        // Parent directories first, root-owned 0755.
        let mut parent = Path::new(path).parent();
        let mut parents = Vec::new();
        while let Some(p) = parent {
            if p.as_os_str().is_empty() {
                break;
            }
            parents.push(p.to_string_lossy().into_owned());
            parent = p.parent();
        }
        for p in parents.into_iter().rev() {
            if dirs_done.insert(p.clone()) && !files.contains_key(&p) {
                append(
                    &mut tar,
                    &p,
                    &Entry::Dir {
                        mode: 0o755,
                        uid: 0,
                    },
                );
            }
        }
        hash.update(path.as_bytes());
        match entry {
            Entry::File { bytes, mode } => {
                hash.update(mode.to_le_bytes());
                hash.update(bytes);
            }
            Entry::Link(target) => hash.update(target.as_bytes()),
            Entry::Dir { mode, uid } => {
                hash.update(mode.to_le_bytes());
                hash.update(uid.to_le_bytes());
            }
        }
        dirs_done.insert(path.clone());
        append(&mut tar, path, entry);
    }
    let bytes = tar.into_inner().expect("finish the rootfs tar");
    (bytes, hex::encode(hash.finalize())[..16].to_string())
}

fn append(tar: &mut tar::Builder<Vec<u8>>, path: &str, entry: &Entry) {
    let mut header = tar::Header::new_gnu();
    header.set_mtime(0);
    match entry {
        Entry::File { bytes, mode } => {
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(bytes.len() as u64);
            header.set_mode(*mode);
            header.set_uid(0);
            header.set_gid(0);
            tar.append_data(&mut header, path, bytes.as_slice())
                .expect("append a file");
        }
        Entry::Link(target) => {
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            header.set_mode(0o777);
            tar.append_link(&mut header, path, target)
                .expect("append a link");
        }
        Entry::Dir { mode, uid } => {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_size(0);
            header.set_mode(*mode);
            header.set_uid(*uid);
            header.set_gid(*uid);
            tar.append_data(&mut header, path, std::io::empty())
                .expect("append a directory");
        }
    }
}

/// The image reference, built if the engine does not have it yet.
pub async fn ensure(engine: &Engine) -> String {
    let (rootfs, hash) = tar_of(&rootfs());
    let reference = format!("{REPO}:{hash}");
    if engine
        .image_exists(&reference)
        .await
        .expect("inspect image")
    {
        return reference;
    }
    let changes = vec![
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
        "WORKDIR /data".to_string(),
        "CMD [\"redis-server\"]".to_string(),
        "LABEL io.rcluster.kube-test.image=debian-host-packages".to_string(),
    ];
    engine
        .import_image(REPO, &hash, rootfs, changes)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    reference
}

/// The uid the image runs as when a pod sets none: root, like the official image.
pub const DEFAULT_UID: i64 = 0;

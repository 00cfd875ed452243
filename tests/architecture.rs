//! The architecture map, checked: which modules are the pure core and which have side
//! effects, read from the `crate::` and `super::` paths in `src/`. The lists below are the
//! map of `docs/architecture.md`; a new module has to be put in one of them.
//!
//! Rules:
//! - a pure module refers to pure modules only (no disk writes, Docker, network below it);
//! - the pure modules refer to each other without a circle;
//! - only `commands` (and `lib.rs`, which runs it) refers to `cli` or `commands`: library
//!   code takes its own option types, not clap's.
//!
//! Test code (from a top-level `#[cfg(test)]` on, and `tests.rs` files) is not read: a
//! test may build a fixture from anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The pure core: topology, validation, rendering, plan, health, parsing replies.
const PURE: &[&str] = &[
    "secret",
    "labels",
    "topology",
    "acl",
    "tls",
    "render",
    "config_hash",
    "observed",
    "plan",
    "health",
    "reach",
    "probe::parse",
    // What kind of engine, from facts already gathered; where the engine is, from the
    // environment and the docker CLI's files (read, never written, never connected to).
    "docker::platform",
    "docker::endpoint",
];

/// Everything with side effects (disk writes, Docker, Redis, the terminal), and the shell
/// that runs the commands.
const SIDE_EFFECTS: &[&str] = &[
    "cli",
    "commands",
    "error",
    "addressing",
    "connection",
    "docker",
    "probe",
    "wait",
    "executor",
    "password_store",
    "tls_store",
    "host_files",
    "report",
    "failover",
];

/// The modules only `commands` may refer to.
const COMMAND_LINE: &[&str] = &["cli", "commands"];

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src/") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/a/b.rs` and `src/a/b/mod.rs` are `a::b`; `lib.rs` and `main.rs` are the root ("").
fn module_of(file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src_dir()).expect("a file under src/");
    let mut parts: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The product code of a file: without comments and without its tests.
fn product_code(text: &str) -> String {
    let mut code = String::new();
    for line in text.lines() {
        if line.starts_with("#[cfg(test)]") {
            break;
        }
        let trimmed = line.trim_start();
        if trimmed.starts_with("//") {
            continue;
        }
        code.push_str(line);
        code.push('\n');
    }
    code
}

/// Every module path a file refers to through `crate::` or `super::`, with `use` groups
/// (`crate::{a, b::{c, d}}`) expanded, as absolute paths from the crate root.
fn references(file: &Path, code: &str) -> BTreeSet<Vec<String>> {
    let module = module_of(file);
    let mut found = BTreeSet::new();
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let rest = &bytes[i..];
        let boundary = i == 0 || !is_ident(bytes[i - 1]);
        let start = if !boundary {
            None
        } else if rest.starts_with(b"crate::") {
            Some((Vec::new(), "crate::".len()))
        } else if rest.starts_with(b"super::") {
            // `a/b.rs` and `a/mod.rs` are modules `a::b` and `a`: `super` is one level up.
            let mut base = module.clone();
            let mut skip = 0;
            while bytes[i + skip..].starts_with(b"super::") {
                base.pop();
                skip += "super::".len();
            }
            Some((base, skip))
        } else {
            None
        };
        match start {
            Some((base, skip)) => {
                let end = parse_tree(code, i + skip, base, &mut found);
                i = end.max(i + 1);
            }
            None => i += 1,
        }
    }
    found
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Parse `a::b::{c, d::e}` from `at`, pushing every full path; returns where it ended.
fn parse_tree(
    code: &str,
    mut at: usize,
    mut prefix: Vec<String>,
    out: &mut BTreeSet<Vec<String>>,
) -> usize {
    let bytes = code.as_bytes();
    loop {
        while at < bytes.len() && bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        if at < bytes.len() && bytes[at] == b'{' {
            at += 1;
            loop {
                at = parse_tree(code, at, prefix.clone(), out);
                while at < bytes.len() && bytes[at].is_ascii_whitespace() {
                    at += 1;
                }
                match bytes.get(at) {
                    Some(b',') => at += 1,
                    Some(b'}') => return at + 1,
                    _ => return at,
                }
                while at < bytes.len() && bytes[at].is_ascii_whitespace() {
                    at += 1;
                }
                if bytes.get(at) == Some(&b'}') {
                    return at + 1;
                }
            }
        }
        let start = at;
        while at < bytes.len() && is_ident(bytes[at]) {
            at += 1;
        }
        if start == at {
            out.insert(prefix);
            return at;
        }
        prefix.push(code[start..at].to_string());
        if code[at..].starts_with("::") {
            at += 2;
        } else {
            out.insert(prefix);
            return at;
        }
    }
}

/// The listed module a path belongs to (the longest listed prefix), if any.
fn owner<'a>(path: &[String], lists: &[&'a str]) -> Option<&'a str> {
    lists
        .iter()
        .filter(|m| {
            let parts: Vec<&str> = m.split("::").collect();
            parts.len() <= path.len() && parts.iter().zip(path).all(|(a, b)| *a == b)
        })
        .max_by_key(|m| m.split("::").count())
        .copied()
}

struct Source {
    file: String,
    module: Vec<String>,
    refs: BTreeSet<Vec<String>>,
}

fn sources() -> Vec<Source> {
    let mut files = Vec::new();
    rust_files(&src_dir(), &mut files);
    files.sort();
    files
        .into_iter()
        .filter(|f| f.file_name().is_some_and(|n| n != "tests.rs"))
        .map(|f| {
            let text = std::fs::read_to_string(&f).expect("read a source file");
            let code = product_code(&text);
            Source {
                file: f
                    .strip_prefix(Path::new(env!("CARGO_MANIFEST_DIR")))
                    .expect("under the crate")
                    .display()
                    .to_string(),
                refs: references(&f, &code),
                module: module_of(&f),
            }
        })
        .collect()
}

fn all_modules() -> Vec<&'static str> {
    PURE.iter().chain(SIDE_EFFECTS).copied().collect()
}

#[test]
fn every_module_is_on_the_map() {
    let all = all_modules();
    let unmapped: Vec<String> = sources()
        .iter()
        .filter(|s| !s.module.is_empty() && owner(&s.module, &all).is_none())
        .map(|s| s.file.clone())
        .collect();
    assert!(
        unmapped.is_empty(),
        "these files belong to no module of the architecture map (tests/architecture.rs, docs/architecture.md): {unmapped:?}"
    );
}

#[test]
fn pure_modules_import_no_side_effect_module() {
    let all = all_modules();
    let mut offences = Vec::new();
    for source in sources() {
        let Some(own) = owner(&source.module, &all) else {
            continue;
        };
        if !PURE.contains(&own) {
            continue;
        }
        for path in &source.refs {
            match owner(path, &all) {
                Some(m) if PURE.contains(&m) => {}
                Some(m) => offences.push(format!(
                    "{} (pure `{own}`) imports `crate::{}` of the side-effect module `{m}`",
                    source.file,
                    path.join("::")
                )),
                None if path.is_empty() => {}
                None => offences.push(format!(
                    "{} (pure `{own}`) imports `crate::{}`, which is on no list of the map",
                    source.file,
                    path.join("::")
                )),
            }
        }
    }
    assert!(offences.is_empty(), "{}", offences.join("\n"));
}

#[test]
fn the_pure_modules_import_each_other_without_a_circle() {
    let all = all_modules();
    let mut edges: BTreeMap<&str, BTreeMap<&str, String>> = BTreeMap::new();
    for source in sources() {
        let Some(from) = owner(&source.module, &all).filter(|m| PURE.contains(m)) else {
            continue;
        };
        for path in &source.refs {
            if let Some(to) = owner(path, PURE).filter(|to| *to != from) {
                edges.entry(from).or_default().entry(to).or_insert_with(|| {
                    format!("{} imports `crate::{}`", source.file, path.join("::"))
                });
            }
        }
    }
    // Depth-first search; a grey node met again closes a circle.
    fn visit<'a>(
        node: &'a str,
        edges: &BTreeMap<&'a str, BTreeMap<&'a str, String>>,
        stack: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<&'a str>> {
        if let Some(at) = stack.iter().position(|n| *n == node) {
            let mut circle = stack[at..].to_vec();
            circle.push(node);
            return Some(circle);
        }
        if !done.insert(node) {
            return None;
        }
        stack.push(node);
        for next in edges.get(node).into_iter().flat_map(|e| e.keys()) {
            if let Some(circle) = visit(next, edges, stack, done) {
                return Some(circle);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    for start in PURE {
        if let Some(circle) = visit(start, &edges, &mut Vec::new(), &mut done) {
            let why: Vec<&str> = circle
                .windows(2)
                .map(|w| edges[w[0]][w[1]].as_str())
                .collect();
            panic!(
                "the pure modules import each other in a circle {}:\n{}",
                circle.join(" -> "),
                why.join("\n")
            );
        }
    }
}

#[test]
fn only_commands_import_the_command_line() {
    let all = all_modules();
    let mut offences = Vec::new();
    for source in sources() {
        let own = owner(&source.module, &all);
        if source.module.is_empty() || own.is_some_and(|m| COMMAND_LINE.contains(&m)) {
            continue;
        }
        for path in &source.refs {
            if let Some(m) = owner(path, COMMAND_LINE) {
                offences.push(format!(
                    "{} imports `crate::{}`: library code takes its own option types, and only `commands` converts `{m}`'s into them",
                    source.file,
                    path.join("::")
                ));
            }
        }
    }
    assert!(offences.is_empty(), "{}", offences.join("\n"));
}

#[test]
fn the_reader_sees_grouped_and_relative_imports() {
    let file = src_dir().join("docker/platform.rs");
    let code = "use crate::{a::{b, c}, d};\nuse super::endpoint::{Endpoint, Transport};\nx(crate::e::f(1));\n";
    let refs = references(&file, code);
    let want: BTreeSet<Vec<String>> = [
        "a::b",
        "a::c",
        "d",
        "docker::endpoint::Endpoint",
        "docker::endpoint::Transport",
        "e::f",
    ]
    .iter()
    .map(|p| p.split("::").map(String::from).collect())
    .collect();
    assert_eq!(refs, want);
    let mod_file = src_dir().join("render/mod.rs");
    let refs = references(&mod_file, "use super::secret::MASK;");
    assert!(refs.contains(&vec!["secret".to_string(), "MASK".to_string()]));
}

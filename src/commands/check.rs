//! `rcluster check`: print the topology's errors and warnings.
//!
//! Diagnostics go to stderr, the one-line verdict to stdout; `--json` puts one object on
//! stdout instead. The exit code is decided here (2 when invalid) and the error is not
//! returned, so nothing is printed twice. The password is never printed.

use std::path::Path;

use super::Global;
use crate::error::{EXIT_OK, EXIT_USAGE};
use crate::topology::{self, Diagnostic, Loaded, format_diagnostics};

#[derive(serde::Serialize)]
struct Report<'a> {
    file: String,
    valid: bool,
    errors: &'a [Diagnostic],
    warnings: &'a [Diagnostic],
}

pub fn run(global: &Global) -> anyhow::Result<i32> {
    let file = &global.file;
    let result = topology::load(file, global.name.as_deref());
    let (errors, warnings) = match &result {
        Ok(loaded) => (&[][..], &loaded.warnings[..]),
        Err(e) => (&e.errors[..], &e.warnings[..]),
    };
    let code = if result.is_ok() { EXIT_OK } else { EXIT_USAGE };

    if global.json {
        let report = Report {
            file: file.display().to_string(),
            valid: result.is_ok(),
            errors,
            warnings,
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(code);
    }

    eprint!("{}", format_diagnostics(file, errors));
    if !global.quiet {
        eprint!("{}", format_diagnostics(file, warnings));
    }
    match &result {
        Ok(loaded) if !global.quiet => println!("{}", summary(file, loaded)),
        Ok(_) => {}
        Err(e) => eprintln!("error: {e}"),
    }
    Ok(code)
}

/// `topology.toml: ok: `demo`, 1 master, 2 replicas, 3 sentinels (quorum 2)`.
fn summary(file: &Path, loaded: &Loaded) -> String {
    let t = &loaded.topology;
    let plural = |n: usize, word: &str| {
        if n == 1 {
            format!("{n} {word}")
        } else {
            format!("{n} {word}s")
        }
    };
    let mut line = format!(
        "{}: ok: `{}`, 1 master, {}, {} (quorum {})",
        file.display(),
        t.cluster.name,
        plural(usize::from(t.replicas.count), "replica"),
        plural(usize::from(t.sentinel.count), "sentinel"),
        t.sentinel.quorum
    );
    if let crate::topology::Announce::Host(host) = &t.cluster.announce {
        // `up` and compose only: Kubernetes pods are known by their DNS names.
        line.push_str(&format!(
            ", announced as {host}:<published port> (ignored by `render --format k8s`)"
        ));
    } else if t.cluster.announce == crate::topology::Announce::Container {
        line.push_str(", announced as container addresses");
    }
    if !loaded.warnings.is_empty() {
        line.push_str(&format!(", {}", plural(loaded.warnings.len(), "warning")));
    }
    line
}

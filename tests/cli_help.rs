//! The command line as users meet it: every `--help` text (snapshotted, each with a summary
//! and an example) and shell completions that the shell accepts. No Docker needed.

use std::process::Command;

const COMMANDS: [&str; 11] = [
    "check",
    "render",
    "up",
    "down",
    "status",
    "failover-test",
    "cli",
    "logs",
    "completions",
    "env",
    "",
];

fn rcluster(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rcluster"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run rcluster")
}

#[test]
fn every_help_text_has_a_summary_and_an_example() {
    for command in COMMANDS {
        let args: Vec<&str> = [command, "--help"]
            .into_iter()
            .filter(|a| !a.is_empty())
            .collect();
        let output = rcluster(&args);
        assert!(output.status.success(), "{args:?}");
        let text = String::from_utf8(output.stdout).expect("utf-8 help");
        assert!(
            text.contains("Example"),
            "`{command} --help` has no example:\n{text}"
        );
        let name = if command.is_empty() {
            "rcluster"
        } else {
            command
        };
        insta::assert_snapshot!(format!("help-{name}"), text);
    }
}

#[test]
fn bash_accepts_the_completion_script() {
    let output = rcluster(&["completions", "bash"]);
    assert!(output.status.success());
    let dir = tempfile::tempdir().expect("temp dir");
    let script = dir.path().join("rcluster.bash");
    std::fs::write(&script, &output.stdout).expect("write script");
    // Source it and ask for the function it defines: a syntax error fails the source.
    let check = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source '{}' && complete -p rcluster",
            script.display()
        ))
        .output()
        .expect("run bash");
    assert!(
        check.status.success(),
        "bash rejected the script: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(String::from_utf8_lossy(&check.stdout).contains("rcluster"));
}

#[test]
fn zsh_and_fish_scripts_are_generated() {
    for shell in ["zsh", "fish"] {
        let output = rcluster(&["completions", shell]);
        assert!(output.status.success(), "{shell}");
        assert!(
            String::from_utf8_lossy(&output.stdout).contains("failover-test"),
            "{shell}"
        );
    }
}

#[test]
fn an_unknown_command_is_a_usage_error() {
    let output = rcluster(&["frobnicate"]);
    assert_eq!(output.status.code(), Some(2));
}

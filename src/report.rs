//! Events (what happened) kept apart from display (how it is shown): the same run feeds an
//! indicatif display on a terminal, plain lines elsewhere, nothing with `--quiet`, and a
//! collected list for `--json`.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Instant;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

#[derive(Debug, Clone, serde::Serialize)]
pub struct Event {
    /// Seconds since the command started.
    pub at: f64,
    /// The node it is about, or empty for the group.
    pub node: String,
    pub message: String,
}

enum Display {
    Bars {
        multi: MultiProgress,
        bars: Mutex<BTreeMap<String, ProgressBar>>,
    },
    Lines,
    Silent,
}

pub struct Reporter {
    start: Instant,
    display: Display,
    events: Mutex<Vec<Event>>,
    /// Last message per node: a repeated one is not news and is not shown again.
    last: Mutex<BTreeMap<String, String>>,
}

impl Reporter {
    /// Progress goes to stderr so that stdout stays clean for `--json` and scripts.
    pub fn new(json: bool, quiet: bool) -> Reporter {
        let display = if quiet || json {
            Display::Silent
        } else if std::io::stderr().is_terminal() {
            Display::Bars {
                multi: MultiProgress::new(),
                bars: Mutex::new(BTreeMap::new()),
            }
        } else {
            Display::Lines
        };
        Reporter {
            start: Instant::now(),
            display,
            events: Mutex::new(Vec::new()),
            last: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn elapsed(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// The nodes this run is about, in the order their lines should appear on a terminal
    /// (otherwise a line appears when its node's first event does, in arrival order).
    pub fn expect_nodes<'a>(&self, nodes: impl IntoIterator<Item = &'a str>) {
        if let Display::Bars { multi, bars } = &self.display {
            let mut bars = bars.lock().unwrap_or_else(|e| e.into_inner());
            for node in nodes {
                bars.entry(node.to_string())
                    .or_insert_with(|| new_bar(multi, node))
                    .set_message("pending");
            }
        }
    }

    /// Something happened to one node (`created`, `started`, `synced`, `watched`, ...).
    pub fn node(&self, node: &str, message: impl Into<String>) {
        let message = message.into();
        {
            let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
            if last.get(node) == Some(&message) {
                return;
            }
            last.insert(node.to_string(), message.clone());
        }
        self.record(node, &message);
        match &self.display {
            Display::Bars { multi, bars } => {
                let mut bars = bars.lock().unwrap_or_else(|e| e.into_inner());
                let bar = bars
                    .entry(node.to_string())
                    .or_insert_with(|| new_bar(multi, node));
                bar.set_message(message);
            }
            Display::Lines => eprintln!("{:>6.2}s {node:<22} {message}", self.elapsed()),
            Display::Silent => {}
        }
    }

    /// Something about the group as a whole.
    pub fn info(&self, message: impl Into<String>) {
        let message = message.into();
        self.record("", &message);
        match &self.display {
            Display::Bars { multi, .. } => {
                let _ = multi.println(&message);
            }
            Display::Lines => eprintln!("{:>6.2}s {message}", self.elapsed()),
            Display::Silent => {}
        }
    }

    /// Stop the spinners, leaving their last lines on screen.
    pub fn finish(&self) {
        if let Display::Bars { bars, .. } = &self.display {
            for bar in bars.lock().unwrap_or_else(|e| e.into_inner()).values() {
                bar.finish();
            }
        }
    }

    pub fn events(&self) -> Vec<Event> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn record(&self, node: &str, message: &str) {
        let event = Event {
            at: (self.elapsed() * 1000.0).round() / 1000.0,
            node: node.to_string(),
            message: message.to_string(),
        };
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(event);
    }
}

fn new_bar(multi: &MultiProgress, node: &str) -> ProgressBar {
    let bar = multi.add(ProgressBar::new_spinner());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {prefix:<22} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_prefix(node.to_string());
    bar.enable_steady_tick(std::time::Duration::from_millis(100));
    bar
}

/// Colour on stdout only when it is a terminal and `NO_COLOR` is unset.
pub fn colour() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// `text` in the ANSI colour `code` when [`colour`] allows, else as it is.
pub fn paint(code: &str, text: &str) -> String {
    if colour() {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// A command's `--json` document as one line. It goes through `serde_json::Value` so that
/// keys are sorted at every level, as they always have been: scripts and tests compare
/// the text, and a field moved in a struct must not change it.
pub fn json_line<T: serde::Serialize>(document: &T) -> serde_json::Result<String> {
    Ok(serde_json::to_value(document)?.to_string())
}

/// The `{node, host, port}` object that names the master in `up` and `status` output.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MasterJson {
    pub node: String,
    pub host: String,
    pub port: u16,
}

impl MasterJson {
    /// The master at the address the group hands out for it (`Layout::advertised`).
    pub fn of(layout: &crate::topology::Layout, node: &crate::topology::Node) -> MasterJson {
        let (host, port) = layout.advertised(node);
        MasterJson {
            node: node.name.clone(),
            host,
            port,
        }
    }
}

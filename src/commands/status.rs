//! `rcluster status`: every node as it reports itself, and whether the group is healthy.

use std::time::Duration;

use super::Global;
use crate::addressing;
use crate::cli::StatusArgs;
use crate::docker::Engine;
use crate::docker::observe::observe;
use crate::docker::platform::Platform;
use crate::error::{EXIT_FAILED, EXIT_OK};
use crate::health::{self, Health, NodeReport, STATUS_MAX_LAG_BYTES};
use crate::observed::{ContainerState, Observed};
use crate::password_store;
use crate::probe::Probe;
use crate::probe::parse::{LinkStatus, ReportedRole, SentinelFlag};
use crate::probe::survey;
use crate::report::{MasterJson, json_line, paint};
use crate::topology::{Layout, Loaded, Role};

pub async fn run(global: &Global, args: &StatusArgs) -> anyhow::Result<i32> {
    let loaded = super::load(global)?;
    let engine = Engine::connect().await?;
    // Once: what the engine is does not change while we watch it.
    let platform = engine.platform().await?;
    if args.watch {
        loop {
            // A failed probe is shown, not fatal: the engine or the group may come back
            // (that is what one watches for).
            let text = match snapshot(global, args, &loaded, &engine, &platform).await {
                Ok((_, text)) => text,
                Err(e) => format!("{}\n", crate::error::render(&e)),
            };
            // Clear the screen and redraw, like `watch`; Ctrl-C is the normal way out.
            print!("\x1b[2J\x1b[H{text}");
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = tokio::signal::ctrl_c() => return Ok(EXIT_OK),
            }
        }
    }
    let (code, text) = snapshot(global, args, &loaded, &engine, &platform).await?;
    if !global.quiet || global.json {
        print!("{text}");
    }
    Ok(code)
}

/// What `status` says about a group that does not exist.
fn absent(
    global: &Global,
    loaded: &Loaded,
    observed: &Observed,
    platform: &Platform,
) -> anyhow::Result<String> {
    let topology = &loaded.topology;
    let cluster = &topology.cluster.name;
    let layout = addressing::layout(topology, observed);
    // Volumes kept by `down` are worth mentioning: `up` brings their data back.
    let kept = if observed.volumes.is_empty() {
        String::new()
    } else {
        format!(
            "; its data volumes are kept: {}",
            observed.volumes.join(", ")
        )
    };
    let text = if global.json {
        let document = StatusJson {
            name: cluster.clone(),
            healthy: false,
            exists: false,
            master: None,
            sentinels_agree: false,
            subnet: layout.subnet.to_string(),
            counts: Counts::default(),
            nodes: vec![],
            volumes: Some(observed.volumes.clone()),
            problems: vec![health::Problem {
                node: cluster.clone(),
                reason: "the group does not exist".to_string(),
            }],
            password_source: password_store::password_origin(loaded, cluster),
            acl_users: None,
            password: None,
            tls: TlsJson::of(loaded),
            engine: platform.clone(),
            reach: None,
        };
        format!("{}\n", json_line(&document)?)
    } else {
        format!(
            "group `{cluster}` does not exist (run `rcluster up`){kept}\nengine: {}\n",
            platform.describe()
        )
    };
    Ok(text)
}

/// One probe of the group: (exit code, text to print).
async fn snapshot(
    global: &Global,
    args: &StatusArgs,
    loaded: &Loaded,
    engine: &Engine,
    platform: &Platform,
) -> anyhow::Result<(i32, String)> {
    let topology = &loaded.topology;
    let cluster = &topology.cluster.name;
    let observed = observe(engine, cluster).await?;
    if observed.containers.is_empty() {
        return Ok((EXIT_FAILED, absent(global, loaded, &observed, platform)?));
    }
    let (layout, reach) =
        super::existing_reach(engine, topology, &observed, Some(platform)).await?;
    let password = super::password(loaded)?;
    let probe = Probe::for_group(loaded, password.clone())?
        .with_timeouts(Duration::from_millis(300), Duration::from_millis(500));
    let reports =
        survey::probe_all(&layout, &observed, &probe, &topology.sentinel.master_name).await;
    let mut health = health::evaluate(&layout, &reports, STATUS_MAX_LAG_BYTES);
    if let Some(why) = health::failover_blocker(&reports, usize::from(topology.sentinel.quorum)) {
        health.problems.push(health::Problem {
            node: cluster.clone(),
            reason: why,
        });
        health.healthy = false;
    }
    let code = if health.healthy { EXIT_OK } else { EXIT_FAILED };
    let origin = password_store::password_origin(loaded, cluster);
    let acl_users = match (&topology.acl, &health.master) {
        (Some(_), Some(master)) => Some(
            probe
                .acl_users(survey::addr(master))
                .await
                .unwrap_or_default(),
        ),
        (Some(_), None) => Some(Vec::new()),
        (None, _) => None,
    };
    let text = if global.json {
        let mut document = json(
            cluster,
            &layout,
            &reports,
            &health,
            topology.cluster.bind,
            &origin,
            platform,
        );
        document.acl_users = acl_users;
        document.reach = Some(reach);
        if args.show_secrets {
            document.password = Some(password.expose().to_string());
        }
        document.tls = TlsJson::of(loaded);
        format!("{}\n", json_line(&document)?)
    } else {
        let mut text = table(&layout, &reports, &health, topology.cluster.bind);
        if let Some(users) = &acl_users {
            let listed: Vec<String> = users
                .iter()
                .map(|u| format!("{} ({})", u.name, if u.on { "on" } else { "off" }))
                .collect();
            text.push_str(&format!(
                "acl users: {}\n",
                if listed.is_empty() {
                    "unknown (no master answered)".to_string()
                } else {
                    listed.join(", ")
                }
            ));
        }
        text.push_str(&format!("reach: {reach}\n"));
        text.push_str(&format!("password: {origin}"));
        if args.show_secrets {
            text.push_str(&format!(" = {}", password.expose()));
        }
        text.push('\n');
        if let Some(tls) = TlsJson::of(loaded) {
            text.push_str(&tls.line());
        }
        text.push_str(&format!("engine: {}\n", platform.describe()));
        text
    };
    Ok((code, text))
}

fn details(layout: &Layout, r: &NodeReport, master_offset: Option<i64>) -> String {
    match (&r.replication, &r.sentinel) {
        (Some(Err(e)), _) | (_, Some(Err(e))) => format!("error: {e}"),
        (Some(Ok(rep)), _) if rep.is_master() => {
            format!(
                "offset {}, {} replica(s) connected",
                rep.offset,
                rep.connected_replicas.len()
            )
        }
        (Some(Ok(rep)), _) => {
            let lag = master_offset.map_or(String::new(), |m| {
                format!(", {} B behind", (m - rep.offset).max(0))
            });
            // Announced, every node shares the host: the port says which one it follows.
            let followed = match (&layout.announce, &rep.master_host) {
                (Some(_), Some(host)) => format!("{host}:{}", rep.master_port.unwrap_or(0)),
                (_, host) => host.as_deref().unwrap_or("-").to_string(),
            };
            format!(
                "follows {followed}, link {}, offset {}{lag}",
                rep.master_link_status
                    .as_ref()
                    .map_or("-", LinkStatus::as_str),
                rep.offset
            )
        }
        (_, Some(Ok(v))) => format!(
            "master {}, {} replica(s), {} other sentinel(s){}",
            v.master
                .as_ref()
                .map_or("-".to_string(), |(ip, p)| format!("{ip}:{p}")),
            v.replicas.iter().filter(|p| !p.is_down()).count(),
            v.sentinels.iter().filter(|p| !p.is_down()).count(),
            if v.master_is_down() {
                format!(" (master flags {})", SentinelFlag::join(&v.master_flags))
            } else {
                String::new()
            }
        ),
        _ => String::new(),
    }
}

fn master_offset(reports: &[NodeReport], health: &Health) -> Option<i64> {
    let m = health.master.as_ref()?;
    reports
        .iter()
        .find(|r| r.node == *m)
        .and_then(|r| r.replication.as_ref()?.as_ref().ok())
        .map(|rep| rep.offset)
}

/// `host:port` as the group hands the node out (`Layout::advertised`).
fn advertised(layout: &Layout, node: &crate::topology::Node) -> String {
    let (host, port) = layout.advertised(node);
    format!("{host}:{port}")
}

fn published(r: &NodeReport, bind: std::net::IpAddr) -> String {
    r.host_port
        .map_or("-".to_string(), |p| format!("{bind}:{p}"))
}

fn table(
    layout: &Layout,
    reports: &[NodeReport],
    health: &Health,
    bind: std::net::IpAddr,
) -> String {
    let cluster = &layout.cluster;
    let verdict = if health.healthy {
        paint("32", "healthy")
    } else {
        paint(
            "31",
            &format!("DEGRADED ({} problem(s))", health.problems.len()),
        )
    };
    let mut out = format!("group `{cluster}`: {verdict}\n");
    let mo = master_offset(reports, health);
    let rows: Vec<[String; 6]> = reports
        .iter()
        .map(|r| {
            [
                r.node.name.clone(),
                r.reported_role().unwrap_or("?").to_string(),
                r.state.to_string(),
                advertised(layout, &r.node),
                published(r, bind),
                details(layout, r, mo),
            ]
        })
        .collect();
    let header = ["NODE", "ROLE", "STATE", "ADDRESS", "PUBLISHED", "DETAILS"].map(str::to_string);
    let mut widths = [0usize; 6];
    for row in std::iter::once(&header).chain(rows.iter()) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    for row in std::iter::once(&header).chain(rows.iter()) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    match &health.master {
        Some(m) => out.push_str(&format!(
            "master: `{}` at {}; sentinels agree: {}\n",
            m.name,
            advertised(layout, m),
            if health.sentinels_agree { "yes" } else { "no" }
        )),
        None => out.push_str("master: none\n"),
    }
    for p in &health.problems {
        out.push_str(&format!(
            "{} {}: {}\n",
            paint("31", "problem:"),
            p.node,
            p.reason
        ));
    }
    out
}

/// `status --json`. Keys are sorted in the output (see `report::json_line`).
#[derive(serde::Serialize)]
pub struct StatusJson {
    pub name: String,
    pub healthy: bool,
    /// False when nothing of the group runs: then no nodes, and the kept `volumes`.
    pub exists: bool,
    /// The address the sentinels report.
    pub master: Option<MasterJson>,
    pub sentinels_agree: bool,
    pub subnet: String,
    pub counts: Counts,
    pub nodes: Vec<NodeJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volumes: Option<Vec<String>>,
    pub problems: Vec<health::Problem>,
    pub password_source: String,
    /// With `[acl]`: every user of the master (`ACL LIST`), name and on/off only; empty
    /// when the master could not be asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acl_users: Option<Vec<crate::probe::parse::AclUserState>>,
    /// Only with `--show-secrets`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// The engine the group runs on and how rcluster reached it.
    pub engine: Platform,
    /// With `[tls]`: the CA clients verify the nodes with, and what they must present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsJson>,
    /// How rcluster reaches the nodes (`path`: `container` or `published`, `via`) and what
    /// they announce (`announce`: a host, or null for container addresses); null when the
    /// group does not exist.
    pub reach: Option<crate::reach::Reach>,
}

/// `status --json`'s `tls`.
#[derive(serde::Serialize)]
pub struct TlsJson {
    pub ca_file: String,
    /// `no`, `optional` or `yes` (`tls.client_auth`).
    pub client_auth: &'static str,
}

impl TlsJson {
    fn of(loaded: &Loaded) -> Option<TlsJson> {
        crate::tls_store::client_files(loaded).map(|files| TlsJson {
            ca_file: files.ca.display().to_string(),
            client_auth: files.client_auth.as_str(),
        })
    }

    /// The line `status` prints under the table.
    fn line(&self) -> String {
        let clients = match self.client_auth {
            "yes" => "clients must present a certificate",
            "optional" => "client certificates optional",
            _ => "no client certificate asked for",
        };
        format!("tls: on, CA `{}`; {clients}\n", self.ca_file)
    }
}

/// Nodes that answer, by the role they report (sentinels: by the role they were created with).
#[derive(Default, serde::Serialize)]
pub struct Counts {
    pub master: usize,
    pub replica: usize,
    pub sentinel: usize,
}

/// One node. Fields that do not apply to it are absent; a field that applies but is
/// unknown is null.
#[derive(serde::Serialize)]
pub struct NodeJson {
    pub name: String,
    pub node: String,
    /// The role it reports itself; null when it does not answer.
    pub role: Option<String>,
    pub created_as: Role,
    pub state: ContainerState,
    pub host: String,
    pub port: u16,
    pub published: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master_host: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<Option<LinkStatus>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag_bytes: Option<Option<i64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sees_master: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sentinels: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn node_json(
    layout: &Layout,
    r: &NodeReport,
    master_offset: Option<i64>,
    bind: std::net::IpAddr,
) -> NodeJson {
    let (host, port) = layout.advertised(&r.node);
    let mut v = NodeJson {
        name: r.node.name.clone(),
        node: r.node.key.clone(),
        role: r.reported_role().map(str::to_string),
        created_as: r.node.role,
        state: r.state,
        host,
        port,
        published: r.host_port.map(|p| format!("{bind}:{p}")),
        offset: None,
        master_host: None,
        link: None,
        lag_bytes: None,
        sees_master: None,
        replicas: None,
        sentinels: None,
        error: None,
    };
    if let Some(Ok(rep)) = &r.replication {
        v.offset = Some(rep.offset);
        if !rep.is_master() {
            v.master_host = Some(rep.master_host.clone());
            v.link = Some(rep.master_link_status.clone());
            v.lag_bytes = Some(master_offset.map(|m| (m - rep.offset).max(0)));
        }
    }
    if let Some(Ok(view)) = &r.sentinel {
        v.sees_master = Some(view.master.as_ref().map(|(ip, p)| format!("{ip}:{p}")));
        v.replicas = Some(view.replicas.iter().filter(|p| !p.is_down()).count());
        v.sentinels = Some(view.sentinels.iter().filter(|p| !p.is_down()).count());
    }
    if let (Some(Err(e)), _) | (_, Some(Err(e))) = (&r.replication, &r.sentinel) {
        v.error = Some(e.clone());
    }
    v
}

fn json(
    cluster: &str,
    layout: &Layout,
    reports: &[NodeReport],
    health: &Health,
    bind: std::net::IpAddr,
    password_origin: &str,
    platform: &Platform,
) -> StatusJson {
    let mo = master_offset(reports, health);
    let reported = |role: ReportedRole| {
        reports
            .iter()
            .filter(|r| matches!(&r.replication, Some(Ok(rep)) if rep.role == role))
            .count()
    };
    StatusJson {
        name: cluster.to_string(),
        healthy: health.healthy,
        exists: true,
        master: health.master.as_ref().map(|m| MasterJson::of(layout, m)),
        sentinels_agree: health.sentinels_agree,
        subnet: layout.subnet.to_string(),
        counts: Counts {
            master: reported(ReportedRole::Master),
            replica: reported(ReportedRole::Replica),
            sentinel: reports
                .iter()
                .filter(|r| r.node.role == Role::Sentinel && r.reported_role().is_some())
                .count(),
        },
        nodes: reports
            .iter()
            .map(|r| node_json(layout, r, mo, bind))
            .collect(),
        volumes: None,
        problems: health.problems.clone(),
        password_source: password_origin.to_string(),
        acl_users: None,
        password: None,
        tls: None,
        engine: platform.clone(),
        reach: None,
    }
}

//! The kubelet part: runs one pod from its spec on the engine. A pod is a sandbox container
//! (like kubelet's pause container: it holds the pod's address, DNS aliases, /etc/hosts and
//! mounts every volume to prepare it) plus one container per `containers[]` entry joined to
//! the sandbox's network namespace. Everything a container gets comes from the pod spec and
//! the ConfigMaps and Secrets it names; nothing here knows about Redis.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::models::{
    ContainerCreateBody, EndpointIpamConfig, EndpointSettings, HostConfig, Mount, MountType,
    MountVolumeOptions, NetworkingConfig,
};
use k8s_openapi::api::core::v1::{Container, EnvVar, PodSpec, Probe, Volume};
use tokio::sync::{mpsc, watch};

use super::manifest::Manifests;
use super::{ContainerStatus, Shared};

/// Where the sandbox mounts every pod volume, to prepare it as root.
const SANDBOX_VOLUMES: &str = "/kube/volumes";
/// What `spec.nodeName` reads in a pod: the one emulated node.
pub const NODE_NAME: &str = "kube-test-node";
/// The high uid an OpenShift-like cluster gives pods that set no runAsUser.
pub const OPENSHIFT_UID: i64 = 1_000_650_000;

/// What a pod was created with; fixed for its lifetime.
#[derive(Clone)]
pub struct PodPlan {
    pub name: String,
    pub uid: String,
    pub namespace: String,
    pub ip: Ipv4Addr,
    pub spec: PodSpec,
    /// Claim template names of the StatefulSet (their volumes outlive the pod).
    pub claims: Vec<String>,
    /// DNS aliases of the pod on the network.
    pub aliases: Vec<String>,
    /// `name:ip` lines for /etc/hosts (ClusterIP Services).
    pub extra_hosts: Vec<String>,
    pub hostname: String,
    pub subdomain: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum VolumeKind {
    Claim,
    EmptyDir,
    /// ConfigMap or Secret: files written by the harness, read-only for containers.
    Projected,
}

impl PodPlan {
    pub fn sandbox(&self, sh: &Shared) -> String {
        format!("{}-{}", sh.id, self.name)
    }

    pub fn container_name(&self, sh: &Shared, container: &str) -> String {
        format!("{}-{}-{container}", sh.id, self.name)
    }

    /// Pod volume name -> (Docker volume, kind).
    fn volumes(&self, sh: &Shared) -> Result<BTreeMap<String, (String, VolumeKind)>, String> {
        let mut out = BTreeMap::new();
        for claim in &self.claims {
            out.insert(
                claim.clone(),
                (
                    format!("{claim}-{}-{}", self.name, sh.id),
                    VolumeKind::Claim,
                ),
            );
        }
        for v in self.spec.volumes.iter().flatten() {
            let kind = if v.empty_dir.is_some() {
                VolumeKind::EmptyDir
            } else if v.config_map.is_some() || v.secret.is_some() || v.projected.is_some() {
                VolumeKind::Projected
            } else if let Some(pvc) = &v.persistent_volume_claim {
                out.insert(
                    v.name.clone(),
                    (format!("{}-{}", pvc.claim_name, sh.id), VolumeKind::Claim),
                );
                continue;
            } else {
                return Err(format!(
                    "pod `{}`: volume `{}` is of a kind the harness does not emulate",
                    self.name, v.name
                ));
            };
            out.insert(
                v.name.clone(),
                (
                    format!("{}-{}-{}-{}", sh.id, self.name, self.uid, v.name),
                    kind,
                ),
            );
        }
        Ok(out)
    }

    fn fs_group(&self) -> Option<i64> {
        self.spec.security_context.as_ref().and_then(|s| s.fs_group)
    }

    pub fn grace(&self) -> Duration {
        Duration::from_secs(
            self.spec
                .termination_grace_period_seconds
                .unwrap_or(30)
                .max(0) as u64,
        )
    }
}

fn labels(sh: &Shared, pod: &str) -> HashMap<String, String> {
    HashMap::from([
        (super::LABEL.to_string(), sh.id.clone()),
        (format!("{}.pod", super::LABEL), pod.to_string()),
    ])
}

/// Create the pod's volumes and sandbox, fill ConfigMap/Secret volumes, run the init
/// containers, then hand each container to its supervisor. Returns the supervisors.
pub async fn start_pod(
    sh: Arc<Shared>,
    plan: PodPlan,
    deleting: watch::Receiver<bool>,
) -> Result<Vec<tokio::task::JoinHandle<()>>, String> {
    let volumes = plan.volumes(&sh)?;
    for (docker_volume, _) in volumes.values() {
        sh.engine
            .ensure_volume(docker_volume, labels(&sh, &plan.name))
            .await?;
    }
    let sandbox = plan.sandbox(&sh);
    sh.engine.remove_container(&sandbox).await?;
    let mounts = volumes
        .iter()
        .map(|(name, (docker_volume, _))| {
            volume_mount(docker_volume, &format!("{SANDBOX_VOLUMES}/{name}"), false)
        })
        .collect();
    let endpoint = EndpointSettings {
        ipam_config: Some(EndpointIpamConfig {
            ipv4_address: Some(plan.ip.to_string()),
            ..Default::default()
        }),
        aliases: Some(plan.aliases.clone()),
        ..Default::default()
    };
    let domain = &sh.options.cluster_domain;
    let body = ContainerCreateBody {
        image: Some(sh.image.clone()),
        entrypoint: Some(vec!["sleep".into()]),
        cmd: Some(vec!["infinity".into()]),
        hostname: Some(plan.hostname.clone()),
        domainname: plan
            .subdomain
            .as_ref()
            .map(|s| format!("{s}.{}.svc.{domain}", plan.namespace)),
        user: Some("0:0".into()),
        labels: Some(labels(&sh, &plan.name)),
        host_config: Some(HostConfig {
            network_mode: Some(sh.network.clone()),
            mounts: Some(mounts),
            extra_hosts: Some(plan.extra_hosts.clone()),
            dns_search: Some(vec![
                format!("{}.svc.{domain}", plan.namespace),
                format!("svc.{domain}"),
                domain.clone(),
            ]),
            ..Default::default()
        }),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(sh.network.clone(), endpoint)])),
        }),
        ..Default::default()
    };
    sh.engine.create_container(&sandbox, body).await?;
    sh.engine.start_container(&sandbox).await?;
    prepare_volumes(&sh, &plan, &volumes).await?;
    sh.event(&plan.name, format!("sandbox up at {}", plan.ip));

    for init in plan.spec.init_containers.iter().flatten() {
        let mut failures = 0u32;
        loop {
            if *deleting.borrow() {
                return Ok(Vec::new());
            }
            let name = plan.container_name(&sh, &format!("init-{}", init.name));
            sh.engine.remove_container(&name).await?;
            let body = container_body(&sh, &plan, init, &volumes)?;
            sh.engine.create_container(&name, body).await?;
            sh.engine.start_container(&name).await?;
            let code = sh.engine.wait_exit(&name).await?;
            let logs = sh.engine.logs_tail(&name, 20).await.unwrap_or_default();
            sh.engine.remove_container(&name).await?;
            if code == 0 {
                break;
            }
            failures += 1;
            sh.event(
                &plan.name,
                format!("init container `{}` exited with {code}:\n{logs}", init.name),
            );
            tokio::time::sleep(sh.backoff(failures)).await;
        }
    }
    let mut supervisors = Vec::new();
    for container in &plan.spec.containers {
        let task = supervise(
            sh.clone(),
            plan.clone(),
            container.clone(),
            volumes.clone(),
            deleting.clone(),
        );
        supervisors.push(tokio::spawn(task));
    }
    Ok(supervisors)
}

fn volume_mount(docker_volume: &str, target: &str, read_only: bool) -> Mount {
    Mount {
        target: Some(target.to_string()),
        source: Some(docker_volume.to_string()),
        typ: Some(MountType::VOLUME),
        read_only: Some(read_only),
        // A fresh volume is empty, as a fresh PersistentVolume is: not a copy of the image.
        volume_options: Some(MountVolumeOptions {
            no_copy: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// One source of files: a ConfigMap or a Secret, with optional `items` (key -> path,
/// mode).
struct FileSource {
    what: String,
    data: Option<BTreeMap<String, Vec<u8>>>,
    items: Option<Vec<k8s_openapi::api::core::v1::KeyToPath>>,
    optional: bool,
}

/// Files of a configMap, secret or projected (configMap and secret sources) volume.
fn projected_files(
    sh: &Shared,
    plan: &PodPlan,
    volume: &Volume,
) -> Result<Vec<(String, Vec<u8>, i32)>, String> {
    let manifests = sh.manifests();
    let config_map = |name: &str, items, optional: Option<bool>| FileSource {
        what: format!("ConfigMap `{name}`"),
        data: manifests.config_map_items(name),
        items,
        optional: optional.unwrap_or(false),
    };
    let secret = |name: &str, items, optional: Option<bool>| FileSource {
        what: format!("Secret `{name}`"),
        data: manifests.secret_items(name),
        items,
        optional: optional.unwrap_or(false),
    };
    let (sources, default_mode) = if let Some(cm) = &volume.config_map {
        (
            vec![config_map(&cm.name, cm.items.clone(), cm.optional)],
            cm.default_mode,
        )
    } else if let Some(s) = &volume.secret {
        let name = s.secret_name.clone().unwrap_or_default();
        (
            vec![secret(&name, s.items.clone(), s.optional)],
            s.default_mode,
        )
    } else if let Some(projected) = &volume.projected {
        let mut sources = Vec::new();
        for source in projected.sources.iter().flatten() {
            if let Some(cm) = &source.config_map {
                sources.push(config_map(&cm.name, cm.items.clone(), cm.optional));
            } else if let Some(s) = &source.secret {
                sources.push(secret(&s.name, s.items.clone(), s.optional));
            } else {
                return Err(format!(
                    "pod `{}`: volume `{}`: only configMap and secret projections are emulated",
                    plan.name, volume.name
                ));
            }
        }
        (sources, projected.default_mode)
    } else {
        return Ok(Vec::new());
    };
    let default_mode = default_mode.unwrap_or(0o644);
    let mut files = Vec::new();
    for source in sources {
        let Some(data) = source.data else {
            if source.optional {
                continue;
            }
            return Err(format!(
                "pod `{}`: volume `{}` names {}, which the manifests do not hold (the pod would stay ContainerCreating)",
                plan.name, volume.name, source.what
            ));
        };
        match source.items {
            Some(items) => files.extend(items.iter().filter_map(|item| {
                let bytes = data.get(&item.key)?.clone();
                Some((item.path.clone(), bytes, item.mode.unwrap_or(default_mode)))
            })),
            None => files.extend(
                data.into_iter()
                    .map(|(key, bytes)| (key, bytes, default_mode)),
            ),
        }
    }
    Ok(files)
}

/// ConfigMap/Secret volumes: root-owned files (group fsGroup when set) with the manifest's
/// modes in a root-owned 0755 directory, mounted read-only. emptyDir: 0777 (2777 and group
/// fsGroup with an fsGroup). Claims: group fsGroup and g+rwX, setgid directories, as
/// kubelet's fsGroup ownership change does.
async fn prepare_volumes(
    sh: &Shared,
    plan: &PodPlan,
    volumes: &BTreeMap<String, (String, VolumeKind)>,
) -> Result<(), String> {
    let sandbox = plan.sandbox(sh);
    let group = plan.fs_group().unwrap_or(0);
    let mut script = String::from("set -e\n");
    for (name, (_, kind)) in volumes {
        let dir = format!("{SANDBOX_VOLUMES}/{name}");
        match kind {
            VolumeKind::Projected => {
                let volume = plan
                    .spec
                    .volumes
                    .iter()
                    .flatten()
                    .find(|v| &v.name == name)
                    .expect("a projected volume is in the spec");
                let files = projected_files(sh, plan, volume)?;
                let mut tar = tar::Builder::new(Vec::new());
                for (path, bytes, mode) in &files {
                    let mut header = tar::Header::new_gnu();
                    header.set_size(bytes.len() as u64);
                    header.set_mode(*mode as u32);
                    header.set_mtime(0);
                    header.set_entry_type(tar::EntryType::Regular);
                    tar.append_data(&mut header, path, bytes.as_slice())
                        .map_err(|e| format!("cannot pack `{path}`: {e}"))?;
                }
                let tar = tar
                    .into_inner()
                    .map_err(|e| format!("cannot pack volume `{name}`: {e}"))?;
                sh.engine.upload(&sandbox, &dir, tar).await?;
                script.push_str(&format!("chown -R 0:{group} {dir}\nchmod 0755 {dir}\n"));
            }
            VolumeKind::EmptyDir => {
                if plan.fs_group().is_some() {
                    script.push_str(&format!("chgrp {group} {dir}\nchmod 2777 {dir}\n"));
                } else {
                    script.push_str(&format!("chmod 0777 {dir}\n"));
                }
            }
            VolumeKind::Claim => {
                if plan.fs_group().is_some() {
                    script.push_str(&format!(
                        "chgrp -R {group} {dir}\nchmod -R g+rwX {dir}\nfind {dir} -type d -exec chmod g+s {{}} +\n"
                    ));
                }
            }
        }
    }
    let out = sh
        .engine
        .exec(
            &sandbox,
            vec!["sh".into(), "-c".into(), script],
            Some("0:0".into()),
            Duration::from_secs(60),
        )
        .await?;
    if out.exit != Some(0) {
        return Err(format!(
            "pod `{}`: preparing volumes failed ({:?}): {}",
            plan.name, out.exit, out.stderr
        ));
    }
    Ok(())
}

/// Expand `$(VAR)` references as kubelet does (`$$` escapes; unknown names stay as written).
pub fn expand(text: &str, env: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
        {
            let name = &inner[..end];
            match env.iter().rev().find(|(k, _)| k == name) {
                Some((_, v)) => out.push_str(v),
                None => out.push_str(&format!("$({name})")),
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// A container's environment, from the manifest only.
fn environment(
    manifests: &Manifests,
    plan: &PodPlan,
    gateway: Ipv4Addr,
    env: &[EnvVar],
    from: Vec<(String, String)>,
) -> Result<Vec<(String, String)>, String> {
    // `$(VAR)` may name envFrom variables and earlier env entries.
    let mut out = from;
    for var in env {
        let value = if let Some(value) = &var.value {
            expand(value, &out)
        } else if let Some(source) = &var.value_from {
            if let Some(r) = &source.secret_key_ref {
                match manifests.secret_value(&r.name, &r.key) {
                    Some(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                    None if r.optional == Some(true) => continue,
                    None => {
                        return Err(format!(
                            "pod `{}`: env `{}` names key `{}` of Secret `{}`, which does not exist (CreateContainerConfigError)",
                            plan.name, var.name, r.key, r.name
                        ));
                    }
                }
            } else if let Some(r) = &source.config_map_key_ref {
                match manifests
                    .config_map_items(&r.name)
                    .and_then(|items| items.get(&r.key).cloned())
                {
                    Some(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                    None if r.optional == Some(true) => continue,
                    None => {
                        return Err(format!(
                            "pod `{}`: env `{}` names key `{}` of ConfigMap `{}`, which does not exist (CreateContainerConfigError)",
                            plan.name, var.name, r.key, r.name
                        ));
                    }
                }
            } else if let Some(f) = &source.field_ref {
                match f.field_path.as_str() {
                    "metadata.name" => plan.name.clone(),
                    "metadata.namespace" => plan.namespace.clone(),
                    "metadata.uid" => plan.uid.clone(),
                    "status.podIP" | "status.podIPs" => plan.ip.to_string(),
                    "status.hostIP" | "status.hostIPs" => gateway.to_string(),
                    "spec.nodeName" => NODE_NAME.to_string(),
                    "spec.serviceAccountName" => plan
                        .spec
                        .service_account_name
                        .clone()
                        .unwrap_or_else(|| "default".into()),
                    other => {
                        return Err(format!(
                            "pod `{}`: env `{}`: fieldRef `{other}` is not emulated",
                            plan.name, var.name
                        ));
                    }
                }
            } else {
                return Err(format!(
                    "pod `{}`: env `{}`: this valueFrom is not emulated",
                    plan.name, var.name
                ));
            }
        } else {
            String::new()
        };
        out.push((var.name.clone(), value));
    }
    Ok(out)
}

/// `envFrom`: every key of a ConfigMap or Secret (with `prefix`), before `env`.
fn env_from(
    manifests: &Manifests,
    plan: &PodPlan,
    container: &Container,
) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for source in container.env_from.iter().flatten() {
        let prefix = source.prefix.clone().unwrap_or_default();
        let (data, optional, what) = if let Some(r) = &source.config_map_ref {
            (
                manifests.config_map_items(&r.name),
                r.optional,
                format!("ConfigMap `{}`", r.name),
            )
        } else if let Some(r) = &source.secret_ref {
            (
                manifests.secret_items(&r.name),
                r.optional,
                format!("Secret `{}`", r.name),
            )
        } else {
            continue;
        };
        match data {
            Some(data) => out.extend(data.into_iter().map(|(k, v)| {
                (
                    format!("{prefix}{k}"),
                    String::from_utf8_lossy(&v).into_owned(),
                )
            })),
            None if optional == Some(true) => {}
            None => {
                return Err(format!(
                    "pod `{}`: envFrom names {what}, which does not exist (CreateContainerConfigError)",
                    plan.name
                ));
            }
        }
    }
    Ok(out)
}

/// The Docker container for one `containers[]` (or `initContainers[]`) entry.
fn container_body(
    sh: &Shared,
    plan: &PodPlan,
    container: &Container,
    volumes: &BTreeMap<String, (String, VolumeKind)>,
) -> Result<ContainerCreateBody, String> {
    let manifests = sh.manifests();
    let env = environment(
        &manifests,
        plan,
        sh.gateway,
        container.env.as_deref().unwrap_or_default(),
        env_from(&manifests, plan, container)?,
    )?;
    let pod_sc = plan.spec.security_context.clone().unwrap_or_default();
    let sc = container.security_context.clone().unwrap_or_default();
    let mut uid = sc.run_as_user.or(pod_sc.run_as_user);
    let mut gid = sc.run_as_group.or(pod_sc.run_as_group);
    if uid.is_none() && sh.options.openshift_uids {
        uid = Some(OPENSHIFT_UID);
        gid = gid.or(Some(0));
    }
    let effective_uid = uid.unwrap_or(super::image::DEFAULT_UID);
    if sc.run_as_non_root.or(pod_sc.run_as_non_root) == Some(true) && effective_uid == 0 {
        return Err(format!(
            "pod `{}` container `{}`: CreateContainerConfigError: container has runAsNonRoot and image will run as root",
            plan.name, container.name
        ));
    }
    let user = uid.map(|u| match gid {
        Some(g) => format!("{u}:{g}"),
        None => u.to_string(),
    });
    let mut groups: Vec<String> = pod_sc
        .supplemental_groups
        .iter()
        .flatten()
        .map(|g| g.to_string())
        .collect();
    if let Some(g) = pod_sc.fs_group {
        groups.push(g.to_string());
    }
    let mut mounts = Vec::new();
    for m in container.volume_mounts.iter().flatten() {
        if m.sub_path.is_some() || m.sub_path_expr.is_some() {
            return Err(format!(
                "pod `{}`: volumeMount `{}` uses subPath, which is not emulated",
                plan.name, m.name
            ));
        }
        let (docker_volume, kind) = volumes.get(&m.name).ok_or_else(|| {
            format!(
                "pod `{}` container `{}`: volumeMount `{}` names no volume",
                plan.name, container.name, m.name
            )
        })?;
        let read_only = m.read_only == Some(true) || *kind == VolumeKind::Projected;
        mounts.push(volume_mount(docker_volume, &m.mount_path, read_only));
    }
    let capabilities = sc.capabilities.clone().unwrap_or_default();
    let mut security_opt = Vec::new();
    if sc.allow_privilege_escalation == Some(false) {
        security_opt.push("no-new-privileges:true".to_string());
    }
    let expand_all = |items: &Option<Vec<String>>| {
        items
            .as_ref()
            .map(|v| v.iter().map(|s| expand(s, &env)).collect::<Vec<_>>())
    };
    Ok(ContainerCreateBody {
        image: Some(sh.image.clone()),
        // `command` replaces the image's ENTRYPOINT and `args` its CMD, as in Kubernetes.
        entrypoint: expand_all(&container.command),
        cmd: expand_all(&container.args),
        env: Some(env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        working_dir: container.working_dir.clone(),
        user,
        labels: Some(labels(sh, &plan.name)),
        host_config: Some(HostConfig {
            network_mode: Some(format!("container:{}", plan.sandbox(sh))),
            mounts: Some(mounts),
            group_add: (!groups.is_empty()).then_some(groups),
            cap_add: capabilities.add.clone(),
            cap_drop: capabilities.drop.clone(),
            security_opt: (!security_opt.is_empty()).then_some(security_opt),
            readonly_rootfs: sc.read_only_root_filesystem,
            privileged: sc.privileged,
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// One container of a pod, for the pod's life: create, start, probe, restart in place (new
/// container, same sandbox and address) with kubelet's back-off, until the pod is deleted.
async fn supervise(
    sh: Arc<Shared>,
    plan: PodPlan,
    container: Container,
    volumes: BTreeMap<String, (String, VolumeKind)>,
    mut deleting: watch::Receiver<bool>,
) {
    let docker_name = plan.container_name(&sh, &container.name);
    let mut consecutive_crashes = 0u32;
    loop {
        if *deleting.borrow() {
            return;
        }
        let created = async {
            sh.engine.remove_container(&docker_name).await?;
            let body = container_body(&sh, &plan, &container, &volumes)?;
            sh.engine.create_container(&docker_name, body).await?;
            sh.engine.start_container(&docker_name).await
        }
        .await;
        if let Err(e) = created {
            consecutive_crashes += 1;
            sh.event(&plan.name, format!("container `{}`: {e}", container.name));
            let delay = sh.backoff(consecutive_crashes.max(2));
            tokio::select! {
                _ = tokio::time::sleep(delay) => continue,
                _ = deleting.changed() => return,
            }
        }
        let started_at = Instant::now();
        sh.update(&plan, &container.name, |c| {
            c.running = true;
            c.started = false;
            c.ready = false;
        });
        let (stop_tx, stop_rx) = watch::channel(false);
        let (kill_tx, mut kill_rx) = mpsc::channel::<String>(1);
        tokio::spawn(probes(
            sh.clone(),
            plan.clone(),
            container.clone(),
            docker_name.clone(),
            started_at,
            stop_rx,
            kill_tx,
        ));
        let exit = tokio::select! {
            code = sh.engine.wait_exit(&docker_name) => code,
            Some(reason) = kill_rx.recv() => {
                sh.event(&plan.name, format!("container `{}`: {reason}; killing it", container.name));
                terminate(&sh, &plan, &container, &docker_name, plan.grace()).await;
                sh.engine.wait_exit(&docker_name).await
            }
            _ = deleting.changed() => {
                let _ = stop_tx.send(true);
                return;
            }
        };
        let _ = stop_tx.send(true);
        let logs = sh
            .engine
            .logs_tail(&docker_name, 40)
            .await
            .unwrap_or_default();
        let ran = started_at.elapsed();
        if ran > Duration::from_secs(600) {
            consecutive_crashes = 0;
        }
        consecutive_crashes += 1;
        let delay = sh.backoff(consecutive_crashes);
        let code = exit.map_or_else(|e| e, |c| c.to_string());
        sh.update(&plan, &container.name, |c| {
            c.running = false;
            c.started = false;
            c.ready = false;
            c.restart_count += 1;
            c.previous_logs = logs;
        });
        if *deleting.borrow() {
            return;
        }
        sh.event(
            &plan.name,
            format!(
                "container `{}` exited ({code}) after {:.1}s; restarting in {:.1}s",
                container.name,
                ran.as_secs_f64(),
                delay.as_secs_f64()
            ),
        );
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = deleting.changed() => return,
        }
    }
}

/// preStop (counting against the grace period), then SIGTERM, then SIGKILL when the rest of
/// the grace period is over.
pub async fn terminate(
    sh: &Shared,
    plan: &PodPlan,
    container: &Container,
    docker_name: &str,
    grace: Duration,
) {
    let start = Instant::now();
    let hook = container
        .lifecycle
        .as_ref()
        .and_then(|l| l.pre_stop.as_ref());
    if hook.is_some_and(|h| h.exec.is_none()) {
        sh.event(
            &plan.name,
            format!(
                "container `{}`: only exec preStop hooks are emulated; this one is skipped",
                container.name
            ),
        );
    }
    if let Some(exec) = container
        .lifecycle
        .as_ref()
        .and_then(|l| l.pre_stop.as_ref())
        .and_then(|h| h.exec.as_ref())
        .and_then(|e| e.command.clone())
        && sh.engine.is_running(docker_name).await
    {
        match sh.engine.exec(docker_name, exec, None, grace).await {
            Ok(out) if out.exit == Some(0) => {}
            Ok(out) => sh.event(
                &plan.name,
                format!(
                    "container `{}`: preStop {} after {:.1}s: {}{}",
                    container.name,
                    out.exit
                        .map_or("timed out".to_string(), |c| format!("exited with {c}")),
                    start.elapsed().as_secs_f64(),
                    out.stdout.trim(),
                    out.stderr.trim()
                ),
            ),
            Err(e) => sh.event(&plan.name, format!("preStop: {e}")),
        }
    }
    let rest = grace.saturating_sub(start.elapsed());
    // Docker's stop timeout is whole seconds; round up so the process gets its full grace.
    let secs = rest.as_secs() + u64::from(rest.subsec_nanos() > 0);
    if let Err(e) = sh.engine.stop(docker_name, secs as i32).await {
        sh.event(&plan.name, e);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ProbeKind {
    Startup,
    Liveness,
    Readiness,
}

/// Runs a container instance's probes until `stop`: startup gates the others, liveness
/// asks the supervisor to kill, readiness sets the container's `ready`.
async fn probes(
    sh: Arc<Shared>,
    plan: PodPlan,
    container: Container,
    docker_name: String,
    started_at: Instant,
    mut stop: watch::Receiver<bool>,
    kill: mpsc::Sender<String>,
) {
    let (started_tx, started_rx) = watch::channel(false);
    let run = async {
        let startup = async {
            match &container.startup_probe {
                None => {
                    sh.update(&plan, &container.name, |c| c.started = true);
                    let _ = started_tx.send(true);
                }
                Some(probe) => {
                    if probe_loop(
                        &sh,
                        &plan,
                        &container.name,
                        &docker_name,
                        ProbeKind::Startup,
                        probe,
                        started_at,
                    )
                    .await
                    {
                        sh.update(&plan, &container.name, |c| c.started = true);
                        let _ = started_tx.send(true);
                    } else {
                        let _ = kill.send("startup probe failed".into()).await;
                    }
                }
            }
        };
        let after_startup = |kind: ProbeKind, probe: Option<Probe>| {
            let mut started = started_rx.clone();
            let sh = &sh;
            let plan = &plan;
            let container = &container;
            let docker_name = &docker_name;
            let kill = kill.clone();
            async move {
                while !*started.borrow() {
                    if started.changed().await.is_err() {
                        return;
                    }
                }
                match probe {
                    None if kind == ProbeKind::Readiness => {
                        sh.update(plan, &container.name, |c| c.ready = true);
                    }
                    None => {}
                    Some(probe) => {
                        let ok = probe_loop(
                            sh,
                            plan,
                            &container.name,
                            docker_name,
                            kind,
                            &probe,
                            started_at,
                        )
                        .await;
                        if kind == ProbeKind::Liveness && !ok {
                            let _ = kill.send("liveness probe failed".into()).await;
                        }
                    }
                }
            }
        };
        tokio::join!(
            startup,
            after_startup(ProbeKind::Liveness, container.liveness_probe.clone()),
            after_startup(ProbeKind::Readiness, container.readiness_probe.clone()),
        );
    };
    tokio::select! {
        _ = run => {}
        _ = stop.changed() => {}
    }
}

/// One probe on its schedule. Startup: true once it succeeds, false when it fails past
/// its threshold. Liveness: false when it fails past its threshold. Readiness: never
/// returns (it sets `ready`).
async fn probe_loop(
    sh: &Shared,
    plan: &PodPlan,
    container: &str,
    docker_name: &str,
    kind: ProbeKind,
    probe: &Probe,
    started_at: Instant,
) -> bool {
    let initial = Duration::from_secs(probe.initial_delay_seconds.unwrap_or(0).max(0) as u64);
    let period = Duration::from_secs(probe.period_seconds.unwrap_or(10).max(1) as u64);
    let timeout = Duration::from_secs(probe.timeout_seconds.unwrap_or(1).max(1) as u64);
    let failure_threshold = probe.failure_threshold.unwrap_or(3).max(1) as u32;
    let success_threshold = probe.success_threshold.unwrap_or(1).max(1) as u32;
    tokio::time::sleep_until((started_at + initial).into()).await;
    let (mut failures, mut successes) = (0u32, 0u32);
    loop {
        let tick = Instant::now();
        match run_probe(sh, plan, docker_name, probe, timeout).await {
            Ok(()) => {
                failures = 0;
                successes += 1;
                if successes >= success_threshold {
                    match kind {
                        ProbeKind::Startup => return true,
                        ProbeKind::Readiness => sh.update(plan, container, |c| c.ready = true),
                        ProbeKind::Liveness => {}
                    }
                }
            }
            Err(why) => {
                successes = 0;
                failures += 1;
                sh.probe_failure(
                    &plan.name,
                    format!(
                        "container `{container}`: {kind:?} probe failed ({failures}/{failure_threshold}): {why}"
                    ),
                );
                if failures >= failure_threshold {
                    match kind {
                        ProbeKind::Readiness => sh.update(plan, container, |c| c.ready = false),
                        ProbeKind::Startup | ProbeKind::Liveness => return false,
                    }
                }
            }
        }
        tokio::time::sleep_until((tick + period).into()).await;
    }
}

async fn run_probe(
    sh: &Shared,
    plan: &PodPlan,
    docker_name: &str,
    probe: &Probe,
    timeout: Duration,
) -> Result<(), String> {
    if let Some(command) = probe.exec.as_ref().and_then(|e| e.command.clone()) {
        let out = sh.engine.exec(docker_name, command, None, timeout).await?;
        return match out.exit {
            Some(0) => Ok(()),
            Some(code) => Err(format!(
                "exit {code}: {} {}",
                out.stdout.trim(),
                out.stderr.trim()
            )),
            None => Err(format!("timed out after {timeout:?}")),
        };
    }
    if let Some(tcp) = &probe.tcp_socket {
        use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
        let port = match &tcp.port {
            IntOrString::Int(p) => *p as u16,
            IntOrString::String(name) => super::named_port(&plan.spec, name)
                .ok_or_else(|| format!("no container port named `{name}`"))?,
        };
        let connect = tokio::net::TcpStream::connect((plan.ip, port));
        return match tokio::time::timeout(timeout, connect).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("tcp {port}: {e}")),
            Err(_) => Err(format!("tcp {port}: timed out")),
        };
    }
    Err("only exec and tcpSocket probes are emulated".into())
}

/// Record a status change, only if the pod is still the same instance.
impl Shared {
    pub fn update(
        &self,
        plan: &PodPlan,
        container: &str,
        change: impl FnOnce(&mut ContainerStatus),
    ) {
        let mut state = self.lock();
        if let Some(pod) = state.pods.get_mut(&plan.name)
            && pod.plan.uid == plan.uid
        {
            change(pod.containers.entry(container.to_string()).or_default());
        }
    }
}

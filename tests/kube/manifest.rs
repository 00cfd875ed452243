//! Multi-document YAML -> typed Kubernetes objects, dispatched on `kind`. Pure.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};

/// Every object the harness acts on, by name. Other kinds (PodDisruptionBudget, ...) are
/// listed in `ignored` so a test can see what was not emulated.
#[derive(Debug, Clone, Default)]
pub struct Manifests {
    pub config_maps: BTreeMap<String, ConfigMap>,
    pub secrets: BTreeMap<String, Secret>,
    pub services: BTreeMap<String, Service>,
    pub stateful_sets: BTreeMap<String, StatefulSet>,
    pub ignored: Vec<String>,
}

fn typed<T: serde::de::DeserializeOwned>(doc: serde_json::Value, kind: &str) -> T {
    serde_json::from_value(doc)
        .unwrap_or_else(|e| panic!("a `{kind}` document does not parse: {e}"))
}

pub fn parse(yaml: &str) -> Manifests {
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(yaml)
        .unwrap_or_else(|e| panic!("the manifests are not YAML: {e}"));
    let mut out = Manifests::default();
    for doc in docs {
        if doc.is_null() {
            continue;
        }
        let kind = doc["kind"].as_str().unwrap_or_default().to_string();
        let name = doc["metadata"]["name"]
            .as_str()
            .unwrap_or_else(|| panic!("a `{kind}` document has no metadata.name"))
            .to_string();
        match kind.as_str() {
            "ConfigMap" => {
                out.config_maps.insert(name, typed(doc, &kind));
            }
            "Secret" => {
                out.secrets.insert(name, typed(doc, &kind));
            }
            "Service" => {
                out.services.insert(name, typed(doc, &kind));
            }
            "StatefulSet" => {
                out.stateful_sets.insert(name, typed(doc, &kind));
            }
            _ => out.ignored.push(format!("{kind}/{name}")),
        }
    }
    out
}

impl Manifests {
    /// A Secret's value: `stringData` wins over `data`, as the API server merges them.
    pub fn secret_value(&self, secret: &str, key: &str) -> Option<Vec<u8>> {
        let s = self.secrets.get(secret)?;
        if let Some(v) = s.string_data.as_ref().and_then(|d| d.get(key)) {
            return Some(v.as_bytes().to_vec());
        }
        s.data.as_ref()?.get(key).map(|b| b.0.clone())
    }

    /// Every key of a Secret (merged), for volumes.
    pub fn secret_items(&self, secret: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        let s = self.secrets.get(secret)?;
        let mut out: BTreeMap<String, Vec<u8>> = s
            .data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect();
        for (k, v) in s.string_data.iter().flatten() {
            out.insert(k.clone(), v.as_bytes().to_vec());
        }
        Some(out)
    }

    pub fn config_map_items(&self, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        let c = self.config_maps.get(name)?;
        let mut out: BTreeMap<String, Vec<u8>> = c
            .data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_bytes().to_vec()))
            .collect();
        for (k, v) in c.binary_data.iter().flatten() {
            out.insert(k.clone(), v.0.clone());
        }
        Some(out)
    }

    /// The namespace of an object (`default` when unset, as kubectl applies it).
    pub fn namespace_of(
        meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    ) -> String {
        meta.namespace.clone().unwrap_or_else(|| "default".into())
    }
}

/// Does a Service's selector pick a pod with these labels?
pub fn selects(service: &Service, labels: &BTreeMap<String, String>) -> bool {
    match service.spec.as_ref().and_then(|s| s.selector.as_ref()) {
        Some(selector) if !selector.is_empty() => selector
            .iter()
            .all(|(k, v)| labels.get(k).is_some_and(|l| l == v)),
        _ => false,
    }
}

pub fn is_headless(service: &Service) -> bool {
    service
        .spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .is_some_and(|ip| ip == "None")
}

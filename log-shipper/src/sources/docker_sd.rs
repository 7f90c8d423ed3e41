//! Prometheus' `docker_sd_configs` discovery, as promtail uses it: the
//! running containers (the config's `filters` passed to the Engine), each
//! with the `__meta_docker_*` labels Prometheus sets, one label set per
//! (network, TCP port) exactly as Prometheus builds them. promtail keys its
//! targets by container id and keeps the first label set of each; so do we.
//!
//! One difference: a container with no network at all (`--network none`)
//! yields no target in Prometheus, so promtail never ships its logs; here
//! it yields one target with the container labels, so its logs arrive too.

use std::collections::{BTreeMap, HashMap};

use bollard::models::{ContainerSummary, Network};
use bollard::query_parameters::{ListContainersOptionsBuilder, ListNetworksOptions};
use bollard::Docker;

use crate::config::DockerSdConfig;
use crate::entry::LabelSet;

pub const CONTAINER_ID: &str = "__meta_docker_container_id";
pub const CONTAINER_NAME: &str = "__meta_docker_container_name";
const CONTAINER_NETWORK_MODE: &str = "__meta_docker_container_network_mode";
const CONTAINER_LABEL: &str = "__meta_docker_container_label_";
const NETWORK_IP: &str = "__meta_docker_network_ip";
const PORT_PRIVATE: &str = "__meta_docker_port_private";
const PORT_PUBLIC: &str = "__meta_docker_port_public";
const PORT_PUBLIC_IP: &str = "__meta_docker_port_public_ip";
/// Set per line by the log reader, as promtail does.
pub const LOG_STREAM: &str = "__meta_docker_container_log_stream";

/// Prometheus' `strutil.SanitizeLabelName`: invalid characters become `_`.
pub fn sanitize_label_name(name: &str) -> String {
    // Digits may lead: the result always follows a prefix.
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Lists containers and networks and builds the targets, keyed by id.
pub async fn discover(
    docker: &Docker,
    cfg: &DockerSdConfig,
) -> Result<BTreeMap<String, LabelSet>, bollard::errors::Error> {
    let filters = super::docker_engine::filters(&cfg.filters);
    let opts = ListContainersOptionsBuilder::new()
        .filters(&filters)
        .build();
    let containers = docker.list_containers(Some(opts)).await?;
    let networks = docker.list_networks(None::<ListNetworksOptions>).await?;
    Ok(first_per_container(targets(&containers, &networks, cfg)))
}

/// The containers among `ids` that the config's `filters` select, stopped
/// ones included: runs that started and ended between two listings (their
/// starts were seen in the Engine's events), so they are read too.
pub async fn discover_ids(
    docker: &Docker,
    cfg: &DockerSdConfig,
    ids: &[String],
) -> Result<BTreeMap<String, LabelSet>, bollard::errors::Error> {
    let mut filters = super::docker_engine::filters(&cfg.filters);
    // Filters on different keys all apply; values of one key are
    // alternatives, so a user's own `id` filter narrows ours.
    let wanted: Vec<String> = match filters.get("id") {
        Some(theirs) => ids
            .iter()
            .filter(|id| theirs.iter().any(|t| id.starts_with(t.as_str())))
            .cloned()
            .collect(),
        None => ids.to_vec(),
    };
    if wanted.is_empty() {
        return Ok(BTreeMap::new());
    }
    filters.insert("id".into(), wanted);
    let opts = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    let containers = docker.list_containers(Some(opts)).await?;
    if containers.is_empty() {
        return Ok(BTreeMap::new());
    }
    let networks = docker.list_networks(None::<ListNetworksOptions>).await?;
    Ok(first_per_container(targets(&containers, &networks, cfg)))
}

/// promtail keeps the first target of each container id.
fn first_per_container(targets: Vec<LabelSet>) -> BTreeMap<String, LabelSet> {
    let mut out = BTreeMap::new();
    for t in targets {
        if let Some(id) = t.get(CONTAINER_ID) {
            out.entry(id.clone()).or_insert(t);
        }
    }
    out
}

fn network_labels(networks: &[Network]) -> HashMap<String, LabelSet> {
    let mut out = HashMap::new();
    for n in networks {
        let Some(id) = &n.id else { continue };
        let mut l = LabelSet::new();
        l.insert("__meta_docker_network_id".into(), id.clone());
        l.insert(
            "__meta_docker_network_name".into(),
            n.name.clone().unwrap_or_default(),
        );
        l.insert(
            "__meta_docker_network_scope".into(),
            n.scope.clone().unwrap_or_default(),
        );
        l.insert(
            "__meta_docker_network_internal".into(),
            n.internal.unwrap_or(false).to_string(),
        );
        l.insert(
            "__meta_docker_network_ingress".into(),
            n.ingress.unwrap_or(false).to_string(),
        );
        for (k, v) in n.labels.iter().flatten() {
            l.insert(
                format!("__meta_docker_network_label_{}", sanitize_label_name(k)),
                v.clone(),
            );
        }
        out.insert(id.clone(), l);
    }
    out
}

/// Prometheus' target groups for these containers (its `refresh`).
pub fn targets(
    containers: &[ContainerSummary],
    networks: &[Network],
    cfg: &DockerSdConfig,
) -> Vec<LabelSet> {
    let network_labels = network_labels(networks);
    let by_id: HashMap<&str, &ContainerSummary> = containers
        .iter()
        .filter_map(|c| Some((c.id.as_deref()?, c)))
        .collect();
    let mut out = Vec::new();
    for c in containers {
        let (Some(id), Some(name)) = (&c.id, c.names.as_ref().and_then(|n| n.first())) else {
            continue;
        };
        let mode = c
            .host_config
            .as_ref()
            .and_then(|h| h.network_mode.clone())
            .unwrap_or_default();
        let mut common = LabelSet::new();
        common.insert(CONTAINER_ID.into(), id.clone());
        common.insert(CONTAINER_NAME.into(), name.clone());
        common.insert(CONTAINER_NETWORK_MODE.into(), mode.clone());
        for (k, v) in c.labels.iter().flatten() {
            common.insert(
                format!("{CONTAINER_LABEL}{}", sanitize_label_name(k)),
                v.clone(),
            );
        }

        let mut nets = endpoints(c);
        // `--network container:<id>` shares another container's networks.
        let mut mode_now = mode.clone();
        let mut hops = 0;
        while nets.is_empty() && hops < 16 {
            let Some(other) = mode_now.strip_prefix("container:") else {
                break;
            };
            let Some(o) = by_id.get(other) else { break };
            nets = endpoints(o);
            mode_now = o
                .host_config
                .as_ref()
                .and_then(|h| h.network_mode.clone())
                .unwrap_or_default();
            hops += 1;
        }
        // match_first_network (default true): the first network by name.
        if cfg.match_first_network.unwrap_or(true) && nets.len() > 1 {
            nets.truncate(1);
        }
        if nets.is_empty() {
            out.push(common);
            continue;
        }
        for (net_id, ip) in nets {
            let with_network = |mut labels: LabelSet| {
                labels.extend(common.iter().map(|(k, v)| (k.clone(), v.clone())));
                if let Some(n) = network_labels.get(&net_id) {
                    labels.extend(n.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
                labels
            };
            let mut added = false;
            for p in c.ports.iter().flatten() {
                let tcp = p
                    .typ
                    .as_ref()
                    .is_some_and(|t| t.to_string().eq_ignore_ascii_case("tcp"));
                if !tcp {
                    continue;
                }
                let mut labels = LabelSet::new();
                labels.insert(NETWORK_IP.into(), ip.clone());
                labels.insert(PORT_PRIVATE.into(), p.private_port.to_string());
                if let Some(public) = p.public_port.filter(|p| *p > 0) {
                    labels.insert(PORT_PUBLIC.into(), public.to_string());
                    labels.insert(PORT_PUBLIC_IP.into(), p.ip.clone().unwrap_or_default());
                }
                let mut labels = with_network(labels);
                labels.insert("__address__".into(), join_host_port(&ip, p.private_port));
                out.push(labels);
                added = true;
            }
            if !added {
                let mut labels = LabelSet::new();
                labels.insert(NETWORK_IP.into(), ip.clone());
                let mut labels = with_network(labels);
                let addr = if mode != "host" {
                    join_host_port(&ip, cfg.port)
                } else {
                    cfg.host_networking_host.clone()
                };
                labels.insert("__address__".into(), addr);
                out.push(labels);
            }
        }
    }
    out
}

/// A container's networks as (network id, IP), sorted by network name.
fn endpoints(c: &ContainerSummary) -> Vec<(String, String)> {
    let mut nets: Vec<(&String, (String, String))> = c
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.as_ref())
        .into_iter()
        .flatten()
        .map(|(name, e)| {
            (
                name,
                (
                    e.network_id.clone().unwrap_or_default(),
                    e.ip_address.clone().unwrap_or_default(),
                ),
            )
        })
        .collect();
    nets.sort_by(|a, b| a.0.cmp(b.0));
    nets.into_iter().map(|(_, n)| n).collect()
}

fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{
        ContainerSummaryHostConfig, ContainerSummaryNetworkSettings, EndpointSettings, PortSummary,
        PortSummaryTypeEnum,
    };

    fn container(
        id: &str,
        name: &str,
        mode: &str,
        nets: &[(&str, &str, &str)],
    ) -> ContainerSummary {
        ContainerSummary {
            id: Some(id.into()),
            names: Some(vec![format!("/{name}")]),
            labels: Some(HashMap::from([(
                "com.docker.compose.service".into(),
                "web".into(),
            )])),
            host_config: Some(ContainerSummaryHostConfig {
                network_mode: Some(mode.into()),
                ..Default::default()
            }),
            network_settings: Some(ContainerSummaryNetworkSettings {
                networks: Some(
                    nets.iter()
                        .map(|(name, id, ip)| {
                            (
                                name.to_string(),
                                EndpointSettings {
                                    network_id: Some(id.to_string()),
                                    ip_address: Some(ip.to_string()),
                                    ..Default::default()
                                },
                            )
                        })
                        .collect(),
                ),
            }),
            ..Default::default()
        }
    }

    fn network(id: &str, name: &str) -> Network {
        Network {
            id: Some(id.into()),
            name: Some(name.into()),
            scope: Some("local".into()),
            internal: Some(false),
            ingress: Some(false),
            labels: Some(HashMap::from([("team-a".into(), "x".into())])),
            ..Default::default()
        }
    }

    #[test]
    fn labels_as_prometheus_sets_them() {
        let mut c = container("abc", "web-1", "bridge", &[("bridge", "n1", "172.17.0.2")]);
        c.ports = Some(vec![
            PortSummary {
                ip: Some("0.0.0.0".into()),
                private_port: 80,
                public_port: Some(8080),
                typ: Some(PortSummaryTypeEnum::TCP),
            },
            PortSummary {
                ip: None,
                private_port: 53,
                public_port: None,
                typ: Some(PortSummaryTypeEnum::UDP),
            },
        ]);
        let t = targets(&[c], &[network("n1", "bridge")], &DockerSdConfig::default());
        assert_eq!(t.len(), 1, "the UDP port makes no target: {t:?}");
        let l = &t[0];
        for (k, v) in [
            ("__meta_docker_container_id", "abc"),
            ("__meta_docker_container_name", "/web-1"),
            ("__meta_docker_container_network_mode", "bridge"),
            (
                "__meta_docker_container_label_com_docker_compose_service",
                "web",
            ),
            ("__meta_docker_network_ip", "172.17.0.2"),
            ("__meta_docker_network_name", "bridge"),
            ("__meta_docker_network_id", "n1"),
            ("__meta_docker_network_scope", "local"),
            ("__meta_docker_network_internal", "false"),
            ("__meta_docker_network_ingress", "false"),
            ("__meta_docker_network_label_team_a", "x"),
            ("__meta_docker_port_private", "80"),
            ("__meta_docker_port_public", "8080"),
            ("__meta_docker_port_public_ip", "0.0.0.0"),
            ("__address__", "172.17.0.2:80"),
        ] {
            assert_eq!(l.get(k).map(String::as_str), Some(v), "{k} in {l:?}");
        }
    }

    #[test]
    fn fallback_port_host_networking_shared_networks_and_no_network() {
        let cfg = DockerSdConfig {
            port: 9100,
            host_networking_host: "myhost".into(),
            ..Default::default()
        };
        let plain = container(
            "a",
            "a",
            "bridge",
            &[("zeta", "n2", "10.0.0.2"), ("alpha", "n1", "10.0.0.1")],
        );
        let host = container("b", "b", "host", &[("host", "n3", "")]);
        let shared = container("c", "c", "container:a", &[]);
        let none = container("d", "d", "none", &[]);
        let t = first_per_container(targets(&[plain, host, shared, none], &[], &cfg));
        assert_eq!(
            t["a"]["__address__"], "10.0.0.1:9100",
            "first network by name"
        );
        assert_eq!(t["b"]["__address__"], "myhost");
        assert_eq!(t["c"]["__meta_docker_network_ip"], "10.0.0.1");
        assert_eq!(t["d"]["__meta_docker_container_name"], "/d");
        let all = targets(
            &[container(
                "a",
                "a",
                "bridge",
                &[("zeta", "n2", "10.0.0.2"), ("alpha", "n1", "10.0.0.1")],
            )],
            &[],
            &DockerSdConfig {
                match_first_network: Some(false),
                ..Default::default()
            },
        );
        assert_eq!(all.len(), 2);
    }

    #[test]
    fn label_names_are_sanitized() {
        assert_eq!(sanitize_label_name("com.example/x-y"), "com_example_x_y");
        assert_eq!(sanitize_label_name("9lives"), "9lives");
    }
}

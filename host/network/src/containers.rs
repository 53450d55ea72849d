//! A container's side of networking: the plan made at create (networks checked, static
//! address checked, host ports claimed, files written), the attachment made at start (CNI ADD
//! into a named namespace) and undone at stop and rm (DEL), and gc of what crashes left.
//!
//! Every step that has effects outside berth's files is preceded by a record of it: the
//! `attached` list is written before the first ADD, so DEL (idempotent) can always undo it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use berth_core::{
    ContainerSpec, Error, HostEntry, IoContext, Mount, NETWORK_HOST, NETWORK_NONE,
    NetworkAttachment, NetworkNamespace, PortMapping, Result, Survives,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::files::{Hosts, Resolver};
use crate::{Networks, cni, netns, ports};

const RECORD: &str = "attachment.json";
const RESOLVED_CONF: &str = "/run/systemd/resolve/resolv.conf";

/// What the engine changes in a spec before its backend sees it.
#[derive(Debug, Clone)]
pub struct Plan {
    pub namespace: NetworkNamespace,
    /// /etc/hosts, /etc/resolv.conf and /etc/hostname.
    pub mounts: Vec<Mount>,
    /// The published ports, every host port chosen.
    pub ports: Vec<PortMapping>,
}

/// A container's networking, as planned at create and attached at start.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    name: String,
    hostname: String,
    networks: Vec<String>,
    #[serde(default)]
    address: Option<Ipv4Addr>,
    #[serde(default)]
    ports: Vec<PortMapping>,
    #[serde(default)]
    extra_hosts: Vec<HostEntry>,
    /// What ADD was (or may have been) run for; emptied once DEL succeeded.
    #[serde(default)]
    attached: Vec<Attached>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Attached {
    network: String,
    interface: String,
    /// The conflist the ADD used: DEL must see the same.
    conflist: Value,
    /// The ADD's result, once it returned.
    #[serde(default)]
    result: Option<Value>,
}

impl Attached {
    /// Where CNI puts (or finds) this attachment's interface.
    fn target<'a>(&'a self, id: &'a str, netns: &'a Path) -> cni::Target<'a> {
        cni::Target {
            container_id: id,
            netns,
            ifname: &self.interface,
        }
    }

    /// The container's address on this network (CIDR).
    fn address(&self) -> Option<&str> {
        self.result.as_ref()?["ips"][0]["address"].as_str()
    }

    fn ip(&self) -> Option<IpAddr> {
        self.address()?.split('/').next()?.parse().ok()
    }
}

impl Networks {
    fn container_dir(&self, id: &str) -> PathBuf {
        self.containers_dir().join(id)
    }

    fn read_record(&self, id: &str) -> Result<Option<Record>> {
        berth_core::store::read_json(&self.container_dir(id).join(RECORD), "network attachment")
    }

    fn write_record(&self, id: &str, record: &Record, survives: Survives) -> Result<()> {
        berth_core::store::write_json_surviving(
            &self.container_dir(id).join(RECORD),
            record,
            survives,
        )
    }

    fn netns_path(&self, id: &str) -> PathBuf {
        self.netns_dir.join(id)
    }

    /// At create: where the container's network comes from, checked and prepared. Named
    /// networks must exist, a static address must be a free host address of the (first)
    /// network's subnet, host ports are claimed; the files the container's resolver reads are
    /// written. `holder` names a container id for a port-conflict message.
    /// `survives`: what the container's records must survive (see [`Survives`]).
    pub fn plan(
        &self,
        id: &str,
        spec: &ContainerSpec,
        survives: Survives,
        holder: impl Fn(&str) -> String,
    ) -> Result<Plan> {
        let networks: Vec<String> = match spec.networks.as_slice() {
            [] => vec![self.config.default.clone()],
            names => names.to_vec(),
        };
        let hostname = spec
            .hostname
            .clone()
            .unwrap_or_else(|| id[..12].to_string());
        let dir = self.container_dir(id);
        let file = |name: &str| dir.join(name);
        let bind = |source: PathBuf, target: &str| Mount {
            source: source.display().to_string(),
            target: target.to_string(),
            readonly: false,
            owner: None,
        };
        let mut record = Record {
            name: spec.name.clone(),
            hostname: hostname.clone(),
            networks: Vec::new(),
            address: None,
            ports: spec.ports.clone(),
            extra_hosts: spec.extra_hosts.clone(),
            attached: Vec::new(),
        };
        let mut first_network = None;
        let namespace = match networks.as_slice() {
            [only] if only == NETWORK_HOST => NetworkNamespace::Host,
            [only] if only == NETWORK_NONE => NetworkNamespace::Private,
            names => {
                for name in names {
                    let network = self.get(name)?;
                    first_network.get_or_insert(network);
                }
                record.networks = names.to_vec();
                NetworkNamespace::Path(self.netns_path(id))
            }
        };
        let networked = first_network.is_some();
        if !networked && !spec.ports.is_empty() {
            return Err(Error::invalid(
                "published ports (-p)",
                format!(
                    "the container has no network of its own (--network {})",
                    networks[0]
                ),
            )
            .with_hint("publish ports from a container on a bridge network"));
        }
        if let Some(address) = &spec.network {
            let Some(network) = &first_network else {
                return Err(Error::invalid(
                    format!("static address {}", address.ipv4),
                    "the container has no network to put it on",
                ));
            };
            let subnet = network.subnet()?;
            if let Some(asked) = address.cidr()?
                && asked != subnet.to_string()
            {
                return Err(Error::invalid(
                    format!("subnet {asked}"),
                    format!("network {:?} has subnet {subnet}", network.name),
                )
                .with_hint("leave --subnet out: the network's subnet is used"));
            }
            if !subnet.is_host(address.ipv4) || network.gateway == address.ipv4.to_string() {
                return Err(Error::invalid(
                    format!("static address {}", address.ipv4),
                    format!(
                        "it is not a free host address of network {:?} ({subnet}, gateway {})",
                        network.name, network.gateway
                    ),
                )
                .with_hint(format!("choose an address in {subnet}")));
            }
            record.address = Some(address.ipv4);
        }

        let _lock = self.lock()?;
        if let Some(address) = record.address
            && let Some(other) = self.address_owner(id, &record.networks[0], address)?
        {
            return Err(Error::conflict(
                format!("static address {address}"),
                format!("container {} has it", holder(&other)),
            ));
        }
        ports::claim(
            &self.ports_dir(),
            id,
            &spec.name,
            &mut record.ports,
            &holder,
        )?;
        let written = (|| {
            self.write_record(id, &record, survives)?;
            write_file(
                &file("resolv.conf"),
                &resolv_conf(spec, &namespace),
                survives,
            )?;
            write_file(&file("hostname"), &format!("{hostname}\n"), survives)?;
            let hosts = match namespace {
                NetworkNamespace::Host => std::fs::read_to_string("/etc/hosts").unwrap_or_default(),
                _ => render_hosts(&record, None, &[]),
            };
            write_file(&file("hosts"), &hosts, survives)
        })();
        if let Err(e) = written {
            let _ = self.release(id);
            return Err(e);
        }
        Ok(Plan {
            namespace,
            mounts: vec![
                bind(file("hosts"), "/etc/hosts"),
                bind(file("resolv.conf"), "/etc/resolv.conf"),
                bind(file("hostname"), "/etc/hostname"),
            ],
            ports: record.ports,
        })
    }

    /// The container (other than `id`) planned with static `address` on `network`.
    fn address_owner(&self, id: &str, network: &str, address: Ipv4Addr) -> Result<Option<String>> {
        for other in self.container_ids() {
            if other == id {
                continue;
            }
            if let Some(record) = self.read_record(&other)?
                && record.address == Some(address)
                && record.networks.first().map(String::as_str) == Some(network)
            {
                return Ok(Some(other));
            }
        }
        Ok(None)
    }

    /// At start: a namespace at the planned path, ADD for each network (the first one gets the
    /// static address and the published ports), then /etc/hosts of every container sharing a
    /// network is rewritten. A failure leaves nothing attached. Without a plan, or with a
    /// `none`/`host` one, there is nothing to do.
    pub async fn attach(&self, id: &str) -> Result<()> {
        // The networks first: making the default one takes the lock itself (flock does not
        // nest, even within one process).
        let Some(planned) = self.read_record(id)? else {
            return Ok(());
        };
        let networks = planned
            .networks
            .iter()
            .map(|name| self.get(name))
            .collect::<Result<Vec<_>>>()?;
        let _lock = self.lock()?;
        let Some(mut record) = self.read_record(id)? else {
            return Ok(());
        };
        if record.networks.is_empty() {
            return Ok(());
        }
        if !record.attached.is_empty() {
            // A start after a stop that could not DEL, or after a crash.
            self.detach_locked(id, &mut record).await?;
        }
        let netns = netns::create(&self.netns_dir, id)?;
        for (index, network) in networks.into_iter().enumerate() {
            let name = network.name.clone();
            crate::forwarding::ensure(&network, &self.install_id, &self.rules_dir)?;
            // portmap only where ports are published: the first network, when there are any.
            let publishes = index == 0 && !record.ports.is_empty();
            let mut conflist = network.conflist;
            if !publishes && let Some(plugins) = conflist["plugins"].as_array_mut() {
                plugins.retain(|p| p["type"] != "portmap");
            }
            record.attached.push(Attached {
                network: name,
                interface: format!("eth{index}"),
                conflist,
                result: None,
            });
        }
        self.write_record(id, &record, Survives::PowerLoss)?;
        berth_core::crash::point("network.attach-intended");
        let outcome = self.add_all(id, &netns, &mut record).await;
        if let Err(e) = outcome {
            if let Err(undo) = self.detach_locked(id, &mut record).await {
                tracing::warn!(%id, error = %undo, "cannot undo a failed network attach");
            }
            return Err(e);
        }
        self.refresh_hosts()
    }

    async fn add_all(&self, id: &str, netns: &Path, record: &mut Record) -> Result<()> {
        for index in 0..record.attached.len() {
            let runtime = self.runtime_args(record, index);
            let attached = &record.attached[index];
            let target = attached.target(id, netns);
            let result = match self.runner.add(&attached.conflist, target, &runtime).await {
                // Memoh's rule: a duplicate allocation (a lease a crash left) is freed and the
                // ADD tried once more.
                Err(Error::NetworkPlugin { message, .. })
                    if message.contains("duplicate allocation") =>
                {
                    let _ = self
                        .runner
                        .del(&attached.conflist, target, &runtime, None)
                        .await;
                    self.runner
                        .add(&attached.conflist, target, &runtime)
                        .await?
                }
                other => other?,
            };
            record.attached[index].result = Some(result);
            self.write_record(id, record, Survives::PowerLoss)?;
        }
        Ok(())
    }

    /// The CNI runtime arguments: a static address and published ports go to the first network.
    fn runtime_args(&self, record: &Record, index: usize) -> Value {
        if index > 0 {
            return json!({});
        }
        let mut args = json!({});
        if let Some(address) = record.address {
            let prefix =
                record.attached[0].conflist["plugins"][0]["ipam"]["ranges"][0][0]["subnet"]
                    .as_str()
                    .and_then(|s| s.split_once('/'))
                    .map(|(_, p)| p.to_string())
                    .unwrap_or_else(|| "32".into());
            args["ips"] = json!([format!("{address}/{prefix}")]);
        }
        if !record.ports.is_empty() {
            args["portMappings"] = Value::Array(
                record
                    .ports
                    .iter()
                    .map(|p| {
                        json!({
                            "hostPort": p.host_port,
                            "containerPort": p.container_port,
                            "protocol": p.protocol,
                            "hostIP": p.host_ip.clone().unwrap_or_default(),
                        })
                    })
                    .collect(),
            );
        }
        args
    }

    /// At stop and rm: DEL for every network ADD ran for, the namespace removed, peers'
    /// /etc/hosts rewritten. Idempotent.
    pub async fn detach(&self, id: &str) -> Result<()> {
        let _lock = self.lock()?;
        let Some(mut record) = self.read_record(id)? else {
            return Ok(());
        };
        if record.attached.is_empty() && !self.netns_path(id).exists() {
            return Ok(());
        }
        self.detach_locked(id, &mut record).await?;
        self.refresh_hosts()
    }

    async fn detach_locked(&self, id: &str, record: &mut Record) -> Result<()> {
        let netns = self.netns_path(id);
        // The namespace goes first: the kernel then deletes the container's end of each veth
        // (and so its host end) with the namespace, in the background, where bridge's DEL
        // would wait 10-30 ms for it. DEL without a namespace is the spec's (CNI_NETNS is
        // optional there): bridge frees the IPAM lease and finds no link to delete, portmap
        // drops its rules.
        netns::remove(&netns)?;
        let mut first_error = None;
        for index in (0..record.attached.len()).rev() {
            let runtime = self.runtime_args(record, index);
            let attached = &record.attached[index];
            let target = attached.target(id, &netns);
            match self
                .runner
                .del(
                    &attached.conflist,
                    target,
                    &runtime,
                    attached.result.as_ref(),
                )
                .await
            {
                Ok(()) => {
                    record.attached.remove(index);
                    self.write_record(id, record, Survives::PowerLoss)?;
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        berth_core::crash::point("network.deleted");
        netns::release_dir(&self.netns_dir)
    }

    /// CNI CHECK of every network the container is attached to: whether its interface,
    /// address and rules are still what ADD made. Nothing attached is nothing to check.
    pub async fn check(&self, id: &str) -> Result<()> {
        let Some(record) = self.read_record(id)? else {
            return Ok(());
        };
        let netns = self.netns_path(id);
        for (index, attached) in record.attached.iter().enumerate() {
            let Some(result) = &attached.result else {
                continue;
            };
            let target = attached.target(id, &netns);
            self.runner
                .check(
                    &attached.conflist,
                    target,
                    &self.runtime_args(&record, index),
                    result,
                )
                .await?;
        }
        Ok(())
    }

    /// At rm, after `detach`: the container's port claims and files.
    pub fn release(&self, id: &str) -> Result<()> {
        ports::release(&self.ports_dir(), id)?;
        let dir = self.container_dir(id);
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::io(format!("removing {}", dir.display()), e))
            }
            _ => Ok(()),
        }
    }

    /// The networks a container is on, with its addresses, and the ports it publishes.
    pub fn status(&self, id: &str) -> (Vec<NetworkAttachment>, Vec<PortMapping>) {
        let Ok(Some(record)) = self.read_record(id) else {
            return (Vec::new(), Vec::new());
        };
        let attachments = record
            .attached
            .iter()
            .filter(|a| a.result.is_some())
            .map(|a| {
                let result = a.result.as_ref().expect("filtered");
                let mac = result["interfaces"]
                    .as_array()
                    .and_then(|i| i.iter().find(|i| i["sandbox"].as_str().is_some()))
                    .and_then(|i| i["mac"].as_str())
                    .map(str::to_string);
                NetworkAttachment {
                    network: a.network.clone(),
                    interface: a.interface.clone(),
                    address: a.address().map(str::to_string),
                    gateway: result["ips"][0]["gateway"].as_str().map(str::to_string),
                    mac,
                }
            })
            .collect();
        (attachments, record.ports)
    }

    /// Whether the container holds (or may hold: an ADD that did not finish) an address.
    pub fn is_attached(&self, id: &str) -> bool {
        matches!(self.read_record(id), Ok(Some(record)) if !record.attached.is_empty())
            || self.netns_path(id).exists()
    }

    /// The ids of containers attached to (or planned on) network `name`.
    pub fn users(&self, name: &str) -> Result<Vec<String>> {
        let mut users = Vec::new();
        for id in self.container_ids() {
            if let Some(record) = self.read_record(&id)?
                && record.networks.iter().any(|n| n == name)
            {
                users.push(id);
            }
        }
        Ok(users)
    }

    fn container_ids(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.containers_dir()) else {
            return Vec::new();
        };
        let mut ids: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        ids.sort();
        ids
    }

    /// Rewrites the /etc/hosts of every attached container: itself, its extra hosts, and
    /// every other container on a network it is on. In place (the file is bind-mounted).
    fn refresh_hosts(&self) -> Result<()> {
        let records: Vec<(String, Record)> = self
            .container_ids()
            .into_iter()
            .filter_map(|id| Some((id.clone(), self.read_record(&id).ok()??)))
            .collect();
        for (id, record) in &records {
            if record.networks.is_empty() {
                continue;
            }
            let mut peers: BTreeMap<IpAddr, BTreeSet<&str>> = BTreeMap::new();
            for (other_id, other) in &records {
                if other_id == id {
                    continue;
                }
                for attached in &other.attached {
                    let shared = record
                        .attached
                        .iter()
                        .any(|a| a.network == attached.network);
                    if let (true, Some(ip)) = (shared, attached.ip()) {
                        let names = peers.entry(ip).or_default();
                        names.insert(other.name.as_str());
                        names.insert(other.hostname.as_str());
                    }
                }
            }
            let peers: Vec<(IpAddr, Vec<&str>)> = peers
                .into_iter()
                .map(|(ip, names)| (ip, names.into_iter().collect()))
                .collect();
            let own = record.attached.first().and_then(Attached::ip);
            let text = render_hosts(record, own, &peers);
            let path = self.container_dir(id).join("hosts");
            std::fs::write(&path, text).context(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    }

    /// What crashes left: attachments and files of containers berth has no record of (`live`
    /// says which ids it has), port claims they hold, namespaces nothing records. One line per
    /// thing removed (or that would be, with `dry_run`).
    pub async fn collect_garbage(
        &self,
        live: &(dyn Fn(&str) -> bool + Sync),
        dry_run: bool,
    ) -> Result<Vec<String>> {
        let mut done = Vec::new();
        for id in self.container_ids() {
            if live(&id) {
                continue;
            }
            done.push(format!("the network attachment of removed container {id}"));
            if !dry_run {
                self.detach(&id).await?;
                // What a plugin's DEL may leave when the interface was already gone.
                done.extend(crate::rules::remove_tagged(&id)?);
                self.release(&id)?;
            }
        }
        for (path, owner) in ports::claims(&self.ports_dir()) {
            if owner.as_deref().is_some_and(live) {
                continue;
            }
            done.push(format!("the host-port claim {}", path.display()));
            if !dry_run {
                let _ = std::fs::remove_file(&path);
            }
        }
        let _lock = self.lock()?;
        if let Ok(entries) = std::fs::read_dir(&self.netns_dir) {
            for entry in entries.filter_map(|e| e.ok()) {
                let id = entry.file_name().to_string_lossy().into_owned();
                if self.container_dir(&id).exists() {
                    continue;
                }
                done.push(format!("the network namespace of removed container {id}"));
                if !dry_run {
                    netns::remove(&entry.path())?;
                }
            }
        }
        if !dry_run {
            netns::release_dir(&self.netns_dir)?;
        }
        Ok(done)
    }
}

/// The container's resolv.conf: what `--dns*` asked, else the host's own in the host's
/// namespace, else the host's upstream servers.
fn resolv_conf(spec: &ContainerSpec, namespace: &NetworkNamespace) -> String {
    let asked = Resolver {
        servers: spec.dns.clone(),
        search: spec.dns_search.clone(),
        options: spec.dns_options.clone(),
    };
    if asked != Resolver::default() {
        return asked.render();
    }
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    if *namespace == NetworkNamespace::Host {
        return host;
    }
    // systemd-resolved's list of real upstream servers, when it runs (its stub at 127.0.0.53
    // answers only in the host's namespace), as Memoh's service reads it.
    let upstream = std::fs::read_to_string(RESOLVED_CONF).unwrap_or(host);
    Resolver::from_host(&upstream).render()
}

fn render_hosts(record: &Record, own: Option<IpAddr>, peers: &[(IpAddr, Vec<&str>)]) -> String {
    let mut names = vec![record.hostname.as_str()];
    if record.name != record.hostname && !record.name.is_empty() {
        names.push(record.name.as_str());
    }
    Hosts {
        own: own.map(|ip| vec![(ip, names)]).unwrap_or_default(),
        extra: &record.extra_hosts,
        peers: peers.to_vec(),
    }
    .render()
}

fn write_file(path: &Path, text: &str, survives: Survives) -> Result<()> {
    berth_core::store::atomic_write_surviving(path, text.as_bytes(), 0o644, survives)
}

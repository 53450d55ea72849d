//! Container networking through real CNI plugins, for every backend that runs a container in a
//! network namespace the host prepares (native, containerd).
//!
//! A network is a CNI conflist under `<state-dir>/networks/<name>.conflist` (bridge with
//! host-local IPAM, then portmap, which runs only for containers that publish ports) and a
//! few iptables rules of its own (masquerade, FORWARD accepts), created by
//! `berth network create` or, for the default network, on first use from `[network]`. A container's attachment lives in
//! `<state-dir>/networks/containers/<id>/`: the intent record written before any plugin runs
//! (so a crash is undone by DEL), its hosts, resolv.conf and hostname files (bind-mounted into
//! the container), and host-port claims under `ports/`. Containers sharing a network find
//! each other by name through their /etc/hosts, rewritten as containers come and go.

pub mod cni;
mod containers;
pub mod files;
mod forwarding;
pub mod netns;
mod ports;
mod rules;
pub mod subnet;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use berth_core::config::NetworkConfig;
use berth_core::{Error, IoContext, LockMode, Object, Result, Store};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};

pub use containers::Plan;
use subnet::Subnet;

const CONFLIST: &str = "conflist";

/// Whether a container of `spec` may be on one of berth's networks: not with `--network none`
/// or `--network host` (which publish no ports either).
pub fn may_attach(spec: &berth_core::ContainerSpec) -> bool {
    !matches!(spec.networks.as_slice(),
        [only] if only == berth_core::NETWORK_NONE || only == berth_core::NETWORK_HOST)
}

/// One network, as `network ls` and `inspect` show it.
#[derive(Debug, Clone, Serialize)]
pub struct Network {
    pub name: String,
    pub driver: String,
    pub bridge: String,
    pub subnet: String,
    pub gateway: String,
    /// The network containers join without `--network`.
    pub default: bool,
    pub created: DateTime<Utc>,
    /// The conflist berth gives the CNI plugins.
    #[serde(skip)]
    pub conflist: Value,
}

impl Network {
    fn from_conflist(
        name: &str,
        conflist: Value,
        created: DateTime<Utc>,
        default: bool,
    ) -> Network {
        let bridge = &conflist["plugins"][0];
        let range = &bridge["ipam"]["ranges"][0][0];
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        Network {
            name: name.to_string(),
            driver: text(&bridge["type"]),
            bridge: text(&bridge["bridge"]),
            subnet: text(&range["subnet"]),
            gateway: text(&range["gateway"]),
            default,
            created,
            conflist,
        }
    }

    fn subnet(&self) -> Result<Subnet> {
        Subnet::parse(&self.subnet)
    }
}

/// Berth's networks and the containers attached to them.
#[derive(Debug, Clone)]
pub struct Networks {
    config: NetworkConfig,
    dir: PathBuf,
    netns_dir: PathBuf,
    /// Markers of the networks whose iptables rules are in place (volatile, as they are).
    rules_dir: PathBuf,
    install_id: String,
    runner: cni::Runner,
}

impl Networks {
    pub fn new(config: &NetworkConfig, store: &Store) -> Result<Networks> {
        Ok(Networks {
            config: config.clone(),
            dir: store.state_dir().join("networks"),
            netns_dir: store.run_dir().join("netns"),
            rules_dir: store.run_dir().join("network-rules"),
            install_id: store.install_id()?,
            runner: cni::Runner::new(config.cni_bin_dirs.clone()),
        })
    }

    /// The network a container without `--network` joins (`none`: loopback only).
    pub fn default_name(&self) -> &str {
        &self.config.default
    }

    fn conflist_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.{CONFLIST}"))
    }

    /// Serialises network creation, removal and attachment changes within the installation.
    fn lock(&self) -> Result<berth_core::LockGuard> {
        berth_core::store::create_dir_all(&self.dir)?;
        berth_core::store::lock_file(&self.dir.join("lock"), LockMode::Exclusive)
    }

    /// `berth network create`: a bridge network with its own interface and subnet (the
    /// first free /24 of `[network].subnet-pool` when none is given).
    pub fn create(
        &self,
        name: &str,
        subnet: Option<&str>,
        gateway: Option<Ipv4Addr>,
    ) -> Result<Network> {
        berth_core::validate::network_name(name)?;
        if [berth_core::NETWORK_NONE, berth_core::NETWORK_HOST].contains(&name) {
            return Err(Error::invalid(
                format!("network name {name:?}"),
                "it is reserved for --network none|host",
            ));
        }
        let _lock = self.lock()?;
        if self.conflist_path(name).exists() || name == self.config.default {
            return Err(Error::AlreadyExists {
                kind: Object::Network,
                name: name.to_string(),
                hint: format!("see `berth network inspect {name}`"),
            });
        }
        let taken = self.subnets_in_use()?;
        let subnet = match subnet {
            Some(text) => {
                let subnet = Subnet::parse(text)?;
                if let Some((other, _)) = taken.iter().find(|(_, s)| s.overlaps(&subnet)) {
                    return Err(Error::conflict(
                        format!("subnet {subnet}"),
                        format!("it overlaps {other}"),
                    )
                    .with_hint("choose a subnet no network or route of this host uses"));
                }
                subnet
            }
            None => self.free_subnet(&taken)?,
        };
        let gateway = match gateway {
            Some(gateway) if !subnet.is_host(gateway) => {
                return Err(Error::invalid(
                    format!("gateway {gateway}"),
                    format!("it is not a host address of subnet {subnet}"),
                ));
            }
            Some(gateway) => gateway,
            None => subnet.first_host(),
        };
        // Unique per installation, as docker's `br-<id>`: two state dirs never share a bridge.
        let bridge = format!("br-{}", short_hash(&format!("{}/{name}", self.install_id)));
        self.write_network(name, &bridge, subnet, gateway)
    }

    fn write_network(
        &self,
        name: &str,
        bridge: &str,
        subnet: Subnet,
        gateway: Ipv4Addr,
    ) -> Result<Network> {
        let conflist = json!({
            "cniVersion": cni::CNI_VERSION,
            "name": name,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": bridge,
                    "isGateway": true,
                    // Masquerade and FORWARD accepts are the network's, made once (see
                    // `forwarding`), not a chain per container.
                    "ipMasq": false,
                    "hairpinMode": true,
                    "capabilities": {"ips": true},
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": subnet.to_string(), "gateway": gateway.to_string()}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": self.dir.join("ipam"),
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": true}},
            ],
        });
        let path = self.conflist_path(name);
        let bytes = serde_json::to_vec_pretty(&conflist).expect("JSON values serialise");
        berth_core::store::atomic_write(&path, &bytes, 0o644)?;
        Ok(Network::from_conflist(
            name,
            conflist,
            Utc::now(),
            name == self.config.default,
        ))
    }

    /// Every network's subnet, and the host's routes, with what holds each.
    fn subnets_in_use(&self) -> Result<Vec<(String, Subnet)>> {
        let mut taken: Vec<(String, Subnet)> = self
            .list()?
            .iter()
            .filter_map(|n| Some((format!("network {:?}", n.name), n.subnet().ok()?)))
            .collect();
        if let Ok(default) = Subnet::parse(&self.config.subnet) {
            taken.push(("the default network".into(), default));
        }
        taken.extend(
            subnet::host_routes()
                .into_iter()
                .map(|r| (format!("the host's route to {r}"), r)),
        );
        Ok(taken)
    }

    fn free_subnet(&self, taken: &[(String, Subnet)]) -> Result<Subnet> {
        let pool = Subnet::parse(&self.config.subnet_pool)?;
        pool.slash24s()
            .find(|candidate| !taken.iter().any(|(_, s)| s.overlaps(candidate)))
            .ok_or_else(|| {
                Error::conflict(format!("subnet pool {pool}"), "every /24 of it is in use")
                    .with_hint("pass --subnet, or widen [network].subnet-pool")
            })
    }

    /// The network `name`; the default network is made on first use.
    pub fn get(&self, name: &str) -> Result<Network> {
        if name == self.config.default && !self.conflist_path(name).exists() {
            let _lock = self.lock()?;
            if !self.conflist_path(name).exists() {
                let subnet = Subnet::parse(&self.config.subnet).map_err(|e| Error::Config {
                    path: "[network].subnet".into(),
                    message: e.to_string(),
                })?;
                if self.config.bridge.is_empty() || self.config.bridge.len() > 15 {
                    return Err(Error::Config {
                        path: "[network].bridge".into(),
                        message: format!(
                            "{:?} is not an interface name (1-15 bytes)",
                            self.config.bridge
                        ),
                    });
                }
                return self.write_network(name, &self.config.bridge, subnet, subnet.first_host());
            }
        }
        self.read(name)?.ok_or_else(|| {
            Error::not_found(Object::Network, name)
                .with_hint(format!("create it with `berth network create {name}`"))
        })
    }

    fn read(&self, name: &str) -> Result<Option<Network>> {
        let path = self.conflist_path(name);
        let Some(conflist) = berth_core::store::read_json::<Value>(&path, "network conflist")?
        else {
            return Ok(None);
        };
        let created = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .map(DateTime::<Utc>::from)
            .unwrap_or_else(|_| Utc::now());
        Ok(Some(Network::from_conflist(
            name,
            conflist,
            created,
            name == self.config.default,
        )))
    }

    /// Every network, the default one included once it exists.
    pub fn list(&self) -> Result<Vec<Network>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(format!("listing {}", self.dir.display()), e)),
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_suffix(&format!(".{CONFLIST}"))
                    .filter(|n| !n.starts_with('.'))
                    .map(str::to_string)
            })
            .collect();
        names.sort();
        let mut networks = Vec::new();
        for name in names {
            if let Some(network) = self.read(&name)? {
                networks.push(network);
            }
        }
        Ok(networks)
    }

    /// `berth network rm`: refused while a container is attached to it or planned on it
    /// (`holder` names a container id); the bridge goes with it.
    pub fn remove(&self, name: &str, holder: impl Fn(&str) -> String) -> Result<()> {
        let network = self.get(name)?;
        let _lock = self.lock()?;
        let users = self.users(name)?;
        if !users.is_empty() {
            let users: Vec<String> = users.iter().map(|id| holder(id)).collect();
            return Err(Error::conflict(
                format!("network {name:?}"),
                format!("containers use it: {}", users.join(", ")),
            )
            .with_hint("remove those containers first (`berth rm -f`)"));
        }
        forwarding::remove(&network, &self.install_id, &self.rules_dir)?;
        let path = self.conflist_path(name);
        std::fs::remove_file(&path).context(|| format!("removing {}", path.display()))?;
        delete_link(&network.bridge)
    }

    fn containers_dir(&self) -> PathBuf {
        self.dir.join("containers")
    }

    fn ports_dir(&self) -> PathBuf {
        self.dir.join("ports")
    }
}

fn short_hash(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))[..12].to_string()
}

/// Removes an interface; one already gone is fine.
fn delete_link(name: &str) -> Result<()> {
    let exists = || Path::new("/sys/class/net").join(name).exists();
    if !exists() {
        return Ok(());
    }
    match run("ip", &["link", "delete", name]) {
        Err(_) if !exists() => Ok(()),
        other => other,
    }
}

/// Runs a host tool the plugins need too (`ip`, `iptables`); a failure carries its stderr.
fn run(program: &str, args: &[&str]) -> Result<()> {
    let command = || format!("{program} {}", args.join(" "));
    let output = std::process::Command::new(program)
        .args(args)
        .output()
        .context(|| format!("running {} (is {program} installed?)", command()))?;
    if output.status.success() {
        return Ok(());
    }
    Err(Error::io(
        command(),
        std::io::Error::other(String::from_utf8_lossy(&output.stderr).trim().to_string()),
    ))
}

/// `iptables -w ARGS`: waits for the xtables lock the plugins take too.
fn iptables(args: &[&str]) -> Result<()> {
    let mut all = vec!["-w"];
    all.extend(args);
    run("iptables", &all)
}

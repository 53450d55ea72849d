//! The pipeline's unit tests, on an in-memory backend and a scripted policy that write every
//! call into one journal, so a test reads the order in which things happened.

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use berth_core::config::Config;
use berth_core::{
    BackendInfo, Capabilities, Capability, ContainerBackend, ContainerInfo, ContainerSpec,
    ContainerState, Error, ErrorKind, ListFilter, LogOptions, LogSink, PortMapping, RemoveOptions,
    Result, StopOptions, Store,
};
use berth_plugins::Hook;

use crate::{Backends, Engine, Policy};

/// What happened, in order.
#[derive(Clone, Default)]
struct Journal(Arc<Mutex<Vec<String>>>);

impl Journal {
    fn note(&self, entry: impl Into<String>) {
        self.0.lock().unwrap().push(entry.into());
    }

    fn entries(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    /// Where the first entry starting with `prefix` is; panics with the journal if none does.
    #[track_caller]
    fn at(&self, prefix: &str) -> usize {
        let entries = self.entries();
        entries
            .iter()
            .position(|e| e.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} in {entries:?}"))
    }

    fn count(&self, prefix: &str) -> usize {
        self.entries()
            .iter()
            .filter(|e| e.starts_with(prefix))
            .count()
    }
}

/// A backend that keeps containers in memory and notes every call.
struct Recording {
    name: String,
    capabilities: Capabilities,
    journal: Journal,
    /// What each container was asked to run, by id.
    containers: Mutex<BTreeMap<String, ContainerSpec>>,
    /// The next create fails with this.
    fail_create: Mutex<Option<Error>>,
    /// Its health probe fails.
    down: Mutex<bool>,
}

impl Recording {
    fn new(name: &str, capabilities: Capabilities, journal: &Journal) -> Arc<Recording> {
        Arc::new(Recording {
            name: name.into(),
            capabilities,
            journal: journal.clone(),
            containers: Mutex::new(BTreeMap::new()),
            fail_create: Mutex::new(None),
            down: Mutex::new(false),
        })
    }

    fn spec_of(&self, id: &str) -> Option<ContainerSpec> {
        self.containers.lock().unwrap().get(id).cloned()
    }
}

#[async_trait]
impl ContainerBackend for Recording {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    async fn version(&self) -> Result<String> {
        if *self.down.lock().unwrap() {
            return Err(unreachable(&self.name));
        }
        Ok("recording".into())
    }

    async fn create(&self, id: &str, spec: &ContainerSpec) -> Result<ContainerInfo> {
        self.journal
            .note(format!("{}: create {}", self.name, spec.name));
        if let Some(e) = self.fail_create.lock().unwrap().take() {
            return Err(e);
        }
        self.containers
            .lock()
            .unwrap()
            .insert(id.into(), spec.clone());
        self.inspect(id).await
    }

    async fn start(&self, id: &str) -> Result<()> {
        self.journal.note(format!("{}: start", self.name));
        self.inspect(id).await.map(drop)
    }

    async fn stop(&self, _: &str, _: &StopOptions) -> Result<()> {
        self.journal.note(format!("{}: stop", self.name));
        Ok(())
    }

    async fn kill(&self, _: &str, _: i32) -> Result<()> {
        Ok(())
    }

    async fn remove(&self, id: &str, _: RemoveOptions) -> Result<()> {
        self.journal.note(format!("{}: remove {id}", self.name));
        match self.containers.lock().unwrap().remove(id) {
            Some(_) => Ok(()),
            None => Err(Error::not_found(berth_core::Object::Container, id)),
        }
    }

    async fn list(&self, _: &ListFilter) -> Result<Vec<ContainerInfo>> {
        Ok(Vec::new())
    }

    async fn inspect(&self, id: &str) -> Result<ContainerInfo> {
        let spec = self
            .spec_of(id)
            .ok_or_else(|| Error::not_found(berth_core::Object::Container, id))?;
        Ok(ContainerInfo {
            id: id.into(),
            name: spec.name.clone(),
            image: spec.image.clone(),
            state: ContainerState::Created,
            pid: None,
            exit_code: None,
            created: chrono::Utc::now(),
            started: None,
            finished: None,
            labels: spec.labels.clone(),
            backend: self.name.clone(),
            status_detail: None,
            ip_address: None,
            networks: Vec::new(),
            ports: Vec::new(),
            limits: None,
            restart_count: 0,
        })
    }

    async fn wait(&self, _: &str) -> Result<i32> {
        Ok(0)
    }

    async fn logs(&self, _: &str, _: LogOptions, _: &mut dyn LogSink) -> Result<()> {
        Ok(())
    }
}

/// A policy whose answers a test sets, and which notes every question. At `pre-create` it
/// "provisions" (notes `provision NAME`) before it answers, as a hook ensuring a volume
/// would; at `create-failed` it releases that.
#[derive(Default)]
struct Scripted {
    journal: Journal,
    /// A hook that refuses, with the reason.
    deny: Option<(Hook, String)>,
    /// Placement's answer (`Err`: placement refuses).
    select: Option<std::result::Result<String, String>>,
    /// Env that `pre-create` patches in, in order.
    patches: Vec<(String, String)>,
    /// `pre-create` waits for a message here before answering.
    hold: Option<Mutex<mpsc::Receiver<()>>>,
}

impl Policy for Scripted {
    fn generate_name(&self, _: &str, _: &ContainerSpec) -> Result<Option<String>> {
        self.journal.note("generate-name");
        Ok(Some("generated".into()))
    }

    fn validate_name(&self, _: &str, name: &str) -> Result<()> {
        self.journal.note(format!("validate-name {name}"));
        Ok(())
    }

    fn places(&self) -> bool {
        self.select.is_some()
    }

    fn select_backend(&self, _: &ContainerSpec, c: &[BackendInfo]) -> Result<Option<String>> {
        let names: Vec<_> = c.iter().map(|c| c.name.as_str()).collect();
        self.journal
            .note(format!("select-backend among {}", names.join(",")));
        match &self.select {
            Some(Ok(name)) => Ok(Some(name.clone())),
            Some(Err(reason)) => Err(Error::Denied {
                plugin: "scripted".into(),
                hook: "select-backend".into(),
                reason: reason.clone(),
            }),
            None => Ok(None),
        }
    }

    fn on_event(&self, hook: Hook, spec: &mut ContainerSpec, _: Option<&str>) -> Result<()> {
        self.journal.note(format!("hook {hook}"));
        if hook == Hook::PreCreate {
            self.journal.note(format!("provision {}", spec.name));
            if let Some(hold) = &self.hold {
                hold.lock().unwrap().recv().unwrap();
            }
            for (k, v) in &self.patches {
                spec.env.insert(k.clone(), v.clone());
            }
        }
        match &self.deny {
            Some((denied, reason)) if *denied == hook => Err(Error::Denied {
                plugin: "scripted".into(),
                hook: hook.to_string(),
                reason: reason.clone(),
            }),
            _ => Ok(()),
        }
    }

    fn create_failed(&self, spec: &ContainerSpec, id: Option<&str>, reason: &str) {
        let asked = if id.is_some() {
            "after create"
        } else {
            "before create"
        };
        self.journal
            .note(format!("create-failed {asked}: {reason}"));
        self.journal.note(format!("release {}", spec.name));
    }
}

/// An engine on `backends` and `policy`, with its state in a temporary directory.
struct Fixture {
    engine: Arc<Engine>,
    _dir: tempfile::TempDir,
    runtime: tokio::runtime::Runtime,
}

impl Fixture {
    fn new(backends: Vec<Arc<Recording>>, policy: Option<Scripted>) -> Fixture {
        Fixture::with_fallback(backends, policy, &[])
    }

    /// With `[placement] fallback = chain`.
    fn with_fallback(
        backends: Vec<Arc<Recording>>,
        policy: Option<Scripted>,
        chain: &[&str],
    ) -> Fixture {
        Fixture::configured(backends, policy, |config| {
            config.placement.fallback = chain.iter().map(|b| b.to_string()).collect();
        })
    }

    /// With the built-in config as `edit` leaves it.
    fn configured(
        backends: Vec<Arc<Recording>>,
        policy: Option<Scripted>,
        edit: impl FnOnce(&mut Config),
    ) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::builtin();
        edit(&mut config);
        config.host.state_dir = dir.path().join("state");
        config.host.run_dir = dir.path().join("run");
        let store = Store::open(&config.host.state_dir, &config.host.run_dir).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let backends = Backends::from_parts(
            backends
                .into_iter()
                .map(|b| ("recording", b as Arc<dyn ContainerBackend>)),
        );
        let policy = policy.map(|p| Arc::new(p) as Arc<dyn Policy>);
        let engine = Engine::with_parts(config, store, backends, policy, runtime.handle().clone())
            .expect("an engine on a temporary store");
        Fixture {
            engine,
            _dir: dir,
            runtime,
        }
    }

    fn create(&self, spec: ContainerSpec) -> Result<crate::ContainerRecord> {
        self.runtime
            .block_on(self.engine.create(spec, crate::CreateOptions::default()))
    }
}

/// What an unreachable daemon answers.
fn unreachable(backend: &str) -> Error {
    Error::Unavailable {
        service: format!("backend {backend:?}"),
        endpoint: "/nowhere.sock".into(),
        reason: "connection refused".into(),
        hint: String::new(),
    }
}

fn spec(name: &str) -> ContainerSpec {
    ContainerSpec {
        name: name.into(),
        image: "busybox".into(),
        ..ContainerSpec::default()
    }
}

/// Everything but joining a host-prepared network namespace: with it the engine would run
/// real CNI plugins, which is the integration tests' business (tests/tests/network.rs).
fn all_capabilities() -> Capabilities {
    Capabilities::of(&Capability::ALL).without(Capability::NetworkNamespace)
}

#[test]
fn a_run_consults_policy_and_backend_in_the_pipelines_order() {
    let journal = Journal::default();
    let backend = Recording::new("one", all_capabilities(), &journal);
    let policy = Scripted {
        journal: journal.clone(),
        select: Some(Ok("one".into())),
        ..Scripted::default()
    };
    let fixture = Fixture::new(vec![backend], Some(policy));
    let record = fixture.create(spec("web")).unwrap();
    fixture
        .runtime
        .block_on(fixture.engine.start(&record))
        .unwrap();
    assert_eq!(
        journal.entries(),
        [
            "validate-name web",
            "select-backend among one",
            "hook pre-create",
            "provision web",
            "one: create web",
            "hook post-create",
            "hook pre-start",
            "one: start",
            "hook post-start",
        ]
    );
    assert_eq!(record.backend, "one");
    assert_eq!(fixture.engine.resolve("web").unwrap().id, record.id);
}

#[test]
fn an_unnamed_container_gets_the_policys_name_checked_like_any_other() {
    let journal = Journal::default();
    let backend = Recording::new("one", all_capabilities(), &journal);
    let policy = Scripted {
        journal: journal.clone(),
        ..Scripted::default()
    };
    let fixture = Fixture::new(vec![backend], Some(policy));
    let record = fixture.create(spec("")).unwrap();
    assert_eq!(record.name, "generated");
    assert_eq!(
        journal.entries()[..2],
        ["generate-name", "validate-name generated"]
    );
}

#[test]
fn patches_reach_the_backend_and_the_record() {
    let journal = Journal::default();
    let backend = Recording::new("one", all_capabilities(), &journal);
    let policy = Scripted {
        journal: journal.clone(),
        patches: vec![("A".into(), "1".into()), ("B".into(), "2".into())],
        ..Scripted::default()
    };
    let fixture = Fixture::new(vec![backend.clone()], Some(policy));
    let record = fixture.create(spec("web")).unwrap();
    let created = backend.spec_of(&record.id).unwrap();
    assert_eq!(created.env["A"], "1");
    assert_eq!(created.env["B"], "2");
    assert_eq!(record.spec.env, created.env);
}

#[test]
fn a_deny_at_pre_create_stops_the_create_tells_the_hooks_and_frees_the_name() {
    let journal = Journal::default();
    let backend = Recording::new("one", all_capabilities(), &journal);
    let policy = Scripted {
        journal: journal.clone(),
        deny: Some((Hook::PreCreate, "no memory limit".into())),
        ..Scripted::default()
    };
    let fixture = Fixture::new(vec![backend.clone()], Some(policy));
    let err = fixture.create(spec("web")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Denied);
    assert_eq!(journal.count("one: create"), 0, "{:?}", journal.entries());
    let entries = journal.entries();
    assert!(
        entries.contains(&"create-failed before create: denied by plugin \"scripted\" at pre-create: no memory limit".to_string()),
        "{entries:?}"
    );
    assert_eq!(entries.last().unwrap(), "release web");
    assert!(fixture.engine.records.all().unwrap().is_empty());
}

#[test]
fn a_failed_backend_create_is_undone_and_the_hooks_release_what_they_provisioned() {
    let journal = Journal::default();
    let backend = Recording::new("one", all_capabilities(), &journal);
    *backend.fail_create.lock().unwrap() =
        Some(Error::not_found(berth_core::Object::Image, "busybox"));
    let policy = Scripted {
        journal: journal.clone(),
        ..Scripted::default()
    };
    let fixture = Fixture::new(vec![backend.clone()], Some(policy));
    let err = fixture.create(spec("web")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let entries = journal.entries();
    let at = |entry: &str| journal.at(entry);
    assert!(at("provision web") < at("one: create web"));
    assert!(at("one: create web") < at("one: remove"));
    assert!(at("one: remove") < at("create-failed after create: image \"busybox\" not found"));
    assert!(
        !entries.iter().any(|e| e == "hook post-create"),
        "{entries:?}"
    );
    assert!(fixture.engine.records.all().unwrap().is_empty());
    // The name is free again.
    fixture.create(spec("web")).unwrap();
}

#[test]
fn placement_refused_gives_the_name_back_and_no_hook_ran() {
    let journal = Journal::default();
    let backend = Recording::new("one", all_capabilities(), &journal);
    let policy = Scripted {
        journal: journal.clone(),
        select: Some(Err("nowhere for you".into())),
        ..Scripted::default()
    };
    let fixture = Fixture::new(vec![backend], Some(policy));
    assert_eq!(
        fixture.create(spec("web")).unwrap_err().kind(),
        ErrorKind::Denied
    );
    assert_eq!(journal.count("hook"), 0, "{:?}", journal.entries());
    assert_eq!(journal.count("create-failed"), 0);
    assert!(fixture.engine.records.all().unwrap().is_empty());
}

#[test]
fn the_name_is_claimed_before_any_hook_with_side_effects_runs() {
    let journal = Journal::default();
    let backend = Recording::new("one", all_capabilities(), &journal);
    let (release, hold) = mpsc::channel();
    let policy = Scripted {
        journal: journal.clone(),
        hold: Some(Mutex::new(hold)),
        ..Scripted::default()
    };
    let fixture = Fixture::new(vec![backend], Some(policy));
    let engine = fixture.engine.clone();
    let first = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(engine.create(spec("web"), crate::CreateOptions::default()))
    });
    // Wait until the first create is inside its pre-create hook, holding the name.
    while journal.count("provision web") == 0 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let second = fixture.create(spec("web")).unwrap_err();
    assert_eq!(second.kind(), ErrorKind::AlreadyExists, "{second}");
    assert_eq!(journal.count("provision web"), 1, "{:?}", journal.entries());
    release.send(()).unwrap();
    first.join().unwrap().unwrap();
    assert_eq!(journal.count("one: create web"), 1);
}

#[test]
fn a_field_the_backend_cannot_honour_is_refused_naming_the_backends_that_can() {
    let journal = Journal::default();
    let plain = Recording::new("plain", Capabilities::none(), &journal);
    let ports = Recording::new(
        "ports",
        Capabilities::of(&[Capability::PublishPorts]),
        &journal,
    );
    let policy = Scripted {
        journal: journal.clone(),
        ..Scripted::default()
    };
    let fixture = Fixture::new(vec![plain, ports], Some(policy));
    let mut wants_ports = spec("web");
    wants_ports.backend = Some("plain".into());
    wants_ports
        .ports
        .push(PortMapping::parse("8080:80").unwrap());
    let err = fixture.create(wants_ports.clone()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotSupported);
    let text = err.to_string();
    assert!(
        text.contains("\"plain\"") && text.contains("-p") && text.contains("ports"),
        "{text}"
    );
    assert_eq!(journal.count("hook"), 0, "{:?}", journal.entries());
    assert_eq!(journal.count("plain: create"), 0);
    // The backend that can honour it gets it.
    wants_ports.backend = Some("ports".into());
    fixture.create(wants_ports).unwrap();
    assert_eq!(journal.count("ports: create"), 1);
}

#[test]
fn a_claim_left_by_a_dead_create_is_cleared_by_the_next_create_of_its_name() {
    let journal = Journal::default();
    let backend = Recording::new("one", all_capabilities(), &journal);
    let fixture = Fixture::new(vec![backend.clone()], None);
    // A create that was killed after the backend made the container: its claim stays, and
    // nobody holds its lock.
    let records = &fixture.engine.records;
    let mut claim = fixture
        .runtime
        .block_on(records.claim(&spec("web"), false, |_| async { Ok(()) }))
        .unwrap();
    records.intend(&mut claim, "one", &spec("web")).unwrap();
    let orphan = claim.record.id.clone();
    fixture
        .runtime
        .block_on(backend.create(&orphan, &spec("web")))
        .unwrap();
    drop(claim);
    assert!(
        fixture.engine.resolve("web").is_err(),
        "claims are not containers"
    );

    let record = fixture.create(spec("web")).unwrap();
    assert_ne!(record.id, orphan);
    assert!(backend.spec_of(&orphan).is_none(), "the orphan was removed");
    assert_eq!(journal.count(&format!("one: remove {orphan}")), 1);
    assert_eq!(fixture.engine.records().unwrap().len(), 1);
}

#[test]
fn an_unreachable_backend_falls_back_along_the_chain_undoing_its_attempt() {
    let journal = Journal::default();
    let one = Recording::new("one", all_capabilities(), &journal);
    let two = Recording::new("two", all_capabilities(), &journal);
    *one.fail_create.lock().unwrap() = Some(unreachable("one"));
    let policy = Scripted {
        journal: journal.clone(),
        select: Some(Ok("one".into())),
        patches: vec![("PATCHED".into(), "once".into())],
        ..Scripted::default()
    };
    let fixture = Fixture::with_fallback(vec![one, two.clone()], Some(policy), &["one", "two"]);
    let record = fixture.create(spec("web")).unwrap();
    assert_eq!(record.backend, "two");
    let entries = journal.entries();
    let at = |entry: &str| journal.at(entry);
    // The policy picks among what is left of the chain; the failed attempt is undone (its
    // hooks told) before the next one's hooks run, from the spec as it was before placement:
    // the patch is applied once.
    assert!(at("one: create web") < at("select-backend among two"));
    let provisions: Vec<_> = (0..entries.len())
        .filter(|&i| entries[i] == "provision web")
        .collect();
    assert_eq!(provisions.len(), 2, "{entries:?}");
    assert!(
        at("create-failed after create") < provisions[1],
        "{entries:?}"
    );
    assert!(provisions[1] < at("two: create web"), "{entries:?}");
    let created = two.spec_of(&record.id).unwrap();
    assert_eq!(created.env.get("PATCHED").map(String::as_str), Some("once"));
    assert_eq!(created.backend.as_deref(), Some("two"));
    let log = berth_plugins::events::log_path(&fixture.engine.config.host);
    let decisions = berth_plugins::events::read(&log).unwrap();
    let fallback = decisions.iter().find(|d| d.function == "fallback").unwrap();
    assert_eq!(fallback.plugin, "berth");
    assert!(
        fallback
            .reason
            .as_deref()
            .unwrap()
            .starts_with("one -> two: "),
        "{fallback:?}"
    );
}

#[test]
fn an_unhealthy_pick_is_passed_over_before_any_hook_runs() {
    let journal = Journal::default();
    let one = Recording::new("one", all_capabilities(), &journal);
    let two = Recording::new("two", all_capabilities(), &journal);
    *one.down.lock().unwrap() = true;
    let policy = Scripted {
        journal: journal.clone(),
        select: Some(Ok("one".into())),
        ..Scripted::default()
    };
    let fixture = Fixture::with_fallback(vec![one, two], Some(policy), &["one", "two"]);
    assert_eq!(fixture.create(spec("web")).unwrap().backend, "two");
    assert_eq!(journal.count("one:"), 0, "{:?}", journal.entries());
    assert_eq!(journal.count("create-failed"), 0, "{:?}", journal.entries());
    assert_eq!(journal.count("provision web"), 1, "{:?}", journal.entries());
}

#[test]
fn there_is_no_fallback_from_the_users_choice_a_deny_or_without_a_chain() {
    let journal = Journal::default();
    let backends = || {
        let one = Recording::new("one", all_capabilities(), &journal);
        *one.fail_create.lock().unwrap() = Some(unreachable("one"));
        vec![one, Recording::new("two", all_capabilities(), &journal)]
    };
    let chain = ["one", "two"];
    // `--backend one`: the user's choice fails as it is.
    let fixture = Fixture::with_fallback(backends(), None, &chain);
    let mut asked = spec("web");
    asked.backend = Some("one".into());
    let err = fixture.create(asked).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    // A policy's deny ends it.
    let deny = Scripted {
        journal: journal.clone(),
        select: Some(Err("not here".into())),
        ..Scripted::default()
    };
    let fixture = Fixture::with_fallback(backends(), Some(deny), &chain);
    let err = fixture.create(spec("web")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Denied, "{err}");
    // An unreachable package repository is not the backend's failure.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let repository = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let hooks = Scripted {
        journal: journal.clone(),
        ..Scripted::default()
    };
    let fixture = Fixture::configured(backends(), Some(hooks), |config| {
        config.placement.fallback = chain.iter().map(|b| b.to_string()).collect();
        config.packages.repository = Some(repository.into());
    });
    let mut packaged = spec("web");
    packaged.packages = vec!["tools@1.2.0".into()];
    let err = fixture.create(packaged).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    let log = berth_plugins::events::log_path(&fixture.engine.config.host);
    let decisions = berth_plugins::events::read(&log).unwrap();
    assert!(
        !decisions.iter().any(|d| d.function == "fallback"),
        "{decisions:?}"
    );
    // No chain: the default backend's failure is the answer.
    let fixture = Fixture::new(backends(), None);
    let err = fixture.create(spec("web")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert_eq!(journal.count("two: create"), 0, "{:?}", journal.entries());
}

#[test]
fn names_resolve_and_free_through_the_index_and_a_store_from_before_it_is_indexed_once() {
    let journal = Journal::default();
    let backend = Recording::new("one", all_capabilities(), &journal);
    let fixture = Fixture::new(vec![backend], None);
    let taken =
        |result: Result<crate::ContainerRecord>| matches!(result, Err(Error::AlreadyExists { .. }));
    let web = fixture.create(spec("web")).unwrap();
    let index = fixture.engine.config.host.state_dir.join("container-names");
    let entries = || {
        std::fs::read_dir(&index)
            .unwrap()
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .count()
    };
    assert!(index.join(".complete").exists(), "the first claim built it");
    assert_eq!(fixture.engine.resolve("web").unwrap().id, web.id);
    assert!(taken(fixture.create(spec("web"))));

    // A store from before the index: found by reading every record, and the next claim
    // indexes the old name before it checks its own.
    std::fs::remove_dir_all(&index).unwrap();
    assert_eq!(fixture.engine.resolve("web").unwrap().id, web.id);
    assert!(taken(fixture.create(spec("web"))));
    assert!(index.join(".complete").exists());
    assert_eq!(entries(), 1);

    // A removal takes its entry; an entry naming no record, or no id at all, takes no name.
    let db = fixture.create(spec("db")).unwrap();
    assert_eq!(entries(), 2);
    fixture
        .runtime
        .block_on(fixture.engine.remove(&db, RemoveOptions::forced()))
        .unwrap();
    assert_eq!(entries(), 1);
    let entry = index.join(berth_oci::digest::sha256_hex(b"db"));
    for stale in [db.id.as_str(), "../..", ""] {
        std::fs::write(&entry, stale).unwrap();
        assert!(fixture.engine.resolve("db").is_err());
        let again = fixture.create(spec("db")).unwrap();
        fixture
            .runtime
            .block_on(fixture.engine.remove(&again, RemoveOptions::forced()))
            .unwrap();
    }
    assert_eq!(fixture.engine.resolve("web").unwrap().id, web.id);
}

//! The plugin runtime against real plugins built from `plugins/`: each example plugin's
//! answers, budgets (deadline, memory), traps, `on-error`, grants, conflicting patches, sha256
//! pins, the component cache and the decision log; the `create-failed` event; and components
//! built against the frozen `wit/0.1.0` answering on this host.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use berth_core::config::{Grant, PluginMode, PluginWorld};
use berth_core::{
    BackendInfo, Config, ContainerInfo, ContainerSpec, ContainerState, Error, Limits, Mount,
    PluginFailure, Result,
};
use berth_plugins::events::{self, Verdict};
use berth_plugins::{
    Abi, CacheStatus, ContainerDirectory, Function, Hook, HostServices, PackageMount,
    PackageService, PluginHost, VolumeService, check_component,
};
use berth_tests::plugins::{
    self, COMPAT_0_2_GUARD, COMPAT_0_2_NAMING, COMPAT_0_2_SELECTOR, COMPAT_GUARD, COMPAT_NAMING,
    COMPAT_SELECTOR, CONFLICT, COUNTER, GUARD, HOG, LOOPER, NAMING, PROVISIONER, Plugin, ROGUE,
    SELECTOR, SNOOP, TRAPPER,
};
use tempfile::TempDir;

/// A fixed set of existing containers for the `containers` interface.
struct Fixed(Vec<ContainerInfo>);

impl ContainerDirectory for Fixed {
    fn containers(&self) -> Result<Vec<ContainerInfo>> {
        Ok(self.0.clone())
    }
    fn container(&self, name_or_id: &str) -> Result<Option<ContainerInfo>> {
        Ok(self
            .0
            .iter()
            .find(|c| c.name == name_or_id || c.id.starts_with(name_or_id))
            .cloned())
    }
}

/// Volumes in memory, for the `quotas` interface.
#[derive(Default)]
struct Volumes(Mutex<Vec<berth_quota::Volume>>);

impl Volumes {
    fn names(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|v| v.name.clone())
            .collect()
    }
}

impl VolumeService for Volumes {
    fn volumes(&self) -> Result<Vec<berth_quota::Volume>> {
        Ok(self.0.lock().unwrap().clone())
    }
    fn ensure_volume(&self, name: &str, limit: Option<u64>) -> Result<berth_quota::Volume> {
        let mut volumes = self.0.lock().unwrap();
        if let Some(found) = volumes.iter().find(|v| v.name == name) {
            return Ok(found.clone());
        }
        let volume = berth_quota::Volume {
            name: name.into(),
            id: volumes.len() as u32 + 1,
            path: Path::new("/volumes").join(name),
            limit,
            used: 0,
            driver: "none",
        };
        volumes.push(volume.clone());
        Ok(volume)
    }
    fn remove_volume(&self, name: &str) -> Result<()> {
        let mut volumes = self.0.lock().unwrap();
        let before = volumes.len();
        volumes.retain(|v| v.name != name);
        if volumes.len() == before {
            return Err(Error::not_found(berth_core::Object::Volume, name));
        }
        Ok(())
    }
}

/// A host whose package repository is empty: the provisioner imports `packages`, and its tests
/// configure no packages to ask for.
struct NoPackages;

impl PackageService for NoPackages {
    fn ensure_package(&self, name: &str, version: &str) -> Result<PackageMount> {
        Err(Error::not_found(
            berth_core::Object::Package,
            format!("{name}@{version}"),
        ))
    }
    fn packages(&self) -> Result<Vec<PackageMount>> {
        Ok(Vec::new())
    }
}

fn container(name: &str) -> ContainerInfo {
    ContainerInfo {
        id: format!("{:0>64}", name.len()),
        name: name.into(),
        image: "busybox:local".into(),
        state: ContainerState::Running,
        pid: None,
        exit_code: None,
        created: chrono::Utc::now(),
        started: None,
        finished: None,
        labels: Default::default(),
        backend: "native".into(),
        status_detail: None,
        ip_address: None,
        networks: Vec::new(),
        ports: Vec::new(),
        limits: None,
        restart_count: 0,
    }
}

/// A state dir shared by the tests of this binary, so each component compiles once.
fn shared_state() -> &'static Path {
    static DIR: OnceLock<TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().unwrap()).path()
}

/// One `[[plugins]]` entry.
fn entry(name: &str, plugin: plugins::Plugin, worlds: &str, extra: &str) -> String {
    format!(
        "[[plugins]]\nname = {name:?}\npath = {:?}\nworlds = [{worlds}]\n{extra}\n",
        plugin.path()
    )
}

struct Setup {
    run: TempDir,
    config: Config,
}

impl Setup {
    fn new(entries: &[String]) -> Setup {
        Setup::with_state(shared_state(), entries)
    }

    fn with_state(state: &Path, entries: &[String]) -> Setup {
        let run = tempfile::tempdir().unwrap();
        let text = format!(
            "[host]\nstate-dir = {:?}\nrun-dir = {:?}\n\n[backends.native]\ntype = \"native\"\n\n{}",
            state,
            run.path(),
            entries.join("\n")
        );
        let config = Config::parse(&text, "/etc/berth/test.toml", None).unwrap();
        Setup { run, config }
    }

    /// Loads with a host that provides `containers` only.
    fn load(&self) -> Result<PluginHost> {
        let services = HostServices {
            containers: Some(Arc::new(Fixed(vec![container("taken")]))),
            ..HostServices::default()
        };
        PluginHost::load(&self.config, services)
    }

    fn host(&self) -> PluginHost {
        self.load().unwrap()
    }

    fn decisions(&self) -> Vec<events::Decision> {
        events::read(&self.run.path().join(events::FILE_NAME)).unwrap()
    }
}

fn spec(name: &str) -> ContainerSpec {
    ContainerSpec {
        name: name.into(),
        image: "busybox:local".into(),
        ..ContainerSpec::default()
    }
}

fn backend(name: &str, healthy: bool) -> BackendInfo {
    BackendInfo {
        name: name.into(),
        kind: "native".into(),
        version: "1".into(),
        healthy,
        features: vec![],
        detail: None,
    }
}

fn failure(err: &Error) -> Option<PluginFailure> {
    match err {
        Error::PluginFailed { failure, .. } => Some(*failure),
        _ => None,
    }
}

#[test]
fn naming_validates_dns_labels_and_generates_app_names() {
    let setup = Setup::new(&[entry("naming", NAMING, "\"name-policy\"", "")]);
    let host = setup.host();
    let long_ok = "a".repeat(63);
    for name in [
        "myapp",
        "my-app",
        "3rd-app",
        "app1-prod",
        "abc",
        long_ok.as_str(),
        "my-app-prod-01",
        "node123",
        "123",
    ] {
        host.validate_name("container", name)
            .unwrap_or_else(|e| panic!("{name:?}: {e}"));
    }
    let long_bad = "a".repeat(64);
    for name in [
        "",
        "a",
        "ab",
        long_bad.as_str(),
        "-app",
        "app-",
        "my_app",
        "my app",
        "my.app",
        "my@app",
        "MyApp",
        "---",
        "-myapp",
    ] {
        match host.validate_name("container", name) {
            Err(Error::Denied {
                plugin,
                hook,
                reason,
            }) => {
                assert_eq!(
                    (plugin.as_str(), hook.as_str()),
                    ("naming", "validate-name")
                );
                assert!(reason.contains(&format!("{name:?}")), "{reason}");
            }
            other => panic!("{name:?}: expected a deny, got {other:?}"),
        }
    }

    assert_eq!(
        host.generate_name("container", &replica("255"))
            .unwrap()
            .as_deref(),
        Some("app-0123abcd-00ff")
    );
    let err = host
        .generate_name("container", &replica("65536"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("below 65536"), "{err}");
    assert_eq!(host.generate_name("container", &spec("")).unwrap(), None);
}

/// A spec labelled as replica `replica` of app `0123abcd`, which the naming example names.
fn replica(replica: &str) -> ContainerSpec {
    let mut labelled = spec("");
    labelled
        .labels
        .insert("berth.app-id".into(), "0123abcd".into());
    labelled
        .labels
        .insert("berth.replica-id".into(), replica.into());
    labelled
}

#[test]
fn naming_pattern_setting_replaces_the_default_rule() {
    let setup = Setup::new(&[entry(
        "naming",
        NAMING,
        "\"name-policy\"",
        "settings = { pattern = '^app-[a-f0-9]{8,16}-[0-9a-f]{4}$' }",
    )]);
    let host = setup.host();
    host.validate_name("container", "app-0123abcd-00ff")
        .unwrap();
    let err = host
        .validate_name("container", "myapp")
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not match ^app-"), "{err}");
}

#[test]
fn selector_follows_label_then_rules_then_health() {
    let candidates = [
        backend("native", true),
        backend("docker", true),
        backend("containerd", false),
    ];
    let none = Setup::new(&[]);
    assert_eq!(
        none.host()
            .select_backend(&spec("web"), &candidates)
            .unwrap(),
        None
    );

    let setup = Setup::new(&[entry(
        "selector",
        SELECTOR,
        "\"backend-policy\"",
        "settings = { rules = \"nginx*=docker\" }",
    )]);
    let host = setup.host();
    let mut web = spec("web");
    assert_eq!(
        host.select_backend(&web, &candidates).unwrap().as_deref(),
        Some("native")
    );
    web.image = "nginx:1".into();
    assert_eq!(
        host.select_backend(&web, &candidates).unwrap().as_deref(),
        Some("docker")
    );
    web.labels
        .insert("berth.backend".into(), "containerd".into());
    match host.select_backend(&web, &candidates) {
        Err(Error::Denied { plugin, reason, .. }) => {
            assert_eq!(plugin, "selector");
            assert!(reason.contains("no healthy backend"), "{reason}");
        }
        other => panic!("expected a deny, got {other:?}"),
    }
    let d = setup.decisions();
    assert_eq!(
        d.iter().map(|d| d.verdict).collect::<Vec<_>>(),
        [Verdict::Select, Verdict::Select, Verdict::Deny]
    );
    assert_eq!(d[1].reason.as_deref(), Some("docker"));
}

#[test]
fn guard_patches_at_pre_create_and_denies_by_its_settings() {
    let setup = Setup::new(&[entry(
        "guard",
        GUARD,
        "\"lifecycle-hooks\"",
        "settings = { require-memory-limit = true, allowed-mount-prefixes = \"/tmp,/srv\" }",
    )]);
    let host = setup.host();
    let mut web = spec("web");
    web.limits = Limits {
        memory_bytes: Some(64 << 20),
        ..Limits::default()
    };
    web.mounts.push(Mount {
        source: "/srv/data".into(),
        target: "/data".into(),
        readonly: true,
        owner: None,
    });
    host.on_event(Hook::PreCreate, &mut web, None).unwrap();
    assert_eq!(web.env["BERTH_CONTAINER_NAME"], "web");
    assert_eq!(web.env["BERTH_IMAGE"], "busybox:local");
    assert_eq!(web.labels["berth.guard"], "checked");
    // Every other hook, create-failed included, is observed and patches nothing.
    let stamped = web.clone();
    for hook in Hook::ALL.into_iter().filter(|h| *h != Hook::PreCreate) {
        host.on_event(hook, &mut web, Some("abc")).unwrap();
    }
    assert_eq!(web, stamped);

    let mut unlimited = spec("nolimit");
    let err = host
        .on_event(Hook::PreCreate, &mut unlimited, None)
        .unwrap_err();
    assert!(
        matches!(&err, Error::Denied { plugin, hook, reason } if plugin == "guard" && hook == "pre-create" && reason.contains("no memory limit")),
        "{err}"
    );
    assert!(unlimited.env.is_empty(), "a denied spec is not patched");

    let mut outside = web.clone();
    outside.mounts.push(Mount {
        source: "/etc".into(),
        target: "/host-etc".into(),
        readonly: true,
        owner: None,
    });
    let err = host
        .on_event(Hook::PreCreate, &mut outside, None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("/etc is outside the allowed prefixes /tmp,/srv"),
        "{err}"
    );

    let decisions = setup.decisions();
    assert_eq!(decisions.len(), 11);
    assert_eq!(decisions[0].verdict, Verdict::Patch);
    assert_eq!(
        decisions[0].patch.as_ref().unwrap().env["BERTH_CONTAINER_NAME"],
        "web"
    );
    assert!(
        decisions
            .iter()
            .all(|d| d.plugin == "guard" && d.input.len() == 12)
    );
}

#[test]
fn a_looping_plugin_is_stopped_at_its_deadline_and_the_host_answers_the_next_call() {
    let setup = Setup::new(&[
        entry("naming", NAMING, "\"name-policy\"", ""),
        entry("looper", LOOPER, "\"lifecycle-hooks\"", "timeout-ms = 50"),
    ]);
    let host = setup.host();
    // Twice: the interrupted instance is replaced, and the fresh one is interrupted too.
    for _ in 0..2 {
        let err = host
            .on_event(Hook::PreStart, &mut spec("web"), Some("id"))
            .unwrap_err();
        assert_eq!(failure(&err), Some(PluginFailure::Timeout), "{err}");
        assert!(
            err.to_string().contains(
                "plugin \"looper\" failed at pre-start (timeout): no answer within timeout-ms = 50"
            ),
            "{err}"
        );
    }
    host.validate_name("container", "web").unwrap();
    // Post-hooks observe: even a deny-on-error failure there undoes nothing.
    host.on_event(Hook::PostStart, &mut spec("web"), Some("id"))
        .unwrap();
    let d = setup.decisions();
    assert_eq!(d.iter().filter(|d| d.verdict == Verdict::Error).count(), 3);
}

#[test]
fn a_memory_hog_runs_out_of_memory() {
    let setup = Setup::new(&[entry(
        "hog",
        HOG,
        "\"lifecycle-hooks\"",
        "memory-mb = 8\ntimeout-ms = 5000",
    )]);
    let err = setup
        .host()
        .on_event(Hook::PreCreate, &mut spec("web"), None)
        .unwrap_err();
    assert_eq!(failure(&err), Some(PluginFailure::OutOfMemory), "{err}");
    assert!(err.to_string().contains("memory-mb = 8"), "{err}");
}

#[test]
fn a_trap_is_reported_with_the_panic_message() {
    let setup = Setup::new(&[entry("trapper", TRAPPER, "\"name-policy\"", "")]);
    let err = setup.host().validate_name("container", "web").unwrap_err();
    assert_eq!(failure(&err), Some(PluginFailure::Trap), "{err}");
    assert!(err.to_string().contains("trapper always panics"), "{err}");
}

/// The CLI calls plugins from async code; a guest writing to stderr there (as a panic does)
/// must still be a reported trap, not a host panic inside wasmtime-wasi's blocking flush.
#[test]
fn a_trap_inside_an_async_runtime_is_still_just_a_trap() {
    let setup = Setup::new(&[entry("trapper", TRAPPER, "\"name-policy\"", "")]);
    let host = setup.host();
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let current = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for runtime in [multi, current] {
        let err = runtime
            .block_on(async { host.validate_name("container", "web") })
            .unwrap_err();
        assert_eq!(failure(&err), Some(PluginFailure::Trap), "{err}");
    }
}

#[test]
fn on_error_allow_skips_the_failing_plugin_and_records_it() {
    let setup = Setup::new(&[
        entry(
            "looper",
            LOOPER,
            "\"lifecycle-hooks\"",
            "timeout-ms = 20\non-error = \"allow\"",
        ),
        entry("guard", GUARD, "\"lifecycle-hooks\"", ""),
        entry(
            "trapper",
            TRAPPER,
            "\"name-policy\"",
            "on-error = \"allow\"",
        ),
    ]);
    let host = setup.host();
    let mut web = spec("web");
    host.on_event(Hook::PreCreate, &mut web, None).unwrap();
    assert_eq!(
        web.labels["berth.guard"], "checked",
        "the next plugin still ran"
    );
    host.validate_name("container", "web").unwrap();
    let d = setup.decisions();
    assert_eq!(d[0].verdict, Verdict::Error);
    assert!(
        d[0].reason.as_ref().unwrap().contains("on-error = allow"),
        "{:?}",
        d[0]
    );
    assert_eq!(d[2].verdict, Verdict::Error);
}

#[test]
fn monitor_mode_records_denies_and_patches_without_applying_them() {
    let setup = Setup::new(&[entry(
        "guard",
        GUARD,
        "\"lifecycle-hooks\"",
        "mode = \"monitor\"\nsettings = { require-memory-limit = true }",
    )]);
    let host = setup.host();
    let mut web = spec("web");
    host.on_event(Hook::PreCreate, &mut web, None).unwrap();
    assert_eq!(web, spec("web"));
    web.limits.memory_bytes = Some(1 << 30);
    host.on_event(Hook::PreCreate, &mut web, None).unwrap();
    assert!(web.env.is_empty());
    let d = setup.decisions();
    assert_eq!(
        (d[0].verdict, d[0].mode),
        (Verdict::Deny, PluginMode::Monitor)
    );
    assert_eq!(
        (d[1].verdict, d[1].mode),
        (Verdict::Patch, PluginMode::Monitor)
    );
    assert!(d[0].to_string().contains("[monitor]"));
}

#[test]
fn an_ungranted_import_fails_at_load_naming_plugin_interface_and_key() {
    let setup = Setup::new(&[entry("snoop", SNOOP, "\"lifecycle-hooks\"", "")]);
    let err = setup
        .load()
        .err()
        .expect("snoop must not load without the grant")
        .to_string();
    assert!(
        err.contains(
            "plugin \"snoop\" imports berth:plugin/containers@0.4.0 but is not granted it: add \
             \"containers\" to grants of [[plugins]] name = \"snoop\" in /etc/berth/test.toml"
        ),
        "{err}"
    );

    let granted = Setup::new(&[entry(
        "snoop",
        SNOOP,
        "\"lifecycle-hooks\"",
        "grants = [\"containers\"]",
    )]);
    let host = granted.host();
    host.on_event(Hook::PreCreate, &mut spec("fresh"), None)
        .unwrap();
    let err = host
        .on_event(Hook::PreCreate, &mut spec("taken"), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("taken is taken (1 containers known)"), "{err}");

    // Granted, but this host has no containers to show: refused at load, not at the first call.
    let err = PluginHost::load(&granted.config, HostServices::default())
        .err()
        .expect("snoop must not load where the host lacks the interface");
    assert_eq!(failure(&err), Some(PluginFailure::Load), "{err}");
    assert!(
        err.to_string()
            .contains("imports berth:plugin/containers@0.4.0, which this host does not provide"),
        "{err}"
    );
}

#[test]
fn conflicting_patches_are_an_error_naming_both_plugins() {
    let setup = Setup::new(&[
        entry("guard", GUARD, "\"lifecycle-hooks\"", ""),
        entry("conflict", CONFLICT, "\"lifecycle-hooks\"", ""),
    ]);
    let err = setup
        .host()
        .on_event(Hook::PreCreate, &mut spec("web"), None)
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("\"guard\"")
            && text.contains("\"conflict\"")
            && text.contains("env BERTH_CONTAINER_NAME"),
        "{text}"
    );
}

#[test]
fn a_sha256_pin_mismatch_is_refused() {
    let actual = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
        std::fs::read(GUARD.path()).unwrap(),
    ));
    let wrong = "0".repeat(64);
    let setup = Setup::new(&[entry(
        "guard",
        GUARD,
        "\"lifecycle-hooks\"",
        &format!("sha256 = \"{wrong}\""),
    )]);
    let err = setup
        .load()
        .err()
        .expect("a wrong pin must refuse the plugin")
        .to_string();
    assert!(
        err.contains("plugin \"guard\"")
            && err.contains(&format!("expected {wrong}, actual {actual}")),
        "{err}"
    );

    let pinned = Setup::new(&[entry(
        "guard",
        GUARD,
        "\"lifecycle-hooks\"",
        &format!("sha256 = \"{actual}\""),
    )]);
    assert_eq!(pinned.host().summaries()[0].sha256, actual);
}

#[test]
fn compiled_components_are_cached_and_reused() {
    let state = tempfile::tempdir().unwrap();
    let setup = Setup::with_state(
        state.path(),
        &[entry("naming", NAMING, "\"name-policy\"", "")],
    );
    let first = setup.host().summaries();
    assert_eq!(first[0].cache, CacheStatus::Compiled);
    let cache_dir = state.path().join("cache/plugins");
    let files: Vec<PathBuf> = std::fs::read_dir(&cache_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(
        files[0]
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with(&first[0].sha256)
    );
    let mtime = std::fs::metadata(&files[0]).unwrap().modified().unwrap();

    let started = Instant::now();
    let host = setup.host();
    let warm = started.elapsed();
    assert_eq!(host.summaries()[0].cache, CacheStatus::Hit);
    assert_eq!(
        std::fs::metadata(&files[0]).unwrap().modified().unwrap(),
        mtime,
        "no recompile"
    );
    host.validate_name("container", "web").unwrap();
    eprintln!("warm load of naming: {warm:?}");
}

#[test]
fn a_component_replaced_in_place_is_hashed_again() {
    let state = tempfile::tempdir().unwrap();
    let component = state.path().join("policy.wasm");
    std::fs::copy(NAMING.path(), &component).unwrap();
    let entry = format!(
        "[[plugins]]\nname = \"policy\"\npath = {component:?}\nworlds = [\"name-policy\"]\n"
    );
    let setup = Setup::with_state(state.path(), &[entry]);
    let naming_sha = setup.host().summaries()[0].sha256.clone();
    // Unchanged: the remembered hash and the cached code serve the second load.
    assert_eq!(setup.host().summaries()[0].sha256, naming_sha);
    assert_eq!(setup.host().summaries()[0].cache, CacheStatus::Hit);

    // Another component under the same path (same size or not): a new hash, a new compile.
    std::fs::copy(TRAPPER.path(), &component).unwrap();
    let replaced = setup.host();
    assert_ne!(replaced.summaries()[0].sha256, naming_sha);
    assert_eq!(replaced.summaries()[0].cache, CacheStatus::Compiled);
    // It really is the new code: the trapper panics where naming answered.
    assert!(replaced.validate_name("container", "web").is_err());
}

#[test]
fn one_instance_serves_calls_until_one_traps() {
    let setup = Setup::new(&[entry("counter", COUNTER, "\"name-policy\"", "")]);
    let host = setup.host();
    let reason = |name: &str| {
        host.validate_name("container", name)
            .unwrap_err()
            .to_string()
    };
    assert!(reason("one").contains("call 1"));
    assert!(reason("two").contains("call 2"), "the instance is kept");
    let trap = reason("boom");
    assert!(trap.contains("asked to panic on call 3"), "{trap}");
    // The trap discarded the instance: counting starts again.
    assert!(
        reason("four").contains("call 1"),
        "a fresh instance after a trap"
    );
}

#[test]
fn no_plugins_means_nothing_compiled() {
    let state = tempfile::tempdir().unwrap();
    let setup = Setup::with_state(state.path(), &[]);
    let host = setup.host();
    host.validate_name("container", "Not_A_DNS_Name").unwrap();
    host.on_event(Hook::PreCreate, &mut spec("web"), None)
        .unwrap();
    assert!(host.summaries().is_empty());
    assert!(!state.path().join("cache").exists());
    assert!(setup.decisions().is_empty());
}

#[test]
fn check_reports_worlds_imports_and_grant_problems() {
    let setup = Setup::new(&[entry(
        "snoop",
        SNOOP,
        "\"lifecycle-hooks\", \"name-policy\"",
        "",
    )]);
    let report = check_component(&SNOOP.path(), &setup.config).unwrap();
    assert_eq!(
        report.worlds,
        vec![berth_core::config::PluginWorld::LifecycleHooks]
    );
    assert_eq!(report.needs_grants, vec![Grant::Containers]);
    assert_eq!(report.abi, Some(Abi::CURRENT));
    assert!(
        report.imports.iter().any(|i| i.starts_with("wasi:")),
        "{:?}",
        report.imports
    );
    assert_eq!(report.configured_as.as_deref(), Some("snoop"));
    assert!(!report.loads());
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("add \"containers\" to grants")),
        "{:?}",
        report.problems
    );
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("lists world name-policy")),
        "{:?}",
        report.problems
    );

    let naming = check_component(&NAMING.path(), &setup.config).unwrap();
    assert_eq!(
        naming.worlds,
        vec![berth_core::config::PluginWorld::NamePolicy]
    );
    assert_eq!(naming.configured_as, None);
    assert!(naming.problems.is_empty());
}

#[test]
fn one_call_returns_the_decision_for_printing() {
    let setup = Setup::new(&[
        entry("guard", GUARD, "\"lifecycle-hooks\"", ""),
        entry("naming", NAMING, "\"name-policy\"", ""),
    ]);
    let host = setup.host();
    let d = host
        .call(
            "guard",
            "pre-create".parse().unwrap(),
            &spec("web"),
            &[],
            None,
        )
        .unwrap();
    assert_eq!(d.verdict, Verdict::Patch);
    assert_eq!(d.patch.unwrap().labels["berth.guard"], "checked");
    let d = host
        .call("naming", Function::ValidateName, &spec("Bad"), &[], None)
        .unwrap();
    assert_eq!(d.verdict, Verdict::Deny);
    assert!(
        host.call("naming", Function::SelectBackend, &spec("x"), &[], None)
            .is_err()
    );
    assert!(
        host.call("nope", Function::ValidateName, &spec("x"), &[], None)
            .is_err()
    );
    assert!(setup.decisions().is_empty(), "trial calls are not recorded");
}

#[test]
fn a_backend_policy_answering_no_candidate_has_failed() {
    let candidates = [backend("native", true)];
    let setup = Setup::new(&[entry(
        "rogue",
        ROGUE,
        "\"backend-policy\"",
        "settings = { answer = \"nowhere\" }",
    )]);
    let err = setup
        .host()
        .select_backend(&spec("web"), &candidates)
        .unwrap_err();
    assert_eq!(failure(&err), Some(PluginFailure::BadAnswer), "{err}");
    assert!(
        err.to_string().contains(
            "plugin \"rogue\" failed at select-backend (bad answer): answered \"nowhere\", which \
             is not one of the candidate backends (native)"
        ),
        "{err}"
    );

    // A plugin failure, so `on-error` applies: allowed, the plugin is skipped.
    let lenient = Setup::new(&[entry(
        "rogue",
        ROGUE,
        "\"backend-policy\"",
        "on-error = \"allow\"\nsettings = { answer = \"nowhere\" }",
    )]);
    assert_eq!(
        lenient
            .host()
            .select_backend(&spec("web"), &candidates)
            .unwrap(),
        None
    );
    assert_eq!(lenient.decisions()[0].verdict, Verdict::Error);
}

/// What the host's tracing output said while `f` ran (a plugin's `log` calls land there),
/// among whatever other tests logged meanwhile. One process-wide subscriber, not a per-thread
/// one: tracing caches each log site's interest process-wide, and a site first hit by a
/// sibling test's thread would stay silent for a thread-local subscriber.
fn logs_of(f: impl FnOnce()) -> String {
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    static BUFFER: std::sync::OnceLock<Buffer> = std::sync::OnceLock::new();
    let buffer = BUFFER.get_or_init(|| {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        buffer
    });
    let before = buffer.0.lock().unwrap().len();
    f();
    let bytes = buffer.0.lock().unwrap()[before..].to_vec();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn create_failed_reaches_current_hooks_with_the_reason_and_not_0_1_0_ones() {
    let setup = Setup::new(&[
        entry(
            "provisioner",
            PROVISIONER,
            "\"lifecycle-hooks\"",
            "grants = [\"quotas\", \"packages\"]",
        ),
        entry("guard", COMPAT_GUARD, "\"lifecycle-hooks\"", ""),
    ]);
    let volumes = Arc::new(Volumes::default());
    let services = HostServices {
        quotas: Some(volumes.clone()),
        packages: Some(Arc::new(NoPackages)),
        ..HostServices::default()
    };
    let host = PluginHost::load(&setup.config, services).unwrap();
    let abis: Vec<Abi> = host.summaries().iter().map(|p| p.abi).collect();
    assert_eq!(abis, [Abi::CURRENT, Abi::V0_1]);

    // The provisioner ensures a volume at pre-create and mounts it; guard stamps the spec.
    let mut web = spec("web");
    host.on_event(Hook::PreCreate, &mut web, None).unwrap();
    assert_eq!(volumes.names(), ["web-data"]);
    assert!(
        web.mounts
            .iter()
            .any(|m| m.source == "web-data" && m.target == "/data"),
        "{web:?}"
    );
    assert_eq!(web.env["BERTH_CONTAINER_NAME"], "web");

    // Then the create fails: the provisioner is told why, and releases the volume.
    let reason = "backend \"native\" failed to create container web: no space left on device";
    let logged = logs_of(|| host.create_failed(&web, None, reason));
    assert_eq!(volumes.names(), Vec::<String>::new());
    assert!(
        logged.contains(&format!(
            "removed volume web-data: creating web failed: {reason}"
        )),
        "{logged}"
    );

    // Recorded for the provisioner; the 0.1.0 guard, which has no such event, was not told.
    let told: Vec<(String, Verdict)> = setup
        .decisions()
        .into_iter()
        .filter(|d| d.function == "create-failed")
        .map(|d| (d.plugin, d.verdict))
        .collect();
    assert_eq!(told, [("provisioner".to_string(), Verdict::Allow)]);
    let err = host
        .call(
            "guard",
            Function::Event(Hook::CreateFailed),
            &web,
            &[],
            None,
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("built against berth:plugin@0.1.0, which has no create-failed event"),
        "{err}"
    );
}

#[test]
fn components_built_against_earlier_abis_load_and_answer() {
    for (abi, [naming, selector, guard]) in [
        (Abi::V0_1, [COMPAT_NAMING, COMPAT_SELECTOR, COMPAT_GUARD]),
        (
            Abi::V0_2,
            [COMPAT_0_2_NAMING, COMPAT_0_2_SELECTOR, COMPAT_0_2_GUARD],
        ),
    ] {
        earlier_examples_answer(abi, naming, selector, guard);
    }
}

fn earlier_examples_answer(abi: Abi, naming: Plugin, selector: Plugin, guard: Plugin) {
    let setup = Setup::new(&[
        entry("naming", naming, "\"name-policy\"", ""),
        entry(
            "selector",
            selector,
            "\"backend-policy\"",
            "settings = { rules = \"nginx*=docker\" }",
        ),
        entry(
            "guard",
            guard,
            "\"lifecycle-hooks\"",
            "settings = { require-memory-limit = true }",
        ),
    ]);
    let host = setup.host();
    assert!(
        host.summaries().iter().all(|p| p.abi == abi),
        "{:?}",
        host.summaries()
    );

    // validate-name and generate-name.
    host.validate_name("container", "my-app").unwrap();
    match host.validate_name("container", "My_App") {
        Err(Error::Denied { plugin, reason, .. }) => {
            assert_eq!(plugin, "naming");
            assert!(reason.contains("\"My_App\""), "{reason}");
        }
        other => panic!("expected a deny, got {other:?}"),
    }
    assert_eq!(
        host.generate_name("container", &replica("255"))
            .unwrap()
            .as_deref(),
        Some("app-0123abcd-00ff")
    );

    // select-backend, candidates converted to the version's records and the answer checked.
    let candidates = [backend("native", true), backend("docker", true)];
    let mut web = spec("web");
    assert_eq!(
        host.select_backend(&web, &candidates).unwrap().as_deref(),
        Some("native")
    );
    web.image = "nginx:1".into();
    assert_eq!(
        host.select_backend(&web, &candidates).unwrap().as_deref(),
        Some("docker")
    );

    // pre-create: a patch comes back through the version's records; a deny is a deny.
    web.limits.memory_bytes = Some(64 << 20);
    host.on_event(Hook::PreCreate, &mut web, None).unwrap();
    assert_eq!(web.env["BERTH_CONTAINER_NAME"], "web");
    assert_eq!(web.env["BERTH_IMAGE"], "nginx:1");
    assert_eq!(web.labels["berth.guard"], "checked");
    let err = host
        .on_event(Hook::PreCreate, &mut spec("nolimit"), None)
        .unwrap_err();
    assert!(
        matches!(&err, Error::Denied { plugin, reason, .. } if plugin == "guard" && reason.contains("no memory limit")),
        "{err}"
    );
    host.on_event(Hook::PostStart, &mut web, Some("abc"))
        .unwrap();

    // `berth plugin check` says what it targets.
    let report = check_component(&guard.path(), &setup.config).unwrap();
    assert_eq!(report.abi, Some(abi));
    assert_eq!(report.worlds, vec![PluginWorld::LifecycleHooks]);
    assert!(report.loads(), "{:?}", report.problems);
    let berth_imports: Vec<&String> = report
        .imports
        .iter()
        .filter(|i| i.starts_with("berth:plugin/"))
        .collect();
    assert!(
        !berth_imports.is_empty()
            && berth_imports
                .iter()
                .all(|i| i.ends_with(&format!("@{abi}"))),
        "{berth_imports:?}"
    );
}

//! Plugin runtime figures: cold load (compile), warm load (cache hit) and per-call latency of
//! each example plugin. Prints numbers, asserts nothing: `cargo bench -p berth-plugins`.

use std::time::{Duration, Instant};

use berth_core::{BackendInfo, Config, ContainerSpec, Limits};
use berth_plugins::{Hook, HostServices, PluginHost};
use berth_tests::plugins::{self, GUARD, NAMING, SELECTOR};

const CALLS: usize = 2000;

fn config(state: &std::path::Path, plugin: plugins::Plugin, name: &str, world: &str) -> Config {
    let text = format!(
        "[host]\nstate-dir = {state:?}\nrun-dir = {:?}\n[backends.native]\ntype = \"native\"\n\
         [[plugins]]\nname = {name:?}\npath = {:?}\nworlds = [{world:?}]\n",
        state.join("run"),
        plugin.path()
    );
    Config::parse(&text, "bench.toml", None).expect("bench config parses")
}

fn load(config: &Config) -> (PluginHost, Duration) {
    let started = Instant::now();
    let host = PluginHost::load(config, HostServices::default()).expect("plugin loads");
    (host, started.elapsed())
}

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    println!(
        "{what:<40} median {:>8.1?}  p99 {:>8.1?}  ({} calls)",
        at(0.5),
        at(0.99),
        samples.len()
    );
}

fn time(mut call: impl FnMut()) -> Vec<Duration> {
    (0..CALLS)
        .map(|_| {
            let started = Instant::now();
            call();
            started.elapsed()
        })
        .collect()
}

fn main() {
    let spec = ContainerSpec {
        name: "web".into(),
        image: "busybox:local".into(),
        limits: Limits {
            memory_bytes: Some(64 << 20),
            ..Limits::default()
        },
        ..ContainerSpec::default()
    };
    let candidates = [BackendInfo {
        name: "native".into(),
        kind: "native".into(),
        version: "1".into(),
        healthy: true,
        features: vec![],
        detail: None,
    }];
    for (plugin, name, world) in [
        (NAMING, "naming", "name-policy"),
        (SELECTOR, "selector", "backend-policy"),
        (GUARD, "guard", "lifecycle-hooks"),
    ] {
        let state = tempfile::tempdir().expect("temp dir");
        let config = config(state.path(), plugin, name, world);
        let (_, cold) = load(&config);
        let warm: Vec<Duration> = (0..20).map(|_| load(&config).1).collect();
        println!("{name:<10} cold load (compile) {cold:>10.1?}");
        report(&format!("{name} warm load (cache hit)"), warm);
        let (host, _) = load(&config);
        match world {
            "name-policy" => report(
                &format!("{name} validate-name"),
                time(|| host.validate_name("container", "web").unwrap()),
            ),
            "backend-policy" => report(
                &format!("{name} select-backend"),
                time(|| drop(host.select_backend(&spec, &candidates).unwrap())),
            ),
            _ => {
                report(
                    &format!("{name} pre-create (patch)"),
                    time(|| {
                        host.on_event(Hook::PreCreate, &mut spec.clone(), None)
                            .unwrap()
                    }),
                );
                report(
                    &format!("{name} post-start"),
                    time(|| {
                        host.on_event(Hook::PostStart, &mut spec.clone(), Some("id"))
                            .unwrap()
                    }),
                );
            }
        }
    }
}

//! Containers on a terminal (`-t`), driven as a user at a terminal would: the detach keys,
//! `attach` back, `exec -it`, `create -it` then `start -ai`, on native (its supervisor owns
//! the pty), Docker (dockerd's) and containerd (its shim's, fed through berth's logger). The contract suite covers `run -it` and resizing on every
//! backend, and the refusal where a backend has no terminal.

use berth_tests::containerd::{self, containerd_env};
use berth_tests::docker::{self, docker_env};
use berth_tests::env::BerthEnv;
use berth_tests::pty::Terminal;

/// A backend with terminals, and an installation that has it.
struct Host {
    backend: &'static str,
    env: BerthEnv,
    image: &'static str,
}

impl Host {
    fn all() -> [Host; 3] {
        [
            Host {
                backend: "native",
                env: BerthEnv::new("").with_busybox(),
                image: "busybox:local",
            },
            Host {
                backend: "docker",
                env: docker_env(""),
                image: docker::busybox_image(),
            },
            Host {
                backend: "containerd",
                env: containerd_env(""),
                image: containerd::busybox_image(),
            },
        ]
    }

    /// A container name unique to this process and backend (Docker's names are the daemon's).
    fn name(&self, what: &str) -> String {
        format!("tt{}-{}-{what}", std::process::id(), self.backend)
    }

    /// `berth ARGS` on a terminal of `rows` x `cols`; `run` and `create` go to this backend,
    /// and `IMAGE` is its image.
    fn on_terminal(&self, args: &[&str], rows: u16, cols: u16) -> Terminal {
        let args = self.args(args);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Terminal::spawn(self.env.command(&args), rows, cols)
    }

    fn berth(&self, args: &[&str]) -> berth_tests::env::Run {
        let args = self.args(args);
        self.env
            .berth(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    fn args(&self, args: &[&str]) -> Vec<String> {
        let mut out: Vec<String> = args
            .iter()
            .map(|a| if *a == "IMAGE" { self.image } else { a }.to_string())
            .collect();
        if matches!(args.first(), Some(&"run" | &"create")) {
            out.splice(1..1, ["--backend".to_string(), self.backend.to_string()]);
        }
        out
    }

    fn status(&self, name: &str) -> String {
        self.env.berth(&["inspect", name]).ok().json()[0]["state"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

#[test]
fn the_detach_keys_leave_a_container_running_and_attach_returns_to_it() {
    for host in Host::all() {
        let away = host.name("away");
        let mut run = host.on_terminal(&["run", "-it", "--name", &away, "IMAGE", "sh"], 24, 80);
        run.expect("# ");
        run.send(b"export MARK=kept\r");
        run.expect("# ");
        run.send(b"\x10\x11");
        assert_eq!(run.wait(), 0, "{}", run.transcript);
        assert!(
            run.transcript.contains(&format!("detached from {away}")),
            "{}",
            run.transcript
        );
        assert_eq!(host.status(&away), "running", "{}", host.backend);

        // The same shell, its stdin still open: a terminal's outlives the client that left.
        let mut attach = host.on_terminal(&["attach", "--detach-keys", "ctrl-x,x", &away], 24, 80);
        attach.send(b"echo mark=$MARK\r");
        attach.expect("mark=kept");
        // A lone ctrl-x is the shell's, not the start of the sequence.
        attach.send(b"\x18x");
        assert_eq!(attach.wait(), 0, "{}", attach.transcript);
        assert_eq!(host.status(&away), "running", "{}", host.backend);

        let mut back = host.on_terminal(&["attach", &away], 24, 80);
        back.send(b"exit 7\r");
        assert_eq!(back.wait(), 7, "{}", back.transcript);
        assert_eq!(host.status(&away), "stopped", "{}", host.backend);
        host.berth(&["rm", &away]).ok();
    }
}

#[test]
fn exec_it_gives_the_process_a_terminal_of_its_own() {
    for host in Host::all() {
        let name = host.name("host");
        host.berth(&["run", "-d", "--name", &name, "IMAGE", "sleep", "300"])
            .ok();
        let mut exec = host.on_terminal(&["exec", "-it", &name, "sh"], 20, 70);
        exec.expect("# ");
        exec.send(b"stty size; tty\r");
        exec.expect("20 70");
        exec.expect("/dev/pts/");
        // As docker sets it.
        exec.send(b"echo term=$TERM\r");
        exec.expect("term=xterm");
        exec.resize_and_ask(25, 90);
        assert!(exec.transcript.contains("25 90"), "{}", exec.transcript);
        exec.send(b"exit 5\r");
        assert_eq!(exec.wait(), 5, "{}", exec.transcript);
        assert_eq!(host.status(&name), "running", "{}", host.backend);

        // Without -i the terminal shows output and takes no keys.
        let mut shown = host.on_terminal(&["exec", "-t", &name, "tty"], 20, 70);
        shown.expect("/dev/pts/");
        assert_eq!(shown.wait(), 0, "{}", shown.transcript);
        host.berth(&["rm", "-f", &name]).ok();
    }
}

#[test]
fn create_it_then_start_ai_runs_on_this_terminal() {
    for host in Host::all() {
        let later = host.name("later");
        host.berth(&["create", "-it", "--name", &later, "IMAGE", "sh"])
            .ok();
        let mut start = host.on_terminal(&["start", "-ai", &later], 30, 90);
        start.expect("# ");
        start.send(b"stty size\r");
        start.expect("30 90");
        start.send(b"exit 2\r");
        assert_eq!(start.wait(), 2, "{}", start.transcript);
        host.berth(&["rm", &later]).ok();
    }
}

#[test]
fn it_needs_a_terminal_and_detach_keys_must_parse() {
    let env = BerthEnv::new("").with_busybox();
    // Stdin is not a terminal here (the test harness's null): as docker, refused.
    let refused = env.berth(&["run", "-it", "--rm", "busybox:local", "true"]);
    assert_eq!(refused.code, 64, "{refused:?}");
    assert!(refused.stderr.contains("not a terminal"), "{refused:?}");
    let bad = env.berth(&[
        "run",
        "-t",
        "--detach-keys",
        "shift-a",
        "busybox:local",
        "true",
    ]);
    assert_eq!(bad.code, 64, "{bad:?}");
    assert!(bad.stderr.contains("ctrl-p,ctrl-q"), "{bad:?}");
    // -t alone, not on a terminal, still runs and shows its output.
    for host in Host::all() {
        let shown = host
            .berth(&["run", "-t", "--rm", "IMAGE", "echo", "hi"])
            .ok();
        assert_eq!(shown.stdout, "hi\r\n", "{}", host.backend);
        assert_eq!(host.env.berth(&["ps", "-a", "-q"]).ok().stdout, "");
    }
}

#[test]
fn a_killed_client_leaves_the_container_on_its_terminal_for_the_next() {
    for host in Host::all() {
        let kept = host.name("kept");
        let mut run = host.on_terminal(&["run", "-it", "--name", &kept, "IMAGE", "sh"], 24, 80);
        run.expect("# ");
        // Seen run, not just echoed: what berth still held when killed would be lost.
        run.send(b"export MARK=survived; echo set-$((40+2))\r");
        run.expect("set-42");
        // The supervisor (dockerd) owns the terminal: berth's death is a client leaving.
        run.kill();
        assert_eq!(host.status(&kept), "running", "{}", host.backend);
        let mut back = host.on_terminal(&["attach", &kept], 24, 80);
        back.send(b"echo mark=$MARK\r");
        back.expect("mark=survived");
        back.send(b"exit 6\r");
        assert_eq!(back.wait(), 6, "{}", back.transcript);
        host.berth(&["rm", &kept]).ok();
    }
}

/// Native and containerd (runc sizes it from the spec's `consoleSize`): berth sends Docker the
/// size too (`ConsoleSize`), but this machine's dockerd (20.10, API 1.41) sizes a terminal only
/// once a client resizes it, as `docker run -t` shows.
#[test]
fn a_containers_terminal_has_the_clients_size_from_its_first_instant() {
    for host in Host::all().into_iter().filter(|h| h.backend != "docker") {
        // stty runs at once: a size that came with the first resize would read 0x0.
        let mut run = host.on_terminal(&["run", "-t", "--rm", "IMAGE", "stty", "size"], 31, 93);
        assert_eq!(run.wait(), 0, "{}: {}", host.backend, run.transcript);
        assert!(
            run.transcript.contains("31 93"),
            "{}: {}",
            host.backend,
            run.transcript
        );
    }
}

/// On a terminal a pull draws a bar per layer and one for the total, with the speed.
#[test]
fn a_pull_on_a_terminal_shows_a_bar_per_layer_and_the_total() {
    let env = BerthEnv::new("");
    let image = berth_tests::registry::busybox_image();
    let mut terminal = Terminal::spawn(env.command(&["image", "pull", image]), 30, 140);
    terminal.expect("Pulled ");
    assert_eq!(terminal.wait(), 0, "{}", terminal.transcript);
    let layers = berth_tests::registry::inspect(image)["Layers"].clone();
    let first = layers[0].as_str().unwrap_or_else(|| panic!("{layers}"));
    let short = &first.trim_start_matches("sha256:")[..12];
    for drawn in [short, "total", "Download complete", "/s", "[="] {
        assert!(
            terminal.transcript.contains(drawn),
            "{drawn:?} not drawn:\n{}",
            terminal.transcript
        );
    }
}

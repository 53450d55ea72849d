//! Containers on a terminal (`-t`) on the native backend, driven as a user at a terminal
//! would: the detach keys, `attach` back, `exec -it`, `create -it` then `start -ai`. The
//! contract suite covers `run -it` and resizing on every backend.

use berth_tests::env::BerthEnv;
use berth_tests::pty::Terminal;

fn status(env: &BerthEnv, name: &str) -> String {
    env.berth(&["inspect", name]).ok().json()[0]["state"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn the_detach_keys_leave_a_container_running_and_attach_returns_to_it() {
    let env = BerthEnv::new("").with_busybox();
    let mut run = Terminal::spawn(
        env.command(&["run", "-it", "--name", "away", "busybox:local", "sh"]),
        24,
        80,
    );
    run.expect("# ");
    run.send(b"export MARK=kept\r");
    run.expect("# ");
    run.send(b"\x10\x11");
    assert_eq!(run.wait(), 0, "{}", run.transcript);
    assert!(
        run.transcript.contains("detached from away"),
        "{}",
        run.transcript
    );
    assert_eq!(status(&env, "away"), "running");

    // The same shell, its stdin still open: a terminal's outlives the client that left.
    let mut attach = Terminal::spawn(
        env.command(&["attach", "--detach-keys", "ctrl-x,x", "away"]),
        24,
        80,
    );
    attach.send(b"echo mark=$MARK\r");
    attach.expect("mark=kept");
    // A lone ctrl-x is the shell's, not the start of the sequence.
    attach.send(b"\x18x");
    assert_eq!(attach.wait(), 0, "{}", attach.transcript);
    assert_eq!(status(&env, "away"), "running");

    let mut back = Terminal::spawn(env.command(&["attach", "away"]), 24, 80);
    back.send(b"exit 7\r");
    assert_eq!(back.wait(), 7, "{}", back.transcript);
    assert_eq!(status(&env, "away"), "stopped");
}

#[test]
fn exec_it_gives_the_process_a_terminal_of_its_own() {
    let env = BerthEnv::new("").with_busybox();
    env.berth(&[
        "run",
        "-d",
        "--name",
        "host",
        "busybox:local",
        "sleep",
        "300",
    ])
    .ok();
    let mut exec = Terminal::spawn(env.command(&["exec", "-it", "host", "sh"]), 20, 70);
    exec.expect("# ");
    exec.send(b"stty size; tty; echo term=$TERM\r");
    exec.expect("20 70");
    exec.expect("/dev/pts/");
    exec.expect("term=xterm");
    exec.send(b"exit 5\r");
    assert_eq!(exec.wait(), 5, "{}", exec.transcript);
    assert_eq!(status(&env, "host"), "running");

    // Without -i the terminal shows output and takes no keys.
    let mut shown = Terminal::spawn(env.command(&["exec", "-t", "host", "tty"]), 20, 70);
    shown.expect("/dev/pts/");
    assert_eq!(shown.wait(), 0, "{}", shown.transcript);
}

#[test]
fn create_it_then_start_ai_runs_on_this_terminal() {
    let env = BerthEnv::new("").with_busybox();
    env.berth(&["create", "-it", "--name", "later", "busybox:local", "sh"])
        .ok();
    let mut start = Terminal::spawn(env.command(&["start", "-ai", "later"]), 30, 90);
    start.expect("# ");
    start.send(b"stty size\r");
    start.expect("30 90");
    start.send(b"exit 2\r");
    assert_eq!(start.wait(), 2, "{}", start.transcript);
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
    let shown = env
        .berth(&["run", "-t", "--rm", "busybox:local", "echo", "hi"])
        .ok();
    assert_eq!(shown.stdout, "hi\r\n");
    assert_eq!(env.berth(&["ps", "-a", "-q"]).ok().stdout, "");
}

#[test]
fn a_killed_client_leaves_the_container_on_its_terminal_for_the_next() {
    let env = BerthEnv::new("").with_busybox();
    let mut run = Terminal::spawn(
        env.command(&["run", "-it", "--name", "kept", "busybox:local", "sh"]),
        24,
        80,
    );
    run.expect("# ");
    // Seen run, not just echoed: what berth still held when killed would be lost.
    run.send(b"export MARK=survived; echo set-$((40+2))\r");
    run.expect("set-42");
    // The supervisor owns the terminal: berth's death is a client leaving, nothing more.
    run.kill();
    assert_eq!(status(&env, "kept"), "running");
    let mut back = Terminal::spawn(env.command(&["attach", "kept"]), 24, 80);
    back.send(b"echo mark=$MARK\r");
    back.expect("mark=survived");
    back.send(b"exit 6\r");
    assert_eq!(back.wait(), 6, "{}", back.transcript);
}

#[test]
fn a_containers_terminal_has_the_clients_size_from_its_first_instant() {
    let env = BerthEnv::new("").with_busybox();
    // stty runs at once: a size that came with the first resize would read 0x0.
    let command = env.command(&["run", "-t", "--rm", "busybox:local", "stty", "size"]);
    let mut run = Terminal::spawn(command, 31, 93);
    assert_eq!(run.wait(), 0, "{}", run.transcript);
    assert!(run.transcript.contains("31 93"), "{}", run.transcript);
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

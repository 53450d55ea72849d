//! `logs --tail/--since/--until/--timestamps`, one flow for every backend that claims
//! `log-filters`.

use crate::env::BerthEnv;

/// Runs a container on `backend` (image `image`) that writes two lines a second apart (docker
/// stamps each stream as its own copier reads it, so lines of two streams written together
/// may be stamped in either order), pauses 2 s (so that docker's whole-second windows fall
/// between them), writes three more, and checks each filter against what it wrote.
pub fn log_filters_flow(env: &BerthEnv, backend: &str, image: &str) {
    let script = "echo a1; sleep 1; echo a2 >&2; sleep 2; echo b1; echo b2; echo b3";
    let id = env
        .berth(&["run", "-d", "--backend", backend, image, "sh", "-c", script])
        .ok()
        .stdout
        .trim()
        .to_string();
    for _ in 0..200 {
        if env.berth(&["inspect", &id]).ok().json()[0]["state"] == "stopped" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let logs = |extra: &[&str]| {
        let mut args = vec!["logs"];
        args.extend(extra);
        args.push(&id);
        env.berth(&args).ok()
    };
    let all = logs(&[]);
    assert_eq!(all.stdout, "a1\nb1\nb2\nb3\n", "{backend}");
    assert_eq!(all.stderr, "a2\n", "{backend}");

    // Every line stamped with an RFC 3339 time, in the order written.
    let stamped = logs(&["--timestamps"]);
    let parse = |line: &str| {
        let (time, text) = line.split_once(' ').unwrap();
        let time = chrono::DateTime::parse_from_rfc3339(time)
            .unwrap_or_else(|e| panic!("{backend}: {line:?}: {e}"));
        (time, text.to_string())
    };
    let out: Vec<_> = stamped.stdout.lines().map(parse).collect();
    let err: Vec<_> = stamped.stderr.lines().map(parse).collect();
    let texts: Vec<&str> = out.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(texts, ["a1", "b1", "b2", "b3"], "{backend}");
    assert_eq!(err[0].1, "a2", "{backend}");
    assert!(
        out.windows(2).all(|w| w[0].0 <= w[1].0),
        "{backend}: {out:?}"
    );
    // The streams interleave as written: a2 came between a1 and b1.
    assert!(
        out[0].0 <= err[0].0 && err[0].0 <= out[1].0,
        "{backend}: {out:?} {err:?}"
    );

    // The last lines, across streams.
    assert_eq!(logs(&["--tail", "2"]).stdout, "b2\nb3\n", "{backend}");
    assert_eq!(logs(&["-n", "0"]).stdout, "", "{backend}");

    // The window: from b1 on, and up to the later of the a's.
    let b1 = out[1].0.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let since = logs(&["--since", &b1]);
    assert_eq!(since.stdout, "b1\nb2\nb3\n", "{backend}");
    assert_eq!(since.stderr, "", "{backend}");
    let last_a = out[0].0.max(err[0].0);
    let until = logs(&[
        "--until",
        &last_a.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
    ]);
    assert_eq!(until.stdout, "a1\n", "{backend}");
    assert_eq!(until.stderr, "a2\n", "{backend}");

    let bad = env.berth(&["logs", "--since", "yesterday", &id]);
    assert_eq!(bad.code, 64, "{bad:?}");
    env.berth(&["rm", &id]).ok();
}

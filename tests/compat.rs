//! `compat`: a plan the kernel can't fully enforce is refused under `strict`
//! and runs under `best-effort`, naming exactly what was dropped. The missing
//! kernel feature is simulated by capping the Landlock ABI confine may use
//! (CONFINE_LANDLOCK_ABI) below what the plan needs (TCP port rules, ABI 4).
mod common;
use common::*;

fn profile(f: &Fixture, compat: &str) -> String {
    f.profile(
        compat,
        &format!(
            "version: 1\nextends: default\nnetwork: {{mode: host, connect_tcp: [443]}}\ncompat: {compat}\n"
        ),
    )
    .display()
    .to_string()
}

#[test]
fn strict_refuses_a_plan_above_the_abi() {
    if !can_run("strict_refuses_a_plan_above_the_abi") || !require_landlock("strict", 4) {
        return;
    }
    let f = Fixture::new("compat-strict");
    let marker = f.ws.join("ran");
    let o = f
        .command(
            &profile(&f, "strict"),
            &["/bin/sh", "-c", &format!("touch {}", marker.display())],
        )
        .env("CONFINE_LANDLOCK_ABI", "3")
        .output()
        .unwrap();
    assert_status(&o, 125);
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "one line: {}", show(&o));
    assert!(err.starts_with("confine: "), "{}", show(&o));
    assert!(
        err.contains("TCP bind/connect rules (ABI 4)"),
        "{}",
        show(&o)
    );
    assert!(!marker.exists(), "the command must never run");

    // Control: with the kernel's own ABI the same profile runs.
    let o = f
        .command(
            &profile(&f, "strict"),
            &["/bin/sh", "-c", &format!("touch {}", marker.display())],
        )
        .output()
        .unwrap();
    assert_status(&o, 0);
    assert!(marker.exists());
}

#[test]
fn best_effort_runs_and_names_what_was_dropped() {
    if !can_run("best_effort_runs_and_names_what_was_dropped")
        || !require_landlock("best-effort", 4)
    {
        return;
    }
    let f = Fixture::new("compat-best-effort");
    let log = f.root.join("audit.jsonl");
    let o = f
        .command(&profile(&f, "best-effort"), &["/bin/sh", "-c", "echo ran"])
        .env("CONFINE_LANDLOCK_ABI", "3")
        .env("CONFINE_AUDIT_LOG", &log)
        .output()
        .unwrap();
    assert_status(&o, 0);
    assert_eq!(stdout(&o), "ran\n");
    let err = stderr(&o);
    assert!(
        err.lines()
            .any(|l| l
                .starts_with("confine: best-effort: not enforced: TCP bind/connect rules (ABI 4)")),
        "{}",
        show(&o)
    );
    let records = std::fs::read_to_string(&log).unwrap();
    let launch: serde_json::Value = serde_json::from_str(records.lines().next().unwrap()).unwrap();
    assert_eq!(launch["event"], "launch");
    let dropped = launch["dropped"].as_array().unwrap();
    assert!(
        dropped
            .iter()
            .any(|d| d["what"] == "TCP bind/connect rules (ABI 4)"),
        "{records}"
    );

    // Without the cap nothing is dropped.
    let o = f
        .command(&profile(&f, "best-effort"), &["/bin/true"])
        .output()
        .unwrap();
    assert_status(&o, 0);
    assert!(!stderr(&o).contains("not enforced"), "{}", show(&o));
}

#[test]
fn no_landlock_at_all_is_refused_under_strict() {
    if !can_run("no_landlock_at_all_is_refused_under_strict") {
        return;
    }
    let f = Fixture::new("compat-nolandlock");
    let o = f
        .command("default", &["/bin/true"])
        .env("CONFINE_LANDLOCK_ABI", "0")
        .output()
        .unwrap();
    assert_status(&o, 125);
    assert!(
        stderr(&o).contains("filesystem rules (ABI 1)"),
        "{}",
        show(&o)
    );
}

//! The everyday path: the built-in default profile runs a command in the
//! workspace and keeps it there.
mod common;
use common::*;

#[test]
fn default_profile_writes_workspace_not_outside() {
    if !can_run("default_profile_writes_workspace_not_outside") {
        return;
    }
    let f = Fixture::new("smoke");
    let target = f.file(&f.outside.join("victim"), "original");
    let o = f.sh(
        "default",
        &format!(
            "echo ok > {ws}/made && cat {ws}/made && echo pwned > {t}; echo status=$?",
            ws = f.ws.display(),
            t = target.display()
        ),
    );
    assert_status(&o, 0);
    let out = stdout(&o);
    assert!(out.starts_with("ok\n"), "{}", show(&o));
    assert!(
        out.contains("status=2"),
        "the write outside must fail: {}",
        show(&o)
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "original");
    assert_eq!(std::fs::read_to_string(f.ws.join("made")).unwrap(), "ok\n");
}

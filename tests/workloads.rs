//! What must keep working under the default profile: the interpreters,
//! toolchains and shell plumbing an agent uses every minute, byte-exact
//! stdio, and the exit statuses of DESIGN.md §1.
mod common;
use common::*;

use std::fs;
use std::io::{Read, Write};
use std::path::Path;
use std::process::Stdio;

#[test]
fn python_threads_and_multiprocessing() {
    if !can_run("python_threads_and_multiprocessing")
        || !have("python_threads_and_multiprocessing", "/usr/bin/python3")
    {
        return;
    }
    let f = Fixture::new("wl-python");
    let script = "\
import multiprocessing, threading

def square(x):
    return x * x

if __name__ == '__main__':
    out = []
    lock = threading.Lock()
    def work(i):
        with lock:
            out.append(square(i))
    ts = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    print('threads', sorted(out))
    with multiprocessing.Pool(2) as pool:
        print('pool', pool.map(square, range(6)))
";
    f.file(&f.ws.join("work.py"), script);
    let o = f.run("default", &["/usr/bin/python3", "work.py"]);
    assert_status(&o, 0);
    assert_eq!(
        stdout(&o),
        "threads [0, 1, 4, 9, 16, 25, 36, 49]\npool [0, 1, 4, 9, 16, 25]\n",
        "{}",
        show(&o)
    );
}

#[test]
fn git_init_add_commit() {
    if !can_run("git_init_add_commit") {
        return;
    }
    let f = Fixture::new("wl-git");
    let o = f.sh(
        "default",
        "set -e; cd \"$HOME\"; git init -q repo; cd repo; echo hello > a.txt; \
         git add a.txt; \
         git -c user.name=Agent -c user.email=agent@example.invalid commit -q -m first; \
         git log --format=%s; git ls-files",
    );
    assert_status(&o, 0);
    assert_eq!(stdout(&o), "first\na.txt\n", "{}", show(&o));
    assert!(f.ws.join("repo/.git/HEAD").is_file());
}

const HELLO_C: &str =
    "#include <stdio.h>\nint main(void) { printf(\"hello %d\\n\", 6 * 7); return 3; }\n";

#[test]
fn cc_compiles_and_runs_in_the_workspace() {
    if !can_run("cc_compiles_and_runs_in_the_workspace")
        || !have("cc_compiles_and_runs_in_the_workspace", "/usr/bin/cc")
    {
        return;
    }
    let f = Fixture::new("wl-cc");
    f.file(&f.ws.join("hello.c"), HELLO_C);
    let o = f.sh("default", "cc -O1 -o hello hello.c && ./hello");
    assert_status(&o, 3);
    assert_eq!(stdout(&o), "hello 42\n", "{}", show(&o));
}

#[test]
fn make_builds_in_the_workspace() {
    if !can_run("make_builds_in_the_workspace")
        || !have("make_builds_in_the_workspace", "/usr/bin/make")
        || !have("make_builds_in_the_workspace", "/usr/bin/cc")
    {
        return;
    }
    let f = Fixture::new("wl-make");
    f.file(&f.ws.join("hello.c"), HELLO_C);
    f.file(
        &f.ws.join("Makefile"),
        "hello: hello.c\n\tcc -O1 -o $@ $<\n\n.PHONY: run\nrun: hello\n\t./hello > out.txt || test $$? -eq 3\n",
    );
    let o = f.sh(
        "default",
        "make -s run && cat out.txt && make -q hello; echo up_to_date=$?",
    );
    assert_status(&o, 0);
    assert_eq!(stdout(&o), "hello 42\nup_to_date=0\n", "{}", show(&o));
}

#[test]
fn node_worker_threads() {
    if !can_run("node_worker_threads") || !have("node_worker_threads", "/usr/bin/node") {
        return;
    }
    let f = Fixture::new("wl-node");
    let o = f.run(
        "default",
        &[
            "/usr/bin/node",
            "-e",
            "const { Worker } = require('worker_threads');\n\
             const w = new Worker(\"require('worker_threads').parentPort.postMessage(6 * 7)\", { eval: true });\n\
             w.on('message', (m) => { console.log('worker says', m); });\n\
             w.on('error', (e) => { console.error(e); process.exit(1); });",
        ],
    );
    assert_status(&o, 0);
    assert_eq!(stdout(&o), "worker says 42\n", "{}", show(&o));
}

#[test]
fn pipes_devices_and_process_substitution() {
    if !can_run("pipes_devices_and_process_substitution") {
        return;
    }
    let f = Fixture::new("wl-pipes");
    let o = f.sh(
        "default",
        "seq 1 100000 | sort -n | tail -1; \
         echo discarded > /dev/null; echo devnull=$?; \
         head -c 16 /dev/urandom | wc -c; \
         head -c 5 /dev/zero | od -An -tx1 | tr -d ' '; \
         bash -c 'diff <(echo a) <(echo a) && echo same'",
    );
    assert_status(&o, 0);
    assert_eq!(
        stdout(&o),
        "100000\ndevnull=0\n16\n0000000000\nsame\n",
        "{}",
        show(&o)
    );
}

#[test]
fn stdin_passes_through_byte_exact() {
    if !can_run("stdin_passes_through_byte_exact") {
        return;
    }
    let f = Fixture::new("wl-stdin");
    let mut input = vec![0u8; 1 << 20];
    fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut input)
        .unwrap();
    let mut child = f
        .command("default", &["/bin/cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = input.clone();
    let writer = std::thread::spawn(move || {
        stdin.write_all(&data).unwrap();
        // Dropping stdin closes it: cat sees EOF.
    });
    let o = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(o.stdout.len(), input.len());
    assert!(o.stdout == input, "stdout differs from stdin");
}

#[test]
fn fifty_megabytes_on_stdout_and_stderr_at_once() {
    if !can_run("fifty_megabytes_on_stdout_and_stderr_at_once") {
        return;
    }
    let f = Fixture::new("wl-bigio");
    const N: usize = 50_000_000;
    let o = f.sh(
        "default",
        &format!("head -c {N} /dev/zero & head -c {N} /dev/zero >&2; wait"),
    );
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(o.stdout.len(), N, "stdout bytes");
    assert_eq!(o.stderr.len(), N, "stderr bytes");
    assert!(o.stdout.iter().all(|&b| b == 0));
    assert!(o.stderr.iter().all(|&b| b == 0));
}

#[test]
fn exit_statuses_pass_through() {
    if !can_run("exit_statuses_pass_through") {
        return;
    }
    let f = Fixture::new("wl-status");
    for code in [0, 1, 42, 255] {
        let o = f.sh("default", &format!("exit {code}"));
        assert_status(&o, code);
    }
    // 128 + N for a command killed by signal N.
    let o = f.sh("default", "kill -KILL $$");
    assert_status(&o, 128 + libc::SIGKILL);
    let o = f.sh("default", "kill -SEGV $$");
    assert_status(&o, 128 + libc::SIGSEGV);
    // A missing command: confine's own lookup, and a shell's.
    let o = f.run("default", &["no-such-command-confine-test"]);
    assert_status(&o, 127);
    let o = f.sh("default", "no-such-command-confine-test");
    assert_status(&o, 127);
    // A file that exists but isn't executable.
    let script = f.file(&f.ws.join("not-executable"), "#!/bin/sh\necho ran\n");
    fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let o = f.run("default", &[script.to_str().unwrap()]);
    assert_status(&o, 126);
    assert!(o.stdout.is_empty(), "{}", show(&o));
    let o = f.sh("default", &script.display().to_string());
    assert_status(&o, 126);
    // Control: the same file, made executable, runs.
    fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let o = f.run("default", &[script.to_str().unwrap()]);
    assert_status(&o, 0);
    assert_eq!(stdout(&o), "ran\n", "{}", show(&o));
}

#[test]
fn cargo_version_if_installed_outside_root() {
    if !can_run("cargo_version_if_installed_outside_root") {
        return;
    }
    // rustup's cargo lives in /root/.cargo, which the default profile
    // doesn't grant: only a system-wide cargo can be expected to run.
    let Some(cargo) = PATH
        .split(':')
        .map(|d| Path::new(d).join("cargo"))
        .find(|p| p.exists())
    else {
        eprintln!("skipped: no cargo on {PATH} (a rustup cargo under /root isn't granted)");
        return;
    };
    let real = fs::canonicalize(&cargo).unwrap();
    if real.starts_with("/root") || real.starts_with("/home") {
        eprintln!(
            "skipped: {} is {}, not granted by default",
            cargo.display(),
            real.display()
        );
        return;
    }
    let f = Fixture::new("wl-cargo");
    let o = f.run("default", &[cargo.to_str().unwrap(), "--version"]);
    assert_status(&o, 0);
    assert!(stdout(&o).starts_with("cargo "), "{}", show(&o));
}

//! Deterministic fuzzing of profile parsing, without cargo-fuzz: every
//! built-in profile and every seed of `fuzz/seeds/` is mutated by a fixed
//! pseudo-random sequence (a few thousand inputs in all), and each result is
//! fed to `profile::from_text`, `profile::locate::locate` and (its first
//! line) `--set` through `profile::load`. None of them may panic.
//!
//! Deep nesting runs in a child process (this test binary, re-executed), so
//! that a stack overflow, which aborts the process, is reported as a failed
//! case naming its input instead of killing the whole test binary.
//!
//! The coverage-guided fuzzer is `scripts/fuzz.sh`; inputs it finds go into
//! `fuzz/seeds/` and, when they crashed, into `REGRESSIONS` below.

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::process::Command;
use std::sync::Once;

use confine::profile::{self, builtin, locate};

/// Key paths of the shapes `Origin::error` hands to `locate`.
const KEYS: &[&str] = &[
    "",
    "version",
    "extends",
    "user",
    "network.mode",
    "filesystem.read[0]",
    "filesystem.write[1]",
    "filesystem.exec.add[0]",
    "filesystem.tmp",
    "syscalls.allow[0]",
    "env.keep.add[0]",
    "limits.memory",
];

/// Inputs that once crashed something, minimized. Each is checked like a
/// mutated input (and its first line as `--set`). Crashes too big or too
/// deep to run in-process are in `DEEP_CASES` instead.
const REGRESSIONS: &[(&str, &str)] = &[];

/// Mutated inputs per corpus entry.
const MUTATIONS_PER_SEED: usize = 80;

/// xorshift64*: small, deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Tokens that mean something to YAML, or to our value parsers.
const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ":",
    ": ",
    "- ",
    "-",
    "?",
    "? ",
    "&a ",
    "*a",
    "!",
    "!!str ",
    "!!binary ",
    "|",
    "|-",
    ">",
    "'",
    "\"",
    "#",
    ",",
    "\n",
    "\n  ",
    "\t",
    "\r",
    "\0",
    "\\",
    "%YAML 1.2\n",
    "---\n",
    "...\n",
    "~",
    "null",
    "true",
    "no",
    ".inf",
    "-.inf",
    ".nan",
    "0x",
    "0o",
    "1e400",
    "-0",
    "<<: ",
    "{workspace}",
    "?",
    "/..",
    "=",
    ".",
    "\u{feff}",
    "\u{85}",
    "\u{2028}",
    "é",
    "\u{10ffff}",
];

/// Values to put where a scalar was.
const VALUES: &[&str] = &[
    "18446744073709551616",
    "18446744073709551615",
    "-9223372036854775809",
    "99999999999999999999999999999999999999T",
    "1e308G",
    "1e-320",
    "4.9e-324ms",
    "365.0000001h",
    "0.0000000001K",
    "NaN",
    "inf",
    "-1",
    "0",
    "65536",
    "4294967295:4294967295",
    "4294967294:0",
    "0",
    "\"\"",
    "''",
    "[]",
    "{}",
    "~",
    "*a",
    "&a [*a]",
    "!!float 1",
    "{workspace}/..",
    "/a/../b",
    "\"/nul\\0byte\"",
    "CAP_",
    "cap_sys_admin",
    "clone3",
    "kexec_load",
    "1.5.5",
    "M",
    "1M1",
    "1 G",
];

fn mutate(rng: &mut Rng, base: &str) -> String {
    let mut text = base.to_string();
    for _ in 0..1 + rng.below(4) {
        text = mutate_once(rng, &text);
    }
    text
}

fn mutate_once(rng: &mut Rng, text: &str) -> String {
    let mut bytes = text.as_bytes().to_vec();
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    match rng.below(11) {
        // Flip a bit (the result is made UTF-8 again, lossily).
        0 if !bytes.is_empty() => {
            let i = rng.below(bytes.len());
            bytes[i] ^= 1 << rng.below(8);
        }
        // Delete a byte range.
        1 if !bytes.is_empty() => {
            let i = rng.below(bytes.len());
            let n = 1 + rng.below(16.min(bytes.len() - i));
            bytes.drain(i..i + n);
        }
        // Insert a YAML-significant token.
        2 | 3 => {
            let i = rng.below(bytes.len() + 1);
            let t = rng.pick(TOKENS);
            bytes.splice(i..i, t.bytes());
        }
        // Duplicate a line.
        4 if !lines.is_empty() => {
            let i = rng.below(lines.len());
            let mut out = lines.clone();
            out.insert(i, lines[i]);
            return out.concat();
        }
        // Delete a line.
        5 if !lines.is_empty() => {
            let mut out = lines.clone();
            out.remove(rng.below(lines.len()));
            return out.concat();
        }
        // Swap two lines.
        6 if lines.len() > 1 => {
            let mut out = lines.clone();
            let (a, b) = (rng.below(lines.len()), rng.below(lines.len()));
            out.swap(a, b);
            return out.concat();
        }
        // Re-indent a line.
        7 if !lines.is_empty() => {
            let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
            let i = rng.below(out.len());
            out[i] = match rng.below(3) {
                0 => format!("  {}", out[i]),
                1 => out[i].trim_start().to_string(),
                _ => format!("\t{}", out[i]),
            };
            return out.concat();
        }
        // Replace the value after a `: ` (or a list item) with an odd one.
        8 if !lines.is_empty() => {
            let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
            let i = rng.below(out.len());
            let v = rng.pick(VALUES);
            if let Some(p) = out[i].find(": ").or_else(|| out[i].find("- ")) {
                let nl = if out[i].ends_with('\n') { "\n" } else { "" };
                out[i] = format!("{}{v}{nl}", &out[i][..p + 2]);
            } else {
                out[i] = format!("{v}\n");
            }
            return out.concat();
        }
        // Nest the rest of a line a few hundred levels deep.
        9 => {
            let depth = 1 + rng.below(300);
            let (open, close) = if rng.below(2) == 0 {
                ("[", "]")
            } else {
                ("{a: ", "}")
            };
            let i = rng.below(lines.len().max(1));
            let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
            let nested = format!("x: {}1{}\n", open.repeat(depth), close.repeat(depth));
            out.insert(i.min(out.len()), nested);
            return out.concat();
        }
        // Splice in another piece of the same text (a block copied elsewhere).
        _ if !bytes.is_empty() => {
            let a = rng.below(bytes.len());
            let n = rng.below(64.min(bytes.len() - a) + 1);
            let piece = bytes[a..a + n].to_vec();
            let at = rng.below(bytes.len() + 1);
            bytes.splice(at..at, piece);
        }
        _ => bytes.extend_from_slice(b"\n"),
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Everything one input goes through. Panics are what we look for.
/// `locate` walks the whole text whatever the key, so two keys (one picked
/// by `salt`) cover it; all of `KEYS` would triple the run time in debug.
fn exercise(text: &str, salt: usize) {
    match profile::from_text("fuzz.yaml", text) {
        Ok(p) => {
            let _ = format!("{p:?}");
            let _ = p.sha256();
        }
        Err(e) => {
            let _ = format!("{e}");
        }
    }
    let _ = locate::locate(text, "filesystem.read[0]");
    let _ = locate::locate(text, KEYS[salt % KEYS.len()]);
    // The first line as `--set`. Without a `=` it is refused before any
    // parsing (`set_overrides_never_panic` covers that).
    let line = text.split('\n').next().unwrap_or("");
    if line.contains('=') {
        match profile::load("default", &[line.to_string()]) {
            Ok(p) => {
                let _ = format!("{p:?}");
            }
            Err(e) => {
                let _ = format!("{e}");
            }
        }
    }
}

thread_local! {
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

/// Installs (once) a panic hook that is silent on a thread inside
/// `catch_quietly`: those panics are reported with their input instead.
/// Panics elsewhere (other tests failing) print as usual.
fn install_quiet_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !QUIET.with(Cell::get) {
                default(info);
            }
        }));
    });
}

/// Runs `f`; the message of its panic, if it panicked.
fn catch_quietly(f: impl FnOnce()) -> Option<String> {
    install_quiet_hook();
    QUIET.with(|q| q.set(true));
    let r = panic::catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|q| q.set(false));
    r.err().map(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "(non-string panic payload)".into())
    })
}

fn show(text: &str) -> String {
    let s = format!("{text:?}");
    if s.len() > 4000 {
        format!(
            "{}... ({} bytes in all)",
            &s[..s.floor_char_boundary(4000)],
            text.len()
        )
    } else {
        s
    }
}

/// The built-in profiles and the fuzzer's seeds.
fn corpus() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = builtin::ALL
        .iter()
        .map(|(n, t)| (format!("built-in {n}"), t.to_string()))
        .collect();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let mut seeds: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    seeds.sort();
    for p in seeds {
        if let Ok(bytes) = std::fs::read(&p) {
            out.push((
                p.display().to_string(),
                String::from_utf8_lossy(&bytes).into_owned(),
            ));
        }
    }
    out
}

#[test]
fn mutated_profiles_never_panic() {
    let mut failures: Vec<String> = Vec::new();
    let mut inputs = 0usize;
    let mut check = |what: &str, text: &str| {
        inputs += 1;
        if let Some(msg) = catch_quietly(|| exercise(text, inputs)) {
            failures.push(format!("{what}: panicked: {msg}\n  input: {}", show(text)));
        }
    };
    for (name, text) in REGRESSIONS {
        check(&format!("regression {name}"), text);
    }
    for (i, (name, text)) in corpus().iter().enumerate() {
        check(name, text);
        let mut rng =
            Rng(0x9E37_79B9_7F4A_7C15 ^ (i as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03));
        for m in 0..MUTATIONS_PER_SEED {
            let t = mutate(&mut rng, text);
            check(&format!("{name}, mutation {m}"), &t);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {inputs} inputs panicked; the first:\n{}",
        failures.len(),
        failures[0]
    );
    assert!(inputs >= 2000, "only {inputs} inputs");
}

#[test]
fn set_overrides_never_panic() {
    let mut rng = Rng(0x5EED);
    let bases = [
        "limits.memory=1G",
        "network.connect_tcp=[80, 443]",
        "filesystem.read={add: [/opt?]}",
        "user=root",
        "env.set.HOME=/home/x",
        "filesystem.tmp=false",
        "syscalls.allow=[ptrace]",
        "=",
        "a.b=",
        "extends=minimal",
        "version=2",
    ];
    let mut failures = Vec::new();
    for base in bases {
        for _ in 0..40 {
            let mut arg = mutate(&mut rng, base);
            arg.truncate(arg.find('\n').unwrap_or(arg.len()));
            let r = catch_quietly(|| {
                let _ = match profile::load("default", &[arg.clone()]) {
                    Ok(p) => format!("{p:?}"),
                    Err(e) => format!("{e}"),
                };
            });
            if let Some(msg) = r {
                failures.push(format!("{msg}; --set {}", show(&arg)));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "--set panicked on {} inputs; the first: {}",
        failures.len(),
        failures[0]
    );
}

/// Deeply nested documents, each run in a child process (see the module
/// doc), named `KIND-DEPTH`; `deep_case` builds the text. Flow collections
/// stop at 255 levels in yaml-rust2's scanner (a `u8`) and at 128 in
/// serde_yaml; block collections have no limit in yaml-rust2. `locate-*`
/// cases call only `locate`: a text nested that deep never gets past
/// serde_yaml's recursion limit to where `from_text` would locate anything.
///
/// `locate-block-seq-100000` is the fuzzer's finding: `locate` went through
/// `yaml_rust2::parser::Parser::load`, which recurses once per level with no
/// limit, and overflowed an 8 MiB stack from about 3,800 levels in a debug
/// build and 20,000 in release (`"- ".repeat(20_200) + "1"`, 40 KB).
const DEEP_CASES: &[&str] = &[
    "flow-seq-300",
    "flow-map-300",
    "block-seq-300",
    "block-map-300",
    "mixed-300",
    "flow-seq-in-read-300",
    "set-flow-seq-300",
    "set-block-seq-300",
    "locate-flow-seq-100000",
    "locate-flow-map-100000",
    "locate-block-seq-100000",
];

fn deep_case(name: &str) -> (String, bool) {
    let (kind, n) = name.rsplit_once('-').expect("KIND-DEPTH");
    let n: usize = n.parse().expect("depth");
    let text = match kind {
        "flow-seq" | "locate-flow-seq" => {
            format!("version: 1\nx: {}{}\n", "[".repeat(n), "]".repeat(n))
        }
        "flow-map" | "locate-flow-map" => {
            format!("version: 1\nx: {}1{}\n", "{a: ".repeat(n), "}".repeat(n))
        }
        // `- - - 1`: block sequences nested on one line.
        "block-seq" | "locate-block-seq" => format!("version: 1\nx:\n{}1\n", "- ".repeat(n)),
        "block-map" => {
            let mut t = String::from("version: 1\nx:\n");
            for i in 1..=n {
                t.push_str(&" ".repeat(i));
                t.push_str("a:\n");
            }
            t
        }
        "mixed" => format!(
            "version: 1\nx: {}1{}\n",
            "[{a: ".repeat(n / 2),
            "}]".repeat(n / 2)
        ),
        "flow-seq-in-read" => format!(
            "version: 1\nfilesystem:\n  read: {}/usr{}\n",
            "[".repeat(n),
            "]".repeat(n)
        ),
        "set-flow-seq" => format!("limits.memory={}1{}", "[".repeat(n), "]".repeat(n)),
        "set-block-seq" => format!("limits.memory={}1", "- ".repeat(n)),
        _ => panic!("unknown deep case {name}"),
    };
    (text, kind.starts_with("locate-"))
}

/// In the child: one deep case, on a thread with the 8 MiB stack a main
/// thread usually has, as in the CLI.
fn run_deep_case(name: &str) {
    let (text, locate_only) = deep_case(name);
    let t = std::thread::Builder::new()
        .name(format!("deep case {name}"))
        .stack_size(8 << 20)
        .spawn(move || {
            if locate_only {
                let _ = locate::locate(&text, "filesystem.read[0]");
            } else {
                exercise(&text, 0);
            }
        })
        .expect("spawn");
    t.join().expect("deep case panicked");
}

#[test]
fn deep_nesting_never_overflows() {
    if let Ok(case) = std::env::var("CONFINE_FUZZ_DEEP_CASE") {
        run_deep_case(&case);
        return;
    }
    let exe = std::env::current_exe().expect("test binary");
    let mut failures = Vec::new();
    for case in DEEP_CASES {
        let out = Command::new(&exe)
            .args([
                "--exact",
                "deep_nesting_never_overflows",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("CONFINE_FUZZ_DEEP_CASE", case)
            .env("RUST_BACKTRACE", "0")
            .output()
            .expect("re-run the test binary");
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let why: Vec<&str> = stderr
                .lines()
                .filter(|l| l.contains("panicked") || l.contains("overflow") || l.contains("fatal"))
                .collect();
            failures.push(format!("{case} ({}): {}", out.status, why.join(" | ")));
        }
    }
    assert!(
        failures.is_empty(),
        "deep nesting failed:\n{}",
        failures.join("\n")
    );
}

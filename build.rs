//! Links the `confine` and `confine-egress` binaries as static PIEs, when the toolchain can; and
//! re-encodes the built-in profiles as JSON (`builtin_profiles_as_json`, at
//! the end, says why).
//!
//! Why static: a launcher pays for the dynamic loader and libc.so on every launch,
//! twice (supervisor and init each map and fault in their pages). Static,
//! startup skips ld.so and the relocation of libc, and only the parts of libc
//! confine calls are mapped. The library, the tests' own binaries and the
//! fuzz build stay as they are.
//!
//! Why not `-C target-feature=+crt-static`: it can only be set for every
//! crate of a build, and proc-macro crates can't be built with it unless
//! `--target` is passed, which moves the binary out of target/release.
//! rustc keeps naming the shared libraries it would link (`-lgcc_s`, `-lc`,
//! ...), after `-Bdynamic`; a search directory that holds only their static
//! archives, ahead of the system's, makes the linker pick those instead.
//!
//! `CONFINE_LINK=dynamic` keeps the binary dynamic (for a system whose libc
//! has no static archive). Nothing in confine may go through NSS
//! (getpwnam and the like): a static glibc would dlopen NSS modules that
//! must come from the very glibc it was built from.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The libraries rustc links for std and the libc crate on linux-gnu.
const LIBS: [&str; 6] = ["c", "m", "rt", "pthread", "dl", "util"];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    builtin_profiles_as_json();
    println!("cargo:rerun-if-env-changed=CONFINE_LINK");
    // Another linker may find other archives.
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let target_env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if target_os != "linux" || target_env != "gnu" {
        return;
    }
    match std::env::var("CONFINE_LINK").as_deref() {
        Ok("dynamic") => return,
        Ok("static") | Err(_) => {}
        Ok(other) => panic!("CONFINE_LINK={other}: expected `static` or `dynamic`"),
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    match static_dir(&out.join("static-libs")) {
        // Both programs: the egress proxy too starts on the launch path
        // (in parallel) and resolves names itself, never through NSS.
        Ok(dir) => {
            for bin in ["confine", "confine-egress"] {
                println!("cargo:rustc-link-arg-bin={bin}=-static-pie");
                println!("cargo:rustc-link-arg-bin={bin}=-L{}", dir.display());
                // Once more, as one group: linkers that read archives in
                // order (GNU ld) find there what libc.a itself needs from
                // libgcc.
                for arg in ["-Wl,--start-group", "-lc", "-lgcc_s", "-Wl,--end-group"] {
                    println!("cargo:rustc-link-arg-bin={bin}={arg}");
                }
            }
        }
        Err(why) => println!(
            "cargo:warning=confine is linked dynamically: {why} (CONFINE_LINK=dynamic silences this)"
        ),
    }
}

/// The linker driver rustc calls: what a configured linker or `cc` finds is
/// what will be linked.
fn linker() -> String {
    std::env::var("RUSTC_LINKER").unwrap_or_else(|_| "cc".into())
}

/// Where the linker driver would find `name`, if anywhere.
fn find(name: &str) -> Result<PathBuf, String> {
    let out = Command::new(linker())
        .arg(format!("-print-file-name={name}"))
        .output()
        .map_err(|e| format!("running {} -print-file-name: {e}", linker()))?;
    let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    // Unknown names come back unchanged, without a directory.
    if !out.status.success() || !p.is_absolute() || !p.exists() {
        return Err(format!(
            "no {name} (glibc's static archives, e.g. libc6-dev or glibc-static, are missing)"
        ));
    }
    Ok(p)
}

/// Fills `dir` with the static archives under the names rustc asks for.
fn static_dir(dir: &Path) -> Result<PathBuf, String> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    for lib in LIBS {
        let name = format!("lib{lib}.a");
        let src = find(&name)?;
        std::os::unix::fs::symlink(&src, dir.join(&name))
            .map_err(|e| format!("linking {name}: {e}"))?;
    }
    // std's unwinder comes from libgcc_s.so when dynamic; its static
    // counterpart is libgcc_eh plus libgcc, named here as libgcc_s so that
    // rustc's `-lgcc_s` finds it (the linker reads a script named .a).
    let eh = find("libgcc_eh.a")?;
    let gcc = find("libgcc.a")?;
    std::fs::write(
        dir.join("libgcc_s.a"),
        format!("GROUP ( {} {} )\n", eh.display(), gcc.display()),
    )
    .map_err(|e| format!("writing libgcc_s.a: {e}"))?;
    Ok(dir.to_path_buf())
}

/// Re-encodes every built-in profile (`profiles/*.yaml`) as JSON in
/// `$OUT_DIR/profiles/`, for `src/profile/builtin.rs`.
///
/// Why: every launch of a built-in parses its whole `extends` chain (three
/// documents for `default`), and serde_yaml needs about ten times the
/// instructions serde_json does for the same document. The YAML stays the
/// only source: the JSON is regenerated whenever a file under `profiles/`
/// changes, and a unit test checks that both parse to the same profile.
fn builtin_profiles_as_json() {
    println!("cargo:rerun-if-changed=profiles");
    let out =
        PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("profiles");
    std::fs::create_dir_all(&out).unwrap_or_else(|e| panic!("creating {}: {e}", out.display()));
    let dir = std::fs::read_dir("profiles").unwrap_or_else(|e| panic!("reading profiles/: {e}"));
    for entry in dir {
        let path = entry
            .unwrap_or_else(|e| panic!("reading profiles/: {e}"))
            .path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let value: serde_json::Value = serde_yaml::from_str(&text)
            .unwrap_or_else(|e| panic!("built-in profile {}: {e}", path.display()));
        let json = out.join(path.file_stem().unwrap()).with_extension("json");
        std::fs::write(&json, value.to_string())
            .unwrap_or_else(|e| panic!("writing {}: {e}", json.display()));
    }
}

//! The `confine` command line: parse arguments, call into the library, map
//! errors to exit codes (DESIGN.md §1). Nothing else lives here.

// The entry point is our own `main`, not std's: see there.
#![no_main]
// Messages go through `confine::out`: std's print macros panic (here: abort)
// on a closed pipe.
#![deny(clippy::print_stderr, clippy::print_stdout)]

use std::ffi::{CStr, OsString};
use std::io::Write;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand};

use confine::plan::{self, Plan, Request};
use confine::{control, launch, out, probe, profile, say};

/// confine itself refused or failed before the command started.
use confine::launch::EXIT_REFUSED;

#[derive(Parser)]
#[command(
    name = "confine",
    version,
    about = "Run a command (usually an AI agent) under least privilege enforced by the Linux kernel",
    long_about = "Run a command (usually an AI agent) under least privilege enforced by the Linux kernel.\n\n\
A YAML profile becomes Landlock filesystem rules, a seccomp filter, an empty capability set, \
fresh namespaces, resource limits and a scrubbed environment; then the command is exec'd. \
If any part of the plan can't be applied, the command never runs (exit 125)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// What a plan is built from, for `run` and `explain`.
#[derive(clap::Args)]
struct PlanArgs {
    /// Built-in profile name or path to a YAML profile
    #[arg(short, long, value_name = "PROFILE", default_value = "default")]
    profile: String,
    /// Workspace directory (overrides the profile's `workspace`); must exist
    #[arg(short, long, value_name = "DIR")]
    workspace: Option<PathBuf>,
    /// Override a profile key, e.g. --set limits.memory=1G (repeatable)
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Write audit records to FILE (overrides the profile's audit.log)
    #[arg(long, value_name = "FILE")]
    audit_log: Option<PathBuf>,
}

impl PlanArgs {
    fn request(self, command: Vec<OsString>) -> Request {
        Request {
            profile: self.profile,
            workspace: self.workspace,
            overrides: self.set,
            audit_log: self.audit_log,
            command,
        }
    }
}

/// Which sandboxes `stop` and `kill` act on.
#[derive(Args, Debug)]
struct Which {
    /// The sandbox's id, or a unique prefix of it (see confine ps)
    #[arg(
        value_name = "ID",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    id: Option<String>,
    /// Every sandbox you may control
    #[arg(long)]
    all: bool,
}

/// `confine profiles show NAME`.
#[derive(Subcommand)]
enum ProfilesAction {
    /// Print a built-in profile's YAML, as embedded in this binary
    Show {
        /// A built-in profile's name (see confine profiles)
        #[arg(value_name = "NAME")]
        name: String,
    },
}

#[derive(Subcommand)]
enum Command {
    /// Run CMD confined by a profile
    #[command(
        after_help = "Exit status: the command's own; 128+N when it died of signal N; 124 when \
a limit ended it (limits.wall_time, a stopping budget, a denied checkpoint); 125 when confine refused or failed before the command started; 126 when \
the command may not be executed; 127 when it was not found."
    )]
    Run {
        #[command(flatten)]
        plan: PlanArgs,
        /// Print the resolved plan and exit 0 without running anything
        #[arg(long)]
        dry_run: bool,
        /// Give the sandbox a terminal of its own even when the caller has
        /// none (the default wherever stdin, stdout or stderr is a terminal):
        /// a pty as the command's controlling terminal, relayed to the
        /// caller's
        #[arg(long, overrides_with = "no_tty")]
        tty: bool,
        /// Pass the caller's stdin, stdout and stderr as they are, terminal or
        /// not (byte-exact pipes; the command holds the caller's terminal)
        #[arg(long, overrides_with = "tty")]
        no_tty: bool,
        /// No line on stderr for the first denials (the `denied` records
        /// and `confine why` still have them)
        #[arg(short, long)]
        quiet: bool,
        /// The command and its arguments
        #[arg(last = true, required = true, value_name = "CMD")]
        command: Vec<OsString>,
    },
    /// Validate profiles; errors name file:line:column and the key
    Check {
        /// Built-in profile names or paths
        #[arg(required = true, value_name = "PROFILE")]
        profiles: Vec<String>,
    },
    /// Print the fully resolved plan: what the kernel will enforce
    Explain {
        #[command(flatten)]
        plan: PlanArgs,
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
    /// Report what this kernel supports (Landlock ABI, seccomp, namespaces, cgroups)
    Probe {
        #[arg(long)]
        json: bool,
    },
    /// List the built-in profiles, least to most privileged
    Profiles {
        #[command(subcommand)]
        action: Option<ProfilesAction>,
    },
    /// Print confine's manual page (roff) on stdout: `confine man > confine.1`
    Man,
    /// Print shell completions on stdout, e.g. `confine completions bash >
    /// /etc/bash_completion.d/confine`
    Completions {
        /// bash, zsh, fish, elvish or powershell
        #[arg(value_enum, value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
    /// What a run was denied, each with the profile change that would
    /// allow it (as YAML to paste), and which ones not to allow
    #[command(after_help = "Runs are kept in /var/lib/confine/runs (root) or \
$XDG_STATE_HOME/confine/runs (default ~/.local/state/confine/runs), the last 50 that had denials. \
Exit status: 0; 1 no such run; 125 bad usage.")]
    Why {
        /// The run's sandbox id, or a unique prefix of it
        #[arg(
            value_name = "ID",
            required_unless_present = "last",
            conflicts_with = "last"
        )]
        id: Option<String>,
        /// The newest kept run that had denials
        #[arg(long)]
        last: bool,
        /// Read the run's `denied` records from this audit log instead
        #[arg(long, value_name = "FILE")]
        audit_log: Option<PathBuf>,
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
    /// Run CMD observed under a base profile, then write a least-privilege
    /// profile that extends it: what it read, wrote and executed (grouped
    /// into directories, a comment each), the calls it needed beyond the
    /// baseline, the network it used
    #[command(
        after_help = "The run is sandboxed by BASE as `run` would, but for calls outside the baseline \
allowlist, which run (observed) instead of failing. Never granted: the audit log, confine's state, the caller's credentials, secrets' files, \
.env files, .git/hooks (listed as comments). -o refuses an existing file and a path inside the \
workspace unless --force; the file is checked, then renamed into place. Exit status: the \
command's own (the profile is written either way); 125 when confine refused or failed."
    )]
    Learn {
        /// The base profile (built-in name or path) the run is confined by
        /// and the learned profile extends
        #[arg(
            short = 'p',
            long = "profile",
            value_name = "BASE",
            default_value = "default"
        )]
        base: String,
        /// Workspace directory; must exist
        #[arg(short, long, value_name = "DIR")]
        workspace: Option<PathBuf>,
        /// Where to write the learned profile (without it and --diff: stdout)
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Print only what PROFILE lacks of the learned one, as YAML to add
        #[arg(long, value_name = "PROFILE")]
        diff: Option<String>,
        /// Replace an existing FILE, or write it inside the workspace
        #[arg(long)]
        force: bool,
        /// The command and its arguments
        #[arg(last = true, required = true, value_name = "CMD")]
        command: Vec<OsString>,
    },
    /// Remove what killed supervisors left behind (placeholders of protected
    /// paths on workspaces where no sandbox is running, cgroups, runtime
    /// directories)
    Gc,
    /// List the running sandboxes you may control (root: all)
    Ps {
        #[arg(long)]
        json: bool,
    },
    /// Stop a sandbox: TERM to all of it, KILL after the grace; returns
    /// when no process of it is left. `--all`: the emergency stop
    #[command(after_help = "Exit status: 0 done; 1 no such sandbox, or refused; 125 bad usage.")]
    Stop {
        #[command(flatten)]
        which: Which,
        /// Between TERM and KILL (default: the profile's limits.grace), e.g. 2s
        #[arg(long, value_name = "DURATION")]
        grace: Option<String>,
    },
    /// KILL a sandbox at once; returns when no process of it is left
    #[command(after_help = "Exit status: 0 done; 1 no such sandbox, or refused; 125 bad usage.")]
    Kill {
        #[command(flatten)]
        which: Which,
    },
    /// Freeze a sandbox: none of its processes runs until `confine thaw`
    Freeze {
        #[arg(value_name = "ID")]
        id: String,
    },
    /// Thaw a frozen sandbox
    Thaw {
        #[arg(value_name = "ID")]
        id: String,
    },
    /// Approve a sandbox's open checkpoint or network ask (the one named,
    /// or the only one open)
    #[command(
        after_help = "Exit status: 0 done; 1 no such sandbox or request, or refused; 125 bad usage."
    )]
    Approve {
        #[arg(value_name = "ID")]
        id: String,
        #[arg(value_name = "REQUEST")]
        request: Option<String>,
    },
    /// Deny a sandbox's open checkpoint (the sandbox is stopped) or network
    /// ask (the connection fails)
    #[command(
        after_help = "Exit status: 0 done; 1 no such sandbox or request, or refused; 125 bad usage."
    )]
    Deny {
        #[arg(value_name = "ID")]
        id: String,
        #[arg(value_name = "REQUEST")]
        request: Option<String>,
    },
    /// What a sandbox uses now: processes, memory, CPU, I/O
    Stats {
        #[arg(value_name = "ID")]
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Review mode: every change a sandbox made to its workspace (also
    /// while it runs), with diffs of text files
    #[command(
        after_help = "Exit status: 0 listed; 1 no such sandbox; 125 its state can't be read."
    )]
    Diff {
        #[arg(value_name = "ID")]
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Review mode: apply a sandbox's changes (all, or those at or beneath
    /// each PATH) to the real workspace
    #[command(
        after_help = "Exit status: 0 applied; 1 refused (a path changed in the real \
workspace since the launch, the sandbox still runs, a PATH with no change), nothing applied; \
125 a step failed."
    )]
    Commit {
        #[arg(value_name = "ID")]
        id: String,
        /// Paths relative to the workspace (or absolute inside it)
        #[arg(value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// Apply even over paths that changed in the real workspace since
        /// the launch
        #[arg(long)]
        force: bool,
    },
    /// Review mode: drop a sandbox's changes; the real workspace stays as it is
    Discard {
        #[arg(value_name = "ID")]
        id: String,
    },
}

/// The process's entry, called by the C runtime in place of std's.
///
/// std's entry would first install its stack-overflow handler, which finds
/// the main thread's stack by reading and parsing /proc/self/maps and maps
/// an alternate signal stack: about 100,000 instructions and 20 system calls
/// on every launch, so that a stack overflow prints a message rather than
/// ending in a plain SIGSEGV. What else it does that matters here is done
/// below: SIGPIPE ignored, fds 0-2 open, stdout flushed at the end.
#[no_mangle]
extern "C" fn main(argc: libc::c_int, argv: *const *const libc::c_char) -> libc::c_int {
    // Ignored, as std's entry does (the agent gets the default back): a
    // closed stdout or stderr is an EPIPE to handle, not a silent death of
    // the supervisor while the agent runs, nor of the refusal just below.
    // SAFETY: changes a signal disposition; nothing else runs yet.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    // First of all, before any argument or profile is read: a setuid,
    // setgid or file-capability copy of confine would run every local
    // user's command with its owner's privileges.
    if let Some(e) = confine::sandbox::process::elevated() {
        say!(
            "confine: setuid, setgid or file-capability execution ({e}): this copy of confine \
             would run any caller's command with its owner's privileges; hint: remove the bits \
             and capabilities (chmod u-s,g-s; setcap -r) and run confine as root or as yourself"
        );
        return libc::c_int::from(EXIT_REFUSED);
    }
    // `run` supervises: the signals it forwards are blocked from its first
    // instruction, so one that arrives while it prepares is neither lost
    // nor fatal to it (its event loop takes it), and none arrives between
    // the sandbox's end and confine's.
    // SAFETY: argv holds argc valid C strings.
    if argc > 1 && unsafe { CStr::from_ptr(*argv.add(1)) }.to_bytes() == b"run" {
        confine::launch::signals::block();
    }
    open_standard_fds();
    let args = (0..usize::try_from(argc).unwrap_or(0)).map(|i| {
        // SAFETY: the C runtime passes `argc` valid, NUL-terminated strings
        // in `argv`, which live as long as the process.
        let arg = unsafe { CStr::from_ptr(*argv.add(i)) };
        OsString::from_vec(arg.to_bytes().to_vec())
    });
    let status = cli(args.collect());
    let _ = std::io::stdout().flush();
    libc::c_int::from(status)
}

/// Opens /dev/null on whichever of fds 0-2 is closed, as std's entry would:
/// otherwise the first file confine opens (the audit log, say) would become
/// its stdout or stderr and receive its messages.
fn open_standard_fds() {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    // SAFETY: `fds` is an array of 3 pollfds, valid for the call.
    let polled = unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) } != -1;
    for p in fds {
        let closed = if polled {
            p.revents & libc::POLLNVAL != 0
        } else {
            // SAFETY: F_GETFD only queries the descriptor.
            let flags = unsafe { libc::fcntl(p.fd, libc::F_GETFD) };
            flags == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EBADF)
        };
        // SAFETY: a constant, NUL-terminated path; open returns the lowest
        // free descriptor, which is `p.fd` as the lower ones are open.
        if closed && unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) } == -1 {
            std::process::abort();
        }
    }
}

fn cli(args: Vec<OsString>) -> u8 {
    // SIGPIPE is ignored (see `main`); a closed stdout on `confine explain |
    // head` should end us quietly, not panic.
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return 0;
            }
            // One line, like every other refusal.
            let why = match e.kind() {
                ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
                | ErrorKind::MissingSubcommand => {
                    "a command is needed: run, check, explain, probe or profiles".to_string()
                }
                _ => {
                    // clap's message up to its usage block, on one line.
                    let text = e.render().to_string();
                    let msg: Vec<&str> = text
                        .lines()
                        .take_while(|l| !l.trim().is_empty())
                        .map(str::trim)
                        .collect();
                    let msg = msg.join(" ");
                    msg.strip_prefix("error: ").unwrap_or(&msg).to_string()
                }
            };
            say!("confine: usage (command line): {why}; hint: confine --help");
            return EXIT_REFUSED;
        }
    };
    match cli.command {
        Command::Run {
            plan,
            dry_run,
            tty,
            no_tty,
            quiet,
            command,
        } => {
            confine::denials::set_quiet(quiet);
            let req = plan.request(command);
            let plan = match Plan::build(&req) {
                Ok(p) => p,
                Err(e) => {
                    say!("confine: {e}");
                    if let (false, plan::PlanError::Audited { audit: Some(a), .. }) = (dry_run, &e)
                    {
                        audit_refusal(a);
                    }
                    return EXIT_REFUSED;
                }
            };
            print_warnings(&plan);
            for d in &plan.dropped {
                say!("confine: best-effort: not enforced: {d}");
            }
            if dry_run {
                return print_out(&plan.render_text());
            }
            // The last of --tty and --no-tty wins (clap clears the other).
            let terminal = if tty {
                launch::Terminal::Pty
            } else if no_tty {
                launch::Terminal::Inherit
            } else {
                launch::Terminal::Auto
            };
            match launch::run_with(&plan, terminal) {
                Ok(status) => status,
                Err(e) => {
                    say!("confine: {e}");
                    EXIT_REFUSED
                }
            }
        }
        Command::Check { profiles } => {
            let mut failed = false;
            for p in &profiles {
                match plan::check(p) {
                    Ok(warnings) => {
                        for w in warnings {
                            say!("confine: warning: {w}");
                        }
                        let _ = out::stdout(&format!("{p}: ok\n"));
                    }
                    Err(e) => {
                        say!("confine: {e}");
                        failed = true;
                    }
                }
            }
            if failed {
                EXIT_REFUSED
            } else {
                0
            }
        }
        Command::Explain { plan, json } => {
            let req = plan.request(Vec::new());
            let plan = match build(&req) {
                Ok(p) => p,
                Err(code) => return code,
            };
            if json {
                print_out(
                    &(serde_json::to_string_pretty(&plan).expect("a plan always serializes")
                        + "\n"),
                )
            } else {
                print_warnings(&plan);
                print_out(&plan.render_text())
            }
        }
        Command::Probe { json } => {
            let p = probe::probe();
            if json {
                print_out(
                    &(serde_json::to_string_pretty(&p).expect("a probe always serializes") + "\n"),
                )
            } else {
                print_out(&p.render_text())
            }
        }
        Command::Gc => match confine::sandbox::placeholders::gc() {
            Ok(mut lines) => {
                lines.extend(control::client::gc());
                lines.extend(confine::changes::state::sweep().iter().map(|p| {
                    format!(
                        "{}: review state of a launch that never ran removed",
                        p.display()
                    )
                }));
                // Never removed unasked.
                lines.extend(confine::changes::pending_lines());
                lines.extend(confine::denials::runs::gc());
                let cgroups = confine::sandbox::cgroup::sweep_all();
                if cgroups > 0 {
                    lines.push(format!("removed {cgroups} leftover cgroup(s)"));
                }
                print_out(&lines.iter().map(|l| format!("{l}\n")).collect::<String>())
            }
            Err(e) => {
                say!("confine: gc ({e})");
                EXIT_REFUSED
            }
        },
        Command::Why {
            id,
            last,
            audit_log,
            json,
        } => {
            let which = match (&id, last) {
                (Some(id), false) => confine::denials::why::Which::Id(id),
                _ => confine::denials::why::Which::Last,
            };
            match confine::denials::why::report(which, audit_log.as_deref(), json) {
                Ok(r) => print_out(&r),
                Err(e) => {
                    say!("confine: why ({}): {e}", id.as_deref().unwrap_or("--last"));
                    1
                }
            }
        }
        Command::Learn {
            base,
            workspace,
            output,
            diff,
            force,
            command,
        } => confine::learn::run(&confine::learn::Options {
            base,
            workspace,
            output,
            diff,
            force,
            command,
        }),
        Command::Ps { json } => {
            let mut text = control::client::ps(json);
            if !json {
                for l in confine::changes::pending_lines() {
                    text.push_str(&l);
                    text.push('\n');
                }
            }
            print_out(&text)
        }
        Command::Stop {
            which: Which { id, all },
            grace,
        } => {
            let grace = match grace
                .map(|g| g.parse::<profile::values::Duration>())
                .transpose()
            {
                Ok(g) => g.map(|d| std::time::Duration::from_millis(d.0)),
                Err(why) => {
                    say!("confine: --grace (command line): {why}");
                    return EXIT_REFUSED;
                }
            };
            said(control::client::stop(&target(id, all), false, grace))
        }
        Command::Kill {
            which: Which { id, all },
        } => said(control::client::stop(&target(id, all), true, None)),
        Command::Freeze { id } => said(control::client::freeze(&id, true)),
        Command::Thaw { id } => said(control::client::freeze(&id, false)),
        Command::Approve { id, request } => {
            said(control::client::answer(&id, request.as_deref(), true))
        }
        Command::Deny { id, request } => {
            said(control::client::answer(&id, request.as_deref(), false))
        }
        Command::Stats { id, json } => match control::client::stats(&id, json) {
            (0, text) => print_out(&text),
            (code, msg) => {
                say!("{msg}");
                code
            }
        },
        Command::Diff { id, json } => reviewed(confine::changes::diff(&id, json)),
        Command::Commit { id, paths, force } => {
            reviewed(confine::changes::commit(&id, &paths, force))
        }
        Command::Discard { id } => reviewed(confine::changes::discard(&id)),
        Command::Man => {
            let mut page = Vec::new();
            match clap_mangen::Man::new(Cli::command()).render(&mut page) {
                Ok(()) => print_out(&String::from_utf8_lossy(&page)),
                Err(e) => {
                    say!("confine: man (rendering the manual page): {e}");
                    EXIT_REFUSED
                }
            }
        }
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "confine", &mut script);
            print_out(&String::from_utf8_lossy(&script))
        }
        Command::Profiles { action: None } => {
            let width = profile::builtin::ALL
                .iter()
                .map(|(n, _)| n.len())
                .max()
                .unwrap_or(0);
            let mut out = String::new();
            for (name, _) in profile::builtin::ALL {
                let desc = profile::load(name, &[])
                    .map(|p| p.description)
                    .unwrap_or_else(|e| format!("(broken: {e})"));
                out.push_str(&format!("{name:<width$}  {desc}\n"));
            }
            print_out(&out)
        }
        Command::Profiles {
            action: Some(ProfilesAction::Show { name }),
        } => match profile::builtin::ALL.iter().find(|(n, _)| *n == name) {
            Some((_, text)) => print_out(text),
            None => {
                let names: Vec<&str> = profile::builtin::ALL.iter().map(|(n, _)| *n).collect();
                say!(
                    "confine: profiles show ({name}): no built-in profile of that name; the built-ins are {}",
                    names.join(", ")
                );
                EXIT_REFUSED
            }
        },
    }
}

/// Writes the `refused` record of a launch the plan refused. A log that
/// can't be written is reported, not fatal: the launch is refused anyway.
fn audit_refusal(a: &plan::RefusedLaunch) {
    let written = confine::audit::Audit::open(Some(&a.log)).and_then(|log| log.record(&a.record));
    if let Err(e) = written {
        say!(
            "confine: audit log ({}): writing the refused record: {e}",
            a.log.display()
        );
    }
}

fn target(id: Option<String>, all: bool) -> control::client::Target {
    match id {
        Some(id) if !all => control::client::Target::One(id),
        _ => control::client::Target::All,
    }
}

/// Prints a review command's output, or its refusal.
fn reviewed(r: Result<String, confine::changes::ChangesError>) -> u8 {
    match r {
        Ok(text) => print_out(&text),
        Err(e) => {
            say!("confine: {e}");
            e.code
        }
    }
}

/// Prints each message on stderr; returns the status.
fn said((code, msgs): (u8, Vec<String>)) -> u8 {
    for m in msgs {
        say!("{m}");
    }
    code
}

fn build(req: &Request) -> Result<Plan, u8> {
    Plan::build(req).map_err(|e| {
        say!("confine: {e}");
        EXIT_REFUSED
    })
}

fn print_warnings(plan: &Plan) {
    for w in &plan.warnings {
        say!("confine: warning: {w}");
    }
}

fn print_out(s: &str) -> u8 {
    match out::stdout(s) {
        Ok(()) => 0,
        Err(e) => {
            say!("confine: writing output (stdout): {e}");
            EXIT_REFUSED
        }
    }
}

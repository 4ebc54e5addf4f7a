//! The `confine` command line: parse arguments, call into the library, map
//! errors to exit codes (DESIGN.md §1). Nothing else lives here.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use confine::plan::{self, Plan, Request};
use confine::{launch, probe, profile};

/// confine itself refused or failed before the command started.
const EXIT_REFUSED: u8 = 125;

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

#[derive(Subcommand)]
enum Command {
    /// Run CMD confined by a profile
    #[command(
        after_help = "Exit status: the command's own; 128+N when it died of signal N; 124 when \
limits.wall_time ran out; 125 when confine refused or failed before the command started; 126 when \
the command may not be executed; 127 when it was not found."
    )]
    Run {
        #[command(flatten)]
        plan: PlanArgs,
        /// Print the resolved plan and exit 0 without running anything
        #[arg(long)]
        dry_run: bool,
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
    /// List the built-in profiles
    Profiles,
}

fn main() -> ExitCode {
    // Rust ignores SIGPIPE; a closed stdout on `confine explain | head`
    // should end us quietly, not panic.
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
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
            eprintln!("confine: usage (command line): {why}; hint: confine --help");
            return ExitCode::from(EXIT_REFUSED);
        }
    };
    match cli.command {
        Command::Run {
            plan,
            dry_run,
            command,
        } => {
            let req = plan.request(command);
            let plan = match build(&req) {
                Ok(p) => p,
                Err(code) => return code,
            };
            print_warnings(&plan);
            for d in &plan.dropped {
                eprintln!("confine: best-effort: not enforced: {d}");
            }
            if dry_run {
                return print_out(&plan.render_text());
            }
            match launch::run(&plan) {
                Ok(status) => ExitCode::from(status),
                Err(e) => {
                    eprintln!("confine: {e}");
                    ExitCode::from(EXIT_REFUSED)
                }
            }
        }
        Command::Check { profiles } => {
            let mut failed = false;
            for p in &profiles {
                match plan::check(p) {
                    Ok(warnings) => {
                        for w in warnings {
                            eprintln!("confine: warning: {w}");
                        }
                        println!("{p}: ok");
                    }
                    Err(e) => {
                        eprintln!("confine: {e}");
                        failed = true;
                    }
                }
            }
            ExitCode::from(if failed { EXIT_REFUSED } else { 0 })
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
        Command::Profiles => {
            let mut out = String::new();
            for (name, _) in profile::builtin::ALL {
                let desc = profile::load(name, &[])
                    .map(|p| p.description)
                    .unwrap_or_else(|e| format!("(broken: {e})"));
                out.push_str(&format!("{name:<10} {desc}\n"));
            }
            print_out(&out)
        }
    }
}

fn build(req: &Request) -> Result<Plan, ExitCode> {
    Plan::build(req).map_err(|e| {
        eprintln!("confine: {e}");
        ExitCode::from(EXIT_REFUSED)
    })
}

fn print_warnings(plan: &Plan) {
    for w in &plan.warnings {
        eprintln!("confine: warning: {w}");
    }
}

fn print_out(s: &str) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match out.write_all(s.as_bytes()).and_then(|_| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe isn't our failure to report.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("confine: writing output (stdout): {e}");
            ExitCode::from(EXIT_REFUSED)
        }
    }
}

#!/usr/bin/env bash
# What confine costs, measured against what people would otherwise use, in
# one run on this machine: launch overhead of /bin/true, syscall-heavy real
# workloads, the peak memory of confine's own processes, the cost of one
# system call inside the sandbox, keystroke latency, and the egress proxy
# (`network.mode: proxy`) next to a direct connection and Anthropic's
# sandbox-runtime. Writes the results to docs/BENCHMARKS.md.
#
#   sudo scripts/bench.sh     (as root; on 2 cores about 7 minutes after the
#                              release build, which takes 2-3 more from cold)
#   sudo CONFINE_BENCH_ONLY=egress scripts/bench.sh   (one section, ~2 min)
#   sudo CONFINE_BENCH_ONLY=control scripts/bench.sh  (the kill switch, ~1 min)
#
# Compared, each with the same command, environment and working directory:
#   bare        the command itself
#   unshare     `unshare -m -n -p -f -i -u`: the kernel's floor for the
#               namespaces confine creates (launch only)
#   confine     `confine run` with the built-in `default` profile
#   bwrap       bubblewrap confined like `default`: the system read-only, the
#               workspace read-write, --unshare-all --die-with-parent
#               --new-session, fresh /proc, /dev and /tmp, and a seccomp
#               program as long as confine's two together
#   firejail    firejail confined as closely as its options allow
#   srt         Anthropic's sandbox-runtime (section 6, egress only): its
#               proxies allow the same host, its sandbox is its own default
#
# Section 6 builds a test network of its own (two network namespaces, a
# veth pair, servers on an address that exists only there; never the
# machine's network) and removes it at the end.
#
# Installs what it needs from the distribution's packages (Debian: hyperfine,
# bubblewrap, firejail, git, gcc, make, python3; for section 6 iproute2,
# curl, openssl, nginx-light, socat, ripgrep) and sandbox-runtime with
# `npm install -g @anthropic-ai/sandbox-runtime` when npm is there (it needs
# node >= 20.11; without it srt's rows say why they are missing), builds confine with
# `cargo build --release` and uses target/release/confine. Never run by the
# test suite. The agents run as the workspace's owner (CONFINE_BENCH_UID);
# when that uid has no passwd entry one is added for the run (firejail refuses
# a caller without one). Everything it creates is removed at the end
# (installed packages stay).
#
# Environment:
#   CONFINE_BENCH_DIR    scratch directory (default target/confine-bench); its
#                        parents must be traversable by the bench user. Not
#                        under /tmp or /var/tmp: firejail mounts its own there
#   CONFINE_BENCH_OUT    report file (default docs/BENCHMARKS.md)
#   CONFINE_BENCH_UID    the workspace owner the agents run as (default 60123)
#   CONFINE_BENCH_QUICK  1: few runs, to try the script (numbers are rough)
#   CONFINE_BENCH_KEEP   1: keep the scratch directory (raw hyperfine JSON)
#   CONFINE_BENCH_ONLY   sections to run, comma-separated: launch, workloads,
#                        memory, syscalls, keys, egress, control (default: all). The
#                        report then goes to target/confine-bench.md unless
#                        CONFINE_BENCH_OUT says otherwise: a partial run never
#                        rewrites docs/BENCHMARKS.md by default
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly REPO
readonly SCRATCH=${CONFINE_BENCH_DIR:-$REPO/target/confine-bench}
readonly ONLY=${CONFINE_BENCH_ONLY:-}
if [[ -n $ONLY ]]; then
    readonly OUT=${CONFINE_BENCH_OUT:-$REPO/target/confine-bench.md}
else
    readonly OUT=${CONFINE_BENCH_OUT:-$REPO/docs/BENCHMARKS.md}
fi
readonly SECTIONS="launch workloads memory syscalls keys egress control"
readonly BENCH_UID=${CONFINE_BENCH_UID:-60123}
readonly AGENT_PATH=/usr/local/bin:/usr/bin:/bin
readonly CONFINE=$REPO/target/release/confine
readonly WS=$SCRATCH/ws
readonly RES=$SCRATCH/results
readonly LOG=$SCRATCH/bench.log
readonly FILTER=$SCRATCH/filter.bpf
readonly MARKER=.confine-bench-scratch

if [[ ${CONFINE_BENCH_QUICK:-0} == 1 ]]; then
    readonly ROUNDS=1 LAUNCH_RUNS=30 LAUNCH_WARMUP=5
    readonly GIT_RUNS=3 PY_RUNS=2 MAKE_RUNS=2 SYSCALL_ROUNDS=2 KEY_ROUNDS=1 CONTROL_RUNS=2
    readonly EG_ROUNDS=1 EG_CONNS=30 EG_LAUNCH_RUNS=10 EG_SRT_LAUNCH_RUNS=3
else
    # Everything is measured in ROUNDS interleaved rounds (every launcher
    # once per round), so that a burst of load elsewhere on the machine (or a
    # slow phase of a shared VM) doesn't land on one launcher only; medians
    # are over all rounds' runs. The runs below are per round.
    readonly ROUNDS=6 LAUNCH_RUNS=50 LAUNCH_WARMUP=5
    readonly GIT_RUNS=5 PY_RUNS=2 MAKE_RUNS=2
    # Section 4 runs each launcher once per round; one run is about 1 s.
    readonly SYSCALL_ROUNDS=15
    # Section 5: each relay once per round, 2000 keystrokes each.
    readonly KEY_ROUNDS=5
    # Section 7: each action on each size, interleaved.
    readonly CONTROL_RUNS=7
    # Section 6: per round and path, EG_CONNS fresh connections each of
    # HTTP and HTTPS, one 1 GiB download and upload; launches by hyperfine
    # (srt's take 0.3 s each, so fewer of them).
    readonly EG_ROUNDS=5 EG_CONNS=100 EG_LAUNCH_RUNS=30 EG_SRT_LAUNCH_RUNS=10
fi

# Set by the steps below.
created_user=""
created_group=""
seccomp_instructions=0
bwrap_opts=()
firejail_opts=()
background_pid=""
# `ip netns exec CLIENT` while section 6 measures, so that hf and try_once
# run launchers in its test network; empty otherwise.
in_ns=()

log() { printf 'bench: %s\n' "$*" >&2; }
die() {
    printf 'bench: %s\n' "$*" >&2
    exit 1
}

# True when section NAME is to run (CONFINE_BENCH_ONLY).
runs() {
    [[ -z $ONLY || ,$ONLY, == *,"$1",* ]]
}

check_only() {
    local s
    for s in ${ONLY//,/ }; do
        [[ " $SECTIONS " == *" $s "* ]] || die "CONFINE_BENCH_ONLY: unknown section '$s' (sections: $SECTIONS)"
    done
}

# ------------------------------------------------------------------ setup

require_root() {
    [[ $EUID -eq 0 ]] || die "run as root (confine needs root to create its namespaces)"
    [[ $(uname -s) == Linux ]] || die "Linux only"
}

install_tools() {
    local -A pkg_of=(
        [hyperfine]=hyperfine [bwrap]=bubblewrap [firejail]=firejail
        [git]=git [gcc]=gcc [make]=make [python3]=python3 [perl]=perl-base
        [setpriv]=util-linux [unshare]=util-linux [getent]=libc-bin
    )
    local -a missing=()
    local cmd
    for cmd in "${!pkg_of[@]}"; do
        PATH=$AGENT_PATH command -v "$cmd" >/dev/null || missing+=("${pkg_of[$cmd]}")
    done
    # Section 6's servers and tools run as root, from sbin too.
    local -A eg_pkg_of=(
        [ip]=iproute2 [curl]=curl [openssl]=openssl [nginx]=nginx-light
        [socat]=socat [rg]=ripgrep
    )
    if runs egress; then
        for cmd in "${!eg_pkg_of[@]}"; do
            PATH=$AGENT_PATH:/usr/sbin:/sbin command -v "$cmd" >/dev/null || missing+=("${eg_pkg_of[$cmd]}")
        done
    fi
    if ((${#missing[@]})); then
        log "installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        # Debian starts a service a package installs (nginx, on the host's
        # port 80) unless policy-rc.d says no: it says no for this install.
        local policy=""
        if [[ ! -e /usr/sbin/policy-rc.d ]]; then
            policy=/usr/sbin/policy-rc.d
            printf '#!/bin/sh\nexit 101\n' >"$policy"
            chmod 0755 "$policy"
        fi
        local ok=1
        apt-get update -qq &&
            apt-get install -y -qq --no-install-recommends "${missing[@]}" libc6-dev >/dev/null || ok=0
        if [[ -n $policy ]]; then rm -f "$policy"; fi
        ((ok)) || die "apt-get install ${missing[*]} failed"
    fi
    # sandbox-runtime, for section 6's comparison; its rows say why they are
    # missing when it can't be installed.
    if runs egress && ! PATH=$AGENT_PATH command -v srt >/dev/null && command -v npm >/dev/null; then
        log "installing @anthropic-ai/sandbox-runtime (npm install -g)"
        local out
        out=$(npm install -g @anthropic-ai/sandbox-runtime 2>&1) ||
            log "npm install -g @anthropic-ai/sandbox-runtime failed, srt's rows will be missing: $(tail -n 3 <<<"$out")"
    fi
}

build_confine() {
    log "building confine (cargo build --release)"
    command -v cargo >/dev/null || PATH=$HOME/.cargo/bin:$PATH
    # target/release/confine, wherever the caller's CARGO_TARGET_DIR points.
    (cd "$REPO" && env -u CARGO_TARGET_DIR cargo build --release --quiet) ||
        die "cargo build --release failed"
    [[ -x $CONFINE ]] || die "$CONFINE was not built"
}

# Hands out the scratch directory; refuses to reuse one it didn't make.
make_scratch() {
    if [[ -e $SCRATCH ]]; then
        [[ -e $SCRATCH/$MARKER ]] || die "$SCRATCH exists and is not a bench scratch directory"
        rm -rf "$SCRATCH"
    fi
    mkdir -p "$SCRATCH"
    touch "$SCRATCH/$MARKER"
    chmod 0755 "$SCRATCH"
    mkdir -p "$WS" "$RES"
    : >"$LOG"
    # `default` without denial reporting: `kill` installs no seccomp
    # listener (DESIGN-NOTES 53), so it is the run that reports nothing.
    printf 'version: 1\nname: unreported\nextends: default\nsyscalls: {on_violation: kill}\n' \
        >"$SCRATCH/unreported.yaml"
}

# The agents run as the workspace's owner, as confine's `default` profile
# does. firejail wants a passwd entry for its caller, so one is made for the
# run (and removed afterwards) when the uid has none.
make_bench_user() {
    if ! getent group "$BENCH_UID" >/dev/null; then
        groupadd --system --gid "$BENCH_UID" confine-bench
        created_group=confine-bench
    fi
    if ! getent passwd "$BENCH_UID" >/dev/null; then
        useradd --system --uid "$BENCH_UID" --gid "$BENCH_UID" --no-create-home \
            --home-dir "$WS" --shell /usr/sbin/nologin confine-bench 2>/dev/null
        created_user=confine-bench
    fi
    chown "$BENCH_UID:$BENCH_UID" "$WS" "$RES"
    as_bench test -w "$WS" ||
        die "uid $BENCH_UID can't reach $WS: set CONFINE_BENCH_DIR to a directory whose parents it can traverse"
}

cleanup() {
    if [[ -n $background_pid ]]; then
        kill "$background_pid" 2>/dev/null || true
        wait "$background_pid" 2>/dev/null || true
    fi
    eg_cleanup
    if [[ ${CONFINE_BENCH_KEEP:-0} != 1 && -e $SCRATCH/$MARKER ]]; then
        rm -rf "$SCRATCH"
    fi
    if [[ -n $created_user ]]; then userdel "$created_user" 2>/dev/null || true; fi
    if [[ -n $created_group ]] && getent group "$created_group" >/dev/null; then
        groupdel "$created_group" 2>/dev/null || true
    fi
}

# Runs a command as the bench user, with only the supplementary groups it
# has in the group database.
as_bench() {
    setpriv --reuid="$BENCH_UID" --regid="$BENCH_UID" --init-groups -- "$@"
}

# bwrap reads its seccomp program from a descriptor, to the end, so the file
# on fd 9 is rewound before every run (hyperfine --prepare, outside the
# timing). Every row gets the same preparation, needed or not.
readonly REWIND="perl -e 'open(my \$f, \"<&=\", 9) or die \"fd 9: \$!\"; defined(sysseek(\$f, 0, 0)) or die \"rewind: \$!\"'"

# A seccomp program for bwrap as long as confine's allowlist and denylist
# together (`confine explain --json`): load the syscall number, then a chain
# of `jeq nr, allow` checks, then allow. Like confine's, every verdict is a
# constant per syscall number, so the kernel's action cache applies to both.
make_seccomp_filter() {
    local json
    json=$(cd "$WS" && "$CONFINE" explain -w "$WS" --json)
    seccomp_instructions=$(python3 -c '
import json, sys
s = json.loads(sys.argv[1])["seccomp"]
print(s["allowlist_instructions"] + s["denylist_instructions"])' "$json")
    python3 - "$seccomp_instructions" "$FILTER" <<'PY'
import struct, sys
n, path = int(sys.argv[1]), sys.argv[2]
def insn(code, jt, jf, k):
    return struct.pack("<HBBI", code, jt, jf, k)
LD_NR, JEQ, RET, ALLOW = 0x20, 0x15, 0x06, 0x7FFF0000
prog = [insn(LD_NR, 0, 0, 0)]
while len(prog) + 2 < n:
    nr = (len(prog) - 1) // 2
    prog += [insn(JEQ, 0, 1, nr), insn(RET, 0, 0, ALLOW)]
while len(prog) < n - 1:
    prog.append(insn(LD_NR, 0, 0, 0))
prog.append(insn(RET, 0, 0, ALLOW))
assert len(prog) == n
open(path, "wb").write(b"".join(prog))
PY
}

# bwrap and firejail options for the confinement of confine's `default`
# profile. The system directories bwrap binds are the ones `default` grants
# (/usr, /etc, and /bin, /sbin, /lib* as they are on this host).
make_sandbox_options() {
    local d
    bwrap_opts=(--ro-bind /usr /usr --ro-bind /etc /etc)
    for d in /bin /sbin /lib /lib64 /lib32 /libx32; do
        if [[ -L $d ]]; then
            bwrap_opts+=(--symlink "$(readlink "$d")" "$d")
        elif [[ -d $d ]]; then
            bwrap_opts+=(--ro-bind "$d" "$d")
        fi
    done
    bwrap_opts+=(--bind "$WS" "$WS" --unshare-all --die-with-parent --new-session
        --proc /proc --dev /dev --tmpfs /tmp --chdir "$WS" --seccomp 9)
    firejail_opts=(--noprofile --quiet --net=none --ipc-namespace --private-tmp
        --private-dev --seccomp --caps.drop=all --read-only=/ --read-write="$WS")
}

# Words joined into one command line for hyperfine (which splits it the way
# a POSIX shell would), quoted only where needed.
cmdline() {
    local out="" w q
    for w in "$@"; do
        if [[ $w =~ ^[A-Za-z0-9_./=:,+@%-]+$ ]]; then
            q=$w
        elif [[ $w != *"'"* ]]; then
            q="'$w'"
        else
            q=$(printf '%q' "$w")
        fi
        out+="${out:+ }$q"
    done
    printf '%s' "$out"
}

# True when the launcher ID ran in section 1's trial run.
works() {
    grep -q "^$1|.*|ok\$" "$RES/launch.rows"
}

# hf ID WHO RUNS WARMUP COMMAND: one hyperfine measurement, exported to
# $RES/ID.json. WHO is root or bench (the workspace owner). The command runs
# in the workspace with the same small environment for every launcher.
hf() {
    local id=$1 who=$2 runs=$3 warmup=$4 cmd=$5
    local -a run_as=()
    [[ $who == bench ]] && run_as=(setpriv --reuid="$BENCH_UID" --regid="$BENCH_UID" --init-groups --)
    if ! (cd "$WS" && "${in_ns[@]}" "${run_as[@]}" env -i PATH="$AGENT_PATH" HOME="$WS" LANG=C.UTF-8 \
        hyperfine -N --style basic --warmup "$warmup" --runs "$runs" \
        --prepare "$REWIND" --export-json "$RES/$id.json" --command-name "$id" "$cmd") \
        >>"$LOG" 2>&1; then
        tail -n 20 "$LOG" >&2
        die "measuring $id failed ($cmd)"
    fi
}

# Runs COMMAND once as WHO the way hf would; prints its output and returns
# its status (to find out whether a launcher works here at all).
try_once() {
    local who=$1 cmd=$2
    local -a run_as=() words=()
    [[ $who == bench ]] && run_as=(setpriv --reuid="$BENCH_UID" --regid="$BENCH_UID" --init-groups --)
    eval "words=($cmd)"
    eval "$REWIND"
    (cd "$WS" && "${in_ns[@]}" "${run_as[@]}" env -i PATH="$AGENT_PATH" HOME="$WS" LANG=C.UTF-8 "${words[@]}") 2>&1
}

# ----------------------------------------------------- 1. launch overhead

# id|who|description|command
launchers() {
    local confine_run bwrap_run firejail_run
    confine_run=$(cmdline "$CONFINE" run -w "$WS" -- /bin/true)
    bwrap_run=$(cmdline bwrap "${bwrap_opts[@]}" /bin/true)
    firejail_run=$(cmdline firejail "${firejail_opts[@]}" /bin/true)
    printf '%s\n' \
        "bare|root|nothing|/bin/true" \
        "unshare|root|unshare -m -n -p -f -i -u (namespace floor)|unshare -m -n -p -f -i -u /bin/true" \
        "confine|root|confine, default profile|$confine_run" \
        "confine-unreported|root|confine, default without denial reporting (on_violation: kill)|$(cmdline "$CONFINE" run -p "$SCRATCH/unreported.yaml" -w "$WS" -- /bin/true)" \
        "bwrap|root|bubblewrap, equivalent confinement|$bwrap_run" \
        "bwrap-user|bench|bubblewrap, run by the workspace owner|$bwrap_run" \
        "confine-user|bench|confine, run by the workspace owner (unprivileged)|$confine_run" \
        "firejail|root|firejail, closest confinement|$firejail_run" \
        "firejail-user|bench|firejail, run by the workspace owner|$firejail_run"
}

# Runs every launcher once, to find out which work here (sections 1-4 use
# only those); writes launch.rows.
launch_trials() {
    local id who desc cmd out
    : >"$RES/launch.rows"
    while IFS='|' read -r id who desc cmd; do
        if ! out=$(try_once "$who" "$cmd"); then
            log "  $id can't run here: $out"
            printf '%s|%s|%s|%s|%s\n' "$id" "$who" "$desc" "$cmd" "FAILED: ${out//$'\n'/ }" >>"$RES/launch.rows"
            continue
        fi
        printf '%s|%s|%s|%s|ok\n' "$id" "$who" "$desc" "$cmd" >>"$RES/launch.rows"
    done < <(launchers)
}

bench_launch() {
    log "1/6 launch overhead: $ROUNDS rounds x $LAUNCH_RUNS runs of /bin/true per launcher"
    local id who desc cmd round
    local -a rows
    mapfile -t rows < <(grep '|ok$' "$RES/launch.rows")
    for ((round = 1; round <= ROUNDS; round++)); do
        while IFS='|' read -r id who desc cmd _; do
            hf "launch-$id-$round" "$who" "$LAUNCH_RUNS" "$LAUNCH_WARMUP" "$cmd"
        done < <(rotate "$round" "${rows[@]}")
    done
}

# rotate N LINE...: the lines, starting at the Nth (cyclically), so that no
# launcher always runs first (or right after the same one) in a round.
rotate() {
    local n=$1
    shift
    local i k=$#
    for ((i = 0; i < k; i++)); do
        printf '%s\n' "${@:$(((n - 1 + i) % k + 1)):1}"
    done
}

# ------------------------------------------------------- 2. workloads

make_workloads() {
    log "2/6 generating the workloads (20 000-file git repository, C project)"
    python3 - "$WS" <<'PY'
import os, sys, time
ws = sys.argv[1]
# 20 000 small files in 200 directories, dated a minute back: files as new
# as the index would be "racily clean" and make git re-read them on every
# status, for whichever launcher happens to run first.
past = time.time() - 60
for i in range(200):
    d = os.path.join(ws, "repo", f"d{i:03}")
    os.makedirs(d)
    for j in range(100):
        path = os.path.join(d, f"f{j:03}.txt")
        with open(path, "w") as f:
            f.write(f"{i} {j}\n")
        os.utime(path, (past, past))
# A small C project: 24 modules and a main, built with make -j2.
src = os.path.join(ws, "cproj", "src")
os.makedirs(src)
N, F = 24, 8
for i in range(N):
    with open(os.path.join(src, f"m{i:02}.c"), "w") as f:
        f.write("#include <stdint.h>\n#include <stdio.h>\n#include <string.h>\n")
        for j in range(F):
            f.write(f"""static uint64_t f{j}(uint64_t x) {{
    char buf[32];
    for (int k = 0; k < {j + 4}; k++) x = x * 6364136223846793005u + {i * F + j};
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)x);
    return x ^ strlen(buf);
}}
""")
        f.write(f"uint64_t m{i}(uint64_t x) {{" + "".join(f" x = f{j}(x);" for j in range(F)) + " return x; }\n")
with open(os.path.join(src, "main.c"), "w") as f:
    f.write("#include <stdint.h>\n#include <stdio.h>\n")
    f.writelines(f"uint64_t m{i}(uint64_t);\n" for i in range(N))
    f.write("int main(void) { uint64_t s = 1;" + "".join(f" s = m{i}(s);" for i in range(N))
            + ' printf("%llu\\n", (unsigned long long)s); return 0; }\n')
with open(os.path.join(ws, "cproj", "Makefile"), "w") as f:
    f.write("""CFLAGS = -O2 -pipe -Wall
SRCS := $(wildcard src/*.c)
OBJS := $(SRCS:src/%.c=obj/%.o)
prog: $(OBJS)
\t$(CC) -o $@ $(OBJS)
obj/%.o: src/%.c | obj
\t$(CC) $(CFLAGS) -c -o $@ $<
obj:
\tmkdir -p obj
""")
PY
    chown -R "$BENCH_UID:$BENCH_UID" "$WS"
    (cd "$WS/repo" && as_bench env -i PATH="$AGENT_PATH" HOME="$WS" sh -c '
        git init -q . &&
        git add -A &&
        git -c user.name=bench -c user.email=bench@localhost commit -qm files &&
        git status >/dev/null') >>"$LOG" 2>&1 || die "making the git repository failed (see $LOG)"
}

# id|description|runs|warmup|command
workloads() {
    # 20 000 paths, 25 times each; deque(..., 0) consumes without storing.
    local stat_code
    stat_code="import collections, os; ps = [f\"$WS/repo/d{i:03}/f{j:03}.txt\" for i in range(200) for j in range(100)]; collections.deque(map(os.stat, ps * 25), 0)"
    printf '%s\n' \
        "git|git status in a 20 000-file repository|$GIT_RUNS|2|$(cmdline git -C "$WS/repo" status --porcelain)" \
        "stat|python3 stat-ing 500 000 paths|$PY_RUNS|1|$(cmdline python3 -I -c "$stat_code")" \
        "make|make -j2 of a 25-file C project (-B: all of it, every run)|$MAKE_RUNS|1|$(cmdline make -s -B -j2 -C "$WS/cproj")"
}

bench_workloads() {
    local id desc runs warmup cmd round variant prefix
    local -a variants=(bare confine)
    works bwrap-user && variants+=(bwrap)
    works firejail-user && variants+=(firejail)
    workloads >"$RES/workload.rows"
    for ((round = 1; round <= ROUNDS; round++)); do
        while IFS='|' read -r id desc runs warmup cmd; do
            log "2/6 round $round/$ROUNDS: $desc"
            ((round == 1)) || warmup=0
            while read -r variant; do
                case $variant in
                bare) hf "work-$id-bare-$round" bench "$runs" "$warmup" "$cmd" ;;
                confine) prefix=$(cmdline "$CONFINE" run -w "$WS" --)
                    hf "work-$id-confine-$round" root "$runs" "$warmup" "$prefix $cmd" ;;
                bwrap) prefix=$(cmdline bwrap "${bwrap_opts[@]}")
                    hf "work-$id-bwrap-$round" bench "$runs" "$warmup" "$prefix $cmd" ;;
                firejail) prefix=$(cmdline firejail "${firejail_opts[@]}")
                    hf "work-$id-firejail-$round" bench "$runs" "$warmup" "$prefix $cmd" ;;
                esac
            done < <(rotate "$round" "${variants[@]}")
        done <"$RES/workload.rows"
    done
}

# ------------------------------------------------- 4. per-syscall cost

# A loop of 2 000 000 calls each of getppid (the bare cost of entering the
# kernel: under seccomp, the filters' action cache), fstat on a descriptor,
# and fstatat on a path in the workspace (adds the path walk through the
# sandbox's mounts); prints nanoseconds per call for each. Timed inside the
# process, so launch costs don't enter.
make_sysloop() {
    cat >"$WS/sysloop.c" <<'C'
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}
int main(int argc, char **argv) {
    struct stat st;
    const long n = 2000000;
    int fd = open(argv[1], O_RDONLY);
    if (argc < 2 || fd < 0) return 2;
    double a = now();
    for (long i = 0; i < n; i++) syscall(SYS_getppid);
    double b = now();
    for (long i = 0; i < n; i++) fstat(fd, &st);
    double c = now();
    for (long i = 0; i < n; i++) fstatat(AT_FDCWD, argv[1], &st, 0);
    double d = now();
    printf("%.1f %.1f %.1f\n", (b - a) / n, (c - b) / n, (d - c) / n);
    return 0;
}
C
    gcc -O2 -o "$WS/sysloop" "$WS/sysloop.c" >>"$LOG" 2>&1 || die "compiling sysloop.c failed (see $LOG)"
    chown "$BENCH_UID:$BENCH_UID" "$WS/sysloop" "$WS/sysloop.c"
}

bench_syscalls() {
    log "4/6 per-syscall cost: $SYSCALL_ROUNDS rounds, every launcher once per round"
    make_sysloop
    local -a variants=(bare confine confine-unreported)
    works bwrap-user && variants+=(bwrap)
    works firejail-user && variants+=(firejail)
    local round variant who cmd out loop
    loop=$(cmdline "$WS/sysloop" "$WS/sysloop.c")
    : >"$RES/syscalls.rows"
    for ((round = 1; round <= SYSCALL_ROUNDS; round++)); do
        while read -r variant; do
            case $variant in
            bare) who=bench cmd=$loop ;;
            confine) who=root cmd="$(cmdline "$CONFINE" run -w "$WS" --) $loop" ;;
            confine-unreported) who=root cmd="$(cmdline "$CONFINE" run -p "$SCRATCH/unreported.yaml" -w "$WS" --) $loop" ;;
            bwrap) who=bench cmd="$(cmdline bwrap "${bwrap_opts[@]}") $loop" ;;
            firejail) who=bench cmd="$(cmdline firejail "${firejail_opts[@]}") $loop" ;;
            esac
            out=$(try_once "$who" "$cmd" </dev/null) || die "per-syscall loop under $variant failed: $out"
            printf '%s %s %s\n' "$variant" "$round" "$(tail -n 1 <<<"$out")" >>"$RES/syscalls.rows"
        done < <(rotate "$round" "${variants[@]}")
    done
}

# ------------------------------------------------- 5. keystroke latency

# keyrtt CMD...: runs CMD on a pty of its own (as a terminal emulator
# would) and times 2000 keystrokes, each from the write on the master to
# its echo coming back (CMD puts its terminal in raw mode and echoes with
# cat); prints the median and 99th percentile in microseconds.
make_keyrtt() {
    cat >"$WS/keyrtt.c" <<'C'
#define _GNU_SOURCE
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}
static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
/* Reads from m until byte c arrives; 0 on time-out. */
static int await(int m, char c, int ms) {
    char buf[256];
    struct pollfd p = {m, POLLIN, 0};
    while (poll(&p, 1, ms) == 1) {
        ssize_t n = read(m, buf, sizeof buf);
        if (n <= 0) return 0;
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] == c) return 1;
    }
    return 0;
}
int main(int argc, char **argv) {
    enum { N = 2000, WARM = 100 };
    static double t[N];
    int m, s;
    struct winsize ws = {24, 80, 0, 0};
    if (argc < 2 || openpty(&m, &s, NULL, NULL, &ws) != 0) return 2;
    pid_t pid = fork();
    if (pid == 0) {
        setsid();
        ioctl(s, TIOCSCTTY, 0);
        dup2(s, 0), dup2(s, 1), dup2(s, 2);
        close(m), close(s);
        execvp(argv[1], argv + 1);
        _exit(127);
    }
    close(s);
    if (!await(m, 'R', 20000)) return 3;
    usleep(200000);
    await(m, 0, 50);
    for (int i = 0; i < WARM + N; i++) {
        char c = 'a' + i % 26;
        double a = now();
        if (write(m, &c, 1) != 1 || !await(m, c, 5000)) return 4;
        if (i >= WARM) t[i - WARM] = now() - a;
    }
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    qsort(t, N, sizeof t[0], cmp);
    printf("%.1f %.1f\n", t[N / 2], t[N * 99 / 100]);
    return 0;
}
C
    gcc -O2 -o "$WS/keyrtt" "$WS/keyrtt.c" -lutil >>"$LOG" 2>&1 || die "compiling keyrtt.c failed (see $LOG)"
}

bench_keys() {
    log "5/6 keystroke latency: $KEY_ROUNDS rounds, every relay once per round"
    make_keyrtt
    local -a variants=(bare confine)
    command -v script >/dev/null && variants+=(script)
    local round variant out
    local echo="stty raw -echo; printf R; exec cat"
    : >"$RES/keys.rows"
    for ((round = 1; round <= KEY_ROUNDS; round++)); do
        while read -r variant; do
            case $variant in
            bare) out=$("$WS/keyrtt" sh -c "$echo" </dev/null) ;;
            confine) out=$("$WS/keyrtt" "$CONFINE" run -w "$WS" -- sh -c "$echo" </dev/null) ;;
            script) out=$("$WS/keyrtt" script -qfec "sh -c '$echo'" /dev/null </dev/null) ;;
            esac || die "keystroke latency under $variant failed (exit $?)"
            printf '%s %s %s\n' "$variant" "$round" "$out" >>"$RES/keys.rows"
        done < <(rotate "$round" "${variants[@]}")
    done
}

# ------------------------------------------------------ 7. the kill switch

# Starts a sandbox of N sleeping processes (a cgroup: limits.pids), waits
# until all run, and prints its id.
ctl_start() {
    local n=$1 log=$SCRATCH/ctl.jsonl id procs
    : >"$log"
    "$CONFINE" run -w "$WS" --audit-log "$log" --set limits.pids=4096 -- \
        sh -c "for i in \$(seq $n); do sleep 1000 & done; wait" </dev/null >/dev/null 2>&1 &
    for _ in $(seq 500); do
        id=$(python3 -c 'import json,sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r["event"] == "launch": print(r["sandbox"])' "$log" 2>/dev/null || true)
        if [[ -n $id ]]; then
            procs=$("$CONFINE" ps --json | python3 -c 'import json,sys
rows = [r for r in json.load(sys.stdin) if r["id"] == sys.argv[1]]
n = 0
for d in (rows[0]["cgroup"] if rows else []):
    if "/pids/" in d: n = len(open(d + "/cgroup.procs").read().split())
print(n)' "$id")
            # N sleeps, the shell and the init.
            if ((procs >= n + 2)); then
                echo "$id"
                return
            fi
        fi
        sleep 0.02
    done
    die "control: a sandbox of $n processes never ran"
}

# Time from `confine kill ID` (or `stop`) to its return, which is when the
# supervisor has exited: no process of the sandbox left, its cgroup gone.
bench_control() {
    log "7/7 the kill switch: confine kill and stop of 1, 50, 200 processes; freeze"
    local n round id t0 t1 runs=$((CONTROL_RUNS))
    : >"$RES/control.rows"
    for n in 1 50 200; do
        for ((round = 1; round <= runs; round++)); do
            for verb in kill stop; do
                id=$(ctl_start "$n")
                t0=$(date +%s%N)
                "$CONFINE" "$verb" "$id" >/dev/null || die "control: confine $verb failed"
                t1=$(date +%s%N)
                wait
                printf '%s %s %s %s\n' "$verb" "$n" "$round" "$(((t1 - t0) / 1000))" >>"$RES/control.rows"
            done
            id=$(ctl_start "$n")
            t0=$(date +%s%N)
            "$CONFINE" freeze "$id" >/dev/null || die "control: confine freeze failed"
            t1=$(date +%s%N)
            printf '%s %s %s %s\n' freeze "$n" "$round" "$(((t1 - t0) / 1000))" >>"$RES/control.rows"
            "$CONFINE" kill "$id" >/dev/null
            wait
        done
    done
}

# ------------------------------------------------------------ 3. memory

# Prints VmHWM, VmRSS, RssAnon and RssFile (kB) of PID.
mem_of() {
    awk '/^VmHWM:/ {h = $2} /^VmRSS:/ {r = $2} /^RssAnon:/ {a = $2} /^RssFile:/ {f = $2}
        END {print h, r, a, f}' "/proc/$1/status"
}

# First child of PID (through /proc/PID/task/*/children), or nothing.
child_of() {
    local c
    c=$(cat /proc/"$1"/task/*/children 2>/dev/null || true)
    printf '%s' "${c%% *}"
}

# Starts LAUNCHER... sleep 3 in the background as WHO, waits until `sleep`
# runs inside, and prints "role pid hwm rss" for each launcher process on the
# way down to it.
sample_tree() {
    local name=$1 who=$2
    shift 2
    local -a run_as=()
    [[ $who == bench ]] && run_as=(setpriv --reuid="$BENCH_UID" --regid="$BENCH_UID" --init-groups --)
    (cd "$WS" && exec "${run_as[@]}" env -i PATH="$AGENT_PATH" HOME="$WS" "$@" sleep 3) </dev/null >/dev/null 2>&1 9<"$FILTER" &
    local top=$! pid tries depth
    background_pid=$top
    for ((tries = 0; tries < 100; tries++)); do
        # Walk down to the first process that is `sleep`.
        pid=$top
        for ((depth = 0; depth < 6; depth++)); do
            [[ -n $pid && $(cat "/proc/$pid/comm" 2>/dev/null) == sleep ]] && break
            pid=$(child_of "$pid")
        done
        [[ -n $pid && $(cat "/proc/$pid/comm" 2>/dev/null) == sleep ]] && break
        sleep 0.05
    done
    pid=$top
    for ((depth = 0; depth < 6; depth++)); do
        [[ -n $pid && -e /proc/$pid ]] || break
        local comm
        comm=$(cat "/proc/$pid/comm")
        [[ $comm == sleep ]] && break
        # setpriv and env exec into the launcher: same pid, so this is it.
        printf '%s %s %s %s %s\n' "$name" "$depth" "$pid" "$comm" "$(mem_of "$pid")"
        pid=$(child_of "$pid")
    done
    wait "$top" 2>/dev/null || true
    background_pid=""
}

bench_memory() {
    log "3/6 peak memory of the launchers' own processes while the agent sleeps"
    {
        sample_tree confine root "$CONFINE" run -w "$WS" --
        if works bwrap-user; then sample_tree bwrap bench bwrap "${bwrap_opts[@]}"; fi
        if works firejail-user; then sample_tree firejail bench firejail "${firejail_opts[@]}"; fi
    } >"$RES/memory.txt"
}

# ------------------------------------------------------------- 6. egress

# The test network (as tests/common/net.rs builds it for the egress tests):
# two network namespaces of the bench's own, so nothing ever reaches the
# machine's network, routes or resolver. CLIENT, where every launcher runs,
# has `lo` and one end of a veth pair, 198.18.0.2/30, with the default route
# through the other end; UPSTREAM has that end, 198.18.0.1/30, and the
# servers on 93.184.215.14, an address that exists only there (public-looking,
# since sandbox-runtime refuses private upstreams). The name is pinned to it
# in /etc/netns/CLIENT/hosts, which `ip netns exec` mounts over /etc/hosts
# (for the direct client and srt's proxy), and in confine's profile
# (`hosts:`, so its proxy doesn't resolve). The veth pair is created inside
# the namespaces and goes with them.
readonly EG_NAME=egress-bench.example EG_ADDR=93.184.215.14
readonly EG_SERVERS=$SCRATCH/egress-servers EG_FILES=$WS/egress
readonly EG_WARM=5 EG_BIG=$((1 << 30))
eg_client="" eg_upstream=""
eg_pids=()
# The launch prefix of srt: node and its script, by absolute paths (its
# `#!/usr/bin/env node` would need node on the agents' PATH).
srt_cmd=()

eg_setup_network() {
    local tag=cfb$$
    eg_client=$tag-c
    eg_upstream=$tag-u
    ip netns add "$eg_client"
    ip netns add "$eg_upstream"
    ip link add "${tag}c" netns "$eg_client" type veth peer name "${tag}u" netns "$eg_upstream"
    local ns dev addr
    while read -r ns dev addr; do
        ip -n "$ns" link set lo up
        ip -n "$ns" addr add "$addr/30" dev "$dev"
        ip -n "$ns" link set "$dev" up
    done <<<"$eg_client ${tag}c 198.18.0.2
$eg_upstream ${tag}u 198.18.0.1"
    ip -n "$eg_client" route add default via 198.18.0.1
    ip -n "$eg_upstream" addr add "$EG_ADDR/32" dev lo
    mkdir -p "/etc/netns/$eg_client"
    printf '127.0.0.1 localhost\n%s %s\n' "$EG_ADDR" "$EG_NAME" >"/etc/netns/$eg_client/hosts"
}

eg_cleanup() {
    local pid
    for pid in "${eg_pids[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    eg_pids=()
    if [[ -n $eg_client ]]; then
        ip netns del "$eg_client" 2>/dev/null || true
        ip netns del "$eg_upstream" 2>/dev/null || true
        rm -rf "/etc/netns/$eg_client"
        eg_client=""
    fi
}

# A throwaway CA and a certificate for EG_NAME; the served files (a sparse
# 1 GiB file, read into the page cache once, and a 3-byte one); the curl
# configurations of EG_WARM + EG_CONNS fresh connections; the profiles and
# srt's settings. Files the agents read are in the workspace.
eg_files() {
    mkdir -p "$EG_SERVERS/nginx" "$EG_FILES/www"
    (
        cd "$EG_SERVERS"
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
            -subj /CN=confine-bench-CA -keyout ca.key -out "$EG_FILES/ca.pem"
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
            -subj "/CN=$EG_NAME" -keyout server.key -out server.csr
        printf 'subjectAltName=DNS:%s\n' "$EG_NAME" >server.ext
        openssl x509 -req -in server.csr -CA "$EG_FILES/ca.pem" -CAkey ca.key -CAcreateserial \
            -days 2 -extfile server.ext -out server.pem
    ) >>"$LOG" 2>&1 || die "making the test CA failed (see $LOG)"
    truncate -s "$EG_BIG" "$EG_FILES/www/1g"
    cat "$EG_FILES/www/1g" >/dev/null
    printf 'ok\n' >"$EG_FILES/www/small"
    local scheme i
    for scheme in http https; do
        for ((i = 0; i < EG_WARM + EG_CONNS; i++)); do
            printf 'url = "%s://%s/small"\noutput = "/dev/null"\n' "$scheme" "$EG_NAME"
        done >"$EG_FILES/$scheme.curl"
    done
    cat >"$EG_FILES/none.yaml" <<YAML
version: 1
extends: default
network: {mode: none}
YAML
    cat >"$EG_FILES/proxy.yaml" <<YAML
version: 1
extends: default
network:
  mode: proxy
  allow: ["$EG_NAME:80", "$EG_NAME:443", "$EG_NAME:8080"]
  hosts: {$EG_NAME: $EG_ADDR}
YAML
    cat >"$EG_FILES/srt.json" <<JSON
{"network": {"allowedDomains": ["$EG_NAME"], "deniedDomains": []},
 "filesystem": {"denyRead": [], "allowWrite": ["$WS"], "denyWrite": []}}
JSON
    chown -R "$BENCH_UID:$BENCH_UID" "$EG_FILES"
}

# nginx for HTTP (80) and HTTPS (443, TLS 1.3 only, no session resumption:
# every connection does a full handshake), sendfile for the 1 GiB file; and
# an upload sink on 8080 that reads each body to the end before it answers
# (nginx answers an upload it discards before the body is in, and a proxy
# then cuts the upload short), splicing it to /dev/null.
eg_servers() {
    cat >"$EG_SERVERS/nginx.conf" <<NGINX
worker_processes 1;
pid $EG_SERVERS/nginx/nginx.pid;
daemon off;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    client_body_temp_path $EG_SERVERS/nginx/body;
    proxy_temp_path $EG_SERVERS/nginx/proxy;
    fastcgi_temp_path $EG_SERVERS/nginx/fastcgi;
    uwsgi_temp_path $EG_SERVERS/nginx/uwsgi;
    scgi_temp_path $EG_SERVERS/nginx/scgi;
    ssl_protocols TLSv1.3;
    ssl_session_cache off;
    ssl_session_tickets off;
    server {
        listen $EG_ADDR:80;
        listen $EG_ADDR:443 ssl;
        server_name $EG_NAME;
        ssl_certificate $EG_SERVERS/server.pem;
        ssl_certificate_key $EG_SERVERS/server.key;
        root $EG_FILES/www;
    }
}
NGINX
    cat >"$EG_SERVERS/sink.py" <<'PY'
import fcntl, os, socket, sys, threading

F_SETPIPE_SZ = 1031

def serve(c):
    with c:
        head = b""
        while b"\r\n\r\n" not in head:
            b = c.recv(4096, socket.MSG_PEEK)
            if not b:
                return
            # Consume the head only: the body stays for splice.
            end = (head + b).find(b"\r\n\r\n")
            take = len(b) if end < 0 else end + 4 - len(head)
            head += c.recv(take)
        length = 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v)
        r, w = os.pipe()
        fcntl.fcntl(w, F_SETPIPE_SZ, 1 << 20)
        null = os.open("/dev/null", os.O_WRONLY)
        try:
            while length > 0:
                n = os.splice(c.fileno(), w, min(length, 1 << 20))
                if n == 0:
                    return
                length -= n
                while n:
                    n -= os.splice(r, null, n)
        finally:
            os.close(r), os.close(w), os.close(null)
        c.sendall(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")

s = socket.create_server((sys.argv[1], int(sys.argv[2])), backlog=128)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
PY
    ip netns exec "$eg_upstream" nginx -p "$EG_SERVERS/nginx" -c "$EG_SERVERS/nginx.conf" \
        -e "$EG_SERVERS/nginx/error.log" </dev/null >>"$LOG" 2>&1 &
    eg_pids+=($!)
    ip netns exec "$eg_upstream" env -i PATH="$AGENT_PATH" python3 -I "$EG_SERVERS/sink.py" "$EG_ADDR" 8080 \
        </dev/null >>"$LOG" 2>&1 &
    eg_pids+=($!)
    local tries
    for ((tries = 0; tries < 100; tries++)); do
        if [[ $(eg_in direct curl -s -o /dev/null -w '%{http_code}' "http://$EG_NAME/small") == 200 &&
            $(eg_in direct curl -s -o /dev/null -w '%{http_code}' -H 'Expect:' --data-binary x \
                "http://$EG_NAME:8080/up") == 204 ]]; then
            return
        fi
        sleep 0.1
    done
    cat "$EG_SERVERS/nginx/error.log" >&2 2>/dev/null || true
    die "the test servers did not come up in the upstream namespace (see $LOG)"
}

# eg_prefix PATH: the launch prefix of PATH (direct, confine, confine-none,
# srt), as words, one a line.
eg_prefix() {
    case $1 in
    direct) ;;
    confine) printf '%s\n' "$CONFINE" run -p "$EG_FILES/proxy.yaml" -w "$WS" -- ;;
    confine-none) printf '%s\n' "$CONFINE" run -p "$EG_FILES/none.yaml" -w "$WS" -- ;;
    srt) printf '%s\n' "${srt_cmd[@]}" -s "$EG_FILES/srt.json" -- ;;
    esac
}

# Who starts PATH's launcher: root for confine (which runs the agent as the
# workspace's owner), the owner for the rest (srt, like bubblewrap, works
# unprivileged; as root it can't write in the owner's workspace).
eg_who() {
    case $1 in
    confine | confine-none) echo root ;;
    *) echo bench ;;
    esac
}

# eg_in PATH CMD...: CMD in the client namespace, through PATH, in the
# workspace with the agents' small environment (confine and srt set their
# proxy variables inside). SSL_CERT_FILE names the test CA for a proxy
# that verifies an upstream itself (DESIGN.md §10); curl is given it with
# --cacert, since confine doesn't pass the variable to the agent.
eg_in() {
    local -a pre run_as=()
    mapfile -t pre < <(eg_prefix "$1")
    [[ $(eg_who "$1") == bench ]] && run_as=(setpriv --reuid="$BENCH_UID" --regid="$BENCH_UID" --init-groups --)
    shift
    (cd "$WS" && ip netns exec "$eg_client" "${run_as[@]}" env -i PATH="$AGENT_PATH" HOME="$WS" LANG=C.UTF-8 \
        SSL_CERT_FILE="$EG_FILES/ca.pem" "${pre[@]}" "$@")
}

# Whether confine and srt can run a proxied command here; writes
# egress.paths ("path|ok" or "path|why not").
eg_trials() {
    local out rc
    : >"$RES/egress.paths"
    echo "direct|ok" >>"$RES/egress.paths"
    out=$(eg_in confine /bin/true 2>&1) && rc=0 || rc=$?
    if ((rc == 0)); then
        echo "confine|ok" >>"$RES/egress.paths"
    elif ((rc == 125)) && [[ $out == *"isn't built into this confine yet"* ]]; then
        log "  confine: $out"
        echo "confine|not measured: this confine refuses \`network.mode: proxy\` (${out//$'\n'/ })" >>"$RES/egress.paths"
    else
        die "confine run with a proxy profile failed (exit $rc): $out"
    fi
    local srt
    srt=$(PATH=$AGENT_PATH command -v srt || true)
    if [[ -z $srt ]]; then
        echo "srt|not measured: sandbox-runtime is not installed (npm install -g @anthropic-ai/sandbox-runtime; node >= 20.11)" >>"$RES/egress.paths"
        return
    fi
    srt_cmd=("$(command -v node)" "$(readlink -f "$srt")")
    if out=$(eg_in srt /bin/true 2>&1); then
        echo "srt|ok" >>"$RES/egress.paths"
    else
        log "  srt can't run here: $out"
        echo "srt|not measured: srt failed here: ${out//$'\n'/ }" >>"$RES/egress.paths"
    fi
}

eg_works() {
    grep -q "^$1|ok\$" "$RES/egress.paths"
}

# One round of PATH's transfers: EG_WARM + EG_CONNS fresh connections each
# of HTTP and HTTPS by one curl (timed by curl itself, so no launch cost
# enters; the first EG_WARM are dropped), then a 1 GiB download and upload.
eg_transfers() {
    local path=$1 round=$2 scheme out t n code bad
    for scheme in http https; do
        # Connection: close and no TLS session cache: every request makes a
        # new connection (and, through a proxy, a new tunnel) with a full
        # TLS 1.3 handshake; num_connects proves it.
        out=$(eg_in "$path" curl -sS --tlsv1.3 --no-sessionid --cacert "$EG_FILES/ca.pem" \
            -H 'Connection: close' -w '%{time_total} %{num_connects} %{http_code}\n' \
            -K "$EG_FILES/$scheme.curl" 2>&1) || die "$scheme connections through $path failed: $out"
        bad=$(awk -v n=$((EG_WARM + EG_CONNS)) 'NF != 3 || $2 != 1 || $3 != 200 {b++} END {print (b || NR != n) ? "yes" : ""}' <<<"$out")
        [[ -z $bad ]] || die "$scheme connections through $path: not every request made a new connection and got 200: $(head -n 5 <<<"$out")"
        tail -n "$EG_CONNS" <<<"$out" | while read -r t n code; do
            printf '%s %s %s %s\n' "$path" "$scheme" "$round" "$t"
        done >>"$RES/egress-conn.rows"
    done
    out=$(eg_in "$path" curl -sS -o /dev/null -w '%{http_code} %{size_download} %{speed_download}' \
        "http://$EG_NAME/1g" 2>&1) || die "the 1 GiB download through $path failed: $out"
    read -r code n t <<<"$out"
    [[ $code == 200 && $n == "$EG_BIG" ]] || die "the 1 GiB download through $path: $out"
    printf '%s download %s %s\n' "$path" "$round" "$t" >>"$RES/egress-xfer.rows"
    # No `Expect: 100-continue`: curl would wait a second for a 100 the sink
    # doesn't send.
    out=$(eg_in "$path" curl -sS -H 'Expect:' -T "$EG_FILES/www/1g" -o /dev/null \
        -w '%{http_code} %{size_upload} %{speed_upload}' "http://$EG_NAME:8080/up" 2>&1) ||
        die "the 1 GiB upload through $path failed: $out"
    read -r code n t <<<"$out"
    [[ $code == 204 && $n == "$EG_BIG" ]] || die "the 1 GiB upload through $path: $out"
    printf '%s upload %s %s\n' "$path" "$round" "$t" >>"$RES/egress-xfer.rows"
}

# Memory of the processes a launcher keeps outside the sandbox for the
# network, while the agent (`sleep 3`) idles: for confine, its supervisor's
# descendants in the supervisor's own network namespace (the egress proxy:
# init and the agent are in the sandbox's); for srt, node (its HTTP and
# SOCKS proxies) and socat (its relays, outside and inside).
eg_memory() {
    local path=$1
    (eg_in "$path" sleep 3 </dev/null >/dev/null 2>&1) &
    background_pid=$!
    local top="" pid tries all=() where launcher=confine
    [[ $path == srt ]] && launcher=node
    for ((tries = 0; tries < 100; tries++)); do
        # The launcher: the topmost descendant of that name (ip and env
        # exec into it).
        top=""
        mapfile -t all < <(descendants "$background_pid")
        for pid in "${all[@]}"; do
            [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$launcher" ]] && top=$pid && break
        done
        if [[ -n $top ]]; then
            mapfile -t all < <(descendants "$top")
            for pid in "${all[@]}"; do
                [[ $(cat "/proc/$pid/comm" 2>/dev/null) == sleep ]] && break 2
            done
        fi
        sleep 0.05
    done
    [[ -n $top ]] || die "memory: no $launcher process found under $path"
    # Let the proxy settle after the launch.
    sleep 0.5
    mapfile -t all < <(descendants "$top")
    local topnet
    topnet=$(readlink "/proc/$top/ns/net")
    for pid in "$top" "${all[@]}"; do
        local comm net
        comm=$(cat "/proc/$pid/comm" 2>/dev/null) || continue
        net=$(readlink "/proc/$pid/ns/net" 2>/dev/null) || continue
        where=inside
        [[ $net == "$topnet" ]] && where=outside
        case $path in
        confine) [[ $pid != "$top" && $where == outside && $comm != sleep ]] || continue ;;
        srt) [[ $comm == node || $comm == socat ]] || continue ;;
        esac
        printf '%s %s %s %s %s\n' "$path" "$pid" "$comm" "$where" "$(mem_of "$pid")"
    done >>"$RES/egress-mem.rows"
    wait "$background_pid" 2>/dev/null || true
    background_pid=""
}

# Every descendant of PID, one a line.
descendants() {
    local c
    local -a kids
    read -r -a kids < <(cat /proc/"$1"/task/*/children 2>/dev/null) || true
    for c in "${kids[@]}"; do
        echo "$c"
        descendants "$c"
    done
}

bench_egress() {
    log "6/6 egress: a test network, nginx and an upload sink in it"
    eg_setup_network
    eg_files
    eg_servers
    eg_trials
    local -a paths=(direct) launches=(bare confine-none)
    if eg_works confine; then paths+=(confine) launches+=(confine); fi
    if eg_works srt; then paths+=(srt) launches+=(srt); fi
    : >"$RES/egress-conn.rows"
    : >"$RES/egress-xfer.rows"
    : >"$RES/egress-mem.rows"
    local round path cmd runs
    local -a pre
    in_ns=(ip netns exec "$eg_client")
    for ((round = 1; round <= EG_ROUNDS; round++)); do
        log "6/6 round $round/$EG_ROUNDS: ${paths[*]}: $EG_CONNS HTTP and HTTPS connections, 1 GiB down and up; launches"
        while read -r path; do
            eg_transfers "$path" "$round"
        done < <(rotate "$round" "${paths[@]}")
        while read -r path; do
            runs=$EG_LAUNCH_RUNS
            [[ $path == srt ]] && runs=$EG_SRT_LAUNCH_RUNS
            mapfile -t pre < <(eg_prefix "$path")
            cmd=/bin/true
            [[ $path == bare ]] || cmd="$(cmdline "${pre[@]}") /bin/true"
            hf "egress-launch-$path-$round" "$(eg_who "$path")" "$runs" "$((round == 1 ? 3 : 1))" "$cmd"
        done < <(rotate "$round" "${launches[@]}")
    done
    in_ns=()
    log "6/6 memory of the proxies while the agent idles"
    if eg_works confine; then eg_memory confine; fi
    if eg_works srt; then eg_memory srt; fi
    {
        echo "eg_addr=$EG_ADDR"
        echo "eg_rounds=$EG_ROUNDS"
        echo "eg_conns=$EG_CONNS"
        echo "eg_launch_runs=$EG_LAUNCH_RUNS"
        echo "eg_srt_launch_runs=$EG_SRT_LAUNCH_RUNS"
        echo "nginx=$(nginx -v 2>&1 | sed 's|.*/||')"
        echo "curl=$(curl --version | awk 'NR == 1 {print $2}') ($(curl --version | awk 'NR == 1 {print $5}'))"
        if eg_works srt; then echo "srt=$("${srt_cmd[@]}" --version)"; fi
    } >"$RES/egress.facts"
    eg_cleanup
}

# -------------------------------------------------------------- report

machine_facts() {
    local landlock
    landlock=$("$CONFINE" probe --json 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin)
ll = d.get("landlock", {})
print(ll.get("abi", ll) if isinstance(ll, dict) else ll)' 2>/dev/null || echo "?")
    cat <<EOF
cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
cores=$(nproc)
memory=$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
kernel=$(uname -sr)
os=$(
    # shellcheck disable=SC1091
    . /etc/os-release && echo "$PRETTY_NAME")
landlock=$landlock
confine=$("$CONFINE" --version | cut -d' ' -f2) ($(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$REPO" diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || echo ', with uncommitted changes'))
rustc=$(rustc --version 2>/dev/null || echo '?')
hyperfine=$(hyperfine --version | cut -d' ' -f2)
bwrap=$(bwrap --version | cut -d' ' -f2)
firejail=$(firejail --version | awk 'NR == 1 {print $3}')
util_linux=$(unshare --version | awk '{print $NF}')
git=$(git --version | cut -d' ' -f3)
python3=$(PATH=$AGENT_PATH python3 --version | cut -d' ' -f2)
gcc=$(gcc -dumpfullversion)
make=$(make --version | awk 'NR == 1 {print $3}')
seccomp_instructions=$seccomp_instructions
bench_uid=$BENCH_UID
workspace=$WS
rounds=$ROUNDS
launch_runs=$LAUNCH_RUNS
launch_warmup=$LAUNCH_WARMUP
git_runs=$GIT_RUNS
py_runs=$PY_RUNS
make_runs=$MAKE_RUNS
EOF
}

write_report() {
    log "writing $OUT"
    python3 - "$RES" "$OUT" "$CONFINE" "$REPO" <<'PY'
import json, os, statistics, sys

res, out, confine_bin, repo = sys.argv[1:5]
facts = dict(l.split("=", 1) for l in open(os.path.join(res, "facts.txt")).read().splitlines() if "=" in l)

def times(prefix):
    """All runs' times (s) of the hyperfine exports PREFIX.json and PREFIX-ROUND.json."""
    t = []
    for f in sorted(os.listdir(res)):
        if f.startswith(prefix) and f.endswith(".json"):
            rest = f[len(prefix):-5]
            if rest == "" or (rest.startswith("-") and rest[1:].isdigit()):
                t += json.load(open(os.path.join(res, f)))["results"][0]["times"]
    return t

def stats(t):
    return {"median": statistics.median(t), "min": min(t), "max": max(t), "n": len(t)}

def ms(s):
    return f"{s * 1e3:.2f}" if s < 0.1 else f"{s * 1e3:.0f}"

def rel(p):
    """A command as the reader would type it: $WS for the workspace."""
    return p.replace(facts["workspace"], "$WS").replace(repo + "/", "")

verdicts = []
L = []
w = L.append

w("# Benchmarks")
w("")
w("What confine costs, next to what people would otherwise put in front of a tool call,")
w("measured in one run on one machine by [`scripts/bench.sh`](../scripts/bench.sh)")
w("(`sudo scripts/bench.sh`; it installs what it needs, builds confine with")
w("`cargo build --release` and rewrites this file). All times are wall-clock")
w("medians from hyperfine; min–max shows the spread. Lower is better.")
w("")

# The sections this run measured (CONFINE_BENCH_ONLY may leave some out).
ran = set(facts.get("sections", "").split(","))

def verdict(ok):
    return "—" if ok is None else "yes" if ok else "**no**"

# ---- launch
rows, launch, bare = [], {}, None
if "launch" in ran:
    rows = [l.rstrip("\n").split("|", 4) for l in open(os.path.join(res, "launch.rows"))]
    for id_, who, desc, cmd, status in rows:
        if status == "ok":
            launch[id_] = stats(times(f"launch-{id_}"))
    bare = launch["bare"]["median"]

def overhead(id_):
    return launch[id_]["median"] - bare

conf = launch.get("confine")
targets = []
if conf and "bwrap" in launch:
    ro = overhead("confine") / overhead("bwrap")
    r = conf["median"] / launch["bwrap"]["median"]
    targets.append(("confine's launch overhead ≤ bubblewrap's, both run by root (ratio ≤ 1.00)",
                    f"{ro:.2f} (of whole launches: {r:.2f})", ro <= 1.0))
if "bwrap-user" in launch and "confine-user" in launch:
    ro = overhead("confine-user") / overhead("bwrap-user")
    r = launch["confine-user"]["median"] / launch["bwrap-user"]["median"]
    targets.append(("… both run by the workspace owner, in user namespaces (ratio ≤ 1.00)",
                    f"{ro:.2f} (of whole launches: {r:.2f})", ro <= 1.0))
if conf and "confine-unreported" in launch:
    d = conf["median"] - launch["confine-unreported"]["median"]
    targets.append(("denial reporting adds nothing (within 0.25 ms) to a launch that is never denied (default vs "
                    "`on_violation: kill`, which installs no listener; per call: section 4)",
                    f"{d * 1e3:+.2f} ms", d <= 0.00025))
if conf and "unshare" in launch:
    d = conf["median"] - launch["unshare"]["median"]
    targets.append(("confine's launch within 2 ms of the `unshare` floor", f"{d * 1e3:+.2f} ms", d <= 0.002))

# ---- workloads
wrows = []
if "workloads" in ran:
    wrows = [(l.split("|", 4)[0], l.split("|", 4)[1], l.rstrip("\n").split("|", 4)[4])
             for l in open(os.path.join(res, "workload.rows"))]
work = {}
for id_, desc, cmd in wrows:
    work[id_] = {}
    for v in ("bare", "confine", "bwrap", "firejail"):
        t = times(f"work-{id_}-{v}")
        if t:
            work[id_][v] = stats(t)
worst = None
for id_, desc, cmd in wrows:
    r = work[id_]["confine"]["median"] / work[id_]["bare"]["median"]
    worst = r if worst is None else max(worst, r)
if worst is not None:
    parts = ", ".join(f"{i} {work[i]['confine']['median'] / work[i]['bare']['median']:.3f}×" for i, _, _ in wrows)
    targets.append(("syscall-heavy workloads under confine ≤ 1.03× bare", parts, worst <= 1.03))

# ---- memory
mem = []
if "memory" in ran:
    mem = [l.split() for l in open(os.path.join(res, "memory.txt")) if l.strip()]
conf_mem = [m for m in mem if m[0] == "confine"]
if len(conf_mem) >= 2:
    total = int(conf_mem[0][4]) + int(conf_mem[1][4])
    private = int(conf_mem[0][6]) + int(conf_mem[1][6])
    targets.append(("confine supervisor + init peak RSS (VmHWM) ≤ 4 MiB",
                    f"{total / 1024:.2f} MiB ({conf_mem[0][4]} + {conf_mem[1][4]} kB; "
                    f"of which their own memory, RssAnon: {private} kB)", total <= 4096))

w("## Targets")
w("")
w("| target | measured | met |")
w("| --- | --- | --- |")
for name, val, ok in targets:
    w(f"| {name} | {val} | {verdict(ok)} |")
w("")

w("## Machine")
w("")
w("| | |")
w("| --- | --- |")
for k, label in [("cpu", "CPU"), ("cores", "cores"), ("memory", "memory"), ("kernel", "kernel"),
                 ("os", "distribution"), ("landlock", "Landlock ABI"), ("confine", "confine"),
                 ("rustc", "rustc"), ("hyperfine", "hyperfine"), ("bwrap", "bubblewrap"),
                 ("firejail", "firejail"), ("srt", "sandbox-runtime (srt)"), ("nginx", "nginx"),
                 ("curl", "curl"), ("util_linux", "util-linux (unshare)"), ("git", "git"),
                 ("python3", "python3"), ("gcc", "gcc"), ("make", "make"),
                 ("load_before", "load average before"), ("load_after", "load average after"),
                 ("date", "date (UTC)"), ("duration", "bench duration")]:
    if k in facts:
        w(f"| {label} | {facts[k]} |")
w("")
w("The numbers are only comparable within this file: every row was measured in the")
w("same run. The machine may be shared (see the load averages), so everything was")
w("measured in interleaved rounds, every launcher once per round (each round starting")
w("with the next one), and the medians are over all rounds: load elsewhere spreads over")
w("all rows.")
if ran & {"launch", "workloads"}:
    w(f"Rounds in sections 1 and 2: {facts['rounds']}. Launches: {facts['launch_runs']} runs per round after")
    w(f"{facts['launch_warmup']} warm-up runs; workloads: the runs given in section 2, warmed up in the first round.")
w("")

if "launch" in ran:
    w("## 1. Launch overhead: `/bin/true`")
    w("")
    w("| launcher | run by | median ms | min–max ms | overhead over bare, ms | confine ÷ this |")
    w("| --- | --- | ---: | ---: | ---: | ---: |")
    for id_, who, desc, cmd, status in rows:
        by = "root" if who == "root" else f"uid {facts['bench_uid']}"
        if status != "ok":
            w(f"| {desc} | {by} | — | — | — | could not run: `{status[8:].strip()[:300]}` |")
            continue
        s = launch[id_]
        ratio = ""
        mine = "confine-user" if who == "bench" else "confine"
        if id_ not in ("bare", "confine", "confine-user", "confine-unreported") and mine in launch:
            ratio = f"{launch[mine]['median'] / s['median']:.2f}"
        w(f"| {desc} | {by} | {ms(s['median'])} | {ms(s['min'])}–{ms(s['max'])} | "
          f"{(s['median'] - bare) * 1e3:+.2f} | {ratio} |")
    w("")
    w("“confine ÷ this” compares confine run by the same caller (root, or the workspace owner).")
    w("")
    w("Commands, each run in the workspace `$WS` (`target/confine-bench/ws`, owned by uid")
    w(f"{facts['bench_uid']}) with the environment `PATH=/usr/local/bin:/usr/bin:/bin HOME=$WS LANG=C.UTF-8`:")
    w("")
    w("```sh")
    for id_, who, desc, cmd, status in rows:
        w(f"# {desc}")
        w(rel(cmd))
    w("```")
    w("")
    w(f"bubblewrap's `--seccomp 9` program has {facts['seccomp_instructions']} instructions, as many as")
    w("confine's allowlist and denylist together (`confine explain --json`:")
    w("`seccomp.allowlist_instructions + denylist_instructions`): load the syscall number, a chain")
    w("of `jeq nr, allow`, allow. firejail can't restrict the view to the granted paths the way")
    w("the others do: it shows the whole host read-only with the workspace writable.")
    w("")

if "workloads" in ran:
    w("## 2. Syscall-heavy workloads")
    w("")
    w("Each workload runs as the workspace owner in every column: bare, bubblewrap and")
    w("firejail are started by that user, confine by root (it switches to the owner).")
    w("")
    variants = [v for v in ("bare", "confine", "bwrap", "firejail") if any(v in work[i] for i, _, _ in wrows)]
    w("| workload | " + " | ".join(variants) + " |")
    w("| --- | " + " | ".join("---:" for _ in variants) + " |")
    for id_, desc, cmd in wrows:
        cells = []
        b = work[id_]["bare"]["median"]
        for v in variants:
            s = work[id_].get(v)
            if not s:
                cells.append("—")
                continue
            cell = f"{ms(s['median'])} ms ({ms(s['min'])}–{ms(s['max'])})"
            if v != "bare":
                cell += f", **{s['median'] / b:.3f}×**"
            cells.append(cell)
        w(f"| {desc} | " + " | ".join(cells) + " |")
    w("")
    w(f"Runs per launcher: git {int(facts['git_runs']) * int(facts['rounds'])}, python3 {int(facts['py_runs']) * int(facts['rounds'])}, make {int(facts['make_runs']) * int(facts['rounds'])}.")
    w("Medians (min–max) in ms; `N×` is the median over bare's median. A short command")
    w("pays the launch overhead of section 1 in full; what the sandbox costs while the")
    w("command runs is the rest:")
    w("")
    over = {"confine": "confine", "bwrap": "bwrap-user", "firejail": "firejail-user"}
    w("| workload, launch overhead subtracted | " + " | ".join(v for v in variants if v != "bare") + " |")
    w("| --- | " + " | ".join("---:" for v in variants if v != "bare") + " |")
    for id_, desc, cmd in wrows:
        b = work[id_]["bare"]["median"]
        cells = []
        for v in variants:
            if v == "bare":
                continue
            s = work[id_].get(v)
            if not s or over[v] not in launch:
                cells.append("—")
                continue
            cells.append(f"{(s['median'] - overhead(over[v])) / b:.3f}×")
        w(f"| {desc} | " + " | ".join(cells) + " |")
    w("")
    w("The same, paired by round: the median over the rounds of (this launcher's median in")
    w("the round ÷ bare's median in the same round), which cancels slow drifts of the")
    w("machine's speed between rounds:")
    w("")
    w("| workload, paired by round | " + " | ".join(v for v in variants if v != "bare") + " |")
    w("| --- | " + " | ".join("---:" for v in variants if v != "bare") + " |")
    for id_, desc, cmd in wrows:
        cells = []
        for v in variants:
            if v == "bare":
                continue
            ratios = []
            for r in range(1, int(facts["rounds"]) + 1):
                tb = json.load(open(os.path.join(res, f"work-{id_}-bare-{r}.json")))["results"][0]["times"]
                tv = json.load(open(os.path.join(res, f"work-{id_}-{v}-{r}.json")))["results"][0]["times"]
                if tb and tv:
                    ratios.append(statistics.median(tv) / statistics.median(tb))
            cells.append(f"{statistics.median(ratios):.3f}×" if ratios else "—")
        w(f"| {desc} | " + " | ".join(cells) + " |")
    w("")
    w("Commands, each prefixed by the launcher exactly as in section 1:")
    w("")
    w("```sh")
    for id_, desc, cmd in wrows:
        w(rel(cmd))
    w("```")
    w("")

if "memory" in ran:
    w("## 3. Peak memory of the launchers' own processes")
    w("")
    w("Sampled from `/proc/PID/status` of each launcher process while the agent (`sleep 3`)")
    w("runs. VmHWM is the peak resident set. It counts every mapped page of the program and")
    w("its shared libraries (RssFile: page-cache pages shared with every other process using")
    w("them), not only the process's own memory (RssAnon); those two are current values.")
    w("")
    w("| launcher | process | VmHWM kB | VmRSS kB | RssAnon kB | RssFile kB |")
    w("| --- | --- | ---: | ---: | ---: | ---: |")
    for name, depth, pid, comm, hwm, rss, anon, file in mem:
        role = f"{comm} (depth {depth})"
        if name == "confine":
            role = {"0": "supervisor", "1": "init (PID 1 inside)"}.get(depth, role)
        w(f"| {name} | {role} | {hwm} | {rss} | {anon} | {file} |")
    w("")

if "syscalls" in ran:
    w("## 4. Per-syscall cost")
    w("")
    w("One process calls each system call 2 000 000 times and times the loop itself, so no")
    w("launch cost enters; nanoseconds per call. `getppid` is the bare cost of entering the")
    w("kernel (under seccomp: the filters' action cache), `fstat(fd)` adds a file, and")
    w("`fstatat(path)` the path walk through the sandbox's mounts (a file in the workspace).")
    w("Each launcher ran the loop once per round, in rotated order; min is the quietest")
    w("round, and “paired” is the median over rounds of (launcher ÷ bare in the same round).")
    w("")
    rows = [l.split() for l in open(os.path.join(res, "syscalls.rows")) if l.strip()]
    calls = ["getppid", "fstat(fd)", "fstatat(path)"]
    by = {}
    for variant, rnd, *ns in rows:
        by.setdefault(variant, {})[rnd] = [float(x) for x in ns]
    w("| call | " + " | ".join(f"{v} min ns" for v in by) + " | " + " | ".join(f"{v} ÷ bare, paired" for v in by if v != "bare") + " |")
    w("| --- |" + " ---: |" * (len(by) * 2 - 1))
    for k, call in enumerate(calls):
        mins = [f"{min(r[k] for r in by[v].values()):.1f}" for v in by]
        paired = []
        for v in by:
            if v == "bare":
                continue
            ratios = [by[v][r][k] / by["bare"][r][k] for r in by[v] if r in by["bare"]]
            paired.append(f"{statistics.median(ratios):.3f}")
        w(f"| {call} | " + " | ".join(mins) + " | " + " | ".join(paired) + " |")
    w("")

targets_late = []
if "keys" in ran:
    w("## 5. Keystroke latency at a terminal")
    w("")
    w("A program on a pty of its own (as under a terminal emulator) puts its terminal in raw")
    w("mode and echoes with `cat`; 2000 keystrokes are timed each from the write on the")
    w("terminal's master to the echo coming back (after 100 unmeasured). `bare`: the program")
    w("on that pty itself. `confine`: `confine run` at that terminal, so the sandbox has a pty")
    w("of its own and the supervisor relays both ways (two more ptys' worth of hops).")
    w("`script`: util-linux `script`, the classic relay, for comparison. Microseconds;")
    w("the median over rounds of each round's median and 99th percentile.")
    w("")
    krows = [l.split() for l in open(os.path.join(res, "keys.rows")) if l.strip()]
    keys = {}
    for variant, rnd, med, p99 in krows:
        keys.setdefault(variant, []).append((float(med), float(p99)))
    w("| relay | median µs | p99 µs | added over bare, µs | confine ÷ this |")
    w("| --- | ---: | ---: | ---: | ---: |")
    kmed = {v: statistics.median(x[0] for x in r) for v, r in keys.items()}
    kp99 = {v: statistics.median(x[1] for x in r) for v, r in keys.items()}
    for v in keys:
        ratio = "" if v == "confine" else f"{kmed['confine'] / kmed[v]:.2f}"
        w(f"| {v} | {kmed[v]:.1f} | {kp99[v]:.1f} | {kmed[v] - kmed['bare']:+.1f} | {ratio} |")
    w("")
    added = kmed["confine"] - kmed["bare"]
    targets_late.append(("keystroke latency added by confine's terminal relay < 1 ms (median; p99 in section 5)",
                         f"+{added:.0f} µs (p99 {kp99['confine'] - kp99['bare']:+.0f} µs)", added < 1000))

if "control" in ran:
    w("## 7. The kill switch")
    w("")
    w("A sandbox of N sleeping processes with a cgroup (`--set limits.pids=4096`); the time")
    w("from `confine kill ID` (or `stop ID`: TERM, which `sleep` dies of) until it returns,")
    w("which is when the sandbox's supervisor has exited: no process of it left, its cgroup")
    w("removed, its exit record written. `freeze`: until every process is frozen.")
    w("Milliseconds; median (min–max) of the runs.")
    w("")
    crows = [l.split() for l in open(os.path.join(res, "control.rows")) if l.strip()]
    ctl = {}
    for verb, n, rnd, us in crows:
        ctl.setdefault((verb, int(n)), []).append(int(us) / 1e6)
    w("| action | 1 process | 50 | 200 |")
    w("| --- | ---: | ---: | ---: |")
    for verb in ("kill", "stop", "freeze"):
        cells = []
        for n in (1, 50, 200):
            t = ctl.get((verb, n), [])
            cells.append(f"{ms(statistics.median(t))} ({ms(min(t))}–{ms(max(t))})" if t else "—")
        w(f"| {verb} | " + " | ".join(cells) + " |")
    w("")
    k200 = ctl.get(("stop", 200))
    if k200:
        m = statistics.median(k200)
        targets_late.append(("`confine stop` of 200 processes returns with none left in < 50 ms (median)",
                             f"{m * 1e3:.1f} ms", m < 0.05))

if "egress" in ran:
    paths = dict(l.rstrip("\n").split("|", 1) for l in open(os.path.join(res, "egress.paths")))
    why = {p: v for p, v in paths.items() if v != "ok"}
    conn = {}
    for path, scheme, rnd, t in (l.split() for l in open(os.path.join(res, "egress-conn.rows")) if l.strip()):
        conn.setdefault((path, scheme), []).append(float(t))
    xfer = {}
    for path, way, rnd, bps in (l.split() for l in open(os.path.join(res, "egress-xfer.rows")) if l.strip()):
        xfer.setdefault((path, way), []).append(float(bps))
    egmem = [l.split() for l in open(os.path.join(res, "egress-mem.rows")) if l.strip()]
    shown = [p for p in ("direct", "confine", "srt") if paths.get(p) == "ok"]
    label = {"direct": "direct", "confine": "confine, `mode: proxy`", "srt": "sandbox-runtime (srt)"}
    MiB = 1 << 20

    w("## 6. Egress through a proxy")
    w("")
    w("An agent's connections to one allowed host, side by side: **direct** (no sandbox,")
    w("no proxy), **confine** with `network.mode: proxy` (the sandbox's only way out is")
    w("confine's egress proxy, which listens inside and dials from outside; DESIGN.md §9),")
    w("and Anthropic's **sandbox-runtime** (`srt`, its proxy allowing the same host; the")
    w("sandbox has no network and socat relays carry each connection from a port inside to")
    w("srt's proxy outside). The host lives in a test network made for the run: two network")
    w("namespaces joined by a veth pair, the launchers in one, nginx " + facts.get("nginx", "") + " and an upload")
    w(f"sink in the other on `{facts.get('eg_addr', '93.184.215.14')}`, an address that exists only there, named")
    w("`egress-bench.example` by `/etc/netns/…/hosts` (direct, and srt's proxy) and by the")
    w("profile's `hosts:` (confine). The clients are curl " + facts.get("curl", "") + ", using the proxy")
    w("variables each sandbox sets, in the workspace as its owner (confine started by root,")
    w("as in the other sections).")
    w("")
    w(f"Measured in {facts['eg_rounds']} round(s), every path once per round in rotated order. Per round and")
    w(f"path one curl makes {facts['eg_conns']} fresh connections each of HTTP and HTTPS (after 5 unmeasured),")
    w("each `GET` of a 3-byte file with `Connection: close`, HTTPS with a full TLS 1.3")
    w("handshake every time (no session resumption on either side), timed by curl")
    w("(`time_total`), so no launch cost enters; then one 1 GiB download (nginx, sendfile)")
    w("and one 1 GiB upload (a sink that splices the body to /dev/null), through the proxy")
    w("as plain HTTP.")
    w("")
    for p, v in why.items():
        w(f"- {label[p]}: {v}")
    if why:
        w("")

    def cmed(p, sch):
        return statistics.median(conn[(p, sch)])

    w("| new connection | " + " | ".join(f"{label[p]}, median ms (p90)" for p in shown)
      + " | " + " | ".join(f"{p}: added ms" for p in shown if p != "direct") + " |")
    w("| --- |" + " ---: |" * (2 * len(shown) - 1))
    for sch, name in (("http", "HTTP `GET`"), ("https", "HTTPS `GET`, TLS 1.3 handshake")):
        cells = []
        for p in shown:
            t = sorted(conn[(p, sch)])
            cells.append(f"{cmed(p, sch) * 1e3:.2f} ({t[int(len(t) * 0.9)] * 1e3:.2f})")
        adds = [f"{(cmed(p, sch) - cmed('direct', sch)) * 1e3:+.2f}" for p in shown if p != "direct"]
        w(f"| {name} | " + " | ".join(cells) + " | " + " | ".join(adds) + " |")
    w("")

    def xmed(p, way):
        return statistics.median(xfer[(p, way)])

    w("| 1 GiB, plain HTTP | " + " | ".join(f"{label[p]}, MiB/s" for p in shown)
      + " | " + " | ".join(f"{p} ÷ direct" for p in shown if p != "direct") + " |")
    w("| --- |" + " ---: |" * (2 * len(shown) - 1))
    for way in ("download", "upload"):
        cells = [f"{xmed(p, way) / MiB:.0f} ({min(xfer[(p, way)]) / MiB:.0f}–{max(xfer[(p, way)]) / MiB:.0f})"
                 for p in shown]
        ratios = [f"{xmed(p, way) / xmed('direct', way) * 100:.0f} %" for p in shown if p != "direct"]
        w(f"| {way} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
    w("")
    w("Medians over the rounds (min–max), from curl's `speed_download` / `speed_upload`.")
    w("")

    elaunch = {}
    for p in ("bare", "confine-none", "confine", "srt"):
        t = times(f"egress-launch-{p}")
        if t:
            elaunch[p] = stats(t)
    ldesc = {"bare": "nothing", "confine-none": "confine, `mode: none`",
             "confine": "confine, `mode: proxy`", "srt": "sandbox-runtime (srt)"}
    w("Launch of `/bin/true` in the client namespace (hyperfine; "
      f"{facts['eg_launch_runs']} runs per round, srt {facts['eg_srt_launch_runs']}):")
    w("")
    w("| launcher | median ms | min–max ms | over nothing, ms |")
    w("| --- | ---: | ---: | ---: |")
    for p, st in elaunch.items():
        d = st["median"] - elaunch["bare"]["median"]
        over = f"{d * 1e3:+.2f}" if d < 0.1 else f"{d * 1e3:+.0f}"
        w(f"| {ldesc[p]} | {ms(st['median'])} | {ms(st['min'])}–{ms(st['max'])} | {over} |")
    w("")

    w("Memory of the processes each keeps for the network while the agent (`sleep 3`) idles,")
    w("from `/proc/PID/status`: confine's are its supervisor's children outside the sandbox's")
    w("network namespace (the egress proxy); srt's are node (srt itself, whose HTTP and SOCKS")
    w("proxies run in it) and its socat relays, outside and inside the sandbox.")
    w("")
    w("| launcher | process | where | VmHWM kB | VmRSS kB | RssAnon kB | RssFile kB |")
    w("| --- | --- | --- | ---: | ---: | ---: | ---: |")
    for path, pid, comm, where, hwm, rss, anon, file in egmem:
        w(f"| {path} | {comm} | {where} | {hwm} | {rss} | {anon} | {file} |")
    if not any(m[0] == "confine" for m in egmem) and "confine" in shown:
        w("| confine | (no process outside the sandbox's network namespace found) | | | | | |")
    w("")

    # Targets: confine against direct; srt for comparison.
    def vs_srt(text):
        return f"; srt {text}" if "srt" in shown else ""
    if "confine" in shown:
        a = {sch: cmed("confine", sch) - cmed("direct", sch) for sch in ("http", "https")}
        srt_a = ({sch: cmed("srt", sch) - cmed("direct", sch) for sch in ("http", "https")}
                 if "srt" in shown else {})
        targets_late.append(("egress: added latency per new connection ≤ 1 ms (median), HTTP and HTTPS",
                             f"HTTP {a['http'] * 1e3:+.2f} ms, HTTPS {a['https'] * 1e3:+.2f} ms"
                             + (vs_srt(f"{srt_a['http'] * 1e3:+.2f} / {srt_a['https'] * 1e3:+.2f} ms") if srt_a else ""),
                             max(a.values()) <= 0.001))
        for way in ("download", "upload"):
            r = xmed("confine", way) / xmed("direct", way)
            sr = f"{xmed('srt', way) / xmed('direct', way) * 100:.0f} %" if "srt" in shown else ""
            targets_late.append((f"egress: 1 GiB {way} through the proxy ≥ 80 % of direct",
                                 f"{r * 100:.0f} % ({xmed('confine', way) / MiB:.0f} of "
                                 f"{xmed('direct', way) / MiB:.0f} MiB/s{vs_srt(sr)})", r >= 0.8))
        if "confine" in elaunch and "confine-none" in elaunch:
            d = elaunch["confine"]["median"] - elaunch["confine-none"]["median"]
            so = (f"srt's launch {(elaunch['srt']['median'] - elaunch['bare']['median']) * 1e3:+.0f} ms over nothing"
                  if "srt" in elaunch else "")
            targets_late.append(("egress: launch of `mode: proxy` within 1 ms of `mode: none`",
                                 f"{d * 1e3:+.2f} ms" + (f" ({so})" if so else ""), d <= 0.001))
        pm = [m for m in egmem if m[0] == "confine"]
        if pm:
            rss = sum(int(m[5]) for m in pm)
            hwm = sum(int(m[4]) for m in pm)
            srt_rss = sum(int(m[5]) for m in egmem if m[0] == "srt")
            targets_late.append(("egress: the proxy's RSS ≤ 8 MiB idle",
                                 f"{rss / 1024:.2f} MiB VmRSS (peak {hwm / 1024:.2f} MiB"
                                 + (f"; srt's node and socats {srt_rss / 1024:.0f} MiB" if srt_rss else "") + ")",
                                 rss <= 8 * 1024))
        else:
            targets_late.append(("egress: the proxy's RSS ≤ 8 MiB idle",
                                 "no proxy process found outside the sandbox", False))
    else:
        for name in ("egress: added latency per new connection ≤ 1 ms (median), HTTP and HTTPS",
                     "egress: 1 GiB download through the proxy ≥ 80 % of direct",
                     "egress: 1 GiB upload through the proxy ≥ 80 % of direct",
                     "egress: launch of `mode: proxy` within 1 ms of `mode: none`",
                     "egress: the proxy's RSS ≤ 8 MiB idle"):
            targets_late.append((name, "not measured (section 6 says why)", None))

# The targets table comes first; its last rows are known only now.
at = L.index("## Machine") - 1
for name, val, ok in targets_late:
    L.insert(at, f"| {name} | {val} | {verdict(ok)} |")
    at += 1

open(out, "w").write("\n".join(L) + "\n")
PY
}

# ------------------------------------------------------------------ main

main() {
    local started
    started=$(date +%s)
    require_root
    check_only
    install_tools
    build_confine
    trap cleanup EXIT
    make_scratch
    make_bench_user
    make_seccomp_filter
    make_sandbox_options
    exec 9<"$FILTER"
    local load_before
    load_before=$(cut -d' ' -f1-3 /proc/loadavg)
    local -a ran=()
    if runs launch || runs workloads || runs memory || runs syscalls; then launch_trials; fi
    # (Not `bench_x && ran+=`: set -e doesn't apply inside an && list.)
    if runs launch; then
        bench_launch
        ran+=(launch)
    fi
    if runs workloads; then
        make_workloads
        bench_workloads
        ran+=(workloads)
    fi
    if runs memory; then
        bench_memory
        ran+=(memory)
    fi
    if runs syscalls; then
        bench_syscalls
        ran+=(syscalls)
    fi
    if runs keys; then
        bench_keys
        ran+=(keys)
    fi
    if runs egress; then
        bench_egress
        ran+=(egress)
    fi
    if runs control; then
        bench_control
        ran+=(control)
    fi
    {
        machine_facts
        echo "sections=$(
            IFS=,
            echo "${ran[*]}"
        )"
        if [[ -e $RES/egress.facts ]]; then cat "$RES/egress.facts"; fi
        echo "load_before=$load_before"
        echo "load_after=$(cut -d' ' -f1-3 /proc/loadavg)"
        echo "date=$(date -u '+%Y-%m-%d %H:%M')"
        echo "duration=$(($(date +%s) - started)) s"
    } >"$RES/facts.txt"
    write_report
    log "done in $(($(date +%s) - started)) s: $OUT"
}

main "$@"

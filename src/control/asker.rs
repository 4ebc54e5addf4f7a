//! Which process of a sandbox holds a connection to the egress proxy, for
//! a `network.ask` request (DESIGN.md §12): the agent's socket is found in
//! the sandbox's `/proc/INIT/net/tcp` by its local port, then among the
//! descriptors of the processes in the sandbox's network namespace.
//! Best effort and bounded: `None` when it can't be found (the process
//! ended, or the connection came through a path that hides it).

use std::fs;

/// At most this many processes are looked through.
const MAX_PROCS: usize = 4096;

/// `COMM (pid N)` of the process in the sandbox whose TCP socket to the
/// proxy has the local port `port` on 127.0.0.1; N is its pid inside the
/// sandbox.
pub fn socket_owner(init: libc::pid_t, port: u16) -> Option<String> {
    let inode = inode_of(
        &fs::read_to_string(format!("/proc/{init}/net/tcp")).ok()?,
        port,
    )?;
    let want = format!("socket:[{inode}]");
    let netns = fs::read_link(format!("/proc/{init}/ns/net")).ok()?;
    for e in fs::read_dir("/proc").ok()?.flatten().take(MAX_PROCS * 4) {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        if fs::read_link(format!("/proc/{pid}/ns/net")).ok().as_ref() != Some(&netns) {
            continue;
        }
        let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        let holds = fds
            .flatten()
            .take(65536)
            .any(|fd| fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == want.as_str()));
        if holds {
            let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            let field = |k: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(k))
                    .map(|v| v.trim().to_string())
            };
            let comm = field("Name:").unwrap_or_default();
            // The last NSpid is the pid inside the sandbox.
            let inner = field("NSpid:")
                .and_then(|v| v.split_whitespace().last().map(str::to_string))
                .unwrap_or_else(|| pid.to_string());
            return Some(format!("{comm} (pid {inner})"));
        }
    }
    None
}

/// The inode of the socket bound to 127.0.0.1:`port`, from a
/// `/proc/net/tcp` text.
fn inode_of(table: &str, port: u16) -> Option<u64> {
    let local = format!("0100007F:{port:04X}");
    table.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.get(1) == Some(&local.as_str()))
            .then(|| f.get(9)?.parse().ok())
            .flatten()
            .filter(|&i| i != 0)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_the_socket_by_its_local_port() {
        let t = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:0C38 00000000:0000 0A 00000000:00000000 00:00000000 00000000 60123        0 1111 1 0 100 0 0 10 0\n\
   1: 0100007F:A1B2 0100007F:0C38 01 00000000:00000000 00:00000000 00000000 60123        0 2222 1 0 20 4 30 10 -1\n";
        assert_eq!(super::inode_of(t, 0xA1B2), Some(2222));
        assert_eq!(super::inode_of(t, 0x0C38), Some(1111));
        assert_eq!(super::inode_of(t, 1), None);
    }
}

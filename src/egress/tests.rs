//! In-process tests of the whole proxy: listeners on 127.0.0.1, the
//! runtime on a thread of its own, upstreams on loopback pinned in `hosts`.

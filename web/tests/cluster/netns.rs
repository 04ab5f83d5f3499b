//! Hosts on a private network: one Linux network namespace per host, each with its own
//! address on a bridge in the test's namespace, so that a test can cut the link between two
//! chosen hosts (and only those) while every process keeps running. The test itself reaches
//! every host through the bridge.
//!
//! A cut is a `prohibit` route to the other host's address on each side: connections between
//! the two fail at once with "permission denied", everything else flows (iproute2 only). A
//! one-way cut, where one host cannot start a conversation with another but answers it, is an
//! nftables rule on connection state in the first host's namespace. Needs root.
//! Used by `partition.rs` (a host cut off entirely) and `fencing.rs` (cuts between hosts).

use crate::harness::*;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// The cluster secret of every lab: its services listen beyond loopback, so they need one.
pub const SECRET: &str = "netns-lab-secret";

/// The `Authorization` header value for the lab's internal calls made by a test itself.
pub fn bearer() -> String {
    format!("Bearer {SECRET}")
}

/// The port every service of an exchange lab listens on (each host has its own address).
pub const PORT: u16 = 8080;
/// The heartbeat of an exchange lab.
pub const HEARTBEAT_MS: u64 = 100;

/// Runs `ip` with `args`; the error names the command and says what `ip` said.
pub fn ip(args: &[&str]) -> Result<(), String> {
    run_ip(args, || format!("`ip {}` failed", args.join(" ")))
}

/// Runs `nft` (nftables) with `args` inside namespace `ns`.
pub fn nft(ns: &str, args: &[&str]) -> Result<(), String> {
    let mut all = vec!["netns", "exec", ns, "nft"];
    all.extend_from_slice(args);
    run_ip(&all, || {
        format!(
            "`nft {}` in {ns} failed (is nftables installed? `.ci/run` installs it)",
            args.join(" ")
        )
    })
}

fn run_ip(args: &[&str], what: impl FnOnce() -> String) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `ip` (iproute2): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}: {}",
            what(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The namespaces, links and processes of one test; everything is removed on drop.
pub struct Lab {
    /// Prefix of every namespace and interface name (kernel names are at most 15 bytes).
    tag: String,
    /// The first three bytes of every address ("10.214.57").
    subnet: String,
    /// Host name -> last byte of its address.
    hosts: Vec<(String, u8)>,
    /// The test's files: config, data, one log per host.
    pub dir: tempfile::TempDir,
    /// The generated config file every process reads.
    pub config: PathBuf,
    procs: BTreeMap<String, Child>,
}

impl Lab {
    /// Builds the bridge and one namespace per host. `prefix` (two letters) and `net` (the
    /// second byte of the 10.x.y.0/24 subnet) keep tests of one run apart; the test process's
    /// id keeps runs apart.
    pub fn create(prefix: &str, net: u8, hosts: &[(&str, u8)]) -> Result<Lab, String> {
        let k = std::process::id() % 200 + 20;
        let lab = Lab {
            tag: format!("{prefix}{k}"),
            subnet: format!("10.{net}.{k}"),
            hosts: hosts.iter().map(|(h, b)| (h.to_string(), *b)).collect(),
            dir: tempfile::tempdir().map_err(|e| e.to_string())?,
            config: PathBuf::new(),
            procs: BTreeMap::new(),
        };
        // Whatever was made before an error is removed by drop.
        let br = lab.bridge();
        ip(&["link", "add", &br, "type", "bridge"])?;
        ip(&["addr", "add", &format!("{}.1/24", lab.subnet), "dev", &br])?;
        ip(&["link", "set", &br, "up"])?;
        for (host, byte) in &lab.hosts {
            let ns = lab.ns(host);
            let inner = format!("{}{host}i", lab.tag);
            let port = format!("{}{host}p", lab.tag);
            ip(&["netns", "add", &ns])?;
            ip(&["link", "add", &inner, "type", "veth", "peer", "name", &port])?;
            ip(&["link", "set", &inner, "netns", &ns])?;
            ip(&["link", "set", &port, "master", &br, "up"])?;
            let a = format!("{}.{byte}/24", lab.subnet);
            ip(&["-n", &ns, "addr", "add", &a, "dev", &inner])?;
            ip(&["-n", &ns, "link", "set", &inner, "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(lab)
    }

    fn bridge(&self) -> String {
        format!("{}br", self.tag)
    }

    /// A host's namespace.
    pub fn ns(&self, host: &str) -> String {
        format!("{}{host}", self.tag)
    }

    /// A host's IP address.
    pub fn ip_of(&self, host: &str) -> String {
        let byte = self
            .hosts
            .iter()
            .find(|(h, _)| h == host)
            .unwrap_or_else(|| panic!("unknown host {host}"))
            .1;
        format!("{}.{byte}", self.subnet)
    }

    /// `ip:port` of a host.
    pub fn addr(&self, host: &str, port: u16) -> String {
        format!("{}:{port}", self.ip_of(host))
    }

    /// Cuts (or, with `cut == false`, restores) the link between hosts `a` and `b` in both
    /// directions; every other link stays.
    pub fn set_cut(&self, a: &str, b: &str, cut: bool) -> Result<(), String> {
        for (from, to) in [(a, b), (b, a)] {
            let dst = format!("{}/32", self.ip_of(to));
            let verb = if cut { "add" } else { "del" };
            ip(&["-n", &self.ns(from), "route", verb, "prohibit", &dst])?;
        }
        Ok(())
    }

    /// Stops (or, with `blocked == false`, lets again) `from` starting connections to `to`,
    /// while `to` can still reach `from` both ways: nftables in `from`'s namespace refuses the
    /// connections `from` opens to `to` (and drops any it opened before), and lets every
    /// answer to a connection that `to` opened go back.
    pub fn set_one_way(&self, from: &str, to: &str, blocked: bool) -> Result<(), String> {
        let table = format!("cut_{to}");
        let ns = self.ns(from);
        if !blocked {
            return nft(&ns, &["delete", "table", "ip", &table]);
        }
        let dst = self.ip_of(to);
        nft(&ns, &["add", "table", "ip", &table])?;
        nft(
            &ns,
            &[
                "add",
                "chain",
                "ip",
                &table,
                "out",
                "{ type filter hook output priority 0 ; policy accept ; }",
            ],
        )?;
        let rule = |r: &str| {
            let mut args = vec!["add", "rule", "ip", &table, "out", "ip", "daddr", &dst];
            args.extend(r.split(' '));
            nft(&ns, &args)
        };
        rule("ct state new reject")?;
        rule("ct direction original drop")
    }

    /// Sets a host's link to the bridge down (cut off from everyone, its processes still
    /// running) or up again.
    pub fn set_link(&self, host: &str, up: bool) -> Result<(), String> {
        let port = format!("{}{host}p", self.tag);
        ip(&["link", "set", &port, if up { "up" } else { "down" }])
    }

    /// A whole exchange, started: hosts `cat`, `o1`..`o3` and the given front ends, with
    /// `frontend_keys` added to `[frontend]`; returns once replica 3 leads for every front end.
    pub fn exchange(tag: &str, net: u8, frontends: &[&str], frontend_keys: &str) -> Lab {
        let mut hosts = vec![("cat", 2), ("o1", 11), ("o2", 12), ("o3", 13)];
        hosts.extend(
            frontends
                .iter()
                .enumerate()
                .map(|(i, f)| (*f, 21 + i as u8)),
        );
        let mut lab = Lab::create(tag, net, &hosts).unwrap_or_else(|e| {
            panic!("cannot build this test's network (needs root, iproute2 and nftables): {e}")
        });
        nft(&lab.ns("cat"), &["list", "tables"])
            .unwrap_or_else(|e| panic!("this test cuts links with nftables: {e}"));
        let cat = lab.addr("cat", PORT);
        let f1 = lab.addr(frontends[0], PORT);
        let mut text = format!(
            "data_dir = {:?}\nlog = \"info\"\n\n[catalog]\naddr = {cat:?}\n\n\
             [frontend]\naddr = {f1:?}\nheartbeat_ms = {HEARTBEAT_MS}\nfailover_timeout_ms = 10000\n{frontend_keys}\n\n",
            lab.dir.path().join("data"),
        );
        for id in 1..=3u64 {
            let a = lab.addr(&format!("o{id}"), PORT);
            text.push_str(&format!("[[replicas]]\nid = {id}\naddr = {a:?}\n\n"));
        }
        lab.write_config(&text);
        lab.start("cat", &["catalog"], &cat);
        for id in 1..=3u64 {
            let a = lab.addr(&format!("o{id}"), PORT);
            lab.start(&format!("o{id}"), &["order", "--id", &id.to_string()], &a);
        }
        for f in frontends {
            let a = lab.addr(f, PORT);
            lab.start(f, &["frontend", "--addr", &a], &a);
        }
        for f in frontends {
            let a = lab.addr(f, PORT);
            wait_for(
                "replica 3 to lead",
                std::time::Duration::from_secs(20),
                || serving_leader(&a).filter(|(l, _)| *l == 3),
            );
        }
        lab
    }

    /// Writes the config file every process reads, with the lab's cluster secret.
    pub fn write_config(&mut self, text: &str) {
        self.config = self.dir.path().join("tradenet.toml");
        let text = format!("{text}\n[cluster]\nsecret = {SECRET:?}\n");
        std::fs::write(&self.config, text).unwrap();
    }

    /// Starts `tradenet <args>` inside `host`'s namespace and waits until `/ready` at `health`
    /// answers 200. `ip netns exec` execs the binary, so the child's pid is the service's.
    pub fn start(&mut self, host: &str, args: &[&str], health: &str) {
        let log = std::fs::File::create(self.dir.path().join(format!("{host}.log"))).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(host)])
            .arg(env!("CARGO_BIN_EXE_tradenet"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.procs.insert(host.to_string(), child);
        wait_for(&format!("{host} healthy at {health}"), READY, || {
            (try_get(health, "/ready")?.0 == 200).then_some(())
        });
    }

    /// A host's log so far.
    pub fn log(&self, host: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{host}.log"))).unwrap_or_default()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in self.procs.values_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            for (host, _) in &self.hosts {
                let log = self.log(host);
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!("---- {host} (last lines) ----");
                for line in tail.into_iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
        for (host, _) in &self.hosts {
            let _ = ip(&["netns", "del", &self.ns(host)]);
            let _ = ip(&["link", "del", &format!("{}{host}p", self.tag)]);
        }
        let _ = ip(&["link", "del", &self.bridge()]);
    }
}

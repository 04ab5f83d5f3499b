//! `tradenet status`: every process of a configuration asked for `/ready` and `/status` at
//! once, printed as a table (like `etcdctl endpoint status -w table`) or as JSON. It needs no
//! launcher: it reads the addresses from the configuration, so it works against `up`, systemd
//! units or containers alike.

use serde::Serialize;
use serde_json::Value;
use std::time::Duration;
use tradenet_actors::wire::{self, DataBody};

use crate::config::{url, Config};

/// One process, as `status` reports it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    /// `catalog`, `order-N` or `frontend`.
    pub name: String,
    /// Where the configuration says it listens.
    pub addr: String,
    /// It answered `/status`.
    pub up: bool,
    /// Its `/ready` answered 200.
    pub ready: bool,
    /// Why it is not ready, from its `/ready` (or the connection error).
    pub reason: Option<String>,
    /// `leader`, `follower`, `recovering`, `taking_over`, `catalog` or `front end`.
    pub role: String,
    /// The epoch it is in.
    pub epoch: Option<u64>,
    /// A replica's last order, the catalog's last trade.
    pub last: Option<u64>,
    /// A follower's distance behind the leader, in orders.
    pub behind: Option<u64>,
    /// The `data` of its `/status`.
    pub status: Option<Value>,
}

/// What one process answered: its `/status` data and its `/ready` (or why not).
struct Asked {
    name: String,
    addr: String,
    status: Result<Value, String>,
    ready: Result<(), String>,
}

/// Asks every process of `config` (see `ask`).
pub fn collect(config: &Config, timeout: Duration) -> Vec<Row> {
    let mut targets: Vec<(String, String)> = config
        .catalog_members()
        .into_iter()
        .map(|c| (config.catalog_name(c.id), c.addr))
        .collect();
    targets.extend(
        config
            .replicas
            .iter()
            .map(|r| (format!("order-{}", r.id), r.addr.clone())),
    );
    targets.push(("frontend".to_string(), config.frontend.addr.clone()));
    ask(targets, timeout)
}

/// Asks each (name, address) for `/ready` and `/status`, all at once, at most `timeout` per
/// call (the console's overview asks the launcher's running processes this way too).
pub fn ask(targets: Vec<(String, String)>, timeout: Duration) -> Vec<Row> {
    let agent = crate::http::blocking_agent(timeout, timeout);
    let asked: Vec<Asked> = std::thread::scope(|scope| {
        let handles: Vec<_> = targets
            .into_iter()
            .map(|(name, addr)| {
                let agent = agent.clone();
                scope.spawn(move || {
                    let base = url(&addr);
                    let status = agent
                        .get(&format!("{base}{}", wire::STATUS))
                        .call()
                        .map_err(|e| e.to_string())
                        .and_then(|r| {
                            r.into_json::<DataBody<Value>>()
                                .map(|b| b.data)
                                .map_err(|e| e.to_string())
                        });
                    let ready = match agent.get(&format!("{base}{}", wire::READY)).call() {
                        Ok(_) => Ok(()),
                        Err(ureq::Error::Status(_, r)) => Err(r
                            .into_json::<Value>()
                            .ok()
                            .and_then(|v| v["error"]["message"].as_str().map(String::from))
                            .unwrap_or_else(|| "not ready".into())),
                        Err(ureq::Error::Transport(t)) => {
                            Err(format!("no answer ({})", t.kind()).to_lowercase())
                        }
                    };
                    Asked {
                        name,
                        addr,
                        status,
                        ready,
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a status thread panicked"))
            .collect()
    });
    rows(asked)
}

/// Turns the answers into rows: roles, epochs, last orders, and each follower's distance
/// behind the leader the front end names (or the replica that says it leads).
fn rows(asked: Vec<Asked>) -> Vec<Row> {
    let statuses: Vec<Option<&Value>> = asked.iter().map(|a| a.status.as_ref().ok()).collect();
    let leader_last = statuses
        .iter()
        .flatten()
        .filter(|s| s["role"] == "leader")
        .filter_map(|s| s["last"]["number"].as_u64())
        .max();
    asked
        .iter()
        .map(
            |Asked {
                 name,
                 addr,
                 status,
                 ready,
             }| {
                let s = status.as_ref().ok();
                let (role, epoch, last) = match (name.as_str(), s) {
                    (_, None) => (String::new(), None, None),
                    (n, Some(s)) if n.starts_with("catalog") => (
                        // A group member says its role (primary, catching_up, standby).
                        s["node"]["role"]
                            .as_str()
                            .map_or("catalog".to_string(), |r| format!("catalog {r}")),
                        s["epoch"].as_u64(),
                        s["last_trade"].as_u64(),
                    ),
                    ("frontend", Some(s)) => ("front end".to_string(), s["epoch"].as_u64(), None),
                    (_, Some(s)) => (
                        s["role"].as_str().unwrap_or("?").to_string(),
                        s["term"]["epoch"].as_u64(),
                        s["last"]["number"].as_u64(),
                    ),
                };
                let behind = match (name.starts_with("order-"), role.as_str(), leader_last) {
                    (true, "follower" | "recovering", Some(l)) => {
                        Some(l.saturating_sub(last.unwrap_or(0)) + u64::from(last.is_none()))
                    }
                    _ => None,
                };
                Row {
                    name: name.clone(),
                    addr: addr.clone(),
                    up: s.is_some(),
                    ready: ready.is_ok(),
                    reason: ready.as_ref().err().cloned(),
                    role,
                    epoch,
                    last,
                    behind,
                    status: s.cloned(),
                }
            },
        )
        .collect()
}

/// The rows as a table with a frame, like `etcdctl ... -w table`.
pub fn table(rows: &[Row]) -> String {
    let header = [
        "PROCESS", "ADDRESS", "UP", "READY", "ROLE", "EPOCH", "LAST", "BEHIND", "NOTE",
    ];
    let opt = |v: Option<u64>| v.map_or(String::new(), |v| v.to_string());
    let cells: Vec<[String; 9]> = rows
        .iter()
        .map(|r| {
            [
                r.name.clone(),
                r.addr.clone(),
                if r.up { "yes" } else { "no" }.to_string(),
                if r.ready { "yes" } else { "no" }.to_string(),
                r.role.clone(),
                opt(r.epoch),
                opt(r.last),
                opt(r.behind),
                r.reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = {
        let parts: Vec<String> = widths.iter().map(|w| "-".repeat(w + 2)).collect();
        format!("+{}+\n", parts.join("+"))
    };
    let fmt_row = |row: &[String]| {
        let parts: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!(" {c:<w$} "))
            .collect();
        format!("|{}|\n", parts.join("|"))
    };
    let mut out = line.clone();
    out.push_str(&fmt_row(&header.map(String::from)));
    out.push_str(&line);
    for row in &cells {
        out.push_str(&fmt_row(row));
    }
    out.push_str(&line);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rows_read_roles_epochs_and_how_far_followers_are_behind() {
        let replica = |role: &str, last: Option<u64>| json!({"role": role, "term": {"epoch": 6}, "last": last.map(|n| json!({"number": n, "epoch": 6}))});
        let asked = |name: &str, status: Result<Value, &str>, ready: Result<(), &str>| Asked {
            name: name.into(),
            addr: "a:1".into(),
            status: status.map_err(String::from),
            ready: ready.map_err(String::from),
        };
        let asked = vec![
            asked("catalog", Ok(json!({"epoch": 6, "last_trade": 41})), Ok(())),
            asked(
                "catalog-2",
                Ok(json!({"epoch": 6, "last_trade": 41, "node": {"role": "standby"}})),
                Ok(()),
            ),
            asked("order-1", Ok(replica("follower", Some(37))), Ok(())),
            asked("order-2", Err("refused"), Err("connection refused")),
            asked("order-3", Ok(replica("leader", Some(40))), Ok(())),
            asked(
                "frontend",
                Ok(json!({"epoch": 6, "leader": 3})),
                Err("no leader"),
            ),
        ];
        let rows = rows(asked);
        assert_eq!(
            (rows[0].role.as_str(), rows[0].epoch, rows[0].last),
            ("catalog", Some(6), Some(41))
        );
        assert_eq!(rows[1].role, "catalog standby");
        let rows = &rows[1..];
        assert_eq!(rows[1].behind, Some(3));
        assert!(!rows[2].up && !rows[2].ready);
        assert_eq!(rows[2].reason.as_deref(), Some("connection refused"));
        assert_eq!((rows[3].role.as_str(), rows[3].behind), ("leader", None));
        assert!(rows[4].up && !rows[4].ready);
        let t = table(rows);
        assert!(t.contains("| order-1 ") && t.contains("| no leader"), "{t}");
        assert_eq!(
            t.lines()
                .map(|l| l.chars().count())
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
            1,
            "every line of the table is as wide: {t}"
        );
    }
}

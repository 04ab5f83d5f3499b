//! The supervisor's rule, pure: which replicas are live after a round of heartbeats, who
//! leads, and who must be told the term. The front end's supervisor actor (and the
//! simulator's front ends) send the heartbeats and announcements; this decides.
//!
//! Leader choice: the highest live id leads; a change of leader opens a new epoch above every
//! epoch any replica has accepted; a live replica that does not know the current term is told
//! it again. A follower the leader reports lagging (it does not hold every acknowledged order)
//! is not live until it is in step again.
//!
//! Several front ends may run this independently. They see the same replicas, so they pick
//! the same leader; a replica accepts one leader per epoch and refuses older epochs, so a
//! front end with a stale view cannot make two leaders write.

use super::msg::{NodeId, ReplicaState, Role, Term};
use crate::types::Epoch;
use serde::{Deserialize, Serialize};

/// What a heartbeat learned about one replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    /// Replica id.
    pub id: u64,
    /// The term the replica has accepted.
    pub term: Term,
    /// The replica says it is leading (or taking over) in that term. A replica that restarted
    /// still has its old term on disk but leads nothing until a term is announced again.
    pub leading: bool,
}

/// The supervisor's decision after a round of heartbeats.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The leader, if any replica is live.
    pub leader: Option<u64>,
    /// The current epoch.
    pub epoch: Epoch,
    /// True when the leader changed in this round (an election happened).
    pub elected: bool,
    /// True when this round opened a new epoch (false: an existing term was adopted).
    pub new_epoch: bool,
    /// Live replicas that must be told the current term.
    pub announce_to: Vec<u64>,
}

/// The supervisor's view of leadership.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Election {
    leader: Option<u64>,
    epoch: Epoch,
    /// Epochs opened for leader `l` are `≡ l (mod stride)`, so two front ends that pick
    /// different leaders at the same moment never open the same epoch (one leader per epoch).
    /// 0 or 1: any epoch.
    stride: u64,
    /// The newest epoch seen outside the replicas' terms (the catalog's fence).
    seen_elsewhere: Epoch,
}

impl Election {
    /// An election among replicas whose ids are below `stride` (the largest id plus one).
    pub fn with_stride(stride: u64) -> Election {
        Election {
            stride,
            ..Election::default()
        }
    }

    /// Records an epoch seen elsewhere (the catalog's fence): the next epoch opened goes above
    /// it. The current leader and epoch stay until the next change.
    pub fn see(&mut self, epoch: Epoch) {
        self.seen_elsewhere = self.seen_elsewhere.max(epoch);
    }

    /// Follows a term the group already runs under (never going back in epoch). True when the
    /// leader changed.
    pub fn adopt(&mut self, term: Term) -> bool {
        if term.epoch < self.epoch {
            return false;
        }
        let changed = self.leader != term.leader;
        self.leader = term.leader;
        self.epoch = term.epoch;
        changed
    }

    /// The first epoch above `base` that belongs to `leader`.
    fn epoch_for(&self, base: Epoch, leader: u64) -> Epoch {
        let next = base.saturating_add(1);
        if self.stride <= 1 {
            return next;
        }
        let want = leader % self.stride;
        let have = next % self.stride;
        next.saturating_add((want + self.stride - have) % self.stride)
    }

    /// Current leader.
    pub fn leader(&self) -> Option<u64> {
        self.leader
    }

    /// Current epoch.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// Decides from the replicas that answered (ready to serve) in the last round.
    pub fn decide(&mut self, live: &[Seen]) -> Decision {
        let all: Vec<u64> = live.iter().map(|s| s.id).collect();
        self.decide_among(live, &all)
    }

    /// Like `decide`, but only `candidates` may lead; every replica in `live` counts for the
    /// epochs and the announcements.
    pub fn decide_among(&mut self, live: &[Seen], candidates: &[u64]) -> Decision {
        let candidate = live
            .iter()
            .map(|s| s.id)
            .filter(|id| candidates.contains(id))
            .max();
        let newest = live.iter().map(|s| s.term).max_by_key(|t| t.epoch);
        let mut elected = false;
        let epoch_before = self.epoch;
        match (candidate, newest) {
            (None, _) => self.leader = None,
            (Some(c), Some(t))
                if t.epoch >= self.epoch
                    && t.leader == Some(c)
                    && live.iter().any(|s| s.id == c && s.leading && s.term == t) =>
            {
                // Someone (this front end earlier, or another one) already made `c` leader.
                elected = self.leader != Some(c);
                self.leader = Some(c);
                self.epoch = t.epoch;
            }
            (Some(c), newest) => {
                let leads = live.iter().any(|s| {
                    s.id == c && s.leading && s.term.epoch == self.epoch && s.term.leader == Some(c)
                });
                // Our leader has not heard our term yet (an announcement still on its way, or
                // lost): tell it again rather than open another epoch.
                let not_told_yet = self.leader == Some(c)
                    && live.iter().any(|s| s.id == c && s.term.epoch < self.epoch);
                if self.leader != Some(c)
                    || (!leads && !not_told_yet)
                    || newest.is_some_and(|t| t.epoch > self.epoch)
                {
                    let seen = newest.map_or(0, |t| t.epoch).max(self.seen_elsewhere);
                    self.epoch = self.epoch_for(self.epoch.max(seen), c);
                    self.leader = Some(c);
                    elected = true;
                }
            }
        }
        let term = Term {
            epoch: self.epoch,
            leader: self.leader,
        };
        Decision {
            leader: self.leader,
            epoch: self.epoch,
            elected,
            new_epoch: self.epoch > epoch_before && newest.is_none_or(|t| t.epoch < self.epoch),
            announce_to: if self.leader.is_some() {
                live.iter()
                    .filter(|s| s.term != term)
                    .map(|s| s.id)
                    .collect()
            } else {
                Vec::new()
            },
        }
    }
}

/// How the supervisor sees one replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Seeing {
    /// Its own role, as it reported it.
    Role(Role),
    /// Answers, but the leader does not wait for it (it lacks acknowledged orders).
    Lagging,
    /// Did not answer the last heartbeat.
    Down,
}

impl Seeing {
    /// The word used in `/status` and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Seeing::Role(r) => r.as_str(),
            Seeing::Lagging => "lagging",
            Seeing::Down => "down",
        }
    }
}

/// What the supervisor knows of one replica.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaView {
    /// Replica id.
    pub id: NodeId,
    /// leader, follower, taking_over, recovering, lagging or down.
    #[serde(with = "seeing_word")]
    pub role: Seeing,
    /// Answered the last heartbeat, is ready, and is not lagging.
    pub live: bool,
    /// Last order number it holds.
    pub last_order: Option<u64>,
    /// The epoch it has accepted.
    pub epoch: Option<Epoch>,
}

mod seeing_word {
    use super::*;
    pub fn serialize<S: serde::Serializer>(v: &Seeing, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v.as_str())
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Seeing, D::Error> {
        let w = String::deserialize(d)?;
        Ok(match w.as_str() {
            "lagging" => Seeing::Lagging,
            "down" => Seeing::Down,
            other => Seeing::Role(
                serde_json::from_value(serde_json::Value::String(other.into()))
                    .map_err(serde::de::Error::custom)?,
            ),
        })
    }
}

/// The supervisor's state: the election and its view of every replica.
#[derive(Clone, Debug)]
pub struct Supervision {
    election: Election,
    views: Vec<ReplicaView>,
    /// A replica that has not heard from its leader (or the catalog) for longer than this (ms)
    /// no longer counts as hearing it.
    silence_limit: u64,
    /// The group's leader is alive, but this front end cannot reach it.
    unreachable_here: bool,
}

impl Supervision {
    /// A supervisor of the replicas `ids`, none seen yet; `silence_limit` (ms, a few
    /// heartbeats) is how long a replica may not hear from its leader or the catalog and still
    /// count as hearing it.
    pub fn new(ids: &[NodeId], silence_limit: u64) -> Supervision {
        Supervision {
            silence_limit,
            unreachable_here: false,
            election: Election::with_stride(ids.iter().max().map_or(1, |m| m + 1)),
            views: ids
                .iter()
                .map(|&id| ReplicaView {
                    id,
                    role: Seeing::Down,
                    live: false,
                    last_order: None,
                    epoch: None,
                })
                .collect(),
        }
    }

    /// The current leader and epoch.
    pub fn leader(&self) -> Option<(NodeId, Epoch)> {
        self.election.leader().map(|l| (l, self.election.epoch()))
    }

    /// Followers that can answer order reads: live (ready, and not lagging by the leader's
    /// account) followers in the current leader's epoch, as the last heartbeat saw them. Any
    /// replica may show an order it holds durably (rule 8), so this only picks the replicas
    /// likely to hold the recent ones; one that does not hold an order says so, and the front
    /// end asks the leader.
    pub fn readers(&self) -> Vec<NodeId> {
        let Some((leader, epoch)) = self.leader() else {
            return Vec::new();
        };
        self.views
            .iter()
            .filter(|v| {
                v.id != leader
                    && v.live
                    && v.role == Seeing::Role(Role::Follower)
                    && v.epoch == Some(epoch)
            })
            .map(|v| v.id)
            .collect()
    }

    /// The current epoch.
    pub fn epoch(&self) -> Epoch {
        self.election.epoch()
    }

    /// True when the group's leader is alive (its followers hear it) but this front end
    /// cannot reach it: orders here get a quick 503 rather than a leadership fight.
    pub fn leader_unreachable_here(&self) -> bool {
        self.unreachable_here
    }

    /// Every replica's view, in configuration order.
    pub fn views(&self) -> &[ReplicaView] {
        &self.views
    }

    /// The decision after a round, from the group's evidence rather than this front end's
    /// view alone:
    ///
    /// 1. The group's leader is the leader of the newest term a reachable replica holds, when
    ///    this front end reaches it leading, or enough followers (with it, a majority) heard
    ///    from it within the silence limit.
    /// 2. Such a leader is followed, reachable from here or not; an unreachable one makes this
    ///    front end answer orders with a quick 503, never start a fight. Unless it is cut from
    ///    the catalog while another live replica is not: then it is deposed.
    /// 3. A higher id that is live for the group (it hears that leader and the catalog, and is
    ///    in step) takes over: highest-id live stays the rule.
    /// 4. Without a group leader (or after deposing it), the highest live id that hears the
    ///    catalog leads (any live id when none does), in a new epoch.
    fn decide_with_evidence(&mut self, states: &[Option<ReplicaState>], live: &[Seen]) -> Decision {
        let limit = self.silence_limit;
        let quorum_followers = (self.views.len() / 2).max(1);
        let reached: Vec<&ReplicaState> = states.iter().flatten().collect();
        // Replicas ping the catalog four times a heartbeat: half the silence limit (a
        // heartbeat and a half, six missed pings) is silence, so a leader cut from the catalog
        // is replaced within three heartbeats of the cut.
        let catalog_limit = limit / 2;
        let reaches_catalog =
            |s: &ReplicaState| s.catalog_silence_ms.is_some_and(|ms| ms <= catalog_limit);
        let newest = reached
            .iter()
            .map(|s| s.term)
            .filter(|t| t.leader.is_some() && t.epoch >= self.election.epoch())
            .max_by_key(|t| t.epoch);
        let group_leader = newest.and_then(|t| {
            let g = t.leader?;
            let here = reached
                .iter()
                .find(|s| s.id == g && s.term == t && s.role.is_leading() && s.ready)
                .copied();
            let heard = reached
                .iter()
                .filter(|s| {
                    s.id != g && s.term == t && s.leader_silence_ms.is_some_and(|ms| ms <= limit)
                })
                .count();
            // Reached but not leading it (restarted, or stepped down): not the group's leader,
            // whatever its followers heard before.
            let reached_not_leading = here.is_none() && reached.iter().any(|s| s.id == g);
            (here.is_some() || (heard >= quorum_followers && !reached_not_leading))
                .then_some((t, here))
        });
        let catalog_live: Vec<NodeId> = live
            .iter()
            .filter(|s| reached.iter().any(|x| x.id == s.id && reaches_catalog(x)))
            .map(|s| s.id)
            .collect();
        match group_leader {
            Some((_, Some(g)))
                if !reaches_catalog(g) && catalog_live.iter().any(|id| *id != g.id) =>
            {
                log::warn!(
                    "replica {} leads but has not heard from the catalog for {} while other replicas have; choosing another leader",
                    g.id,
                    g.catalog_silence_ms
                        .map_or("ever".to_string(), |ms| format!("{ms} ms"))
                );
                self.unreachable_here = false;
                self.election.decide_among(live, &catalog_live)
            }
            // A higher id that is live for the group (it hears this leader and the catalog, and
            // is in step) takes over: highest-id live stays the rule.
            Some((t, _))
                if live.iter().any(|s| {
                    s.id > t.leader.expect("a group leader")
                        && catalog_live.contains(&s.id)
                        && reached.iter().any(|x| {
                            x.id == s.id
                                && x.term == t
                                && x.leader_silence_ms.is_some_and(|ms| ms <= limit)
                        })
                }) =>
            {
                self.unreachable_here = false;
                self.election.decide_among(live, &catalog_live)
            }
            Some((t, here)) => {
                self.unreachable_here = here.is_none();
                let elected = self.election.adopt(t);
                Decision {
                    leader: t.leader,
                    epoch: t.epoch,
                    elected,
                    new_epoch: false,
                    announce_to: live.iter().filter(|s| s.term != t).map(|s| s.id).collect(),
                }
            }
            None => {
                self.unreachable_here = false;
                if catalog_live.is_empty() {
                    self.election.decide(live)
                } else {
                    self.election.decide_among(live, &catalog_live)
                }
            }
        }
    }

    /// Folds one round of heartbeats (one answer or `None` per replica, in the order given to
    /// `new`) into the views and the election; returns who must be told which term.
    pub fn observe(&mut self, states: &[Option<ReplicaState>]) -> Vec<(NodeId, Term)> {
        let current = self.election.leader();
        let lagging: Vec<NodeId> = states
            .iter()
            .flatten()
            .filter(|s| s.role == Role::Leader && Some(s.id) == current)
            .flat_map(|s| s.lagging.iter().copied())
            .collect();
        let mut live = Vec::new();
        for (view, state) in self.views.iter_mut().zip(states) {
            let was_live = view.live;
            match state {
                Some(s) if s.id != view.id => {
                    log::warn!(
                        "the replica at id {}'s address says it is replica {}",
                        view.id,
                        s.id
                    );
                    view.live = false;
                    view.role = Seeing::Down;
                }
                Some(s) => {
                    view.last_order = s.last.map(|e| e.number);
                    view.epoch = Some(s.term.epoch);
                    if s.ready && lagging.contains(&s.id) {
                        view.live = false;
                        view.role = Seeing::Lagging;
                    } else {
                        view.live = s.ready;
                        view.role = Seeing::Role(s.role);
                        if s.ready {
                            live.push(Seen {
                                id: view.id,
                                term: s.term,
                                leading: s.role.is_leading(),
                            });
                        }
                    }
                }
                None => {
                    view.live = false;
                    view.role = Seeing::Down;
                }
            }
            if was_live != view.live {
                log::info!(
                    "replica {} is {}",
                    view.id,
                    if view.live { "up" } else { view.role.as_str() }
                );
            }
        }
        let before = self.election.leader();
        // An epoch the catalog has seen (it fenced a replica with it) is an epoch seen: new
        // epochs go above it.
        if let Some(fence) = states
            .iter()
            .flatten()
            .filter_map(|s| s.catalog_epoch)
            .max()
        {
            self.election.see(fence);
        }
        let decision = self.decide_with_evidence(states, &live);
        let ids: Vec<NodeId> = live.iter().map(|s| s.id).collect();
        if decision.elected || before != decision.leader {
            match decision.leader {
                Some(l) if !decision.new_epoch => log::info!(
                    "replica {l} leads epoch {} (an existing term, adopted); live replicas {ids:?}",
                    decision.epoch
                ),
                Some(l) => log::info!(
                    "election: replica {l} leads in epoch {} (was {}); live replicas {ids:?}",
                    decision.epoch,
                    before.map_or("none".into(), |b| b.to_string())
                ),
                None => {
                    log::warn!("election: no replica is live; orders get 503 until one returns")
                }
            }
        }
        let term = Term {
            epoch: decision.epoch,
            leader: decision.leader,
        };
        decision
            .announce_to
            .into_iter()
            .map(|id| (id, term))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(id: u64, epoch: Epoch, leader: Option<u64>) -> Seen {
        Seen {
            id,
            term: Term { epoch, leader },
            leading: leader == Some(id),
        }
    }

    #[test]
    fn highest_live_id_leads_and_each_change_bumps_the_epoch() {
        let mut e = Election::default();
        let d = e.decide(&[seen(1, 0, None), seen(2, 0, None), seen(3, 0, None)]);
        assert_eq!(
            (d.leader, d.epoch, d.elected, d.new_epoch),
            (Some(3), 1, true, true)
        );
        assert_eq!(d.announce_to, vec![1, 2, 3]);
        // Everyone knows the term: nothing to do.
        let d = e.decide(&[
            seen(1, 1, Some(3)),
            seen(2, 1, Some(3)),
            seen(3, 1, Some(3)),
        ]);
        assert_eq!((d.leader, d.epoch, d.elected), (Some(3), 1, false));
        assert!(d.announce_to.is_empty());
        // 3 dies: 2 leads in epoch 2.
        let d = e.decide(&[seen(1, 1, Some(3)), seen(2, 1, Some(3))]);
        assert_eq!((d.leader, d.epoch, d.elected), (Some(2), 2, true));
        // 3 comes back: it leads again, in a newer epoch.
        let d = e.decide(&[
            seen(1, 2, Some(2)),
            seen(2, 2, Some(2)),
            seen(3, 1, Some(3)),
        ]);
        assert_eq!((d.leader, d.epoch, d.elected), (Some(3), 3, true));
    }

    #[test]
    fn no_live_replica_means_no_leader() {
        let mut e = Election::default();
        e.decide(&[seen(1, 0, None)]);
        let d = e.decide(&[]);
        assert_eq!(d.leader, None);
        assert_eq!(d.epoch, 1, "the epoch never goes back");
        assert!(d.announce_to.is_empty());
    }

    #[test]
    fn a_restarted_follower_is_told_the_term_again() {
        let mut e = Election::default();
        e.decide(&[seen(2, 0, None), seen(3, 0, None)]);
        let d = e.decide(&[seen(1, 0, None), seen(2, 1, Some(3)), seen(3, 1, Some(3))]);
        assert_eq!((d.epoch, d.elected), (1, false));
        assert_eq!(d.announce_to, vec![1]);
    }

    #[test]
    fn a_second_front_end_adopts_the_term_another_one_announced() {
        let mut e = Election::default();
        let d = e.decide(&[seen(1, 5, Some(3)), seen(3, 5, Some(3))]);
        assert_eq!((d.leader, d.epoch, d.new_epoch), (Some(3), 5, false));
        assert!(d.announce_to.is_empty());
    }

    #[test]
    fn a_restarted_leader_that_leads_nothing_gets_a_new_epoch() {
        let mut e = Election::default();
        e.decide(&[seen(2, 0, None), seen(3, 0, None)]);
        // 3 restarted before a heartbeat missed it: its file says it leads epoch 1, it does not.
        let mut back = seen(3, 1, Some(3));
        back.leading = false;
        let d = e.decide(&[seen(2, 1, Some(3)), back]);
        assert_eq!((d.leader, d.epoch, d.elected), (Some(3), 2, true));
        assert_eq!(d.announce_to, vec![2, 3]);
    }

    #[test]
    fn a_new_epoch_goes_above_the_catalogs_fence() {
        let state = |id: u64, fenced: Option<u64>| ReplicaState {
            id,
            role: Role::Follower,
            ready: true,
            last: None,
            term: Term {
                epoch: 5,
                leader: Some(3),
            },
            lagging: Vec::new(),
            leader_silence_ms: None,
            catalog_silence_ms: Some(10),
            catalog_epoch: fenced,
            catalog_term: Default::default(),
        };
        // Replica 3 was fenced by the catalog with epoch 1,000 and stepped down.
        let mut sup = Supervision::new(&[1, 2, 3], 300);
        let announce = sup.observe(&[
            Some(state(1, None)),
            Some(state(2, None)),
            Some(state(3, Some(1000))),
        ]);
        let (leader, epoch) = sup.leader().expect("a leader");
        assert_eq!(leader, 3);
        assert!(
            epoch > 1000,
            "epoch {epoch} is not above the catalog's fence"
        );
        assert!(announce.iter().all(|(_, t)| t.epoch == epoch));
    }

    #[test]
    fn order_reads_go_to_the_live_followers_of_the_current_epoch() {
        let state = |id: u64, role: Role, epoch: u64, lagging: Vec<u64>| ReplicaState {
            id,
            role,
            ready: true,
            last: None,
            term: Term {
                epoch,
                leader: Some(3),
            },
            lagging,
            leader_silence_ms: Some(10),
            catalog_silence_ms: Some(10),
            catalog_epoch: None,
            catalog_term: Default::default(),
        };
        let mut sup = Supervision::new(&[1, 2, 3], 300);
        assert!(sup.readers().is_empty(), "no leader, no readers");
        sup.observe(&[
            Some(state(1, Role::Follower, 5, vec![])),
            Some(state(2, Role::Follower, 5, vec![])),
            Some(state(3, Role::Leader, 5, vec![])),
        ]);
        assert_eq!(sup.leader(), Some((3, 5)));
        assert_eq!(sup.readers(), vec![1, 2]);
        // The leader stops waiting for 1 (it lags): 1 reads no more. 2 is down: neither.
        sup.observe(&[
            Some(state(1, Role::Follower, 5, vec![])),
            None,
            Some(state(3, Role::Leader, 5, vec![1])),
        ]);
        assert_eq!(sup.readers(), Vec::<u64>::new());
        // Both back in step; 2 still holds an older epoch: only 1 reads.
        sup.observe(&[
            Some(state(1, Role::Follower, 5, vec![])),
            Some(state(2, Role::Follower, 4, vec![])),
            Some(state(3, Role::Leader, 5, vec![])),
        ]);
        assert_eq!(sup.readers(), vec![1]);
    }

    #[test]
    fn a_leader_that_has_not_heard_its_term_yet_is_told_again_not_replaced() {
        let mut e = Election::default();
        let d = e.decide(&[seen(1, 0, None), seen(2, 0, None), seen(3, 0, None)]);
        assert_eq!((d.leader, d.epoch), (Some(3), 1));
        // The next heartbeat overtook the announcement: nobody holds epoch 1 yet.
        let d = e.decide(&[seen(1, 0, None), seen(2, 0, None), seen(3, 0, None)]);
        assert_eq!((d.leader, d.epoch, d.elected), (Some(3), 1, false));
        assert_eq!(d.announce_to, vec![1, 2, 3]);
    }

    #[test]
    fn two_front_ends_that_pick_different_leaders_never_open_the_same_epoch() {
        // Front end A sees replicas 1..3, front end B only 1 and 2 (it cannot reach 3).
        let mut a = Election::with_stride(4);
        let mut b = Election::with_stride(4);
        let all = [
            seen(1, 5, Some(1)),
            seen(2, 5, Some(1)),
            seen(3, 5, Some(1)),
        ];
        let da = a.decide(&all);
        let db = b.decide(&all[..2]);
        assert_eq!((da.leader, db.leader), (Some(3), Some(2)));
        assert_ne!(da.epoch, db.epoch, "one leader per epoch");
        assert!(da.epoch > 5 && db.epoch > 5);
        assert_eq!(da.epoch % 4, 3);
        assert_eq!(db.epoch % 4, 2);
        // Two front ends that pick the same leader pick the same term.
        let mut c = Election::with_stride(4);
        assert_eq!(c.decide(&all).epoch, da.epoch);
    }

    #[test]
    fn a_new_epoch_is_above_every_epoch_a_replica_accepted() {
        let mut e = Election::default();
        // Replica 2 accepted epoch 7 for leader 3 (announced by another front end), 3 is gone.
        let d = e.decide(&[seen(1, 4, Some(3)), seen(2, 7, Some(3))]);
        assert_eq!((d.leader, d.epoch), (Some(2), 8));
    }
}

/// What a heartbeat learned about one catalog of a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CatalogSeen {
    /// Catalog id.
    pub id: NodeId,
    /// The catalog term it holds.
    pub term: super::msg::CatalogTerm,
}

impl From<&crate::catalog_node::NodeState> for CatalogSeen {
    fn from(s: &crate::catalog_node::NodeState) -> CatalogSeen {
        CatalogSeen {
            id: s.id,
            term: s.term,
        }
    }
}

impl From<&crate::wire::catalog::CatalogState> for CatalogSeen {
    fn from(s: &crate::wire::catalog::CatalogState) -> CatalogSeen {
        CatalogSeen {
            id: s.id,
            term: s.term,
        }
    }
}

/// What a catalog round decided.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CatalogDecision {
    /// The primary, if a catalog is live.
    pub primary: Option<NodeId>,
    /// The current catalog term.
    pub term: super::msg::CatalogTerm,
    /// The primary changed in this round (the front end flushes its cache and resubscribes).
    pub changed: bool,
    /// Catalogs (by id) to tell the term.
    pub tell_catalogs: Vec<NodeId>,
    /// Replicas (by index in the round's answers) to tell the term.
    pub tell_replicas: Vec<usize>,
}

/// The supervisor's rule for a catalog group (`docs/catalog-failover.md`): the replicas' rule
/// applied to catalogs. The highest-id live catalog is primary; a change opens a catalog epoch
/// above every one a catalog or a replica holds (a dead catalog's term lives on in the
/// replicas); every live catalog and replica that does not hold the term is told it.
///
/// One missed heartbeat is not a death: a catalog stays live, with what it last said, until
/// it has missed `CATALOG_MISSES` rounds in a row (a dropped answer or a busy moment must not
/// move the primary, which costs a catch-up and a cache flush at every front end).
#[derive(Clone, Debug)]
pub struct CatalogElection {
    election: Election,
    /// Per catalog id: what it last said and how many rounds it has missed since.
    last: std::collections::BTreeMap<NodeId, (CatalogSeen, u32)>,
}

/// Rounds a catalog may miss in a row and still count as live.
pub const CATALOG_MISSES: u32 = 3;

impl CatalogElection {
    /// An election among catalogs with ids `ids`.
    pub fn new(ids: &[NodeId]) -> CatalogElection {
        CatalogElection {
            election: Election::with_stride(ids.iter().max().map_or(1, |m| m + 1)),
            last: Default::default(),
        }
    }

    /// The primary, if any.
    pub fn primary(&self) -> Option<NodeId> {
        self.election.leader()
    }

    /// Decides from the catalogs that answered and the catalog terms the replicas that
    /// answered hold (`None`: no answer).
    pub fn decide(
        &mut self,
        catalogs: &[CatalogSeen],
        replicas: &[Option<super::msg::CatalogTerm>],
    ) -> CatalogDecision {
        for t in replicas.iter().flatten() {
            self.election.see(t.epoch);
        }
        for (_, missed) in self.last.values_mut() {
            *missed += 1;
        }
        for c in catalogs {
            self.last.insert(c.id, (*c, 0));
        }
        self.last.retain(|_, (_, missed)| *missed < CATALOG_MISSES);
        let answered: Vec<NodeId> = catalogs.iter().map(|c| c.id).collect();
        let catalogs: Vec<CatalogSeen> = self.last.values().map(|(c, _)| *c).collect();
        let live: Vec<Seen> = catalogs
            .iter()
            .map(|c| Seen {
                id: c.id,
                term: Term {
                    epoch: c.term.epoch,
                    leader: c.term.primary,
                },
                leading: c.term.primary == Some(c.id),
            })
            .collect();
        let before = self.election.leader();
        let d = self.election.decide(&live);
        let term = super::msg::CatalogTerm {
            epoch: d.epoch,
            primary: d.leader,
        };
        let (tell_catalogs, tell_replicas) = if d.leader.is_some() {
            (
                catalogs
                    .iter()
                    .filter(|c| c.term != term && answered.contains(&c.id))
                    .map(|c| c.id)
                    .collect(),
                replicas
                    .iter()
                    .enumerate()
                    .filter(|(_, t)| t.is_some_and(|t| t != term))
                    .map(|(i, _)| i)
                    .collect(),
            )
        } else {
            (Vec::new(), Vec::new())
        };
        CatalogDecision {
            primary: d.leader,
            term,
            changed: d.leader != before,
            tell_catalogs,
            tell_replicas,
        }
    }
}

#[cfg(test)]
mod catalog_election_tests {
    use super::*;
    use crate::replication::msg::CatalogTerm;

    fn seen(id: NodeId, epoch: u64, primary: Option<NodeId>) -> CatalogSeen {
        CatalogSeen {
            id,
            term: CatalogTerm { epoch, primary },
        }
    }

    #[test]
    fn the_highest_live_catalog_is_primary_in_an_epoch_above_every_one_held() {
        let mut e = CatalogElection::new(&[1, 2]);
        // A replica still holds epoch 7 from a catalog that is down.
        let held = Some(CatalogTerm {
            epoch: 7,
            primary: Some(2),
        });
        let d = e.decide(&[seen(1, 3, Some(2))], &[held, None]);
        assert_eq!(d.primary, Some(1));
        assert!(d.changed);
        assert!(d.term.epoch > 7, "{d:?}");
        assert_eq!(d.tell_catalogs, vec![1]);
        assert_eq!(d.tell_replicas, vec![0]);
        // Catalog 2 returns: it takes over in a newer epoch; both catalogs are told.
        let t = d.term;
        let d2 = e.decide(
            &[seen(1, t.epoch, Some(1)), seen(2, 7, Some(2))],
            &[Some(t)],
        );
        assert_eq!(d2.primary, Some(2));
        assert!(d2.term.epoch > t.epoch);
        assert_eq!(d2.tell_catalogs, vec![1, 2]);
        // Everyone holds it: nothing to say, nothing changed.
        let t2 = d2.term;
        let d3 = e.decide(
            &[seen(1, t2.epoch, t2.primary), seen(2, t2.epoch, t2.primary)],
            &[Some(t2)],
        );
        assert_eq!(
            (d3.changed, d3.tell_catalogs.len(), d3.tell_replicas.len()),
            (false, 0, 0)
        );
        // Silent for a round or two: still primary (a dropped answer moves nothing).
        for _ in 1..CATALOG_MISSES {
            let d = e.decide(&[seen(1, t2.epoch, t2.primary)], &[Some(t2)]);
            assert_eq!((d.primary, d.changed), (Some(2), false));
        }
        // Silent for CATALOG_MISSES rounds: catalog 1 takes over.
        let d4 = e.decide(&[seen(1, t2.epoch, t2.primary)], &[Some(t2)]);
        assert_eq!((d4.primary, d4.changed), (Some(1), true));
        // None live at all: no primary, nothing announced.
        for _ in 0..CATALOG_MISSES {
            e.decide(&[], &[Some(d4.term)]);
        }
        let d5 = e.decide(&[], &[Some(d4.term)]);
        assert_eq!(d5.primary, None);
        assert!(d5.tell_replicas.is_empty());
    }
}

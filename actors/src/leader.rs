//! Leader choice as a pure function of what the last heartbeats saw: the highest live id
//! leads; a change of leader opens a new epoch above every epoch any replica has accepted; a
//! live replica that does not know the current term is told it again.
//!
//! Several front ends may run this independently. They see the same replicas, so they pick
//! the same leader; a replica accepts one leader per epoch and refuses older epochs, so a
//! front end with a stale view cannot make two leaders write.

use crate::order_store::Term;
use crate::types::Epoch;

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
}

impl Election {
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
        let candidate = live.iter().map(|s| s.id).max();
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
                if self.leader != Some(c) || !leads || newest.is_some_and(|t| t.epoch > self.epoch)
                {
                    let seen = newest.map_or(0, |t| t.epoch);
                    self.epoch = self.epoch.max(seen) + 1;
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
    fn a_new_epoch_is_above_every_epoch_a_replica_accepted() {
        let mut e = Election::default();
        // Replica 2 accepted epoch 7 for leader 3 (announced by another front end), 3 is gone.
        let d = e.decide(&[seen(1, 4, Some(3)), seen(2, 7, Some(3))]);
        assert_eq!((d.leader, d.epoch), (Some(2), 8));
    }
}

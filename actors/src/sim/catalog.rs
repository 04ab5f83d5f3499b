//! The simulator's catalog: the real service's rules for trades, request ids and fencing over
//! an in-memory table, so that the replicas' machines meet the same answers they meet in
//! production. It never loses what it applied (the real catalog is durable and has its own
//! crash tests); it can be unreachable.

use crate::replication::{CatalogAnswer, CatalogCall};
use crate::types::{Epoch, RequestId, TradeKind};
use crate::wire::catalog::{TradeOutcome, TradeRecord, TradeRequest};
use crate::Error;
use std::collections::BTreeMap;

/// One stock's (quantity, volume).
pub type Holding = (u64, u64);

/// See the module docs.
pub struct CatalogModel {
    /// Stock name -> (quantity, volume).
    pub stocks: BTreeMap<String, Holding>,
    /// What each stock started with.
    pub initial: BTreeMap<String, u64>,
    /// Every applied trade; trade `seq` is at index `seq - 1`.
    pub journal: Vec<TradeRecord>,
    answers: BTreeMap<RequestId, Result<TradeOutcome, Error>>,
    /// The newest leader epoch seen.
    pub fence: Epoch,
}

impl CatalogModel {
    /// A catalog listing `stocks` with quantity `quantity` each.
    pub fn new(stocks: &[&str], quantity: u64) -> CatalogModel {
        CatalogModel {
            stocks: stocks
                .iter()
                .map(|s| (s.to_string(), (quantity, 0)))
                .collect(),
            initial: stocks.iter().map(|s| (s.to_string(), quantity)).collect(),
            journal: Vec::new(),
            answers: BTreeMap::new(),
            fence: 0,
        }
    }

    /// Answers one call.
    pub fn call(&mut self, call: CatalogCall) -> Result<CatalogAnswer, Error> {
        match call {
            CatalogCall::Ping => Ok(CatalogAnswer::Pong),
            CatalogCall::Trades { trades: reqs, .. } => Ok(CatalogAnswer::Traded(
                reqs.into_iter().map(|req| self.trade(req)).collect(),
            )),
            CatalogCall::TradesSince {
                after,
                epoch,
                limit,
                ..
            } => {
                self.observe(epoch)?;
                let start = (after as usize).min(self.journal.len());
                Ok(CatalogAnswer::Trades {
                    trades: self.journal[start..].iter().take(limit).cloned().collect(),
                    complete: true,
                })
            }
        }
    }

    fn observe(&mut self, epoch: Epoch) -> Result<(), Error> {
        if epoch < self.fence {
            return Err(Error::Fenced {
                got: epoch,
                known: self.fence,
            });
        }
        self.fence = epoch;
        Ok(())
    }

    fn trade(&mut self, req: TradeRequest) -> Result<TradeOutcome, Error> {
        self.observe(req.epoch)?;
        if let Some(answer) = self.answers.get(&req.rid) {
            return answer.clone();
        }
        let answer = self.apply(&req);
        self.answers.insert(req.rid, answer.clone());
        answer
    }

    fn apply(&mut self, req: &TradeRequest) -> Result<TradeOutcome, Error> {
        let Some((quantity, volume)) = self.stocks.get_mut(&req.name) else {
            return Err(Error::UnknownStock(req.name.clone()));
        };
        match req.kind {
            TradeKind::Buy if *quantity < req.quantity => {
                return Err(Error::InsufficientQuantity {
                    name: req.name.clone(),
                    requested: req.quantity,
                    available: *quantity,
                })
            }
            TradeKind::Buy => *quantity -= req.quantity,
            TradeKind::Sell => *quantity += req.quantity,
        }
        *volume += req.quantity;
        let seq = self.journal.len() as u64 + 1;
        self.journal.push(TradeRecord {
            seq,
            rid: req.rid,
            name: req.name.clone(),
            kind: req.kind,
            quantity: req.quantity,
            epoch: req.epoch,
        });
        Ok(TradeOutcome {
            seq,
            name: req.name.clone(),
            kind: req.kind,
            quantity: req.quantity,
            price: 10.0,
        })
    }
}

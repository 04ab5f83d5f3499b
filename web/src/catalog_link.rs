//! The actor that keeps a front end subscribed to the catalog (rule 6).
//!
//! Every heartbeat it asks the catalog `hello`. When the catalog cannot be reached, restarted
//! (a new incarnation), or forgot this front end (a failed push), the cache is emptied and the
//! front end subscribes again: an invalidation may have been lost meanwhile, and a cache that
//! may have missed one must not answer.

use crate::error::ApiError;
use crate::http;
use crate::supervisor::CatalogPrimary;
use actix::prelude::*;
use std::time::Duration;
use tradenet_actors::cache::{self, CacheActor};
use tradenet_actors::wire;
use tradenet_actors::wire::catalog::{Hello, Subscribe};
use tradenet_actors::wire::frontend::CatalogLinkStatus;

/// Keeps this front end subscribed to the catalog; see the module docs.
pub struct CatalogLink {
    id: String,
    primary: CatalogPrimary,
    /// The catalog (id, URL) subscribed to, once subscribed.
    subscribed_to: Option<(u64, String)>,
    callback_url: String,
    interval: Duration,
    timeout: Duration,
    cache: Option<Addr<CacheActor>>,
    client: Option<awc::Client>,
    incarnation: Option<u64>,
    connected: bool,
    busy: bool,
}

impl CatalogLink {
    /// A link for the front end serving at `callback_url` to the catalog `primary` names
    /// (the one catalog, or a group's primary, which may change), checked every `interval`; it
    /// empties `cache` whenever an invalidation may have been missed. Not subscribed until
    /// started.
    pub fn new(
        primary: CatalogPrimary,
        callback_url: String,
        interval: Duration,
        timeout: Duration,
        cache: Option<Addr<CacheActor>>,
    ) -> CatalogLink {
        CatalogLink {
            id: format!("{:016x}", rand::random::<u64>()),
            primary,
            subscribed_to: None,
            callback_url,
            interval,
            timeout,
            cache,
            client: None,
            incarnation: None,
            connected: false,
            busy: false,
        }
    }

    fn flush(&self, reason: String) {
        if let Some(cache) = &self.cache {
            cache.do_send(cache::Flush(reason));
        }
    }

    fn check(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            return;
        }
        let Some((cid, catalog_url)) = self.primary.get() else {
            if self.connected {
                self.connected = false;
                self.flush("no catalog of the group is live".into());
            }
            return;
        };
        if self
            .subscribed_to
            .as_ref()
            .is_some_and(|(id, _)| *id != cid)
        {
            // A new primary: its pushes start from its own table; whatever the old one
            // pushed last may be newer than what the new one holds, or older.
            self.connected = false;
            self.subscribed_to = None;
            self.incarnation = None;
            self.flush(format!(
                "the catalog primary is now catalog {cid}; resubscribing"
            ));
        }
        self.busy = true;
        let client = self
            .client
            .get_or_insert_with(|| http::client(self.timeout))
            .clone();
        let hello_url = format!("{}{}", catalog_url, wire::hello_path(&self.id));
        let sub_url = format!("{}{}", catalog_url, wire::SUBSCRIBE);
        let target = (cid, catalog_url);
        let sub = Subscribe {
            id: self.id.clone(),
            url: self.callback_url.clone(),
        };
        let known = self.incarnation;
        let connected = self.connected;
        ctx.spawn(
            async move {
                let hello: Hello = http::get(&client, &hello_url).await?;
                if connected && hello.subscribed && Some(hello.incarnation) == known {
                    return Ok(None);
                }
                let fresh: Hello = http::post(&client, &sub_url, &sub).await?;
                Ok::<_, ApiError>(Some(fresh.incarnation))
            }
            .into_actor(self)
            .map(move |res, act, _| {
                act.busy = false;
                if act.primary.get().as_ref() != Some(&target) {
                    // The primary changed meanwhile: the next check subscribes to the new one.
                    return;
                }
                match res {
                    Ok(None) => {}
                    Ok(Some(incarnation)) => {
                        let reason = match act.incarnation {
                            None => "subscribed to the catalog".to_string(),
                            Some(old) if old != incarnation => {
                                format!("the catalog restarted (incarnation {old:016x} -> {incarnation:016x}); resubscribed")
                            }
                            Some(_) => "the catalog had dropped this front end; resubscribed".to_string(),
                        };
                        act.incarnation = Some(incarnation);
                        act.connected = true;
                        act.subscribed_to = Some(target);
                        act.flush(reason);
                    }
                    Err(e) => {
                        if act.connected {
                            act.connected = false;
                            act.flush(format!("lost the catalog ({e})"));
                        }
                    }
                }
            }),
        );
    }
}

impl Actor for CatalogLink {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        self.check(ctx);
        ctx.run_interval(self.interval, |act, ctx| act.check(ctx));
    }
}

/// Asks the link for its state, for the front end's `/status`.
#[derive(Message)]
#[rtype(result = "CatalogLinkStatus")]
pub struct LinkStatus;

impl Handler<LinkStatus> for CatalogLink {
    type Result = MessageResult<LinkStatus>;
    fn handle(&mut self, _: LinkStatus, _: &mut Context<Self>) -> Self::Result {
        MessageResult(CatalogLinkStatus {
            subscriber: self.id.clone(),
            connected: self.connected,
            incarnation: self.incarnation,
        })
    }
}

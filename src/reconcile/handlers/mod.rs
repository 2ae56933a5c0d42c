//! One handler per kind. To give a kind real behaviour, add a file here and list it in [`all`].

mod accept;
mod config;
mod mcp;
mod schedule;
mod skill;
mod token;
mod webhook;

use std::sync::Arc;

use super::handler::Handler;
use crate::live::Live;
use crate::manifest::Kind;
use crate::store::Store;

/// The handlers of every kind, indexed by [`Kind`]; kinds without behaviour yet are accepted
/// after validation.
pub fn all(live: &Arc<Live>, store: &Store) -> Vec<Arc<dyn Handler>> {
    let config = Arc::new(config::ConfigHandler::new(live.clone()));
    let mut handlers: Vec<Arc<dyn Handler>> = vec![
        config.clone(),
        Arc::new(skill::SkillHandler::new(
            live.clone(),
            config.clone(),
            store.clone(),
        )),
        // The Config handler too: an HTTP server connects under the egress policy of the
        // Config staged in the same pass.
        Arc::new(mcp::McpHandler::new(live.clone(), config)),
        Arc::new(token::TokenHandler::new(live.clone())),
        Arc::new(webhook::WebhookHandler::new(live.clone(), store.clone())),
        Arc::new(schedule::ScheduleHandler::new(live.clone())),
    ];
    for kind in Kind::ALL {
        if !handlers.iter().any(|h| h.kind() == kind) {
            handlers.push(Arc::new(accept::AcceptHandler(kind)));
        }
    }
    handlers
}

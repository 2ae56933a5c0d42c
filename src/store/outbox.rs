//! The `outbox` table: events waiting to be delivered, written in the transaction of the
//! change that caused them.

use super::{StoreError, Tx};
use crate::events::Event;

/// Appends an event.
pub async fn insert(tx: &mut Tx, event: &Event) -> Result<(), StoreError> {
    with_tx!(tx, conn => {
        sqlx::query("INSERT INTO outbox (id, event, payload, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&event.id)
            .bind(event.event.as_str())
            .bind(&event.payload)
            .bind(&event.created_at)
            .execute(conn)
            .await?;
    });
    Ok(())
}

/// One stored event.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredEvent {
    pub seq: i64,
    pub id: String,
    pub event: String,
    pub payload: String,
    pub created_at: String,
}

/// Events after `seq`, oldest first.
pub async fn after(
    store: &super::Store,
    seq: i64,
    limit: i64,
) -> Result<Vec<StoredEvent>, StoreError> {
    Ok(with_pool!(store, pool => {
        sqlx::query_as::<_, StoredEvent>(
            "SELECT seq, id, event, payload, created_at FROM outbox WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(seq)
        .bind(limit)
        .fetch_all(pool)
        .await?
    }))
}

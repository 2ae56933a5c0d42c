//! Events: the six event types of the tutorial and their payloads, exactly as webhooks send
//! them: `{"event", "timestamp", "data"}` as compact JSON. Events are written to the outbox
//! (`store::outbox`) in the same transaction as the change that caused them.

use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    TaskCompleted,
    TaskFailed,
    TaskStarted,
    SkillInstalled,
    SkillRemoved,
    SystemError,
}

impl EventType {
    /// Every event type.
    pub const ALL: [EventType; 6] = [
        EventType::TaskCompleted,
        EventType::TaskFailed,
        EventType::TaskStarted,
        EventType::SkillInstalled,
        EventType::SkillRemoved,
        EventType::SystemError,
    ];

    /// The wire name, e.g. `task.completed`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::TaskCompleted => "task.completed",
            EventType::TaskFailed => "task.failed",
            EventType::TaskStarted => "task.started",
            EventType::SkillInstalled => "skill.installed",
            EventType::SkillRemoved => "skill.removed",
            EventType::SystemError => "system.error",
        }
    }
}

impl std::str::FromStr for EventType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventType::ALL
            .into_iter()
            .find(|e| e.as_str() == s)
            .ok_or_else(|| format!("unknown event type \"{s}\""))
    }
}

/// One event, ready for the outbox.
#[derive(Debug, Clone)]
pub struct Event {
    /// Unique id (`evt_…`); deliveries of this event keep it across retries.
    pub id: String,
    pub event: EventType,
    /// The exact JSON body webhooks send.
    pub payload: String,
    pub created_at: String,
}

impl Event {
    /// An event with `data`, stamped now.
    pub fn new(event: EventType, data: Value) -> Event {
        let now = OffsetDateTime::now_utc();
        let timestamp = now
            .replace_nanosecond(0)
            .unwrap_or(now)
            .format(&Rfc3339)
            .unwrap_or_default();
        // Key order as in the tutorial; compact serde_json output round-trips byte-identically
        // through JavaScript's JSON.parse / JSON.stringify (the tutorial's receiver re-serialises).
        let payload =
            json!({ "event": event.as_str(), "timestamp": timestamp, "data": data }).to_string();
        Event {
            id: format!("evt_{}", uuid::Uuid::new_v4().simple()),
            event,
            payload,
            created_at: now.format(&Rfc3339).unwrap_or_default(),
        }
    }
}

/// A task event: `task_id`, `prompt`, `status`, `duration_ms` (and `error` for failures).
pub fn task(
    event: EventType,
    task_id: &str,
    prompt: &str,
    status: &str,
    duration_ms: Option<i64>,
    error: Option<&str>,
) -> Event {
    let mut data = Map::new();
    data.insert("task_id".into(), task_id.into());
    data.insert("prompt".into(), prompt.into());
    data.insert("status".into(), status.into());
    if let Some(ms) = duration_ms {
        data.insert("duration_ms".into(), ms.into());
    }
    if let Some(e) = error {
        data.insert("error".into(), e.into());
    }
    Event::new(event, Value::Object(data))
}

/// A skill event: `name`, `version`.
pub fn skill(event: EventType, name: &str, version: &str) -> Event {
    Event::new(event, json!({ "name": name, "version": version }))
}

/// A `system.error`: what failed (`source`, e.g. `manifests`), and a message.
pub fn system_error(source: &str, message: &str, details: Value) -> Event {
    Event::new(
        EventType::SystemError,
        json!({ "source": source, "message": message, "details": details }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_payload_has_the_tutorials_shape_in_its_order() {
        let e = task(
            EventType::TaskCompleted,
            "task_abc123",
            "Summarize \"this\"\n🦀",
            "completed",
            Some(4523),
            None,
        );
        let v: Value = serde_json::from_str(&e.payload).unwrap();
        assert_eq!(v["event"], "task.completed");
        assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));
        assert!(e
            .payload
            .starts_with("{\"event\":\"task.completed\",\"timestamp\":\""));
        assert!(e.payload.ends_with(
            "\"data\":{\"task_id\":\"task_abc123\",\"prompt\":\"Summarize \\\"this\\\"\\n🦀\",\"status\":\"completed\",\"duration_ms\":4523}}"
        ));
        assert!(e.id.starts_with("evt_"));
    }

    #[test]
    fn event_names_parse_back() {
        for e in EventType::ALL {
            assert_eq!(e.as_str().parse::<EventType>().unwrap(), e);
        }
        assert!("task.exploded".parse::<EventType>().is_err());
    }
}

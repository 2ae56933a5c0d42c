//! Events: the six event types of the tutorial and their payloads, exactly as webhooks send
//! them: `{"event", "timestamp", "data"}` as compact JSON. Events are written to the outbox
//! (`store::outbox`) in the same transaction as the change that caused them.
//!
//! The event names live here once: [`EventType`] for the events themselves, [`EventFilter`]
//! for an entry of a Webhook's `events` (an event name or `*`), and [`Subscription`] for
//! the whole list, which the delivery fan-out matches events against.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::tasks::TaskStatus;

/// The event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
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
    pub const fn as_str(self) -> &'static str {
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

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventType::ALL
            .into_iter()
            .find(|e| e.as_str() == s)
            .ok_or_else(|| format!("unknown event type \"{s}\""))
    }
}

/// One entry of a Webhook's `events`: an event type, or `*` for every event. Serialised as
/// its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventFilter {
    /// Exactly this event.
    Only(EventType),
    /// `*`: every event.
    All,
}

impl EventFilter {
    /// Every entry a Webhook may list: each event type, then `*`.
    pub const ALL: [EventFilter; 7] = [
        EventFilter::Only(EventType::TaskCompleted),
        EventFilter::Only(EventType::TaskFailed),
        EventFilter::Only(EventType::TaskStarted),
        EventFilter::Only(EventType::SkillInstalled),
        EventFilter::Only(EventType::SkillRemoved),
        EventFilter::Only(EventType::SystemError),
        EventFilter::All,
    ];

    /// The name as written in a manifest, e.g. `task.completed` or `*`.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventFilter::Only(e) => e.as_str(),
            EventFilter::All => "*",
        }
    }

    /// Whether an endpoint listing `self` receives `event`.
    pub fn matches(self, event: EventType) -> bool {
        match self {
            EventFilter::All => true,
            EventFilter::Only(e) => e == event,
        }
    }
}

/// Described as the names it is written as (it serialises as one, not as an enum).
impl utoipa::PartialSchema for EventFilter {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(EventFilter::ALL.iter().map(|e| e.as_str())))
            .description(Some("An event name, or `*` for every event."))
            .into()
    }
}

impl utoipa::ToSchema for EventFilter {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("EventFilter")
    }
}

impl From<EventType> for EventFilter {
    fn from(e: EventType) -> Self {
        EventFilter::Only(e)
    }
}

impl fmt::Display for EventFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is neither an event type nor `*`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown event \"{0}\": expected one of {names}", names = EventFilter::ALL.map(EventFilter::as_str).join(", "))]
pub struct UnknownEvent(pub String);

impl FromStr for EventFilter {
    type Err = UnknownEvent;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventFilter::ALL
            .into_iter()
            .find(|e| e.as_str() == s)
            .ok_or_else(|| UnknownEvent(s.to_owned()))
    }
}

impl Serialize for EventFilter {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventFilter {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// What an endpoint subscribes to: the union of its [`EventFilter`]s.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Subscription {
    all: bool,
    /// Bit `i` set: receives `EventType::ALL[i]`.
    events: u8,
}

impl Subscription {
    /// The subscription of these entries.
    pub fn new(filters: impl IntoIterator<Item = EventFilter>) -> Subscription {
        filters
            .into_iter()
            .fold(Subscription::default(), |mut sub, f| {
                match f {
                    EventFilter::All => sub.all = true,
                    EventFilter::Only(e) => sub.events |= Self::bit(e),
                }
                sub
            })
    }

    /// The subscription of a stored `events` list (a JSON array of names, as
    /// `store::webhooks` keeps it). Names that are not events match nothing, as does text
    /// that is not such an array.
    pub fn from_json(events: &str) -> Subscription {
        let names: Vec<String> = serde_json::from_str(events).unwrap_or_default();
        Subscription::new(names.iter().filter_map(|n| n.parse().ok()))
    }

    fn bit(e: EventType) -> u8 {
        let i = EventType::ALL.iter().position(|x| *x == e).unwrap_or(0);
        1 << i
    }

    /// Whether it receives `event`.
    pub fn matches(self, event: EventType) -> bool {
        self.all || self.events & Self::bit(event) != 0
    }

    /// Whether it receives an event called `name`: `*` receives any name, even one this
    /// version does not know.
    pub fn matches_name(self, name: &str) -> bool {
        self.all || name.parse().is_ok_and(|e| self.matches(e))
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
    status: TaskStatus,
    duration_ms: Option<i64>,
    error: Option<&str>,
) -> Event {
    task_from(event, task_id, prompt, status, duration_ms, error, None)
}

/// A task event as [`task`], plus `schedule` and `schedule_slot` (null for a manual run) for a
/// task a Schedule started.
pub fn task_from(
    event: EventType,
    task_id: &str,
    prompt: &str,
    status: TaskStatus,
    duration_ms: Option<i64>,
    error: Option<&str>,
    schedule: Option<(&str, Option<&str>)>,
) -> Event {
    let mut data = Map::new();
    data.insert("task_id".into(), task_id.into());
    data.insert("prompt".into(), prompt.into());
    data.insert("status".into(), status.as_str().into());
    if let Some(ms) = duration_ms {
        data.insert("duration_ms".into(), ms.into());
    }
    if let Some(e) = error {
        data.insert("error".into(), e.into());
    }
    if let Some((name, slot)) = schedule {
        data.insert("schedule".into(), name.into());
        data.insert("schedule_slot".into(), slot.into());
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
            TaskStatus::Completed,
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

    #[test]
    fn filter_names_round_trip_through_as_str_from_str_and_serde() {
        let names: Vec<&str> = EventFilter::ALL.map(EventFilter::as_str).to_vec();
        assert_eq!(
            names,
            [
                "task.completed",
                "task.failed",
                "task.started",
                "skill.installed",
                "skill.removed",
                "system.error",
                "*"
            ]
        );
        for f in EventFilter::ALL {
            assert_eq!(f.as_str().parse::<EventFilter>(), Ok(f));
            assert_eq!(f.to_string(), f.as_str());
            assert_eq!(serde_json::json!(f), serde_json::json!(f.as_str()));
            assert_eq!(
                serde_json::from_value::<EventFilter>(serde_json::json!(f.as_str())).unwrap(),
                f
            );
        }
        for e in EventType::ALL {
            assert_eq!(EventFilter::from(e).as_str(), e.as_str());
        }
        let e = "task.exploded".parse::<EventFilter>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown event \"task.exploded\": expected one of task.completed, task.failed, task.started, skill.installed, skill.removed, system.error, *"
        );
        assert!(serde_json::from_value::<EventFilter>(serde_json::json!("all")).is_err());
    }

    #[test]
    fn filters_and_subscriptions_match_with_the_wildcard() {
        for e in EventType::ALL {
            assert!(EventFilter::All.matches(e));
            for other in EventType::ALL {
                assert_eq!(EventFilter::Only(other).matches(e), other == e);
            }
        }
        let all = Subscription::from_json(r#"["*"]"#);
        let done = Subscription::from_json(r#"["task.completed", "system.error", "bogus"]"#);
        let none = Subscription::from_json("not json");
        for e in EventType::ALL {
            assert!(all.matches(e));
            assert_eq!(
                done.matches(e),
                matches!(e, EventType::TaskCompleted | EventType::SystemError),
                "{e}"
            );
            assert!(!none.matches(e));
            assert_eq!(done.matches_name(e.as_str()), done.matches(e));
        }
        assert!(all.matches_name("webhook.test"));
        assert!(!done.matches_name("webhook.test"));
        assert!(!done.matches_name("bogus"));
        let mixed = Subscription::new([EventFilter::Only(EventType::TaskFailed), EventFilter::All]);
        assert!(EventType::ALL.into_iter().all(|e| mixed.matches(e)));
    }
}

//! The task status vocabulary: one enum, spelled as text only at the edges (`as_str` /
//! `FromStr`, serde in lowercase for JSON, and a TEXT column in the store with the same
//! values; see `store::tasks`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a task is in its life: `queued` → `running` → `completed` | `failed` | `cancelled`
/// (a queued task can also be cancelled before it runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    Queued,
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl TaskStatus {
    /// Every status, in the order counts are reported.
    pub const ALL: [TaskStatus; 5] = [
        TaskStatus::Queued,
        TaskStatus::Running,
        TaskStatus::Completed,
        TaskStatus::Failed,
        TaskStatus::Cancelled,
    ];

    /// The wire and stored name, e.g. `queued`.
    pub const fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Queued => "queued",
            TaskStatus::Running => "running",
            TaskStatus::Completed => "completed",
            TaskStatus::Failed => "failed",
            TaskStatus::Cancelled => "cancelled",
        }
    }

    /// True for statuses a task never leaves.
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskStatus::Completed | TaskStatus::Failed | TaskStatus::Cancelled
        )
    }

    /// The position in [`TaskStatus::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Every name, comma-separated, for messages: `queued, running, …`.
    pub fn names() -> String {
        TaskStatus::ALL.map(TaskStatus::as_str).join(", ")
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a task status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("status \"{0}\" is not one of {names}", names = TaskStatus::names())]
pub struct UnknownTaskStatus(pub String);

impl FromStr for TaskStatus {
    type Err = UnknownTaskStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TaskStatus::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownTaskStatus(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_round_trip_through_as_str_from_str_and_serde() {
        for (i, s) in TaskStatus::ALL.into_iter().enumerate() {
            assert_eq!(s.index(), i);
            assert_eq!(s.as_str().parse::<TaskStatus>(), Ok(s));
            assert_eq!(s.to_string(), s.as_str());
            assert_eq!(json!(s), json!(s.as_str()));
            assert_eq!(
                serde_json::from_value::<TaskStatus>(json!(s.as_str())).unwrap(),
                s
            );
        }
        let names: Vec<&str> = TaskStatus::ALL.map(TaskStatus::as_str).to_vec();
        assert_eq!(
            names,
            ["queued", "running", "completed", "failed", "cancelled"]
        );
    }

    #[test]
    fn unknown_names_are_refused_with_the_list() {
        for bad in ["", "Queued", "done", "canceled"] {
            let e = bad.parse::<TaskStatus>().unwrap_err();
            assert_eq!(e.0, bad);
        }
        assert_eq!(
            "done".parse::<TaskStatus>().unwrap_err().to_string(),
            "status \"done\" is not one of queued, running, completed, failed, cancelled"
        );
        assert!(serde_json::from_value::<TaskStatus>(json!("done")).is_err());
    }

    #[test]
    fn terminal_statuses() {
        let terminal: Vec<TaskStatus> = TaskStatus::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .collect();
        assert_eq!(
            terminal,
            [
                TaskStatus::Completed,
                TaskStatus::Failed,
                TaskStatus::Cancelled
            ]
        );
    }
}

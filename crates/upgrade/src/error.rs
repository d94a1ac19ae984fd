//! Why a plan cannot be made.

/// A plan that cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// A server asked for is not in the config.
    #[error("{0}: no such server in the config")]
    UnknownServer(String),
    /// A group whose `min_up` leaves none of its servers free to go down.
    #[error(
        "group {group}: min_up {min_up} of its {size} servers leaves none free to be updated (set [upgrade] min_up.{group} lower)"
    )]
    MinUp {
        /// The group.
        group: String,
        /// Servers that must stay up.
        min_up: usize,
        /// Servers in it.
        size: usize,
    },
    /// Nothing to upgrade.
    #[error("no server to upgrade")]
    Empty,
}

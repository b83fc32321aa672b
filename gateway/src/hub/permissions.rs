//! Who may do what: one role x action matrix per room kind, checked in one place.
//!
//! Roles are ordered (guest < member < moderator < admin < owner); each action needs a
//! minimum role, which depends on the room kind. `None` means nobody may, in that kind.

use garou_protocol::{Role, RoomKind};

/// Everything a member can try to do in a room.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Read,
    Post,
    EditOwn,
    EditAny,
    DeleteOwn,
    DeleteAny,
    React,
    Typing,
    Invite,
    Kick,
    Mute,
    Ban,
    ChangeRole,
    RenameRoom,
    DeleteRoom,
}

impl Action {
    /// Every action, for generated tests and docs.
    pub const ALL: [Action; 15] = [
        Action::Read,
        Action::Post,
        Action::EditOwn,
        Action::EditAny,
        Action::DeleteOwn,
        Action::DeleteAny,
        Action::React,
        Action::Typing,
        Action::Invite,
        Action::Kick,
        Action::Mute,
        Action::Ban,
        Action::ChangeRole,
        Action::RenameRoom,
        Action::DeleteRoom,
    ];
}

/// The weakest role allowed to do `action` in a room of `kind`.
pub fn min_role(kind: RoomKind, action: Action) -> Option<Role> {
    use Action::*;
    use Role::*;
    match (kind, action) {
        (_, Read) => Some(Guest),
        // Nobody edits someone else's words; moderators delete them instead.
        (_, EditAny) => None,
        // A direct room has two equal members and no moderation.
        (RoomKind::Direct, Post | EditOwn | DeleteOwn | React | Typing) => Some(Member),
        (RoomKind::Direct, _) => None,
        // Channels are broadcast: joiners are guests and only members and up post.
        (_, Post | EditOwn | DeleteOwn | React | Typing) => Some(Member),
        (RoomKind::Group, Invite) => Some(Member),
        (RoomKind::Channel, Invite) => Some(Moderator),
        (_, DeleteAny | Kick | Mute) => Some(Moderator),
        (_, Ban | ChangeRole | RenameRoom) => Some(Admin),
        (_, DeleteRoom) => Some(Owner),
    }
}

/// Whether `role` may do `action` in a room of `kind`.
pub fn allowed(kind: RoomKind, role: Role, action: Action) -> bool {
    min_role(kind, action).is_some_and(|min| role >= min)
}

/// Role a new member gets when joining a room of `kind` by themselves.
pub fn join_role(kind: RoomKind) -> Role {
    match kind {
        RoomKind::Channel => Role::Guest,
        RoomKind::Group | RoomKind::Direct => Role::Member,
    }
}

/// Whether `actor` may move a member from `from` to `to`: it needs ChangeRole and must
/// outrank both the member's current and new role (owners may appoint owners).
pub fn may_change_role(kind: RoomKind, actor: Role, from: Role, to: Role) -> bool {
    allowed(kind, actor, Action::ChangeRole) && (actor == Role::Owner || (actor > from && actor > to))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guests_read_only_everywhere() {
        for kind in [RoomKind::Group, RoomKind::Channel, RoomKind::Direct] {
            for action in Action::ALL {
                assert_eq!(
                    allowed(kind, Role::Guest, action),
                    action == Action::Read,
                    "{kind:?} {action:?}"
                );
            }
        }
    }

    #[test]
    fn monotonic_in_role() {
        let roles = [
            Role::Guest,
            Role::Member,
            Role::Moderator,
            Role::Admin,
            Role::Owner,
        ];
        for kind in [RoomKind::Group, RoomKind::Channel, RoomKind::Direct] {
            for action in Action::ALL {
                for w in roles.windows(2) {
                    assert!(
                        !allowed(kind, w[0], action) || allowed(kind, w[1], action),
                        "{kind:?} {action:?}: {:?} may but {:?} may not",
                        w[0],
                        w[1]
                    );
                }
            }
        }
    }

    /// The README's table is documentation users rely on: it must say what the code does.
    #[test]
    fn readme_table_matches_the_matrix() {
        let readme = include_str!("../../../README.md");
        let rows: Vec<Vec<&str>> = readme
            .lines()
            .skip_while(|l| !l.starts_with("| action | group | channel | direct |"))
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .map(|l| l.trim_matches('|').split('|').map(str::trim).collect())
            .collect();
        assert_eq!(rows.len(), Action::ALL.len(), "one row per action");
        for (row, action) in rows.iter().zip(Action::ALL) {
            let name: String = format!("{action:?}")
                .chars()
                .flat_map(|c| {
                    if c.is_uppercase() {
                        vec![' ', c.to_ascii_lowercase()]
                    } else {
                        vec![c]
                    }
                })
                .collect();
            assert_eq!(row[0], name.trim(), "row order follows Action::ALL");
            for (cell, kind) in row[1..]
                .iter()
                .zip([RoomKind::Group, RoomKind::Channel, RoomKind::Direct])
            {
                let want = min_role(kind, action).map_or("—", Role::as_str);
                assert_eq!(*cell, want, "{action:?} in {kind:?}");
            }
        }
    }

    #[test]
    fn role_changes() {
        use Role::*;
        let g = RoomKind::Group;
        assert!(may_change_role(g, Owner, Guest, Admin));
        assert!(may_change_role(g, Admin, Guest, Moderator));
        assert!(
            !may_change_role(g, Admin, Admin, Member),
            "admins cannot demote admins"
        );
        assert!(
            !may_change_role(g, Admin, Member, Admin),
            "admins cannot make admins"
        );
        assert!(!may_change_role(g, Moderator, Guest, Member));
        assert!(!may_change_role(RoomKind::Direct, Owner, Member, Guest));
    }
}

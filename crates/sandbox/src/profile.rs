//! Capability profiles: which workspace mounts one tool invocation may
//! touch, and how. No invocation ever holds the vault together with
//! `shared`/`tmp` write access.

use std::fmt;

use types::protocol::file_ops::{Access, Mount};

/// What an invocation may do with a mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountAccess {
    ReadOnly,
    ReadWrite,
}

/// The capabilities of one tool invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CapabilityProfile {
    /// `file_read`, `file_search`, `file_list`: every mount, read-only.
    FileReadOnly,
    /// `file_write`, `file_edit`, `file_delete`: `shared` and `tmp`, no vault.
    FileReadWrite,
    /// `web_fetch`, `web_search`: no filesystem at all.
    Web,
    /// `vault_copyto` step 1: the vault, read-only, nothing else.
    VaultReadStep,
    /// `vault_copyto` step 2: `shared` and `tmp`, no vault.
    VaultWriteStep,
}

impl CapabilityProfile {
    /// The mounts this profile may use.
    pub fn mounts(self) -> &'static [(Mount, MountAccess)] {
        use MountAccess::{ReadOnly, ReadWrite};
        match self {
            Self::FileReadOnly => &[
                (Mount::Shared, ReadOnly),
                (Mount::Tmp, ReadOnly),
                (Mount::Vault, ReadOnly),
            ],
            Self::FileReadWrite | Self::VaultWriteStep => {
                &[(Mount::Shared, ReadWrite), (Mount::Tmp, ReadWrite)]
            }
            Self::Web => &[],
            Self::VaultReadStep => &[(Mount::Vault, ReadOnly)],
        }
    }

    /// How this profile may use `mount`, if at all.
    pub fn access_to(self, mount: Mount) -> Option<MountAccess> {
        self.mounts()
            .iter()
            .find(|(m, _)| *m == mount)
            .map(|(_, access)| *access)
    }

    /// Whether `access` to `mount` is allowed.
    pub fn allows(self, mount: Mount, access: Access) -> bool {
        match (self.access_to(mount), access) {
            (Some(MountAccess::ReadWrite), _) | (Some(MountAccess::ReadOnly), Access::Read) => true,
            (Some(MountAccess::ReadOnly), Access::Write) | (None, _) => false,
        }
    }

    /// The mounts as the model sees them, for messages ("/shared, /tmp").
    pub fn mount_list(self) -> String {
        let names: Vec<String> = self.mounts().iter().map(|(m, _)| m.to_string()).collect();
        if names.is_empty() {
            "no workspace mounts".to_owned()
        } else {
            names.join(", ")
        }
    }
}

impl fmt::Display for CapabilityProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::FileReadOnly => "file-read-only",
            Self::FileReadWrite => "file-read-write",
            Self::Web => "web",
            Self::VaultReadStep => "vault-read-step",
            Self::VaultWriteStep => "vault-write-step",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [CapabilityProfile; 5] = [
        CapabilityProfile::FileReadOnly,
        CapabilityProfile::FileReadWrite,
        CapabilityProfile::Web,
        CapabilityProfile::VaultReadStep,
        CapabilityProfile::VaultWriteStep,
    ];

    #[test]
    fn profiles_match_the_spec_table() {
        use CapabilityProfile::*;
        let table = [
            (FileReadOnly, Mount::Shared, Access::Read, true),
            (FileReadOnly, Mount::Vault, Access::Read, true),
            (FileReadOnly, Mount::Tmp, Access::Write, false),
            (FileReadWrite, Mount::Shared, Access::Write, true),
            (FileReadWrite, Mount::Tmp, Access::Write, true),
            (FileReadWrite, Mount::Vault, Access::Read, false),
            (Web, Mount::Tmp, Access::Read, false),
            (VaultReadStep, Mount::Vault, Access::Read, true),
            (VaultReadStep, Mount::Vault, Access::Write, false),
            (VaultReadStep, Mount::Shared, Access::Read, false),
            (VaultWriteStep, Mount::Shared, Access::Write, true),
            (VaultWriteStep, Mount::Vault, Access::Read, false),
        ];
        for (profile, mount, access, allowed) in table {
            assert_eq!(
                profile.allows(mount, access),
                allowed,
                "{profile} {mount} {access:?}"
            );
        }
    }

    #[test]
    fn no_profile_holds_the_vault_and_writable_mounts_together() {
        for profile in ALL {
            let vault = profile.access_to(Mount::Vault).is_some();
            let writable = profile
                .mounts()
                .iter()
                .any(|(m, a)| *m != Mount::Vault && *a == MountAccess::ReadWrite);
            assert!(!(vault && writable), "{profile}");
        }
    }

    #[test]
    fn mount_lists_for_messages() {
        assert_eq!(
            CapabilityProfile::FileReadWrite.mount_list(),
            "/shared, /tmp"
        );
        assert_eq!(CapabilityProfile::Web.mount_list(), "no workspace mounts");
    }
}

//! The cluster's genesis: what every worker of a cluster starts from and must agree on (funded
//! accounts, encryption, the dev attestation root, and the deterministic resource bounds).

use parity_scale_codec::{Decode, Encode};
use phat_primitives::AccountId;
use phat_runtime::Limits;
pub use phat_system::SystemSetup;

use crate::{ApplyError, WorkerError};

/// What a cluster starts from, kept in the ledger's metadata under [`crate::GENESIS_KEY`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct Genesis {
    /// Native balances before command 1.
    pub balances: Vec<(AccountId, phat_primitives::Balance)>,
    /// Whether commands, queries and state are encrypted (off only to compare, insecure).
    pub encryption: bool,
    /// The dev attestation root every worker's report must be signed by (`None`: each
    /// worker's own root, which only suits a single worker).
    pub dev_root: Option<[u8; 32]>,
    /// The bounds every worker applies to commands (`None`: the runtime's defaults, as in
    /// clusters created before bounds were part of the genesis).
    pub limits: Option<ClusterLimits>,
    /// The TEE policy (JSON, [`phat_attest::TeePolicy`]) hardware workers judge joiners by;
    /// `None`: hardware reports are refused (a `dev` cluster).
    pub tee_policy: Option<String>,
    /// The cluster owner: the only account whose commands may rotate the cluster secret or
    /// revoke a worker (`None`: nobody may, as in clusters created before owners existed).
    pub owner: Option<AccountId>,
    /// The system contract every worker instantiates (from [`SystemSetup::instantiator`])
    /// while applying the genesis, with its drivers (`None`: no system contract, as in
    /// clusters created before it existed; `system_contract_id` then answers a fixed id).
    pub system: Option<SystemSetup>,
    /// Who may upload code and instantiate contracts (Phala's cluster permission).
    pub deploy: DeployPermission,
}

/// Who may upload code and instantiate contracts on a cluster (Phala's `Public` and
/// `OnlyOwner` cluster permissions). Contracts instantiating contracts are not judged: the
/// deployment that made them was.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub enum DeployPermission {
    /// Any account that holds a balance (as clusters created before the permission existed).
    #[default]
    Public,
    /// The cluster owner, and the accounts the owner allows with an ordered command
    /// (`ClusterOp::SetDeployers`).
    OwnerOnly,
}

/// Whether `who` may upload code and instantiate contracts under `genesis`, `deployers` being
/// the accounts the owner allowed (replicated state, `StateKey::Deployers`).
pub(crate) fn may_deploy(genesis: &Genesis, deployers: &[AccountId], who: &AccountId) -> bool {
    match genesis.deploy {
        DeployPermission::Public => true,
        DeployPermission::OwnerOnly => genesis.owner == Some(*who) || deployers.contains(who),
    }
}

/// The genesis of clusters created before [`Genesis::deploy`] existed.
#[derive(Encode, Decode)]
struct GenesisV5 {
    balances: Vec<(AccountId, phat_primitives::Balance)>,
    encryption: bool,
    dev_root: Option<[u8; 32]>,
    limits: Option<ClusterLimits>,
    tee_policy: Option<String>,
    owner: Option<AccountId>,
    system: Option<SystemSetup>,
}

/// The genesis of clusters created before [`Genesis::system`] existed.
#[derive(Encode, Decode)]
struct GenesisV4 {
    balances: Vec<(AccountId, phat_primitives::Balance)>,
    encryption: bool,
    dev_root: Option<[u8; 32]>,
    limits: Option<ClusterLimits>,
    tee_policy: Option<String>,
    owner: Option<AccountId>,
}

/// The genesis of clusters created before [`Genesis::owner`] existed.
#[derive(Encode, Decode)]
struct GenesisV3 {
    balances: Vec<(AccountId, phat_primitives::Balance)>,
    encryption: bool,
    dev_root: Option<[u8; 32]>,
    limits: Option<ClusterLimits>,
    tee_policy: Option<String>,
}

/// The genesis of clusters created before [`Genesis::tee_policy`] existed.
#[derive(Decode)]
struct GenesisV2 {
    balances: Vec<(AccountId, phat_primitives::Balance)>,
    encryption: bool,
    dev_root: Option<[u8; 32]>,
    limits: Option<ClusterLimits>,
}

/// The genesis of clusters created before [`Genesis::limits`] existed.
#[derive(Decode)]
struct GenesisV1 {
    balances: Vec<(AccountId, phat_primitives::Balance)>,
    encryption: bool,
    dev_root: Option<[u8; 32]>,
}

impl Genesis {
    /// Decodes a genesis as stored in the ledger, current or older layout.
    pub fn decode_stored(raw: &[u8]) -> Result<Self, WorkerError> {
        use parity_scale_codec::DecodeAll;
        if let Ok(g) = Genesis::decode_all(&mut &raw[..]) {
            return Ok(g);
        }
        if let Ok(v5) = GenesisV5::decode_all(&mut &raw[..]) {
            return Ok(Genesis {
                balances: v5.balances,
                encryption: v5.encryption,
                dev_root: v5.dev_root,
                limits: v5.limits,
                tee_policy: v5.tee_policy,
                owner: v5.owner,
                system: v5.system,
                deploy: DeployPermission::Public,
            });
        }
        if let Ok(v4) = GenesisV4::decode_all(&mut &raw[..]) {
            return Ok(Genesis {
                balances: v4.balances,
                encryption: v4.encryption,
                dev_root: v4.dev_root,
                limits: v4.limits,
                tee_policy: v4.tee_policy,
                owner: v4.owner,
                system: None,
                deploy: DeployPermission::Public,
            });
        }
        if let Ok(v3) = GenesisV3::decode_all(&mut &raw[..]) {
            return Ok(Genesis {
                balances: v3.balances,
                encryption: v3.encryption,
                dev_root: v3.dev_root,
                limits: v3.limits,
                tee_policy: v3.tee_policy,
                owner: None,
                system: None,
                deploy: DeployPermission::Public,
            });
        }
        if let Ok(v2) = GenesisV2::decode_all(&mut &raw[..]) {
            return Ok(Genesis {
                balances: v2.balances,
                encryption: v2.encryption,
                dev_root: v2.dev_root,
                limits: v2.limits,
                tee_policy: None,
                owner: None,
                system: None,
                deploy: DeployPermission::Public,
            });
        }
        let v1 = GenesisV1::decode_all(&mut &raw[..]).map_err(|e| {
            WorkerError::from(ApplyError::Genesis(format!("it does not decode: {e}")))
        })?;
        Ok(Genesis {
            balances: v1.balances,
            encryption: v1.encryption,
            dev_root: v1.dev_root,
            limits: None,
            tee_policy: None,
            owner: None,
            system: None,
            deploy: DeployPermission::Public,
        })
    }

    /// The system contract's address, if the genesis sets one up.
    pub fn system_contract(&self) -> Option<AccountId> {
        self.system.as_ref().map(|s| s.address(self.owner))
    }

    /// The digest a worker binds its sealed cluster secret to: blake2-256 of the SCALE
    /// genesis, in the oldest layout that holds all it sets (so workers that joined before
    /// owners or system contracts existed still start).
    pub fn digest(&self) -> [u8; 32] {
        if self.deploy != DeployPermission::Public {
            return phat_primitives::blake2_256(&self.encode());
        }
        match (&self.system, self.owner) {
            (Some(_), _) => phat_primitives::blake2_256(
                &GenesisV5 {
                    balances: self.balances.clone(),
                    encryption: self.encryption,
                    dev_root: self.dev_root,
                    limits: self.limits.clone(),
                    tee_policy: self.tee_policy.clone(),
                    owner: self.owner,
                    system: self.system.clone(),
                }
                .encode(),
            ),
            (None, Some(owner)) => phat_primitives::blake2_256(
                &GenesisV4 {
                    balances: self.balances.clone(),
                    encryption: self.encryption,
                    dev_root: self.dev_root,
                    limits: self.limits.clone(),
                    tee_policy: self.tee_policy.clone(),
                    owner: Some(owner),
                }
                .encode(),
            ),
            (None, None) => phat_primitives::blake2_256(
                &GenesisV3 {
                    balances: self.balances.clone(),
                    encryption: self.encryption,
                    dev_root: self.dev_root,
                    limits: self.limits.clone(),
                    tee_policy: self.tee_policy.clone(),
                }
                .encode(),
            ),
        }
    }
}

/// Sets up the genesis's system contract in `session` (the genesis session, before command 1):
/// uploads the drivers' code and the system contract's, and instantiates it from
/// [`SystemSetup::instantiator`]. Genesis state is free: the instantiator pays no storage
/// deposit. A setup the runtime refuses (code over the cluster's bounds) leaves the cluster
/// without a system contract, the same way on every worker, and says so in the log; only a
/// failure of this worker's own store is an error (the batch is retried).
pub(crate) fn set_up_system(
    session: &mut phat_runtime::Session,
    genesis: &Genesis,
    setup: &SystemSetup,
    gas_limit: phat_primitives::Gas,
) -> Result<Option<AccountId>, WorkerError> {
    let refused = |what: &str, e: phat_runtime::ExecError| {
        if e.is_deterministic() {
            tracing::error!("genesis: the system contract was not set up ({what}: {e})");
            Ok(None)
        } else {
            Err(ApplyError::Genesis(format!("{what}: {e}")).into())
        }
    };
    if let Err(m) = setup.check() {
        tracing::error!("genesis: the system contract was not set up: {m}");
        return Ok(None);
    }
    for (name, code) in &setup.drivers {
        if let Err(e) = session.upload_code(code) {
            return refused(&format!("uploading driver {name}"), e);
        }
    }
    let code_hash = match session.upload_code(&setup.code) {
        Ok(h) => h,
        Err(e) => return refused("uploading its code", e),
    };
    let origin = SystemSetup::instantiator(genesis.owner);
    let before = match session.balance(&origin) {
        Ok(b) => b,
        Err(e) => return refused("reading the owner's balance", e),
    };
    session.set_balance(&origin, phat_primitives::Balance::MAX / 2);
    let outcome = session.instantiate(
        origin,
        code_hash,
        0,
        setup.constructor_input(),
        phat_system::SALT,
        gas_limit,
    );
    session.set_balance(&origin, before);
    match outcome {
        Ok(o) if !o.reverted && o.address.is_some() => {
            tracing::debug!("genesis: system contract {:?}", o.address);
            Ok(o.address)
        }
        Ok(_) => {
            tracing::error!("genesis: the system contract's constructor reverted");
            Ok(None)
        }
        Err(e) => refused("instantiating it", e),
    }
}

/// The resource bounds that decide command outcomes, so they are the cluster's (set at
/// genesis, equal on every worker), not each worker's. The defaults, and why, are in
/// `docs/BOUNDS.md`.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, serde::Serialize, serde::Deserialize)]
pub struct ClusterLimits {
    /// [`Limits::max_code_size`].
    pub max_code_size: u32,
    /// [`Limits::max_memory_pages`].
    pub max_memory_pages: u32,
    /// [`Limits::max_call_depth`].
    pub max_call_depth: u32,
    /// [`Limits::max_storage_key_len`].
    pub max_storage_key_len: u32,
    /// [`Limits::max_storage_value_len`].
    pub max_storage_value_len: u32,
    /// [`Limits::max_output_len`].
    pub max_output_len: u32,
    /// [`Limits::max_event_len`].
    pub max_event_len: u32,
    /// [`Limits::max_event_topics`].
    pub max_event_topics: u32,
    /// [`Limits::max_debug_buffer_len`].
    pub max_debug_buffer_len: u32,
    /// [`Limits::max_events_per_call`].
    pub max_events_per_call: u32,
    /// [`Limits::max_event_bytes_per_call`].
    pub max_event_bytes_per_call: u64,
    /// [`Limits::max_storage_written_per_call`].
    pub max_storage_written_per_call: u64,
    /// [`Limits::max_contract_storage`].
    pub max_contract_storage: u64,
    /// [`Limits::max_gas_per_call`].
    pub max_gas_per_call: u64,
    /// [`Limits::storage_deposit_per_byte`].
    pub storage_deposit_per_byte: u64,
}

impl From<&Limits> for ClusterLimits {
    fn from(l: &Limits) -> Self {
        let u32_of = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        Self {
            max_code_size: u32_of(l.max_code_size),
            max_memory_pages: u32::try_from(l.max_memory_pages).unwrap_or(u32::MAX),
            max_call_depth: u32_of(l.max_call_depth),
            max_storage_key_len: l.max_storage_key_len,
            max_storage_value_len: l.max_storage_value_len,
            max_output_len: l.max_output_len,
            max_event_len: l.max_event_len,
            max_event_topics: l.max_event_topics,
            max_debug_buffer_len: u32_of(l.max_debug_buffer_len),
            max_events_per_call: l.max_events_per_call,
            max_event_bytes_per_call: l.max_event_bytes_per_call,
            max_storage_written_per_call: l.max_storage_written_per_call,
            max_contract_storage: l.max_contract_storage,
            max_gas_per_call: l.max_gas_per_call,
            storage_deposit_per_byte: l.storage_deposit_per_byte,
        }
    }
}

/// The storage deposit of a new cluster: with `phat dev`'s dev balances (10^21 each) an
/// account pays for 100 MB of state.
pub const DEFAULT_STORAGE_DEPOSIT: u64 = 10_000_000_000_000;

impl Default for ClusterLimits {
    fn default() -> Self {
        Self {
            storage_deposit_per_byte: DEFAULT_STORAGE_DEPOSIT,
            ..Self::from(&Limits::default())
        }
    }
}

impl ClusterLimits {
    /// Puts these bounds into a worker's runtime limits (the worker-local ones, such as the
    /// query time limit and the wasm stack, stay as configured).
    pub fn apply_to(&self, l: &mut Limits) {
        l.max_code_size = self.max_code_size as usize;
        l.max_memory_pages = u64::from(self.max_memory_pages);
        l.max_call_depth = self.max_call_depth as usize;
        l.max_storage_key_len = self.max_storage_key_len;
        l.max_storage_value_len = self.max_storage_value_len;
        l.max_output_len = self.max_output_len;
        l.max_event_len = self.max_event_len;
        l.max_event_topics = self.max_event_topics;
        l.max_debug_buffer_len = self.max_debug_buffer_len as usize;
        l.max_events_per_call = self.max_events_per_call;
        l.max_event_bytes_per_call = self.max_event_bytes_per_call;
        l.max_storage_written_per_call = self.max_storage_written_per_call;
        l.max_contract_storage = self.max_contract_storage;
        l.max_gas_per_call = self.max_gas_per_call;
        l.storage_deposit_per_byte = self.storage_deposit_per_byte;
    }

    /// Sets the bound named `name` (a field name, e.g. `max_contract_storage`) to `value`.
    pub fn set(&mut self, name: &str, value: u64) -> Result<(), String> {
        let small = |v: u64| u32::try_from(v).map_err(|_| format!("{name}: {v} is too large"));
        match name {
            "max_code_size" => self.max_code_size = small(value)?,
            "max_memory_pages" => self.max_memory_pages = small(value)?,
            "max_call_depth" => self.max_call_depth = small(value)?,
            "max_storage_key_len" => self.max_storage_key_len = small(value)?,
            "max_storage_value_len" => self.max_storage_value_len = small(value)?,
            "max_output_len" => self.max_output_len = small(value)?,
            "max_event_len" => self.max_event_len = small(value)?,
            "max_event_topics" => self.max_event_topics = small(value)?,
            "max_debug_buffer_len" => self.max_debug_buffer_len = small(value)?,
            "max_events_per_call" => self.max_events_per_call = small(value)?,
            "max_event_bytes_per_call" => self.max_event_bytes_per_call = value,
            "max_storage_written_per_call" => self.max_storage_written_per_call = value,
            "max_contract_storage" => self.max_contract_storage = value,
            "max_gas_per_call" => self.max_gas_per_call = value,
            "storage_deposit_per_byte" => self.storage_deposit_per_byte = value,
            other => return Err(format!("no bound named `{other}`")),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_old_genesis_still_decodes_and_a_new_one_round_trips() {
        let old = (vec![(AccountId([1; 32]), 5u128)], true, Some([2u8; 32])).encode();
        let g = Genesis::decode_stored(&old).unwrap();
        assert_eq!(g.balances, vec![(AccountId([1; 32]), 5)]);
        assert!(g.limits.is_none());
        let mut limits = ClusterLimits::default();
        limits.set("max_contract_storage", 1 << 20).unwrap();
        let new = Genesis {
            limits: Some(limits.clone()),
            ..g
        };
        assert_eq!(Genesis::decode_stored(&new.encode()).unwrap(), new);
        // The layout before the TEE policy: the same fields without it.
        let v2 = (
            new.balances.clone(),
            new.encryption,
            new.dev_root,
            new.limits.clone(),
        )
            .encode();
        assert_eq!(Genesis::decode_stored(&v2).unwrap(), new);
        let with_tee = Genesis {
            tee_policy: Some(r#"{"kinds": ["sgx-dcap"]}"#.into()),
            ..new.clone()
        };
        assert_eq!(
            Genesis::decode_stored(&with_tee.encode()).unwrap(),
            with_tee
        );
        // The layout before the system contract, and its digest, are kept.
        let owned = Genesis {
            owner: Some(AccountId([3; 32])),
            ..with_tee.clone()
        };
        let v4 = GenesisV4 {
            balances: owned.balances.clone(),
            encryption: owned.encryption,
            dev_root: owned.dev_root,
            limits: owned.limits.clone(),
            tee_policy: owned.tee_policy.clone(),
            owner: owned.owner,
        }
        .encode();
        assert_eq!(Genesis::decode_stored(&v4).unwrap(), owned);
        assert_eq!(owned.digest(), phat_primitives::blake2_256(&v4));
        let with_system = Genesis {
            system: Some(SystemSetup::bundled()),
            ..owned.clone()
        };
        assert_eq!(
            Genesis::decode_stored(&with_system.encode()).unwrap(),
            with_system
        );
        assert_ne!(with_system.digest(), owned.digest());
        // The layout before the deploy permission, and its digest, are kept.
        let v5 = GenesisV5 {
            balances: with_system.balances.clone(),
            encryption: with_system.encryption,
            dev_root: with_system.dev_root,
            limits: with_system.limits.clone(),
            tee_policy: with_system.tee_policy.clone(),
            owner: with_system.owner,
            system: with_system.system.clone(),
        }
        .encode();
        assert_eq!(Genesis::decode_stored(&v5).unwrap(), with_system);
        assert_eq!(with_system.digest(), phat_primitives::blake2_256(&v5));
        let closed = Genesis {
            deploy: DeployPermission::OwnerOnly,
            ..with_system.clone()
        };
        assert_eq!(Genesis::decode_stored(&closed.encode()).unwrap(), closed);
        assert_ne!(closed.digest(), with_system.digest());
        assert_eq!(
            with_system.system_contract(),
            Some(SystemSetup::bundled().address(owned.owner))
        );
        assert_eq!(owned.system_contract(), None);
        let mut applied = Limits::default();
        limits.apply_to(&mut applied);
        assert_eq!(applied.max_contract_storage, 1 << 20);
        assert_eq!(ClusterLimits::from(&applied), limits);
        assert!(limits.set("max_nonsense", 1).is_err());
        assert!(limits.set("max_event_len", u64::MAX).is_err());
        assert!(Genesis::decode_stored(&[1, 2, 3]).is_err());
    }

    #[test]
    fn an_owner_only_cluster_lets_its_owner_and_the_allowed_deploy() {
        let (owner, allowed, stranger) =
            (AccountId([1; 32]), AccountId([2; 32]), AccountId([3; 32]));
        let public = Genesis {
            owner: Some(owner),
            ..Genesis::default()
        };
        assert!(may_deploy(&public, &[], &stranger));
        let closed = Genesis {
            deploy: DeployPermission::OwnerOnly,
            ..public
        };
        assert!(may_deploy(&closed, &[], &owner));
        assert!(!may_deploy(&closed, &[], &stranger));
        assert!(may_deploy(&closed, &[allowed], &allowed));
        assert!(!may_deploy(&closed, &[allowed], &stranger));
        // Owner-only without an owner: only the allowed, who only an owner could name.
        let ownerless = Genesis {
            owner: None,
            deploy: DeployPermission::OwnerOnly,
            ..Genesis::default()
        };
        assert!(!may_deploy(&ownerless, &[], &owner));
    }
}

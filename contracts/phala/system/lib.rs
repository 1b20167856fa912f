//! phat's system contract: one instance per cluster, made at genesis with the cluster owner as
//! its owner, found by contracts through `pink::ext().system_contract_id()`.
//!
//! It answers Phala's `pink::system::System` and `ContractDeposit` messages with the same
//! selectors, so `SystemRef::instance()` calls from contracts written for Phala work unmodified.
//! Block hooks (`set_hook`) become schedules of the contract's own. What phat has no use for
//! (SideVM programs, contract weights, runtime upgrades) answers `Err(ConditionNotMet)` and
//! logs why, rather than trapping. The table of which
//! messages behave like Phala's is in `docs/pink.md`.
#![cfg_attr(not(feature = "std"), no_std, no_main)]

extern crate alloc;

#[pink_extension::contract(env = PinkEnvironment)]
mod system {
    use alloc::string::String;
    use alloc::vec::Vec;
    use ink::storage::Mapping;
    use pink::system::{CodeType, ContractDeposit, DriverError, Error, Result, VersionTuple};
    use pink::{HookPoint, PinkEnvironment, SidevmConfig, WorkerId};
    use pink_extension as pink;

    /// How often a block-end hook runs: Phala's block time.
    const HOOK_PERIOD_MS: u64 = 12_000;

    /// phat's schedule types for the extension's `schedule_set_for` (function 0x8003), as
    /// the worker decodes them.
    mod hook {
        use alloc::string::String;
        use alloc::vec::Vec;

        /// phat's `schedule_set_for`: the system contract sets another contract's schedule.
        pub const SCHEDULE_SET_FOR: u32 = 0x8003;

        /// `ScheduleSpec`.
        #[derive(scale::Encode, scale::Decode)]
        #[cfg_attr(feature = "std", derive(scale_info::TypeInfo))]
        pub enum Spec {
            /// A period.
            Every { ms: u64 },
            /// A cron expression (unused here).
            #[allow(dead_code)]
            Cron { expr: String },
        }

        /// `MissedTicks`.
        #[derive(scale::Encode, scale::Decode)]
        #[cfg_attr(feature = "std", derive(scale_info::TypeInfo))]
        pub enum Missed {
            /// Dropped.
            Skip,
            /// Counted (unused here).
            #[allow(dead_code)]
            RunOnce,
        }

        /// `ScheduleDef`.
        #[derive(scale::Encode, scale::Decode)]
        #[cfg_attr(feature = "std", derive(scale_info::TypeInfo))]
        pub struct Def {
            pub spec: Spec,
            pub data: Vec<u8>,
            pub gas_limit: u64,
            pub missed: Missed,
        }

        /// `ScheduleError`.
        #[derive(Debug, scale::Encode, scale::Decode)]
        #[cfg_attr(feature = "std", derive(scale_info::TypeInfo))]
        pub enum Refused {
            /// Not a valid schedule.
            BadSchedule,
            /// Too many changes in one call.
            TooMany,
            /// Not permitted.
            NotPermitted,
        }
    }

    /// Longest driver name accepted, in bytes.
    const MAX_DRIVER_NAME: usize = 64;
    /// Most entries kept in one driver's history (the oldest are dropped).
    const MAX_DRIVER_HISTORY: usize = 32;

    /// The cluster's owner, its administrators and its registry of drivers.
    #[ink(storage)]
    pub struct System {
        /// The cluster owner (the genesis owner): may grant admins, set drivers, upgrade.
        owner: AccountId,
        /// Contracts or accounts the owner made administrators (may set drivers).
        admins: Mapping<AccountId, ()>,
        /// Each driver's current contract and the block it was set at.
        drivers: Mapping<String, (BlockNumber, AccountId)>,
        /// Each driver's past settings, oldest first (at most [`MAX_DRIVER_HISTORY`]).
        history: Mapping<String, Vec<(BlockNumber, AccountId)>>,
    }

    /// A driver was set.
    #[ink(event)]
    pub struct DriverChanged {
        /// The driver's name.
        #[ink(topic)]
        name: String,
        /// The contract it named before, if any.
        previous: Option<AccountId>,
        /// The contract it names now.
        current: AccountId,
    }

    /// The owner made an administrator. Named, shaped and placed (the second event) as
    /// Phala's, so clients decoding Phala's system events decode these.
    #[ink(event)]
    pub struct AdministratorAdded {
        /// The new administrator.
        user: AccountId,
    }

    /// The owner set the system contract's code.
    #[ink(event)]
    pub struct CodeUpgraded {
        /// The new code hash.
        code_hash: Hash,
    }

    impl System {
        /// The system contract of a new cluster, owned by the caller (the genesis owner),
        /// with `drivers` registered (at genesis: `JsDelegate2`, the JavaScript delegate).
        #[ink(constructor)]
        pub fn new(drivers: Vec<(String, AccountId)>) -> Self {
            let mut this = Self {
                owner: Self::env().caller(),
                admins: Mapping::default(),
                drivers: Mapping::default(),
                history: Mapping::default(),
            };
            for (name, contract) in drivers {
                let _ = this.put_driver(name, contract);
            }
            this
        }

        /// The cluster owner.
        #[ink(message)]
        pub fn owner(&self) -> AccountId {
            self.owner
        }

        /// Replaces this contract's code with `code_hash` (uploaded beforehand); the owner
        /// only. phat's upgrade path: storage stays, the next call runs the new code.
        #[ink(message)]
        pub fn set_code(&mut self, code_hash: Hash) -> Result<()> {
            self.ensure_owner()?;
            let mut raw = [0u8; 32];
            raw.copy_from_slice(code_hash.as_ref());
            if !pink::ext().code_exists(raw, false) {
                return Err(Error::CodeNotFound);
            }
            ink::env::set_code_hash2::<PinkEnvironment>(&code_hash)
                .map_err(|_| Error::CodeNotFound)?;
            self.env().emit_event(CodeUpgraded { code_hash });
            Ok(())
        }

        fn ensure_owner(&self) -> Result<()> {
            if self.env().caller() == self.owner {
                Ok(())
            } else {
                Err(Error::PermisionDenied)
            }
        }

        fn ensure_admin(&self) -> Result<()> {
            let caller = self.env().caller();
            if caller == self.owner || self.admins.contains(caller) {
                Ok(())
            } else {
                Err(Error::PermisionDenied)
            }
        }

        fn put_driver(&mut self, name: String, contract: AccountId) -> Result<()> {
            if name.is_empty() || name.len() > MAX_DRIVER_NAME {
                return Err(Error::ConditionNotMet);
            }
            let block = self.env().block_number();
            let previous = self.drivers.get(&name).map(|(_, id)| id);
            let mut history = self.history.get(&name).unwrap_or_default();
            if history.len() >= MAX_DRIVER_HISTORY {
                history.remove(0);
            }
            history.push((block, contract));
            self.history.insert(&name, &history);
            self.drivers.insert(&name, &(block, contract));
            self.env().emit_event(DriverChanged {
                name,
                previous,
                current: contract,
            });
            Ok(())
        }

        /// A refusal of what phat does not do, logged with the reason.
        fn unsupported(what: &str) -> Result<()> {
            pink::warn!("system: {} is not supported by phat", what);
            Err(Error::ConditionNotMet)
        }
    }

    impl pink::system::System for System {
        #[ink(message)]
        fn version(&self) -> VersionTuple {
            (1, 0, 0)
        }

        #[ink(message)]
        fn grant_admin(&mut self, contract_id: AccountId) -> Result<()> {
            self.ensure_owner()?;
            self.admins.insert(contract_id, &());
            self.env().emit_event(AdministratorAdded { user: contract_id });
            Ok(())
        }

        #[ink(message)]
        fn is_admin(&self, contract_id: AccountId) -> bool {
            self.admins.contains(contract_id)
        }

        #[ink(message)]
        fn set_driver(&mut self, name: String, contract_id: AccountId) -> Result<()> {
            self.ensure_admin()?;
            self.put_driver(name, contract_id)
        }

        #[ink(message)]
        fn get_driver(&self, name: String) -> Option<AccountId> {
            self.drivers.get(&name).map(|(_, id)| id)
        }

        #[ink(message)]
        fn get_driver2(&self, name: String) -> Option<(BlockNumber, AccountId)> {
            self.drivers.get(&name)
        }

        #[ink(message)]
        fn deploy_sidevm_to(&self, _contract_id: AccountId, _code_hash: pink::Hash) -> Result<()> {
            self.ensure_admin()?;
            Self::unsupported("deploy_sidevm_to (SideVM programs)")
        }

        #[ink(message)]
        fn stop_sidevm_at(&self, _contract_id: AccountId) -> Result<()> {
            self.ensure_admin()?;
            Self::unsupported("stop_sidevm_at (SideVM programs)")
        }

        /// Phala's block-end hook, as a schedule of the contract's own: the cluster calls
        /// `selector` on `contract`, as the contract itself, every [`HOOK_PERIOD_MS`] (a Phala
        /// block's time), the deposit paid from the contract's balance. Set again, it replaces
        /// the hook. Administrators set it for any contract, a contract for itself.
        #[ink(message)]
        fn set_hook(
            &mut self,
            hook: HookPoint,
            contract_id: AccountId,
            selector: u32,
            gas_limit: u64,
        ) -> Result<()> {
            if self.env().caller() != contract_id {
                self.ensure_admin()?;
            }
            match hook {
                HookPoint::OnBlockEnd => {}
            }
            let def = hook::Def {
                spec: hook::Spec::Every { ms: HOOK_PERIOD_MS },
                data: selector.to_be_bytes().to_vec(),
                gas_limit,
                missed: hook::Missed::Skip,
            };
            let answer: core::result::Result<(), hook::Refused> =
                ink::env::chain_extension::ChainExtensionMethod::build(hook::SCHEDULE_SET_FOR)
                    .input::<(AccountId, hook::Def)>()
                    .output::<core::result::Result<(), hook::Refused>, false>()
                    .ignore_error_code()
                    .call(&(contract_id, def));
            answer.map_err(|why| {
                pink::warn!("system: set_hook refused: {:?}", why);
                Error::ConditionNotMet
            })
        }

        #[ink(message)]
        fn set_contract_weight(&self, _contract_id: AccountId, _weight: u32) -> Result<()> {
            self.ensure_admin()?;
            Self::unsupported("set_contract_weight (contract weights)")
        }

        #[ink(message)]
        fn total_balance_of(&self, account: AccountId) -> Balance {
            pink::ext().balance_of(account).0
        }

        #[ink(message)]
        fn free_balance_of(&self, account: AccountId) -> Balance {
            pink::ext().balance_of(account).1
        }

        #[ink(message)]
        fn upgrade_system_contract(&mut self) -> Result<()> {
            self.ensure_owner()?;
            match pink::ext().import_latest_system_code(self.env().caller()) {
                Some(code_hash) if Some(Hash::from(code_hash)) != self.env().own_code_hash().ok() => {
                    self.set_code(code_hash.into())
                }
                Some(_) => Ok(()),
                None => {
                    pink::warn!("system: phat imports no system code; upload it and call set_code");
                    Err(Error::CodeNotFound)
                }
            }
        }

        #[ink(message)]
        fn do_upgrade(&self, _from_version: VersionTuple) -> Result<()> {
            // Called by the system contract itself on its new code; nothing to migrate yet.
            if self.env().caller() != self.env().account_id() {
                return Err(Error::PermisionDenied);
            }
            Ok(())
        }

        #[ink(message)]
        fn upgrade_runtime(&mut self, _version: (u32, u32)) -> Result<()> {
            self.ensure_owner()?;
            Self::unsupported("upgrade_runtime (the runtime is the worker binary's)")
        }

        #[ink(message)]
        fn code_exists(&self, code_hash: pink::Hash, code_type: CodeType) -> bool {
            pink::ext().code_exists(code_hash, code_type.is_sidevm())
        }

        #[ink(message)]
        fn code_hash(&self, account: AccountId) -> Option<ink::primitives::Hash> {
            ink::env::code_hash::<PinkEnvironment>(&account).ok()
        }

        #[ink(message)]
        fn driver_history(&self, name: String) -> Option<Vec<(BlockNumber, AccountId)>> {
            self.history.get(&name)
        }

        #[ink(message)]
        fn current_event_chain_head(&self) -> (u64, pink::Hash) {
            pink::ext().current_event_chain_head()
        }

        #[ink(message)]
        fn deploy_sidevm_to_workers(
            &self,
            _contract_id: AccountId,
            _code_hash: pink::Hash,
            _workers: Vec<WorkerId>,
            _config: SidevmConfig,
        ) -> Result<()> {
            self.ensure_admin()?;
            Self::unsupported("deploy_sidevm_to_workers (SideVM programs)")
        }

        #[ink(message)]
        fn set_sidevm_deadline(&self, _contract_id: AccountId, _run_until: BlockNumber) -> Result<()> {
            self.ensure_admin()?;
            Self::unsupported("set_sidevm_deadline (SideVM programs)")
        }
    }

    impl ContractDeposit for System {
        /// Forwards a deposit change to the `ContractDeposit` driver, if one is set; the owner
        /// or an administrator only (phat itself keeps no deposits and never calls this).
        #[ink(message)]
        fn change_deposit(
            &mut self,
            contract_id: AccountId,
            deposit: Balance,
        ) -> core::result::Result<(), DriverError> {
            self.ensure_admin().map_err(|_| DriverError::BadOrigin)?;
            // Read the driver here: asking `SystemRef` would call this contract again.
            let Some((_, driver)) = self.drivers.get(String::from("ContractDeposit")) else {
                return Ok(());
            };
            use ink::env::call::{build_call, ExecutionInput, Selector};
            build_call::<PinkEnvironment>()
                .call(driver)
                .exec_input(
                    ExecutionInput::new(Selector::new([0xa2, 0x4b, 0xcb, 0x44]))
                        .push_arg(contract_id)
                        .push_arg(deposit),
                )
                .returns::<core::result::Result<(), DriverError>>()
                .try_invoke()
                .map_err(|_| DriverError::Other("the ContractDeposit driver failed".into()))?
                .map_err(|_| DriverError::Other("the ContractDeposit driver failed".into()))?
        }
    }
}

//! An ERC-20 operator: a phat contract that holds an Ethereum key no human holds and moves an
//! ERC-20 token with it, under a policy its owner sets (allowed recipients, a daily limit per
//! recipient).
//!
//! Nonce safety across workers: every worker of the cluster can sign for the contract, so two
//! workers must never sign two different transactions with one nonce. Hence a transfer is two
//! steps:
//! 1. the command `request_transfer(to, amount)` checks the policy and records an *intent*
//!    with the next nonce and the fees frozen; commands are ordered by the ledger, so every
//!    worker assigns the same nonce to the same intent and no nonce is given out twice;
//! 2. the query `send(id)` builds the intent's EIP-1559 transaction from the intent alone and
//!    signs it deterministically (RFC 6979), so every worker produces the same bytes and hash:
//!    sending it twice, through one worker or two, is harmless (the node answers "already
//!    known" or "nonce too low", the hash is found, and the same hash is returned).
#![cfg_attr(not(feature = "std"), no_std, no_main)]

#[ink::contract]
mod erc20_operator {
    use ink::prelude::string::String;
    use ink::storage::Mapping;
    use phat_evm::{Address, BlockTag, Eip1559, Receipt, Rpc, SignedTx, Signer, U256};

    /// A 20-byte Ethereum address.
    pub type EthAddress = [u8; 20];
    /// A 32-byte transaction hash.
    pub type TxHash = [u8; 32];

    /// One day in ledger time (milliseconds).
    const DAY_MS: u64 = 86_400_000;

    /// Where and how to transact.
    #[derive(Clone, Debug, PartialEq, Eq)]
    #[ink::scale_derive(Encode, Decode, TypeInfo)]
    #[cfg_attr(feature = "std", derive(ink::storage::traits::StorageLayout))]
    pub struct Config {
        /// The node's JSON-RPC URL.
        pub rpc_url: String,
        /// The chain id (EIP-155).
        pub chain_id: u64,
        /// The ERC-20's address.
        pub token: EthAddress,
        /// Max fee per gas of new intents, wei.
        pub max_fee_per_gas: u128,
        /// Max priority fee per gas of new intents, wei.
        pub max_priority_fee_per_gas: u128,
        /// Gas limit of new intents.
        pub gas_limit: u64,
    }

    /// A recorded transfer: everything its transaction is built from.
    #[derive(Clone, Debug, PartialEq, Eq)]
    #[ink::scale_derive(Encode, Decode, TypeInfo)]
    #[cfg_attr(feature = "std", derive(ink::storage::traits::StorageLayout))]
    pub struct Intent {
        /// The token recipient.
        pub to: EthAddress,
        /// Token amount (smallest unit).
        pub amount: u128,
        /// The operator's nonce this transfer uses.
        pub nonce: u64,
        /// Chain id.
        pub chain_id: u64,
        /// The ERC-20.
        pub token: EthAddress,
        /// Max fee per gas, wei.
        pub max_fee_per_gas: u128,
        /// Max priority fee per gas, wei.
        pub max_priority_fee_per_gas: u128,
        /// Gas limit.
        pub gas_limit: u64,
        /// The ledger day (ms / 86 400 000) it was requested on.
        pub day: u64,
    }

    /// What can go wrong.
    #[derive(Clone, Debug, PartialEq, Eq)]
    #[ink::scale_derive(Encode, Decode, TypeInfo)]
    pub enum Error {
        /// Only the owner may do this.
        NotOwner,
        /// `configure` has not been called.
        NotConfigured,
        /// The recipient is not on the allow-list.
        NotAllowed,
        /// The transfer would pass the recipient's daily limit.
        OverDailyLimit {
            /// The limit per recipient and day.
            limit: u128,
            /// Requested for this recipient today so far.
            spent_today: u128,
            /// This request.
            requested: u128,
        },
        /// A transfer of nothing.
        ZeroAmount,
        /// No intent with this id.
        UnknownIntent,
        /// The intent's nonce was used by another transaction: it can never be mined. Request
        /// the transfer again (after `configure` with the chain's next nonce if needed).
        NonceTaken {
            /// The nonce.
            nonce: u64,
        },
        /// A balance does not fit in 128 bits.
        Overflow,
        /// The Ethereum node could not be reached or answered with an error.
        Eth(phat_evm::Error),
    }

    impl From<phat_evm::Error> for Error {
        fn from(e: phat_evm::Error) -> Self {
            Error::Eth(e)
        }
    }

    /// A transfer was requested.
    #[ink(event)]
    pub struct TransferRequested {
        /// The intent's id.
        #[ink(topic)]
        id: u64,
        /// Recipient.
        to: EthAddress,
        /// Amount.
        amount: u128,
        /// The nonce it uses.
        nonce: u64,
    }

    /// The operator's state (replicated: changed by commands only).
    #[ink(storage)]
    pub struct Erc20Operator {
        owner: AccountId,
        config: Option<Config>,
        next_nonce: u64,
        next_intent: u64,
        daily_limit: u128,
        allowed: Mapping<EthAddress, ()>,
        spent: Mapping<(EthAddress, u64), u128>,
        intents: Mapping<u64, Intent>,
    }

    impl Default for Erc20Operator {
        fn default() -> Self {
            Self::new()
        }
    }

    impl Erc20Operator {
        /// An operator owned by the caller; nothing is allowed until the owner configures it.
        #[ink(constructor)]
        pub fn new() -> Self {
            Self {
                owner: Self::env().caller(),
                config: None,
                next_nonce: 0,
                next_intent: 0,
                daily_limit: 0,
                allowed: Mapping::default(),
                spent: Mapping::default(),
                intents: Mapping::default(),
            }
        }

        fn only_owner(&self) -> Result<(), Error> {
            if self.env().caller() == self.owner {
                Ok(())
            } else {
                Err(Error::NotOwner)
            }
        }

        fn config_or_err(&self) -> Result<&Config, Error> {
            self.config.as_ref().ok_or(Error::NotConfigured)
        }

        fn rpc(&self) -> Result<Rpc, Error> {
            Ok(Rpc::new(&self.config_or_err()?.rpc_url))
        }

        /// Sets the node, chain, token, the nonce of the next intent and the fees and gas limit
        /// of new intents (owner). Intents already recorded keep theirs.
        #[ink(message)]
        #[allow(clippy::too_many_arguments)]
        pub fn configure(
            &mut self,
            rpc_url: String,
            chain_id: u64,
            token: EthAddress,
            start_nonce: u64,
            max_fee_per_gas: u128,
            max_priority_fee_per_gas: u128,
            gas_limit: u64,
        ) -> Result<(), Error> {
            self.only_owner()?;
            self.config = Some(Config {
                rpc_url,
                chain_id,
                token,
                max_fee_per_gas,
                max_priority_fee_per_gas,
                gas_limit,
            });
            self.next_nonce = start_nonce;
            Ok(())
        }

        /// Points the operator at another node of the same chain (owner); nonces and intents
        /// stay as they are.
        #[ink(message)]
        pub fn set_rpc_url(&mut self, rpc_url: String) -> Result<(), Error> {
            self.only_owner()?;
            let config = self.config.as_mut().ok_or(Error::NotConfigured)?;
            config.rpc_url = rpc_url;
            Ok(())
        }

        /// Sets the most each recipient may be sent per ledger day (owner).
        #[ink(message)]
        pub fn set_policy(&mut self, daily_limit: u128) -> Result<(), Error> {
            self.only_owner()?;
            self.daily_limit = daily_limit;
            Ok(())
        }

        /// Puts `recipient` on the allow-list (owner).
        #[ink(message)]
        pub fn allow(&mut self, recipient: EthAddress) -> Result<(), Error> {
            self.only_owner()?;
            self.allowed.insert(recipient, &());
            Ok(())
        }

        /// Takes `recipient` off the allow-list (owner).
        #[ink(message)]
        pub fn disallow(&mut self, recipient: EthAddress) -> Result<(), Error> {
            self.only_owner()?;
            self.allowed.remove(recipient);
            Ok(())
        }

        /// Changes the fees of a recorded intent (owner), to replace a transaction that is
        /// stuck for its low fee: the intent keeps its nonce, so at most one of its versions
        /// is ever mined. `send` it again afterwards.
        #[ink(message)]
        pub fn reprice(
            &mut self,
            id: u64,
            max_fee_per_gas: u128,
            max_priority_fee_per_gas: u128,
        ) -> Result<(), Error> {
            self.only_owner()?;
            let mut intent = self.intents.get(id).ok_or(Error::UnknownIntent)?;
            intent.max_fee_per_gas = max_fee_per_gas;
            intent.max_priority_fee_per_gas = max_priority_fee_per_gas;
            self.intents.insert(id, &intent);
            Ok(())
        }

        /// Records a transfer of `amount` tokens to `to` within the policy and gives it the
        /// next nonce; returns the intent's id. Anyone may ask; the policy decides.
        #[ink(message)]
        pub fn request_transfer(&mut self, to: EthAddress, amount: u128) -> Result<u64, Error> {
            let config = self.config_or_err()?.clone();
            if amount == 0 {
                return Err(Error::ZeroAmount);
            }
            if !self.allowed.contains(to) {
                return Err(Error::NotAllowed);
            }
            let day = self.env().block_timestamp() / DAY_MS;
            let spent_today = self.spent.get((to, day)).unwrap_or(0);
            let total = spent_today.checked_add(amount);
            if total.is_none_or(|t| t > self.daily_limit) {
                return Err(Error::OverDailyLimit {
                    limit: self.daily_limit,
                    spent_today,
                    requested: amount,
                });
            }
            self.spent.insert((to, day), &total.unwrap_or(u128::MAX));
            let id = self.next_intent;
            let nonce = self.next_nonce;
            self.intents.insert(
                id,
                &Intent {
                    to,
                    amount,
                    nonce,
                    chain_id: config.chain_id,
                    token: config.token,
                    max_fee_per_gas: config.max_fee_per_gas,
                    max_priority_fee_per_gas: config.max_priority_fee_per_gas,
                    gas_limit: config.gas_limit,
                    day,
                },
            );
            self.next_intent = id + 1;
            self.next_nonce = nonce + 1;
            self.env().emit_event(TransferRequested {
                id,
                to,
                amount,
                nonce,
            });
            Ok(id)
        }

        /// The intent's signed transaction: a function of the intent alone.
        fn signed(&self, intent: &Intent) -> SignedTx {
            let tx = Eip1559 {
                chain_id: intent.chain_id,
                nonce: intent.nonce,
                gas_limit: intent.gas_limit,
                max_fee_per_gas: intent.max_fee_per_gas,
                max_priority_fee_per_gas: intent.max_priority_fee_per_gas,
                to: Address::from(intent.token),
                value: U256::ZERO,
                input: phat_evm::erc20_transfer(
                    Address::from(intent.to),
                    U256::from(intent.amount),
                ),
            };
            Signer::contract().sign(&tx)
        }

        /// Sends intent `id`'s transaction (a query; any worker, any number of times) and
        /// returns its hash. Every worker sends the same bytes, so only one transfer happens.
        #[ink(message)]
        pub fn send(&self, id: u64) -> Result<TxHash, Error> {
            let intent = self.intents.get(id).ok_or(Error::UnknownIntent)?;
            let rpc = self.rpc()?;
            let signed = self.signed(&intent);
            match rpc.send_idempotent(&signed) {
                Ok(hash) => {
                    phat_ink::info!("intent {} sent: {}", id, hash);
                    Ok(hash.0)
                }
                Err(phat_evm::Error::Rpc { message, .. })
                    if message.to_ascii_lowercase().contains("nonce too low") =>
                {
                    Err(Error::NonceTaken {
                        nonce: intent.nonce,
                    })
                }
                Err(e) => Err(e.into()),
            }
        }

        /// The hash intent `id`'s transaction has (without sending it).
        #[ink(message)]
        pub fn tx_hash(&self, id: u64) -> Result<TxHash, Error> {
            let intent = self.intents.get(id).ok_or(Error::UnknownIntent)?;
            Ok(self.signed(&intent).hash.0)
        }

        /// Intent `id`'s receipt on the chain: `None` while it is not mined (a query).
        #[ink(message)]
        pub fn status(&self, id: u64) -> Result<Option<Receipt>, Error> {
            let intent = self.intents.get(id).ok_or(Error::UnknownIntent)?;
            Ok(self.rpc()?.transaction_receipt(self.signed(&intent).hash)?)
        }

        /// The operator's Ethereum address (the contract's key, derived with salt
        /// `ethereum`; `phat info` shows it too).
        #[ink(message)]
        pub fn address(&self) -> EthAddress {
            Signer::contract().address().0 .0
        }

        /// The operator's ETH balance in wei (a query).
        #[ink(message)]
        pub fn eth_balance(&self) -> Result<u128, Error> {
            let b = self
                .rpc()?
                .balance(Signer::contract().address(), BlockTag::Latest)?;
            u128::try_from(b).map_err(|_| Error::Overflow)
        }

        /// The operator's token balance (a query).
        #[ink(message)]
        pub fn token_balance(&self) -> Result<u128, Error> {
            self.balance_of(self.address())
        }

        /// `holder`'s token balance (a query).
        #[ink(message)]
        pub fn balance_of(&self, holder: EthAddress) -> Result<u128, Error> {
            let token = Address::from(self.config_or_err()?.token);
            let b = phat_evm::erc20_balance(&self.rpc()?, token, Address::from(holder))?;
            u128::try_from(b).map_err(|_| Error::Overflow)
        }

        /// The operator's next nonce on the chain, counting pending transactions (a query):
        /// what to pass as `start_nonce` to `configure`.
        #[ink(message)]
        pub fn chain_nonce(&self) -> Result<u64, Error> {
            Ok(self
                .rpc()?
                .transaction_count(Signer::contract().address(), BlockTag::Pending)?)
        }

        /// A recorded intent.
        #[ink(message)]
        pub fn intent(&self, id: u64) -> Option<Intent> {
            self.intents.get(id)
        }

        /// How many intents were recorded (ids are 0..count).
        #[ink(message)]
        pub fn intent_count(&self) -> u64 {
            self.next_intent
        }

        /// The nonce the next intent gets.
        #[ink(message)]
        pub fn next_nonce(&self) -> u64 {
            self.next_nonce
        }

        /// The configuration.
        #[ink(message)]
        pub fn config(&self) -> Option<Config> {
            self.config.clone()
        }

        /// The owner.
        #[ink(message)]
        pub fn owner(&self) -> AccountId {
            self.owner
        }

        /// The daily limit per recipient.
        #[ink(message)]
        pub fn daily_limit(&self) -> u128 {
            self.daily_limit
        }

        /// Whether `recipient` is allowed.
        #[ink(message)]
        pub fn is_allowed(&self, recipient: EthAddress) -> bool {
            self.allowed.contains(recipient)
        }

        /// What `recipient` has been sent (requested) today, by ledger time.
        #[ink(message)]
        pub fn spent_today(&self, recipient: EthAddress) -> u128 {
            let day = self.env().block_timestamp() / DAY_MS;
            self.spent.get((recipient, day)).unwrap_or(0)
        }
    }
}

#[cfg(test)]
mod tests;

//! A fungible token with the ERC-20 interface, emitting `Transfer` and `Approval` events.
#![cfg_attr(not(feature = "std"), no_std, no_main)]

#[ink::contract]
mod erc20 {
    use ink::storage::Mapping;

    /// Balances, allowances and the fixed total supply.
    #[ink(storage)]
    #[derive(Default)]
    pub struct Erc20 {
        total_supply: Balance,
        balances: Mapping<AccountId, Balance>,
        allowances: Mapping<(AccountId, AccountId), Balance>,
    }

    /// Tokens moved (`from` is `None` when minted).
    #[ink(event)]
    pub struct Transfer {
        /// Sender, or `None` at mint.
        #[ink(topic)]
        from: Option<AccountId>,
        /// Recipient.
        #[ink(topic)]
        to: Option<AccountId>,
        /// Amount.
        value: Balance,
    }

    /// An allowance was set.
    #[ink(event)]
    pub struct Approval {
        /// Token owner.
        #[ink(topic)]
        owner: AccountId,
        /// Who may spend.
        #[ink(topic)]
        spender: AccountId,
        /// How much.
        value: Balance,
    }

    /// Why a transfer was refused.
    #[derive(Debug, PartialEq, Eq)]
    #[ink::scale_derive(Encode, Decode, TypeInfo)]
    pub enum Error {
        /// The sender holds less than the amount.
        InsufficientBalance,
        /// The spender's allowance is less than the amount.
        InsufficientAllowance,
    }

    /// The result type of fallible messages.
    pub type Result<T> = core::result::Result<T, Error>;

    impl Erc20 {
        /// Mints `total_supply` to the caller.
        #[ink(constructor)]
        pub fn new(total_supply: Balance) -> Self {
            let caller = Self::env().caller();
            let mut balances = Mapping::default();
            balances.insert(caller, &total_supply);
            Self::env().emit_event(Transfer {
                from: None,
                to: Some(caller),
                value: total_supply,
            });
            Self {
                total_supply,
                balances,
                allowances: Mapping::default(),
            }
        }

        /// The total supply.
        #[ink(message)]
        pub fn total_supply(&self) -> Balance {
            self.total_supply
        }

        /// The balance of `owner` (zero if unknown).
        #[ink(message)]
        pub fn balance_of(&self, owner: AccountId) -> Balance {
            self.balances.get(owner).unwrap_or_default()
        }

        /// How much `spender` may still take from `owner`.
        #[ink(message)]
        pub fn allowance(&self, owner: AccountId, spender: AccountId) -> Balance {
            self.allowances.get((owner, spender)).unwrap_or_default()
        }

        /// Moves `value` from the caller to `to`.
        #[ink(message)]
        pub fn transfer(&mut self, to: AccountId, value: Balance) -> Result<()> {
            let from = self.env().caller();
            self.move_tokens(from, to, value)
        }

        /// Lets `spender` take up to `value` from the caller.
        #[ink(message)]
        pub fn approve(&mut self, spender: AccountId, value: Balance) -> Result<()> {
            let owner = self.env().caller();
            self.allowances.insert((owner, spender), &value);
            self.env().emit_event(Approval {
                owner,
                spender,
                value,
            });
            Ok(())
        }

        /// Moves `value` from `from` to `to` using the caller's allowance.
        #[ink(message)]
        pub fn transfer_from(
            &mut self,
            from: AccountId,
            to: AccountId,
            value: Balance,
        ) -> Result<()> {
            let spender = self.env().caller();
            let allowance = self.allowance(from, spender);
            if allowance < value {
                return Err(Error::InsufficientAllowance);
            }
            self.move_tokens(from, to, value)?;
            self.allowances
                .insert((from, spender), &(allowance - value));
            Ok(())
        }

        fn move_tokens(&mut self, from: AccountId, to: AccountId, value: Balance) -> Result<()> {
            let from_balance = self.balance_of(from);
            if from_balance < value {
                return Err(Error::InsufficientBalance);
            }
            self.balances.insert(from, &(from_balance - value));
            let to_balance = self.balance_of(to);
            self.balances
                .insert(to, &(to_balance.saturating_add(value)));
            self.env().emit_event(Transfer {
                from: Some(from),
                to: Some(to),
                value,
            });
            Ok(())
        }
    }
}

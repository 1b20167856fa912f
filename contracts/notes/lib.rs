//! Private notes: each account keeps one text note. The confidentiality tests store a marker
//! here and then look for it on disk, in the ledger and in the logs.
#![cfg_attr(not(feature = "std"), no_std, no_main)]

#[ink::contract]
mod notes {
    use ink::prelude::string::String;
    use ink::storage::Mapping;

    /// Notes by owner.
    #[ink(storage)]
    #[derive(Default)]
    pub struct Notes {
        notes: Mapping<AccountId, String>,
        count: u32,
    }

    impl Notes {
        /// An empty notebook.
        #[ink(constructor)]
        pub fn new() -> Self {
            Self::default()
        }

        /// Sets the caller's note.
        #[ink(message)]
        pub fn set(&mut self, text: String) {
            if self.notes.insert(self.env().caller(), &text).is_none() {
                self.count += 1;
            }
        }

        /// The caller's note.
        #[ink(message)]
        pub fn mine(&self) -> Option<String> {
            self.notes.get(self.env().caller())
        }

        /// Whether the caller's note equals `text`.
        #[ink(message)]
        pub fn is(&self, text: String) -> bool {
            self.notes.get(self.env().caller()) == Some(text)
        }

        /// How many accounts hold a note.
        #[ink(message)]
        pub fn count(&self) -> u32 {
            self.count
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[ink::test]
        fn notes_are_per_caller() {
            let mut n = Notes::new();
            n.set("hello".into());
            assert_eq!(n.mine(), Some("hello".into()));
            assert!(n.is("hello".into()));
            assert_eq!(n.count(), 1);
            n.set("again".into());
            assert_eq!(n.count(), 1);
        }
    }
}

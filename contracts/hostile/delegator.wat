;; Lifecycle test helper: the constructor stores 0x07 under the 32-byte zero key; a call
;; delegates to the code hash given as input and returns what that code returned.
(module
  (import "seal0" "seal_input" (func $input (param i32 i32)))
  (import "seal0" "seal_set_storage" (func $set_storage (param i32 i32 i32)))
  (import "seal0" "seal_delegate_call" (func $delegate (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "seal0" "seal_return" (func $seal_return (param i32 i32 i32)))
  (import "env" "memory" (memory 1 16))
  (func (export "deploy")
    (i32.store8 (i32.const 200) (i32.const 7))
    (call $set_storage (i32.const 100) (i32.const 200) (i32.const 1)))
  (func (export "call")
    (i32.store (i32.const 0) (i32.const 32))
    (call $input (i32.const 8) (i32.const 0))
    (i32.store (i32.const 500) (i32.const 64))
    (if (call $delegate (i32.const 0) (i32.const 8) (i32.const 600) (i32.const 0) (i32.const 504) (i32.const 500))
      (then unreachable))
    (call $seal_return (i32.const 0) (i32.const 504) (i32.load (i32.const 500)))))

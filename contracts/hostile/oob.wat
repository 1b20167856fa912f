(module
  (import "seal0" "seal_input" (func $input (param i32 i32)))
  (import "seal0" "seal_set_storage" (func $set_storage (param i32 i32 i32)))
  (import "seal0" "seal_return" (func $seal_return (param i32 i32 i32)))
  (import "seal0" "seal_deposit_event" (func $deposit_event (param i32 i32 i32 i32)))
  (import "env" "memory" (memory 1 16))
  (func (export "deploy"))
  (func (export "call")
    ;; Read the input (one byte selects the attack) into offset 16; its capacity sits at 0.
    (i32.store (i32.const 0) (i32.const 64))
    (call $input (i32.const 16) (i32.const 0))
    (block $b3 (block $b2 (block $b1 (block $b0
      (br_table $b0 $b1 $b2 $b3 (i32.load8_u (i32.const 16))))
      ;; 0: storage key pointer past the end of memory
      (call $set_storage (i32.const 0xFFFFFFF0) (i32.const 0) (i32.const 4)) (return))
      ;; 1: output length pointer outside memory
      (call $input (i32.const 16) (i32.const 70000)) (return))
      ;; 2: pointer + length wrapping around 2^32
      (call $seal_return (i32.const 0) (i32.const 0xFFFFFFFF) (i32.const 2)) (return))
    ;; 3: topics that are not a SCALE Vec<[u8; 32]>
    (i32.store (i32.const 100) (i32.const 0xFFFFFFFF))
    (call $deposit_event (i32.const 100) (i32.const 4) (i32.const 0) (i32.const 0))))

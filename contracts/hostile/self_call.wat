(module
  (import "seal0" "seal_address" (func $address (param i32 i32)))
  (import "seal1" "seal_call" (func $call (param i32 i32 i64 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "memory" (memory 1 16))
  (func (export "deploy"))
  (func (export "call")
    ;; own address at 32 (capacity at 0), zero value at 64, then call self with reentry allowed.
    (i32.store (i32.const 0) (i32.const 32))
    (call $address (i32.const 32) (i32.const 0))
    (if (i32.ne
          (call $call (i32.const 8) (i32.const 32) (i64.const 0) (i32.const 64)
                      (i32.const 0) (i32.const 0) (i32.const 0xFFFFFFFF) (i32.const 0))
          (i32.const 0))
      (then unreachable))))

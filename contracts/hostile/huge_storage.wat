(module
  (import "seal0" "seal_set_storage" (func $set_storage (param i32 i32 i32)))
  (import "env" "memory" (memory 17 64))
  (func (export "deploy"))
  (func (export "call")
    (call $set_storage (i32.const 0) (i32.const 64) (i32.const 1048577))))

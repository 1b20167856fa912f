(module
  (import "seal0" "seal_return" (func $seal_return (param i32 i32 i32)))
  (import "env" "memory" (memory 1 16))
  (func (export "deploy"))
  (func (export "call")
    (drop (memory.grow (i32.const 15)))
    (call $seal_return (i32.const 0) (i32.const 0) (i32.const 1000000))))

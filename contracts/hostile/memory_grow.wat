(module
  (import "seal0" "seal_return" (func $seal_return (param i32 i32 i32)))
  (import "env" "memory" (memory 1 64))
  (func (export "deploy"))
  (func (export "call")
    (local $i i32) (local $ok i32)
    ;; One giant request must fail without growing anything.
    (if (i32.ne (memory.grow (i32.const 65536)) (i32.const -1)) (then unreachable))
    ;; Then page by page, counting the successes.
    (loop $grow
      (if (i32.ne (memory.grow (i32.const 1)) (i32.const -1))
        (then (local.set $ok (i32.add (local.get $ok) (i32.const 1)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $grow (i32.lt_u (local.get $i) (i32.const 100))))
    (i32.store (i32.const 0) (local.get $ok))
    (call $seal_return (i32.const 0) (i32.const 0) (i32.const 4))))

;; Calls a pink chain-extension function again and again with arguments chosen by the caller:
;; input = function id (u32 LE) ++ repetitions (u32 LE) ++ SCALE-encoded arguments. Returns the
;; last call's output. Drives every extension function with hostile arguments from tests.
(module
  (import "seal0" "seal_input" (func $input (param i32 i32)))
  (import "seal0" "seal_call_chain_extension"
    (func $ext (param i32 i32 i32 i32 i32) (result i32)))
  (import "seal0" "seal_return" (func $return (param i32 i32 i32)))
  (import "env" "memory" (memory 16 16))
  (func (export "deploy"))
  (func (export "call")
    (local $n i32)
    ;; input at 1024 (capacity 64 KiB at 0)
    (i32.store (i32.const 0) (i32.const 65536))
    (call $input (i32.const 1024) (i32.const 0))
    (local.set $n (i32.load (i32.const 1028)))
    (loop $l
      ;; output buffer: 512 KiB at 131072, its capacity at 4
      (i32.store (i32.const 4) (i32.const 524288))
      (drop (call $ext
        (i32.load (i32.const 1024))
        (i32.const 1032) (i32.sub (i32.load (i32.const 0)) (i32.const 8))
        (i32.const 131072) (i32.const 4)))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $l (i32.gt_s (local.get $n) (i32.const 0))))
    (call $return (i32.const 0) (i32.const 131072) (i32.load (i32.const 4)))))

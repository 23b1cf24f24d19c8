;; The sampler's passes over a logits row, in WebAssembly (index.ts loads it; `npm run build:wasm` turns
;; this file into weigh.generated.ts). weigh does what sampler-weights.ts's weighAll does, step for step in
;; f64, so its weights, buckets, bucket masses and sum are bit-identical to that JavaScript reference on
;; every host (WebAssembly float arithmetic is IEEE and never fused). The constants 128 (T_MAX), 4096
;; (steps per unit), 127 and 7 (fine steps per bucket) are that file's.
;;
;; Memory: FINE (128 f64) at 0, COARSE (4097 f64) at 1024, bucket masses (4097 f64) at 33808, then the
;; row, weights, buckets and ids at offsets the caller passes (index.ts lays them out).
(module
  (memory (export "memory") 2)

  ;; Largest value of row[0, n); NaN if any value is NaN (f32.max propagates NaN).
  (func (export "rowMax") (param $row i32) (param $n i32) (result f32)
    (local $a v128) (local $b v128) (local $end i32) (local $m f32)
    (local.set $a (v128.const f32x4 -inf -inf -inf -inf))
    (local.set $b (local.get $a))
    (local.set $end (i32.add (local.get $row) (i32.shl (i32.and (local.get $n) (i32.const -8)) (i32.const 2))))
    (block $done
      (loop $eight
        (br_if $done (i32.ge_u (local.get $row) (local.get $end)))
        (local.set $a (f32x4.max (local.get $a) (v128.load (local.get $row))))
        (local.set $b (f32x4.max (local.get $b) (v128.load offset=16 (local.get $row))))
        (local.set $row (i32.add (local.get $row) (i32.const 32)))
        (br $eight)))
    (local.set $a (f32x4.max (local.get $a) (local.get $b)))
    (local.set $m
      (f32.max
        (f32.max (f32x4.extract_lane 0 (local.get $a)) (f32x4.extract_lane 1 (local.get $a)))
        (f32.max (f32x4.extract_lane 2 (local.get $a)) (f32x4.extract_lane 3 (local.get $a)))))
    (local.set $end (i32.add (local.get $row) (i32.shl (i32.and (local.get $n) (i32.const 7)) (i32.const 2))))
    (block $tail_done
      (loop $tail
        (br_if $tail_done (i32.ge_u (local.get $row) (local.get $end)))
        (local.set $m (f32.max (local.get $m) (f32.load (local.get $row))))
        (local.set $row (i32.add (local.get $row) (i32.const 4)))
        (br $tail)))
    (local.get $m))

  ;; w[i] = exp(-(max - row[i]) * invT) and bucket[i] for i in [0, n); fills the bucket masses; returns the
  ;; sum of the weights added in index order. Two ids per step in f64x2 lanes; the bucket masses and the sum
  ;; are added lane by lane in index order, as the reference does.
  (func (export "weigh")
    (param $row i32) (param $w i32) (param $bucket i32) (param $n i32) (param $max f64) (param $invT f64)
    (result f64)
    (local $t v128) (local $q v128) (local $k v128) (local $x v128) (local $b v128) (local $c v128)
    (local $e v128) (local $sum f64) (local $m i32) (local $end i32)
    (memory.fill (i32.const 33808) (i32.const 0) (i32.const 32776))
    (local.set $end (i32.add (local.get $row) (i32.shl (i32.and (local.get $n) (i32.const -2)) (i32.const 2))))
    (block $done
      (loop $pair
        (br_if $done (i32.ge_u (local.get $row) (local.get $end)))
        (local.set $t
          (f64x2.mul
            (f64x2.sub (f64x2.splat (local.get $max)) (f64x2.promote_low_f32x4 (v128.load64_zero (local.get $row))))
            (f64x2.splat (local.get $invT))))
        (local.set $q
          (v128.bitselect (f64x2.mul (local.get $t) (v128.const f64x2 4096 4096)) (v128.const f64x2 524288 524288)
            (f64x2.lt (local.get $t) (v128.const f64x2 128 128))))
        (local.set $k (i32x4.trunc_sat_f64x2_s_zero (local.get $q)))
        (local.set $x
          (f64x2.mul (f64x2.sub (local.get $q) (f64x2.convert_low_i32x4_s (local.get $k)))
            (v128.const f64x2 0x1p-12 0x1p-12)))
        (local.set $b (i32x4.shl (i32x4.shr_s (local.get $k) (i32.const 7)) (i32.const 3)))
        (local.set $c (i32x4.shl (v128.and (local.get $k) (v128.const i32x4 127 127 127 127)) (i32.const 3)))
        (local.set $e
          (f64x2.mul
            (f64x2.mul
              (f64x2.replace_lane 1
                (f64x2.splat (f64.load offset=1024 (i32x4.extract_lane 0 (local.get $b))))
                (f64.load offset=1024 (i32x4.extract_lane 1 (local.get $b))))
              (f64x2.replace_lane 1
                (f64x2.splat (f64.load (i32x4.extract_lane 0 (local.get $c))))
                (f64.load (i32x4.extract_lane 1 (local.get $c)))))
            (f64x2.sub (v128.const f64x2 1 1)
              (f64x2.mul (local.get $x)
                (f64x2.sub (v128.const f64x2 1 1)
                  (f64x2.mul (local.get $x)
                    (f64x2.sub (v128.const f64x2 0.5 0.5)
                      (f64x2.mul (local.get $x) (v128.const f64x2 0x1.5555555555555p-3 0x1.5555555555555p-3)))))))))
        (v128.store (local.get $w) (local.get $e))
        (i32.store16 (local.get $bucket) (i32.shr_u (i32x4.extract_lane 0 (local.get $b)) (i32.const 3)))
        (i32.store16 offset=2 (local.get $bucket) (i32.shr_u (i32x4.extract_lane 1 (local.get $b)) (i32.const 3)))
        (local.set $m (i32.add (i32.const 33808) (i32x4.extract_lane 0 (local.get $b))))
        (f64.store (local.get $m) (f64.add (f64.load (local.get $m)) (f64x2.extract_lane 0 (local.get $e))))
        (local.set $m (i32.add (i32.const 33808) (i32x4.extract_lane 1 (local.get $b))))
        (f64.store (local.get $m) (f64.add (f64.load (local.get $m)) (f64x2.extract_lane 1 (local.get $e))))
        (local.set $sum
          (f64.add (f64.add (local.get $sum) (f64x2.extract_lane 0 (local.get $e))) (f64x2.extract_lane 1 (local.get $e))))
        (local.set $row (i32.add (local.get $row) (i32.const 8)))
        (local.set $w (i32.add (local.get $w) (i32.const 16)))
        (local.set $bucket (i32.add (local.get $bucket) (i32.const 4)))
        (br $pair)))
    (if (i32.and (local.get $n) (i32.const 1))
      (then
        (local.set $sum
          (call $weighOne (local.get $row) (local.get $w) (local.get $bucket) (local.get $max) (local.get $invT) (local.get $sum)))))
    (local.get $sum))

  ;; The last id of an odd-length row: the same steps in scalar f64; returns sum + its weight.
  (func $weighOne
    (param $row i32) (param $w i32) (param $bucket i32) (param $max f64) (param $invT f64) (param $sum f64)
    (result f64)
    (local $t f64) (local $q f64) (local $k i32) (local $x f64) (local $b i32) (local $e f64) (local $m i32)
    (local.set $t
      (f64.mul (f64.sub (local.get $max) (f64.promote_f32 (f32.load (local.get $row)))) (local.get $invT)))
    (local.set $q
      (select (f64.mul (local.get $t) (f64.const 4096)) (f64.const 524288) (f64.lt (local.get $t) (f64.const 128))))
    (local.set $k (i32.trunc_sat_f64_s (local.get $q)))
    (local.set $x (f64.mul (f64.sub (local.get $q) (f64.convert_i32_s (local.get $k))) (f64.const 0x1p-12)))
    (local.set $b (i32.shr_s (local.get $k) (i32.const 7)))
    (local.set $e
      (f64.mul
        (f64.mul
          (f64.load offset=1024 (i32.shl (local.get $b) (i32.const 3)))
          (f64.load (i32.shl (i32.and (local.get $k) (i32.const 127)) (i32.const 3))))
        (f64.sub (f64.const 1)
          (f64.mul (local.get $x)
            (f64.sub (f64.const 1)
              (f64.mul (local.get $x)
                (f64.sub (f64.const 0.5) (f64.mul (local.get $x) (f64.const 0x1.5555555555555p-3)))))))))
    (f64.store (local.get $w) (local.get $e))
    (i32.store16 (local.get $bucket) (local.get $b))
    (local.set $m (i32.add (i32.const 33808) (i32.shl (local.get $b) (i32.const 3))))
    (f64.store (local.get $m) (f64.add (f64.load (local.get $m)) (local.get $e)))
    (f64.add (local.get $sum) (local.get $e)))

  ;; Writes every i in [0, n) with bucket[i] == b into ids, ascending; returns how many.
  (func (export "collect") (param $bucket i32) (param $n i32) (param $b i32) (param $ids i32) (result i32)
    (local $i i32) (local $end i32) (local $count i32) (local $mask i32) (local $want v128)
    (local.set $want (i16x8.splat (local.get $b)))
    (local.set $end (i32.and (local.get $n) (i32.const -8)))
    (block $done
      (loop $eight
        (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
        (local.set $mask
          (i16x8.bitmask
            (i16x8.eq (v128.load (i32.add (local.get $bucket) (i32.shl (local.get $i) (i32.const 1)))) (local.get $want))))
        (block $none
          (loop $bits
            (br_if $none (i32.eqz (local.get $mask)))
            (i32.store (i32.add (local.get $ids) (i32.shl (local.get $count) (i32.const 2)))
              (i32.add (local.get $i) (i32.ctz (local.get $mask))))
            (local.set $count (i32.add (local.get $count) (i32.const 1)))
            (local.set $mask (i32.and (local.get $mask) (i32.sub (local.get $mask) (i32.const 1))))
            (br $bits)))
        (local.set $i (i32.add (local.get $i) (i32.const 8)))
        (br $eight)))
    (block $tail_done
      (loop $tail
        (br_if $tail_done (i32.ge_u (local.get $i) (local.get $n)))
        (if (i32.eq (i32.load16_u (i32.add (local.get $bucket) (i32.shl (local.get $i) (i32.const 1)))) (local.get $b))
          (then
            (i32.store (i32.add (local.get $ids) (i32.shl (local.get $count) (i32.const 2))) (local.get $i))
            (local.set $count (i32.add (local.get $count) (i32.const 1)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $tail)))
    (local.get $count))

  ;; The draw inside bucket c: walks the ids of bucket c with a positive weight in index order, taking each
  ;; one's weight off r; returns the first that takes r below 0, else the last of them, else -1.
  (func (export "drawBucket")
    (param $bucket i32) (param $w i32) (param $n i32) (param $c i32) (param $r f64) (result i32)
    (local $i i32) (local $end i32) (local $mask i32) (local $j i32) (local $x f64) (local $last i32)
    (local $want v128)
    (local.set $last (i32.const -1))
    (local.set $want (i16x8.splat (local.get $c)))
    (local.set $end (i32.and (local.get $n) (i32.const -8)))
    (block $done
      (loop $eight
        (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
        (local.set $mask
          (i16x8.bitmask
            (i16x8.eq (v128.load (i32.add (local.get $bucket) (i32.shl (local.get $i) (i32.const 1)))) (local.get $want))))
        (block $none
          (loop $bits
            (br_if $none (i32.eqz (local.get $mask)))
            (local.set $j (i32.add (local.get $i) (i32.ctz (local.get $mask))))
            (local.set $x (f64.load (i32.add (local.get $w) (i32.shl (local.get $j) (i32.const 3)))))
            (if (f64.gt (local.get $x) (f64.const 0))
              (then
                (local.set $last (local.get $j))
                (local.set $r (f64.sub (local.get $r) (local.get $x)))
                (if (f64.lt (local.get $r) (f64.const 0)) (then (return (local.get $j))))))
            (local.set $mask (i32.and (local.get $mask) (i32.sub (local.get $mask) (i32.const 1))))
            (br $bits)))
        (local.set $i (i32.add (local.get $i) (i32.const 8)))
        (br $eight)))
    (block $tail_done
      (loop $tail
        (br_if $tail_done (i32.ge_u (local.get $i) (local.get $n)))
        (if (i32.eq (i32.load16_u (i32.add (local.get $bucket) (i32.shl (local.get $i) (i32.const 1)))) (local.get $c))
          (then
            (local.set $x (f64.load (i32.add (local.get $w) (i32.shl (local.get $i) (i32.const 3)))))
            (if (f64.gt (local.get $x) (f64.const 0))
              (then
                (local.set $last (local.get $i))
                (local.set $r (f64.sub (local.get $r) (local.get $x)))
                (if (f64.lt (local.get $r) (f64.const 0)) (then (return (local.get $i))))))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $tail)))
    (local.get $last))
)

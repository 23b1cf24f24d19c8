export type RawDType = "BF16" | "F16" | "F32";
export function quantizeRow(
  src: Float32Array,
  srcOff: number,
  K: number,
  bs: number,
  q: Uint8Array,
  qOff: number,
  scales: Float32Array,
  sOff: number,
): void;
export function toF32Into(bytes: Uint8Array, dtype: RawDType, dst: Float32Array): Float32Array;
export function quantizeChunk(
  raws: Uint8Array[],
  dtypes: RawDType[],
  cnt: number,
  K: number,
  bs: number,
  scratch?: Float32Array,
): { q: Uint8Array; scales: Float32Array; scratch: Float32Array };

/**
 * Minimal ONNX protobuf encoder (ModelProto and the messages it needs). Hand-written rather than
 * via protobufjs objects so that the graph (small: nodes, tiny constants, external-data references)
 * is serialised in one pass with no copies of weight data: all big tensors live in the external file.
 * Field numbers from onnx/onnx.proto.
 */

export enum DataType {
  FLOAT = 1,
  UINT8 = 2,
  INT32 = 6,
  INT64 = 7,
  FLOAT16 = 10,
}

export type AttrValue = number | string | number[] | { float: number } | { floats: number[] };

export interface NodeDef {
  op: string;
  domain?: string;
  name: string;
  inputs: string[];
  outputs: string[];
  attrs?: Record<string, AttrValue>;
}

export interface TensorDef {
  name: string;
  dataType: DataType;
  dims: number[];
  /** Inline data (small tensors only). */
  raw?: Uint8Array;
  /** External data reference. */
  external?: { location: string; offset: number; length: number };
}

export interface ValueInfoDef {
  name: string;
  elemType: DataType;
  /** number = fixed dim, string = symbolic dim. */
  shape: (number | string)[];
}

export interface GraphDef {
  name: string;
  nodes: NodeDef[];
  initializers: TensorDef[];
  inputs: ValueInfoDef[];
  outputs: ValueInfoDef[];
}

export interface ModelDef {
  irVersion: number;
  opsets: { domain: string; version: number }[];
  producerName: string;
  producerVersion: string;
  graph: GraphDef;
  metadata?: Record<string, string>;
}

/** Growable byte writer with protobuf primitives. */
class Writer {
  private buf = new Uint8Array(1024);
  len = 0;

  private ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.len + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }

  varint(v: number | bigint): void {
    let x = BigInt.asUintN(64, BigInt(v));
    this.ensure(10);
    while (x >= 0x80n) {
      this.buf[this.len++] = Number(x & 0x7fn) | 0x80;
      x >>= 7n;
    }
    this.buf[this.len++] = Number(x);
  }

  tag(field: number, wire: number): void {
    this.varint((field << 3) | wire);
  }

  bytes(field: number, data: Uint8Array): void {
    this.tag(field, 2);
    this.varint(data.length);
    this.ensure(data.length);
    this.buf.set(data, this.len);
    this.len += data.length;
  }

  string(field: number, s: string): void {
    this.bytes(field, new TextEncoder().encode(s));
  }

  int(field: number, v: number): void {
    this.tag(field, 0);
    this.varint(v);
  }

  float(field: number, v: number): void {
    this.tag(field, 5);
    this.ensure(4);
    new DataView(this.buf.buffer).setFloat32(this.len, v, true);
    this.len += 4;
  }

  message(field: number, fill: (w: Writer) => void): void {
    const w = new Writer();
    fill(w);
    this.bytes(field, w.finish());
  }

  finish(): Uint8Array {
    return this.buf.subarray(0, this.len);
  }
}

// AttributeProto.AttributeType
const ATTR_FLOAT = 1;
const ATTR_INT = 2;
const ATTR_STRING = 3;
const ATTR_FLOATS = 6;
const ATTR_INTS = 7;

function writeAttr(w: Writer, name: string, v: AttrValue): void {
  w.string(1, name);
  if (typeof v === "number") {
    if (!Number.isInteger(v)) throw new Error(`attribute ${name}: use {float} for non-integer ${v}`);
    w.int(3, v);
    w.int(20, ATTR_INT);
  } else if (typeof v === "string") {
    w.string(4, v);
    w.int(20, ATTR_STRING);
  } else if (Array.isArray(v)) {
    for (const x of v) w.int(8, x);
    w.int(20, ATTR_INTS);
  } else if ("float" in v) {
    w.float(2, v.float);
    w.int(20, ATTR_FLOAT);
  } else {
    for (const x of v.floats) w.float(7, x);
    w.int(20, ATTR_FLOATS);
  }
}

function writeNode(w: Writer, n: NodeDef): void {
  for (const i of n.inputs) w.string(1, i);
  for (const o of n.outputs) w.string(2, o);
  w.string(3, n.name);
  w.string(4, n.op);
  for (const [k, v] of Object.entries(n.attrs ?? {})) w.message(5, (a) => writeAttr(a, k, v));
  if (n.domain) w.string(7, n.domain);
}

function writeTensor(w: Writer, t: TensorDef): void {
  for (const d of t.dims) w.int(1, d);
  w.int(2, t.dataType);
  w.string(8, t.name);
  if (t.raw) w.bytes(9, t.raw);
  if (t.external) {
    const e = t.external;
    const kv: [string, string][] = [
      ["location", e.location],
      ["offset", String(e.offset)],
      ["length", String(e.length)],
    ];
    for (const [k, v] of kv)
      w.message(13, (m) => {
        m.string(1, k);
        m.string(2, v);
      });
    w.int(14, 1); // DataLocation.EXTERNAL
  }
}

function writeValueInfo(w: Writer, v: ValueInfoDef): void {
  w.string(1, v.name);
  w.message(2, (type) =>
    type.message(1, (tt) => {
      tt.int(1, v.elemType);
      tt.message(2, (shape) => {
        for (const d of v.shape) shape.message(1, (dim) => (typeof d === "number" ? dim.int(1, d) : dim.string(2, d)));
      });
    }),
  );
}

export function encodeModel(m: ModelDef): Uint8Array {
  const w = new Writer();
  w.int(1, m.irVersion);
  w.string(2, m.producerName);
  w.string(3, m.producerVersion);
  w.message(7, (g) => {
    for (const n of m.graph.nodes) g.message(1, (x) => writeNode(x, n));
    g.string(2, m.graph.name);
    for (const t of m.graph.initializers) g.message(5, (x) => writeTensor(x, t));
    for (const v of m.graph.inputs) g.message(11, (x) => writeValueInfo(x, v));
    for (const v of m.graph.outputs) g.message(12, (x) => writeValueInfo(x, v));
  });
  for (const o of m.opsets)
    w.message(8, (x) => {
      if (o.domain) x.string(1, o.domain);
      x.int(2, o.version);
    });
  for (const [k, v] of Object.entries(m.metadata ?? {}))
    w.message(14, (x) => {
      x.string(1, k);
      x.string(2, v);
    });
  return w.finish();
}

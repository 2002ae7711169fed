// JSON <-> protobuf messages the way etcd's grpc-gateway reads and writes them (protojson): proto field
// names out and either name in, 64-bit integers as strings, bytes as base64, enums by name, zero values and
// unset fields left out. Requests are read with a parser that remembers where each value starts, so a bad
// value is refused with etcd's message and position ("proto: (line 1:8): invalid value for bytes field key: 1").
import * as protobuf from 'protobufjs';

/** A request body (or one message of a streamed body) that is not valid JSON or does not fit the message. */
export class JsonRequestError extends Error {}

// ---------------------------------------------------------------------------
// JSON text → nodes with positions

type Pos = { line: number; col: number };
export type JsonNode =
  | ({ kind: 'object'; entries: { key: string; keyPos: Pos; value: JsonNode }[] } & Pos)
  | ({ kind: 'array'; items: JsonNode[] } & Pos)
  | ({ kind: 'string'; value: string; raw: string } & Pos)
  | ({ kind: 'number'; raw: string } & Pos)
  | ({ kind: 'literal'; raw: 'true' | 'false' | 'null' } & Pos);

/** Go's way of quoting the offending character in encoding/json syntax errors. */
function quoteChar(c: string): string {
  if (c === "'") return "'\\''";
  if (c === '"') return '\'"\'';
  const q = JSON.stringify(c);
  return `'${q.slice(1, -1)}'`;
}

class Parser {
  private i = 0;
  private line = 1;
  private lineStart = 0;

  constructor(private readonly text: string) {}

  get offset(): number {
    return this.i;
  }

  private pos(): Pos {
    return { line: this.line, col: this.i - this.lineStart + 1 };
  }

  private eof(): never {
    throw new JsonRequestError('unexpected EOF');
  }

  private bad(what: string): never {
    throw new JsonRequestError(`invalid character ${quoteChar(this.text[this.i])} ${what}`);
  }

  skipSpace(): void {
    for (; this.i < this.text.length; this.i++) {
      const c = this.text[this.i];
      if (c === '\n') {
        this.line++;
        this.lineStart = this.i + 1;
      } else if (c !== ' ' && c !== '\t' && c !== '\r') {
        return;
      }
    }
  }

  atEnd(): boolean {
    this.skipSpace();
    return this.i >= this.text.length;
  }

  value(): JsonNode {
    this.skipSpace();
    if (this.i >= this.text.length) this.eof();
    const at = this.pos();
    const c = this.text[this.i];
    if (c === '{') return this.object(at);
    if (c === '[') return this.array(at);
    if (c === '"') {
      const start = this.i;
      const value = this.string();
      return { kind: 'string', value, raw: this.text.slice(start, this.i), ...at };
    }
    if (c === '-' || (c >= '0' && c <= '9')) return { kind: 'number', raw: this.number(), ...at };
    for (const lit of ['true', 'false', 'null'] as const) {
      if (c === lit[0]) {
        for (let k = 1; k < lit.length; k++) {
          this.i++;
          if (this.i >= this.text.length) this.eof();
          if (this.text[this.i] !== lit[k]) this.bad(`in literal ${lit} (expecting ${quoteChar(lit[k])})`);
        }
        this.i++;
        return { kind: 'literal', raw: lit, ...at };
      }
    }
    return this.bad('looking for beginning of value');
  }

  private object(at: Pos): JsonNode {
    this.i++;
    const entries: { key: string; keyPos: Pos; value: JsonNode }[] = [];
    this.skipSpace();
    if (this.i >= this.text.length) this.eof();
    if (this.text[this.i] === '}') {
      this.i++;
      return { kind: 'object', entries, ...at };
    }
    for (;;) {
      this.skipSpace();
      if (this.i >= this.text.length) this.eof();
      if (this.text[this.i] !== '"') this.bad('looking for beginning of object key string');
      const keyPos = this.pos();
      const key = this.string();
      this.skipSpace();
      if (this.i >= this.text.length) this.eof();
      if (this.text[this.i] !== ':') this.bad('after object key');
      this.i++;
      entries.push({ key, keyPos, value: this.value() });
      this.skipSpace();
      if (this.i >= this.text.length) this.eof();
      const c = this.text[this.i];
      this.i++;
      if (c === '}') return { kind: 'object', entries, ...at };
      if (c !== ',') {
        this.i--;
        this.bad('after object key:value pair');
      }
    }
  }

  private array(at: Pos): JsonNode {
    this.i++;
    const items: JsonNode[] = [];
    this.skipSpace();
    if (this.i >= this.text.length) this.eof();
    if (this.text[this.i] === ']') {
      this.i++;
      return { kind: 'array', items, ...at };
    }
    for (;;) {
      items.push(this.value());
      this.skipSpace();
      if (this.i >= this.text.length) this.eof();
      const c = this.text[this.i];
      this.i++;
      if (c === ']') return { kind: 'array', items, ...at };
      if (c !== ',') {
        this.i--;
        this.bad('after array element');
      }
    }
  }

  private string(): string {
    let out = '';
    this.i++;
    for (;;) {
      if (this.i >= this.text.length) this.eof();
      const c = this.text[this.i];
      if (c === '"') {
        this.i++;
        return out;
      }
      if (c < ' ') this.bad('in string literal');
      if (c === '\\') {
        this.i++;
        if (this.i >= this.text.length) this.eof();
        const e = this.text[this.i];
        const simple: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
        if (e in simple) {
          out += simple[e];
          this.i++;
        } else if (e === 'u') {
          const hex = this.text.slice(this.i + 1, this.i + 5);
          for (let k = 0; k < 4; k++) {
            if (this.i + 1 + k >= this.text.length) this.eof();
            if (!/[0-9a-fA-F]/.test(hex[k])) {
              this.i += 1 + k;
              this.bad('in \\u hexadecimal character escape');
            }
          }
          out += String.fromCharCode(parseInt(hex, 16));
          this.i += 5;
        } else {
          this.bad('in string escape code');
        }
        continue;
      }
      out += c;
      this.i++;
    }
  }

  private number(): string {
    const start = this.i;
    const digit = () => this.i < this.text.length && this.text[this.i] >= '0' && this.text[this.i] <= '9';
    const need = (what: string) => {
      if (this.i >= this.text.length) this.eof();
      if (!digit()) this.bad(what);
    };
    if (this.text[this.i] === '-') {
      this.i++;
      need('in numeric literal');
    }
    if (this.text[this.i] === '0') this.i++;
    else while (digit()) this.i++;
    if (this.text[this.i] === '.') {
      this.i++;
      need('after decimal point in numeric literal');
      while (digit()) this.i++;
    }
    if (this.text[this.i] === 'e' || this.text[this.i] === 'E') {
      this.i++;
      if (this.text[this.i] === '+' || this.text[this.i] === '-') this.i++;
      need('in exponent of numeric literal');
      while (digit()) this.i++;
    }
    return this.text.slice(start, this.i);
  }
}

/**
 * Splits a streamed body into its JSON values as bytes arrive (a watch stream's body is a sequence of
 * requests). Values are cut where the top-level value closes, so parsing is done once per value.
 */
export class JsonValueSplitter {
  private buf = '';
  private depth = 0;
  private inString = false;
  private escaped = false;
  private scanned = 0;
  private started = false;

  /** Adds text; returns the complete top-level values found, as text. */
  push(text: string): string[] {
    this.buf += text;
    const out: string[] = [];
    for (let i = this.scanned; i < this.buf.length; i++) {
      const c = this.buf[i];
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (c === '\\') this.escaped = true;
        else if (c === '"') {
          this.inString = false;
          if (this.depth === 0) i = this.cut(i, out);
        }
        continue;
      }
      if (c === ' ' || c === '\t' || c === '\r' || c === '\n') {
        if (this.started && this.depth === 0) i = this.cut(i - 1, out);
        continue;
      }
      this.started = true;
      if (c === '"') this.inString = true;
      else if (c === '{' || c === '[') this.depth++;
      else if (c === '}' || c === ']') {
        this.depth--;
        if (this.depth <= 0) {
          this.depth = 0;
          i = this.cut(i, out);
        }
      }
    }
    this.scanned = this.buf.length;
    return out;
  }

  /** Whatever is left when the body ends (a value without its end, or a bare literal). */
  rest(): string {
    return this.buf.trim();
  }

  /** Bytes held for a value not complete yet. */
  get pending(): number {
    return this.buf.length;
  }

  private cut(end: number, out: string[]): number {
    const value = this.buf.slice(0, end + 1).trim();
    if (value !== '') out.push(value);
    this.buf = this.buf.slice(end + 1);
    this.started = false;
    this.scanned = 0;
    return -1;
  }
}

// ---------------------------------------------------------------------------
// nodes → a protobuf message (as an object protobufjs' fromObject takes)

/** lowerCamelCase JSON name of a proto field, as protoc derives it. */
function jsonName(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
}

const INT64 = new Set(['int64', 'sint64', 'sfixed64']);
const UINT64 = new Set(['uint64', 'fixed64']);
const INT32 = new Set(['int32', 'sint32', 'sfixed32']);
const UINT32 = new Set(['uint32', 'fixed32']);

function where(n: Pos): string {
  return `(line ${n.line}:${n.col})`;
}

function unexpected(n: JsonNode): JsonRequestError {
  const token = n.kind === 'object' ? '{' : n.kind === 'array' ? '[' : n.raw;
  return new JsonRequestError(`proto: syntax error ${where(n)}: unexpected token ${token}`);
}

function invalid(kind: string, name: string, n: JsonNode): JsonRequestError {
  const raw = n.kind === 'object' ? '{' : n.kind === 'array' ? '[' : n.raw;
  return new JsonRequestError(`proto: ${where(n)}: invalid value for ${kind} field ${name}: ${raw}`);
}

/** An integer from a JSON number or a string holding one ("1e2" included, as protojson takes it). */
function integerText(n: JsonNode): string | undefined {
  let text: string;
  if (n.kind === 'number') text = n.raw;
  else if (n.kind === 'string' && /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$/.test(n.value)) text = n.value;
  else return undefined;
  const m = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/.exec(text);
  if (!m) return undefined;
  const [, sign, intPart, frac = '', expText = '0'] = m;
  const exp = Number(expText);
  if (!Number.isSafeInteger(exp) || Math.abs(exp) > 400) return undefined;
  let digits = intPart + frac;
  let point = intPart.length + exp;
  if (point < 0) return /^0*$/.test(digits) ? '0' : undefined;
  if (point > digits.length) {
    digits = digits + '0'.repeat(point - digits.length);
    point = digits.length;
  }
  if (!/^0*$/.test(digits.slice(point))) return undefined; // a fraction
  const whole = digits.slice(0, point).replace(/^0+(?=\d)/, '') || '0';
  return whole === '0' ? '0' : sign + whole;
}

function inRange(text: string, min: bigint, max: bigint): boolean {
  const v = BigInt(text);
  return v >= min && v <= max;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const BASE64URL = /^[A-Za-z0-9_-]*={0,2}$/;

function decodeBytes(n: JsonNode, name: string): Buffer {
  if (n.kind !== 'string') throw invalid('bytes', name, n);
  const s = n.value;
  const url = !BASE64.test(s);
  if (url && !BASE64URL.test(s)) throw invalid('bytes', name, n);
  const body = s.replace(/=+$/, '');
  if (body.length % 4 === 1 || (s.includes('=') && s.length % 4 !== 0)) throw invalid('bytes', name, n);
  return Buffer.from(url ? body.replace(/-/g, '+').replace(/_/g, '/') : body, 'base64');
}

function decodeScalar(field: protobuf.Field, n: JsonNode): unknown {
  const name = jsonName(field.name);
  const t = field.type;
  if (field.resolvedType instanceof protobuf.Enum) {
    const e = field.resolvedType;
    if (n.kind === 'string') return e.values[n.value]; // an unknown name is dropped, as etcd's gateway does
    const int = n.kind === 'number' ? integerText(n) : undefined;
    if (int === undefined || !inRange(int, -(2n ** 31n), 2n ** 31n - 1n)) throw invalid('enum', name, n);
    return Number(int);
  }
  if (t === 'bool') {
    if (n.kind === 'literal' && n.raw !== 'null') return n.raw === 'true';
    throw invalid('bool', name, n);
  }
  if (t === 'string') {
    if (n.kind === 'string') return n.value;
    throw invalid('string', name, n);
  }
  if (t === 'bytes') return decodeBytes(n, name);
  if (INT64.has(t) || UINT64.has(t) || INT32.has(t) || UINT32.has(t)) {
    const int = integerText(n);
    const [min, max] = INT64.has(t)
      ? [-(2n ** 63n), 2n ** 63n - 1n]
      : UINT64.has(t)
        ? [0n, 2n ** 64n - 1n]
        : INT32.has(t)
          ? [-(2n ** 31n), 2n ** 31n - 1n]
          : [0n, 2n ** 32n - 1n];
    if (int === undefined || !inRange(int, min, max)) throw invalid(t === 'sint64' || t === 'sfixed64' ? t : INT64.has(t) ? 'int64' : UINT64.has(t) ? 'uint64' : t, name, n);
    return INT64.has(t) || UINT64.has(t) ? int : Number(int);
  }
  if (t === 'double' || t === 'float') {
    if (n.kind === 'number') return Number(n.raw);
    if (n.kind === 'string' && ['NaN', 'Infinity', '-Infinity'].includes(n.value)) return Number(n.value);
    if (n.kind === 'string' && !Number.isNaN(Number(n.value)) && n.value.trim() === n.value && n.value !== '') return Number(n.value);
    throw invalid(t, name, n);
  }
  throw invalid(t, name, n);
}

function decodeMessage(type: protobuf.Type, n: JsonNode): Record<string, unknown> {
  if (n.kind !== 'object') throw unexpected(n);
  const out: Record<string, unknown> = {};
  const seen = new Set<string>();
  const oneofSet = new Map<string, string>();
  for (const { key, keyPos, value } of n.entries) {
    const field = type.fields[key] ?? type.fieldsArray.find((f) => jsonName(f.name) === key);
    if (!field) continue; // unknown fields are dropped, as etcd's gateway does
    if (seen.has(field.name)) throw new JsonRequestError(`proto: ${where(keyPos)}: duplicate field "${key}"`);
    seen.add(field.name);
    if (value.kind === 'literal' && value.raw === 'null') continue;
    const oneof = field.partOf;
    if (oneof) {
      const other = oneofSet.get(oneof.name);
      if (other !== undefined) throw new JsonRequestError(`proto: ${where(keyPos)}: error parsing "${key}", oneof ${type.fullName.replace(/^\./, '')}.${oneof.name} is already set`);
      oneofSet.set(oneof.name, field.name);
    }
    field.resolve();
    if (field.repeated) {
      if (value.kind !== 'array') throw unexpected(value);
      out[field.name] = value.items.map((item) => {
        if (item.kind === 'literal' && item.raw === 'null') throw unexpected(item);
        return decodeField(field, item);
      });
    } else {
      out[field.name] = decodeField(field, value);
    }
  }
  return out;
}

function decodeField(field: protobuf.Field, n: JsonNode): unknown {
  if (field.resolvedType instanceof protobuf.Type) return decodeMessage(field.resolvedType, n);
  return decodeScalar(field, n);
}

/**
 * A request message from JSON text: the bytes of its protobuf encoding (so the caller can apply the gRPC
 * size limit and decode it exactly as a gRPC request). An empty (or blank) body is the empty message.
 */
export function jsonToProto(type: protobuf.Type, text: string): Uint8Array {
  if (text.trim() === '') return new Uint8Array(0);
  const parser = new Parser(text);
  const root = parser.value();
  // like the gateway's decoder: what follows the first value is not looked at
  return type.encode(type.fromObject(decodeMessage(type, root))).finish();
}

// ---------------------------------------------------------------------------
// a response object → JSON (protojson with proto names, zero values omitted)

/** protobufjs holds 64-bit integers as Long objects ({low, high}); numbers and strings pass through. */
function isLong(v: unknown): v is { low: number; high: number } {
  return typeof v === 'object' && v !== null && typeof (v as { low?: unknown }).low === 'number' && typeof (v as { high?: unknown }).high === 'number';
}

function longText(v: unknown, unsigned: boolean): string {
  if (isLong(v)) {
    const bits = (BigInt(v.high >>> 0) << 32n) | BigInt(v.low >>> 0);
    return (unsigned ? BigInt.asUintN(64, bits) : BigInt.asIntN(64, bits)).toString();
  }
  return String(v);
}

function isZero(field: protobuf.Field, v: unknown): boolean {
  if (v === null || v === undefined) return true;
  if (field.resolvedType instanceof protobuf.Type) return false; // a set message is written, even if empty
  if (typeof v === 'boolean') return !v;
  if (typeof v === 'string') return v === '';
  if (typeof v === 'number') return v === 0;
  if (isLong(v)) return v.low === 0 && v.high === 0;
  // bytes: a Buffer, or protobufjs' shared empty array for an unset field
  if (v instanceof Uint8Array || Array.isArray(v)) return v.length === 0;
  return false;
}

function scalarJson(field: protobuf.Field, v: unknown): unknown {
  if (field.resolvedType instanceof protobuf.Enum) return field.resolvedType.valuesById[v as number] ?? v;
  if (field.resolvedType instanceof protobuf.Type) return messageJson(field.resolvedType, v as protobuf.Message);
  const t = field.type;
  if (INT64.has(t) || UINT64.has(t)) return longText(v, UINT64.has(t));
  if (t === 'bytes') return Buffer.from(v as Uint8Array).toString('base64');
  return v;
}

function messageJson(type: protobuf.Type, msg: protobuf.Message): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const fields = [...type.fieldsArray].sort((a, b) => a.id - b.id);
  const values = msg as unknown as Record<string, unknown>;
  for (const field of fields) {
    field.resolve();
    const v = values[field.name];
    if (field.repeated) {
      const list = v as unknown[] | undefined;
      if (list && list.length > 0) out[field.name] = list.map((item) => scalarJson(field, item));
    } else if (!isZero(field, v)) {
      out[field.name] = scalarJson(field, v);
    }
  }
  return out;
}

/** A response object (as a gRPC handler returns it) in the gateway's JSON form. */
export function protoToJson(type: protobuf.Type, value: unknown): Record<string, unknown> {
  return messageJson(type, type.fromObject(value as Record<string, unknown>));
}

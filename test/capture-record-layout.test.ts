// The layout table of src/capture/record-layout.ts against the C sources it describes: a small
// parser reads the structs, enums and defines of bpf/capture.h (and struct cap_addr and the ring
// maps of bpf/capture.bpf.c), lays the structs out by the C rules (natural alignment, no packing),
// and every offset, size, type and enum value of the table must match.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  CAP_EVENT,
  CAP_HDR_SIZE,
  ENUMS,
  RING_MAX_ENTRIES,
  STRUCTS,
  type FieldType,
} from '../src/capture/record-layout.js';

const header = readFileSync(new URL('../bpf/capture.h', import.meta.url), 'utf8');
const program = readFileSync(new URL('../bpf/capture.bpf.c', import.meta.url), 'utf8');

function withoutComments(c: string): string {
  return c.replace(/\/\*[\s\S]*?\*\//g, ' ').replace(/\/\/[^\n]*/g, ' ');
}

const SCALARS: Record<string, { type: FieldType; size: number }> = {
  __u8: { type: 'u8', size: 1 },
  __u16: { type: 'u16', size: 2 },
  __u32: { type: 'u32', size: 4 },
  __u64: { type: 'u64', size: 8 },
};

interface CField {
  name: string;
  offset: number;
  size: number;
  type: FieldType;
}

/** `struct name { __uN member[count]; … };` laid out as a C compiler lays it out (x86-64/arm64 ABI). */
function parseStructs(source: string): Map<string, { size: number; fields: CField[] }> {
  const out = new Map<string, { size: number; fields: CField[] }>();
  for (const m of withoutComments(source).matchAll(/\bstruct\s+(\w+)\s*\{([^{}]*)\}\s*;/g)) {
    const [, name, body] = m;
    let offset = 0;
    let align = 1;
    const fields: CField[] = [];
    let scalarOnly = true;
    for (const decl of body!
      .split(';')
      .map((d) => d.trim())
      .filter(Boolean)) {
      const d = /^(\w+)\s+(\w+)\s*(?:\[\s*(\d+)\s*\])?$/.exec(decl);
      const scalar = d && SCALARS[d[1]!];
      if (!d || !scalar) {
        scalarOnly = false; // nested structs and kernel types: not part of the user-space layout
        break;
      }
      const count = d[3] === undefined ? 1 : Number(d[3]);
      offset = Math.ceil(offset / scalar.size) * scalar.size;
      fields.push({ name: d[2]!, offset, size: scalar.size * count, type: scalar.type });
      offset += scalar.size * count;
      align = Math.max(align, scalar.size);
    }
    if (scalarOnly) out.set(name!, { size: Math.ceil(offset / align) * align, fields });
  }
  return out;
}

/** `enum name { A = 1, B, … };` with implicit values counted on from the last one. */
function parseEnums(source: string): Map<string, Map<string, number>> {
  const out = new Map<string, Map<string, number>>();
  for (const m of withoutComments(source).matchAll(/\benum\s+(\w+)\s*\{([^{}]*)\}\s*;/g)) {
    const values = new Map<string, number>();
    let next = 0;
    for (const item of m[2]!
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)) {
      const e = /^(\w+)\s*(?:=\s*(\d+))?$/.exec(item);
      if (!e) throw new Error(`enum ${m[1]}: cannot read "${item}"`);
      const value = e[2] === undefined ? next : Number(e[2]);
      values.set(e[1]!, value);
      next = value + 1;
    }
    out.set(m[1]!, values);
  }
  return out;
}

/** Integer expressions of defines and map attributes: `48`, `64 << 20`, `(1 << 20)`. */
function intExpr(text: string): number {
  const t = text.trim().replace(/^\((.*)\)$/, '$1');
  const shift = /^(\d+)\s*<<\s*(\d+)$/.exec(t);
  if (shift) return Number(shift[1]) * 2 ** Number(shift[2]);
  if (/^\d+$/.test(t)) return Number(t);
  throw new Error(`not an integer expression: ${text}`);
}

function define(source: string, name: string): number {
  const m = new RegExp(`^#define\\s+${name}\\s+(.+)$`, 'm').exec(source);
  if (!m) throw new Error(`no #define ${name}`);
  return intExpr(m[1]!);
}

/** max_entries of the map named `name` in a `struct { __uint(max_entries, …); } name SEC(".maps");` definition. */
function mapMaxEntries(source: string, name: string): number {
  const m = new RegExp(`struct\\s*\\{([^{}]*)\\}\\s*${name}\\s+SEC\\("\\.maps"\\)`).exec(withoutComments(source));
  const entries = m && /__uint\(\s*max_entries\s*,\s*([^)]+)\)/.exec(m[1]!);
  if (!entries) throw new Error(`no map ${name} with max_entries`);
  return intExpr(entries[1]!);
}

const cStructs = new Map([...parseStructs(header), ...parseStructs(program)]);
const cEnums = parseEnums(header);

describe('record layout (src/capture/record-layout.ts) against bpf/capture.h', () => {
  it('the parser reads the header it checks', () => {
    expect([...cStructs.keys()]).toEqual(
      expect.arrayContaining(['cap_event', 'file_key', 'cap_counters', 'cap_config', 'cap_addr']),
    );
    expect(cStructs.get('cap_event')!.fields.map((f) => f.name)).toEqual([
      'ts_ns',
      'conn',
      'pos',
      'tgid',
      'tid',
      'call_len',
      'chunk_off',
      'len',
      'type',
      'source',
      'dir',
      'aux',
    ]);
    expect(cEnums.get('cap_type')!.get('CAP_MAP')).toBe(6);
  });

  for (const layout of STRUCTS) {
    it(`struct ${layout.c}: every member, offset, size and type, and the struct's size`, () => {
      const c = cStructs.get(layout.c);
      expect(c, `struct ${layout.c} in bpf/capture.h or bpf/capture.bpf.c`).toBeDefined();
      const table = Object.values(layout.fields).map((f) => ({
        name: f.c,
        offset: f.offset,
        size: f.size,
        type: f.type,
      }));
      expect(table).toEqual(c!.fields);
      expect(layout.size).toBe(c!.size);
    });
  }

  it("the header size is the C side's CAP_HDR_SIZE, with no padding", () => {
    expect(CAP_HDR_SIZE).toBe(define(header, 'CAP_HDR_SIZE'));
    const fields = Object.values(CAP_EVENT.fields);
    expect(fields.reduce((n, f) => n + f.size, 0)).toBe(CAP_HDR_SIZE);
  });

  for (const [name, values] of Object.entries(ENUMS)) {
    it(`enum ${name}: every value`, () => {
      expect(cEnums.get(name), `enum ${name} in bpf/capture.h`).toBeDefined();
      expect(new Map(Object.entries(values))).toEqual(cEnums.get(name));
    });
  }

  it('every enum of the header is in the table', () => {
    expect(Object.keys(ENUMS).sort()).toEqual([...cEnums.keys()].sort());
  });

  it('the ring sizes are the max_entries of the ring maps', () => {
    expect(RING_MAX_ENTRIES.events).toBe(mapMaxEntries(program, 'events'));
    expect(RING_MAX_ENTRIES.mapped).toBe(mapMaxEntries(program, 'mapped'));
  });
});

describe('the layout parser', () => {
  it('aligns members naturally and rounds the size up to the widest member', () => {
    const s = parseStructs('struct x { __u8 a; __u32 b; __u16 c[3]; __u8 d; /* note */ };').get('x')!;
    expect(s.fields).toEqual([
      { name: 'a', offset: 0, size: 1, type: 'u8' },
      { name: 'b', offset: 4, size: 4, type: 'u32' },
      { name: 'c', offset: 8, size: 6, type: 'u16' },
      { name: 'd', offset: 14, size: 1, type: 'u8' },
    ]);
    expect(s.size).toBe(16);
  });

  it('counts implicit enum values on from the last explicit one', () => {
    expect(parseEnums('enum e { A, B = 5, C, };').get('e')).toEqual(
      new Map([
        ['A', 0],
        ['B', 5],
        ['C', 6],
      ]),
    );
  });
});

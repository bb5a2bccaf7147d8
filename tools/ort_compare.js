#!/usr/bin/env node
// Reference checks with ONNX Runtime (onnxruntime-node, CPU, 2 threads, all graph optimisations).
// Compares two models on the same seeded random inputs, runs one model on ONNX TensorProto
// files, or compares two TensorProto files. One file, plain Node, its own tiny protobuf codec.
//
//   node tools/ort_compare.js A.onnx B.onnx [--batches 1,3] [--tol 1e-4] [--seed S] [--shape C,H,W] [--json]
//   node tools/ort_compare.js --run MODEL.onnx --input IN.pb... --output OUT.pb...
//   node tools/ort_compare.js --check-pb EXPECTED.pb ACTUAL.pb [--tol 1e-4] [--json]
//
// The figure compared with --tol is max|a-b| / max(1e-6, max|a|): the largest difference
// relative to the scale of the first (reference) output. Exit 0 when every figure <= tol,
// 1 when one is larger (or nothing could be compared), 2 on usage or loading errors.
'use strict';

const fs = require('fs');
const path = require('path');

const USAGE = `usage:
  node tools/ort_compare.js A.onnx B.onnx [--batches 1,3] [--tol 1e-4] [--seed S] [--shape C,H,W] [--json]
  node tools/ort_compare.js --run MODEL.onnx --input IN.pb... --output OUT.pb...
  node tools/ort_compare.js --check-pb EXPECTED.pb ACTUAL.pb [--tol 1e-4] [--json]`;

class UsageError extends Error {}
class LoadError extends Error {}

// ---------------------------------------------------------------------------
// Protobuf wire format: just enough to read ModelProto's graph inputs and to read and
// write TensorProto (dims 1, data_type 2, float_data 4, name 8, raw_data 9).

const WIRE_VARINT = 0, WIRE_I64 = 1, WIRE_LEN = 2, WIRE_I32 = 5;

function readVarint(buf, pos, end) {
  let value = 0, mul = 1;
  for (let i = 0; i < 10; i++) {
    if (pos >= end) throw new LoadError('truncated varint');
    const b = buf[pos++];
    value += (b & 0x7f) * mul;
    mul *= 128;
    if (!(b & 0x80)) return [value, pos];
  }
  throw new LoadError('varint longer than 10 bytes');
}

// Calls visit(fieldNumber, wireType, value, start, end) for each field of buf[start, end).
// value is the number for varints; for length-delimited fields start/end delimit the bytes;
// for fixed32/fixed64 start is the offset of the little-endian bytes.
function forEachField(buf, start, end, visit) {
  let pos = start;
  while (pos < end) {
    let key;
    [key, pos] = readVarint(buf, pos, end);
    const field = Math.floor(key / 8), wire = key % 8;
    if (field === 0) throw new LoadError('field number 0');
    if (wire === WIRE_VARINT) {
      let v;
      [v, pos] = readVarint(buf, pos, end);
      visit(field, wire, v, pos, pos);
    } else if (wire === WIRE_LEN) {
      let len;
      [len, pos] = readVarint(buf, pos, end);
      if (len > end - pos) throw new LoadError(`field ${field}: length ${len} beyond the message end`);
      visit(field, wire, len, pos, pos + len);
      pos += len;
    } else if (wire === WIRE_I32 || wire === WIRE_I64) {
      const n = wire === WIRE_I32 ? 4 : 8;
      if (pos + n > end) throw new LoadError(`field ${field}: truncated fixed${n * 8}`);
      visit(field, wire, null, pos, pos + n);
      pos += n;
    } else {
      throw new LoadError(`unsupported wire type ${wire} (field ${field})`);
    }
  }
}

function utf8(buf, start, end) { return buf.toString('utf8', start, end); }

// TypeProto -> {elemType, dims: [number | string | null]} (null: unknown dim, no shape: dims null).
function parseTensorType(buf, start, end) {
  const out = { elemType: 0, dims: null };
  forEachField(buf, start, end, (f, w, v, s, e) => {
    if (f !== 1 || w !== WIRE_LEN) return;             // TypeProto.tensor_type
    forEachField(buf, s, e, (f2, w2, v2, s2, e2) => {
      if (f2 === 1 && w2 === WIRE_VARINT) out.elemType = v2;
      if (f2 === 2 && w2 === WIRE_LEN) {                // TensorShapeProto
        out.dims = [];
        forEachField(buf, s2, e2, (f3, w3, v3, s3, e3) => {
          if (f3 !== 1 || w3 !== WIRE_LEN) return;      // Dimension
          let dim = null;
          forEachField(buf, s3, e3, (f4, w4, v4, s4, e4) => {
            if (f4 === 1 && w4 === WIRE_VARINT) dim = v4;              // dim_value
            if (f4 === 2 && w4 === WIRE_LEN) dim = utf8(buf, s4, e4);  // dim_param
          });
          out.dims.push(dim);
        });
      }
    });
  });
  return out;
}

// The graph's real inputs (not initializers) and outputs: [{name, elemType, dims}].
function readModelSignature(file) {
  let buf;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    throw new LoadError(`${file}: ${e.message}`);
  }
  const inputs = [], outputs = [], initNames = new Set();
  let sawGraph = false;
  try {
    forEachField(buf, 0, buf.length, (f, w, v, s, e) => {
      if (f !== 7 || w !== WIRE_LEN) return;            // ModelProto.graph
      sawGraph = true;
      forEachField(buf, s, e, (f2, w2, v2, s2, e2) => {
        if (w2 !== WIRE_LEN) return;
        if (f2 === 5) {                                 // GraphProto.initializer: TensorProto.name
          forEachField(buf, s2, e2, (f3, w3, v3, s3, e3) => {
            if (f3 === 8 && w3 === WIRE_LEN) initNames.add(utf8(buf, s3, e3));
          });
        } else if (f2 === 11 || f2 === 12) {            // GraphProto.input / output: ValueInfoProto
          const info = { name: '', elemType: 0, dims: null };
          forEachField(buf, s2, e2, (f3, w3, v3, s3, e3) => {
            if (f3 === 1 && w3 === WIRE_LEN) info.name = utf8(buf, s3, e3);
            if (f3 === 2 && w3 === WIRE_LEN) Object.assign(info, parseTensorType(buf, s3, e3));
          });
          (f2 === 11 ? inputs : outputs).push(info);
        }
      });
    });
  } catch (e) {
    throw new LoadError(`${file}: not a readable ONNX model: ${e.message}`);
  }
  if (!sawGraph) throw new LoadError(`${file}: not an ONNX model (no graph)`);
  return { inputs: inputs.filter((i) => !initNames.has(i.name)), outputs };
}

const TENSOR_FLOAT = 1;

// TensorProto bytes -> {name, dims, data: Float32Array}. Float tensors only.
function decodeTensor(buf, what) {
  const dims = [];
  let dataType = 0, name = '', raw = null, external = false;
  const floats = [];
  forEachField(buf, 0, buf.length, (f, w, v, s, e) => {
    if (f === 1 && w === WIRE_VARINT) dims.push(v);
    else if (f === 1 && w === WIRE_LEN) {               // packed dims
      let p = s;
      while (p < e) { let d; [d, p] = readVarint(buf, p, e); dims.push(d); }
    } else if (f === 2 && w === WIRE_VARINT) dataType = v;
    else if (f === 4 && w === WIRE_I32) floats.push(buf.readFloatLE(s));
    else if (f === 4 && w === WIRE_LEN) {               // packed float_data
      if ((e - s) % 4) throw new LoadError(`${what}: float_data length ${e - s} not a multiple of 4`);
      for (let p = s; p < e; p += 4) floats.push(buf.readFloatLE(p));
    } else if (f === 8 && w === WIRE_LEN) name = utf8(buf, s, e);
    else if (f === 9 && w === WIRE_LEN) raw = [s, e];
    else if (f === 14 && w === WIRE_VARINT && v === 1) external = true;   // data_location EXTERNAL
  });
  if (external) throw new LoadError(`${what}: external data is not supported here`);
  if (dataType !== TENSOR_FLOAT) throw new LoadError(`${what}: data_type ${dataType}, only float32 (1) is supported`);
  for (const d of dims) {
    if (!Number.isSafeInteger(d)) throw new LoadError(`${what}: bad dim ${d}`);
  }
  const count = dims.reduce((a, b) => a * b, 1);
  let data;
  if (raw) {
    const bytes = raw[1] - raw[0];
    if (bytes !== count * 4) throw new LoadError(`${what}: raw_data has ${bytes} bytes, dims [${dims}] need ${count * 4}`);
    data = new Float32Array(count);
    for (let i = 0; i < count; i++) data[i] = buf.readFloatLE(raw[0] + 4 * i);
  } else {
    if (floats.length !== count) throw new LoadError(`${what}: float_data has ${floats.length} values, dims [${dims}] need ${count}`);
    data = Float32Array.from(floats);
  }
  return { name, dims, data };
}

function encodeVarint(value, out) {
  if (!Number.isSafeInteger(value) || value < 0) throw new Error(`cannot encode varint ${value}`);
  while (value >= 128) {
    out.push((value % 128) | 0x80);
    value = Math.floor(value / 128);
  }
  out.push(value);
}

// {name, dims, data: Float32Array} -> TensorProto bytes (dims unpacked as proto2 writers do,
// data_type FLOAT, name, little-endian raw_data).
function encodeTensor(t) {
  const head = [];
  for (const d of t.dims) { head.push((1 << 3) | WIRE_VARINT); encodeVarint(d, head); }
  head.push((2 << 3) | WIRE_VARINT); encodeVarint(TENSOR_FLOAT, head);
  const nameBytes = Buffer.from(t.name || '', 'utf8');
  if (nameBytes.length) { head.push((8 << 3) | WIRE_LEN); encodeVarint(nameBytes.length, head); }
  const rawBytes = Buffer.alloc(t.data.length * 4);
  for (let i = 0; i < t.data.length; i++) rawBytes.writeFloatLE(t.data[i], 4 * i);
  const rawKey = [(9 << 3) | WIRE_LEN];
  encodeVarint(rawBytes.length, rawKey);
  return Buffer.concat([Buffer.from(head), nameBytes, Buffer.from(rawKey), rawBytes]);
}

function readTensorFile(file) {
  let buf;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    throw new LoadError(`${file}: ${e.message}`);
  }
  try {
    return decodeTensor(buf, file);
  } catch (e) {
    throw new LoadError(e instanceof LoadError ? e.message : `${file}: ${e.message}`);
  }
}

function writeFileAtomic(file, bytes) {
  const tmp = `${file}.tmp.${process.pid}`;
  fs.writeFileSync(tmp, bytes);
  fs.renameSync(tmp, file);
}

// ---------------------------------------------------------------------------
// Numbers.

// Deterministic uniform [0, 1) from a 32-bit state (a splitmix-style integer hash).
function makeRandom(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x9e3779b9) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    z = (z ^ (z >>> 16)) >>> 0;
    return z / 4294967296;
  };
}

// n standard-normal floats (Box-Muller).
function randomNormal(n, seed) {
  const uniform = makeRandom(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u1 = 1 - uniform(), u2 = uniform();            // u1 in (0, 1]
    const r = Math.sqrt(-2 * Math.log(u1));
    out[i] = r * Math.cos(2 * Math.PI * u2);
    if (i + 1 < n) out[i + 1] = r * Math.sin(2 * Math.PI * u2);
  }
  return out;
}

// {rel, maxAbsDiff, scale}; rel is Infinity when a value is NaN or infinite.
function relativeDifference(ref, other) {
  let maxDiff = 0, scale = 0, bad = false;
  for (let i = 0; i < ref.length; i++) {
    const a = ref[i], b = other[i];
    if (!Number.isFinite(a) || !Number.isFinite(b)) { bad = true; continue; }
    const d = Math.abs(a - b);
    if (d > maxDiff) maxDiff = d;
    if (Math.abs(a) > scale) scale = Math.abs(a);
  }
  return { rel: bad ? Infinity : maxDiff / Math.max(1e-6, scale), maxAbsDiff: bad ? Infinity : maxDiff, scale, nonFinite: bad };
}

function fmt(x) { return Number.isFinite(x) ? x.toExponential(3) : String(x); }

// ---------------------------------------------------------------------------
// ONNX Runtime.

let ortModule = null;
function ort() {
  if (!ortModule) {
    try {
      ortModule = require(path.join(__dirname, 'node', 'node_modules', 'onnxruntime-node'));
    } catch (e) {
      throw new LoadError(`cannot load onnxruntime-node from tools/node (run tools/install-deps.sh): ${e.message}`);
    }
  }
  return ortModule;
}

async function openSession(file) {
  try {
    return await ort().InferenceSession.create(file, {
      executionProviders: ['cpu'],
      intraOpNumThreads: 2,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
      logSeverityLevel: 3,
    });
  } catch (e) {
    throw new LoadError(`${file}: ONNX Runtime cannot load it: ${e.message}`);
  }
}

// Runs session on feeds {name: {dims, data}}; returns [{name, dims, data}] in outputNames order.
async function runSession(session, file, feeds) {
  const o = ort();
  const ortFeeds = {};
  for (const [name, t] of Object.entries(feeds)) ortFeeds[name] = new o.Tensor('float32', t.data, t.dims);
  let result;
  try {
    result = await session.run(ortFeeds);
  } catch (e) {
    throw new LoadError(`${file}: ONNX Runtime failed to run it: ${e.message}`);
  }
  return session.outputNames.map((name) => {
    const t = result[name];
    if (t.type !== 'float32') throw new LoadError(`${file}: output '${name}' is ${t.type}, only float32 is supported`);
    return { name, dims: t.dims.map(Number), data: t.data };
  });
}

// ---------------------------------------------------------------------------
// Mode: compare two models.

function parseList(text, what, parse) {
  const items = String(text).split(',').map((s) => s.trim()).filter((s) => s.length);
  if (!items.length) throw new UsageError(`${what}: empty list`);
  return items.map((s) => {
    const v = parse(s);
    if (v === null) throw new UsageError(`${what}: bad value '${s}'`);
    return v;
  });
}

function positiveInt(s) { return /^[0-9]+$/.test(s) && Number(s) > 0 && Number.isSafeInteger(Number(s)) ? Number(s) : null; }

function parseTol(s) {
  const v = Number(s);
  if (s === undefined || s === '' || !Number.isFinite(v) || v < 0) throw new UsageError(`--tol: bad value '${s}'`);
  return v;
}

function describeModel(file, shapeOverride) {
  const sig = readModelSignature(file);
  if (sig.inputs.length !== 1) {
    throw new LoadError(`${file}: expected one input, found ${sig.inputs.length} (${sig.inputs.map((i) => i.name).join(', ')})`);
  }
  const input = sig.inputs[0];
  if (input.elemType !== TENSOR_FLOAT) throw new LoadError(`${file}: input '${input.name}' has element type ${input.elemType}, not float`);
  if (!input.dims && !shapeOverride) throw new LoadError(`${file}: input '${input.name}' declares no shape (pass --shape)`);
  const dims = input.dims || [null, ...shapeOverride];
  const b = dims[0];
  return {
    file, input: input.name, outputs: sig.outputs.map((o) => o.name), rank: dims.length,
    fixedBatch: typeof b === 'number' && b > 0 ? b : null,
    rest: dims.slice(1),
  };
}

// The non-batch dims, from --shape or whichever model declares them.
function sampleShape(a, b, shapeOverride) {
  if (a.rank !== b.rank) throw new LoadError(`input ranks differ: ${a.file} has ${a.rank}, ${b.file} has ${b.rank}`);
  const rest = [];
  for (let i = 0; i < a.rank - 1; i++) {
    const da = typeof a.rest[i] === 'number' && a.rest[i] > 0 ? a.rest[i] : null;
    const db = typeof b.rest[i] === 'number' && b.rest[i] > 0 ? b.rest[i] : null;
    const dover = shapeOverride ? shapeOverride[i] : null;
    if (da !== null && db !== null && da !== db) {
      throw new LoadError(`input dim ${i + 1} differs: ${a.file} has ${da}, ${b.file} has ${db}`);
    }
    const d = dover ?? da ?? db;
    if (d === null) throw new LoadError(`input dim ${i + 1} is symbolic in both models (pass --shape)`);
    rest.push(d);
  }
  return rest;
}

// Runs model m on x (batch b) whole, or in chunks of its fixed batch, outputs concatenated.
async function runBatched(session, m, x, b, rest) {
  const per = rest.reduce((p, d) => p * d, 1);
  const chunk = m.fixedBatch || b;
  const pieces = [];
  for (let i = 0; i < b; i += chunk) {
    const data = x.subarray(i * per, (i + chunk) * per);
    pieces.push(await runSession(session, m.file, { [m.input]: { dims: [chunk, ...rest], data } }));
  }
  if (pieces.length === 1) return pieces[0];
  return pieces[0].map((first, k) => {
    if (first.dims[0] !== chunk) {
      throw new LoadError(`${m.file}: output '${first.name}' has leading dim ${first.dims[0]}, not the batch ${chunk}; cannot run it in chunks`);
    }
    const data = new Float32Array(first.data.length * pieces.length);
    pieces.forEach((p, j) => data.set(p[k].data, j * first.data.length));
    return { name: first.name, dims: [b, ...first.dims.slice(1)], data };
  });
}

async function compareModels(opts) {
  const a = describeModel(opts.files[0], opts.shape);
  const b = describeModel(opts.files[1], opts.shape);
  if (opts.shape && opts.shape.length !== a.rank - 1) throw new UsageError(`--shape has ${opts.shape.length} dims, the input needs ${a.rank - 1}`);
  const rest = sampleShape(a, b, opts.shape);
  const sa = await openSession(a.file), sb = await openSession(b.file);
  const results = [], notes = [];
  let failed = false;
  const say = (line) => { if (!opts.json) console.log(line); };

  for (const batch of opts.batches) {
    const skips = [a, b].filter((m, i) => m.fixedBatch && batch % m.fixedBatch !== 0 && !(i === 1 && a.file === b.file));
    if (skips.length) {
      for (const m of skips) {
        const note = `batch ${batch}: skipped, ${path.basename(m.file)} has fixed batch ${m.fixedBatch} (not a divisor)`;
        notes.push(note);
        say(`note: ${note}`);
      }
      continue;
    }
    const per = rest.reduce((p, d) => p * d, 1);
    const x = randomNormal(batch * per, (opts.seed * 1000003 + batch) >>> 0);
    const ya = await runBatched(sa, a, x, batch, rest);
    const yb = await runBatched(sb, b, x, batch, rest);
    if (ya.length !== yb.length) {
      failed = true;
      const note = `batch ${batch}: ${a.file} has ${ya.length} outputs, ${b.file} has ${yb.length}`;
      notes.push(note);
      say(`FAIL ${note}`);
      continue;
    }
    for (let k = 0; k < ya.length; k++) {
      const r = { batch, output: ya[k].name, output_b: yb[k].name, shape: ya[k].dims, shape_b: yb[k].dims };
      if (ya[k].dims.join(',') !== yb[k].dims.join(',')) {
        Object.assign(r, { rel: null, ok: false, error: 'shapes differ' });
        failed = true;
        say(`FAIL batch ${batch} output '${r.output}': shapes differ, [${r.shape}] vs [${r.shape_b}]`);
      } else {
        const d = relativeDifference(ya[k].data, yb[k].data);
        r.rel = Number.isFinite(d.rel) ? d.rel : null;
        r.max_abs_diff = Number.isFinite(d.maxAbsDiff) ? d.maxAbsDiff : null;
        r.scale = d.scale;
        r.ok = d.rel <= opts.tol;
        if (d.nonFinite) r.error = 'NaN or infinite value';
        if (!r.ok) failed = true;
        say(`${r.ok ? 'ok  ' : 'FAIL'} batch ${batch} output '${r.output}' [${r.shape}]: rel ${fmt(d.rel)} ` +
            `(max|a-b| ${fmt(d.maxAbsDiff)}, max|a| ${fmt(d.scale)}, tol ${opts.tol})${d.nonFinite ? ' NaN/Inf' : ''}`);
      }
      results.push(r);
    }
  }
  if (!results.length) {
    failed = true;
    notes.push('nothing was compared');
    say('FAIL nothing was compared');
  }
  if (opts.json) {
    console.log(JSON.stringify({ a: a.file, b: b.file, tol: opts.tol, seed: opts.seed, ok: !failed, results, notes }));
  }
  return failed ? 1 : 0;
}

// ---------------------------------------------------------------------------
// Mode: run one model on TensorProto files.

async function runModel(opts) {
  const tensors = opts.inputs.map(readTensorFile);
  const session = await openSession(opts.model);
  const names = session.inputNames;
  if (tensors.length !== names.length) {
    throw new UsageError(`${opts.model} has ${names.length} inputs (${names.join(', ')}), ${tensors.length} --input files given`);
  }
  if (opts.outputs.length !== session.outputNames.length) {
    throw new UsageError(`${opts.model} has ${session.outputNames.length} outputs (${session.outputNames.join(', ')}), ` +
                         `${opts.outputs.length} --output files given`);
  }
  // Inputs by name when every file names a model input, else in order.
  const byName = tensors.every((t) => names.includes(t.name)) && new Set(tensors.map((t) => t.name)).size === tensors.length;
  const feeds = {};
  tensors.forEach((t, i) => { feeds[byName ? t.name : names[i]] = t; });
  const outs = await runSession(session, opts.model, feeds);
  outs.forEach((t, i) => writeFileAtomic(opts.outputs[i], encodeTensor(t)));
  if (!opts.json) {
    outs.forEach((t, i) => console.log(`wrote ${opts.outputs[i]}: '${t.name}' [${t.dims}]`));
  }
  return 0;
}

// ---------------------------------------------------------------------------
// Mode: compare two TensorProto files.

function checkPb(opts) {
  const [expFile, actFile] = opts.files;
  const exp = readTensorFile(expFile), act = readTensorFile(actFile);
  let r;
  if (exp.dims.join(',') !== act.dims.join(',')) {
    r = { ok: false, error: 'shapes differ', rel: null };
    if (!opts.json) console.log(`FAIL ${actFile} vs ${expFile}: shapes differ, [${act.dims}] vs expected [${exp.dims}]`);
  } else {
    const d = relativeDifference(exp.data, act.data);
    r = { ok: d.rel <= opts.tol, rel: Number.isFinite(d.rel) ? d.rel : null,
          max_abs_diff: Number.isFinite(d.maxAbsDiff) ? d.maxAbsDiff : null, scale: d.scale };
    if (d.nonFinite) r.error = 'NaN or infinite value';
    if (!opts.json) {
      console.log(`${r.ok ? 'ok  ' : 'FAIL'} ${actFile} vs ${expFile} [${exp.dims}]: rel ${fmt(d.rel)} ` +
                  `(max|a-b| ${fmt(d.maxAbsDiff)}, max|expected| ${fmt(d.scale)}, tol ${opts.tol})${d.nonFinite ? ' NaN/Inf' : ''}`);
    }
  }
  if (opts.json) console.log(JSON.stringify({ expected: expFile, actual: actFile, tol: opts.tol, shape: exp.dims, shape_actual: act.dims, ...r }));
  return r.ok ? 0 : 1;
}

// ---------------------------------------------------------------------------
// Command line.

function parseArgs(argv) {
  const opts = { mode: 'compare', files: [], batches: [1], tol: 1e-4, seed: 1, json: false, shape: null,
                 model: null, inputs: [], outputs: [] };
  let list = null;                                      // where bare words go after --input/--output
  const value = (i, flag) => {
    if (i + 1 >= argv.length) throw new UsageError(`${flag} needs a value`);
    return argv[i + 1];
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    switch (arg) {
      case '-h': case '--help': opts.mode = 'help'; return opts;
      case '--batches': opts.batches = parseList(value(i, arg), arg, positiveInt); i++; list = null; break;
      case '--tol': opts.tol = parseTol(value(i, arg)); i++; list = null; break;
      case '--seed': {
        const s = value(i, arg);
        if (!/^[0-9]+$/.test(s) || !Number.isSafeInteger(Number(s))) throw new UsageError(`--seed: bad value '${s}'`);
        opts.seed = Number(s); i++; list = null; break;
      }
      case '--shape': opts.shape = parseList(value(i, arg).replace(/x/g, ','), arg, positiveInt); i++; list = null; break;
      case '--json': opts.json = true; list = null; break;
      case '--run': opts.mode = 'run'; opts.model = value(i, arg); i++; list = null; break;
      case '--check-pb': opts.mode = 'check-pb'; list = null; break;
      case '--input': list = opts.inputs; break;
      case '--output': list = opts.outputs; break;
      default:
        if (arg.startsWith('--')) throw new UsageError(`unknown option ${arg}`);
        (list || opts.files).push(arg);
    }
  }
  if (opts.mode === 'compare' && opts.files.length !== 2) throw new UsageError('give two models A.onnx B.onnx');
  if (opts.mode === 'check-pb' && opts.files.length !== 2) throw new UsageError('--check-pb needs EXPECTED.pb ACTUAL.pb');
  if (opts.mode === 'run') {
    if (opts.files.length) throw new UsageError(`unexpected argument ${opts.files[0]} (files go after --input/--output)`);
    if (!opts.inputs.length || !opts.outputs.length) throw new UsageError('--run needs --input IN.pb... and --output OUT.pb...');
  }
  return opts;
}

async function main() {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (e) {
    console.error(`ort_compare: ${e.message}\n${USAGE}`);
    return 2;
  }
  if (opts.mode === 'help') { console.log(USAGE); return 0; }
  try {
    if (opts.mode === 'run') return await runModel(opts);
    if (opts.mode === 'check-pb') return checkPb(opts);
    return await compareModels(opts);
  } catch (e) {
    if (e instanceof UsageError || e instanceof LoadError) {
      console.error(`ort_compare: ${e.message}`);
      return 2;
    }
    console.error(`ort_compare: ${e.stack || e}`);
    return 2;
  }
}

main().then((code) => { process.exitCode = code; });

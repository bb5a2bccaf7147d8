// ONNX Runtime (onnxruntime-node, CPU) on real images, one at a time (batch 1):
// the median and mean latency per image and the top-1 accuracy. The images come
// preprocessed as one TensorProto [N, C, H, W] (tools/defect_inputs.py), with
// their labels in a JSON file. Prints one JSON line.
// usage: node bench/ort_images.js MODEL.onnx X.pb LABELS.json [--threads T]
const fs = require('fs');
const path = require('path');
const ort = require(path.join(__dirname, '..', 'tools', 'node', 'node_modules', 'onnxruntime-node'));

// Just enough of onnx.TensorProto for a float tensor: dims (field 1), data_type
// (2, must be 1 = FLOAT), raw_data (9).
function readTensor(file) {
  const b = fs.readFileSync(file);
  let i = 0;
  const dims = [];
  let raw = null, type = 0;
  function varint() {
    let v = 0n, shift = 0n;
    for (;;) {
      const byte = b[i++];
      v |= BigInt(byte & 0x7f) << shift;
      if (!(byte & 0x80)) return v;
      shift += 7n;
    }
  }
  while (i < b.length) {
    const key = Number(varint()), field = key >> 3, wire = key & 7;
    if (wire === 0) {
      const v = varint();
      if (field === 1) dims.push(Number(v));
      else if (field === 2) type = Number(v);
    } else if (wire === 2) {
      const len = Number(varint());
      if (field === 9) raw = b.subarray(i, i + len);
      else if (field === 1) { const end = i + len; while (i < end) dims.push(Number(varint())); continue; }
      i += len;
    } else if (wire === 5) i += 4;
    else if (wire === 1) i += 8;
    else throw new Error(`${file}: unexpected wire type ${wire}`);
  }
  if (type !== 1 || !raw || dims.length !== 4) throw new Error(`${file}: not a float [N, C, H, W] tensor with raw data`);
  const data = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.length));
  return {dims, data};
}

async function main() {
  const [model, input, labelsFile] = process.argv.slice(2);
  const t = process.argv.indexOf('--threads');
  const threads = t > 0 ? Number(process.argv[t + 1]) : 1;
  const x = readTensor(input);
  const labels = JSON.parse(fs.readFileSync(labelsFile, 'utf8'));
  const [n, c, h, w] = x.dims;
  if (labels.length !== n) throw new Error(`${labels.length} labels for ${n} images`);
  const s = await ort.InferenceSession.create(model, {intraOpNumThreads: threads, interOpNumThreads: 1,
                                                     graphOptimizationLevel: 'all'});
  const size = c * h * w;
  const one = i => ({[s.inputNames[0]]: new ort.Tensor('float32', x.data.subarray(i * size, (i + 1) * size), [1, c, h, w])});
  for (let i = 0; i < Math.min(3, n); i++) await s.run(one(i));
  const times = [];
  let correct = 0;
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    const out = await s.run(one(i));
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    const z = out[s.outputNames[0]].data;
    let best = 0;
    for (let j = 1; j < z.length; j++) if (z[j] > z[best]) best = j;
    correct += best === labels[i];
  }
  const mean = times.reduce((a, b) => a + b, 0) / n;
  times.sort((a, b) => a - b);
  console.log(JSON.stringify({model: path.basename(model), images: n, threads, ms_median: times[Math.floor(n / 2)],
                              ms_mean: mean, accuracy: correct / n}));
}
main().catch(e => { console.error('ort_images: ' + e.message); process.exit(2); });

// Times ONNX Runtime (onnxruntime-node, CPU) on one model: median latency of
// `--iters` runs at `--batch`, after warm-up. Prints one JSON line.
// usage: node bench/ort_time.js MODEL.onnx --shape C,H,W [--batch B] [--threads T] [--iters N]
const path = require('path');
const ort = require(path.join(__dirname, '..', 'tools', 'node', 'node_modules', 'onnxruntime-node'));

function arg(name, dflt) {
  const i = process.argv.indexOf('--' + name);
  return i > 0 ? process.argv[i + 1] : dflt;
}

async function main() {
  const model = process.argv[2];
  const shape = arg('shape', '3,32,32').split(',').map(Number);
  const batch = Number(arg('batch', '1'));
  const threads = Number(arg('threads', '2'));
  const iters = Number(arg('iters', '20'));
  const s = await ort.InferenceSession.create(model, {intraOpNumThreads: threads, interOpNumThreads: 1,
                                                     graphOptimizationLevel: 'all'});
  const n = batch * shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = Math.sin(i * 0.37);
  const feeds = {[s.inputNames[0]]: new ort.Tensor('float32', data, [batch, ...shape])};
  for (let i = 0; i < 3; i++) await s.run(feeds);
  const times = [];
  for (let i = 0; i < iters; i++) {
    const t0 = process.hrtime.bigint();
    await s.run(feeds);
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  times.sort((a, b) => a - b);
  const ms = times[Math.floor(times.length / 2)];
  console.log(JSON.stringify({model: path.basename(model), batch, threads, ms, images_per_s: batch * 1000 / ms}));
}
main().catch(e => { console.error('ort_time: ' + e.message); process.exit(2); });

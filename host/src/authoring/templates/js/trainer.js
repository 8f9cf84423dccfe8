// {{name}}: a wflow trainer written in JavaScript. Fits a logistic regression (one sigmoid for
// two classes, a softmax over more) or a linear regression by full-batch gradient descent on
// the standardised numeric columns. The model goes back as ONNX built by the host's
// `model-builder`: the plugin passes its weights and a two-node graph, and the host writes the
// file, checks it with tract and returns it with its metadata, so no protobuf library is needed
// here. Build it with `wflow plugin build`.

import { progress } from 'wflow:plugin/host@{{contract}}';
import { build } from 'wflow:plugin/model-builder@{{contract}}';
import { guarded, parseConfig, StepError } from './common.js';

const CONFIG_SCHEMA = {
  type: 'object',
  properties: {
    task: {
      enum: ['auto', 'classification', 'regression'],
      description: 'auto: a float target is a regression, any other a classification [default: auto].',
    },
    features: {
      type: 'array',
      items: { type: 'string' },
      description: 'The feature columns [default: every numeric column but the target].',
    },
    epochs: { type: 'integer', minimum: 1, maximum: 100000, description: '[default: 300]' },
    learning_rate: { type: 'number', exclusiveMinimum: 0, description: '[default: 0.5]' },
    l2: { type: 'number', minimum: 0, description: 'L2 penalty on the weights [default: 0.0001].' },
  },
  additionalProperties: false,
};

const NUMERIC = ['float', 'integer', 'boolean'];

export function describe() {
  return {
    name: '{{name}}',
    version: '0.1.0',
    kind: 'trainer',
    description: 'Logistic or linear regression by gradient descent, in JavaScript',
    configSchema: JSON.stringify(CONFIG_SCHEMA),
    capabilities: [],
  };
}

/** A class as the host names it: integers in decimal, booleans `true` / `false`. */
const labelText = (value) => String(value);

function columnValues(data, name) {
  const column = data.column(name);
  if (column === undefined) throw new StepError('invalid-input', `no column \`${name}\` in the table`);
  const row = column.valid.indexOf(false);
  if (row >= 0) throw new StepError('invalid-input', `column \`${name}\` is null at row ${row}: impute it before training`);
  return column.values;
}

function numbers(data, name) {
  const values = columnValues(data, name);
  if (values.tag === 'text') throw new StepError('invalid-input', `column \`${name}\` is text: encode it before training`);
  return Float64Array.from(values.val, Number);
}

/** The column scaled to mean 0 and standard deviation 1, with its mean and deviation. */
function standardise(values) {
  const n = values.length;
  const mean = values.reduce((sum, v) => sum + v, 0) / n;
  const deviation = Math.sqrt(values.reduce((sum, v) => sum + (v - mean) ** 2, 0) / n) || 1;
  return { scaled: values.map((v) => (v - mean) / deviation), mean, deviation };
}

/** Each output's score of every row: its bias plus the weighted sum of the columns. */
function scoresOf(columns, weights, biases) {
  const n = columns[0].length;
  return weights.map((row, k) => {
    const z = new Float64Array(n).fill(biases[k]);
    columns.forEach((column, j) => {
      const w = row[j];
      for (let i = 0; i < n; i++) z[i] += w * column[i];
    });
    return z;
  });
}

const logistic = (scores) => [scores[0].map((z) => 1 / (1 + Math.exp(-Math.max(-30, Math.min(30, z)))))];

function softmax(scores) {
  const n = scores[0].length;
  const probabilities = scores.map(() => new Float64Array(n));
  for (let i = 0; i < n; i++) {
    let top = -Infinity;
    for (const z of scores) top = Math.max(top, z[i]);
    let total = 0;
    scores.forEach((z, k) => {
      probabilities[k][i] = Math.exp(z[i] - top);
      total += probabilities[k][i];
    });
    for (const p of probabilities) p[i] /= total;
  }
  return probabilities;
}

const identity = (scores) => scores;

/** Gradient descent on the mean loss: `targets` holds one 0/1 (or real) array per output,
 *  `link` turns the rows' scores into predictions. Returns one weight array per output and the
 *  biases. */
function fit(columns, targets, link, { epochs, rate, l2 }) {
  const n = targets[0].length;
  const weights = targets.map(() => new Float64Array(columns.length));
  const biases = new Float64Array(targets.length);
  for (let epoch = 0; epoch < epochs; epoch++) {
    const predictions = link(scoresOf(columns, weights, biases));
    targets.forEach((target, k) => {
      const errors = predictions[k].map((p, i) => p - target[i]);
      biases[k] -= (rate * errors.reduce((sum, e) => sum + e, 0)) / n;
      columns.forEach((column, j) => {
        let gradient = 0;
        for (let i = 0; i < n; i++) gradient += errors[i] * column[i];
        weights[k][j] -= rate * (gradient / n + l2 * weights[k][j]);
      });
    });
    if ((epoch + 1) % Math.max(Math.floor(epochs / 10), 1) === 0) {
      progress(BigInt(epoch + 1), BigInt(epochs), `epoch ${epoch + 1}/${epochs}`);
    }
  }
  return { weights, biases };
}

export function train(data, target, config) {
  return guarded(() => {
    const options = parseConfig(config);
    const settings = { epochs: options.epochs ?? 300, rate: options.learning_rate ?? 0.5, l2: options.l2 ?? 0.0001 };
    const schema = new Map(data.schema().map((info) => [info.name, info.kind]));
    if (!schema.has(target)) throw new StepError('invalid-input', `no target column \`${target}\` in the table`);
    const features =
      options.features ?? [...schema].filter(([name, kind]) => name !== target && NUMERIC.includes(kind)).map(([name]) => name);
    if (features.length === 0) throw new StepError('invalid-input', 'the table has no numeric feature column');
    if (features.includes(target)) throw new StepError('invalid-config', `\`features\` lists the target \`${target}\``);
    let task = options.task ?? 'auto';
    if (task === 'auto') task = schema.get(target) === 'float' ? 'regression' : 'classification';
    const rows = Number(data.rowCount());
    if (rows < 2) throw new StepError('invalid-input', `${rows} rows: at least 2 are needed to train`);

    const standardised = features.map((name) => standardise(numbers(data, name)));
    const columns = standardised.map((s) => s.scaled);

    let classes = [];
    let link;
    let nodes = [];
    let output = 'scores';
    let scale = 1;
    let offset = 0;
    let fitted;
    const metrics = [];
    if (task === 'classification') {
      const labels = Array.from(columnValues(data, target).val, labelText);
      classes = [...new Set(labels)].sort();
      if (classes.length < 2) {
        throw new StepError('invalid-input', `the target \`${target}\` has one class, ${JSON.stringify(classes[0])}: nothing to learn`);
      }
      const binary = classes.length === 2;
      const targets = (binary ? [classes[1]] : classes).map((c) => Float64Array.from(labels, (label) => (label === c ? 1 : 0)));
      link = binary ? logistic : softmax;
      fitted = fit(columns, targets, link, settings);
      nodes = [
        binary
          ? { op: 'Sigmoid', inputs: ['scores'], outputs: ['probabilities'], attributes: [] }
          : { op: 'Softmax', inputs: ['scores'], outputs: ['probabilities'], attributes: [{ name: 'axis', value: { tag: 'integer', val: 1n } }] },
      ];
      output = 'probabilities';
      const predictions = link(scoresOf(columns, fitted.weights, fitted.biases));
      const predicted = labels.map((_, i) => {
        if (binary) return predictions[0][i] >= 0.5 ? classes[1] : classes[0];
        let best = 0;
        predictions.forEach((p, k) => {
          if (p[i] > predictions[best][i]) best = k;
        });
        return classes[best];
      });
      const right = predicted.filter((p, i) => p === labels[i]).length;
      metrics.push({ name: 'train_accuracy', value: right / labels.length });
    } else {
      if (!NUMERIC.includes(schema.get(target))) {
        throw new StepError('invalid-input', `a regression needs a numeric target; \`${target}\` is text`);
      }
      const y = standardise(numbers(data, target));
      ({ mean: offset, deviation: scale } = y);
      fitted = fit(columns, [y.scaled], identity, settings);
      const scores = scoresOf(columns, fitted.weights, fitted.biases)[0];
      const squares = scores.reduce((sum, z, i) => sum + (z - y.scaled[i]) ** 2, 0);
      metrics.push({ name: 'train_rmse', value: Math.sqrt(squares / rows) * scale });
    }

    // Fold the standardisation and the target's scale into one Gemm:
    // scale * (b + sum_j w_j (x_j - mean_j) / dev_j) + offset.
    const gemmWeights = [];
    const gemmBiases = [];
    fitted.weights.forEach((row, k) => {
      const folded = Array.from(row, (w, j) => (scale * w) / standardised[j].deviation);
      gemmWeights.push(...folded);
      gemmBiases.push(scale * fitted.biases[k] + offset - folded.reduce((sum, f, j) => sum + f * standardised[j].mean, 0));
    });
    const graph = {
      constants: [
        { name: 'weights', dims: [BigInt(fitted.weights.length), BigInt(features.length)], data: { tag: 'float', val: Float32Array.from(gemmWeights) } },
        { name: 'biases', dims: [BigInt(fitted.weights.length)], data: { tag: 'float', val: Float32Array.from(gemmBiases) } },
      ],
      nodes: [
        { op: 'Gemm', inputs: ['features', 'weights', 'biases'], outputs: ['scores'], attributes: [{ name: 'transB', value: { tag: 'integer', val: 1n } }] },
        ...nodes,
      ],
      output,
    };
    const metadata = {
      features,
      target,
      task,
      classLabels: classes,
      properties: [
        ['epochs', String(settings.epochs)],
        ['learning_rate', String(settings.rate)],
        ['l2', String(settings.l2)],
      ],
    };
    let model;
    try {
      model = build(graph, metadata);
    } catch (error) {
      throw new StepError('failed', `the host refused the model: ${error?.payload ?? error}`);
    }
    metrics.push({ name: 'epochs', value: settings.epochs });
    return { model, metrics };
  });
}

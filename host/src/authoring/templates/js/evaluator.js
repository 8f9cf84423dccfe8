// {{name}}: a wflow evaluator written in JavaScript. Predicts with the model (the host runs it
// natively) and scores the predictions against the target column: accuracy for classifiers,
// mean absolute error for regressions. Build it with `wflow plugin build`.

import { Session } from 'wflow:plugin/inference@{{contract}}';
import { guarded, parseConfig, StepError } from './common.js';

const CONFIG_SCHEMA = {
  type: 'object',
  properties: {
    min_accuracy: { type: 'number', minimum: 0, maximum: 1 },
    max_mae: { type: 'number', minimum: 0 },
  },
  additionalProperties: false,
};

export function describe() {
  return {
    name: '{{name}}',
    version: '0.1.0',
    kind: 'evaluator',
    description: "Accuracy or mean absolute error of a model's predictions",
    configSchema: JSON.stringify(CONFIG_SCHEMA),
    capabilities: [],
  };
}

/** Labels compare as text: 1, 1.0 and "1" are the same class. */
const text = (value) => String(typeof value === 'bigint' ? value : Number.isInteger(value) ? value : value);

export function evaluate(model, data, config) {
  return guarded(() => {
    const options = parseConfig(config);
    const target = model.metadata.target;
    const truth = data.column(target);
    if (truth === undefined) throw new StepError('invalid-input', `no target column \`${target}\` in the table`);
    let predicted;
    try {
      predicted = Session.load(model).predict(data);
    } catch (error) {
      throw new StepError('failed', `prediction failed: ${error?.payload ?? error}`);
    }
    const actual = Array.from(truth.values.val);
    const findings = [];
    if (model.metadata.task === 'classification') {
      const labels = Array.from(predicted.column('label').values.val);
      const right = labels.filter((label, i) => text(label) === text(actual[i])).length;
      const accuracy = right / Math.max(labels.length, 1);
      if (options.min_accuracy !== undefined) {
        findings.push({
          check: 'min-accuracy', column: undefined, severity: 'fail',
          passed: accuracy >= options.min_accuracy,
          message: `accuracy ${accuracy.toFixed(4)}, at least ${options.min_accuracy} expected`,
          observed: accuracy.toFixed(4), expected: `>= ${options.min_accuracy}`,
        });
      }
      return { metrics: [{ name: 'accuracy', value: accuracy }], report: { findings } };
    }
    const values = Array.from(predicted.column('prediction').values.val, Number);
    const mae = values.reduce((sum, p, i) => sum + Math.abs(p - Number(actual[i])), 0) / Math.max(values.length, 1);
    if (options.max_mae !== undefined) {
      findings.push({
        check: 'max-mae', column: undefined, severity: 'fail', passed: mae <= options.max_mae,
        message: `MAE ${mae.toFixed(4)}, at most ${options.max_mae} expected`,
        observed: mae.toFixed(4), expected: `<= ${options.max_mae}`,
      });
    }
    return { metrics: [{ name: 'mae', value: mae }], report: { findings } };
  });
}

// js-cost-metric: an evaluator for binary classifiers that prices the model's mistakes.
//
// It predicts on the data with the host's ONNX inference, counts true/false positives and
// negatives against the target column named in the model's metadata, and turns the false
// positives and false negatives into a business cost. An optional bound on the cost per row
// fails the step.
//
// Built into a WebAssembly component for the `evaluator` world of wflow:plugin@0.1.3 with
// @bytecodealliance/componentize-js (see README.md). WIT -> JS as componentize-js maps it:
// records are objects with camelCase fields, variants are `{ tag, val }`, enums are their
// kebab-case names as strings, `u64` is a BigInt, `option<T>` is the value or `undefined`,
// an imported `result<T, E>` returns T or throws an object whose `payload` is E, and an
// exported one returns T or throws E itself or an error whose `payload` is E (anything else
// thrown traps the component).

import { log, progress } from 'wflow:plugin/host@0.1.3';
import { Session } from 'wflow:plugin/inference@0.1.3';

const NAME = 'js-cost-metric';
const VERSION = '0.1.0';

/** Rows read from the host per call, so that memory stays bounded on large tables. */
const CHUNK_ROWS = 65_536n;

/** Defaults of the optional configuration fields. */
const DEFAULTS = Object.freeze({ false_positive_cost: 1.0, false_negative_cost: 5.0 });

/** The JSON Schema of the configuration; the host checks every step's `with` against it. */
const CONFIG_SCHEMA = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  title: 'Config',
  description: `Configuration of \`${NAME}\`.`,
  type: 'object',
  additionalProperties: false,
  properties: {
    positive: {
      description:
        "The positive class label, as text (e.g. \"1\"); defaults to the model's second class label.",
      type: 'string',
    },
    false_positive_cost: {
      description: 'Cost of one false positive (a negative row predicted positive).',
      type: 'number',
      minimum: 0,
      default: DEFAULTS.false_positive_cost,
    },
    false_negative_cost: {
      description: 'Cost of one false negative (a positive row predicted negative).',
      type: 'number',
      minimum: 0,
      default: DEFAULTS.false_negative_cost,
    },
    max_cost_per_row: {
      description: 'Largest allowed cost per row; a `fail` finding when exceeded.',
      type: 'number',
      minimum: 0,
    },
  },
};

/**
 * A WIT `step-error`. componentize-js turns an exception thrown by an export returning
 * `result<_, step-error>` into the `err` case, taking the value from its `payload` property.
 */
class StepError extends Error {
  /**
   * @param {'invalid-config' | 'invalid-input' | 'failed'} tag
   * @param {string} message
   */
  constructor(tag, message) {
    super(message);
    this.name = 'StepError';
    this.payload = { tag, val: message };
  }

  static invalidConfig(message) {
    return new StepError('invalid-config', message);
  }

  static invalidInput(message) {
    return new StepError('invalid-input', message);
  }

  static failed(message) {
    return new StepError('failed', message);
  }
}

/** `describe` of the `base` world. */
export function describe() {
  return {
    name: NAME,
    version: VERSION,
    kind: 'evaluator',
    description: 'Business cost of a binary classifier: priced false positives and false negatives, cost per row, FPR and FNR',
    configSchema: JSON.stringify(CONFIG_SCHEMA),
    capabilities: [],
  };
}

/** `evaluate` of the `evaluator` world. */
export function evaluate(model, data, config) {
  try {
    return evaluateModel(model, data, config);
  } catch (error) {
    if (error instanceof StepError) throw error;
    // A bug here must not trap the component: report it as the step's failure.
    throw StepError.failed(`internal error: ${error?.stack ?? error}`);
  }
}

function evaluateModel(model, data, configText) {
  const { metadata } = model;
  const config = parseConfig(configText);
  if (metadata.task !== 'classification') {
    throw StepError.invalidInput(`${NAME} evaluates classifiers, but the model's task is \`${metadata.task}\``);
  }
  if (metadata.classLabels.length !== 2) {
    throw StepError.invalidInput(
      `${NAME} evaluates binary classifiers, but the model has ${metadata.classLabels.length} classes (${metadata.classLabels.join(', ')})`,
    );
  }
  const positive = config.positive ?? metadata.classLabels[1];
  if (!metadata.classLabels.some((label) => sameLabel(label, positive))) {
    throw StepError.invalidConfig(
      `field \`positive\`: "${positive}" is not one of the model's class labels (${metadata.classLabels.join(', ')})`,
    );
  }
  const target = metadata.target;
  // Checked up front, from the schema (no values copied), so a wrong table fails before inference.
  const columns = data.schema().map((info) => info.name);
  if (!columns.includes(target)) {
    throw StepError.invalidInput(`no target column \`${target}\` (columns: ${columns.join(', ')})`);
  }

  const predictions = predict(model, data);
  const rows = data.rowCount();
  if (predictions.rowCount() !== rows) {
    throw StepError.failed(`the model returned ${predictions.rowCount()} predictions for ${rows} rows`);
  }
  if (rows === 0n) {
    throw StepError.invalidInput('the data has no rows to evaluate');
  }

  const counts = confusion(data, target, predictions, positive);
  return assess(counts, config, positive);
}

/**
 * Parses and checks the configuration. The host has already validated it against the schema;
 * this repeats the checks so that the plugin is correct on its own, naming the field at fault.
 */
function parseConfig(text) {
  let raw;
  try {
    raw = JSON.parse(text || '{}');
  } catch (error) {
    throw StepError.invalidConfig(`the configuration is not valid JSON: ${error.message}`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw StepError.invalidConfig('the configuration must be a JSON object');
  }
  const known = Object.keys(CONFIG_SCHEMA.properties);
  for (const field of Object.keys(raw)) {
    if (!known.includes(field)) {
      throw StepError.invalidConfig(`unknown field \`${field}\` (expected one of: ${known.join(', ')})`);
    }
  }
  if (raw.positive !== undefined && typeof raw.positive !== 'string') {
    throw StepError.invalidConfig(`field \`positive\`: must be a string, got ${JSON.stringify(raw.positive)}`);
  }
  const cost = (field) => {
    const value = raw[field] ?? DEFAULTS[field];
    if (value === undefined) return undefined;
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
      throw StepError.invalidConfig(`field \`${field}\`: must be a non-negative number, got ${JSON.stringify(value)}`);
    }
    return value;
  };
  return {
    positive: raw.positive,
    falsePositiveCost: cost('false_positive_cost'),
    falseNegativeCost: cost('false_negative_cost'),
    maxCostPerRow: cost('max_cost_per_row'),
  };
}

/** Runs the model on the data with the host's inference. */
function predict(model, data) {
  let session;
  try {
    session = Session.load(model);
  } catch (error) {
    throw StepError.failed(`loading the model: ${errorText(error)}`);
  }
  try {
    return session.predict(data);
  } catch (error) {
    throw StepError.failed(`predicting: ${errorText(error)}`);
  } finally {
    // Resource handles have `Symbol.dispose`: free the host's session as soon as it is done.
    session[Symbol.dispose]();
  }
}

/** The counts of the confusion matrix, reading both tables in chunks of rows. */
function confusion(data, target, predictions, positive) {
  const counts = { tp: 0, fp: 0, tn: 0, fn: 0 };
  const rows = data.rowCount();
  for (let offset = 0n; offset < rows; offset += CHUNK_ROWS) {
    const truth = labels(data.columnRange(target, offset, CHUNK_ROWS), offset, 'invalid-input');
    const predicted = labels(predictions.columnRange('label', offset, CHUNK_ROWS), offset, 'failed');
    truth.forEach((actual, i) => {
      const actualPositive = sameLabel(actual, positive);
      const predictedPositive = sameLabel(predicted[i], positive);
      if (predictedPositive) counts[actualPositive ? 'tp' : 'fp'] += 1;
      else counts[actualPositive ? 'fn' : 'tn'] += 1;
    });
    const done = offset + BigInt(truth.length);
    progress(done, rows, `compared ${done} of ${rows} rows`);
  }
  return counts;
}

/**
 * A column's values as label strings (`1`, `2.5`, `true`, text as is). A null is an error of
 * kind `nullTag`, naming the column and the row (`offset` is the chunk's first row).
 */
function labels(column, offset, nullTag) {
  if (column === undefined) {
    throw new StepError(nullTag, 'a column disappeared while it was being read');
  }
  const { name, values, valid } = column;
  const nullRow = valid.indexOf(false);
  if (nullRow !== -1) {
    throw new StepError(nullTag, `column \`${name}\` has a null at row ${offset + BigInt(nullRow)}`);
  }
  // Typed arrays (float64, int64) map to arrays of strings with Array.from.
  return Array.from(values.val, String);
}

/** Labels match as text, or by value for numbers written differently (`1.0` and `1`). */
function sameLabel(a, b) {
  if (a === b) return true;
  const x = Number(a);
  const y = Number(b);
  return a.trim() !== '' && b.trim() !== '' && !Number.isNaN(x) && x === y;
}

/** The metrics and the report from the counts. */
function assess({ tp, fp, tn, fn }, config, positive) {
  const rows = tp + fp + tn + fn;
  const cost = fp * config.falsePositiveCost + fn * config.falseNegativeCost;
  const costPerRow = cost / rows;
  // 0/0 (no negatives, or no positives) counts as a rate of 0.
  const rate = (part, whole) => (whole === 0 ? 0 : part / whole);
  const falsePositiveRate = rate(fp, fp + tn);
  const falseNegativeRate = rate(fn, fn + tp);

  const metrics = Object.entries({
    rows,
    cost,
    cost_per_row: costPerRow,
    false_positive_rate: falsePositiveRate,
    false_negative_rate: falseNegativeRate,
    true_positives: tp,
    false_positives: fp,
    true_negatives: tn,
    false_negatives: fn,
  }).map(([name, value]) => ({ name, value }));

  const findings = [
    finding({
      check: 'cost',
      severity: 'info',
      passed: true,
      message:
        `cost ${round(cost)} on ${rows} rows (${round(costPerRow)} per row): ` +
        `${fp} false positives at ${config.falsePositiveCost}, ${fn} false negatives at ${config.falseNegativeCost} ` +
        `(positive class "${positive}")`,
      observed: String(round(cost)),
    }),
  ];
  if (config.maxCostPerRow !== undefined) {
    const passed = costPerRow <= config.maxCostPerRow;
    findings.push(
      finding({
        check: 'max-cost-per-row',
        severity: 'fail',
        passed,
        message: `cost per row ${round(costPerRow)} ${passed ? 'is within' : 'exceeds'} the maximum ${config.maxCostPerRow}`,
        observed: String(round(costPerRow)),
        expected: `<= ${config.maxCostPerRow}`,
      }),
    );
  }

  log('info', 'cost evaluated', [
    ['cost', String(cost)],
    ['cost_per_row', String(costPerRow)],
    ['tp', String(tp)],
    ['fp', String(fp)],
    ['tn', String(tn)],
    ['fn', String(fn)],
  ]);
  return { metrics, report: { findings } };
}

/** A WIT `finding`, with the optional fields left out when not given. */
function finding({ check, column, severity, passed, message, observed, expected }) {
  return { check, column, severity, passed, message, observed, expected };
}

/** A number rounded to 4 decimals, for messages. */
function round(value) {
  return Math.round(value * 1e4) / 1e4;
}

/**
 * The text of an error thrown by an imported function returning `result<_, string>`: an object
 * (not an `Error`) whose `payload` is the string.
 */
function errorText(error) {
  return typeof error?.payload === 'string' ? error.payload : String(error?.message ?? error);
}

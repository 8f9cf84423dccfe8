// {{name}}: a wflow transformer written in JavaScript. Adds a column `name` = `left` * `right`
// (two numeric columns) to every input table. Build it with `wflow plugin build`.

import { declare } from 'wflow:plugin/preprocessing@{{contract}}';
import { guarded, parseConfig, StepError } from './common.js';

const CONFIG_SCHEMA = {
  type: 'object',
  properties: {
    left: { type: 'string' },
    right: { type: 'string' },
    name: { type: 'string', description: "The new column's name [default: left_x_right]." },
  },
  required: ['left', 'right'],
  additionalProperties: false,
};

export function describe() {
  return {
    name: '{{name}}',
    version: '0.1.0',
    kind: 'transformer',
    description: 'Adds the product of two numeric columns',
    configSchema: JSON.stringify(CONFIG_SCHEMA),
    capabilities: [],
  };
}

function numbers(table, name) {
  const column = table.column(name);
  if (column === undefined) throw new StepError('invalid-input', `no column \`${name}\` in the table`);
  if (column.values.tag !== 'float' && column.values.tag !== 'integer') {
    throw new StepError('invalid-input', `column \`${name}\` is not numeric`);
  }
  return { values: Array.from(column.values.val, Number), valid: column.valid };
}

export function transform(inputs, config) {
  return guarded(() => {
    const { left, right, name = `${left}_x_${right}` } = parseConfig(config);
    // How serving applies this step to raw rows: fills, one-hot, standardize, bucketize,
    // drop-columns or rows (see the WIT's `preprocessing` interface). A product of two columns is
    // none of them, so this step says so; a model trained after it is registered with
    // `pipeline = [...]` leaving it out, or `pipeline = []`.
    declare([{ tag: 'unservable', val: `\`${name}\` is the product of two columns, which serving does not compute` }]);
    return inputs.map(([slot, table]) => {
      const a = numbers(table, left);
      const b = numbers(table, right);
      const product = Float64Array.from(a.values, (x, i) => x * b.values[i]);
      const valid =
        a.valid.length || b.valid.length
          ? a.values.map((_, i) => (a.valid.length ? a.valid[i] : true) && (b.valid.length ? b.valid[i] : true))
          : [];
      return [slot, table.withColumn({ name, values: { tag: 'float', val: product }, valid })];
    });
  });
}

// {{name}}: a wflow deployment gate written in JavaScript. Promotes the candidate when its
// `metric` beats the champion's by `min_improvement` (or when there is no champion), and rejects
// it otherwise. Build it with `wflow plugin build`.

import { guarded, parseConfig, StepError } from './common.js';

const CONFIG_SCHEMA = {
  type: 'object',
  properties: {
    metric: { type: 'string', description: 'The metric compared [default: accuracy].' },
    min_improvement: { type: 'number', description: 'How much better the candidate must be [default: 0].' },
  },
  additionalProperties: false,
};

export function describe() {
  return {
    name: '{{name}}',
    version: '0.1.0',
    kind: 'deployer',
    description: 'Promotes a candidate that beats the champion on one metric',
    configSchema: JSON.stringify(CONFIG_SCHEMA),
    capabilities: [],
  };
}

const metric = (evaluation, name) => evaluation?.metrics.find((m) => m.name === name)?.value;

export function decide(candidate, champion, policy) {
  return guarded(() => {
    const { metric: name = 'accuracy', min_improvement: margin = 0 } = parseConfig(policy);
    const score = metric(candidate, name);
    if (score === undefined) throw new StepError('invalid-input', `the candidate's evaluation has no metric \`${name}\``);
    const best = metric(champion, name);
    const promote = best === undefined || score >= best + margin;
    const message =
      `candidate ${name} = ${score.toFixed(4)}` +
      (best === undefined ? ' and there is no champion' : `, champion ${best.toFixed(4)}, margin ${margin}`);
    return {
      decision: { tag: promote ? 'promote' : 'reject' },
      report: {
        findings: [{
          check: 'improvement', column: undefined, severity: 'info', passed: promote, message,
          observed: score.toFixed(4), expected: best === undefined ? undefined : `>= ${(best + margin).toFixed(4)}`,
        }],
      },
    };
  });
}
